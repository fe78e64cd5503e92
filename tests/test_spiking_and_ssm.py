"""ALIF spiking cells and LRU state-space blocks: exact analytic radii, the parallel scan,
spikes and surrogates, learning, pre-training and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

import lsc
from lsc.models import ALIFCell, LRUCell, StackedRNN
from lsc.models.lru import linear_scan


def lru_stack(layers: int = 2, width: int = 16, **kw) -> StackedRNN:
    torch.manual_seed(0)
    return StackedRNN("lru", input_size=8, hidden_size=width, num_layers=layers, **kw)


def max_modulus(cell: LRUCell) -> float:
    lr, li = cell.eigenvalues()
    return float((lr**2 + li**2).sqrt().max())


@pytest.mark.parametrize("method,tol", [("dense", 1e-6), ("arnoldi", 5e-3)])
def test_lru_time_radius_is_max_abs_lambda(method, tol):
    model = lru_stack(layers=2, width=24)
    report = lsc.measure(model, torch.randn(4, 12, 8), kinds=["time"], estimator=method)
    for edge, cell in zip(report.edges, model.cells):
        assert edge.mean == pytest.approx(max_modulus(cell), rel=tol)
        assert edge.std == pytest.approx(0.0, abs=tol)  # diag(lambda): the same for every sample


def test_lru_ring_init_and_normalisation():
    torch.manual_seed(0)
    cell = LRUCell(8, 64, r_min=0.5, r_max=0.9, max_phase=0.3)
    lr, li = cell.eigenvalues()
    modulus = (lr**2 + li**2).sqrt()
    assert float(modulus.min()) >= 0.5 - 1e-6 and float(modulus.max()) <= 0.9 + 1e-6
    assert float(torch.atan2(li, lr).min()) >= 0 and float(torch.atan2(li, lr).max()) <= 0.3 + 1e-6
    torch.testing.assert_close(torch.exp(cell.gamma_log), (1 - modulus**2).sqrt())
    assert cell.state_size == 2 * cell.complex_size == 4 * 64


def test_lru_scan_equals_the_step_loop():
    model = lru_stack(layers=2, width=16)
    x = torch.randn(3, 1000, 8)
    scanned = model(x)
    stepped = super(StackedRNN, model).forward(x)  # one transition per step
    torch.testing.assert_close(scanned, stepped, atol=1e-5, rtol=1e-5)
    s = model.init_states(3)
    _, states = model(x[:, :400], return_states=True)
    y2, _ = model(x[:, 400:], states=states, return_states=True)  # continuing from a state
    torch.testing.assert_close(y2, scanned[:, 400:], atol=1e-5, rtol=1e-5)
    del s


def test_linear_scan_against_a_loop():
    torch.manual_seed(0)
    lr, li = torch.rand(5) * 0.9, torch.rand(5) * 0.3
    br, bi = torch.randn(2, 37, 5, dtype=torch.float64), torch.randn(2, 37, 5, dtype=torch.float64)
    hr, hi = linear_scan(lr.double(), li.double(), br, bi)
    xr = xi = torch.zeros(2, 5, dtype=torch.float64)
    for t in range(37):
        xr, xi = lr * xr - li * xi + br[:, t], lr * xi + li * xr + bi[:, t]
        torch.testing.assert_close(hr[:, t], xr)
        torch.testing.assert_close(hi[:, t], xi)


def test_alif_spikes_are_binary_and_gradients_flow_through_the_surrogate():
    torch.manual_seed(0)
    model = StackedRNN("alif", input_size=10, hidden_size=32, num_layers=2, output_size=3)
    x = torch.rand(4, 40, 10) * 3  # currents, not only 0/1 spikes
    cell_out = model.cells[0].forward_sequence(x)[0]
    assert set(cell_out.unique().tolist()) <= {0.0, 1.0} and float(cell_out.mean()) > 0
    loss = model(x).pow(2).mean()
    loss.backward()
    for name in ("weight_in", "weight_rec", "tau_v", "tau_a", "threshold", "beta"):
        assert float(getattr(model.cells[0], name).grad.abs().sum()) > 0, name
    w = model.cells[0].weight_rec * model.cells[0].rec_mask
    assert torch.equal(torch.diagonal(w), torch.zeros(32))


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "triangular", "sigmoid", "gaussian"])
def test_surrogate_derivatives_match_their_formulas(surrogate):
    from lsc.models.surrogate import spike

    u = torch.linspace(-3, 3, 61, dtype=torch.float64, requires_grad=True)
    z = spike(u, surrogate, dampening=0.5, sharpness=2.0)
    assert set(z.detach().unique().tolist()) == {0.0, 1.0}
    (g,) = torch.autograd.grad(z.sum(), u)
    v = u.detach()
    expected = {
        "fast_sigmoid": 0.5 / (1 + (2 * 2.0 * v).abs()) ** 2,
        "triangular": 0.5 * (1 - 2.0 * v.abs()).clamp_min(0),
        "sigmoid": 0.5 * 2.0 * torch.sigmoid(2.0 * v) * (1 - torch.sigmoid(2.0 * v)),
        "gaussian": 0.5 * torch.exp(-((2.0 * v) ** 2) / 2),
    }[surrogate]
    torch.testing.assert_close(g, expected)


def spiking_task(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes; class c makes its own group of 5 input channels fire (p = 0.3 per step)
    over 30 steps, on top of background spikes (p = 0.02) on all 20 channels."""
    labels = torch.randint(0, 4, (n,), generator=generator)
    x = (torch.rand(n, 30, 20, generator=generator) < 0.02).float()
    burst = (torch.rand(n, 30, 5, generator=generator) < 0.3).float()
    for c in range(4):
        rows = labels == c
        x[rows, :, 5 * c : 5 * c + 5] = torch.maximum(x[rows, :, 5 * c : 5 * c + 5], burst[rows])
    return x, labels


def test_two_layer_alif_learns_a_spiking_task():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = StackedRNN("alif", input_size=20, hidden_size=32, num_layers=2, output_size=4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        x, y = spiking_task(32, g)
        logits = model(x).mean(dim=1)  # the reference's mode accuracy: time-averaged logits
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = spiking_task(256, g)
    with torch.no_grad():
        accuracy = float((model(x).mean(dim=1).argmax(1) == y).float().mean())
    assert accuracy > 0.7  # chance is 0.25


@pytest.mark.parametrize("cell", ["alif", "lru"])
def test_pretraining_reaches_half_on_three_layers_of_64(cell):
    torch.manual_seed(0)
    model = StackedRNN(cell, input_size=16, hidden_size=64, num_layers=3)
    data = torch.rand(64, 30, 16) if cell == "alif" else torch.randn(64, 30, 16)
    lsc.pretrain(model, data, target=0.5, kinds=["time", "depth"], rescale=True, max_steps=150, progress=False)
    check = lsc.measure(model, data[:32], estimator="dense", target=0.5, kinds=["time", "depth"], seed=5)
    assert max(abs(g) for g in check.gaps()) <= 0.05, check.table()


def test_the_references_lru_method_reaches_its_target_by_the_multiplier_alone():
    """optimizer='none' + rescale=True: no gradient step, only clip(target / radius) per step
    (the reference's 500 heuristic steps for LRU stacks); the parameters the multiplier
    does not touch stay as they were."""
    torch.manual_seed(0)
    model = StackedRNN("lru", input_size=8, hidden_size=32, num_layers=2)
    data = torch.randn(64, 30, 8)
    untouched = {k: v.clone() for k, v in model.named_parameters() if "decoder" in k or "norm" in k}
    res = lsc.pretrain(
        model, data, target=0.5, kinds=["time"], optimizer="none", rescale=True, tol=0.05, max_steps=100, progress=False
    )
    assert res.converged, res.message
    check = lsc.measure(model, data[:32], estimator="dense", target=0.5, kinds=["time"], seed=5)
    assert max(abs(g) for g in check.gaps()) <= 0.05, check.table()
    assert all(torch.equal(v, dict(model.named_parameters())[k]) for k, v in untouched.items())
    with pytest.raises(ValueError, match="optimizer='none' takes no gradient step"):
        lsc.pretrain(model, data, optimizer="none", rescale=False, max_steps=1, progress=False)


def test_bad_input_and_options():
    model = StackedRNN("alif", input_size=6, hidden_size=8, num_layers=2)
    lsc.measure(model, torch.rand(2, 5, 6) * 2.5)  # non-binary inputs are currents: fine
    with pytest.raises(ValueError, match="non-finite"):
        lsc.measure(model, torch.full((2, 5, 6), float("nan")))
    with pytest.raises(ValueError, match="7 features but the model's first layer takes 6"):
        model(torch.rand(2, 5, 7))
    with pytest.raises(ValueError, match="tau_v must be a finite number > 0"):
        ALIFCell(4, 8, tau_v=-1.0)
    with pytest.raises(ValueError, match="tau_a must be a finite number > 0"):
        StackedRNN("alif", input_size=4, hidden_size=8, tau_a=0)
    with pytest.raises(ValueError, match="r_min < r_max"):
        LRUCell(4, 8, r_min=0.9, r_max=0.5)
    with pytest.raises(ValueError, match="r_min < r_max"):
        StackedRNN("lru", input_size=4, hidden_size=8, r_min=0.2, r_max=1.5)
    with pytest.raises(ValueError, match=r"unknown surrogate 'fast_sigmod'\. Did you mean 'fast_sigmoid'"):
        ALIFCell(4, 8, surrogate="fast_sigmod")


def test_reference_tau_v_is_available_and_forgets_at_once():
    cell = ALIFCell(4, 8, tau_v=0.1)
    assert float(torch.exp(-1 / cell.tau_v).max()) < 0.01  # the reference value: (almost) no membrane memory
    assert math.isclose(float(torch.exp(-1 / ALIFCell(4, 8).tau_v).mean()), math.exp(-1 / 20), rel_tol=0.1)
