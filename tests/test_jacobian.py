"""Every estimator against the exact dense computation, and against analytic cases."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from lsc.jacobian import LocalJacobian, arnoldi, estimate
from lsc.models import ElmanCell, GRUCell, LSTMCell

from .conftest import CELL_KINDS, flat_grad, random_cell, reference_dense, time_edge


def rel_err(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) / b).abs()


@pytest.mark.parametrize("kind,opts", CELL_KINDS)
def test_dense_and_products_match_autograd(kind, opts):
    J = time_edge(random_cell(kind, opts))
    ref = reference_dense(J)
    torch.testing.assert_close(J.dense(), ref)
    v = torch.randn(J.batch, J.shape[1], dtype=torch.float64)
    u = torch.randn(J.batch, J.shape[0], dtype=torch.float64)
    torch.testing.assert_close(J.matvec(v), torch.einsum("bmn,bn->bm", ref, v))
    torch.testing.assert_close(J.rmatvec(u), torch.einsum("bmn,bm->bn", ref, u))
    lin = J.linearize()
    torch.testing.assert_close(lin.matvec(v), torch.einsum("bmn,bn->bm", ref, v))


def test_square_submatrix_of_a_nonsquare_jacobian():
    cell = random_cell("lstm", {})
    x = torch.randn(8, cell.input_size, dtype=torch.float64)
    s = torch.randn(8, cell.state_size, dtype=torch.float64) * 0.3
    J = LocalJacobian.of(lambda u: cell.transition(u, s), x)  # encoder-like: 48 x 6
    assert J.shape == (cell.state_size, cell.input_size)
    sq = J.square(torch.Generator().manual_seed(0))
    assert sq.shape == (6, 6) and sq.rows is not None
    assert torch.equal(sq.rows, sq.rows.sort().values) and len(set(sq.rows.tolist())) == 6
    torch.testing.assert_close(sq.dense(), reference_dense(J)[:, sq.rows, :])
    wide = LocalJacobian.of(lambda h: cell.transition(x, torch.cat([h, s[:, 24:]], 1))[:, :6], s[:, :24])
    sq = wide.square(torch.Generator().manual_seed(0))  # 6 x 24 -> columns subsampled
    assert sq.shape == (6, 6) and sq.cols is not None
    torch.testing.assert_close(sq.dense(), reference_dense(wide)[:, :, sq.cols])


@pytest.mark.parametrize("method,tol", [("arnoldi", 0.05), ("power", 0.05)])
@pytest.mark.parametrize("kind,opts", CELL_KINDS)
def test_radius_estimators_match_dense(kind, opts, method, tol):
    cell = random_cell(kind, opts, width=48)
    J = time_edge(cell, batch=16)
    exact = torch.linalg.eigvals(reference_dense(J)).abs().amax(-1)
    steps = 20 if method == "arnoldi" else 40
    est = estimate(J, "radius", method, steps=steps, generator=torch.Generator().manual_seed(0))
    assert J.shape[0] > steps  # the estimate is not trivially exact
    assert rel_err(est, exact).median() <= tol


@pytest.mark.parametrize("method", ["arnoldi", "power"])
@pytest.mark.parametrize("kind,opts", CELL_KINDS)
def test_norm_estimators_match_dense(kind, opts, method):
    J = time_edge(random_cell(kind, opts, width=48), batch=16)
    exact = torch.linalg.matrix_norm(reference_dense(J), ord=2)
    est = estimate(J, "norm", method, steps=30, generator=torch.Generator().manual_seed(0))
    assert rel_err(est, exact).median() <= 0.05


@pytest.mark.parametrize("kind,opts", CELL_KINDS)
def test_rms_singular_value_matches_dense(kind, opts):
    J = time_edge(random_cell(kind, opts, width=48), batch=16)
    M = reference_dense(J)
    exact = torch.linalg.svdvals(M).pow(2).mean(-1).sqrt()
    torch.testing.assert_close(estimate(J, "rms", "dense"), exact)
    est = estimate(J, "rms", "arnoldi", probes=64, generator=torch.Generator().manual_seed(0))
    assert rel_err(est, exact).median() <= 0.05


def linear_elman(W: torch.Tensor) -> ElmanCell:
    n = W.shape[0]
    cell = ElmanCell(3, n, bias=False, nonlinearity="identity").double()
    with torch.no_grad():
        cell.weight_hh.copy_(W)
    return cell


@pytest.mark.parametrize("method", ["dense", "arnoldi", "power"])
def test_diagonal_linear_recurrence_has_radius_max_abs_lambda(method):
    lam = torch.linspace(-0.95, 0.6, 40, dtype=torch.float64)
    J = time_edge(linear_elman(torch.diag(lam)), batch=4)
    steps = 40 if method != "power" else 400  # power converges at rate 0.6/0.95 per step
    rho = estimate(J, "radius", method, steps=steps, rtol=0.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rho, torch.full_like(rho, 0.95), rtol=1e-6 if method != "power" else 2e-3, atol=0)


def test_tanh_rnn_at_zero_state_has_time_jacobian_w_hh():
    torch.manual_seed(0)
    cell = ElmanCell(3, 30, bias=False, nonlinearity="tanh").double()
    x = torch.zeros(5, 3, dtype=torch.float64)
    J = LocalJacobian.of(partial(cell.transition, x), cell.init_state(5))
    W = cell.weight_hh.detach()
    torch.testing.assert_close(J.dense(), W.expand(5, 30, 30))
    exact = torch.linalg.eigvals(W).abs().max()
    for method in ("dense", "arnoldi"):
        rho = estimate(J, "radius", method, steps=30)
        torch.testing.assert_close(rho, exact.expand(5))


@pytest.mark.parametrize("method", ["dense", "arnoldi", "power"])
def test_orthogonal_linear_recurrence_has_radius_one(method):
    Q, _ = torch.linalg.qr(torch.randn(80, 80, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    J = time_edge(linear_elman(Q), batch=4)
    rho = estimate(J, "radius", method, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rho, torch.ones_like(rho), rtol=1e-2 if method == "arnoldi" else 1e-9, atol=0)


@pytest.mark.parametrize("method", ["dense", "arnoldi", "power"])
@pytest.mark.parametrize("quantity", ["radius", "norm", "rms"])
def test_zero_jacobian_gives_zero_not_nan(method, quantity):
    J = time_edge(linear_elman(torch.zeros(70, 70, dtype=torch.float64)), batch=3)
    val = estimate(J, quantity, method, generator=torch.Generator().manual_seed(0))
    assert torch.equal(val, torch.zeros_like(val))


def test_arnoldi_basis_is_orthonormal_and_projects_the_operator():
    torch.manual_seed(0)
    A = torch.randn(4, 50, 50, dtype=torch.float64)
    V, H = arnoldi(lambda v: torch.einsum("bij,bj->bi", A, v), torch.randn(4, 50, dtype=torch.float64), 15)
    eye = torch.eye(15, dtype=torch.float64).expand(4, 15, 15)
    torch.testing.assert_close(V.transpose(1, 2) @ V, eye)
    torch.testing.assert_close(V.transpose(1, 2) @ A @ V, H)


def test_estimates_are_reproducible_given_a_generator():
    J = time_edge(random_cell("gru", {}, width=48))
    a = estimate(J, "radius", "arnoldi", generator=torch.Generator().manual_seed(3))
    b = estimate(J, "radius", "arnoldi", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind,opts", CELL_KINDS)
def test_radius_gradient_is_exact_when_krylov_space_is_full(kind, opts):
    cell = random_cell(kind, opts, width=12)
    J = time_edge(cell, batch=6)
    params = list(cell.parameters())
    g_dense = flat_grad(estimate(J, "radius", "dense").sum(), params)
    g_arn = flat_grad(estimate(J, "radius", "arnoldi", steps=J.shape[0], rtol=0.0).sum(), params)
    torch.testing.assert_close(g_arn, g_dense, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("cls", [LSTMCell, GRUCell, ElmanCell])
def test_radius_gradient_agrees_with_dense_on_a_larger_cell(cls):
    torch.manual_seed(0)
    cell = cls(6, 64).double()
    J = time_edge(cell, batch=16)
    assert J.shape[0] > 40
    params = list(cell.parameters())
    g_dense = flat_grad(estimate(J, "radius", "dense").mean(), params)
    g_arn = flat_grad(estimate(J, "radius", "arnoldi", steps=40, generator=torch.Generator().manual_seed(0)).mean(), params)
    cos = torch.nn.functional.cosine_similarity(g_dense, g_arn, dim=0)
    ratio = g_arn.norm() / g_dense.norm()
    assert cos > 0.9 and 0.5 < ratio < 2.0, (cos, ratio)


@pytest.mark.parametrize("quantity,method,options", [("norm", "arnoldi", {"steps": 30}), ("rms", "arnoldi", {"probes": 512})])
def test_norm_and_rms_gradients_agree_with_dense(quantity, method, options):
    torch.manual_seed(0)
    cell = GRUCell(6, 48).double()
    J = time_edge(cell, batch=8)
    params = list(cell.parameters())
    g_dense = flat_grad(estimate(J, quantity, "dense").mean(), params)
    g_est = flat_grad(estimate(J, quantity, method, generator=torch.Generator().manual_seed(0), **options).mean(), params)
    assert torch.nn.functional.cosine_similarity(g_dense, g_est, dim=0) > 0.9


def test_unknown_method_and_quantity_are_named():
    J = time_edge(random_cell("gru", {}))
    with pytest.raises(ValueError, match="unknown method 'arnoldy'.*Did you mean 'arnoldi'"):
        estimate(J, "radius", "arnoldy")
    with pytest.raises(ValueError, match="unknown quantity 'radious'"):
        estimate(J, "radious")
    with pytest.raises(ValueError, match="steps and probes must be >= 1"):
        estimate(J, "radius", "arnoldi", steps=0)
