"""lsc.pretrain: reaches the targets (checked by an independent dense measurement),
changes the user's own module in place, is deterministic, resumes, and refuses bad input."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import lsc
from lsc.checks import NonFiniteError
from lsc.cli import main
from lsc.models import FFN, StackedRNN
from lsc.pretraining.loop import CONFIRM_SAMPLES


def rnn(cell: str, layers: int = 5, width: int = 64) -> StackedRNN:
    torch.manual_seed(0)
    opts = {"nonlinearity": "tanh"} if cell == "elman" else {}
    return StackedRNN(cell, input_size=8, hidden_size=width, num_layers=layers, **opts)


def worst_time_depth_gap(model: nn.Module, target, T: int = 20) -> float:
    """An independent check on fresh data from the training distribution."""
    check = lsc.measure(model, torch.randn(32, T, 8), estimator="dense", target=target, kinds=["time", "depth"], seed=7)
    return max(abs(g) for g in check.gaps())


def check_pretraining(cell: str, target, layers: int, width: int, max_steps: int = 300, kinds=None) -> None:
    model = rnn(cell, layers, width)
    result = lsc.pretrain(
        model, torch.randn(64, 20, 8), target=target, kinds=kinds, max_steps=max_steps, progress=False
    )
    assert result.steps > 0 and result.report is not None
    assert worst_time_depth_gap(model, target) <= 0.05, result.message


@pytest.mark.parametrize("cell", ["gru", "lstm", "elman"])
def test_pretraining_reaches_half_on_a_small_stack(cell):
    # time and depth edges settle within ~60 steps; the 8 x 8 encoder blocks keep the run
    # from declaring convergence (their spread holds their mean a little below target)
    check_pretraining(cell, 0.5, layers=3, width=32, max_steps=60)


@pytest.mark.slow
@pytest.mark.parametrize("target", [0.5, 1.0, "unbalanced"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "elman"])
def test_pretraining_reaches_every_target_on_five_layers_of_64(cell, target):
    # time and depth only: with 8 inputs the 8 x 8 encoder block competes with layer 0's time
    # edge (docs/design.md 9); with it, a tanh Elman at target 1 ends at time:0 = 0.947
    check_pretraining(cell, target, layers=5, width=64, kinds=("time", "depth"))


def test_unbalanced_targets_follow_depth_and_length():
    model = rnn("gru", layers=3, width=32)
    result = lsc.pretrain(model, torch.randn(64, 20, 8), target="unbalanced", max_steps=300, progress=False)
    assert result.target == {"encoder": 3 / 23, "time": 20 / 23, "depth": 3 / 23}
    assert worst_time_depth_gap(model, "unbalanced") <= 0.05


def test_users_lstm_is_pretrained_in_place_and_stays_an_lstm():
    torch.manual_seed(0)
    user = nn.LSTM(8, 32, num_layers=3, batch_first=True)
    before = {k: v.clone() for k, v in user.state_dict().items()}
    result = lsc.pretrain(user, torch.randn(64, 20, 8), target=0.5, max_steps=60, progress=False)
    assert type(user) is nn.LSTM
    assert any(not torch.equal(before[k], v) for k, v in user.state_dict().items())
    for k, v in result.best_state.items():
        assert torch.equal(v, user.state_dict()[k])  # the best weights are the ones left in the model
    assert worst_time_depth_gap(user, 0.5) <= 0.05
    out, _ = user(torch.randn(2, 5, 8))  # still runs as a plain nn.LSTM
    assert out.shape == (2, 5, 32)


@pytest.mark.parametrize(
    "activation", ["relu", pytest.param("sin", marks=pytest.mark.slow), pytest.param("cos", marks=pytest.mark.slow)]
)
def test_deep_ffn_reaches_radius_one_on_every_layer(activation):
    torch.manual_seed(0)
    net = FFN(depth=30, width=128, activation=activation, input_size=64, output_size=10)
    lsc.pretrain(net, torch.randn(512, 64), target=1.0, max_steps=400, progress=False)
    check = lsc.measure(net, torch.randn(256, 64), estimator="dense", target=1.0)
    assert max(abs(g) for g in check.gaps() if g is not None) <= 0.05


def test_one_edge_per_step_as_the_reference_does_for_ffns():
    torch.manual_seed(0)
    net = FFN(depth=6, width=32, activation="tanh", input_size=16, output_size=4)
    res = lsc.pretrain(net, torch.randn(128, 16), target=1.0, edges_per_step=1, max_steps=40, progress=False)
    assert all(len(row["radii"]) == 1 for row in res.history)
    assert len({key for row in res.history for key in row["radii"]}) > 3  # a random edge each step


def test_pretraining_is_deterministic_given_seed():
    results = []
    for _ in range(2):
        model = rnn("gru", layers=2, width=16)
        res = lsc.pretrain(model, None, batch_size=8, time_steps=10, max_steps=15, seed=3, progress=False)
        results.append((res.history[-1]["radii"], [p.clone() for p in model.parameters()]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        assert torch.equal(a, b)


def test_data_may_be_a_dataloader_of_tuples():
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(40, 12, 8), torch.zeros(40)), batch_size=10
    )
    res = lsc.pretrain(rnn("gru", layers=2, width=16), data, max_steps=5, progress=False)
    assert res.steps == 5 and len(res.history) == 5


def test_decoder_takes_part_on_request_with_its_own_target():
    torch.manual_seed(0)
    model = StackedRNN("gru", input_size=8, hidden_size=16, num_layers=2, output_size=5)
    res = lsc.pretrain(model, None, kinds=["time", "decoder"], max_steps=3, progress=False)
    assert res.target == {"time": 0.5, "decoder": 1.0}
    assert set(res.history[0]["radii"]) == {"time:0", "time:1", "decoder:1"}


def test_bad_input_gets_clear_errors():
    model = rnn("gru", layers=2, width=16)
    cases = [
        (lambda: lsc.pretrain(model, torch.randn(0, 10, 8)), ValueError, "empty"),
        (lambda: lsc.pretrain(model, torch.randn(16, 10, 5)), ValueError, "5 features"),
        (lambda: lsc.pretrain(model, [], max_steps=2), ValueError, "no batches"),
        (lambda: lsc.pretrain(model, None, target=0), ValueError, "> 0"),
        (lambda: lsc.pretrain(model, None, target=-1.0), ValueError, "> 0"),
        (lambda: lsc.pretrain(model, None, optimizer="adamm"), ValueError, "Did you mean 'adam'"),
        (lambda: lsc.pretrain(model, None, target={"time": 0.5}), ValueError, "no value for the encoder, depth"),
        (lambda: lsc.pretrain(model, None, lr=0), ValueError, "lr"),
    ]
    for call, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            call()
    frozen = rnn("gru", layers=2, width=16).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        lsc.pretrain(frozen, None)


def test_divergence_restores_the_best_weights_and_says_so():
    torch.manual_seed(0)
    model = StackedRNN("elman", input_size=8, hidden_size=16, num_layers=2, nonlinearity="relu")
    res = lsc.pretrain(model, torch.randn(16, 30, 8), optimizer="sgd", lr=1e6, max_steps=50, progress=False)
    assert res.stopped == "diverged" and "restored the best weights" in res.message
    assert all(torch.isfinite(p).all() for p in model.parameters())
    for k, v in res.best_state.items():
        assert torch.equal(v, model.state_dict()[k])


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    data = torch.randn(32, 12, 8)

    def stop_at(step):
        def cb(row):
            if row["step"] == step:
                raise KeyboardInterrupt

        return cb

    model = rnn("gru", layers=2, width=16)
    first = lsc.pretrain(model, data, max_steps=12, tol=0.0, checkpoint=tmp_path, progress=False, callback=stop_at(5))
    assert first.stopped == "interrupted" and (tmp_path / "checkpoint.pt").exists()
    resumed_model = rnn("gru", layers=2, width=16)
    second = lsc.pretrain(resumed_model, data, max_steps=12, tol=0.0, checkpoint=tmp_path, progress=False)
    assert second.steps == 12 and [r["step"] for r in second.history] == list(range(12))
    straight = rnn("gru", layers=2, width=16)
    lsc.pretrain(straight, data, max_steps=12, tol=0.0, progress=False)
    for a, b in zip(resumed_model.parameters(), straight.parameters()):
        torch.testing.assert_close(a, b)  # resuming changes nothing
    again = lsc.pretrain(
        rnn("gru", layers=2, width=16), data, max_steps=12, tol=0.0, checkpoint=tmp_path, progress=False
    )
    assert again.steps == 12 and again.stopped == second.stopped  # a finished run is not redone


def test_cli_pretrain_writes_a_loadable_model_history_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "pretrain",
        "--cell",
        "gru",
        "--layers",
        "2",
        "--width",
        "16",
        "--input-size",
        "4",
        "--time",
        "10",
        "--batch",
        "8",
        "--max-steps",
        "6",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "before pre-training" in text and "after pre-training" in text
    model = lsc.load(out / "pretrained.pt")
    assert isinstance(model, StackedRNN) and model.config["hidden_size"] == 16
    rows = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"loss", "radii", "worst_gap"} <= set(rows[0])
    assert json.loads((out / "report.json").read_text())["edges"]
    assert main([*args, "--json"]) == 0  # the finished run is reported again, not redone
    summary = json.loads(capsys.readouterr().out)
    assert summary["result"]["steps"] == 6


def test_cli_pretrain_ffn_and_copy_data(capsys):
    assert (
        main(
            [
                "pretrain",
                "--cell",
                "ffn",
                "--layers",
                "4",
                "--width",
                "16",
                "--input-size",
                "8",
                "--batch",
                "16",
                "--max-steps",
                "3",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["result"]["target"] == {"encoder": 1.0, "depth": 1.0}
    assert (
        main(
            [
                "pretrain",
                "--cell",
                "lstm",
                "--layers",
                "2",
                "--width",
                "8",
                "--input-size",
                "5",
                "--time",
                "12",
                "--batch",
                "4",
                "--max-steps",
                "2",
                "--data",
                "copy",
                "--json",
            ]
        )
        == 0
    )


def test_save_and_load_round_trip(tmp_path):
    for model in (rnn("lstm", 2, 8), FFN(3, 8, "tanh", 5, 2), nn.GRU(4, 6, num_layers=2, batch_first=True)):
        lsc.save(model, tmp_path / "m.pt")
        loaded = lsc.load(tmp_path / "m.pt")
        assert type(loaded) is type(model)
        for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(a, b), k
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an lsc model file"):
        lsc.load(tmp_path / "other.pt")


def test_nonfinite_error_is_a_value_error():
    assert issubclass(NonFiniteError, ValueError)


def test_reference_heuristics_rescale_and_shuffle():
    from lsc.models import ElmanCell, Stack
    from lsc.pretraining.heuristics import rescale_towards_target, shuffle_weights

    torch.manual_seed(0)
    cell = ElmanCell(3, 20, bias=False, nonlinearity="identity")
    stack = Stack([cell])
    before = lsc.measure(stack, torch.randn(2, 5, 3), kinds=["time"], estimator="dense").edges[0].mean
    rescale_towards_target(stack, {("time", 0): before}, {"time": before * 1.1})
    after = lsc.measure(stack, torch.randn(2, 5, 3), kinds=["time"], estimator="dense").edges[0].mean
    assert after == pytest.approx(before * 1.1, rel=1e-5)  # linear cell: radius scales with W_hh
    rescale_towards_target(stack, {("time", 0): after}, {"time": after * 10})
    assert lsc.measure(stack, torch.randn(2, 5, 3), kinds=["time"], estimator="dense").edges[0].mean == pytest.approx(
        after * 1.15, rel=1e-5
    )  # clipped to x1.15 per call, as the reference does
    values = cell.weight_hh.detach().flatten().sort().values.clone()
    assert shuffle_weights(stack, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(cell.weight_hh.detach().flatten().sort().values, values)  # same values, new places
    assert not shuffle_weights(stack, 0.0)


@pytest.mark.integration
def test_ctrl_c_in_the_cli_leaves_a_resumable_checkpoint(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "lsc",
        "pretrain",
        "--cell",
        "gru",
        "--layers",
        "2",
        "--width",
        "16",
        "--input-size",
        "4",
        "--time",
        "10",
        "--batch",
        "8",
        "--max-steps",
        "100000",
        "--tol",
        "0",
        "--out",
        str(out),
        "--quiet",
    ]
    log = tmp_path / "stderr.txt"  # a file, not a pipe nobody drains while the run goes on
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # Ctrl-C is not ignored
        deadline = time.time() + 180
        while not (out / "checkpoint.pt").exists() and time.time() < deadline:  # written every 25 steps
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        assert (out / "checkpoint.pt").exists(), "no checkpoint after 180 s"
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"still running 60 s after Ctrl-C; its stderr: {log.read_text()[-2000:]}") from None
    err = log.read_text()
    assert proc.returncode == 130 and "run the same command again to resume" in err, err
    from lsc.files import read_state

    done = read_state(out / "checkpoint.pt", "pretrain-checkpoint")["progress"]["step"]
    assert done >= 25
    again = subprocess.run(
        [*cmd[: cmd.index("100000")], str(done + 3), *cmd[cmd.index("100000") + 1 :], "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["result"]["steps"] == done + 3


def test_a_diverging_run_returns_diverged_with_the_best_weights():
    """A relu Elman with W_hh x20 over T = 60: even the kept weights blow up on fresh input;
    pre-training says so and returns, it does not raise from its final measurement."""
    torch.manual_seed(0)
    model = StackedRNN("elman", input_size=4, hidden_size=16, num_layers=2, nonlinearity="relu")
    with torch.no_grad():
        for cell in model.cells:
            cell.weight_hh.mul_(20)
    # first_move=0: its multipliers would scale W_hh back to a radius of 0.5 before any step
    res = lsc.pretrain(model, None, time_steps=60, max_steps=20, first_move=0, progress=False)
    assert res.stopped == "diverged" and not res.converged and res.report is None
    assert "restored the best weights" in res.message and "final measurement" in res.message
    for k, v in res.best_state.items():
        assert torch.equal(v, model.state_dict()[k]) and torch.isfinite(v).all()


def test_budgets_and_one_shot_data_are_checked_up_front():
    model = rnn("gru", layers=2, width=8)
    with pytest.raises(ValueError, match="max_seconds"):
        lsc.pretrain(model, None, max_seconds=-1, progress=False)
    batches = (torch.randn(4, 6, 8) for _ in range(3))
    with pytest.raises(ValueError, match="re-iterable"):
        lsc.pretrain(model, batches, max_steps=5, progress=False)


def test_a_resumed_run_continues_at_its_place_in_the_data(tmp_path):
    """A list of distinct batches: the resumed run must draw batch 5 next, not batch 0."""
    gen = torch.Generator().manual_seed(0)
    data = [torch.randn(8, 10, 8, generator=gen) * (1 + i / 4) for i in range(7)]

    def stop_at(step):
        def cb(row):
            if row["step"] == step:
                raise KeyboardInterrupt

        return cb

    first = lsc.pretrain(
        rnn("gru", 2, 16), data, max_steps=10, tol=0.0, checkpoint=tmp_path, progress=False, callback=stop_at(4)
    )
    assert first.stopped == "interrupted"
    resumed = rnn("gru", 2, 16)
    second = lsc.pretrain(resumed, data, max_steps=10, tol=0.0, checkpoint=tmp_path, progress=False)
    straight = rnn("gru", 2, 16)
    ref = lsc.pretrain(straight, data, max_steps=10, tol=0.0, progress=False)
    assert [r["radii"] for r in second.history] == [r["radii"] for r in ref.history]
    for a, b in zip(resumed.parameters(), straight.parameters()):
        assert torch.equal(a, b)
    assert second.report is not None and ref.report is not None
    assert second.report.to_dict()["edges"] == ref.report.to_dict()["edges"]  # measured on the same next batch


@pytest.mark.parametrize(
    "change,shown",
    [
        ({"lr": 2e-2}, "lr 0.01 -> 0.02"),
        ({"seed": 1}, "seed 0 -> 1"),
        ({"optimizer": "sgd"}, "optimizer 'adam' -> 'sgd'"),
        ({"batch_size": 16}, "batch_size 32 -> 16"),
        ({"time_steps": 12}, "time_steps"),
        ({"estimator": "dense"}, "method 'arnoldi' -> 'dense'"),
        ({"time_krylov_steps": None}, "time_krylov_steps 40 -> 20"),
        ({"tol": 0.05}, "tol 0.0 -> 0.05"),
    ],
)
def test_resuming_with_other_settings_is_refused_with_the_differences(tmp_path, change, shown):
    base = dict(max_steps=2, tol=0.0, checkpoint=tmp_path, progress=False)
    lsc.pretrain(rnn("gru", 2, 8), None, **base)
    with pytest.raises(ValueError, match="other settings") as info:
        lsc.pretrain(rnn("gru", 2, 8), None, **{**base, **change})
    assert shown in str(info.value)
    again = lsc.pretrain(rnn("gru", 2, 8), None, **{**base, "max_steps": 3})  # a larger budget is no other run
    assert again.steps == 3


@pytest.mark.parametrize(
    "flag,value,shown",
    [
        ("--seed", "1", "seed"),
        ("--lr", "0.02", "lr"),
        ("--batch", "4", "batch_size"),
        ("--time", "8", "time_steps"),
        ("--data", "copy", "data"),
        ("--method", "dense", "method"),
        ("--init", "orthogonal", "init"),
        ("--optimizer", "sgd", "optimizer"),
    ],
)
def test_cli_pretrain_refuses_to_resume_with_other_settings(tmp_path, capsys, flag, value, shown):
    argv = [
        "pretrain",
        "--cell",
        "gru",
        "--layers",
        "2",
        "--width",
        "8",
        "--input-size",
        "4",
        "--time",
        "6",
        "--batch",
        "8",
        "--max-steps",
        "2",
        "--out",
        str(tmp_path),
        "--json",
    ]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, flag, value]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and shown in err and "Traceback" not in err


@pytest.mark.parametrize("as_list", [False, True])
def test_a_time_first_module_is_read_time_first_by_pretrain_as_by_measure(as_list):
    """One layout rule: nn.GRU(batch_first=False) given (T=40, B=16, F) data. Before, pretrain
    read it batch-first (batch 40, T = 16) while measure read T = 40."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 8, num_layers=2, batch_first=False)
    x = torch.randn(40, 16, 3)
    assert lsc.measure(gru, x).time_steps == 40
    data = [x[:, :8], x[:, 8:]] if as_list else x
    # first_move=0: the steps' own draws of time points, which reach beyond 16 in 3 steps
    res = lsc.pretrain(
        gru, data, target=0.5, kinds=["time", "depth"], max_steps=3, batch_size=8, first_move=0, progress=False
    )
    # one batch of 8 is too noisy to judge: the final check joins batches of 8 samples (never 40) up to CONFIRM_SAMPLES
    assert res.report is not None and res.report.time_steps == 40 and res.report.batch_size == CONFIRM_SAMPLES
    assert max(t for r in res.history for t in r["times"]) >= 16  # time points beyond the batch size: T is 40


@pytest.mark.parametrize("share,read", [(0.8, 8), (1.2, CONFIRM_SAMPLES)])
def test_the_fresh_check_reads_more_batches_only_while_an_edge_is_too_noisy_to_judge(monkeypatch, share, read):
    """One batch when every deciding edge's standard error is within CONFIRM_NOISE * tol;
    else fresh batches joined up to CONFIRM_SAMPLES and measured again."""
    import dataclasses

    import lsc.pretraining.loop as loop

    real, seen = loop.measure, []
    tol = 0.04
    noise = share * loop.CONFIRM_NOISE

    def spread(model, x, **kwargs):  # the real measurement, its edges given a chosen standard error
        seen.append(x.shape[0])
        r = real(model, x, **kwargs)
        return dataclasses.replace(r, edges=[dataclasses.replace(e, std=noise * tol * e.count**0.5) for e in r.edges])

    monkeypatch.setattr(loop, "measure", spread)
    res = lsc.pretrain(
        rnn("gru", 2, 8),
        torch.randn(96, 10, 8),
        target=0.5,
        kinds=["time", "depth"],
        tol=tol,
        max_steps=1,
        batch_size=8,
        progress=False,
    )
    assert res.report is not None and res.report.batch_size == read
    assert seen == ([8] if read == 8 else [8, CONFIRM_SAMPLES])


def test_the_fresh_check_reads_as_many_time_points_as_its_tol_needs():
    """The check measures each edge mean to CONFIRM_NOISE * tol (relative to the target):
    a loose tol stops at the first round of time points, a tight one reads more, and
    every edge it reports is that precise unless the schedule ran out."""
    import lsc.pretraining.loop as loop
    from lsc.condition import AUTO_SCHEDULE

    read = {}
    for tol in (0.05, 0.01):
        res = lsc.pretrain(
            rnn("gru", 2, 16),
            torch.randn(64, 30, 8),
            target=0.5,
            kinds=["time", "depth"],
            tol=tol,
            max_steps=2,
            progress=False,
        )
        r = res.report
        read[tol] = len(r.time_points)
        if read[tol] < AUTO_SCHEDULE[-1]:
            assert all(e.standard_error <= loop.CONFIRM_NOISE * tol / 0.5 * e.mean for e in r.edges)
    assert read[0.05] == AUTO_SCHEDULE[0] < read[0.01]


def test_time_edges_are_estimated_with_their_own_krylov_budget():
    """measure_edges gives the time edges ``time_estimator`` and the others ``estimator``:
    with a dense time estimator and a 2-step Arnoldi for the rest, the time radii are the
    dense ones and the depth radii the (much smaller) 2-step Ritz values."""
    from lsc.grid import edges, prepare, trajectory
    from lsc.jacobian import Estimator
    from lsc.pretraining.step import measure_edges

    model = rnn("gru", layers=2, width=48)
    stack, xb = prepare(model, torch.randn(8, 6, 8))
    gen = torch.Generator().manual_seed(0)
    got = measure_edges(
        stack,
        xb,
        {"time": 0.5, "depth": 0.5},
        ["time", "depth"],
        1,
        None,
        Estimator("arnoldi", 2, 0.0),
        gen,
        time_estimator=Estimator("dense"),
    )
    times = list(got.times)
    with torch.no_grad():
        exact = {
            (e.kind, e.layer): float(Estimator("dense").estimate(e.jacobian).mean())
            for e in edges(stack, trajectory(stack, xb, times), ["time", "depth"])
        }
    for key, value in got.radii.items():
        if key[0] == "time":
            assert value == pytest.approx(exact[key], rel=1e-5)
        else:
            assert value < 0.9 * exact[key]  # two Ritz values sit well inside the spectrum


def test_the_first_move_saves_the_steps_spent_approaching_the_target():
    """first_move=4 (issue 29): per-edge multipliers solved by a secant before the first
    gradient step; a ReLU RNN with its encoder edge (far from 0.5 at PyTorch's init)
    converges in fewer steps, and the dense check on fresh data holds as without it."""
    steps = {}
    for moves in (0, 4):
        torch.manual_seed(0)
        rnn = nn.RNN(16, 32, num_layers=2, nonlinearity="relu", batch_first=True)
        data = [torch.randn(16, 30, 16, generator=torch.Generator().manual_seed(i)) for i in range(4)]
        res = lsc.pretrain(
            rnn, data, target=0.5, kinds=["encoder", "time", "depth"], tol=0.05, first_move=moves, progress=False
        )
        fresh = torch.randn(32, 30, 16, generator=torch.Generator().manual_seed(99))
        check = lsc.measure(rnn, fresh, estimator="dense", target=0.5)
        assert res.converged and max(abs(g) for g in check.gaps()) <= 0.05, (moves, check)
        steps[moves] = res.steps
    assert steps[4] < steps[0] / 2, steps
