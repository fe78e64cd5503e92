"""The stopping rule on scripted radii: running means, patience counted in *consecutive*
steps, the worst gap (not the mean) deciding, the decoder left out, plateau restarts that
restore the best weights and halve the learning rate, budgets, and no false convergence."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

import lsc
from lsc.models import StackedRNN
from lsc.pretraining import Pretrainer, Progress, Rule, advance, judge
from lsc.pretraining.step import Measured
from lsc.pretraining.stopping import running_means

GOAL = {"time": 0.5, "depth": 0.5}
EDGES = (("time", 0), ("depth", 1), ("time", 1))


def run_rule(rule: Rule, script: list[dict[tuple[str, int], float]]) -> tuple[list, Progress]:
    progress, verdicts = Progress(lr=1e-2), []
    for radii in script:
        v = judge(rule, progress, radii)
        verdicts.append(v)
        progress = advance(progress, v)
        if v.converged:
            break
    return verdicts, progress


def test_running_means_weigh_the_past_by_smoothing():
    ema = running_means({}, {("time", 0): 1.0}, 0.5)
    assert ema == {("time", 0): 1.0}  # first sight: the value itself
    ema = running_means(ema, {("time", 0): 0.0, ("depth", 1): 0.25}, 0.5)
    assert ema == {("time", 0): 0.5, ("depth", 1): 0.25}
    assert running_means(ema, {("time", 0): 0.0}, 0.0)[("time", 0)] == 0.0  # smoothing 0: this step only


def test_patience_counts_consecutive_steps_within_tol():
    rule = Rule(GOAL, EDGES, tol=0.02, patience=3, plateau=None, smoothing=0.0)
    good = {e: 0.5 for e in EDGES}
    bad = {**good, ("time", 1): 0.7}
    verdicts, _ = run_rule(rule, [good, good, bad, good, good, bad, good, good])
    assert [v.within for v in verdicts] == [1, 2, 0, 1, 2, 0, 1, 2] and not any(v.converged for v in verdicts)
    verdicts, progress = run_rule(rule, [bad, good, good, good, bad])
    assert verdicts[-1].converged and progress.step == 4  # the third consecutive good step


def test_the_worst_edge_decides_not_the_mean():
    """Two edges at target and one at 0.39: the mean gap is 0.037 < tol 0.05, the worst 0.11."""
    rule = Rule(GOAL, EDGES, tol=0.05, patience=2, plateau=None, smoothing=0.0)
    radii = {("time", 0): 0.5, ("depth", 1): 0.5, ("time", 1): 0.39}
    verdicts, _ = run_rule(rule, [radii] * 10)
    assert not any(v.converged for v in verdicts)
    assert verdicts[-1].worst == pytest.approx(0.11) and verdicts[-1].gap == pytest.approx(0.11 / math.sqrt(3))


def test_an_edge_not_yet_measured_keeps_the_run_from_converging():
    rule = Rule(GOAL, EDGES, tol=0.05, patience=1, plateau=None, smoothing=0.0)
    v = judge(rule, Progress(), {("time", 0): 0.5, ("depth", 1): 0.5})
    assert v.worst == math.inf and not v.converged


def test_plateau_restart_needs_no_1_percent_progress_for_plateau_steps():
    rule = Rule(GOAL, EDGES, tol=0.0, patience=1, plateau=3, smoothing=0.0)
    far = {e: 0.8 for e in EDGES}
    verdicts, progress = run_rule(rule, [far] * 4)
    assert [v.restart for v in verdicts] == [False, False, False, True]
    assert progress.lr == pytest.approx(5e-3) and progress.plateau_step == 3 and progress.ema == {}
    improving = [{e: 0.8 - 0.05 * i for e in EDGES} for i in range(6)]  # 1% better every step: never stuck
    verdicts, _ = run_rule(rule, improving)
    assert not any(v.restart for v in verdicts)


def test_each_restart_doubles_the_wait_for_the_next_plateau():
    """A noisy rms gap stops improving by 1% long before a slow edge has arrived (a GRU's
    encoder edge rose from 0.14 to 0.40 while restarts every 10 steps halved the learning
    rate to nothing): the waits grow 3, 6, 12 steps, not 3, 3, 3."""
    rule = Rule(GOAL, EDGES, tol=0.0, patience=1, plateau=3, smoothing=0.0)
    verdicts, progress = run_rule(rule, [{e: 0.8 for e in EDGES}] * 24)
    assert [i for i, v in enumerate(verdicts) if v.restart] == [3, 10, 23]
    assert progress.restarts == 3 and progress.lr == pytest.approx(1e-2 / 8)


class _Report:
    """What the fresh check after "converged" reads (a StabilityReport's ``gaps``; no
    ``edges`` with a spread, so the check reads one batch)."""

    def __init__(self, radii):
        self.radii = dict(radii)
        self.edges = []

    def gaps(self, goal):
        return [r - goal[k] if k in goal else None for (k, _), r in self.radii.items()]


def _scripted(monkeypatch, script, loss_scale=1e-3, fresh=None):
    """Pretrainer.measure replaced by radii read from ``script``; the loss moves every weight;
    no first move (the rule alone reads the script from step 0). The fresh measurement that
    confirms convergence reads ``fresh`` in turn (default: the script's radii of the step
    that converged); ``calls["fresh"]`` counts them."""
    import lsc.pretraining.loop as loop

    calls = {"n": 0, "fresh": 0}

    def fake(self, xb, step):
        radii = script[min(calls["n"], len(script) - 1)]
        calls["n"] += 1
        loss = loss_scale * sum(p.sum() for p in self.params)
        return Measured(dict(radii), float(loss.detach()), loss, (0,))

    def fake_measure(model, x, **kwargs):
        radii = fresh[min(calls["fresh"], len(fresh) - 1)] if fresh else script[min(calls["n"], len(script)) - 1]
        calls["fresh"] += 1
        return _Report(radii)

    monkeypatch.setattr(Pretrainer, "measure", fake)
    monkeypatch.setattr(Pretrainer, "first_move", lambda self, xb: [])
    monkeypatch.setattr(loop, "measure", fake_measure)
    return calls


def _model():
    torch.manual_seed(0)
    return StackedRNN("gru", input_size=3, hidden_size=4, num_layers=2, output_size=2)


def test_pretrain_ignores_the_decoder_in_its_stopping_rule(monkeypatch):
    radii = {("time", 0): 0.5, ("depth", 1): 0.5, ("time", 1): 0.5, ("decoder", 1): 3.0}
    _scripted(monkeypatch, [radii])
    res = lsc.pretrain(
        _model(),
        None,
        target=0.5,
        kinds=["time", "depth", "decoder"],
        tol=0.01,
        patience=3,
        max_steps=50,
        time_steps=5,
        progress=False,
    )
    assert res.stopped == "converged" and res.steps == 3


def test_convergence_is_confirmed_on_a_fresh_batch(monkeypatch):
    """The rule's "converged" (every running mean within tol for ``patience`` steps) is
    checked by a fresh measurement: an edge off there sends the run on with the patience
    count reset, and the next confirmation ends it; the message says so."""
    radii = {("time", 0): 0.5, ("depth", 1): 0.5, ("time", 1): 0.5}
    off = {("time", 0): 0.5, ("depth", 1): 0.5, ("time", 1): 0.56}
    calls = _scripted(monkeypatch, [radii], fresh=[off, radii])
    res = lsc.pretrain(
        _model(),
        None,
        target=0.5,
        kinds=["time", "depth"],
        tol=0.05,
        patience=3,
        max_steps=50,
        time_steps=5,
        progress=False,
    )
    assert res.stopped == "converged" and res.steps == 6 and calls["fresh"] == 2
    assert "1 earlier fresh check" in res.message
    calls = _scripted(monkeypatch, [radii], fresh=[off])
    res = lsc.pretrain(
        _model(),
        None,
        target=0.5,
        kinds=["time", "depth"],
        tol=0.05,
        patience=3,
        max_steps=10,
        time_steps=5,
        progress=False,
    )
    assert res.stopped == "max_steps" and not res.converged and calls["fresh"] == 4  # 3 checks, then the result's


def test_pretrain_does_not_converge_when_an_edge_cannot_reach_its_target(monkeypatch):
    radii = {("time", 0): 0.5, ("depth", 1): 0.5, ("time", 1): 0.61}
    _scripted(monkeypatch, [radii])
    res = lsc.pretrain(
        _model(),
        None,
        target=0.5,
        kinds=["time", "depth"],
        tol=0.05,
        max_steps=12,
        plateau=None,
        time_steps=5,
        progress=False,
    )
    assert res.stopped == "max_steps" and not res.converged and res.steps == 12


def test_a_plateau_restores_the_best_weights_and_halves_the_lr(monkeypatch):
    """Steps 0-1 improve, then the gap grows: at step 1 + plateau the run goes back to the
    weights of step 1 (the best), halves the learning rate and starts fresh moments."""
    near, far = {e: 0.55 for e in EDGES}, {e: 0.9 for e in EDGES}
    _scripted(monkeypatch, [{e: 0.6 for e in EDGES}, near] + [far] * 10)
    model = _model()
    seen = []
    res = lsc.pretrain(
        model,
        None,
        target=0.5,
        kinds=["time", "depth"],
        tol=0.0,
        max_steps=5,
        plateau=3,
        smoothing=0.0,
        lr=1e-2,
        time_steps=5,
        progress=False,
        callback=lambda r: seen.append({k: v.detach().clone() for k, v in model.state_dict().items()}),
    )
    lrs = [r["lr"] for r in res.history]
    assert lrs == [1e-2, 1e-2, 1e-2, 1e-2, 1e-2] and res.history[4]["step"] == 4
    # step 4 restarted (1 + 3 steps without progress): the model holds step 1's weights, the best
    assert res.best_step == 1
    for k, v in seen[4].items():
        assert torch.equal(v, res.best_state[k]), k
    assert not torch.equal(seen[3]["cells.0.weight_hh"], seen[4]["cells.0.weight_hh"])


def test_after_a_restart_the_next_step_runs_at_half_the_lr(monkeypatch):
    _scripted(monkeypatch, [{e: 0.6 for e in EDGES}] + [{e: 0.9 for e in EDGES}] * 10)
    res = lsc.pretrain(
        _model(),
        None,
        target=0.5,
        kinds=["time", "depth"],
        tol=0.0,
        max_steps=7,
        plateau=3,
        smoothing=0.0,
        lr=1e-2,
        time_steps=5,
        progress=False,
    )
    assert [r["lr"] for r in res.history] == [1e-2] * 4 + [5e-3] * 3


def test_max_seconds_stops_the_run(monkeypatch):
    import time

    calls = _scripted(monkeypatch, [{e: 0.9 for e in EDGES}])
    original = Pretrainer.measure

    def slow(self, xb, step):
        time.sleep(0.05)
        return original(self, xb, step)

    monkeypatch.setattr(Pretrainer, "measure", slow)
    res = lsc.pretrain(
        _model(),
        None,
        target=0.5,
        kinds=["time", "depth"],
        max_steps=10_000,
        max_seconds=0.5,
        time_steps=5,
        progress=False,
    )
    assert res.stopped == "max_seconds" and 1 <= res.steps <= 12 and calls["n"] == res.steps


def test_the_best_weights_follow_the_rms_gap():
    rule = Rule(GOAL, EDGES, tol=0.0, patience=1, plateau=None, smoothing=0.0)
    p = Progress()
    for radii, best in (({e: 0.7 for e in EDGES}, 0), ({e: 0.6 for e in EDGES}, 1), ({e: 0.65 for e in EDGES}, 1)):
        v = judge(rule, p, radii)
        p = advance(p, v)
        assert p.best_step == best
    assert replace(p, step=0).best_gap == pytest.approx(0.1)
