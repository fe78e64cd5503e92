"""lsc.init: classical inits per gate block, chrono, rescaled Glorot, LRU ring, the mean-field
calculator against simulated wide networks, the critical init, check_lsc, errors, CLI."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

import lsc
from lsc.cli import main
from lsc.init import meanfield
from lsc.models import FFN, StackedRNN


# ---------------------------------------------------------------- FFN: the paper's claim
def _depth_mean(net: FFN, seed: int = 0) -> float:
    x = torch.randn(64, 784, generator=torch.Generator().manual_seed(seed))
    report = lsc.measure(net, x, kinds=["depth"], target=1.0)
    return sum(e.mean for e in report.edges) / len(report.edges)


@pytest.mark.parametrize(
    "activation,init,options",
    [("relu", "he", {}), ("tanh", "glorot", {}), ("linear", "glorot", {}), ("linear", "orthogonal", {})],
)
def test_standard_inits_put_a_deep_ffn_at_the_lsc(activation, init, options):
    net = lsc.init.apply(FFN(30, 128, activation, 784, 10), init, seed=0, **options)
    assert abs(_depth_mean(net) - 1.0) < 0.1


@pytest.mark.parametrize("activation,init,options", [("relu", "he", {"gain": 0.5}), ("tanh", "glorot", {"gain": 0.5})])
def test_badly_scaled_inits_do_not(activation, init, options):
    net = lsc.init.apply(FFN(30, 128, activation, 784, 10), init, seed=0, **options)
    assert abs(_depth_mean(net) - 1.0) > 0.3


def test_check_lsc_reports_the_gap():
    net = lsc.init.apply(FFN(10, 64, "linear", 32, 10), "orthogonal", seed=0)
    check = lsc.init.check_lsc(net, torch.randn(16, 32), kinds=["depth"], target=1.0)
    assert check.holds and abs(check.worst_gap) < 1e-3
    bad = lsc.init.check_lsc(
        lsc.init.apply(net, "orthogonal", gain=0.5, seed=0), torch.randn(16, 32), kinds=["depth"], target=1.0
    )
    assert not bad.holds and bad.worst_gap == pytest.approx(-0.5, abs=1e-3)
    assert "does not satisfy" in str(bad)


# ---------------------------------------------------------------- per-gate blocks
def test_glorot_uses_per_gate_fans_on_a_users_lstm():
    lstm = nn.LSTM(8, 64, num_layers=2)
    lsc.init.apply(lstm, "glorot", seed=0)
    for name, fan_in in (("weight_ih_l0", 8), ("weight_hh_l0", 64), ("weight_ih_l1", 64)):
        w = getattr(lstm, name).detach()
        bound = math.sqrt(6 / (fan_in + 64))  # per gate: (fan_in, 64), not (fan_in, 256)
        for block in w.chunk(4):
            assert block.abs().max() <= bound and block.abs().max() > 0.9 * bound
    assert lstm.bias_ih_l0.abs().max() == 0 and lstm.bias_hh_l1.abs().max() == 0


def test_orthogonal_blocks_are_orthogonal_and_seeded():
    a = lsc.init.apply(nn.GRU(5, 32), "orthogonal", seed=3)
    b = lsc.init.apply(nn.GRU(5, 32), "orthogonal", seed=3)
    for block in a.weight_hh_l0.detach().double().chunk(3):
        assert torch.allclose(block @ block.T, torch.eye(32, dtype=torch.float64), atol=1e-5)
    assert torch.equal(a.weight_hh_l0, b.weight_hh_l0) and torch.equal(a.weight_ih_l0, b.weight_ih_l0)


def test_init_on_a_stacked_rnn_reaches_the_cells_and_the_readout():
    m = StackedRNN("elman", input_size=4, hidden_size=16, num_layers=2, output_size=3, nonlinearity="relu")
    lsc.init.apply(m, "identity", seed=0)
    for cell in m.cells:
        assert torch.equal(cell.weight_hh.detach(), torch.eye(16))
        assert cell.weight_ih.abs().max() < 0.01
    assert torch.equal(m.decoder.weight.detach(), torch.eye(3, 16))


def test_chrono_sets_the_sum_of_the_two_bias_vectors():
    T = 100
    lstm = nn.LSTM(3, 40)
    w_before = lstm.weight_hh_l0.detach().clone()
    lsc.init.apply(lstm, "chrono", t_max=T, seed=0)
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    i, f, g, o = b.chunk(4)
    assert f.min() >= 0 and f.max() <= math.log(T - 1) + 1e-6 and f.std() > 0.5
    assert torch.allclose(i, -f) and g.abs().max() == 0 and o.abs().max() == 0
    assert lstm.bias_hh_l0.abs().max() == 0
    assert torch.equal(lstm.weight_hh_l0.detach(), w_before)
    gru = lsc.init.apply(nn.GRU(3, 40), "chrono", t_max=T, seed=0)
    r, z, n = (gru.bias_ih_l0 + gru.bias_hh_l0).detach().chunk(3)
    assert z.min() >= 0 and z.max() <= math.log(T - 1) + 1e-6 and r.abs().max() == 0 and n.abs().max() == 0


# ---------------------------------------------------------------- rescaled Glorot
def test_rescaled_glorot_scale_values_and_domain():
    assert lsc.init.rescaled_glorot_scale(256) == pytest.approx(0.888, abs=1e-3)
    assert lsc.init.rescaled_glorot_scale(512) == pytest.approx(0.937, abs=1e-3)
    assert lsc.init.rescaled_glorot_scale(1024) == pytest.approx(0.958, abs=1e-3)
    values = [lsc.init.rescaled_glorot_scale(n) for n in range(1, 3000)]
    assert all(math.isfinite(v) and 0 < v < 1 for v in values)
    assert all(b >= a for a, b in itertools.pairwise(values))  # non-decreasing in n
    for bad in (0, -3, 2.5, True, "8"):
        with pytest.raises(ValueError, match="integer >= 1"):
            lsc.init.rescaled_glorot_scale(bad)


def test_rescaled_glorot_small_n_has_the_exact_radius():
    for n in (1, 2, 16, 150):
        a = lsc.init.rescaled_glorot_matrix(n, torch.Generator().manual_seed(n))
        assert torch.linalg.eigvals(a).abs().max().item() == pytest.approx(lsc.init.rescaled_glorot_scale(n), rel=1e-9)


def test_glorot_spectral_radius_exceeds_one_and_rescaled_does_not():
    n, draws = 256, 200
    g = torch.Generator().manual_seed(0)
    glorot = torch.stack([torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n) for _ in range(draws)])
    rescaled = torch.stack([lsc.init.rescaled_glorot_matrix(n, g) for _ in range(draws)])
    p_glorot = (torch.linalg.eigvals(glorot).abs().amax(-1) > 1).double().mean().item()
    p_rescaled = (torch.linalg.eigvals(rescaled).abs().amax(-1) > 1).double().mean().item()
    assert p_glorot > 0.8 and p_rescaled < 0.05


def test_linear_recurrence_explodes_under_glorot_and_not_rescaled():
    n, T = 256, 3000
    g = torch.Generator().manual_seed(1)
    glorot = torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    while torch.linalg.eigvals(glorot).abs().max() <= 1.02:  # a typical Glorot draw (P(rho > 1) ~ 0.98)
        glorot = torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    rescaled = lsc.init.rescaled_glorot_matrix(n, g)
    noise = torch.randn(T, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    norms = {}
    for name, A in (("glorot", glorot), ("rescaled", rescaled)):
        h = torch.zeros(n, dtype=torch.float64)
        for t in range(T):
            h = A @ h + noise[t]
        norms[name] = h.norm().item()
    assert norms["glorot"] > 1e10 and norms["rescaled"] < 10


def test_rescaled_glorot_on_elman_and_lru():
    m = lsc.init.apply(
        StackedRNN("elman", input_size=4, hidden_size=256, nonlinearity="identity"), "rescaled_glorot", seed=0
    )
    W = m.cells[0].weight_hh.detach().double()
    assert W.std().item() * math.sqrt(256) == pytest.approx(lsc.init.rescaled_glorot_scale(256), rel=0.02)
    lru = lsc.init.apply(StackedRNN("lru", input_size=4, hidden_size=16), "rescaled_glorot", seed=0)
    re, im = lru.cells[0].eigenvalues()
    modulus = torch.sqrt(re**2 + im**2)
    assert modulus.max() < 1 and modulus.max() > 0.5
    # the measured time-edge radius is the largest |lambda| (the state is a real diagonal rotation)
    report = lsc.measure(lru, torch.randn(4, 12, 4), kinds=["time"], estimator="dense")
    assert report.edges[0].mean == pytest.approx(modulus.max().item(), rel=1e-4)


def test_lru_ring_puts_eigenvalues_on_the_ring():
    m = lsc.init.apply(
        StackedRNN("lru", input_size=4, hidden_size=32), "lru_ring", r_min=0.9, r_max=0.95, max_phase=0.1, seed=0
    )
    re, im = m.cells[0].eigenvalues()
    modulus, phase = torch.sqrt(re**2 + im**2), torch.atan2(im, re)
    assert modulus.min() >= 0.9 - 1e-6 and modulus.max() <= 0.95 + 1e-6
    assert phase.min() >= 0 and phase.max() <= 0.1 + 1e-6
    gamma = torch.exp(m.cells[0].gamma_log)
    assert torch.allclose(gamma, torch.sqrt(1 - modulus**2), atol=1e-5)


# ---------------------------------------------------------------- mean field vs simulation
def _lstm_sim(gates, n=1024, m=256, steps=160, burn=110, tied=True, seed=0):
    """Width-n LSTM with the theory's weight statistics on N(0, 1) input; tied=False redraws
    the weights every step (the regime the theory is exact in)."""
    g = torch.Generator().manual_seed(seed)
    names = "ifgo"

    def draw():
        W = {k: torch.randn(n, m, generator=g, dtype=torch.float64) * math.sqrt(gates[k].rho2 / m) for k in names}
        U = {k: torch.randn(n, n, generator=g, dtype=torch.float64) * math.sqrt(gates[k].sigma2 / n) for k in names}
        return W, U

    W, U = draw()
    h = c = o_prev = torch.zeros(n, dtype=torch.float64)
    qc, qh, m1 = [], [], []
    for t in range(steps):
        if not tied:
            W, U = draw()
        x = torch.randn(m, generator=g, dtype=torch.float64)
        u = {k: W[k] @ x + U[k] @ h + gates[k].mu for k in names}
        f, i, gg, o = torch.sigmoid(u["f"]), torch.sigmoid(u["i"]), torch.tanh(u["g"]), torch.sigmoid(u["o"])
        if t >= burn and tied and t % 10 == 0:  # partial Jacobian dc_t/dc_{t-1} with o_{t-1} held
            dh = o_prev * (1 - torch.tanh(c) ** 2)
            S = (
                (c * f * (1 - f))[:, None] * U["f"]
                + (gg * i * (1 - i))[:, None] * U["i"]
                + (i * (1 - gg**2))[:, None] * U["g"]
            )
            J = torch.diag(f) + S * dh[None, :]
            m1.append((J * J).sum().item() / n)
        c = f * c + i * gg
        h, o_prev = o * torch.tanh(c), o
        if t >= burn:
            qc.append((c**2).mean().item())
            qh.append((h**2).mean().item())
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return mean(qc), mean(qh), (mean(m1) if m1 else None)


def _gru_sim(gates, n=1024, m=256, steps=160, burn=110, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = {k: torch.randn(n, m, generator=g, dtype=torch.float64) * math.sqrt(gates[k].rho2 / m) for k in "rzn"}
    U = {k: torch.randn(n, n, generator=g, dtype=torch.float64) * math.sqrt(gates[k].sigma2 / n) for k in "rzn"}
    h = torch.zeros(n, dtype=torch.float64)
    q, m1 = [], []
    for t in range(steps):
        x = torch.randn(m, generator=g, dtype=torch.float64)
        r = torch.sigmoid(W["r"] @ x + U["r"] @ h + gates["r"].mu)
        z = torch.sigmoid(W["z"] @ x + U["z"] @ h + gates["z"].mu)
        v = U["n"] @ h
        cand = torch.tanh(W["n"] @ x + gates["n"].mu + r * v)
        if t >= burn and t % 10 == 0:
            tp = 1 - cand**2
            J = (
                torch.diag(z)
                + ((1 - z) * tp * r)[:, None] * U["n"]
                + ((1 - z) * tp * v * r * (1 - r))[:, None] * U["r"]
                + ((h - cand) * z * (1 - z))[:, None] * U["z"]
            )
            m1.append((J * J).sum().item() / n)
        h = (1 - z) * cand + z * h
        if t >= burn:
            q.append((h**2).mean().item())
    return sum(q) / len(q), sum(m1) / len(m1)


def test_lstm_meanfield_matches_a_wide_network():
    theory = meanfield.lstm()
    qc, qh, m1 = _lstm_sim(theory.gates)
    assert theory.q_state == pytest.approx(qc, rel=0.03)
    assert theory.q_h == pytest.approx(qh, rel=0.03)
    assert theory.m1 == pytest.approx(m1, rel=0.03)


def test_lstm_meanfield_with_a_strong_forget_gate():
    theory = meanfield.lstm(mu_f=3.0, sigma2_g=2.0)
    _, _, m1 = _lstm_sim(theory.gates)  # weights reused: m1 still matches
    assert theory.m1 == pytest.approx(m1, rel=0.03)
    qc, qh, _ = _lstm_sim(theory.gates, tied=False, steps=120, burn=80)  # weights redrawn: variances match too
    assert theory.q_state == pytest.approx(qc, rel=0.03)
    assert theory.q_h == pytest.approx(qh, rel=0.03)


def test_gru_meanfield_matches_a_wide_network():
    theory = meanfield.gru()
    q, m1 = _gru_sim(theory.gates)
    assert theory.q_state == pytest.approx(q, rel=0.03)
    assert theory.m1 == pytest.approx(m1, rel=0.03)
    strong = meanfield.gru(mu_z=3.0, sigma2_n=2.0)
    assert strong.m1 == pytest.approx(_gru_sim(strong.gates)[1], rel=0.03)


def test_meanfield_analytic_limits():
    # no recurrent weights into the o gate: the covariance-map slope is m1
    t = meanfield.lstm(sigma2_o=0.0, mu_f=2.0)
    assert t.chi == pytest.approx(t.m1, rel=1e-9)
    # no input, no bias: the zero state is the fixed point and the Jacobian is the leak diag(1/2) (plus U terms at 0)
    z = meanfield.lstm(q_x=0.0)
    assert z.q_state == 0.0 and z.m1 == pytest.approx(0.25 + 0.25 * 1.0 * 0.25, rel=1e-6)
    # the forget-gate time scale at zero variance is -1/ln sigma(mu)^2
    f = meanfield.lstm(mu_f=4.0, sigma2_f=0.0, rho2_f=0.0)
    assert f.xi_forget == pytest.approx(-1 / math.log((1 / (1 + math.exp(-4.0))) ** 2), rel=1e-9)
    assert f.spread >= 0


def test_meanfield_bad_input():
    with pytest.raises(ValueError, match="unknown mean-field option 'mu_q'"):
        meanfield.lstm(mu_q=1.0)
    with pytest.raises(ValueError, match="unknown gate"):
        meanfield.gru(gates={"f": {"mu": 1}})
    with pytest.raises(ValueError, match="sigma2 must be"):
        meanfield.lstm(sigma2_f=-1.0)
    with pytest.raises(ValueError, match="q_x"):
        meanfield.lstm(q_x=float("nan"))


# ---------------------------------------------------------------- critical
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_critical_covers_the_sequence(cell):
    model = StackedRNN(cell, input_size=8, hidden_size=64, num_layers=2, output_size=10)
    choice = lsc.init.critical(model, seq_len=784, seed=0)
    assert len(choice.layers) == 2
    for layer, cell_module in zip(choice.layers, model.cells):
        assert layer.theory.xi_forget >= 784 / 6
        assert math.exp(-6 / 784) <= layer.theory.m1 <= 1 + 1e-6  # at least the leak, at most critical
        if cell == "lstm":
            assert layer.theory.m1 == pytest.approx(1.0, abs=1e-4)
        keep = "f" if cell == "lstm" else "z"
        rows = slice(64, 128)  # f (LSTM) and z (GRU) are the second gate block
        assert torch.allclose(cell_module.bias_ih[rows], torch.full((64,), layer.gates[keep].mu))
        assert cell_module.bias_hh.abs().max() == 0
    assert choice.layers[1].q_x == pytest.approx(choice.layers[0].theory.q_h)
    assert "xi_forget" in str(choice)


def test_critical_on_a_users_lstm_brings_time_edges_near_one():
    x = torch.randn(16, 60, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    lstm = nn.LSTM(8, 128, batch_first=True)
    default = lsc.measure(lstm, x, kinds=["time"]).edges[0].mean
    lsc.init.apply(lstm, "critical", seq_len=784, seed=0)
    critical = lsc.measure(lstm, x, kinds=["time"]).edges[0].mean
    assert default < 0.8 and 0.98 < critical < 1.15  # 1.12 here (early, transient states); 1.05 over T = 200


# ---------------------------------------------------------------- errors
def test_unknown_init_name_suggests_one():
    with pytest.raises(ValueError, match="Did you mean 'glorot'"):
        lsc.init.apply(nn.Linear(3, 3), "glorott")


def test_init_that_does_not_apply_is_an_error_and_changes_nothing():
    m = StackedRNN("lstm", input_size=4, hidden_size=8, num_layers=2, output_size=3)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(TypeError, match=r"does not apply to LSTMCell.*Inits for it: .*chrono"):
        lsc.init.apply(m, "identity")
    with pytest.raises(TypeError, match="does not apply to LRUCell"):
        lsc.init.apply(StackedRNN("lru", input_size=4, hidden_size=8), "he")
    with pytest.raises(TypeError, match="does not apply"):
        lsc.init.apply(nn.Linear(4, 4), "chrono", t_max=10)
    with pytest.raises(TypeError, match="does not apply to ElmanCell"):
        lsc.init.apply(nn.RNN(4, 8), "critical", seq_len=50)
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bad_options_are_errors():
    with pytest.raises(ValueError, match=r"does not take option\(s\) \['t_max'\]"):
        lsc.init.apply(nn.Linear(3, 3), "glorot", t_max=5)
    with pytest.raises(ValueError, match="chrono needs t_max"):
        lsc.init.apply(nn.LSTM(3, 4), "chrono")
    with pytest.raises(ValueError, match="t_max must be a number > 2"):
        lsc.init.apply(nn.LSTM(3, 4), "chrono", t_max=1)
    with pytest.raises(ValueError, match="seq_len must be an integer"):
        lsc.init.critical(nn.LSTM(3, 4), seq_len=0)
    with pytest.raises(ValueError, match="distribution"):
        lsc.init.apply(nn.Linear(3, 3), "glorot", distribution="cauchy")


def test_available_lists_every_init_with_its_source():
    names = lsc.init.available()
    assert set(names) == {
        "glorot",
        "he",
        "orthogonal",
        "critical",
        "rescaled_glorot",
        "lru_ring",
        "chrono",
        "identity",
        "keras",
    }
    assert "Gilboa" in names["critical"].source and "Bar" in names["rescaled_glorot"].source
    assert "Keras" in names["keras"].source


# ---------------------------------------------------------------- CLI
def test_cli_init_list_and_measure_with_init(capsys):
    assert main(["init", "--list"]) == 0
    out = capsys.readouterr().out
    assert "rescaled_glorot" in out and "Tallec" in out
    code = main(
        [
            "measure",
            "--cell",
            "elman",
            "--nonlinearity",
            "identity",
            "--layers",
            "1",
            "--width",
            "16",
            "--time",
            "10",
            "--batch",
            "4",
            "--init",
            "orthogonal",
            "--kinds",
            "time",
            "--json",
        ]
    )
    assert code == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["edges"][0]["mean"] == pytest.approx(1.0, abs=1e-3)  # orthogonal linear recurrence
    assert main(["measure", "--init", "chrono", "--time", "20", "--layers", "1", "--width", "8", "--json"]) == 0
    capsys.readouterr()
    assert main(["measure", "--init", "glorott"]) == 2
    assert "Did you mean 'glorot'" in capsys.readouterr().err


def test_the_keras_init_is_kerass_lstm_and_gru_defaults():
    """Glorot-uniform over the whole stacked input kernel (fans I and G H), one orthogonal
    G H x H recurrent kernel, zero biases, LSTM forget bias 1 (unit_forget_bias)."""
    from lsc.models import StackedRNN

    for cell, gates in (("lstm", 4), ("gru", 3)):
        model = StackedRNN(cell, 10, 64, 2, 3)
        lsc.init.apply(model, "keras", seed=0)
        c = model.cells[1]
        bound = math.sqrt(6 / (64 + gates * 64))
        w = c.weight_ih.detach().double()
        assert float(w.abs().max()) <= bound and float(w.var()) == pytest.approx(bound**2 / 3, rel=0.05)
        q = c.weight_hh.detach().double()
        assert torch.allclose(q.T @ q, torch.eye(64, dtype=torch.float64), atol=1e-5)
        forget = c.bias_ih.detach()[64:128] if cell == "lstm" else None
        rest = torch.cat([c.bias_ih.detach()[:64], c.bias_ih.detach()[128:]]) if cell == "lstm" else c.bias_ih.detach()
        assert (forget is None or bool((forget == 1).all())) and float(rest.abs().max()) == 0
        assert float(c.bias_hh.abs().max()) == 0
        head = model.decoder.weight.detach()
        assert float(head.abs().max()) <= math.sqrt(6 / (64 + 3)) and float(model.decoder.bias.abs().max()) == 0
