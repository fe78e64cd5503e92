"""Helpers shared by the analysis tests."""

from __future__ import annotations

import math

import pytest
import torch

from lsc.models import StackedRNN

try:
    from matplotlib import image as mpimg
except ImportError:  # the `plot` extra is missing: only the plot and CLI tests skip
    mpimg = None
needs_matplotlib = pytest.mark.skipif(mpimg is None, reason="needs matplotlib (pip install 'lsc[plot]')")


def elman(
    width: int,
    *,
    input_size: int = 1,
    W: torch.Tensor | None = None,
    nonlinearity: str = "tanh",
    output_size: int | None = None,
    layers: int = 1,
    dtype=torch.float64,
) -> StackedRNN:
    m = StackedRNN(
        "elman",
        input_size=input_size,
        hidden_size=width,
        num_layers=layers,
        output_size=output_size,
        nonlinearity=nonlinearity,
    ).to(dtype)
    if W is not None:
        with torch.no_grad():
            for c in m.cells:
                c.weight_hh.copy_(W)
                c.bias_ih.zero_()
                c.bias_hh.zero_()
    return m


def fixed_point(w: float) -> float:
    """The positive root of x = tanh(w x), w > 1, by Newton's method."""
    x = 1.0
    for _ in range(100):
        x -= (x - math.tanh(w * x)) / (1 - w * (1 - math.tanh(w * x) ** 2))
    return x


def png_ok(path) -> None:
    img = mpimg.imread(path)
    assert img.shape[:2] == (480, 640), img.shape  # FIGSIZE x DPI, not cropped
    assert img.shape[2] in (3, 4)
    rgb = img[..., :3]
    assert float(rgb.std()) > 0.01  # something is drawn
    assert float((rgb < 0.9).mean()) > 0.005  # and not just a white page
