"""A training job: what ``lsc train`` and the experiments run, as one library call.

A :class:`TrainJob` names a task, a stacked RNN for it, an optional named init, optional
pre-training to the LSC and the training settings; :func:`run_job` builds the model,
initialises it, pre-trains it on the task's own training inputs, trains it and (with
``out``) writes the run directory:

* ``config.json``, ``metrics.jsonl``, ``best.pt``, ``result.json``, ``checkpoint.pt``
  (:func:`lsc.train`),
* ``pretrain/checkpoint.pt``, ``pretrain.json``, ``pretrain_history.jsonl`` (pre-training),
* ``init.json``: the radii of the weights training starts from, measured densely on a
  fresh batch (:func:`check_init`), and whether a pre-trained init is off its target.

The directory is held for the whole job (docs/reliability.md); the same job again
resumes where it stopped, a job with other settings is refused.

``pretrain.json`` and ``init.json`` are summaries, read back when a job resumes. A damaged
one (empty, cut short, not a JSON object) does not stop the job: without pre-training the
model holds its init again (:func:`build` is seeded), so ``init.json`` is measured and
written afresh; otherwise the weights they describe are gone once training began, so the
job warns, naming the file, and goes on without it (the training is unaffected).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import nn

from . import distributed as _dist
from . import tasks as task_registry
from .checks import NonFiniteError, check_seed, generator_seed
from .condition import Target, measure, parse_target
from .files import write_atomic
from .grid import available_kinds
from .init import registry as init_registry
from .models import as_stack
from .pretraining import DEFAULT_KINDS, PretrainConfig, PretrainResult, history_jsonl, pretrain
from .rundir import hold_directory, remove_run_files
from .settings import default_of, same_as, setting, setting_field, spelt, unspelt
from .tasks import Task
from .train import (
    BEST,
    CHECKPOINT,
    CONFIG,
    METRICS,
    RESULT,
    TrainConfig,
    TrainResult,
    check_compatible,
    train,
)

PRETRAIN_DIR = "pretrain"
INIT = "init.json"
INIT_TOL = 0.05
"""A pre-trained init whose worst edge is further than this from its target is flagged
(the reference struck such runs through; docs/design.md section 18)."""
FILES = (CONFIG, METRICS, BEST, CHECKPOINT, RESULT, "pretrain.json", "pretrain_history.jsonl", PRETRAIN_DIR, INIT)
"""The files (and folder) a job writes in its directory; ``force`` removes these and nothing else."""


@dataclass(frozen=True)
class TrainJob:
    """A stacked RNN trained on a task (the options of ``lsc train``, same names and defaults).

    ``pretrain`` is a target in its text form (``"0.5"``, ``"unbalanced"``,
    ``"time=0.9,depth=0.5"``; :func:`lsc.condition.parse_target`) or ``None`` for no
    pre-training; ``init`` a name of :func:`lsc.init.available` whose horizon options
    default to the task's sequence length. The ``pretrain_*`` fields are settings of
    :class:`~lsc.pretraining.PretrainConfig` and the training fields those of
    :class:`~lsc.train.TrainConfig`, with their defaults (a job trains 5 epochs, where
    :func:`lsc.train` trains 10); :meth:`pretrain_config` and :meth:`train_config` build them.
    """

    task: str
    task_options: Mapping[str, object] = field(default_factory=dict)
    cell: str = setting("gru", "cell kind")
    layers: int = setting(2, "stacked layers")
    width: int = setting(128, "hidden width of every layer")
    embedding: int | None = setting(None, "embedding size for token tasks (none: the width)")
    dropout: float = setting(0.0, "dropout between layers")
    dtype: str = setting("float32", "parameter dtype", choices=("float32", "float64"))
    init: str | None = None
    init_options: Mapping[str, object] = field(default_factory=dict)
    pretrain: str | None = None
    pretrain_kinds: Sequence[str] | None = same_as(PretrainConfig, "kinds")
    pretrain_steps: int = same_as(PretrainConfig, "max_steps")
    pretrain_seconds: float | None = same_as(PretrainConfig, "max_seconds")
    pretrain_tol: float = same_as(PretrainConfig, "tol")
    pretrain_rescale: str = same_as(
        PretrainConfig,
        "rescale",
        default=spelt(default_of(PretrainConfig, "rescale")),
        choices=[spelt(c) for c in setting_field(PretrainConfig, "rescale").metadata["choices"]],
    )
    pretrain_shuffle: float = same_as(PretrainConfig, "shuffle")
    pretrain_optimizer: str = same_as(PretrainConfig, "optimizer")
    pretrain_decoder: bool = setting(
        False,
        "also pre-train the decoder edge to 1 when the model has at most 100 outputs "
        "(the reference's choice; in the loss, not in the stopping rule)",
    )
    epochs: int = same_as(TrainConfig, "epochs", default=5)
    lr: float = same_as(TrainConfig, "lr")
    batch_size: int = same_as(TrainConfig, "batch_size")
    optimizer: str = same_as(TrainConfig, "optimizer")
    weight_decay: float = same_as(TrainConfig, "weight_decay")
    clip: float | None = same_as(TrainConfig, "clip")
    schedule: str | None = same_as(TrainConfig, "schedule")
    patience: int | None = same_as(TrainConfig, "patience")
    seed: int = same_as(TrainConfig, "seed")
    device: str = "cpu"
    amp: str | None = same_as(TrainConfig, "amp")

    def pretrain_config(self, target: Target, kinds: Sequence[str] | None) -> PretrainConfig:
        """The job's pre-training settings, to ``target`` on the edge ``kinds``."""
        return PretrainConfig(
            target=target,
            kinds=None if kinds is None else tuple(kinds),
            tol=self.pretrain_tol,
            max_steps=self.pretrain_steps,
            max_seconds=self.pretrain_seconds,
            seed=self.seed,
            rescale=cast(bool | str, unspelt(self.pretrain_rescale)),
            shuffle=self.pretrain_shuffle,
            optimizer=self.pretrain_optimizer,
        )

    def train_config(self) -> TrainConfig:
        """The job's training settings."""
        return TrainConfig(**{name: getattr(self, name) for name in TRAIN_FIELDS})

    def record(self) -> dict[str, object]:
        """What ``config.json`` records of the job beyond :func:`lsc.train`'s own settings
        (must match for a run to resume; the budgets of pre-training included)."""
        kinds = list(self.pretrain_kinds) if self.pretrain_kinds is not None else None
        return {
            "cli": {
                "task_options": dict(self.task_options),
                "cell": self.cell,
                "layers": self.layers,
                "width": self.width,
                "embedding": self.embedding,
                "dropout": self.dropout,
                "dtype": self.dtype,
                "init": self.init,
                "init_options": dict(self.init_options),
                "pretrain": self.pretrain,
                "pretrain_kinds": kinds,
                "pretrain_steps": self.pretrain_steps,
                "pretrain_seconds": self.pretrain_seconds,
                "pretrain_tol": self.pretrain_tol,
                **self._faithful(),
            }
        }

    def _faithful(self) -> dict[str, object]:
        """The reference's pre-training options where they differ from the defaults (a
        directory written before they existed still matches its own job)."""
        given = ("pretrain_rescale", "pretrain_shuffle", "pretrain_optimizer", "pretrain_decoder")
        return {k: getattr(self, k) for k in given if getattr(self, k) != default_of(TrainJob, k)}

    def to_dict(self) -> dict[str, object]:
        """The job as JSON-ready values (``TrainJob(**job.to_dict())`` builds the same job)."""
        out: dict[str, object] = json.loads(json.dumps(asdict(self), default=str))
        return out


TRAIN_FIELDS = (
    "epochs",
    "lr",
    "batch_size",
    "optimizer",
    "weight_decay",
    "clip",
    "schedule",
    "patience",
    "seed",
    "amp",
)
"""The job's fields that are :class:`~lsc.train.TrainConfig` settings."""


@dataclass(frozen=True)
class JobResult:
    """What :func:`run_job` did: the training result, and pre-training's when it ran in this call
    (``pretrain_summary`` is read back from ``pretrain.json`` when a resumed job skipped it)."""

    train: TrainResult
    pretrain: PretrainResult | None
    pretrain_summary: dict[str, object] | None
    init_check: dict[str, object] | None = None

    @property
    def interrupted(self) -> bool:
        return self.train.stopped == "interrupted" or (
            self.pretrain is not None and self.pretrain.stopped == "interrupted"
        )


def build(job: TrainJob) -> tuple[Task, nn.Module]:
    """The job's task and its model: seeded, on the job's device and dtype, initialised,
    and checked against the task (before anything is written)."""
    task = task_registry.get(job.task, **dict(job.task_options))
    torch.manual_seed(generator_seed(check_seed(job.seed) or 0))
    model = task.model(job.cell, job.layers, job.width, embedding=job.embedding, dropout=job.dropout)
    model = model.to(device=job.device, dtype=getattr(torch, job.dtype))
    if job.init is not None:
        init_registry.run(model, job.init, seed=job.seed, horizon=task.steps, **dict(job.init_options))
    elif job.init_options:
        raise ValueError("init options given without an init")
    check_compatible(model, task)
    return task, model


def run_job(
    job: TrainJob,
    out: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool | None = None,
    say: Callable[[str], None] | None = None,
    on_epoch: Callable[[dict[str, object]], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> JobResult:
    """Build, initialise, (pre-train,) train: see the module docstring. ``force`` removes
    the job's own files from ``out`` first; ``say`` receives one-line progress messages;
    ``on_epoch`` every finished epoch's metrics row; ``warn`` one-line warnings (a damaged
    summary file; default: a Python warning)."""
    target = parse_target(job.pretrain) if job.pretrain is not None else None
    job.train_config()  # the training settings are checked before any work, not after pre-training
    task, model = build(job)
    folder = Path(out) if out is not None else None
    main = _dist.is_main()
    with hold_directory(folder if main else None):  # one run per directory, found writable before any work
        if folder is not None and force:
            remove_run_files(folder, FILES)
        return _run_held(
            job,
            folder,
            task,
            model,
            target=target,
            main=main,
            progress=progress,
            say=say or (lambda _: None),
            on_epoch=on_epoch,
            warn=warn or _warn,
        )


def _run_held(
    job: TrainJob,
    folder: Path | None,
    task: Task,
    model: nn.Module,
    target: Target | None,
    main: bool,
    progress: bool | None,
    say: Callable[[str], None],
    on_epoch: Callable[[dict[str, object]], None] | None,
    warn: Callable[[str], None],
) -> JobResult:
    resuming = folder is not None and (folder / CHECKPOINT).exists()
    pre, summary = None, None
    if target is not None and not resuming:  # a resumed training run already holds the pre-trained weights
        say(f"pre-training to {job.pretrain} ...")
        # all but the budgets must match for an interrupted pre-training to resume, the training
        # settings too: a changed lr is refused now, not after the pre-training it would resume
        budgets = ("pretrain_steps", "pretrain_seconds")
        cli = cast(dict[str, object], job.record()["cli"])
        resume = {
            "cli": {k: v for k, v in cli.items() if k not in budgets},
            "train": {
                "lr": job.lr,
                "batch_size": job.batch_size,
                "optimizer": job.optimizer,
                "weight_decay": job.weight_decay,
                "clip": job.clip,
                "schedule": job.schedule or "none",
            },
        }
        pre = pretrain(
            model,
            task.inputs(32, seed=job.seed),
            job.pretrain_config(target, pretrain_kinds(job, model)),
            checkpoint=None if folder is None else folder / PRETRAIN_DIR,
            progress=progress,
            extra=resume,
        )
        if pre.stopped == "interrupted":
            say("interrupted during pre-training; run the same command again to resume")
            return JobResult(_interrupted(task, pre.message), pre, None)
        summary = pre.summary()
        say(f"pre-training {pre.stopped} after {pre.steps} steps in {pre.seconds:.1f} s: {pre.message}")
        if pre.report is not None:
            say(pre.report.table())
        if folder is not None and main:
            write_atomic(folder / "pretrain.json", json.dumps(summary, indent=2, default=str) + "\n")
            write_atomic(folder / "pretrain_history.jsonl", history_jsonl(pre.history))
    elif target is not None and folder is not None and (folder / "pretrain.json").exists():
        summary = read_summary(folder / "pretrain.json", warn, "the summary of the pre-training")
    check: dict[str, object] | None = None
    if resuming:
        assert folder is not None  # only a run directory is resumed
        if (folder / INIT).exists():
            what = "the radii of the pre-trained init" if target is not None else None
            check = read_summary(folder / INIT, warn, what)
        say(f"resuming from {folder / CHECKPOINT}")
    if check is None and (not resuming or target is None):  # a resumed job without pre-training holds its init
        check = check_init(model, task, job, target)
        if folder is not None and main:
            write_atomic(folder / INIT, json.dumps(check, indent=2) + "\n")
    result = train(
        model, task, job.train_config(), out=folder, progress=progress, callback=on_epoch, extra=job.record()
    )
    return JobResult(result, pre, summary, check)


def read_summary(path: Path, warn: Callable[[str], None], lost: str | None) -> dict[str, object] | None:
    """The JSON object a job wrote at ``path``, or ``None`` when it is damaged (empty, cut
    short, not a JSON object), with a warning naming it: the job goes on without ``lost``
    (what the file held, which cannot be made again), or (``lost`` is ``None``) makes the
    file afresh."""
    try:
        data = json.loads(path.read_text())
        reason = "" if isinstance(data, dict) else "not a JSON object"
    except (OSError, ValueError) as exc:  # a UnicodeDecodeError is a ValueError
        reason = str(exc).splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    if not reason:
        return cast(dict[str, object], data)
    then = (
        "measured afresh and written again"
        if lost is None
        else f"the run goes on without {lost}, which cannot be made again once training began (the training is "
        "unaffected; delete the file to silence this)"
    )
    warn(f"{path} is damaged ({reason}); {then}")
    return None


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


DENSE_CHECK_STATES = 256
"""The widest state :func:`check_init` measures with the dense method."""
REFERENCE_DECODER_OUTPUTS = 100
"""The reference pre-trains the decoder edge (to 1) only for at most this many outputs."""


def pretrain_kinds(job: TrainJob, model: nn.Module) -> list[str] | None:
    """The job's edge kinds; with ``pretrain_decoder`` the decoder edge too (target 1, in
    the loss, not in the stopping rule) when the model has at most 100 outputs, as the
    reference code does (docs/design.md section 9)."""
    kinds = list(job.pretrain_kinds) if job.pretrain_kinds is not None else None
    if not job.pretrain_decoder:
        return kinds
    stack = as_stack(model)
    decoder = stack.decoder
    outputs = getattr(decoder, "out_features", None)
    if outputs is None or outputs > REFERENCE_DECODER_OUTPUTS:
        return kinds
    have = available_kinds(stack)
    return [k for k in (kinds or DEFAULT_KINDS) if k in have] + ["decoder"]


def check_init(model: nn.Module, task: Task, job: TrainJob, target: Target | None) -> dict[str, object]:
    """The radii of the weights training starts from: :func:`lsc.measure` with the dense
    method (Arnoldi above :data:`DENSE_CHECK_STATES` states) on a batch of the task's
    inputs that pre-training did not draw (its own seed), every edge's mean, and for a
    pre-trained init the worst gap over the edges that decide convergence (all but the
    decoder) and whether it is over :data:`INIT_TOL`."""
    batch = next(iter(task.inputs(32, seed=job.seed + 104_729)))
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    stack = as_stack(model)
    have = available_kinds(stack)
    kinds = [k for k in (job.pretrain_kinds or DEFAULT_KINDS) if k in have]
    widest = max(getattr(c, "state_size", 0) for c in stack.cells)
    method = "dense" if widest <= DENSE_CHECK_STATES else "auto"  # wider: Arnoldi, tested against dense
    try:
        report = measure(
            model,
            x,
            estimator=method,
            kinds=kinds,
            target=target if target is not None else "auto",
            seed=job.seed,
        )
    except NonFiniteError as exc:  # an init that does not run: said in init.json, the training will say the rest
        return {
            "method": method,
            "error": str(exc),
            "edges": [],
            "pretrained": target is not None,
            "worst_gap": None,
            "flagged": target is not None,
        }
    edges = [{"kind": e.kind, "layer": e.layer, "mean": e.mean, "std": e.std} for e in report.edges]
    worst = None
    if target is not None:
        worst = max((abs(g) for g in report.gaps() if g is not None), default=None)
    return {
        "method": method,
        "target": {k: v for k, v in report.target.items() if k in kinds},
        "edges": edges,
        "pretrained": target is not None,
        "worst_gap": worst,
        "flagged": worst is not None and worst > INIT_TOL,
    }


def _interrupted(task: Task, message: str) -> TrainResult:
    return TrainResult(
        task=task.name,
        metric=task.metric,
        best_epoch=0,
        val=None,
        test=None,
        epochs=0,
        seconds=0.0,
        stopped="interrupted",
        message=message,
        history=[],
        best_state={},
    )
