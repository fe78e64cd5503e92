"""Synthetic long-range tasks, generated from a seed (no files).

Each split is drawn with its own generator (``seed``, split index), so changing one
split's size leaves the others as they were.

* ``copy`` (memory task, Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): a string
  of ``length`` symbols (one-hot over ``symbols`` channels), ``delay`` silent steps, then a
  recall cue (last channel) for ``length`` steps during which the string must be output.
  Per-step accuracy over the recall steps.
* ``adding`` (Hochreiter & Schmidhuber 1997): channel 0 random values in [0, 1), channel 1
  marks one step in each half; the target at the last step is the sum of the two marked
  values. MSE (predicting 1 gives 1/6 = 0.167).
* ``delayed-xor``: bit a at step 0, bit b at step 1 (channel 0 = 1 for bit 0, channel 1 =
  1 for bit 1), ``delay`` silent steps, then a cue (channel 2); the answer a XOR b is read
  at the cue. Last-step accuracy (chance 0.5).
* ``store-recall`` (Bellec et al. 2018, the LSNN store-and-recall task): spike input, 4
  groups of ``group`` channels firing at ``rate`` per step: value 0, value 1, store,
  recall; ``segments`` segments of ``segment`` steps, each with a random value; the first
  segment stores, later ones store or recall with probability ``p``. During a recall
  segment the output is the last stored value. Per-step accuracy over recall steps.
* ``lorenz``: Lorenz-63 (sigma 10, rho 28, beta 8/3) integrated with RK4 at ``dt``; input
  the state at t, target the state at t + ``horizon`` steps, both standardised with the
  training split's mean and std. Per-step MSE (0 is perfect; 1 is the variance).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Split, Task, TensorSplit, recorded

SPLITS = ("train", "val", "test")


def _generators(seed: int) -> dict[str, torch.Generator]:
    return {name: torch.Generator().manual_seed(seed * 1009 + k) for k, name in enumerate(SPLITS)}


def _sizes(train_size: int, val_size: int, test_size: int) -> dict[str, int]:
    sizes = {"train": train_size, "val": val_size, "test": test_size}
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name}_size must be an integer >= 1, got {n!r}")
    return sizes


def _positive(**values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")


def copy_data(n: int, symbols: int, length: int, delay: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(inputs (n, T, symbols + 1), targets (n, T), mask (n, T)) with T = 2 length + delay."""
    T = 2 * length + delay
    s = torch.randint(0, symbols, (n, length), generator=gen)
    x = torch.zeros(n, T, symbols + 1)
    x[:, :length].scatter_(2, s.unsqueeze(2), 1.0)
    x[:, length + delay :, symbols] = 1.0
    y = torch.zeros(n, T, dtype=torch.long)
    y[:, length + delay :] = s
    mask = torch.zeros(n, T, dtype=torch.bool)
    mask[:, length + delay :] = True
    return x, y, mask


@recorded
def copy(
    *,
    symbols: int = 8,
    length: int = 5,
    delay: int = 10,
    seed: int = 0,
    train_size: int = 10000,
    val_size: int = 1000,
    test_size: int = 1000,
    time_repeat: int = 1,
) -> Task:
    """The copy (memory) task: reproduce a string of symbols after a delay."""
    _positive(symbols=symbols, length=length)
    if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
        raise ValueError(f"delay must be an integer >= 0, got {delay!r}")
    sizes, gens = _sizes(train_size, val_size, test_size), _generators(seed)
    splits: dict[str, Split] = {}
    for k in SPLITS:
        x, y, m = copy_data(sizes[k], symbols, length, delay, gens[k])
        splits[k] = TensorSplit(x, y, mask=m)
    return Task(
        "copy",
        "steps",
        splits,
        output_size=symbols,
        seq_len=2 * length + delay,
        input_size=symbols + 1,
        time_repeat=time_repeat,
        source="generated",
    )


@recorded
def adding(
    *,
    length: int = 100,
    seed: int = 0,
    train_size: int = 10000,
    val_size: int = 1000,
    test_size: int = 1000,
    time_repeat: int = 1,
) -> Task:
    """The adding problem: sum the two marked values of a sequence."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an integer >= 2, got {length!r}")
    sizes, gens = _sizes(train_size, val_size, test_size), _generators(seed)
    splits: dict[str, Split] = {}
    half = length // 2
    for k in SPLITS:
        n, g = sizes[k], gens[k]
        x = torch.zeros(n, length, 2)
        x[:, :, 0] = torch.rand(n, length, generator=g)
        first = torch.randint(0, half, (n,), generator=g)
        second = torch.randint(half, length, (n,), generator=g)
        rows = torch.arange(n)
        x[rows, first, 1] = 1.0
        x[rows, second, 1] = 1.0
        y = (x[rows, first, 0] + x[rows, second, 0]).unsqueeze(1)
        splits[k] = TensorSplit(x, y)
    return Task(
        "adding",
        "regress_last",
        splits,
        output_size=1,
        seq_len=length,
        input_size=2,
        time_repeat=time_repeat,
        source="generated",
    )


@recorded
def delayed_xor(
    *,
    delay: int = 20,
    seed: int = 0,
    train_size: int = 10000,
    val_size: int = 1000,
    test_size: int = 1000,
    time_repeat: int = 1,
) -> Task:
    """Delayed XOR: two bits, a delay, then their XOR at a cue."""
    if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
        raise ValueError(f"delay must be an integer >= 0, got {delay!r}")
    T = delay + 3
    sizes, gens = _sizes(train_size, val_size, test_size), _generators(seed)
    splits: dict[str, Split] = {}
    for k in SPLITS:
        n, g = sizes[k], gens[k]
        bits = torch.randint(0, 2, (n, 2), generator=g)
        x = torch.zeros(n, T, 3)
        rows = torch.arange(n)
        x[rows, 0, bits[:, 0]] = 1.0
        x[rows, 1, bits[:, 1]] = 1.0
        x[:, -1, 2] = 1.0
        splits[k] = TensorSplit(x, bits[:, 0] ^ bits[:, 1])
    return Task(
        "delayed-xor",
        "last",
        splits,
        output_size=2,
        seq_len=T,
        input_size=3,
        time_repeat=time_repeat,
        source="generated",
    )


def store_recall_data(
    n: int, segments: int, segment: int, group: int, rate: float, p: float, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """(spikes (n, T, 4 group), targets (n, T), mask (n, T)) with T = segments * segment."""
    values = torch.randint(0, 2, (n, segments), generator=gen)
    u = torch.rand(n, segments, generator=gen)
    store = torch.zeros(n, segments, dtype=torch.bool)
    recall = torch.zeros(n, segments, dtype=torch.bool)
    store[:, 0] = True
    store[:, 1:] = u[:, 1:] < p
    recall[:, 1:] = (u[:, 1:] >= p) & (u[:, 1:] < 2 * p)
    none = ~recall.any(1)
    recall[none, -1], store[none, -1] = True, False  # every sequence asks at least once
    stored = torch.zeros(n, segments, dtype=torch.long)
    last = values[:, 0]
    for k in range(segments):
        last = torch.where(store[:, k], values[:, k], last)
        stored[:, k] = last
    T = segments * segment
    rates = torch.zeros(n, segments, 4)
    rates[torch.arange(n).unsqueeze(1), torch.arange(segments).unsqueeze(0), values] = rate
    rates[:, :, 2] = store.float() * rate
    rates[:, :, 3] = recall.float() * rate
    rates = rates.repeat_interleave(segment, dim=1).repeat_interleave(group, dim=2)  # (n, T, 4 group)
    x = (torch.rand(n, T, 4 * group, generator=gen) < rates).float()
    y = stored.repeat_interleave(segment, dim=1)
    mask = recall.repeat_interleave(segment, dim=1)
    return x, y, mask


@recorded
def store_recall(
    *,
    segments: int = 10,
    segment: int = 20,
    group: int = 10,
    rate: float = 0.5,
    p: float = 0.2,
    seed: int = 0,
    train_size: int = 5000,
    val_size: int = 500,
    test_size: int = 500,
    time_repeat: int = 1,
) -> Task:
    """Store-and-recall with spike input (Bellec et al. 2018)."""
    _positive(segments=segments, segment=segment, group=group)
    if segments < 2:
        raise ValueError("store-recall needs at least 2 segments (one to store, one to recall)")
    if not 0.0 < rate <= 1.0 or not 0.0 < p <= 0.5:
        raise ValueError(f"rate must be in (0, 1] and p in (0, 0.5], got rate={rate}, p={p}")
    sizes, gens = _sizes(train_size, val_size, test_size), _generators(seed)
    splits: dict[str, Split] = {}
    for k in SPLITS:
        x, y, m = store_recall_data(sizes[k], segments, segment, group, rate, p, gens[k])
        splits[k] = TensorSplit(x.to(torch.uint8), y, mask=m, encode=_spikes)  # compact: 0/1 bytes
    return Task(
        "store-recall",
        "steps",
        splits,
        output_size=2,
        seq_len=segments * segment,
        input_size=4 * group,
        time_repeat=time_repeat,
        source="generated",
    )


def _spikes(x: Tensor) -> Tensor:
    return x.float()


def lorenz_trajectories(n: int, steps: int, dt: float, gen: torch.Generator, burn_in: int = 1000) -> Tensor:
    """(n, steps, 3) Lorenz-63 states (RK4, float64) after ``burn_in`` steps from random starts."""
    sigma, rho, beta = 10.0, 28.0, 8.0 / 3.0

    def f(s: Tensor) -> Tensor:
        x, y, z = s.unbind(-1)
        return torch.stack([sigma * (y - x), x * (rho - z) - y, x * y - beta * z], dim=-1)

    s = torch.randn(n, 3, generator=gen, dtype=torch.float64) * 5.0 + torch.tensor(
        [0.0, 0.0, 25.0], dtype=torch.float64
    )
    out = torch.empty(n, steps, 3, dtype=torch.float64)
    for t in range(burn_in + steps):
        k1 = f(s)
        k2 = f(s + 0.5 * dt * k1)
        k3 = f(s + 0.5 * dt * k2)
        k4 = f(s + dt * k3)
        s = s + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        if t >= burn_in:
            out[:, t - burn_in] = s
    return out


@recorded
def lorenz(
    *,
    length: int = 100,
    horizon: int = 5,
    dt: float = 0.01,
    seed: int = 0,
    train_size: int = 2000,
    val_size: int = 200,
    test_size: int = 200,
    time_repeat: int = 1,
) -> Task:
    """Lorenz-63 prediction: from the state at t, predict the state at t + horizon."""
    _positive(length=length, horizon=horizon)
    if not 0.0 < dt <= 0.05:
        raise ValueError(f"dt must be in (0, 0.05] for a stable RK4 integration, got {dt}")
    sizes, gens = _sizes(train_size, val_size, test_size), _generators(seed)
    raw = {k: lorenz_trajectories(sizes[k], length + horizon, dt, gens[k]) for k in SPLITS}
    mean, std = raw["train"].mean((0, 1)), raw["train"].std((0, 1))
    splits: dict[str, Split] = {}
    for k in SPLITS:
        z = ((raw[k] - mean) / std).float()
        splits[k] = TensorSplit(z[:, :length].contiguous(), z[:, horizon:].contiguous())
    return Task(
        "lorenz",
        "regress_steps",
        splits,
        output_size=3,
        seq_len=length,
        input_size=3,
        time_repeat=time_repeat,
        source="generated",
    )
