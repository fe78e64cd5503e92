"""lsc.analysis.lyapunov: exponents against log-moduli of normal maps and a dense-Jacobian QR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lsc
from lsc.analysis import (
    attractors,
    lyapunov_spectrum,
)
from lsc.analysis.steps import joint_step
from lsc.models import StackedRNN

from .helpers import elman


def _normal_matrix(moduli_angles, seed=0):
    """Q diag-blocks Q^T: 2x2 scaled rotations (r, phi) and 1x1 reals (r, None)."""
    blocks = []
    for r, phi in moduli_angles:
        if phi is None:
            blocks.append(torch.tensor([[r]], dtype=torch.float64))
        else:
            c, s = math.cos(phi), math.sin(phi)
            blocks.append(r * torch.tensor([[c, -s], [s, c]], dtype=torch.float64))
    D = torch.block_diag(*blocks)
    Q = torch.linalg.qr(
        torch.randn(D.shape[0], D.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )[0]
    return Q @ D @ Q.T


def test_lyapunov_linear_normal_map_gives_log_moduli():
    W = _normal_matrix([(0.9, 0.7), (-0.7, None), (0.5, None), (0.3, 2.0)])
    eig = torch.linalg.eigvals(W).abs().sort(descending=True).values
    m = elman(6, W=W, nonlinearity="identity")
    x = torch.zeros(2, 400, 1, dtype=torch.float64)  # the state stays at 0: D_t = W
    spec = lyapunov_spectrum(m, x, k=6, warmup=50)
    np.testing.assert_allclose(spec.exponents, np.log(eig.numpy()), atol=5e-3)
    assert spec.exponents.shape == (6,) and spec.history.shape == (350, 6)
    # one layer: the per-layer spectrum is the same computation
    per = lyapunov_spectrum(m, x, k=6, warmup=50, per_layer=True)
    np.testing.assert_allclose(per.exponents[0], spec.exponents, rtol=1e-12)


def test_lyapunov_stack_is_union_of_layers_for_a_linear_cascade():
    W0 = _normal_matrix([(0.9, None), (0.4, 1.0)], seed=1)
    W1 = _normal_matrix([(0.7, 0.3), (0.2, None)], seed=2)
    m = elman(3, layers=2, nonlinearity="identity", input_size=3)
    with torch.no_grad():
        for c, W in zip(m.cells, (W0, W1)):
            c.weight_hh.copy_(W)
    x = torch.zeros(1, 500, 3, dtype=torch.float64)
    joint = lyapunov_spectrum(m, x, k=6, warmup=100)
    per = lyapunov_spectrum(m, x, k=3, warmup=100, per_layer=True)
    union = np.sort(per.exponents.reshape(-1))[::-1]
    np.testing.assert_allclose(joint.exponents, union, atol=5e-3)
    np.testing.assert_allclose(union, np.log([0.9, 0.7, 0.7, 0.4, 0.4, 0.2]), atol=5e-3)


def test_lyapunov_gru_matches_dense_jacobian_qr():
    torch.manual_seed(3)
    m = StackedRNN("gru", input_size=3, hidden_size=5, num_layers=2).double()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(3)
    B, T, k, warmup = 3, 60, 4, 10
    x = torch.randn(B, T, 3, dtype=torch.float64)
    Q0 = torch.linalg.qr(torch.randn(B, 10, k, dtype=torch.float64))[0]
    spec = lyapunov_spectrum(m, x, k=k, warmup=warmup, basis=Q0)

    def step_one(x_t, s):  # one sample, for jacrev
        return joint_step(m, x_t.unsqueeze(0), s.unsqueeze(0)).squeeze(0)

    S = torch.zeros(B, 10, dtype=torch.float64)
    Q, total = Q0.clone(), torch.zeros(B, k, dtype=torch.float64)
    with torch.no_grad():
        for t in range(T):
            J = torch.func.vmap(torch.func.jacrev(step_one, argnums=1))(x[:, t], S)  # (B, N, N) dense
            Q, R = torch.linalg.qr(J @ Q)
            if t >= warmup:
                total += R.diagonal(dim1=-2, dim2=-1).abs().log()
            S = joint_step(m, x[:, t], S)
    expect = (total / (T - warmup)).mean(0)
    np.testing.assert_allclose(spec.exponents, expect.numpy(), rtol=1e-10, atol=1e-12)


def test_lyapunov_bad_input():
    m = StackedRNN("gru", input_size=3, hidden_size=4, num_layers=2)
    x = torch.randn(2, 30, 3)
    with pytest.raises(ValueError, match="k = 9"):
        lyapunov_spectrum(m, x, k=9, warmup=5)
    with pytest.raises(ValueError, match="smallest layer"):
        lyapunov_spectrum(m, x, k=5, warmup=5, per_layer=True)
    with pytest.raises(ValueError, match="warmup"):
        lyapunov_spectrum(m, x, k=2, warmup=30)
    with pytest.raises(ValueError, match="basis"):
        lyapunov_spectrum(m, x, k=2, warmup=5, basis=torch.eye(3, 2))
    ffn = lsc.models.FFN(depth=3, width=4, input_size=3, output_size=None)
    with pytest.raises(ValueError, match="feed-forward"):
        lyapunov_spectrum(ffn, torch.randn(2, 3), k=2, warmup=0)
    with pytest.raises(ValueError, match="feed-forward"):
        attractors(ffn, torch.zeros(3))
