"""Training a model on a task: the reference protocol (docs/design.md A4.5) with its bugs fixed.

Each epoch makes one pass over the training split in a seeded random order (contiguous
windows with the state carried for language models), takes one optimiser step per batch
on the task's loss (:mod:`lsc.tasks.objectives`), then evaluates validation and test:

    accuracy   = correct / samples (mode accuracy: argmax of the time-averaged logits)
    perplexity = exp(sum of token cross-entropies / number of tokens)
    mse        = mean squared error

Gradient clipping really clips: ``clip_grad_norm_(params, clip)`` rescales the gradient to
norm ``clip`` when it is larger (the reference's ``clipnorm`` was silently dropped by its
AdaBelief optimiser, docs/design.md A8). ``schedule="cosine"`` decays the learning rate from
``lr`` to ``0.1 lr`` over the run, per step (the reference's ``cosine_no_restarts`` shape).
The weights of the epoch with the best validation metric are kept ("best checkpoint") and
restored at the end; ``patience`` stops after that many epochs without a better one
(the reference: EarlyStopping, patience 10, restore best). The reported test metric is the
one measured at the best validation epoch, as the paper reports it.

With ``out=DIR`` the run writes ``config.json``, ``metrics.jsonl`` (one row per epoch),
``best.pt`` (``lsc.load``-able, recording the window it was trained on), ``result.json``
and ``checkpoint.pt``; every file is written to a temporary name and renamed, so none is
ever half-written. Called again with the same ``DIR`` and the same settings (all but the
budgets, :data:`MAY_CHANGE_ON_RESUME`), it resumes after the last finished epoch, and its
result equals an uninterrupted run's: each epoch's shuffle and dropout are seeded by
(seed, epoch). Other settings are refused, each difference named (``train.lr 0.01 ->
0.001``), and so is another run's ``checkpoint.pt`` copied into ``DIR``: the checkpoint
carries its run's settings and seed (:func:`identity`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from . import distributed as _dist
from .checks import NonFiniteError, check_number, check_positive, unknown_name
from .distributed import select_device
from .files import AFRESH, DamagedFileError, read_state, require, write_atomic, write_state
from .models import StackedRNN
from .models.io import describe, save
from .optimizers import OPTIMIZERS, make_optimizer
from .progress import progress_bar
from .rundir import hold_directory
from .settings import changes, default_of, names, overridden, setting
from .tasks import Task
from .tasks.base import Batch
from .tasks.objectives import Tally, loss_and_tally

SCHEDULES = ("cosine",)
CONFIG, METRICS, BEST, CHECKPOINT, RESULT = "config.json", "metrics.jsonl", "best.pt", "checkpoint.pt", "result.json"


@dataclass
class TrainResult:
    """What :func:`train` did. ``val`` and ``test`` are the task's metric at the best
    validation epoch; the model holds that epoch's weights (``best_state``)."""

    task: str
    metric: str  # "accuracy" | "perplexity" | "mse"
    best_epoch: int  # 1-based; 0 when no epoch finished
    val: float | None
    test: float | None
    epochs: int  # epochs finished
    seconds: float
    stopped: str  # "epochs" | "early_stopping" | "diverged" | "interrupted"
    message: str
    history: list[dict[str, object]] = field(repr=False)
    best_state: dict[str, Tensor] = field(repr=False)
    out: str | None = None

    def summary(self) -> dict[str, object]:
        """JSON-ready summary (no weights, no history)."""
        return {k: v for k, v in asdict(self).items() if k not in ("history", "best_state")}

    def line(self) -> str:
        """``val accuracy 0.9120 · test accuracy 0.9050 (best epoch 7 of 8, 151.2 s)``."""
        fmt = {"accuracy": "{:.4f}", "perplexity": "{:.2f}", "mse": "{:.4g}"}[self.metric]

        def show(v: float | None) -> str:
            return "n/a" if v is None else fmt.format(v)

        return (
            f"val {self.metric} {show(self.val)} · test {self.metric} {show(self.test)} "
            f"(best epoch {self.best_epoch} of {self.epochs}, {self.seconds:.1f} s)"
        )


@dataclass
class _Run:
    epoch: int = 0  # epochs finished
    seconds: float = 0.0
    best_epoch: int = 0
    best_value: float | None = None
    bad_epochs: int = 0
    stopped: str = ""
    message: str = ""
    history: list[dict[str, object]] = field(default_factory=list)

    def record(self, row: dict[str, object], task: Task, patience: int | None, seconds: float) -> bool:
        """Take a finished epoch's row: the best validation metric so far, early stopping.
        Returns whether the epoch improved on the best."""
        value = float(row[f"val_{task.metric}"])  # type: ignore[arg-type]
        epoch = int(row["epoch"])  # type: ignore[call-overload]
        if not math.isfinite(value):
            raise NonFiniteError(f"the validation {task.metric} became {value} at epoch {epoch}")
        improved = self.best_value is None or (
            value > self.best_value if task.higher_is_better else value < self.best_value
        )
        if improved:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        self.history.append(row)
        self.epoch, self.seconds = epoch, seconds
        if patience is not None and self.bad_epochs >= patience:
            self.stopped, self.message = "early_stopping", f"no better validation {task.metric} for {patience} epochs"
        return improved


def check_compatible(model: nn.Module, task: Task, *, max_length: int | None = None) -> None:
    """Raise a clear ValueError when ``model`` cannot be trained on ``task``.

    The *window* of a model is the longest sequence it was trained on: ``max_length``,
    else the model's ``max_length`` attribute (``lsc.load`` sets it from a ``best.pt``
    written by :func:`train`). A task whose sequences (time repeat included) are longer
    is refused. Then one small validation batch goes through the model, which must
    return outputs (batch, time, task.output_size).
    """
    limit = max_length if max_length is not None else getattr(model, "max_length", None)
    if limit is not None and task.steps > int(limit):
        raise ValueError(
            f"task {task.name!r} gives sequences of {task.steps} steps, longer than the model's trained window of "
            f"{int(limit)} steps (max_length). Use a task of at most {int(limit)} steps (e.g. a smaller time_repeat "
            "or bptt), or pass max_length to allow longer sequences deliberately."
        )
    try:
        batch = next(task.batches("val", 2))
    except StopIteration:
        raise ValueError(f"task {task.name!r} has an empty validation split") from None
    dev, dtype = _where(model)
    batch = batch.to(dev, dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            y = model(batch.x)
    except (ValueError, RuntimeError, TypeError, IndexError) as exc:
        shape = tuple(batch.x.shape)
        want = (
            f"{task.input_size} features a step"
            if task.input_size is not None
            else f"token ids below {task.vocab_size}"
        )
        raise ValueError(f"the model cannot read task {task.name!r}'s input (shape {shape}, {want}): {exc}") from None
    finally:
        model.train(was_training)
    if not isinstance(y, Tensor) or y.dim() != 3 or tuple(y.shape[:2]) != tuple(batch.x.shape[:2]):
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(
            f"the model must return outputs of shape (batch, time, {task.output_size}) for task {task.name!r}; "
            f"got {got} for input {tuple(batch.x.shape)} (wrap a torch.nn.LSTM with a readout, or use task.model(...))"
        )
    if y.shape[-1] != task.output_size:
        raise ValueError(
            f"the model has {y.shape[-1]} outputs but task {task.name!r} needs {task.output_size}; "
            f"build it with output_size={task.output_size} (task.model(...) does)"
        )


def evaluate(
    model: nn.Module, task: Task, split: str = "test", *, batch_size: int = 256, distributed: bool | None = False
) -> dict[str, float]:
    """{"loss": ..., task.metric: ...} of ``model`` on ``split``, without gradients.

    ``distributed=True`` (or ``None`` inside an active process group): every rank measures
    its slice of each batch and the tallies are summed over ranks, so all ranks return the
    same numbers, those of one process measuring the whole split."""
    ddp = _dist.resolve(distributed)
    dev, dtype = _where(model)
    carry = _carries(model, task)
    was_training = model.training
    model.eval()
    tally, states = Tally(), None
    try:
        with torch.no_grad():
            for batch in task.batches(split, batch_size):
                b = (_shard(batch) if ddp else batch).to(dev, dtype)
                if b.x.shape[0] == 0:
                    continue
                y, states = _forward(model, b, states, carry)
                tally.add(loss_and_tally(task.objective, y.float(), b.y, b.mask)[1])
    finally:
        model.train(was_training)
    if ddp:
        tally = _reduce_tally(tally, dev)
    return {"loss": tally.loss(), task.metric: tally.metric(task.objective)}


TRAIN_OPTIMIZERS = tuple(k for k in OPTIMIZERS if k != "none")
"""The optimisers training takes (``none``, no step, is for pre-training's heuristics)."""
AMP = ("bf16",)
KEYWORDS = ("device", "out", "max_length", "progress", "callback", "distributed", "extra")
"""The keywords of :func:`train` that are no settings (where it runs and writes)."""


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`train` trains (see the module docstring). Frozen; every value is checked
    when the config is made, a bad one is a ValueError naming its field.

    Attributes (each field's help line says the rest):
        optimizer: a name of :data:`TRAIN_OPTIMIZERS` (``adabelief``,
            ``adabelief-lookahead``: the reference's, the ``optimizers`` extra).
        clip: rescale the gradient to at most this norm (``None``: no clipping).
        schedule: ``None`` or ``"cosine"`` (lr to 0.1 lr over the run, per step).
        patience: stop after this many epochs without a better validation metric (``None``: never).
        seed: seeds each epoch's shuffle and dropout (seed, epoch).
        amp: ``"bf16"``: forward passes under ``torch.autocast`` in bfloat16 (cpu, or a cuda
            device that supports it); the loss is taken in float32. ``None``: off.
    """

    epochs: int = setting(10, "epochs")
    lr: float = setting(1e-3, "learning rate")
    batch_size: int = setting(64, "batch size")
    optimizer: str = setting("adam", "optimiser", choices=TRAIN_OPTIMIZERS)
    weight_decay: float = setting(0.0, "weight decay")
    clip: float | None = setting(None, "clip the gradient norm to this value (none: no clipping)")
    schedule: str | None = setting(
        None, "learning-rate schedule (cosine: lr to 0.1 lr over the run)", choices=(None, *SCHEDULES)
    )
    patience: int | None = setting(None, "early stopping after this many epochs without a better validation metric")
    seed: int = setting(0, "seed of each epoch's shuffle and dropout")
    eval_batch_size: int | None = setting(None, "batch size of validation and test (none: batch_size)")
    test_every_epoch: bool = setting(True, "measure the test split every epoch (else only at the end)")
    amp: str | None = setting(
        None, "mixed precision: bf16 autocast of the forward passes on cpu/cuda", choices=(None, *AMP)
    )

    def __post_init__(self) -> None:
        for name, value in (
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("patience", 1 if self.patience is None else self.patience),
            ("eval_batch_size", 1 if self.eval_batch_size is None else self.eval_batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        check_positive(self.lr, "lr")
        if self.clip is not None:
            check_positive(self.clip, "clip")
        if check_number(self.weight_decay, "weight_decay") < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.optimizer not in TRAIN_OPTIMIZERS:
            raise unknown_name("optimizer", self.optimizer, TRAIN_OPTIMIZERS)
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise unknown_name("schedule", self.schedule, SCHEDULES)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.amp is not None and self.amp not in AMP:
            raise unknown_name("amp", self.amp, AMP)

    def record(self, device: torch.device, world_size: int | None) -> dict[str, object]:
        """The ``train`` entry of ``config.json``: the settings, the device and (distributed)
        the world size; ``amp`` only when on."""
        out: dict[str, object] = {}
        for name in names(self):
            if name != "amp":
                out[name] = getattr(self, name)
            if name == "seed":
                out["device"] = str(device)
        if world_size is not None:
            out["world_size"] = world_size
        if self.amp is not None:
            out["amp"] = self.amp
        return out


MAY_CHANGE_ON_RESUME = frozenset({"epochs", "patience"})
"""The settings of :class:`TrainConfig` a resumed run may change: its budgets (a finished run
given more epochs carries on; early stopping may be made more or less patient). Every
other setting must match (:data:`RESUME_KEYS`), a new one too unless it is added here:
``amp`` would switch precision mid-run, ``eval_batch_size`` changes a language model's
perplexity (its state is carried across the evaluation batches), ``test_every_epoch``
where the reported test metric comes from. Where the run trains (the device, the number
of processes) is no setting and may change."""
RESUME_KEYS = tuple(name for name in names(TrainConfig) if name not in MAY_CHANGE_ON_RESUME)
"""The settings that must match for a run to resume from its directory."""


def train(
    model: nn.Module,
    task: Task,
    config: TrainConfig | None = None,
    *,
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    max_length: int | None = None,
    progress: bool | None = None,
    callback: Callable[[dict[str, object]], None] | None = None,
    distributed: bool | None = None,
    extra: Mapping[str, object] | None = None,
    **settings: object,
) -> TrainResult:
    """Train ``model`` on ``task`` in place and return a :class:`TrainResult`.

    ``train(model, task, epochs=8, lr=2e-3)`` is ``train(model, task, TrainConfig(epochs=8, lr=2e-3))``.

    Args:
        model: a module mapping (B, T, F) floats (or (B, T) tokens) to (B, T, outputs),
            e.g. ``task.model("gru", layers=2, width=128)``.
        task: from :func:`lsc.tasks.get`.
        config: the settings (:class:`TrainConfig`; ``None``: its defaults).
        **settings: settings by name, in place of ``config``'s (a name that is no field of
            :class:`TrainConfig` is refused, naming the fields).
        device: where to train (default: where the model is).
        out: a directory for config.json, metrics.jsonl, best.pt, result.json and a
            checkpoint; a later call with the same directory and settings (all but
            :data:`MAY_CHANGE_ON_RESUME`) resumes, other settings are refused.
        max_length: the model's trained window, if it has one (see :func:`check_compatible`).
        progress: a tqdm bar per epoch (default: when stderr is a terminal).
        callback: called with every finished epoch's metrics row.
        distributed: data-parallel over the initialised process group (``None``: when one
            of more than one process is active, e.g. under torchrun). Every global batch of
            ``batch_size`` is split across the ranks in the same seeded order, gradients
            are summed so the step equals a single process's step on the whole batch,
            metrics are reduced over ranks, early stopping is decided on them (all ranks
            stop together), and only rank 0 writes ``out`` and progress. Checkpoints hold
            the plain model, so a run resumes with any number of processes.
        extra: more JSON entries for config.json (they must match to resume).
    """
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(
            f"config must be an lsc.TrainConfig, got {type(config).__name__} (more entries for "
            "config.json go in extra=)"
        )
    cfg = overridden(config if config is not None else TrainConfig(), settings, "train()", KEYWORDS)
    if device is not None:
        model.to(select_device(device))
    ddp = _dist.resolve(distributed)
    main = not ddp or _dist.is_main()
    autocast = _autocast(cfg.amp, _where(model)[0])
    check_compatible(model, task, max_length=max_length)
    dev, dtype = _where(model)
    params = tuple(p for p in model.parameters() if p.requires_grad)
    if not params:
        raise ValueError("the model has no trainable parameters (requires_grad=False everywhere)")
    from .version import __version__

    record = {
        "lsc": __version__,
        "task": task.describe(),
        "model": _describe(model),
        "train": cfg.record(dev, _dist.world_size() if ddp else None),
        **dict(extra or {}),
    }
    folder = Path(out) if out is not None else None
    with hold_directory(folder if main else None):  # one run per directory, found writable before any work
        opt = make_optimizer(cfg.optimizer, params, cfg.lr, weight_decay=cfg.weight_decay)
        per_epoch = task.train.num_batches(cfg.batch_size)
        trainer = _Trainer(
            model=model,
            task=task,
            config=cfg,
            opt=opt,
            params=params,
            carry=_carries(model, task),
            dev=dev,
            dtype=dtype,
            ddp=ddp,
            autocast=autocast,
            per_epoch=per_epoch,
            progress=progress if main else False,
            folder=folder if main else None,
            sched=_cosine(opt, cfg.epochs * per_epoch) if cfg.schedule == "cosine" else None,
            identity=identity(record),
        )
        run, best_state = trainer.resume(_resume_state(folder, record, model) if folder is not None else None)
        if folder is not None and main:
            write_atomic(folder / CONFIG, json.dumps(record, indent=2, default=str) + "\n")
        return trainer.fit(run, best_state, callback)


@dataclass
class _Trainer:
    """What a training run keeps from epoch to epoch: the model, its task, the settings, the
    optimiser and schedule, and where the run writes."""

    model: nn.Module
    task: Task
    config: TrainConfig
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR | None
    params: tuple[nn.Parameter, ...]
    carry: bool
    dev: torch.device
    dtype: torch.dtype
    ddp: bool
    autocast: Callable[[], object]
    per_epoch: int
    progress: bool | None
    folder: Path | None  # where this process writes (None: it does not)
    identity: Mapping[str, object]  # what the checkpoint carries of the run (see identity())

    def fit(
        self, run: _Run, best_state: dict[str, Tensor], callback: Callable[[dict[str, object]], None] | None
    ) -> TrainResult:
        """Epochs until the run stops (the budget, early stopping, divergence, Ctrl-C); the
        best weights are left in the model."""
        epochs = self.config.epochs
        start = time.perf_counter() - run.seconds
        try:
            while not run.stopped:
                if run.epoch >= epochs:
                    run.stopped, run.message = "epochs", f"finished {epochs} epochs"
                    break
                row = self.epoch(run.epoch)
                improved = run.record(row, self.task, self.config.patience, time.perf_counter() - start)
                if improved:
                    best_state = copy.deepcopy(self.model.state_dict())
                self.save(run, best_state, improved)
                if callback is not None:
                    callback(row)
        except NonFiniteError as exc:
            run.stopped, run.message = "diverged", f"{exc}; restored the weights of epoch {run.best_epoch}"
            self.save(run, best_state)
        except KeyboardInterrupt:
            run.stopped = "interrupted"
            run.message = f"interrupted in epoch {run.epoch + 1}; run again with the same out directory to resume"
        run.seconds = time.perf_counter() - start
        self.model.load_state_dict(best_state)
        return self.finish(run, best_state)

    def resume(self, saved: Mapping[str, object] | None) -> tuple[_Run, dict[str, Tensor]]:
        """The run so far and its best weights: from ``saved`` (model, optimiser and schedule
        restored) or a fresh start; under DDP every rank then holds rank 0's weights."""
        run = _Run()
        if saved is not None:
            path = self.folder / CHECKPOINT if self.folder is not None else CHECKPOINT
            try:
                self.model.load_state_dict(saved["model"])  # type: ignore[arg-type]
                self.opt.load_state_dict(saved["optimizer"])  # type: ignore[arg-type]
                if self.sched is not None and saved["schedule"] is not None:
                    self.sched.load_state_dict(saved["schedule"])  # type: ignore[arg-type]
                run = _Run(**saved["run"])  # type: ignore[arg-type]
                best_state = saved["best_state"]
            except (RuntimeError, TypeError, KeyError, ValueError) as exc:
                raise DamagedFileError(
                    path, f"its contents do not fit this run ({str(exc).splitlines()[0][:200]})"
                ) from None
            if run.stopped == "epochs" and run.epoch < self.config.epochs:
                run.stopped = ""  # more epochs asked for: carry on
        if self.ddp:  # every rank starts from rank 0's weights
            _dist.broadcast_module(self.model)
        if saved is None:
            best_state = copy.deepcopy(self.model.state_dict())
        return run, best_state  # type: ignore[return-value]

    def epoch(self, epoch: int) -> dict[str, object]:
        """Train one epoch (0-based), then evaluate; the epoch's metrics row. Its shuffle
        and dropout are seeded by (seed, epoch), so a resumed epoch repeats exactly."""
        t0 = time.perf_counter()
        dev = self.dev
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            # dropout of this epoch (each rank its own masks)
            seed = self.config.seed
            torch.manual_seed(seed * 100_003 + epoch + (7_919 * _dist.rank() if self.ddp else 0))
            gen = torch.Generator().manual_seed(seed * 100_003 + epoch)  # shuffle of this epoch
            bar = progress_bar(
                self.progress, self.per_epoch, f"epoch {epoch + 1}/{self.config.epochs}", "batch", leave=True
            )
            try:
                tally, norms, clipped = self.train_pass(gen, bar)
            finally:
                if bar is not None:
                    bar.close()  # type: ignore[attr-defined]
        metric = self.task.metric
        row: dict[str, object] = {
            "epoch": epoch + 1,
            "train_loss": tally.loss(),
            f"train_{metric}": tally.metric(self.task.objective),
        }
        val = self.evaluate("val")
        row.update({"val_loss": val["loss"], f"val_{metric}": val[metric]})
        if self.config.test_every_epoch:
            test = self.evaluate("test")
            row.update({"test_loss": test["loss"], f"test_{metric}": test[metric]})
        row.update(
            lr=self.opt.param_groups[0]["lr"],
            grad_norm=sum(norms) / max(len(norms), 1),
            grad_norm_max=max(norms, default=0.0),
            clipped=clipped / max(len(norms), 1),
            seconds=round(time.perf_counter() - t0, 3),
        )
        return row

    def evaluate(self, split: str) -> dict[str, float]:
        with self.autocast():  # type: ignore[attr-defined]
            size = self.config.eval_batch_size or self.config.batch_size
            return evaluate(self.model, self.task, split, batch_size=size, distributed=self.ddp)

    def train_pass(self, gen: torch.Generator, bar: object | None) -> tuple[Tally, list[float], int]:
        """One pass over the training split; returns (tally, gradient norms, clipped steps).
        With ``ddp`` every rank takes its slice of each global batch; its loss is weighted by
        its share of the batch's loss terms and the gradients summed over ranks, which gives
        the gradient of the global batch's mean loss."""
        model, task, opt, dev, dtype, clip = self.model, self.task, self.opt, self.dev, self.dtype, self.config.clip
        model.train()
        tally, norms, clipped, states = Tally(), [], 0, None
        for i, batch in enumerate(task.batches("train", self.config.batch_size, shuffle=True, generator=gen)):
            if not self.ddp:
                b = batch.to(dev, dtype)
                with self.autocast():  # type: ignore[attr-defined]  # the forward pass only (a null context without amp)
                    y, states = _forward(model, b, states, self.carry)
                loss, t = loss_and_tally(task.objective, y.float(), b.y, b.mask)
                if not torch.isfinite(loss):
                    raise NonFiniteError(f"the training loss became {float(loss)} in batch {i}")
                opt.zero_grad(set_to_none=True)
                torch.autograd.backward(loss)
            else:
                b = _shard(batch).to(dev, dtype)
                loss, t = None, Tally()
                if b.x.shape[0] > 0:
                    with self.autocast():  # type: ignore[attr-defined]
                        y, states = _forward(model, b, states, self.carry)
                    loss, t = loss_and_tally(task.objective, y.float(), b.y, b.mask)
                bad = loss is not None and not bool(torch.isfinite(loss))
                total, nbad = _dist.all_reduce_floats([t.loss_count, float(bad)], device=dev)
                if nbad:  # decided on every rank alike
                    raise NonFiniteError(f"the training loss became non-finite in batch {i} (on {int(nbad)} rank(s))")
                opt.zero_grad(set_to_none=True)
                if loss is not None and total > 0:
                    torch.autograd.backward(loss * (t.loss_count / total))
                _dist.all_reduce_grads(self.params, average=False)
            # the total norm before clipping; with clip=None nothing is rescaled (max_norm = inf)
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, clip if clip is not None else math.inf))
            if not math.isfinite(norm):
                raise NonFiniteError(f"the gradient norm became {norm} in batch {i}")
            opt.step()
            if self.sched is not None:
                self.sched.step()
            tally.add(t)
            norms.append(norm)
            clipped += int(clip is not None and norm > clip)
            if bar is not None:
                bar.set_postfix(loss=f"{tally.loss():.4f}", refresh=False)  # type: ignore[attr-defined]
                bar.update(1)  # type: ignore[attr-defined]
        return (_reduce_tally(tally, dev) if self.ddp else tally), norms, clipped

    def save(self, run: _Run, best_state: Mapping[str, Tensor], improved: bool = False) -> None:
        """After an epoch: best.pt (when it improved), metrics.jsonl and the checkpoint."""
        if self.folder is None:
            return
        if improved:
            _save_model(self.model, self.folder / BEST, self.task, run)
        write_atomic(self.folder / METRICS, _metrics(run))
        _save_checkpoint(self.folder / CHECKPOINT, self.model, self.opt, self.sched, run, best_state, self.identity)

    def finish(self, run: _Run, best_state: dict[str, Tensor]) -> TrainResult:
        """The result (the model holds the best weights), and every derived file written
        afresh from the run's state, also when a finished run is called again."""
        task = self.task
        best = run.history[run.best_epoch - 1] if run.best_epoch else {}
        test_value = best.get(f"test_{task.metric}")
        if not self.config.test_every_epoch and run.best_epoch:
            test_value = self.evaluate("test")[task.metric]
        folder = self.folder
        result = TrainResult(
            task=task.name,
            metric=task.metric,
            best_epoch=run.best_epoch,
            val=cast("float | None", best.get(f"val_{task.metric}")),  # an epoch row's metric: a float
            test=test_value,  # type: ignore[arg-type]
            epochs=run.epoch,
            seconds=run.seconds,
            stopped=run.stopped,
            message=run.message,
            history=run.history,
            best_state=best_state,
            out=None if folder is None else str(folder),
        )
        if folder is not None and run.stopped != "interrupted":
            if run.best_epoch:
                _save_model(self.model, folder / BEST, task, run)
            if run.stopped in ("epochs", "early_stopping", "diverged"):
                _save_checkpoint(folder / CHECKPOINT, self.model, self.opt, self.sched, run, best_state, self.identity)
            write_atomic(folder / METRICS, _metrics(run))
            write_atomic(folder / RESULT, json.dumps(result.summary(), indent=2) + "\n")
        return result


def _autocast(amp: str | None, dev: torch.device) -> Callable[[], object]:
    """A factory of the autocast context for ``amp`` on ``dev`` (a null context when off)."""
    if amp is None:
        return contextlib.nullcontext
    if amp not in AMP:
        raise unknown_name("amp", amp, AMP)
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"amp bf16 asked for, but {dev} does not support bfloat16; leave amp off")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"amp bf16 is supported on cpu and cuda, not {dev.type}")
    return lambda: torch.autocast(dev.type, dtype=torch.bfloat16)


def _shard(batch: Batch) -> Batch:
    """This rank's slice of a global batch."""
    return Batch(_dist.shard(batch.x), _dist.shard(batch.y), _dist.shard(batch.mask), batch.carry)  # type: ignore[arg-type]


def _reduce_tally(tally: Tally, dev: torch.device) -> Tally:
    s = _dist.all_reduce_floats([tally.loss_sum, tally.loss_count, tally.metric_sum, tally.metric_count], device=dev)
    return Tally(s[0], round(s[1]), s[2], round(s[3]))


def _forward(model: nn.Module, b, states, carry: bool):
    """Outputs of one batch; with ``carry`` (stateful LM on a StackedRNN) the state of the
    previous window goes in, detached (truncated BPTT)."""
    if not carry:
        return model(b.x), None
    y, new = model(b.x, states=states if b.carry else None, return_states=True)
    return y, [s.detach() for s in new]


def _carries(model: nn.Module, task: Task) -> bool:
    return task.stateful and isinstance(model, StackedRNN)


def _where(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next((p for p in model.parameters() if p.is_floating_point()), None)
    if p is None:
        return torch.device("cpu"), torch.get_default_dtype()
    return p.device, p.dtype


def _cosine(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """lr * (0.1 + 0.9 * (1 + cos(pi * step / total)) / 2): from lr to 0.1 lr over the run."""
    total = max(total, 1)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.1 + 0.45 * (1.0 + math.cos(math.pi * min(step, total) / total))
    )


def _describe(model: nn.Module) -> dict[str, object]:
    try:
        return describe(model)
    except TypeError:
        return {"class": type(model).__name__, "parameters": {k: list(v.shape) for k, v in model.state_dict().items()}}


def _metrics(run: _Run) -> str:
    return "".join(json.dumps(r) + "\n" for r in run.history)


def _save_model(model: nn.Module, path: Path, task: Task, run: _Run) -> None:
    """The best weights, loadable with ``lsc.load`` (which restores ``max_length``)."""
    best = run.history[run.best_epoch - 1] if run.best_epoch else {}
    extra = {"window": task.steps, "task": task.describe(), "epoch": run.best_epoch, "metrics": best}
    try:
        save(model, path, **extra)
    except TypeError:  # a model lsc cannot describe: its state_dict
        write_state(path, "weights", {"state_dict": model.state_dict(), **extra})


CHECKPOINT_KIND = "train-checkpoint"


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LambdaLR | None,
    run: _Run,
    best_state: Mapping[str, Tensor],
    identity: Mapping[str, object],
) -> None:
    write_state(
        path,
        CHECKPOINT_KIND,
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "schedule": sched.state_dict() if sched is not None else None,
            "run": asdict(run),
            "best_state": best_state,
            "identity": dict(identity),
        },
    )


def identity(record: Mapping[str, object]) -> dict[str, object]:
    """What must match for a run to resume, from its ``config.json`` record: the task, the
    model, the settings of :data:`RESUME_KEYS` (one recorded before it existed reads as its
    default) and the caller's extra entries, as JSON values; not the lsc version, the
    device, the world size or the budgets. The checkpoint carries its run's identity, so
    another run's checkpoint copied into a directory is refused, not resumed."""
    rec = json.loads(json.dumps(dict(record), default=str))
    train = rec.get("train")
    train = train if isinstance(train, dict) else {}
    out = {k: v for k, v in rec.items() if k != "lsc"}
    out["train"] = {k: train.get(k, default_of(TrainConfig, k)) for k in RESUME_KEYS}
    return out


def _resume_state(folder: Path, record: Mapping[str, object], model: nn.Module) -> dict[str, object] | None:
    """The saved state when ``folder`` holds a checkpoint of the same run; an error
    naming the differences (old -> new) when its ``config.json`` or its checkpoint is
    another run's; ``None`` when it holds none. A checkpoint written before checkpoints
    carried their run's identity is resumed on its ``config.json`` alone."""
    ckpt = folder / CHECKPOINT
    if not ckpt.exists():
        return None
    try:
        old = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        raise ValueError(
            f"{folder} holds {CHECKPOINT} but no readable {CONFIG}; use another directory, or delete it to start "
            f"afresh ({AFRESH})"
        ) from None
    if not isinstance(old, dict):
        raise DamagedFileError(folder / CONFIG, "it is not a JSON object")
    ours = identity(record)
    diffs = changes(identity(old), ours)
    if diffs:
        raise ValueError(
            f"{folder} holds another run (different {'; '.join(diffs)}); use another directory, or delete it to "
            f"start afresh ({AFRESH})"
        )
    blob = read_state(ckpt, CHECKPOINT_KIND, map_location=_where(model)[0])
    require(blob, ckpt, "model", "optimizer", "schedule", "run", "best_state")
    theirs = blob.get("identity")
    if theirs is not None and theirs != ours:
        diffs = changes(theirs, ours) if isinstance(theirs, dict) else ["its identity is unreadable"]
        raise ValueError(
            f"{ckpt} is another run's checkpoint, not that of the run {CONFIG} records (different "
            f"{'; '.join(diffs)}); move it away, or delete it to start afresh ({AFRESH})"
        )
    return blob
