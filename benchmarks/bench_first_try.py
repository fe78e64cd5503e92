"""lsc with default arguments on seven models written the way practitioners write them
(issue 25): each is pre-trained with ``lsc.pretrain(model, data)`` and nothing else but how
to call it, and either converges or warns within the default budget.

Models (seeded; data as the model takes it):

* ``charlm``: embedding 64 + 3 x 256 ``nn.LSTM`` + head, tokens (32, 100), vocabulary 96;
* ``bigru``: a 2-layer bidirectional ``nn.GRU`` (width 64) classifier that packs inside
  ``forward(x, lengths)``, fed ``(x, lengths, y)`` by a DataLoader (``input_key=(0, 1)``);
* ``cells``: two ``nn.LSTMCell`` (width 128) stepped in the user's loop;
* ``relu``: a 3 x 128 ReLU ``nn.RNN``;
* ``proj``: an ``nn.LSTM`` (2 x 128) with ``proj_size=64``;
* ``float64``: a 2 x 64 ``nn.GRU`` tagger in double precision;
* ``compiled``: a ``torch.compile``d 2 x 128 ``nn.GRU`` tagger (lsc measures the module the
  compiled one wraps).

Columns: the model's own training step (forward + backward + Adam, s); pre-training with
default arguments: steps, seconds, in training steps, converged (else the warning's first
words); the dense check: the worst |radius - target| over every time and depth edge, dense,
on a fresh batch.

    python benchmarks/bench_first_try.py [--only charlm bigru ...] [--threads N]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import torch
from bench_practical import Cells, Tagger  # the same models as that benchmark's rows
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, TensorDataset

import lsc

B, T = 32, 100


class CharLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(96, 64)
        self.lstm = nn.LSTM(64, 256, num_layers=3, batch_first=True)
        self.head = nn.Linear(256, 96)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(tokens))[0])


class BiGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(16, 64, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(128, 5)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False))
        return self.head(torch.cat([h[-2], h[-1]], dim=-1))


def setup(name: str, g: torch.Generator) -> tuple[nn.Module, Callable[[], object], dict[str, object]]:
    """(model, a maker of one batch as the model takes it, how lsc calls it)."""
    seqs = lambda: torch.randn(B, T, 16, generator=g)  # noqa: E731
    if name == "charlm":
        return CharLM(), lambda: torch.randint(0, 96, (B, T), generator=g), {}
    if name == "bigru":
        make = lambda: (seqs(), torch.randint(T // 2, T + 1, (B,), generator=g), torch.randint(0, 5, (B,), generator=g))  # noqa: E731
        return BiGRU(), make, {"input_key": (0, 1)}
    if name == "cells":
        return Cells(), seqs, {}
    if name == "relu":
        return Tagger(nn.RNN(16, 128, num_layers=3, nonlinearity="relu", batch_first=True), 128), seqs, {}
    if name == "proj":
        return Tagger(nn.LSTM(16, 128, num_layers=2, proj_size=64, batch_first=True), 64), seqs, {}
    if name == "float64":
        model = Tagger(nn.GRU(16, 64, num_layers=2, batch_first=True), 64).double()
        return model, lambda: seqs().double(), {}
    if name == "compiled":
        return torch.compile(Tagger(nn.GRU(16, 128, num_layers=2, batch_first=True), 128)), seqs, {}
    raise ValueError(name)


def loss_of(model: nn.Module, item: object) -> torch.Tensor:
    if isinstance(item, tuple):
        return model(item[0], item[1]).square().mean()
    out = model(item)
    return out.square().mean()


def training_step(model: nn.Module, item: object, repeats: int = 3) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss_of(model, item).backward()  # warm-up (a compiled model compiles here)
    start = time.perf_counter()
    for _ in range(repeats):
        opt.zero_grad()
        loss_of(model, item).backward()
        opt.step()
    seconds = (time.perf_counter() - start) / repeats
    model.load_state_dict(state)
    return seconds


def row(name: str) -> dict[str, object]:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model, make, call = setup(name, g)
    step = training_step(model, make())
    data = [make() for _ in range(8)]  # a re-iterable of batches, as a DataLoader is
    if name == "bigru":
        data = DataLoader(TensorDataset(*[torch.cat(parts) for parts in zip(*data)]), batch_size=B)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", lsc.pretraining.NotConvergedWarning)
        res = lsc.pretrain(model, data, progress=False, **call)
    warned = [str(w.message) for w in caught if issubclass(w.category, lsc.pretraining.NotConvergedWarning)]
    fresh = lsc.measure(model, make(), estimator="dense", kinds=["time", "depth"], target=res.target or "auto", **call)
    worst = max(abs(g) for g in fresh.gaps() if g is not None)
    return {
        "model": name,
        "step_s": step,
        "steps": res.steps,
        "seconds": res.seconds,
        "in_steps": res.seconds / step,
        "converged": res.converged,
        "warned": warned[0][:90] if warned else "",
        "dense_worst_gap": worst,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = ["charlm", "bigru", "cells", "relu", "proj", "float64", "compiled"]
    ap.add_argument("--only", nargs="+", default=names, choices=names)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| model | training step (s) | pre-training steps | s | in training steps | converged | dense worst gap |")
    print("|---|---|---|---|---|---|---|")
    for name in args.only:
        r = row(name)
        print(
            f"| {r['model']} | {r['step_s']:.3f} | {r['steps']} | {r['seconds']:.1f} | {r['in_steps']:.0f} | "
            f"{'yes' if r['converged'] else 'no, warned: ' + str(r['warned'])} | {r['dense_worst_gap']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
