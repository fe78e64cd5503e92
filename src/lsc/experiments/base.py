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
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..job import TrainJob, run_job
from .records import read_record_file, record_path

PRESETS = ("smoke", "cpu", "fair", "fair-alif", "fair-lm", "converged", "paper-slice", "paper")
FINISHED = ("ok", "diverged")
CONFIG, METRICS, RESULT, STATUS = "config.json", "metrics.jsonl", "result.json", "status.json"
CONDITIONS = {"default": None, "rho1": "1", "rho0.5": "0.5", "unbalanced": "unbalanced"}
"""The conditions a training experiment compares: no pre-training, or pre-training to the
target named (``lsc train --pretrain`` text), in the order reports list them."""
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

    def command(
        self, run: Run, out: Path, python: str | None = None, *, preset: str | None = None, records: Path | None = None
    ) -> list[str]:
        """The independent command of ``run`` working in ``out`` (its run directory) and,
        with ``preset`` and ``records``, leaving its record under ``records``."""
        recorded = ["--preset", preset, "--records", str(records)] if preset is not None and records is not None else []
        return [
            python or sys.executable,
            "-m",
            "lsc.experiments.worker",
            self.name,
            "--run-id",
            run.id,
            "--out",
            str(out),
            *recorded,
            "--config",
            json.dumps(run.config, sort_keys=True),
        ]

    def describe(self) -> str:
        def size(p: str) -> str:
            hours = self.presets[p].get("core_hours")
            return (
                f"{p} ({len(self.runs(p))} runs"
                + (f", about {hours} core-hour{'s' * (hours != 1)}" if hours else "")
                + ")"
            )

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
            task=config["task"],
            task_options=dict(config["options"]),
            cell=cell,
            layers=config["layers"],
            width=config["width"],
            epochs=config["epochs"],
            batch_size=config["batch"],
            lr=config["lr"],
            seed=config["seed"],
            pretrain=None if config["pretrain"] is None else str(config["pretrain"]),
            pretrain_seconds=config["pretrain_seconds"] if config["pretrain"] is not None else None,
            pretrain_steps=config["pretrain_steps"] if config["pretrain"] is not None else 1000,
            init=config.get("init"),
            device=config.get("device", "cpu"),
            **extra,
        )


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
    return {
        "job": job.to_dict(),
        "metric": res.metric,
        "val": res.val,
        "test": res.test,
        "epochs": res.epochs,
        "best_epoch": res.best_epoch,
        "seconds": res.seconds,
        "stopped": res.stopped,
        "pretrain": None if pre is None else {k: pre.get(k) for k in ("stopped", "steps", "seconds", "converged")},
        "init": done.init_check,
        "diverged": res.stopped == "diverged",
    }


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
    return RunRecord(
        run.id,
        rec["config"],
        rec.get("state", "failed"),
        rec.get("result") or {},
        rec.get("seconds"),
        rec.get("error"),
        rec.get("rows") or [],
        rec.get("started"),
        rec.get("finished"),
        rec.get("code"),
    )


def records(exp: Experiment, root: Path, preset: str) -> list[RunRecord]:
    """One record per run of the preset (``missing`` where none ran), in run order."""
    return [read_record(root, exp, preset, r) for r in exp.runs(preset)]


def present(recs: Iterable[RunRecord]) -> list[RunRecord]:
    """The runs that exist for this preset: finished or failed, not missing or stale."""
    return [r for r in recs if r.state not in ("missing", "stale")]
