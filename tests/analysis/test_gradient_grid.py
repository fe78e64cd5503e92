"""lsc.analysis.gradient_grid: the gradient grid against closed forms and a naive leaf per node."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import lsc
from lsc.analysis import (
    gradient_grid,
)
from lsc.models import StackedRNN

from .helpers import elman


def test_gradient_grid_linear_closed_form():
    """Linear Elman, y_t = C s_t + c: dE/ds_t = sum_k (W^T)^k C^T 1 for E = sum of outputs."""
    torch.manual_seed(0)
    n, T = 4, 12
    W = torch.randn(n, n, dtype=torch.float64) * 0.4
    m = elman(n, input_size=3, W=W, nonlinearity="identity", output_size=2)
    x = torch.randn(5, T, 3, dtype=torch.float64)
    g = gradient_grid(m, x)
    C = m.decoder.weight.detach()
    v = C.T @ torch.ones(2, dtype=torch.float64)
    acc, expect = torch.zeros(n, dtype=torch.float64), []
    for _ in range(T):  # from the last step backwards
        acc = v + W.T @ acc
        expect.append(float(acc.norm()))
    np.testing.assert_allclose(g.values[0], expect[::-1], rtol=1e-12)
    assert g.values.shape == (1, T)


def test_gradient_grid_matches_naive_leaf_per_node():
    """A custom loss; each node's gradient recomputed by re-running the tail with s^l_t as a leaf."""
    torch.manual_seed(1)
    m = StackedRNN("gru", input_size=3, hidden_size=5, num_layers=2, output_size=2).double()
    x = torch.randn(4, 6, 3, dtype=torch.float64)

    def loss(y):
        return (y**2).sum() + y[:, -1].sum()

    g = gradient_grid(m, x, loss=loss)
    for l in range(2):
        for t in range(6):
            states = m.init_states(4, dtype=torch.float64)
            ys, leaf = [], None
            for s_t in range(6):
                u = x[:, s_t]
                for k, cell in enumerate(m.cells):
                    s = cell.transition(u, states[k])
                    if (k, s_t) == (l, t):
                        leaf = s.detach().requires_grad_(True)
                        s = leaf
                    states[k] = s
                    u = cell.output(u, s)
                ys.append(m.decoder(u))
            (grad,) = torch.autograd.grad(loss(torch.stack(ys, 1)), leaf)
            assert math.isclose(g.values[l, t], float(grad.norm(dim=1).mean()), rel_tol=1e-10)


def test_gradient_grid_of_torch_lstm_and_bad_loss():
    lstm = torch.nn.LSTM(3, 6, num_layers=2, batch_first=True)
    g = gradient_grid(lstm, torch.randn(2, 5, 3))
    assert g.values.shape == (2, 5) and np.isfinite(g.values).all() and (g.values > 0).all()
    with pytest.raises(ValueError, match="scalar"):
        gradient_grid(lstm, torch.randn(2, 5, 3), loss=lambda y: y)
    with pytest.raises(ValueError, match="shape"):
        gradient_grid(lstm, torch.randn(5, 3))


def test_gradient_grid_is_flat_after_lsc_05_and_not_at_1():
    """A 5-layer GRU pre-trained to 0.5 has a gradient grid flat over time; pre-trained to 1
    its layer-0 gradient grows towards early steps (the paper's Fig. 1c, second row)."""
    torch.manual_seed(0)
    base = StackedRNN("gru", input_size=4, hidden_size=8, num_layers=5, output_size=2)
    x = torch.randn(8, 40, 4, generator=torch.Generator().manual_seed(1))
    grids = {}
    for target in (0.5, 1.0):
        model = copy.deepcopy(base)
        # a step budget, not seconds: on a loaded machine 2.5 s stopped target 1 early (flatness 1.3)
        result = lsc.pretrain(
            model,
            None,
            target=target,
            kinds=("time", "depth"),
            max_steps=100,
            time_steps=40,
            batch_size=8,
            tol=0.05,
            seed=0,
            progress=False,
        )
        assert result.converged, (target, result.steps)  # 21 and 56 steps
        grids[target] = gradient_grid(model, x)
    flat, steep = grids[0.5], grids[1.0]
    early = slice(0, 20)  # away from the last steps, which only reach y through few paths
    assert flat.flatness(0, early) < 1.5
    assert steep.flatness(0, early) > 3.0
    assert steep.flatness(0) > 5 * flat.flatness(0)
