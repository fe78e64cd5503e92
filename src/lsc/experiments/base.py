"""The experiment framework: an :class:`Experiment` names a claim of a paper, expands a
preset (``smoke`` | ``cpu`` | ``fair`` | ``converged`` | ``paper``) into independent
:class:`Run` s, runs one of them (:meth:`Experiment.execute`, in its own process through
:mod:`lsc.experiments.worker`) and turns the runs' records into markdown and PNG plots
(:meth:`Experiment.report`).

A run works in ``OUT/<experiment>/<preset>/<run id>/`` (scratch: ``config.json``,
``metrics.jsonl``, ``result.json``, ``status.json``, the training checkpoint, logs) and
leaves its evidence as one record, ``RECORDS/<experiment>/<preset>/<run id>.json``
(:mod:`lsc.experiments.records`): reports are made from records alone.

A run is *finished* when its record's state is ``ok`` or ``diverged``; a ``failed``,
missing or ``stale`` run (its record's config differs from the preset's config now) is run
again by the next ``lsc experiment run``.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..job import TrainJob, run_job
from .records import read_record_file, record_path

PRESETS = ("smoke", "cpu", "fair", "fair-alif", "fair-lm", "converged", "paper-slice", "paper")
FINISHED = ("ok", "diverged")
CONFIG, METRICS, RESULT, STATUS = "config.json", "metrics.jsonl", "result.json", "status.json"
RECORDS = "records"
"""The records directory under ``OUT`` when none is named (``--records``)."""


@dataclass(frozen=True)
class Run:
    """One independent run: ``id`` names its directory, ``config`` is all it needs."""

    id: str
    config: dict[str, Any]


@dataclass
class RunRecord:
    """A run as its record tells it (what reports read)."""

    id: str
    config: dict[str, Any]
    state: str  # ok | diverged | failed | missing | stale (recorded with a different config)
    result: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    error: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    started: str | None = None
    finished: str | None = None
    code: dict[str, Any] | None = None

    def metrics(self) -> list[dict[str, Any]]:
        """The rows the run logged (per epoch, step or point)."""
        return self.rows


class Logger:
    """Appends rows to ``metrics.jsonl`` (flushed per row, so a killed run keeps them)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("")

    def __call__(self, **row: Any) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row, default=_json_default) + "\n")


def _json_default(v: Any) -> Any:
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n"


class Experiment:
    """Subclass and set ``name``, ``claim``, ``source``, ``presets``; implement
    :meth:`runs`, :meth:`execute` and :meth:`report`."""

    name: str = ""
    claim: str = ""
    source: str = ""
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def claim_for(self, preset: str) -> str:
        """The claim as the preset tests it (the claim, unless the preset's grid narrows it)."""
        return self.claim

    def params(self, preset: str) -> dict[str, Any]:
        if preset not in self.presets:
            raise ValueError(f"experiment {self.name} has no preset {preset!r}; presets: {', '.join(self.presets)}")
        return dict(self.presets[preset])

    def runs(self, preset: str) -> list[Run]:
        raise NotImplementedError

    def execute(self, config: dict[str, Any], out: Path, log: Logger) -> dict[str, Any]:
        """Run one config in this process; return the final metrics (``{"diverged": True, ...}``
        marks a diverged run). ``out`` is the run's directory for any extra files."""
        raise NotImplementedError

    def report(self, records: list[RunRecord], figures: Path, preset: str) -> str:
        """Markdown (tables, plot links) from the runs that exist; plots go to ``figures``."""
        raise NotImplementedError

    def command(self, run: Run, out: Path, python: str | None = None, *, preset: str | None = None,
                records: Path | None = None) -> list[str]:
        """The independent command of ``run`` working in ``out`` (its run directory) and,
        with ``preset`` and ``records``, leaving its record under ``records``."""
        recorded = ["--preset", preset, "--records", str(records)] if preset is not None and records is not None else []
        return [
            python or sys.executable, "-m", "lsc.experiments.worker", self.name,
            "--run-id", run.id, "--out", str(out), *recorded, "--config", json.dumps(run.config, sort_keys=True),
        ]

    def describe(self) -> str:
        def size(p: str) -> str:
            hours = self.presets[p].get("core_hours")
            return f"{p} ({len(self.runs(p))} runs" + (f", about {hours} core-hour{'s' * (hours != 1)}" if hours else "") + ")"

        sizes = ", ".join(size(p) for p in self.presets)
        return f"{self.name}\n  claim:   {self.claim}\n  source:  {self.source}\n  presets: {sizes}"


class TrainExperiment(Experiment):
    """An experiment whose every run is one training job (what ``lsc train`` runs): implement :meth:`job`."""

    @staticmethod
    def job(config: dict[str, Any]) -> TrainJob:
        """The training job of a run."""
        raise NotImplementedError

    def execute(self, config: dict[str, Any], out: Path, log: Logger) -> dict[str, Any]:
        return train_job(self.job(config), out / "train", log)  # the job's own dir: resumes there

    @staticmethod
    def stack_job(config: dict[str, Any], cell: str, **extra: Any) -> TrainJob:
        """The job of a stacked-RNN run: task and its options, the stack, the optimiser, the
        seed and (when ``config["pretrain"]``) the pre-training."""
        return TrainJob(
            task=config["task"], task_options=dict(config["options"]), cell=cell, layers=config["layers"],
            width=config["width"], epochs=config["epochs"], batch_size=config["batch"], lr=config["lr"],
            seed=config["seed"], pretrain=None if config["pretrain"] is None else str(config["pretrain"]),
            pretrain_seconds=config["pretrain_seconds"] if config["pretrain"] is not None else None,
            pretrain_steps=config["pretrain_steps"] if config["pretrain"] is not None else 1000,
            init=config.get("init"), device=config.get("device", "cpu"), **extra,
        )


REGISTRY: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    REGISTRY[exp.name] = exp
    return exp


def get(name: str) -> Experiment:
    from . import _load_all

    _load_all()
    if name not in REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def available() -> list[str]:
    from . import _load_all

    _load_all()
    return list(REGISTRY)


def train_job(job: TrainJob, train_dir: Path, log: Logger) -> dict[str, Any]:
    """Run ``job`` in this process (a run's process) with ``train_dir`` as its directory, copy
    its per-epoch rows into ``log`` and return its final numbers (``diverged`` when training
    stopped on a non-finite loss). An interrupted run resumes from ``train_dir``."""
    done = run_job(job, train_dir)
    if done.interrupted:
        raise KeyboardInterrupt
    if (train_dir / METRICS).exists():
        for line in (train_dir / METRICS).read_text().splitlines():
            if line.strip():
                log(**json.loads(line))
    res, pre = done.train, done.pretrain_summary
    return {"job": job.to_dict(), "metric": res.metric, "val": res.val, "test": res.test,
            "epochs": res.epochs, "best_epoch": res.best_epoch, "seconds": res.seconds, "stopped": res.stopped,
            "pretrain": None if pre is None else {k: pre.get(k) for k in ("stopped", "steps", "seconds", "converged")},
            "init": done.init_check, "diverged": res.stopped == "diverged"}


# ---------------------------------------------------------------- helpers for reports


def read_record(root: Path, exp: Experiment | str, preset: str, run: Run) -> RunRecord:
    """The record of ``run`` under ``root``: ``missing`` when there is none (or it is
    damaged), ``stale`` when it was made with another config."""
    name = exp if isinstance(exp, str) else exp.name
    rec = read_record_file(record_path(root, name, preset, run.id))
    if rec is None:
        return RunRecord(run.id, dict(run.config), "missing")
    if rec["config"] != json.loads(json.dumps(run.config)):
        return RunRecord(run.id, rec["config"], "stale")
    return RunRecord(run.id, rec["config"], rec.get("state", "failed"), rec.get("result") or {}, rec.get("seconds"),
                     rec.get("error"), rec.get("rows") or [], rec.get("started"), rec.get("finished"), rec.get("code"))


def records(exp: Experiment, root: Path, preset: str) -> list[RunRecord]:
    """One record per run of the preset (``missing`` where none ran), in run order."""
    return [read_record(root, exp, preset, r) for r in exp.runs(preset)]


def present(recs: Iterable[RunRecord]) -> list[RunRecord]:
    """The runs that exist for this preset: finished or failed, not missing or stale."""
    return [r for r in recs if r.state not in ("missing", "stale")]


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def mean_std(values: Iterable[Any], fmt: str = "{:.3g}") -> str:
    """``"m ± s (n)"`` over the finite values; ``"—"`` when there are none."""
    vals = [float(v) for v in values if finite(v)]
    if not vals:
        return "—"
    m = sum(vals) / len(vals)
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return f"{fmt.format(m)} ± {fmt.format(s)} (n={len(vals)})"


def mean(values: Iterable[Any]) -> float:
    vals = [float(v) for v in values if finite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def std(values: Iterable[Any]) -> float:
    vals = [float(v) for v in values if finite(v)]
    if len(vals) < 2:
        return 0.0 if vals else float("nan")
    m = sum(vals) / len(vals)
    return math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table (``|`` inside a cell is escaped)."""
    cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def state_summary(recs: Sequence[RunRecord]) -> str:
    """``"12 runs: 10 ok, 1 diverged, 1 failed, 0 missing; 83 s of run time"``."""
    counts = {s: sum(r.state == s for r in recs) for s in ("ok", "diverged", "failed", "missing", "stale")}
    if not counts["stale"]:
        del counts["stale"]
    secs = sum(r.seconds or 0.0 for r in recs)
    text = f"{len(recs)} runs: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + f"; {secs:.0f} s of run time"
    failed = [r for r in recs if r.state == "failed"]
    if failed:
        text += "\n\nFailed runs: " + "; ".join(f"`{r.id}` ({(r.error or '').splitlines()[-1:] or ['?']})" for r in failed[:10])
    return text


def paired_score(r: RunRecord) -> float | None:
    """A run's score for paired comparisons, higher is better: test accuracy in points, or
    minus test perplexity; ``None`` for a run without one (diverged, failed)."""
    if r.state != "ok" or r.result.get("test") is None:
        return None
    return -r.result["test"] if r.result.get("metric") == "perplexity" else 100 * r.result["test"]


def flagged(r: RunRecord) -> bool:
    """Whether a run's pre-trained init was more than 0.05 off its target (``init.json``)."""
    return bool((r.result.get("init") or {}).get("flagged"))


def init_table(recs: Sequence[RunRecord], keys: Sequence[str], order: Callable[[tuple], Any]) -> list[str]:
    """The radii every run's training started from (dense, on a fresh batch: ``init.json``),
    by the config ``keys``; pre-trained inits more than 0.05 off their target are counted
    as flagged (left out of the statistics; docs/design.md section 18)."""
    with_init = [r for r in recs if (r.result.get("init") or {}).get("edges")]
    rows = []
    for key, rs in sorted(group(with_init, lambda r: tuple(r.config[k] for k in keys)).items(), key=lambda kv: order(kv[0])):
        def radii(kind: str, rs: list[RunRecord] = rs) -> str:
            per_run = ([e["mean"] for e in r.result["init"]["edges"] if e["kind"] == kind] for r in rs)
            return mean_std((sum(v) / len(v) for v in per_run if v), "{:.3f}")

        gaps = [r.result["init"]["worst_gap"] for r in rs if r.result["init"].get("worst_gap") is not None]
        rows.append((*key, radii("time"), radii("depth"), radii("encoder"), mean_std(gaps, "{:.3f}") if gaps else "—",
                     sum(flagged(r) for r in rs)))
    if not rows:
        return []
    return ["**Init radii** (dense, on a batch pre-training did not draw; mean over layers, then over seeds; "
            "a pre-trained init whose worst edge is more than 0.05 off its target is flagged and left out of the "
            "statistics below):",
            table((*keys, "time", "depth", "encoder", "worst gap", "flagged"), rows)]


def group(recs: Iterable[RunRecord], key: Callable[[RunRecord], Any]) -> dict[Any, list[RunRecord]]:
    out: dict[Any, list[RunRecord]] = {}
    for r in recs:
        out.setdefault(key(r), []).append(r)
    return out


def quote(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def figure(figsize: tuple[float, float] = (6.4, 4.0)) -> Any:
    from ..analysis.plots import figure as new_figure

    return new_figure(figsize)


def save_figure(fig: Any, path: Path) -> Path:
    from ..analysis.plots import save_figure as save

    return save(fig, path)


def rel(path: Path, start: Path | None) -> str:
    """``path`` relative to ``start`` (for markdown links), else as given."""
    if start is None:
        return str(path)
    import os

    return os.path.relpath(path, start)


Params = Mapping[str, Any]
