"""The pre-training loop: :func:`pretrain` (Herranz-Celotti & Rouat; docs/design.md, section 9).

It takes its settings as one :class:`~.config.PretrainConfig`, holds the checkpoint
directory, resumes a saved run, then repeats :meth:`Pretrainer.step <.step.Pretrainer.step>`
on the batches of an :class:`~.sources.InputSource` until the stopping rule
(:mod:`.stopping`) says converged, or a budget runs out; it leaves the best weights in the
model and measures the result afresh on a new batch. The model's own parameters change in
place; nothing else of it does.
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import distributed as _dist
from .. import parts as _parts
from ..checks import NonFiniteError, check_parameters_finite, check_positive
from ..condition import (
    DEFAULT_PRECISION,
    StabilityReport,
    Target,
    estimator_generator,
    in_module,
    joined,
    measure,
    resolve_target,
    shared_target,
)
from ..grid import available_kinds, check_kinds, edge_list
from ..interrupts import interrupts_deferred
from ..models import Stack, as_stack
from ..progress import progress_bar
from ..rundir import hold_directory
from .checkpoint import NAME, StepStart, load_state, save_state
from .config import PretrainConfig, configure
from .sources import InputSource, RankItems, next_input
from .step import Pretrainer, State, StepRecord
from .stopping import Rule

DEFAULT_KINDS = ("encoder", "time", "depth")
# a part of a user's model: its encoder edge only when asked, for it costs the most steps
# (measured: docs/own-model.md, "What pre-training costs")
PART_KINDS = ("time", "depth")
CHECKPOINT = NAME
PART_PREFIX = "part-"  # a part's checkpoint directory: part_directory()


@dataclass
class PretrainResult:
    """What :func:`pretrain` did. ``best_state`` are the weights left in the model;
    ``history`` holds one :class:`~.step.StepRecord` per step (each reads as its JSON row)."""

    converged: bool
    stopped: str  # "converged" | "max_steps" | "max_seconds" | "diverged" | "interrupted"
    message: str
    steps: int
    seconds: float
    best_step: int
    best_gap: float
    target: dict[str, float]
    history: list[StepRecord] = field(repr=False)
    best_state: dict[str, Tensor] = field(repr=False)
    report: StabilityReport | None = field(default=None, repr=False)
    parts: dict[str, PretrainResult] = field(default_factory=dict, repr=False)  # of a model with several

    def summary(self) -> dict[str, object]:
        """JSON-ready summary (no weights, no history)."""
        finite = math.isfinite(self.best_gap)  # not when no step was taken
        return {
            **({"parts": {n: r.summary() for n, r in self.parts.items()}} if self.parts else {}),
            "converged": self.converged,
            "stopped": self.stopped,
            "message": self.message,
            "steps": self.steps,
            "seconds": self.seconds,
            "best_step": self.best_step if finite else None,
            "best_gap": self.best_gap if finite else None,
            "target": dict(self.target),
            "report": self.report.to_dict() if self.report is not None else None,
        }


def history_jsonl(history: Iterable[Mapping[str, object]]) -> str:
    """The history as JSON lines."""
    return "".join(json.dumps(dict(row)) + "\n" for row in history)


def _targets(
    stack: Stack, target: Target, kinds: Sequence[str], time_steps: int, decoder_target: float
) -> dict[str, float]:
    goal = resolve_target(target, stack.num_layers, time_steps)
    if "decoder" in kinds and "decoder" not in goal:
        goal["decoder"] = check_positive(decoder_target, "decoder_target")
    missing = [k for k in kinds if k not in goal]
    if missing:
        raise ValueError(f"the target names no value for the {', '.join(missing)} edges being pre-trained")
    return {k: v for k, v in goal.items() if k in kinds}


@dataclass(frozen=True)
class _Options:
    """What :func:`pretrain` takes besides the model, its data and the settings: where and
    how the run is kept and watched (see :func:`pretrain`)."""

    checkpoint: str | Path | None = None
    progress: bool | None = None
    callback: Callable[[Mapping[str, object]], None] | None = None
    distributed: bool | None = None
    extra: Mapping[str, object] | None = None


def pretrain(
    model: nn.Module,
    data: Tensor | Iterable[object] | None = None,
    config: PretrainConfig | None = None,
    *,
    checkpoint: str | Path | None = None,
    progress: bool | None = None,
    callback: Callable[[Mapping[str, object]], None] | None = None,
    distributed: bool | None = None,
    part: str | None = None,
    input_key: _parts.InputKey = 0,
    forward: _parts.Forward | None = None,
    extra: Mapping[str, object] | None = None,
    **settings: object,
) -> PretrainResult:
    """Pre-train ``model`` in place so every local Jacobian's radius sits at its target.

    ``pretrain(model, x, target=0.5, max_steps=200)`` is
    ``pretrain(model, x, PretrainConfig(target=0.5, max_steps=200))``.

    Args:
        model: a ``StackedRNN``, an ``FFN``, a ``torch.nn.LSTM/GRU/RNN`` or any model the
            step protocol sees (:func:`lsc.models.as_stack`); for a larger model (an
            embedding, an ``nn.LSTM``, a head ...) every recurrent part in it, in the
            order data reaches them, each on what it receives once the parts before it
            are pre-trained (``part``: one of them). A deep bidirectional module is one
            deep stack: the layers above the first are pre-trained on their depth edge
            (from both directions below), and ``auto`` is 0.5 there.
        data: input batches in the module's own layout, as :func:`lsc.measure` reads
            them (time-first for ``batch_first=False``): a tensor (B, T, F) (random
            mini-batches of ``batch_size``), a ``DataLoader`` or other re-iterable
            (tuples give their first element), or ``None`` for Gaussian input of
            (batch_size, time_steps, features).
        config: the settings (:class:`~lsc.pretraining.PretrainConfig`; ``None``: its defaults).
        **settings: settings by name, in place of ``config``'s (a name that is no field of
            :class:`~lsc.pretraining.PretrainConfig` is refused, naming the fields; the
            deprecated ``method``, ``krylov_steps``, ``rtol`` set the ``estimator``).
        checkpoint: a directory; the run holds it (a second process is refused), saves
            its state there every ``checkpoint_every`` steps and when it stops, and a later
            call resumes from it: exactly, with the data's position too (a re-iterable is
            passed again up to where the run stopped). A call with other settings than the
            saved run's (any but the budgets ``max_steps``, ``max_seconds``,
            ``checkpoint_every``) is refused with the differences listed, old -> new.
        progress: a progress bar (default: when stderr is a terminal and tqdm is installed).
        callback: called with each finished step's record (a mapping: its JSON row; it may
            raise ``KeyboardInterrupt`` to stop the run resumably, but must not change the model).
        distributed: data-parallel over the initialised process group (``None``: when one
            of more than one process is active, e.g. under torchrun). Every rank draws its
            own batches (a tensor or noise: its own seeded stream; an iterable: every
            world-size-th item), the loss gradients are averaged over ranks, and the
            radii of each step are averaged over ranks before the running means, so the
            stopping rule, the best weights and plateau restarts are decided alike and
            all ranks stop at the same step with identical weights. Only rank 0 writes
            the checkpoint; ``shuffle`` is not supported.
        part: the name of one recurrent part of a larger model to pre-train (default:
            all of them; with several, the result holds one result per part in
            ``parts``, is ``converged`` when all are, and ``checkpoint`` keeps each in its
            own sub-directory). Parts are found by running ``model`` on the data
            (:mod:`lsc.parts`); only their parameters change, the model's class,
            attributes and ``state_dict`` keys stay. The report's edges are named by part.
        input_key, forward: how a larger model is called on one data item
            (:func:`lsc.parts.caller`): ``input_key`` an index of a tuple or list (default
            0: ``(inputs, targets)`` batches) or a dict key (``"input_ids"``), a tuple of
            them (``(0, 1)``: ``model(item[0], item[1])``, a ``forward(x, lengths)``
            classifier fed ``(x, lengths, y)``), or any ``forward(model, item)``.
        extra: JSON-ready entries that must also match for a checkpoint to resume (the
            command line records its model, init and data options here).
    """
    cfg = configure(config, settings)
    options = _Options(
        checkpoint=checkpoint, progress=progress, callback=callback, distributed=distributed, extra=extra
    )
    if not _parts.visible(model):
        return _loud(_pretrain_parts(model, data, cfg, options, part, _parts.caller(input_key, forward)), cfg)
    if part is not None:
        raise ValueError(
            f"part={part!r} names a part of a larger model; a {type(model).__name__} is pre-trained as a whole"
        )
    key = _parts.one_input(model, input_key, forward, "pre-trained on its input tensors themselves: pass those")
    return _loud(_pretrain_stack(model, data, cfg, options, key), cfg)


class NotConvergedWarning(UserWarning):
    """Pre-training stopped at its budget (or diverged) with edges away from their target."""


def _loud(result: PretrainResult, cfg: PretrainConfig) -> PretrainResult:
    """``result``, after a :class:`NotConvergedWarning` when it did not converge (an
    interrupted run excepted: it resumes): which edges missed, by how much, what to try."""
    if result.converged or result.stopped == "interrupted":
        return result
    warnings.warn(not_converged(result, cfg.tol, cfg.max_steps), NotConvergedWarning, stacklevel=3)
    return result


def not_converged(result: PretrainResult, tol: float, max_steps: int) -> str:
    """One line: how pre-training stopped, the edges outside ``tol`` on the fresh check
    (``part kind layer: radius (gap)``) and the remedies that fit."""
    missed: list[str] = []
    kinds: set[str] = set()
    for r in result.parts.values() or [result]:  # each part's own report: parts may resolve auto apart
        if r.report is None:
            continue
        for e, gap in zip(r.report.edges, r.report.gaps(r.target or None)):
            if gap is not None and not abs(gap) <= tol:
                kinds.add(e.kind)
                where = f"{e.module} " if e.module else ""
                missed.append(f"{where}{e.kind} {e.layer}: {e.mean:.3f} ({gap:+.3f})")
    tries = [
        {"diverged": "lower lr", "max_seconds": "raise max_seconds"}.get(
            result.stopped, f"raise max_steps (now {max_steps})"
        )
    ]
    if "encoder" in kinds:
        tries.append("leave the encoder edge out (kinds=('time', 'depth'); it costs the most steps)")
    tries.append(f"accept a larger tol (now {tol})")
    edges = f"; off target: {', '.join(missed)}" if missed else ""
    return (
        f"pre-training did not converge ({result.stopped} after {result.steps} steps, {result.seconds:.0f} s)"
        f"{edges}. Try: {'; '.join(tries)}"
    )


def _pretrain_stack(
    model: nn.Module,
    data: Tensor | Iterable[object] | None,
    cfg: PretrainConfig,
    options: _Options,
    input_key: int | str,
    defaults: Sequence[str] = DEFAULT_KINDS,
) -> PretrainResult:
    """:func:`pretrain` of a model the step protocol sees (``defaults``: its kinds when
    the settings name none)."""
    stack = as_stack(model)
    check_parameters_finite(getattr(stack, "source", stack))  # a broken model is named, not "diverged"
    params = tuple(p for p in stack.parameters() if p.requires_grad)
    if not params:
        raise ValueError("the model has no trainable parameters (requires_grad=False everywhere); nothing to pre-train")
    ddp = _dist.resolve(options.distributed)
    main = not ddp or _dist.is_main()
    if ddp and cfg.shuffle:
        raise ValueError("shuffle is not supported in distributed pre-training (the ranks would shuffle differently)")
    seed = cfg.seed
    # each rank its own stream (rank 0 draws what a single process draws)
    gen = estimator_generator(None if seed is None else seed + (7_919 * _dist.rank() if ddp else 0), stack.device)
    if ddp and data is not None and not isinstance(data, Tensor):
        data = RankItems(data, _dist.rank(), _dist.world_size())
    source = InputSource(
        stack, data, batch_size=cfg.batch_size, time_steps=cfg.time_steps, generator=gen, input_key=input_key
    )
    kinds = cfg.kinds
    if kinds is None:
        kinds = _default_kinds(cfg, available_kinds(stack), defaults)
    kinds = check_kinds(stack, kinds)
    first = next_input(stack, source, 0)
    goal = _targets(stack, cfg.target, kinds, first.shape[1], cfg.decoder_target)
    grid = tuple(edge_list(stack, kinds))
    stopping = tuple(e for e in grid if e[0] != "decoder") or grid
    settings = json.loads(json.dumps({**cfg.record(goal, kinds), **dict(options.extra or {})}, default=str))
    clock = _Clock()
    rule = Rule(
        goal=goal, stopping=stopping, tol=cfg.tol, patience=cfg.patience, plateau=cfg.plateau, smoothing=cfg.smoothing
    )
    pre = Pretrainer(
        model=model,
        stack=stack,
        params=params,
        rule=rule,
        kinds=kinds,
        edges=grid,
        config=cfg,
        generator=gen,
        ddp=ddp,
        elapsed=clock.elapsed,
    )
    path = None if options.checkpoint is None else Path(options.checkpoint) / CHECKPOINT
    # one run per directory, found writable before any work
    with hold_directory(path.parent if path is not None and main else None, "checkpoint"):
        state = pre.init(cfg.lr)
        if path is not None and path.exists():
            state = load_state(path, pre, settings)
            if state.position > 0:
                source.seek(state.position)
        if ddp:
            _dist.broadcast_module(model)  # every rank starts from rank 0's weights
            if gen is not None and state.progress.step > 0:  # resumed: the checkpoint holds rank 0's stream only
                gen.manual_seed(int(seed) + 0x5EED_15C + 7_919 * _dist.rank() + 1_000_003 * state.progress.step)  # type: ignore[arg-type]
        if (
            state.stopped in ("max_steps", "max_seconds")
            and state.progress.step < cfg.max_steps
            and (cfg.max_seconds is None or state.seconds < cfg.max_seconds)
        ):
            state = replace(state, stopped="", message="")  # a larger budget: carry on
        run = _Run(
            pre=pre,
            source=source,
            path=path if main else None,
            settings=settings,
            clock=clock,
            progress=options.progress if main else False,
            callback=options.callback,
        )
        state = run.loop(state, first if state.position == 0 else None)
    return _result(pre, source, state, run.report)


def _pretrain_parts(
    model: nn.Module,
    data: Tensor | Iterable[object] | None,
    cfg: PretrainConfig,
    options: _Options,
    name: str | None,
    call: _parts.Forward,
) -> PretrainResult:
    """:func:`pretrain` of the recurrent parts of a larger model (or the one called
    ``name``), one after another in the order data reaches them."""
    found = _parts.find(model, _probe(model, data, cfg.batch_size), call)
    names = [p.name for p in found]
    if name is not None and name not in names:
        raise ValueError(f"no recurrent part {name!r} in a {type(model).__name__}; found: {', '.join(names)}")
    own = {p.name: p.kinds(cfg.kinds) for p in found}
    chosen = [name] if name is not None else [n for n in names if own[n] != ()]  # () : none of the kinds asked
    if not chosen or own[chosen[0]] == ():
        raise ValueError(f"no recurrent part of the {type(model).__name__} has {', '.join(cfg.kinds or ())} edges")
    results: dict[str, PretrainResult] = {}
    for n in chosen:
        where = options
        if len(names) > 1 and options.checkpoint is not None:  # each part its own run directory, part= too
            where = replace(options, checkpoint=part_directory(options.checkpoint, n))
        results[n] = _pretrain_part(model, data, cfg, where, n, call)
        if results[n].stopped == "interrupted":
            break  # the parts left wait for the run to resume
    return results[chosen[0]] if len(chosen) == 1 else _combined(model, results)


def part_directory(checkpoint: str | Path, name: str) -> Path:
    """Where the part ``name`` of a model with several keeps its checkpoint."""
    return Path(checkpoint) / (PART_PREFIX + (name.replace("/", "-") or "forward"))


def part_directories(checkpoint: str | Path) -> list[Path]:
    """The parts' checkpoint directories a pre-training of several parts left in ``checkpoint``."""
    return sorted(p for p in Path(checkpoint).glob(PART_PREFIX + "*") if (p / CHECKPOINT).is_file())


def _probe(model: nn.Module, data: Tensor | Iterable[object] | None, batch_size: int) -> object:
    """One item of ``data`` to find the parts with."""
    if data is None:
        raise ValueError(
            f"a {type(model).__name__} is not a stack: lsc finds its recurrent parts by running it, so pass data "
            "(its inputs, as its forward takes them)"
        )
    if isinstance(data, Tensor):
        return data[:batch_size]
    if isinstance(data, Iterable) and not isinstance(data, Iterator):
        item = next(iter(data), None)
        if item is None:
            raise ValueError("data yielded no batches; pass a non-empty tensor, DataLoader or re-iterable")
        return item
    raise ValueError(
        "data must be a tensor or a re-iterable of batches (a list, a DataLoader), not a one-shot iterator"
    )


def _pretrain_part(
    model: nn.Module,
    data: Tensor | Iterable[object] | None,
    cfg: PretrainConfig,
    options: _Options,
    name: str,
    call: _parts.Forward,
) -> PretrainResult:
    """:func:`pretrain` of one recurrent part of a larger model, on the inputs it receives
    now (found again: the parts before it may have changed them)."""
    found = _parts.named(model, _probe(model, data, cfg.batch_size), name, call)
    assert data is not None  # _probe refuses None
    inputs = (
        _parts.inputs_of(model, found, data, cfg.batch_size, call)
        if isinstance(data, Tensor)
        else _parts.Through(model, found.name, data, call)
    )
    result = _pretrain_stack(found.module, inputs, _for_part(cfg, found), options, 0, PART_KINDS)
    report = result.report
    target = dict(result.target)
    if found.below and "encoder" in target:
        target["depth"] = target.pop("encoder")  # its input edge is its module's depth edge
    if report is not None:
        report = in_module(report, found)
        report = replace(report, target=target, edges=[replace(e, module=found.name) for e in report.edges])
    return replace(
        result,
        report=report,
        target=target,
        message=f"pre-trained {found.name or 'the forward direction'}"
        f"{'' if found.depth else f' ({type(found.module).__name__})'} of the {type(model).__name__}: "
        + result.message,
    )


def _default_kinds(cfg: PretrainConfig, available: Sequence[str], defaults: Sequence[str]) -> tuple[str, ...]:
    """The kinds pre-trained when the settings name none: of ``available``, the
    ``defaults`` and any kind the target names (the decoder with a decoder target)."""
    named = set(cfg.target) if isinstance(cfg.target, Mapping) else set()
    return tuple(k for k in available if k in defaults or k in named)


def _for_part(cfg: PretrainConfig, part: _parts.Part) -> PretrainConfig:
    """The settings of one layer of a deep bidirectional module: the target resolved at
    the module's depth, the kinds asked of the module as the layer's own (its input edge
    is the module's encoder edge in the first layer, its depth edge above)."""
    if part.depth is None:
        return cfg
    stack = as_stack(part.module)
    steps = part.inputs.shape[1 if stack.batch_first else 0]
    goal = resolve_target(cfg.target, part.depth, steps)
    asked = cfg.kinds
    if asked is None:
        asked = _default_kinds(cfg, ("encoder", "time", "depth"), PART_KINDS)
    kinds = part.kinds(asked) or ()
    missing = [k for k in kinds if ("depth" if part.below and k == "encoder" else k) not in goal]
    if missing:
        raise ValueError(f"the target names no value for the {', '.join(missing)} edges being pre-trained")
    own = {k: goal["depth" if part.below and k == "encoder" else k] for k in kinds}
    return replace(cfg, target=own, kinds=kinds)


def _combined(model: nn.Module, results: Mapping[str, PretrainResult]) -> PretrainResult:
    """One result over several parts: converged when every part is; the first part's
    stop that is not convergence; steps and seconds summed; the worst best gap; the
    histories one after another; the reports joined (edges named by part) when the parts
    share a target, else each part's report is in ``parts`` only."""
    rs = list(results.values())
    worst = max(rs, key=lambda r: r.best_gap if math.isfinite(r.best_gap) else math.inf)
    reports = {n: r.report for n, r in results.items() if r.report is not None}
    target = shared_target([r.target for r in rs])
    return PretrainResult(
        converged=all(r.converged for r in rs),
        stopped="interrupted"
        if any(r.stopped == "interrupted" for r in rs)  # it resumes
        else next((r.stopped for r in rs if not r.converged), "converged"),
        message="; ".join(r.message for r in rs),
        steps=sum(r.steps for r in rs),
        seconds=sum(r.seconds for r in rs),
        best_step=worst.best_step,
        best_gap=worst.best_gap,
        target=target if target is not None else {},
        history=[row for r in rs for row in r.history],
        best_state=copy.deepcopy(model.state_dict()),
        # one table when the parts share a target (auto differs between deep and one-layer parts)
        report=joined(list(reports.values()), list(reports)) if reports and target is not None else None,
        parts=dict(results),
    )


class _Clock:
    """Seconds of the run, counting what a resumed run did before."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def resume(self, seconds: float) -> None:
        self.start = time.perf_counter() - seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


@dataclass
class _Run:
    """The loop around :meth:`Pretrainer.step`: budgets, progress, callback, checkpoints."""

    pre: Pretrainer
    source: InputSource
    path: Path | None  # where this process writes the checkpoint (None: it does not)
    settings: Mapping[str, object]
    clock: _Clock
    progress: bool | None
    callback: Callable[[Mapping[str, object]], None] | None
    report: StabilityReport | None = None  # the fresh measurement that confirmed convergence
    refuted: int = 0  # fresh checks that found an edge off after the rule said converged

    def loop(self, state: State, pending: Tensor | None) -> State:
        """Steps until the run stops; the final state (its ``stopped`` and ``message`` set)."""
        pre, source = self.pre, self.source
        self.clock.resume(state.seconds)
        bar = progress_bar(self.progress if not state.stopped else False, pre.config.max_steps, "pretrain", "step")
        if bar is not None:
            bar.update(state.progress.step)  # type: ignore[attr-defined]
        stopped, message, start = state.stopped, state.message, None
        try:
            while not stopped:
                stopped, message = self._budget(state.progress.step)
                if stopped:
                    break
                # a resumed step redraws the same batch, from the same place in the data
                start = StepStart(
                    pre.generator.get_state() if pre.generator is not None else None,
                    0 if pending is not None else source.position,
                )
                xb = pending if pending is not None else next_input(pre.stack, source, state.progress.step)
                pending = None
                if state.progress.step == 0 and not state.history:
                    with interrupts_deferred():  # the multipliers move together with step 0's start
                        pre.first_move(xb)
                state, record = pre.step(state, xb)
                state, start = replace(state, position=source.position), None
                if bar is not None:
                    bar.set_postfix(_postfix(record), refresh=False)  # type: ignore[attr-defined]
                    bar.update(1)  # type: ignore[attr-defined]
                if self.callback is not None:
                    self.callback(record)
                if state.progress.within >= pre.rule.patience:
                    state, self.report = self._confirm(state)
                    if self.report is not None:
                        stopped = "converged"
                        message = (
                            f"every edge within {pre.rule.tol} of its target for {pre.rule.patience} steps "
                            "and on a fresh batch"
                        )
                        if self.refuted:
                            message += f" ({self.refuted} earlier fresh check(s) found an edge off)"
                elif self.path is not None and state.progress.step % pre.config.checkpoint_every == 0:
                    save_state(self.path, pre, state, self.settings, self.clock.elapsed())
        except NonFiniteError as exc:
            stopped, message = "diverged", str(exc)
        except KeyboardInterrupt:
            stopped, message = "interrupted", "interrupted; run again with the same checkpoint directory to resume"
        except BaseException:  # anything else: keep the run resumable and the best weights in place, then re-raise
            if self.path is not None:
                save_state(self.path, pre, state, self.settings, self.clock.elapsed(), start)
            if state.best is not None:
                pre.model.load_state_dict(state.best)
            raise
        finally:
            if bar is not None:
                bar.close()  # type: ignore[attr-defined]
        seconds = self.clock.elapsed()
        if stopped != "interrupted":
            state = replace(state, stopped=stopped, message=message)
        if self.path is not None:
            save_state(self.path, pre, state, self.settings, seconds, start if stopped == "interrupted" else None)
        return replace(state, stopped=stopped, message=message, seconds=seconds)

    def _confirm(self, state: State) -> tuple[State, StabilityReport | None]:
        """The rule's "converged" checked by the final measurement: :func:`lsc.measure` on
        a fresh batch (docs/design.md section 9). When every edge is within ``tol`` there,
        these weights are the result (the step that converged made no update) and the
        report is returned; else the run goes on with the patience count reset."""
        pre = self.pre
        report = _measure_fresh(pre, self.source, state.progress.step)
        goal = {k: v for k, v in pre.rule.goal.items() if k in pre.rule.deciding}  # the decoder does not decide
        worst = max((abs(g) for g in report.gaps(goal) if g is not None), default=0.0)
        if pre.ddp:  # every rank decides alike
            worst = _dist.all_reduce_floats([worst], op="max", device=pre.stack.device)[0]
        state = replace(state, position=self.source.position)
        if worst <= pre.rule.tol:
            return replace(state, best=copy.deepcopy(pre.model.state_dict())), report
        self.refuted += 1
        return replace(state, progress=replace(state.progress, within=0)), None

    def _budget(self, step: int) -> tuple[str, str]:
        max_steps, max_seconds = self.pre.config.max_steps, self.pre.config.max_seconds
        if step >= max_steps:
            return "max_steps", f"reached max_steps={max_steps}"
        late = max_seconds is not None and self.clock.elapsed() >= max_seconds
        if self.pre.ddp and max_seconds is not None:  # the clocks differ: stop when any rank is out of time
            late = _dist.all_reduce_floats([float(late)], op="max", device=self.pre.stack.device)[0] > 0
        if late:
            return "max_seconds", f"reached max_seconds={max_seconds}"
        return "", ""


CONFIRM_SAMPLES = 64
"""The most samples the fresh check of convergence reads: when one batch leaves an edge's
mean with a standard error above ``tol / 8`` (:data:`CONFIRM_NOISE`), fresh batches are
joined (while their shapes agree) up to this many samples and the check measures again.
On one batch of 32 a 30-layer FFN's early depth edges had standard errors ~0.01 against
a tol of 0.02, so its own noise refuted true convergence (docs/design.md section 9);
where one batch is precise enough, the check reads only it."""

CONFIRM_NOISE = 0.125
"""The fresh check reads more (batches, time points) while an edge mean's standard error
exceeds this share of tol. With 1/4 a 4x256 LSTM at tol 0.05 (seed 1) stopped at step 39
with a dense gap of 0.053; with 1/8 at step 72, 0.047 (docs/design.md section 9)."""


def _measure_fresh(pre: Pretrainer, source: InputSource, step: int) -> StabilityReport:
    """:func:`lsc.measure` on a fresh batch of the data (:func:`_measured`), not a step's
    estimate; measured again on more fresh batches (up to :data:`CONFIRM_SAMPLES` samples)
    when the first leaves a deciding edge's mean too noisy to judge against ``tol``."""
    batches = [next_input(pre.stack, source, step)]
    report = _measured(pre, batches)
    if _noise(report, pre) <= CONFIRM_NOISE * pre.rule.tol:
        return report
    while sum(len(b) for b in batches) < CONFIRM_SAMPLES:
        more = next_input(pre.stack, source, step)
        if more.shape[1:] != batches[0].shape[1:]:
            break  # a batch of another length: join only what agrees
        batches.append(more)
    return report if len(batches) == 1 else _measured(pre, batches)


def _measured(pre: Pretrainer, batches: Sequence[Tensor]) -> StabilityReport:
    """:func:`lsc.measure` on the joined batches, adding time points until each edge mean's
    standard error is at most ``CONFIRM_NOISE * tol / target`` of it (the largest deciding
    target): as fine as the check against ``tol`` needs, where measure's default of 1 %
    read a 4x256 LSTM at target 0.5 and tol 0.05 on 8 time points (4.2 s) instead of 4.
    With tol 0 (no convergence wanted) or a zero target: measure's default."""
    fresh = torch.cat(list(batches))
    scale = max((abs(v) for k, v in pre.rule.goal.items() if k in pre.rule.deciding), default=0.0)
    precision = CONFIRM_NOISE * pre.rule.tol / scale if scale > 0 and pre.rule.tol > 0 else DEFAULT_PRECISION
    return measure(
        pre.model,
        fresh if pre.stack.batch_first else fresh.transpose(0, 1),
        target=dict(pre.rule.goal),
        kinds=pre.kinds,
        seed=pre.config.seed,
        precision=precision,
    )


def _noise(report: StabilityReport, pre: Pretrainer) -> float:
    """The largest standard error of a deciding edge's mean."""
    return max((e.standard_error for e in report.edges if e.kind in pre.rule.deciding), default=0.0)


def _result(
    pre: Pretrainer, source: InputSource, state: State, report: StabilityReport | None = None
) -> PretrainResult:
    """The best weights back in the model (for a converged run: the confirmed ones), and
    their measurement on a fresh batch."""
    stopped, message, p = state.stopped, state.message, state.progress
    if state.best is not None:
        pre.model.load_state_dict(state.best)
        if stopped == "diverged":
            message += f"; restored the best weights (step {p.best_step}, rms gap {p.best_gap:.4f})"
    if report is None and stopped != "interrupted":  # measured afresh on a new batch, not the last step's estimate
        try:
            report = _measure_fresh(pre, source, p.step)
        except NonFiniteError as exc:  # even the weights kept diverge on fresh input: say so, return them
            stopped = "diverged"
            message += f"; the final measurement on a fresh batch failed too ({exc})"
    return PretrainResult(
        converged=stopped == "converged",
        stopped=stopped,
        message=message,
        steps=p.step,
        seconds=state.seconds,
        best_step=p.best_step,
        best_gap=p.best_gap,
        target=dict(pre.rule.goal),
        history=list(state.history),
        best_state=dict(state.best) if state.best is not None else copy.deepcopy(pre.model.state_dict()),
        report=report,
    )


def _postfix(record: StepRecord) -> dict[str, str]:
    by_kind: dict[str, list[float]] = {}
    for (kind, _), v in record.radii.items():
        by_kind.setdefault(kind, []).append(v)
    post = {"loss": f"{record.loss:.2e}", "gap": f"{record.worst_gap:.3f}"}
    post.update({k: f"{sum(v) / len(v):.3f}" for k, v in by_kind.items()})
    return post
