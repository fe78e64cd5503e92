"""SHD, the Spiking Heidelberg Digits (Cramer et al. 2020), from its HDF5 files.

Files ``shd_train.h5`` and ``shd_test.h5`` (gunzip the downloads) in ``path`` or
``$LSC_DATA/shd``. Each holds ``spikes/times`` (one float array of spike times in seconds
per sample), ``spikes/units`` (the matching input channels, 0-699) and ``labels`` (0-19).

Binning as the reference does (docs/design.md A4.2): spikes in the first ``duration`` = 1 s
are put in bins of ``dt`` = 4 ms, 250 steps; a bin is 1 when its channel spiked in it
(binary). Channel u is input u (the reference maps u to 700 - u and drops unit 0, a
permutation of the input weights plus one lost channel; we keep all 700). Splits: a
seeded 5% of the training file is validation; the test split is the *full* official test
file (the reference used only its first 2088 samples). Label at every step, mode accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .base import Split, Task, TensorSplit
from .images import stratified_split
from .paths import DataError, locate

CHANNELS = 700
CLASSES = 20
FILES = ("shd_train.h5", "shd_test.h5")
KEYS = ("spikes/times", "spikes/units", "labels")


class Events:
    """Binned spikes of many samples, ragged: sample i's active (bin, channel) pairs are
    ``codes[offsets[i]:offsets[i + 1]]`` with code = bin * channels + channel."""

    def __init__(self, codes: Tensor, offsets: Tensor, bins: int, channels: int) -> None:
        self.codes, self.offsets, self.bins, self.channels = codes, offsets, bins, channels

    def dense(self, index: Tensor) -> Tensor:
        """(B,) sample indices -> (B, bins, channels) binary float input."""
        B, size = index.numel(), self.bins * self.channels
        out = torch.zeros(B * size)
        parts = [self.codes[self.offsets[i] : self.offsets[i + 1]] + k * size for k, i in enumerate(index.tolist())]
        if parts:
            out[torch.cat(parts).long()] = 1.0
        return out.view(B, self.bins, self.channels)


def read_shd(
    path: str | Path, *, dt: float = 0.004, duration: float = 1.0, channels: int = CHANNELS
) -> tuple[Events, np.ndarray]:
    """Binned events and labels of one SHD HDF5 file; missing keys are a clear error."""
    try:
        import h5py
    except ImportError:
        raise ImportError("reading SHD needs h5py: pip install h5py") from None
    path = Path(path)
    bins = round(duration / dt)
    if bins < 1:
        raise ValueError(f"duration / dt must give at least one bin, got duration={duration}, dt={dt}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path} is not a readable HDF5 file ({exc})") from None
    with f:
        missing = [k for k in KEYS if k not in f]
        if missing:
            present: list[str] = []
            f.visit(present.append)
            raise DataError(
                f"{path} lacks the SHD keys {missing}: an SHD file holds spikes/times, spikes/units and labels "
                f"(found: {', '.join(present) or 'nothing'})"
            )
        times, units, labels = f["spikes/times"], f["spikes/units"], np.asarray(f["labels"][:], dtype=np.int64)
        if not (len(times) == len(units) == len(labels)):
            raise DataError(
                f"{path}: {len(times)} spike-time arrays, {len(units)} unit arrays and {len(labels)} labels differ"
            )
        codes, offsets = [], [0]
        for i in range(len(labels)):
            t, u = np.asarray(times[i], dtype=np.float64), np.asarray(units[i], dtype=np.int64)
            if t.shape != u.shape:
                raise DataError(f"{path}: sample {i} has {t.size} spike times but {u.size} units")
            keep = (t >= 0) & (t < duration) & (u >= 0) & (u < channels)
            c = np.unique(np.floor(t[keep] / dt).astype(np.int64).clip(0, bins - 1) * channels + u[keep])
            codes.append(c.astype(np.int32))
            offsets.append(offsets[-1] + c.size)
    if labels.size == 0:
        raise DataError(f"{path} holds no samples")
    if labels.min() < 0 or labels.max() >= CLASSES:
        raise DataError(f"{path}: labels must lie in 0..{CLASSES - 1}, got {labels.min()}..{labels.max()}")
    flat = torch.from_numpy(np.concatenate(codes)) if codes else torch.zeros(0, dtype=torch.int32)
    return Events(flat, torch.tensor(offsets), bins, channels), labels


def shd(
    *,
    path: str | Path | None = None,
    split_seed: int = 0,
    val_fraction: float = 0.05,
    time_repeat: int = 1,
    dt: float = 0.004,
    duration: float = 1.0,
) -> Task:
    """Spiking Heidelberg Digits: 250 steps x 700 binary channels, 20 classes, mode accuracy."""
    files = locate(
        "SHD",
        FILES,
        path,
        "shd",
        gzip_ok=False,
        hint="They are the gunzipped shd_train.h5.gz / shd_test.h5.gz of the SHD release.",
    )
    train_events, train_y = read_shd(files[FILES[0]], dt=dt, duration=duration)
    test_events, test_y = read_shd(files[FILES[1]], dt=dt, duration=duration)
    tr, va = stratified_split(train_y, (1.0 - val_fraction, val_fraction), split_seed)

    def split(events: Events, labels: np.ndarray, index: np.ndarray) -> TensorSplit:
        return TensorSplit(
            torch.from_numpy(index.astype(np.int64)), torch.from_numpy(labels[index]), encode=events.dense
        )

    splits: dict[str, Split] = {
        "train": split(train_events, train_y, tr),
        "val": split(train_events, train_y, va),
        "test": split(test_events, test_y, np.arange(test_y.size)),
    }
    options: dict[str, object] = {
        "path": None if path is None else str(path),
        "split_seed": split_seed,
        "val_fraction": val_fraction,
        "time_repeat": time_repeat,
        "dt": dt,
        "duration": duration,
    }
    return Task(
        "shd",
        "mode",
        splits,
        output_size=CLASSES,
        seq_len=train_events.bins,
        input_size=CHANNELS,
        time_repeat=time_repeat,
        source=f"SHD HDF5 files in {files[FILES[0]].parent}",
        options=options,
    )
