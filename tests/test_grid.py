"""The grid against an independent reference: every edge's per-sample Jacobian by plain
autograd of the model's own step functions, with the stack run step by step here.

Points (lsc.grid's table): time l at s^l_{t-1}; depth l at s^{l-1}_t (the same step,
through layer l-1's output map, s^l_{t-1} held fixed); encoder at x_t (at the embedded
vector for token input); decoder at s^{L-1}_t.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lsc
from lsc.checks import NonFiniteError
from lsc.grid import KINDS, edges, prepare, trajectory
from lsc.jacobian import LocalJacobian
from lsc.models import GRUCell, Stack, StackedRNN

TIMES = (0, 3, 6)  # the first step (s_{t-1} = 0) and two later ones, not the last
T_STEPS = 8
BATCH = 3


def _scaled(model: nn.Module, scale: float = 2.0) -> nn.Module:
    """float64, weights scaled up (doubled) so every map is well inside its nonlinear range."""
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


def lstm_proj() -> nn.Module:  # state [h (4); c (12)]: encoder 16 x 5, decoder 7 x 4 (h only: c never reaches y)
    torch.manual_seed(0)
    return _scaled(StackedRNN("lstm", input_size=5, hidden_size=12, num_layers=3, output_size=7, proj_size=4))


def gru() -> nn.Module:  # every edge square (10 x 10)
    torch.manual_seed(1)
    return _scaled(StackedRNN("gru", input_size=10, hidden_size=10, num_layers=3, output_size=10))


def tokens() -> nn.Module:  # embedding 8 -> Elman tanh 8 x 2 -> 30 logits: encoder 8 x 8, decoder 30 x 8
    torch.manual_seed(2)
    return _scaled(
        StackedRNN(
            "elman", input_size=8, hidden_size=8, num_layers=2, output_size=30, vocab_size=30, nonlinearity="tanh"
        )
    )


def lstm_widths() -> nn.Module:  # states 12, 18, 10: depth edges 18 x 12 and 10 x 18, layer l-1's own output slice
    torch.manual_seed(4)
    return _scaled(StackedRNN("lstm", input_size=4, hidden_size=[6, 9, 5], output_size=3))


def lru() -> nn.Module:  # an LRU's output reads its input too (y = Re(C x) + D u): the depth edge needs u^{l-1}_t
    torch.manual_seed(5)
    return _scaled(StackedRNN("lru", input_size=6, hidden_size=4, num_layers=3, output_size=5), scale=1.0)


def custom_encoder() -> nn.Module:  # raw x (5) -> tanh(Linear) (8) -> GRU 16 x 2, no decoder
    torch.manual_seed(3)
    encoder = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
    return _scaled(Stack([GRUCell(8, 16), GRUCell(16, 16)], encoder, input_size=5))


MODELS = [
    pytest.param(lstm_proj, id="lstm-proj"),
    pytest.param(gru, id="gru"),
    pytest.param(tokens, id="tokens"),
    pytest.param(custom_encoder, id="custom-encoder"),
    pytest.param(lstm_widths, id="lstm-widths"),
    pytest.param(lru, id="lru"),
]


def model_input(model: nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    if isinstance(model.encoder, nn.Embedding):
        return torch.randint(0, model.encoder.num_embeddings, (BATCH, T_STEPS), generator=g)
    features = model.input_size
    return torch.randn(BATCH, T_STEPS, features, generator=g, dtype=torch.float64)


def per_sample_jacobian(fn, point: torch.Tensor) -> torch.Tensor:
    """(B, m, n): the diagonal blocks of the full batch Jacobian by torch.autograd.functional."""
    full = torch.autograd.functional.jacobian(fn, point)  # (B, m, B, n)
    return torch.stack([full[b, :, b, :] for b in range(point.shape[0])])


def reference(model: nn.Module, x: torch.Tensor, times=TIMES):
    """Run the stack by hand and differentiate each edge at each step of ``times``.

    Returns the recorded grid {name: [per-layer (K*B, .)]} and the Jacobians
    {(kind, layer): (K*B, m, n)}, time points stacked along the batch in sorted order.
    """
    cells = list(model.cells)
    L, B = len(cells), x.shape[0]
    decoder = model.decoder
    state = [c.init_state(B, dtype=torch.float64) for c in cells]
    grid = {"inputs": [[] for _ in cells], "previous": [[] for _ in cells], "states": [[] for _ in cells], "raw": []}
    jac: dict[tuple[str, int], list[torch.Tensor]] = {}
    for t in range(max(times) + 1):
        with torch.no_grad():
            raw = x[:, t]
            u = model.encoder(raw)
            prev, ins, new = list(state), [], []
            for l, c in enumerate(cells):
                ins.append(u)
                new.append(c.transition(u, prev[l]))
                u = c.output(u, new[l])
            state = new
        if t not in times:
            continue
        grid["raw"].append(raw)
        for l in range(L):
            grid["inputs"][l].append(ins[l])
            grid["previous"][l].append(prev[l])
            grid["states"][l].append(new[l])
        if isinstance(model.encoder, nn.Embedding):  # with respect to the embedded vector
            enc = per_sample_jacobian(lambda e, prev=prev: cells[0].transition(e, prev[0]), ins[0])
        else:  # through the encoder, from the raw input
            enc = per_sample_jacobian(lambda r, prev=prev: cells[0].transition(model.encoder(r), prev[0]), raw)
        jac.setdefault(("encoder", 0), []).append(enc)
        for l in range(L):
            if l > 0:
                below, cell, u_below, s_prev = cells[l - 1], cells[l], ins[l - 1], prev[l]
                depth = per_sample_jacobian(
                    lambda z, cell=cell, below=below, u_below=u_below, s_prev=s_prev: cell.transition(
                        below.output(u_below, z), s_prev
                    ),
                    new[l - 1],
                )
                jac.setdefault(("depth", l), []).append(depth)
            cell, u_l = cells[l], ins[l]
            jac.setdefault(("time", l), []).append(
                per_sample_jacobian(lambda s, cell=cell, u_l=u_l: cell.transition(u_l, s), prev[l])
            )
        if decoder is not None:
            top, u_top = cells[-1], ins[-1]
            full = per_sample_jacobian(lambda s, top=top, u_top=u_top: decoder(top.output(u_top, s)), new[-1])
            reads = full.abs().amax(dim=(0, 1)) > 0  # the state columns that reach y at all
            jac.setdefault(("decoder", L - 1), []).append(full[:, :, reads])
    cat = lambda parts: [torch.cat(p) for p in parts]  # noqa: E731
    recorded = {k: cat(v) for k, v in grid.items() if k != "raw"}
    recorded["raw"] = torch.cat(grid["raw"])
    return recorded, {k: torch.cat(v) for k, v in jac.items()}


def expected_edges(model: nn.Module) -> list[tuple[str, int]]:
    L = len(model.cells)
    out = [("encoder", 0)]
    for l in range(L):
        out += ([("depth", l)] if l > 0 else []) + [("time", l)]
    return out + ([("decoder", L - 1)] if model.decoder is not None else [])


@pytest.mark.parametrize("make", MODELS)
def test_trajectory_records_what_each_cell_read_and_wrote(make):
    model = make()
    x = model_input(model)
    stack, xb = prepare(model, x)
    traj = trajectory(stack, xb, (6, 0, 3, 3))  # any order, repeats: sorted and distinct
    recorded, _ = reference(model, x)
    assert traj.times == TIMES and traj.batch == BATCH
    torch.testing.assert_close(traj.raw, recorded["raw"], rtol=0, atol=0)
    for name in ("inputs", "previous", "states"):
        got = getattr(traj, name)
        assert len(got) == len(model.cells)
        for l, (a, b) in enumerate(zip(got, recorded[name])):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=lambda m, name=name, l=l: f"{name}[{l}]: {m}")
    part = traj.part(1, 3)  # time points 3 and 6 only
    assert part.times == (3, 6) and part.batch == BATCH
    torch.testing.assert_close(part.states[-1], traj.states[-1][BATCH:])
    torch.testing.assert_close(part.raw, traj.raw[BATCH:])


@pytest.mark.parametrize("make", MODELS)
def test_edges_match_autograd_jacobians_of_the_step_functions(make):
    model = make()
    x = model_input(model)
    stack, xb = prepare(model, x)
    kinds = [k for k in KINDS if k != "decoder" or model.decoder is not None]
    found = edges(stack, trajectory(stack, xb, TIMES), kinds)
    _, ref = reference(model, x)
    assert [(e.kind, e.layer) for e in found] == expected_edges(model) == list(ref)
    for e in found:
        want = ref[(e.kind, e.layer)]
        assert e.jacobian.shape == tuple(want.shape[1:]), (e.kind, e.layer)
        torch.testing.assert_close(
            e.jacobian.dense(), want, rtol=1e-10, atol=1e-12, msg=lambda m, e=e: f"{e.kind} {e.layer}: {m}"
        )


@pytest.mark.parametrize("make", MODELS)
def test_measured_dense_radii_are_those_of_the_autograd_jacobians(make, monkeypatch):
    """lsc.measure(method="dense") against eigvals of the autograd Jacobians: square edges
    exactly, non-square ones on the square sub-matrix the estimator drew (recorded)."""
    drawn: list[LocalJacobian] = []
    square = LocalJacobian.square

    def recording(self, *args, **kwargs):
        out = square(self, *args, **kwargs)
        if out is not self:
            drawn.append(out)
        return out

    monkeypatch.setattr(LocalJacobian, "square", recording)
    model = make()
    x = model_input(model)
    report = lsc.measure(model, x, estimator="dense", time_points=list(TIMES), seed=0)
    _, ref = reference(model, x)
    assert [(e.kind, e.layer) for e in report.edges] == list(ref)
    assert report.time_points == TIMES
    nonsquare = [k for k, M in ref.items() if M.shape[1] != M.shape[2]]
    assert len(drawn) == len(nonsquare)  # one draw per non-square edge, none for square ones
    for e in report.edges:
        M = ref[(e.kind, e.layer)]
        if (e.kind, e.layer) in nonsquare:
            (sub,) = [d for d in drawn if d.full_shape == tuple(M.shape[1:])]
            assert sub.point.shape[0] == M.shape[0]
            if sub.rows is not None:
                M = torch.stack([M[i][sub.rows[i]] for i in range(M.shape[0])])
            if sub.cols is not None:
                M = torch.stack([M[i][:, sub.cols[i]] for i in range(M.shape[0])])
        k = min(M.shape[1:])
        assert M.shape[1:] == (k, k) and e.shape == (k, k)
        radii = torch.linalg.eigvals(M).abs().amax(-1)
        assert e.count == len(TIMES) * BATCH and e.method == "dense"
        for stat, value in (
            ("mean", radii.mean()),
            ("min", radii.min()),
            ("max", radii.max()),
            ("std", radii.std(correction=0)),
        ):
            assert getattr(e, stat) == pytest.approx(float(value), rel=1e-9, abs=1e-12), (e.kind, e.layer, stat)


def test_a_depth_edge_differs_between_consecutive_steps():
    """The reference itself discriminates: d s^l_t / d s^{l-1}_t taken one step early
    (at s^{l-1}_{t-1}) is a different matrix, so the tests above can see that mistake."""
    model = gru()
    x = model_input(model)
    stack, xb = prepare(model, x)
    traj = trajectory(stack, xb, TIMES)
    _, ref = reference(model, x)
    cells = stack.cells
    early = LocalJacobian.of(
        lambda z: cells[1].transition(cells[0].output(traj.inputs[0], z), traj.previous[1]), traj.previous[0]
    ).dense()
    assert (early - ref[("depth", 1)]).abs().amax() > 1e-2


def test_a_diverging_layer_is_named_and_only_the_steps_asked_for_are_run():
    torch.manual_seed(0)
    model = StackedRNN("elman", input_size=4, hidden_size=16, num_layers=3, nonlinearity="relu").double()
    with torch.no_grad():
        model.cells[1].weight_hh.mul_(1e3)  # layer 1 alone blows up; layer 0 stays finite
    x = torch.randn(2, 300, 4, dtype=torch.float64)
    with pytest.raises(NonFiniteError, match=r"state of layer 1\b.*NaN/inf"):
        trajectory(model, x, [5, 299])
    trajectory(model, x, [0, 3])  # four steps stay finite: nothing beyond the last time point runs
    bad = torch.randn(2, 10, 4, dtype=torch.float64)
    bad[:, 6:] = float("inf")
    traj = trajectory(Stack([GRUCell(4, 8).double()]), bad, [2, 5])  # steps after 5 are never read
    assert traj.times == (2, 5) and traj.states[0].shape == (4, 8)
    with pytest.raises(NonFiniteError, match=r"state of layer 0\b.*NaN/inf"):
        trajectory(Stack([GRUCell(4, 8).double()]), bad, [2, 6])


def test_an_lstm_decoder_edge_reads_h_not_c():
    """An LSTM's cell state reaches the head only through the next step: the decoder edge
    is over h (its square sub-matrices never pick a structurally zero c column, which gave
    radii of exactly 0 to some samples)."""
    torch.manual_seed(0)
    model = StackedRNN("lstm", input_size=4, hidden_size=16, num_layers=2, output_size=3)
    report = lsc.measure(model, torch.randn(32, 10, 4), kinds=["decoder"], estimator="dense", time_points=4)
    (edge,) = report.edges
    assert edge.min > 0


def test_a_trajectory_at_some_of_its_time_points_is_the_trajectory_run_at_them():
    """:meth:`Trajectory.at` reads a subset of a run's time points: the same inputs, states
    and raw input as a run at only those points (to rounding: the steps between run fused)."""
    torch.manual_seed(0)
    stack, x = prepare(lsc.models.StackedRNN("gru", input_size=4, hidden_size=6, num_layers=2), torch.randn(3, 20, 4))
    whole = trajectory(stack, x, [3, 7, 12, 19])
    for times in ([7, 19], [3], [3, 7, 12, 19]):
        part, alone = whole.at(times), trajectory(stack, x, times)
        assert part.times == alone.times == tuple(times)
        for a, b in zip(
            part.inputs + part.previous + part.states + [part.raw],
            alone.inputs + alone.previous + alone.states + [alone.raw],
        ):
            assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match=r"no time points \[5\]"):
        whole.at([5, 7])
