"""lsc.analysis.smoothness: the top Hessian eigenvalue against a dense Hessian, loss slices."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import lsc
from lsc.analysis import (
    loss_slice,
    radius_sweep,
    smoothness,
)
from lsc.models import StackedRNN


def _tiny_elman_problem():
    torch.manual_seed(4)
    m = StackedRNN("elman", input_size=2, hidden_size=3, num_layers=1, output_size=1).double()
    with torch.no_grad():
        m.cells[0].weight_hh.mul_(2.0)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 8, 2, generator=g, dtype=torch.float64)
    y = torch.randn(3, 8, 1, generator=g, dtype=torch.float64)
    return m, x, y


def _dense_hessian_eigenvalues(m, x, y):
    """The Hessian of the MSE, written out by hand (independent of lsc's unrolling)."""
    c = m.cells[0]
    ps = [c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh, m.decoder.weight, m.decoder.bias]
    shapes = [p.shape for p in ps]
    flat0 = torch.cat([p.detach().reshape(-1) for p in ps])

    def loss(flat):
        parts = torch.split(flat, [math.prod(s) for s in shapes])
        Wi, Wh, bi, bh, C, cb = (q.view(s) for q, s in zip(parts, shapes))
        h = torch.zeros(x.shape[0], 3, dtype=torch.float64)
        err = 0.0
        for t in range(x.shape[1]):
            h = torch.tanh(x[:, t] @ Wi.T + bi + h @ Wh.T + bh)
            err = err + ((h @ C.T + cb - y[:, t]) ** 2).sum()
        return err / y.numel()

    H = torch.autograd.functional.hessian(loss, flat0)
    return torch.linalg.eigvalsh(H).numpy(), flat0.numel()


def test_smoothness_matches_dense_hessian():
    m, x, y = _tiny_elman_problem()
    eig, n = _dense_hessian_eigenvalues(m, x, y)
    top = np.abs(eig).max()
    full = smoothness(m, (x, y), iters=n)  # a full Krylov space: exact
    assert full.parameters == n == 25
    assert math.isclose(full.top, top, rel_tol=1e-8)
    assert math.isclose(full.max_eigenvalue, eig.max(), rel_tol=1e-8)
    assert math.isclose(full.min_eigenvalue, eig.min(), rel_tol=1e-6, abs_tol=1e-9)
    short = smoothness(m, (x, y), iters=12)  # extreme Ritz values converge first
    assert math.isclose(short.top, top, rel_tol=1e-4)
    power = smoothness(m, (x, y), iters=2000, method="power", tol=1e-12)
    assert math.isclose(power.top, top, rel_tol=1e-3)
    with pytest.raises(ValueError, match="Did you mean 'lanczos'"):
        smoothness(m, (x, y), method="lanczoz")


def test_smoothness_grows_sharply_past_radius_one_on_long_sequences():
    """Ribeiro et al.: contracting dynamics keep beta bounded in the sequence length,
    non-contracting ones make it grow with it (L_x^N). W_hh = r * orthogonal."""
    torch.manual_seed(0)
    m = StackedRNN("elman", input_size=2, hidden_size=8, num_layers=1, output_size=1).double()
    with torch.no_grad():
        torch.nn.init.orthogonal_(m.cells[0].weight_hh)
    radii = [0.5, 0.9, 1.5, 2.0]
    beta = {}
    for T in (10, 60):
        g = torch.Generator().manual_seed(1)
        x = 0.5 * torch.randn(4, T, 2, generator=g, dtype=torch.float64)
        y = torch.randn(4, T, 1, generator=g, dtype=torch.float64)
        beta[T] = radius_sweep(m, (x, y), radii, iters=12).top
    long = beta[60]
    assert np.all(np.diff(long) > 0)  # monotone in the radius
    assert long[3] > 100 * long[1]  # sharp growth past 1 on the long sequence
    assert beta[60][1] < 1.6 * beta[10][1]  # contracting: about the same for 6x longer sequences
    assert beta[60][3] > 50 * beta[10][3]  # expanding: grows with T
    assert math.isclose(lsc.analysis.recurrent_radius(m.cells[0]), 1.0, rel_tol=1e-9)  # the sweep used copies


def test_loss_slice_along_the_ray_and_random_directions():
    m, x, y = _tiny_elman_problem()
    sl = loss_slice(m, (x, y), "ray", 5, span=0.5)
    assert sl.values.shape == (5,) and sl.center == sl.values[2]
    for a, v in zip(sl.offsets[0], sl.values):  # theta + a theta = (1 + a) theta
        scaled = copy.deepcopy(m)
        with torch.no_grad():
            for p in scaled.parameters():
                p.mul_(1 + a)
        assert math.isclose(v, float(((scaled(x) - y) ** 2).mean()), rel_tol=1e-12)
    two = loss_slice(m, (x, y), ["random", "random"], 4, span=0.1)
    assert two.values.shape == (4, 4) and np.isfinite(two.values).all()
    flat = torch.zeros(25, dtype=torch.float64)
    zero = loss_slice(m, (x, y), [flat], 3)
    np.testing.assert_allclose(zero.values, sl.center, rtol=1e-12)
    with pytest.raises(ValueError, match="Did you mean 'random'"):
        loss_slice(m, (x, y), "randon")
    with pytest.raises(ValueError, match="25 entries"):
        loss_slice(m, (x, y), [torch.zeros(3)])
