"""sl-MNIST: spike-latency MNIST, as the LSC reference encodes it (docs/design.md A4.1).

Each pixel x in [0, 1] is scaled x' = 50 x. A pixel with x' > 0.2 spikes once, at latency

    T(x) = round(50 * ln(x' / (x' - 0.2)) * 10)  steps,

kept when 1 <= T <= 100 (roughly every pixel >= 0.022 spikes; x = 1 spikes at step 2);
others never spike. The input is 100 steps of 784 binary channels. Label at every step,
loss averaged over steps, metric mode accuracy (:mod:`lsc.tasks.objectives`).

Layouts of the (784 pixels x 100 latency bins) one-hot tensor:

* ``layout="time"`` (default, correct): transposed to (100, 784), so step t holds the
  pixels that spike at latency t + 1.
* ``layout="reference"``: *reshaped* to (100, 784) as the reference code does, so each
  "step" holds the 100-bin one-hots of about 7.84 consecutive pixels (docs/design.md A8).

The reference repeats every step twice (``time_repeat=2``); the default here is 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .base import Task, recorded
from .mnist import image_task

SCALE = 50.0
THRESHOLD = 0.2
BINS = 100
LAYOUTS = ("time", "reference")


def latencies(x: np.ndarray, *, scale: float = SCALE, threshold: float = THRESHOLD, bins: int = BINS) -> np.ndarray:
    """Spike step (0-based, latency - 1) of every pixel in [0, 1]; -1 where it never spikes
    within ``bins`` steps. Rounding is half-to-even, as TensorFlow's ``tf.round``."""
    xs = np.asarray(x, dtype=np.float64) * scale
    out = np.full(xs.shape, -1, dtype=np.int16)
    on = xs > threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        lat = np.rint(50.0 * np.log(xs[on] / (xs[on] - threshold)) * 10.0)
    keep = (lat >= 1) & (lat <= bins)
    vals = np.full(lat.shape, -1, dtype=np.int16)
    vals[keep] = (lat[keep] - 1).astype(np.int16)
    out[on] = vals
    return out


def encode_latencies(lat: Tensor, bins: int = BINS, layout: str = "time") -> Tensor:
    """(B, P) spike steps (-1: silent) -> (B, bins, P) binary input in ``layout``."""
    B, P = lat.shape
    onehot = torch.zeros(B, P, bins)
    b, p = torch.nonzero(lat >= 0, as_tuple=True)
    onehot[b, p, lat[b, p].long()] = 1.0
    if layout == "time":
        return onehot.transpose(1, 2).contiguous()
    return onehot.reshape(B, bins, P)  # the reference's reshape: not a transpose


@recorded
def slmnist(
    *,
    dataset: str = "mnist",
    source: str = "auto",
    path: str | Path | None = None,
    split_seed: int = 0,
    val_fraction: float = 0.1,
    time_repeat: int = 1,
    layout: str = "time",
) -> Task:
    """Spike-latency MNIST: 100 steps x 784 binary channels, mode accuracy."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    # encode once to latencies (int16) so each batch is a cheap scatter

    def encode_for(side: int):
        return (lambda lat: encode_latencies(lat, BINS, layout)), BINS, side * side

    task = image_task(
        "slmnist",
        encode_for,
        objective="mode",
        dataset=dataset,
        source=source,
        path=path,
        split_seed=split_seed,
        val_fraction=val_fraction,
        time_repeat=time_repeat,
    )
    for split in task.splits.values():
        split.inputs = torch.from_numpy(latencies(split.inputs.numpy() / 255.0))  # type: ignore[attr-defined]
    return task
