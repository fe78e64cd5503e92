"""lsc.analysis.steps: a state that turns NaN/inf mid-sequence is named by layer and step."""

from __future__ import annotations

import pytest
import torch

from lsc.analysis import (
    gradient_grid,
    loss_slice,
    lyapunov_spectrum,
    smoothness,
)
from lsc.checks import NonFiniteError
from lsc.models import StackedRNN


def _explodes_in_layer_1():
    """Layer 1 multiplies its state by 1e10 per step: float32 overflows at step 4."""
    m = StackedRNN("elman", input_size=2, hidden_size=2, num_layers=2, output_size=1, nonlinearity="identity")
    with torch.no_grad():
        for c in m.cells:
            c.weight_ih.copy_(torch.eye(2))
            c.bias_ih.zero_()
            c.bias_hh.zero_()
        m.cells[0].weight_hh.zero_()
        m.cells[1].weight_hh.copy_(1e10 * torch.eye(2))
    return m, torch.ones(2, 8, 2)


@pytest.mark.parametrize(
    "run",
    [
        lambda m, x: gradient_grid(m, x),
        lambda m, x: lyapunov_spectrum(m, x, k=2, warmup=1),
        lambda m, x: smoothness(m, x, iters=2),
        lambda m, x: loss_slice(m, x, "random", 3),
    ],
    ids=["grid", "lyapunov", "smoothness", "slice"],
)
def test_nan_mid_sequence_names_layer_and_step(run):
    m, x = _explodes_in_layer_1()
    with pytest.raises(NonFiniteError, match=r"layer 1 \(ElmanCell\) became NaN/inf at step 4"):
        run(m, x)
