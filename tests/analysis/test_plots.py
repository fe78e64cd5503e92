"""lsc.analysis.plots: every plot renders a non-empty PNG."""

from __future__ import annotations

import pytest
import torch

from lsc.analysis import (
    attractors,
    gradient_grid,
    loss_slice,
    lyapunov_spectrum,
    pascal_rnn,
    radius_sweep,
)
from lsc.models import StackedRNN

from .helpers import needs_matplotlib, png_ok


@needs_matplotlib
def test_every_plot_renders(tmp_path):
    torch.manual_seed(0)
    m = StackedRNN("gru", input_size=3, hidden_size=6, num_layers=3, output_size=2)
    x = torch.randn(4, 30, 3)
    paths = [
        gradient_grid(m, x).plot(tmp_path / "grid.png"),
        pascal_rnn(10, 100, 1.0).plot(tmp_path / "pascal.png", others=[pascal_rnn(10, 100, 0.5)]),
        lyapunov_spectrum(m, x, k=4, warmup=5).plot(tmp_path / "lyapunov.png"),
        lyapunov_spectrum(m, x, k=3, warmup=5, per_layer=True).plot(tmp_path / "lyapunov_layers.png"),
        loss_slice(m, x, "random", 7).plot(tmp_path / "slice1.png"),
        loss_slice(m, x, ["random", "ray"], 5).plot(tmp_path / "slice2.png"),
        radius_sweep(m, x, [0.5, 1.5], iters=3).plot(tmp_path / "sweep.png"),
        attractors(m, torch.randn(2, 3), n_init=8, steps=100).plot(tmp_path / "attractors.png"),
    ]
    for p in paths:
        png_ok(p)
    with pytest.raises(ValueError, match="png"):
        pascal_rnn(2, 3, 1.0).plot(tmp_path / "pascal.jpg")
