"""lsc.analysis and ``lsc analyze``: every number against a closed form or a dense /
naive computation on small sizes (issue 7)."""

from __future__ import annotations

import argparse
import copy
import json
import math

import numpy as np
import pytest
import torch

import lsc
from lsc.analysis import (
    attractors,
    gradient_grid,
    loss_slice,
    lyapunov_spectrum,
    pascal_rnn,
    path_count_bound,
    radius_sweep,
    smoothness,
    stabilize,
)
from lsc.analysis.steps import joint_step
from lsc.checks import NonFiniteError
from lsc.models import StackedRNN

try:
    from matplotlib import image as mpimg
except ImportError:  # the `plot` extra is missing: only the plot and CLI tests skip
    mpimg = None
needs_matplotlib = pytest.mark.skipif(mpimg is None, reason="needs matplotlib (pip install 'lsc[plot]')")


def _elman(width: int, *, input_size: int = 1, W: torch.Tensor | None = None, nonlinearity: str = "tanh",
           output_size: int | None = None, layers: int = 1, dtype=torch.float64) -> StackedRNN:
    m = StackedRNN("elman", input_size=input_size, hidden_size=width, num_layers=layers, output_size=output_size,
                   nonlinearity=nonlinearity).to(dtype)
    if W is not None:
        with torch.no_grad():
            for c in m.cells:
                c.weight_hh.copy_(W)
                c.bias_ih.zero_()
                c.bias_hh.zero_()
    return m


def _fixed_point(w: float) -> float:
    """The positive root of x = tanh(w x), w > 1, by Newton's method."""
    x = 1.0
    for _ in range(100):
        x -= (x - math.tanh(w * x)) / (1 - w * (1 - math.tanh(w * x) ** 2))
    return x


def _png_ok(path) -> None:
    img = mpimg.imread(path)
    assert img.shape[:2] == (480, 640), img.shape  # FIGSIZE x DPI, not cropped
    assert img.shape[2] in (3, 4)
    rgb = img[..., :3]
    assert float(rgb.std()) > 0.01  # something is drawn
    assert float((rgb < 0.9).mean()) > 0.005  # and not just a white page


# ------------------------------------------------------------------ PascalRNN, path counts


def test_pascal_rnn_equals_binomial_sums_exactly():
    one = pascal_rnn(depth=10, time=100, rho=1.0)
    # independent closed form: hockey stick, dy/dx_t = C(L + T-1-t, T-1-t)
    exact = np.array([math.comb(10 + 99 - t, 99 - t) for t in range(100)], dtype=np.float64)
    assert one.gradient[0] == 42634215112710 == math.comb(109, 99)  # ~4.3e13, the paper's "about 4e13"
    np.testing.assert_array_equal(one.gradient, exact)
    np.testing.assert_array_equal(one.bound, exact)
    half = pascal_rnn(depth=10, time=100, rho=0.5)
    nb = np.array([sum(math.comb(9 + k, k) * 0.5 ** (10 + k) for k in range(100 - t)) for t in range(100)])
    np.testing.assert_allclose(half.gradient, nb, rtol=1e-13)
    np.testing.assert_allclose(half.bound, nb, rtol=1e-13)
    assert abs(half.gradient[0] - 1.0) < 1e-12  # "about 1"
    assert half.gradient[-1] == 0.5**10  # the last input only reaches y through L depth edges
    other = pascal_rnn(depth=3, time=7, rho=0.7, seed=5)
    np.testing.assert_allclose(other.gradient, other.bound, rtol=1e-13)


def test_pascal_gradient_does_not_depend_on_the_input():
    a, b = pascal_rnn(4, 20, 0.9, seed=0), pascal_rnn(4, 20, 0.9, seed=1, batch=2)
    np.testing.assert_allclose(a.gradient, b.gradient, rtol=1e-14)


def test_path_count_bound():
    assert path_count_bound(5, 3) == 56.0
    assert path_count_bound(5, 3, 0.5, 0.5) == 56 / 256
    assert math.isclose(path_count_bound(5, 3, 0.3, 0.9, log=True), math.log(56 * 0.3**5 * 0.9**3))
    arr = path_count_bound(np.array([1, 2, 3]), 2)
    np.testing.assert_array_equal(arr, [3.0, 6.0, 10.0])
    # rho_l + rho_t = 1: every term is a binomial probability, and they sum to 1 over the splits of n steps
    n, p = 30, 0.3
    terms = path_count_bound(np.arange(n + 1), n - np.arange(n + 1), p, 1 - p)
    assert terms.max() <= 1.0 and math.isclose(terms.sum(), 1.0, rel_tol=1e-12)
    # along 100 dl = T the count reaches ~1e220 (lsc_paper.md 1.4), and overflows only in linear form
    assert 200 < path_count_bound(100, 10000, log=True) / math.log(10) < 260
    assert 1e200 < path_count_bound(100, 10000) < 1e260
    assert path_count_bound(200, 20000) == math.inf
    with pytest.raises(ValueError, match="depth"):
        path_count_bound(-1, 3)
    with pytest.raises(ValueError, match="rho_depth"):
        path_count_bound(1, 3, 0.0)


# ------------------------------------------------------------------ gradient grid


def test_gradient_grid_linear_closed_form():
    """Linear Elman, y_t = C s_t + c: dE/ds_t = sum_k (W^T)^k C^T 1 for E = sum of outputs."""
    torch.manual_seed(0)
    n, T = 4, 12
    W = torch.randn(n, n, dtype=torch.float64) * 0.4
    m = _elman(n, input_size=3, W=W, nonlinearity="identity", output_size=2)
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
        result = lsc.pretrain(model, None, target=target, kinds=("time", "depth"), max_steps=100, time_steps=40,
                              batch_size=8, tol=0.05, seed=0, progress=False)
        assert result.converged, (target, result.steps)  # 21 and 56 steps
        grids[target] = gradient_grid(model, x)
    flat, steep = grids[0.5], grids[1.0]
    early = slice(0, 20)  # away from the last steps, which only reach y through few paths
    assert flat.flatness(0, early) < 1.5
    assert steep.flatness(0, early) > 3.0
    assert steep.flatness(0) > 5 * flat.flatness(0)


# ------------------------------------------------------------------ Lyapunov


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
    Q = torch.linalg.qr(torch.randn(D.shape[0], D.shape[0], generator=torch.Generator().manual_seed(seed),
                                    dtype=torch.float64))[0]
    return Q @ D @ Q.T


def test_lyapunov_linear_normal_map_gives_log_moduli():
    W = _normal_matrix([(0.9, 0.7), (-0.7, None), (0.5, None), (0.3, 2.0)])
    eig = torch.linalg.eigvals(W).abs().sort(descending=True).values
    m = _elman(6, W=W, nonlinearity="identity")
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
    m = _elman(3, layers=2, nonlinearity="identity", input_size=3)
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


# ------------------------------------------------------------------ smoothness


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


# ------------------------------------------------------------------ attractors


def test_attractors_of_two_unit_tanh_with_known_fixed_points():
    w = 2.0
    xs = _fixed_point(w)
    m = _elman(2, W=w * torch.eye(2, dtype=torch.float64))
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
    xs = _fixed_point(w)
    m = _elman(2, W=-w * torch.eye(2, dtype=torch.float64))
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
            J = torch.func.vmap(torch.func.jacrev(lambda uu, ss: c.transition(uu[None], ss[None])[0], argnums=1))(u, pts)
            assert float(J.abs().sum(-1).amax()) < 1.0
    with pytest.raises(ValueError, match="bound"):
        stabilize(m, bound=1.0)


def test_attractors_bad_input_and_divergence():
    m = _elman(2, W=2 * torch.eye(2, dtype=torch.float64), nonlinearity="identity")
    rep = attractors(m, torch.zeros(1, dtype=torch.float64), n_init=8, steps=2000)
    assert rep.diverged == [8] and rep.count() == 0
    with pytest.raises(ValueError, match="features = 1"):
        attractors(m, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="Did you mean 'newton'"):
        attractors(m, torch.zeros(1), method="newtn")
    with pytest.raises(ValueError, match="n_init"):
        attractors(m, torch.zeros(1), n_init=0)


# ------------------------------------------------------------------ NaN mid-sequence


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


# ------------------------------------------------------------------ plots


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
        _png_ok(p)
    with pytest.raises(ValueError, match="png"):
        pascal_rnn(2, 3, 1.0).plot(tmp_path / "pascal.jpg")


# ------------------------------------------------------------------ CLI


def _cli(argv):
    """``lsc analyze ...`` through the real parser when lsc.cli wires it, else a parser of its own."""
    from lsc import cli
    from lsc.cli_analyze import add_commands

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "analyze" not in sub.choices:
        add_commands(sub)
    args = parser.parse_args(argv)
    return args.run(args)


SMALL = ["--cell", "gru", "--layers", "2", "--width", "6", "--input-size", "3", "--batch", "4", "--time", "40"]


@needs_matplotlib
@pytest.mark.parametrize("name", ["grid", "lyapunov", "smoothness", "attractors"])
def test_cli_analyze_writes_png_and_json(tmp_path, name, capsys):
    extra = {"lyapunov": ["--k", "4"], "smoothness": ["--iters", "4", "--slice-steps", "5", "--radii", "0.5,1.5"],
             "attractors": ["--n-init", "8", "--steps", "100"], "grid": []}[name]
    assert _cli(["analyze", name, *SMALL, *extra, "--out", str(tmp_path)]) == 0
    _png_ok(tmp_path / f"{name}.png")
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["model"]["class"] == "StackedRNN"
    key = {"grid": "values", "lyapunov": "exponents", "smoothness": "top", "attractors": "attractors"}[name]
    assert key in data
    assert "wrote" in capsys.readouterr().out


@needs_matplotlib
def test_cli_analyze_pretrain_and_checkpoint(tmp_path):
    assert _cli(["analyze", "grid", *SMALL, "--pretrain", "0.5", "--pretrain-seconds", "1", "--out", str(tmp_path / "a")]) == 0
    data = json.loads((tmp_path / "a" / "grid.json").read_text())
    assert data["pretrain"]["steps"] >= 1 and len(data["values"]) == 2
    model = StackedRNN("lstm", input_size=3, hidden_size=5, num_layers=2, output_size=2)
    lsc.save(model, tmp_path / "m.pt")
    assert _cli(["analyze", "lyapunov", "--checkpoint", str(tmp_path / "m.pt"), "--k", "3", "--time", "30",
                 "--out", str(tmp_path / "b")]) == 0
    data = json.loads((tmp_path / "b" / "lyapunov.json").read_text())
    assert len(data["exponents"]) == 3 and data["checkpoint"].endswith("m.pt")
    with pytest.raises(ValueError, match="recurrent"):
        _cli(["analyze", "attractors", "--cell", "ffn", "--out", str(tmp_path / "c")])
    with pytest.raises(ValueError, match="not a file"):
        _cli(["analyze", "grid", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "d")])
