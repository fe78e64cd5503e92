"""lsc.analysis.attractors and stabilize: known fixed points and cycles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lsc.analysis import (
    attractors,
    stabilize,
)
from lsc.models import StackedRNN

from .helpers import elman, fixed_point


def test_attractors_of_two_unit_tanh_with_known_fixed_points():
    w = 2.0
    xs = fixed_point(w)
    m = elman(2, W=w * torch.eye(2, dtype=torch.float64))
    with torch.no_grad():
        m.cells[0].weight_ih.zero_()
    zero = torch.zeros(1, dtype=torch.float64)
    rep = attractors(m, zero, n_init=64, steps=300)
    found = sorted(tuple(np.sign(a.states[0]).astype(int)) for a in rep.attractors)
    assert found == [(-1, -1), (-1, 1), (1, -1), (1, 1)]  # (±x*, ±x*): 4 attracting fixed points
    for a in rep.attractors:
        np.testing.assert_allclose(np.abs(a.states[0]), xs, rtol=1e-7)
        assert a.period == 1 and a.attracting and math.isclose(a.radius, w * (1 - xs**2), rel_tol=1e-6)
    assert sum(a.count for a in rep.attractors) == 64 and rep.unresolved == [0] and rep.diverged == [0]
    # Newton also finds the repelling ones: 0 (radius w) and the 4 saddles (radius w)
    newton = attractors(m, zero, method="newton")
    assert newton.count() == 9
    repelling = [a for a in newton.attractors if not a.attracting]
    assert len(repelling) == 5 and all(math.isclose(a.radius, w, rel_tol=1e-6) for a in repelling)
    zeros_per_point = sorted(int((np.abs(a.states[0]) < 1e-6).sum()) for a in newton.attractors)
    assert zeros_per_point == [0, 0, 0, 0, 1, 1, 1, 1, 2]
    # stabilised (W rows normalised to 0.9): one globally attracting fixed point at 0
    stable = attractors(m, zero, stable=True)
    assert stable.count() == 1 and stable.attractors[0].count == 64
    np.testing.assert_allclose(stable.attractors[0].states[0], 0.0, atol=1e-6)
    assert math.isclose(stable.attractors[0].radius, 0.9, rel_tol=1e-6)
    assert torch.equal(m.cells[0].weight_hh, w * torch.eye(2, dtype=torch.float64))  # a copy was stabilised


def test_attractors_find_period_two_cycles():
    """W = -w I: each unit flips between +x* and -x*; two cycles, Floquet multiplier (w (1 - x*^2))^2."""
    w = 2.0
    xs = fixed_point(w)
    m = elman(2, W=-w * torch.eye(2, dtype=torch.float64))
    rep = attractors(m, torch.zeros(1, dtype=torch.float64), n_init=32, steps=300)
    assert rep.count() == 2 and all(a.period == 2 for a in rep.attractors)
    for a in rep.attractors:
        np.testing.assert_allclose(np.abs(a.states), xs, rtol=1e-7)
        np.testing.assert_allclose(a.states[0], -a.states[1], rtol=1e-7)
        assert math.isclose(a.radius, (w * (1 - xs**2)) ** 2, rel_tol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm", "elman"])
def test_stabilize_makes_one_attractor(cell):
    torch.manual_seed(2)
    m = StackedRNN(cell, input_size=3, hidden_size=8, num_layers=2).double()
    with torch.no_grad():
        for c in m.cells:
            c.weight_hh.mul_(6)
    inputs = torch.randn(2, 3, dtype=torch.float64)
    free = attractors(m, inputs, n_init=32, steps=600)
    assert max(free.count(0), free.count(1)) >= 2  # the free model is multistable
    rep = attractors(m, inputs, n_init=32, steps=600, stable=True)
    for i in range(2):
        assert rep.count(i) == 1 and rep.fixed_points(i)[0].count == 32 and rep.fixed_points(i)[0].attracting
    if cell in ("gru", "elman"):  # the derived bound: ||dS'/dS||_inf < 1 on the box |h| <= 1
        s = stabilize(m)
        for c in s.cells:
            pts = torch.rand(64, 8, dtype=torch.float64) * 2 - 1
            u = torch.randn(64, c.input_size, dtype=torch.float64) * 3
            J = torch.func.vmap(torch.func.jacrev(lambda uu, ss, c=c: c.transition(uu[None], ss[None])[0], argnums=1))(
                u, pts
            )
            assert float(J.abs().sum(-1).amax()) < 1.0
    with pytest.raises(ValueError, match="bound"):
        stabilize(m, bound=1.0)


def test_attractors_bad_input_and_divergence():
    m = elman(2, W=2 * torch.eye(2, dtype=torch.float64), nonlinearity="identity")
    rep = attractors(m, torch.zeros(1, dtype=torch.float64), n_init=8, steps=2000)
    assert rep.diverged == [8] and rep.count() == 0
    with pytest.raises(ValueError, match="features = 1"):
        attractors(m, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="Did you mean 'newton'"):
        attractors(m, torch.zeros(1), method="newtn")
    with pytest.raises(ValueError, match="n_init"):
        attractors(m, torch.zeros(1), n_init=0)
