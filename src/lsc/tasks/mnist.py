"""Sequential MNIST tasks: one image a sequence, the label read at the last step.

* ``row-mnist``: the 28 rows are 28 steps of 28 pixels.
* ``pixel-mnist``: the 784 pixels are 784 steps of one value (Le et al. 2015).
* ``permuted-mnist``: the pixels in one fixed random order (``permutation_seed``).
* ``padded-mnist``: the image (rows, or pixels with ``base="pixel"``) followed by zeros up
  to ``length`` steps; the label is read at the end (Gilboa et al. 2019, "padded MNIST";
  init_theories.md A.8).

Pixels are scaled to [0, 1]. Data: :mod:`lsc.tasks.images` (the 5k subset offline).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .base import Split, Task, TensorSplit, recorded
from .images import image_splits, load_images


def image_task(
    name: str,
    encode_for: Callable[[int], tuple[Callable[[Tensor], Tensor], int, int]],
    *,
    objective: str = "last",
    dataset: str,
    source: str,
    path: str | Path | None,
    split_seed: int,
    val_fraction: float,
    time_repeat: int,
) -> Task:
    """A task over an image data set. ``encode_for(side) -> (encode, seq_len, input_size)``
    where ``encode`` maps uint8 images (B, side*side) to model input (B, T, F)."""
    images = load_images(dataset, source, path)
    encode, seq_len, input_size = encode_for(images.side)
    splits: dict[str, Split] = {
        k: TensorSplit(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y), encode=encode)
        for k, (x, y) in image_splits(images, split_seed, val_fraction).items()
    }
    return Task(
        name,
        objective,
        splits,
        output_size=10,
        seq_len=seq_len,
        input_size=input_size,
        time_repeat=time_repeat,
        source=images.source,
    )


def _scale(x: Tensor) -> Tensor:
    return x.float() / 255.0


@recorded
def row_mnist(
    *,
    dataset: str = "mnist",
    source: str = "auto",
    path: str | Path | None = None,
    split_seed: int = 0,
    val_fraction: float = 0.1,
    time_repeat: int = 1,
) -> Task:
    """Row-sequential MNIST: T = 28 steps of 28 pixels, label at the last step."""

    def encode_for(side: int):
        return (lambda x: _scale(x).view(x.shape[0], side, side)), side, side

    return image_task(
        "row-mnist",
        encode_for,
        dataset=dataset,
        source=source,
        path=path,
        split_seed=split_seed,
        val_fraction=val_fraction,
        time_repeat=time_repeat,
    )


@recorded
def pixel_mnist(
    *,
    dataset: str = "mnist",
    source: str = "auto",
    path: str | Path | None = None,
    split_seed: int = 0,
    val_fraction: float = 0.1,
    time_repeat: int = 1,
) -> Task:
    """Pixel-sequential MNIST: T = 784 steps of one pixel, label at the last step."""

    def encode_for(side: int):
        return (lambda x: _scale(x).unsqueeze(-1)), side * side, 1

    return image_task(
        "pixel-mnist",
        encode_for,
        dataset=dataset,
        source=source,
        path=path,
        split_seed=split_seed,
        val_fraction=val_fraction,
        time_repeat=time_repeat,
    )


@recorded
def permuted_mnist(
    *,
    dataset: str = "mnist",
    source: str = "auto",
    path: str | Path | None = None,
    split_seed: int = 0,
    val_fraction: float = 0.1,
    time_repeat: int = 1,
    permutation_seed: int = 0,
) -> Task:
    """Permuted pixel MNIST: the pixels in a fixed random order (seeded), one a step."""

    def encode_for(side: int):
        perm = torch.randperm(side * side, generator=torch.Generator().manual_seed(permutation_seed))
        return (lambda x: _scale(x[:, perm]).unsqueeze(-1)), side * side, 1

    return image_task(
        "permuted-mnist",
        encode_for,
        dataset=dataset,
        source=source,
        path=path,
        split_seed=split_seed,
        val_fraction=val_fraction,
        time_repeat=time_repeat,
    )


@recorded
def padded_mnist(
    *,
    dataset: str = "mnist",
    source: str = "auto",
    path: str | Path | None = None,
    split_seed: int = 0,
    val_fraction: float = 0.1,
    time_repeat: int = 1,
    length: int = 200,
    base: str = "row",
) -> Task:
    """Padded MNIST (Gilboa et al.): the image, row by row (or pixel by pixel with
    ``base="pixel"``), then zeros up to ``length`` steps; the label at the end."""
    if base not in ("row", "pixel"):
        raise ValueError(f"base must be 'row' or 'pixel', got {base!r}")

    def encode_for(side: int):
        steps, features = (side, side) if base == "row" else (side * side, 1)
        if not isinstance(length, int) or length < steps:
            raise ValueError(f"length must be an integer >= {steps} (the image's own steps), got {length!r}")

        def encode(x: Tensor) -> Tensor:
            out = torch.zeros(x.shape[0], length, features)
            out[:, :steps] = _scale(x).view(x.shape[0], steps, features)
            return out

        return encode, length, features

    return image_task(
        "padded-mnist",
        encode_for,
        dataset=dataset,
        source=source,
        path=path,
        split_seed=split_seed,
        val_fraction=val_fraction,
        time_repeat=time_repeat,
    )
