"""lsc.measure: the report, the targets, the user's own modules, and bad input."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import time
import types

import pytest
import torch
from torch import nn

import lsc
from lsc.checks import NonFiniteError
from lsc.condition import MEASURE_ESTIMATOR
from lsc.grid import pick_time_points
from lsc.jacobian import Estimator
from lsc.models import ElmanCell, Stack, StackedRNN


def est(**fields) -> Estimator:
    """measure's own estimator with some fields changed."""
    return dataclasses.replace(MEASURE_ESTIMATOR, **fields)


def small_lstm(**kw) -> StackedRNN:
    torch.manual_seed(0)
    return StackedRNN("lstm", input_size=8, hidden_size=16, num_layers=3, output_size=10, **kw)


def test_report_lists_every_edge_and_is_json_ready():
    report = lsc.measure(small_lstm(), torch.randn(4, 12, 8))
    assert [(e.kind, e.layer) for e in report.edges] == [
        ("encoder", 0),
        ("time", 0),
        ("depth", 1),
        ("time", 1),
        ("depth", 2),
        ("time", 2),
        ("decoder", 2),
    ]
    for e in report.edges:  # auto time points: 4 samples x 2 steps, then x 4, x 8
        assert isinstance(e, lsc.EdgeStat)
        assert e.min <= e.mean <= e.max and e.std >= 0 and e.count in (8, 16, 32)
    assert max(e.count for e in report.edges) == 4 * len(report.time_points)
    assert report.edge("encoder", 0).shape == (8, 8)  # 32 x 8 Jacobian, rows subsampled
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d["edges"][0]) >= {"kind", "layer", "mean", "std", "min", "max"}
    assert d["method"] == "auto" and d["target"] == {"encoder": 0.5, "time": 0.5, "depth": 0.5}
    text = str(report)
    assert "decoder" in text and "LSC does not hold" in text


def test_user_lstm_measures_like_the_equivalent_stacked_rnn():
    torch.manual_seed(0)
    user = nn.LSTM(8, 40, num_layers=3, batch_first=True)
    ours = StackedRNN("lstm", input_size=8, hidden_size=40, num_layers=3)
    with torch.no_grad():
        for l, cell in enumerate(ours.cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(user, f"{name}_l{l}"))
    x = torch.randn(16, 30, 8)
    a = lsc.measure(user, x, estimator="arnoldi")
    b = lsc.measure(ours, x, estimator="arnoldi")
    assert [(e.kind, e.layer) for e in a.edges] == [(e.kind, e.layer) for e in b.edges]
    for ea, eb in zip(a.edges, b.edges):
        assert ea.mean == pytest.approx(eb.mean, rel=1e-3)
    dense = lsc.measure(user, x, estimator="dense")
    for ea, ed in zip(a.edges, dense.edges):
        assert ea.mean == pytest.approx(ed.mean, rel=0.02)


@pytest.mark.parametrize(
    "module",
    [
        lambda: nn.GRU(8, 24, num_layers=2, batch_first=True),
        lambda: nn.RNN(8, 24, num_layers=2, nonlinearity="relu", batch_first=True),
    ],
)
def test_user_gru_and_rnn_are_measured(module):
    torch.manual_seed(0)
    report = lsc.measure(module(), torch.randn(8, 20, 8))
    assert [(e.kind, e.layer) for e in report.edges] == [("encoder", 0), ("time", 0), ("depth", 1), ("time", 1)]
    assert all(e.mean > 0 for e in report.edges)


def test_time_first_module_takes_time_first_input():
    torch.manual_seed(0)
    tf = nn.GRU(5, 12, num_layers=2)
    bf = nn.GRU(5, 12, num_layers=2, batch_first=True)
    bf.load_state_dict(tf.state_dict())
    x = torch.randn(6, 20, 5)
    a = lsc.measure(bf, x)
    b = lsc.measure(tf, x.transpose(0, 1))
    assert [e.mean for e in a.edges] == pytest.approx([e.mean for e in b.edges])


def test_radius_of_a_scaled_orthogonal_linear_recurrence_is_exact():
    torch.manual_seed(0)
    cell = ElmanCell(3, 60, bias=False, nonlinearity="identity")
    with torch.no_grad():
        cell.weight_hh.copy_(0.5 * torch.linalg.qr(torch.randn(60, 60))[0])
    model = Stack([cell])
    report = lsc.measure(model, torch.randn(4, 10, 3), kinds=["time"], estimator="dense")
    assert report.edges[0].mean == pytest.approx(0.5, abs=1e-5)
    assert report.satisfies(0.5, tol=1e-4)
    assert not report.satisfies(1.0)
    assert report.target == {"encoder": 1.0, "time": 1.0, "depth": 1.0}  # one layer: classical target


def test_targets_resolve_per_kind():
    assert lsc.resolve_target(0.5, 3, 100) == {"encoder": 0.5, "time": 0.5, "depth": 0.5}
    assert lsc.resolve_target("auto", 3, 100)["time"] == 0.5
    assert lsc.resolve_target("auto", 1, 100)["time"] == 1.0
    unb = lsc.resolve_target("unbalanced", 3, 300)
    assert unb["depth"] == pytest.approx(3 / 303) and unb["time"] == pytest.approx(300 / 303)
    assert lsc.resolve_target({"time": 0.9, "decoder": 1}, 3, 10) == {"time": 0.9, "decoder": 1.0}
    for bad, msg in [
        (0, "> 0"),
        (-1, "> 0"),
        (float("nan"), "> 0"),
        ("half", "unknown target"),
        ({"tim": 1.0}, "Did you mean 'time'"),
        ({"time": 0}, "> 0"),
        ({}, "empty"),
    ]:
        with pytest.raises(ValueError, match=msg):
            lsc.resolve_target(bad, 3, 10)


ALL3 = ("encoder", "time", "depth")


@pytest.mark.parametrize(
    "target,L,T,expected",
    [
        # a number: every kind but the decoder, as a float
        (0.5, 3, 100, dict.fromkeys(ALL3, 0.5)),
        (1, 1, 1, dict.fromkeys(ALL3, 1.0)),
        (2.5, 4, 7, dict.fromkeys(ALL3, 2.5)),
        (1e-3, 2, 2, dict.fromkeys(ALL3, 1e-3)),
        # auto: 0.5 when the grid has depth and time (L > 1 and T > 1), else 1
        ("auto", 3, 100, dict.fromkeys(ALL3, 0.5)),
        ("auto", 2, 2, dict.fromkeys(ALL3, 0.5)),
        ("auto", 1, 100, dict.fromkeys(ALL3, 1.0)),
        ("auto", 3, 1, dict.fromkeys(ALL3, 1.0)),
        ("auto", 1, 1, dict.fromkeys(ALL3, 1.0)),
        # unbalanced: encoder and depth L / (L + T), time T / (L + T)
        ("unbalanced", 4, 12, {"encoder": 0.25, "time": 0.75, "depth": 0.25}),
        ("unbalanced", 3, 1, {"encoder": 0.75, "time": 0.25, "depth": 0.75}),
        ("unbalanced", 1, 1, {"encoder": 0.5, "time": 0.5, "depth": 0.5}),
        ("unbalanced", 1, 3, {"encoder": 0.25, "time": 0.75, "depth": 0.25}),
        ("unbalanced", 3, 300, {"encoder": 3 / 303, "time": 300 / 303, "depth": 3 / 303}),
        # a mapping: only the kinds it names (the decoder too), whatever the grid
        ({"time": 0.9, "decoder": 1}, 3, 10, {"time": 0.9, "decoder": 1.0}),
        ({"encoder": 2, "depth": 0.25}, 1, 1, {"encoder": 2.0, "depth": 0.25}),
        ({"time": 0.5}, 1, 1, {"time": 0.5}),
        (types.MappingProxyType({"depth": 0.75}), 5, 5, {"depth": 0.75}),
        (
            dict.fromkeys(("encoder", "time", "depth", "decoder"), 0.5),
            2,
            3,
            dict.fromkeys(("encoder", "time", "depth", "decoder"), 0.5),
        ),
    ],
)
def test_resolve_target_table(target, L, T, expected):
    got = lsc.resolve_target(target, L, T)
    assert got == expected
    assert all(type(v) is float for v in got.values())
    got["time"] = -1.0  # a fresh dict each call: the caller's mapping is never aliased
    assert lsc.resolve_target(target, L, T) == expected
    report = lsc.StabilityReport(
        edges=[],
        method="dense",
        quantity="radius",
        target={},
        num_layers=L,
        time_steps=T,
        time_points=(0,),
        batch_size=1,
        steps=1,
    )
    assert report.targets_for(target) == expected  # a report resolves for its own grid


NOT_A_TARGET = "target must be a number > 0, 'auto', 'unbalanced' or a mapping, got "


@pytest.mark.parametrize(
    "bad,message",
    [
        (0, "target must be a finite number > 0, got 0"),
        (-1, "target must be a finite number > 0, got -1"),
        (-0.5, "target must be a finite number > 0"),
        (0.0, "target must be a finite number > 0"),
        (float("nan"), "target must be a finite number > 0, got nan"),
        (float("inf"), "target must be a finite number > 0, got inf"),
        (True, NOT_A_TARGET + "True"),
        (False, NOT_A_TARGET + "False"),
        (None, NOT_A_TARGET + "None"),
        ([0.5], NOT_A_TARGET + "[0.5]"),
        ((0.5,), NOT_A_TARGET + "(0.5,)"),
        ("half", "unknown target 'half': use a number > 0, 'auto', 'unbalanced' or a {kind: value} mapping"),
        ("", "unknown target ''"),
        ("Auto", "unknown target 'Auto'"),
        ("0.5", "unknown target '0.5'"),  # text is parse_target's job, not resolve_target's
        ({}, "target mapping is empty; name at least one edge kind"),
        ({"tim": 1.0}, "unknown edge kind in target 'tim'. Did you mean 'time'?"),
        ({"layer": 1.0}, "unknown edge kind in target 'layer'"),
        ({"time": 0}, "target for time edges must be a finite number > 0, got 0"),
        ({"depth": -1}, "target for depth edges must be a finite number > 0"),
        ({"time": float("nan")}, "target for time edges must be a finite number > 0"),
        ({"decoder": float("inf")}, "target for decoder edges must be a finite number > 0"),
        ({"time": "0.5"}, "target for time edges must be a number > 0, got '0.5'"),
        ({"time": True}, "target for time edges must be a number > 0, got True"),
        ({"time": 0.5, "depht": 0.5}, "unknown edge kind in target 'depht'. Did you mean 'depth'?"),
    ],
)
def test_resolve_target_refuses_bad_targets(bad, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        lsc.resolve_target(bad, 3, 10)


def test_satisfies_checks_only_the_kinds_a_mapping_names():
    report = lsc.measure(small_lstm(), torch.randn(4, 12, 8))
    time_mean = report.edge("time", 1).mean
    assert not report.satisfies({"time": time_mean}, tol=1e-9)  # other time edges differ slightly
    worst = max(abs(report.edge("time", l).mean - time_mean) for l in range(3))
    assert report.satisfies({"time": time_mean}, tol=worst + 1e-9)
    assert [g is None for g in report.gaps({"time": 1.0})] == [e.kind != "time" for e in report.edges]
    with pytest.raises(ValueError, match="tol must be >= 0"):
        report.satisfies(0.5, tol=-1)


def test_token_models_measure_the_encoder_at_the_embedding():
    torch.manual_seed(0)
    model = StackedRNN("gru", input_size=6, hidden_size=16, num_layers=2, output_size=50, vocab_size=50)
    report = lsc.measure(model, torch.randint(0, 50, (4, 15)))
    assert report.edge("encoder", 0).shape == (6, 6)
    assert report.edge("decoder", 1).shape == (16, 16)


def test_measurement_is_deterministic_given_seed():
    model, x = small_lstm(), torch.randn(4, 12, 8)
    a = lsc.measure(model, x, estimator="arnoldi", seed=1).to_dict()
    b = lsc.measure(model, x, estimator="arnoldi", seed=1).to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def test_time_points_choice():
    model, x = small_lstm(), torch.randn(2, 12, 8)
    picks = lsc.measure(model, x, time_points=8).time_points
    assert len(picks) == 8 and picks[-1] == 11 and picks[0] > 0  # evenly spread, ending at the last step
    assert max(b - a for a, b in itertools.pairwise(picks)) <= 2
    assert lsc.measure(model, x, time_points="all").edges[1].count == 2 * 12
    assert lsc.measure(model, x, time_points=[0, 11]).time_points == (0, 11)
    with pytest.raises(ValueError, match=r"time points must lie in \[0, 12\)"):
        lsc.measure(model, x, time_points=[12])


def test_bad_input_gets_clear_errors():
    model = small_lstm()
    x = torch.randn(4, 12, 8)
    cases = [
        (lambda: lsc.measure(model, torch.randn(4, 12)), ValueError, "shape"),
        (lambda: lsc.measure(model, torch.randn(4, 12, 7)), ValueError, "7 features"),
        (lambda: lsc.measure(model, torch.full((4, 12, 8), float("inf"))), NonFiniteError, "non-finite"),
        (lambda: lsc.measure(model, torch.randn(0, 12, 8)), ValueError, "empty"),
        (lambda: lsc.measure(model, x, target=0), ValueError, "> 0"),
        (lambda: lsc.measure(model, x, target=-0.5), ValueError, "> 0"),
        (lambda: lsc.measure(model, x, kinds=["depht"]), ValueError, "Did you mean 'depth'"),
        (lambda: lsc.measure(model, x, estimator="eig"), ValueError, "unknown method"),
        (lambda: lsc.measure(nn.Linear(8, 8), x), TypeError, "found no recurrence in a Linear"),
        (lambda: lsc.measure(nn.LSTM(8, 8), x.tolist()), TypeError, "must yield tensors"),
        (lambda: lsc.measure(nn.LSTM(8, 8, batch_first=True), x, kinds=["depth"]), ValueError, "one layer"),
        (lambda: lsc.measure(nn.LSTM(8, 8, batch_first=True), x, kinds=["decoder"]), ValueError, "no decoder"),
    ]
    for call, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            call()
    with torch.no_grad():
        model.cells[1].weight_hh[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"cells\.1\.weight_hh"):
        lsc.measure(model, x)


def test_more_bad_input_cases():
    x = torch.randn(4, 12, 8)
    meta = StackedRNN("gru", input_size=8, hidden_size=16, num_layers=2, device="meta")
    with pytest.raises(ValueError, match="'meta' device"):
        lsc.measure(meta, x)
    with pytest.raises(ValueError, match="float32 or float64"):
        lsc.measure(nn.GRU(8, 16, batch_first=True).half(), x.half())
    for bad in (2.5, True):
        with pytest.raises(ValueError, match="time points"):
            lsc.measure(small_lstm(), x, time_points=bad)
    with pytest.raises(ValueError, match="no edge kinds"):
        lsc.measure(small_lstm(), x, kinds=[])
    user = nn.LSTM(8, 16, num_layers=2, batch_first=True)
    with torch.no_grad():
        user.weight_hh_l1[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="'weight_hh_l1'"):  # the user's own parameter name
        lsc.measure(user, x)


def test_custom_model_with_its_own_encoder():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
            self.cells = nn.ModuleList([lsc.models.GRUCell(8, 16), lsc.models.GRUCell(16, 16)])

    torch.manual_seed(0)
    report = lsc.measure(Custom(), torch.randn(4, 6, 5))
    assert report.edge("encoder", 0).shape == (5, 5)  # through the custom encoder, from the raw input
    assert [e.kind for e in report.edges] == ["encoder", "time", "depth", "time"]


def test_measurement_in_bounded_memory_matches_one_call(monkeypatch):
    model, x = small_lstm(), torch.randn(4, 12, 8)
    kinds = ["time", "depth"]  # square edges: no random sub-matrix, so dense values are exact
    whole = lsc.measure(model, x, estimator="dense", time_points="all", kinds=kinds)
    monkeypatch.setattr("lsc.jacobian.MEMORY_BUDGET", 1)  # one time point per estimator call
    parts = lsc.measure(model, x, estimator="dense", time_points="all", kinds=kinds)
    for a, b in zip(whole.edges, parts.edges):
        assert a.mean == pytest.approx(b.mean, rel=1e-6) and a.count == b.count == 4 * 12


def test_estimator_stream_differs_from_the_users_seeded_stream():
    gen = lsc.condition.estimator_generator(0, torch.device("cpu"))
    torch.manual_seed(0)
    assert not torch.equal(torch.randn(8), torch.randn(8, generator=gen))


def test_a_diverging_model_is_reported_not_measured_as_nan():
    torch.manual_seed(0)
    model = StackedRNN("elman", input_size=4, hidden_size=32, num_layers=2, nonlinearity="relu")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e3)
    with pytest.raises(NonFiniteError, match="diverges"):
        lsc.measure(model, torch.randn(4, 200, 4))


def test_auto_time_points_add_samples_until_every_edge_mean_is_precise():
    """time_points="auto" measures at 2 steps, then 4, then 8, and stops once the standard
    error of every edge mean is within ``precision`` of it; the pooled values are the same
    as measuring those steps directly."""
    model, x = small_lstm(), torch.randn(6, 40, 8, generator=torch.Generator().manual_seed(0))
    loose = lsc.measure(model, x, estimator="dense", precision=1e6)
    assert loose.time_points == pick_time_points(40, 2)
    assert all(e.count == 6 * 2 for e in loose.edges)
    strict = lsc.measure(model, x, estimator="dense", precision=1e-9)
    assert set(strict.time_points) == set(pick_time_points(40, 2) + pick_time_points(40, 4) + pick_time_points(40, 8))
    direct = lsc.measure(model, x, estimator="dense", time_points=list(strict.time_points))
    for a, b in zip(strict.edges, direct.edges):
        assert a.count == b.count == 6 * len(strict.time_points)
        assert a.mean == pytest.approx(b.mean, rel=1e-6)  # float32: the trajectories run in other segments


def test_an_edge_precise_early_is_not_measured_again():
    """An LRU's time Jacobian is diag(lambda) whatever the input, so its radius has no spread
    and is precise after the first round; the encoder edge's varies and goes on alone."""
    torch.manual_seed(0)
    model = StackedRNN("lru", input_size=8, hidden_size=8, num_layers=2)
    x = torch.randn(8, 40, 8, generator=torch.Generator().manual_seed(0))
    report = lsc.measure(model, x, estimator="dense", precision=1e-9)
    assert len(report.time_points) == 8  # some edge needed every round
    assert report.edge("encoder", 0).count == 8 * 8
    for layer in (0, 1):
        assert report.edge("time", layer).std == 0 and report.edge("time", layer).count == 8 * 2


def test_measure_runs_the_model_once_whatever_the_rounds(monkeypatch):
    """Every round of ``time_points="auto"`` reads its time points from one run of the model
    at all the schedule's points; the report is the same as with a run per round."""
    import lsc.condition as condition

    runs = []
    real = condition.trajectory

    def counted(stack, x, times):
        runs.append(tuple(times))
        return real(stack, x, times)

    monkeypatch.setattr(condition, "trajectory", counted)
    torch.manual_seed(0)
    model = StackedRNN("lru", input_size=8, hidden_size=8, num_layers=2)
    x = torch.randn(8, 40, 8, generator=torch.Generator().manual_seed(0))
    report = lsc.measure(model, x, estimator="dense", precision=1e-9)
    assert len(report.time_points) == 8 and runs == [report.time_points]  # three rounds, one run


def test_two_methods_with_one_seed_measure_the_same_samples():
    """Square sub-matrices come from their own generator: arnoldi and dense read the same
    encoder sub-matrix of every sample, so their means agree to the estimator's accuracy."""
    model, x = small_lstm(), torch.randn(8, 20, 8, generator=torch.Generator().manual_seed(1))
    kinds = ["encoder"]
    dense = lsc.measure(model, x, estimator="dense", kinds=kinds, time_points=[5, 19])
    krylov = lsc.measure(model, x, kinds=kinds, time_points=[5, 19], estimator=Estimator("arnoldi", 64, 0.0))
    assert krylov.edges[0].mean == pytest.approx(dense.edges[0].mean, rel=1e-6)


def test_report_records_its_grid_options_and_time():
    model, x = small_lstm(), torch.randn(3, 10, 8)  # batch 3, 10 steps: the two never confused
    start = time.perf_counter()
    report = lsc.measure(model, x, time_points=[2, 9])
    elapsed = time.perf_counter() - start
    assert (report.batch_size, report.time_steps, report.num_layers, report.time_points) == (3, 10, 3, (2, 9))
    assert (report.steps, report.seed, report.method, report.quantity) == (
        lsc.jacobian.DEFAULT_STEPS,
        0,
        "auto",
        "radius",
    )
    assert 0 < report.seconds <= elapsed
    other = lsc.measure(model, x, time_points=[2, 9], estimator=est(method="arnoldi", steps=7), seed=5)
    assert (other.steps, other.seed, other.method) == (7, 5, "arnoldi")
    seeded = lsc.measure(model, x, time_points=[2, 9], seed=0)  # the default seed is 0
    assert [e.mean for e in seeded.edges] == [e.mean for e in report.edges]


def test_measure_names_a_bad_count():
    model, x = small_lstm(), torch.randn(2, 6, 8)
    with pytest.raises(ValueError, match=r"^steps and probes must be >= 1 \(integers\), got steps=0, probes=8"):
        lsc.measure(model, x, estimator=est(steps=0))
    with pytest.raises(TypeError, match=r"estimator must be an lsc\.jacobian\.Estimator or a method name"):
        lsc.measure(model, x, estimator=3)


def test_norms_and_rms_use_the_whole_jacobian():
    """Only the radius takes a square sub-matrix; norm and rms read the whole (32 x 8) encoder."""
    model, x = small_lstm(), torch.randn(4, 6, 8)
    stack, xb = lsc.grid.prepare(model, x)
    found = lsc.grid.edges(stack, lsc.grid.trajectory(stack, xb, (2, 5)), lsc.KINDS)
    dense = {(e.kind, e.layer): e.jacobian.dense() for e in found}
    norm = lsc.measure(model, x, quantity="norm", estimator="dense", time_points=[2, 5])
    rms = lsc.measure(model, x, quantity="rms", estimator="dense", time_points=[2, 5])
    for e_norm, e_rms in zip(norm.edges, rms.edges):
        M = dense[(e_norm.kind, e_norm.layer)]
        assert e_norm.shape == e_rms.shape == tuple(M.shape[1:])
        want = torch.linalg.matrix_norm(M, ord=2)
        assert e_norm.mean == pytest.approx(float(want.mean()), rel=1e-5)
        want = torch.linalg.matrix_norm(M, ord="fro") / min(M.shape[1:]) ** 0.5
        assert e_rms.mean == pytest.approx(float(want.mean()), rel=1e-5)
    assert norm.edge("encoder", 0).shape == (32, 8)


def test_the_estimators_method_steps_and_probes_reach_the_measurement():
    model, x = small_lstm(), torch.randn(4, 6, 8)
    times = [2, 5]
    dense = lsc.measure(model, x, estimator="dense", time_points=times)
    crude = lsc.measure(
        model, x, estimator=est(method="arnoldi", steps=1), time_points=times
    )  # one Krylov vector: a Rayleigh quotient
    full = lsc.measure(model, x, estimator=est(method="arnoldi", steps=32), time_points=times)
    for d, c, f in zip(dense.edges, crude.edges, full.edges):
        assert c.method == f.method == "arnoldi" and d.method == "dense"
        assert f.mean == pytest.approx(d.mean, rel=1e-3)
        assert abs(c.mean - d.mean) > 1e-2 * d.mean, (d.kind, d.layer)
    exact = lsc.measure(model, x, quantity="rms", estimator=est(method="arnoldi", probes=64), time_points=times)
    sampled = lsc.measure(model, x, quantity="rms", estimator=est(method="arnoldi", probes=2), time_points=times)
    dense_rms = lsc.measure(model, x, quantity="rms", estimator="dense", time_points=times)
    for e, s, d in zip(exact.edges, sampled.edges, dense_rms.edges):
        assert e.method == "exact" and s.method == "hutchinson"  # every edge has a side of 8 or more
        assert e.mean == pytest.approx(d.mean, rel=1e-5)
        assert s.mean != pytest.approx(d.mean, rel=1e-5)  # two Gaussian probes: an estimate
