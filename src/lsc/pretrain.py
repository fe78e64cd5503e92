"""Pre-training to the Local Stability Condition (Herranz-Celotti & Rouat; lsc_paper.md 2).

Each step draws a batch, runs the model without a graph along its own trajectory to a
few random time points, estimates every chosen edge's per-sample spectral radius
differentiably (matrix-free, :mod:`lsc.jacobian`), and takes one optimiser step on

    loss = mean over edges of mean over samples of (rho_b - target_edge)^2

which is E[(rho - rho*)^2], so it also narrows the spread of the radii (lsc_paper.md
1.3). The model's own parameters change in place; nothing else of it does.

Stopping: every edge's running-mean radius within ``tol`` of its target for ``patience``
consecutive steps (converged), or ``max_steps`` / ``max_seconds``. The weights whose
root-mean-square gap over the edges was smallest are kept and left in the model at the
end (the worst gap would let one edge that cannot reach its target choose them). A loss or a
trajectory that turns NaN/inf (or explodes) stops the run and restores those weights.
With ``checkpoint=DIR`` the run saves its state there and a later call with the same
directory resumes it.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from . import distributed as _dist
from .batches import InputSource
from .checks import NonFiniteError, check_positive, unknown_name
from .condition import StabilityReport, Target, estimator_generator, measure, resolve_target
from .files import DamagedFileError, hold_directory, read_state, require, write_state
from .grid import available_kinds, check_kinds, edge_list, edges, trajectory
from .heuristics import rescale_towards_target, shuffle_weights
from .jacobian import estimate_all
from .models import Stack, as_stack

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
DEFAULT_KINDS = ("encoder", "time", "depth")
EXPLODED = 1e6  # a loss above this means the radii ran away
CHECKPOINT = "checkpoint.pt"
KIND = "pretrain-checkpoint"


@dataclass
class PretrainResult:
    """What :func:`pretrain` did. ``best_state`` are the weights left in the model."""

    converged: bool
    stopped: str  # "converged" | "max_steps" | "max_seconds" | "diverged" | "interrupted"
    message: str
    steps: int
    seconds: float
    best_step: int
    best_gap: float
    target: dict[str, float]
    history: list[dict[str, object]] = field(repr=False)
    best_state: dict[str, Tensor] = field(repr=False)
    report: StabilityReport | None = field(default=None, repr=False)

    def summary(self) -> dict[str, object]:
        """JSON-ready summary (no weights, no history)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("history", "best_state", "report")}
        if not math.isfinite(self.best_gap):  # no step was taken
            d["best_gap"], d["best_step"] = None, None
        d["report"] = self.report.to_dict() if self.report is not None else None
        return d


def edge_key(kind: str, layer: int) -> str:
    """How history rows name an edge: ``"time:3"``."""
    return f"{kind}:{layer}"


def _targets(stack: Stack, target: Target, kinds: Sequence[str], time_steps: int, decoder_target: float) -> dict[str, float]:
    goal = resolve_target(target, stack.num_layers, time_steps)
    if "decoder" in kinds and "decoder" not in goal:
        goal["decoder"] = check_positive(decoder_target, "decoder_target")
    missing = [k for k in kinds if k not in goal]
    if missing:
        raise ValueError(f"the target names no value for the {', '.join(missing)} edges being pre-trained")
    return {k: v for k, v in goal.items() if k in kinds}


def _optimizer(spec: str | Callable[..., torch.optim.Optimizer], params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if isinstance(spec, str):
        if spec not in OPTIMIZERS:
            raise unknown_name("optimizer", spec, OPTIMIZERS)
        return OPTIMIZERS[spec](params, lr=lr)
    return spec(params, lr=lr)


def _progress(enabled: bool | None, total: int) -> object | None:
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the progress extra is not installed: stay quiet
        return None
    return tqdm(total=total, desc="pretrain", unit="step", leave=False, dynamic_ncols=True)


def _validated(
    max_steps: int, patience: int, time_points: int, batch_size: int, checkpoint_every: int,
    plateau: int | None, edges_per_step: int | None, tol: float, smoothing: float, shuffle: float, lr: float,
    max_seconds: float | None,
) -> None:
    for name, value in (
        ("max_steps", max_steps), ("patience", patience), ("time_points", time_points),
        ("batch_size", batch_size), ("checkpoint_every", checkpoint_every),
        ("plateau", 1 if plateau is None else plateau), ("edges_per_step", 1 if edges_per_step is None else edges_per_step),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if not 0.0 <= shuffle <= 1.0:
        raise ValueError(f"shuffle is a probability per step, got {shuffle}")
    check_positive(lr, "lr")
    if max_seconds is not None:
        check_positive(max_seconds, "max_seconds")


def pretrain(
    model: nn.Module,
    data: Tensor | Iterable[object] | None = None,
    *,
    target: Target = "auto",
    kinds: Sequence[str] | None = None,
    decoder_target: float = 1.0,
    tol: float = 0.02,
    patience: int = 5,
    max_steps: int = 1000,
    max_seconds: float | None = None,
    optimizer: str | Callable[..., torch.optim.Optimizer] = "adam",
    lr: float = 1e-2,
    plateau: int | None = 25,
    smoothing: float = 0.5,
    batch_size: int = 32,
    time_steps: int = 50,
    time_points: int = 1,
    edges_per_step: int | None = None,
    method: str = "arnoldi",
    krylov_steps: int = 20,
    rtol: float = 1e-2,
    seed: int | None = 0,
    rescale: bool = False,
    shuffle: float = 0.0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 25,
    progress: bool | None = None,
    callback: Callable[[dict[str, object]], None] | None = None,
    distributed: bool | None = None,
    config: Mapping[str, object] | None = None,
) -> PretrainResult:
    """Pre-train ``model`` in place so every local Jacobian's radius sits at ``target``.

    Args:
        model: a ``StackedRNN``, an ``FFN``, a ``torch.nn.LSTM/GRU/RNN`` or any model the
            step protocol sees (:func:`lsc.models.as_stack`).
        data: input batches, always batch-first whatever the module's own layout: a
            tensor (B, T, F) (random mini-batches of ``batch_size``), a ``DataLoader``
            or other re-iterable (tuples give their first element), or ``None`` for
            Gaussian input of (batch_size, time_steps, features).
        target: 1, 0.5, any number, ``"auto"`` (0.5 for deep RNNs, 1 otherwise),
            ``"unbalanced"`` or a {kind: value} mapping (:func:`lsc.resolve_target`).
        kinds: edge kinds that take part (default: time, depth, encoder, and the
            decoder when ``target`` names it; add ``"decoder"`` to include it, with
            ``decoder_target``). The decoder is in the loss, not in the stopping rule,
            as in the reference code.
        tol, patience: converged when every edge's mean is within ``tol`` of its
            target for ``patience`` consecutive steps; the mean is a running average
            over steps (weight ``smoothing`` on the past; 0: this step's batch only).
        max_steps, max_seconds: budgets for the whole run (a resumed run counts what
            it did before; a finished run continues when given a larger budget).
        optimizer, lr: ``adam`` (default), ``adamw``, ``sgd``, ``rmsprop`` or a callable
            ``(params, lr=...) -> Optimizer``.
        plateau: when the worst gap has not improved by 1% for this many steps, go
            back to the best weights and go on with half the learning rate (``None``: never).
        time_points: random time points per step (the trajectory runs to the latest).
        edges_per_step: train on this many randomly chosen edges per step (the
            reference samples one layer pair per FFN step); ``None``: all of them.
        method, krylov_steps, rtol: the radius estimator (:func:`lsc.jacobian.estimate`);
            Arnoldi is exact for Jacobians of at most ``krylov_steps`` rows and much
            cheaper than ``dense`` above that.
        seed: seeds batches, time points, sub-matrices and Krylov start vectors.
        rescale, shuffle: the reference code's weight rescaling / shuffling
            (:mod:`lsc.heuristics`), off by default; frozen parameters are left alone.
        checkpoint: a directory; the run holds it (a second process is refused), saves
            its state there every ``checkpoint_every`` steps and when it stops, and a later
            call resumes from it: exactly, with the data's position too (a re-iterable is
            passed again up to where the run stopped). A call with other settings than the
            saved run's (anything but the budgets ``max_steps``, ``max_seconds``,
            ``checkpoint_every``) is refused with the differences listed.
        progress: a progress bar (default: when stderr is a terminal and tqdm is installed).
        callback: called with each finished step's history row (it may raise
            ``KeyboardInterrupt`` to stop the run resumably, but must not change the model).
        distributed: data-parallel over the initialised process group (``None``: when one
            of more than one process is active, e.g. under torchrun). Every rank draws its
            own batches (a tensor or noise: its own seeded stream; an iterable: every
            world-size-th item), the loss gradients are averaged over ranks, and the
            radii of each step are averaged over ranks before the running means, so the
            stopping rule, the best weights and plateau restarts are decided alike and
            all ranks stop at the same step with identical weights. Only rank 0 writes
            the checkpoint; ``shuffle`` is not supported.
        config: extra JSON-ready entries that must also match for a checkpoint to resume
            (the command line records its model, init and data options here).
    """
    stack = as_stack(model)
    params = [p for p in stack.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (requires_grad=False everywhere); nothing to pre-train")
    _validated(max_steps, patience, time_points, batch_size, checkpoint_every, plateau, edges_per_step, tol, smoothing, shuffle, lr,
               max_seconds)
    ddp = _dist.resolve(distributed)
    main = not ddp or _dist.is_main()
    if ddp and shuffle:
        raise ValueError("shuffle is not supported in distributed pre-training (the ranks would shuffle differently)")
    # each rank its own stream (rank 0 draws what a single process draws)
    gen = estimator_generator(None if seed is None else seed + (7_919 * _dist.rank() if ddp else 0), stack.device)
    if ddp and data is not None and not isinstance(data, Tensor):
        data = _RankItems(data, _dist.rank(), _dist.world_size())
    batches = InputSource(stack, data, batch_size=batch_size, time_steps=time_steps, generator=gen)
    if kinds is None:
        named = set(target) if isinstance(target, Mapping) else set()
        kinds = [k for k in available_kinds(stack) if k in DEFAULT_KINDS or k in named]
    kinds = check_kinds(stack, kinds)
    first = _next_input(stack, batches, 0)
    goal = _targets(stack, target, kinds, first.shape[1], decoder_target)
    stopping = [edge_key(kind, layer) for kind, layer in edge_list(stack, kinds) if kind != "decoder"]
    stopping = stopping or [edge_key(kind, layer) for kind, layer in edge_list(stack, kinds)]
    all_keys = [edge_key(kind, layer) for kind, layer in edge_list(stack, kinds)]

    settings = {
        "target": goal, "kinds": list(kinds), "tol": tol, "patience": patience,
        "optimizer": optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", repr(optimizer)),
        "lr": lr, "plateau": plateau, "smoothing": smoothing, "batch_size": batch_size, "time_steps": time_steps,
        "time_points": time_points, "edges_per_step": edges_per_step, "method": method, "krylov_steps": krylov_steps,
        "rtol": rtol, "seed": seed, "rescale": rescale, "shuffle": shuffle, **dict(config or {}),
    }
    settings = json.loads(json.dumps(settings, default=str))
    ckpt = None if checkpoint is None else Path(checkpoint) / CHECKPOINT
    # one run per directory, found writable before any work
    with hold_directory(ckpt.parent if ckpt is not None and main else None, "checkpoint"):
        return _run(
            model, stack, params, batches, gen, goal, kinds, settings, ckpt, ddp, main, seed,
            tol=tol, patience=patience, max_steps=max_steps, max_seconds=max_seconds, optimizer=optimizer,
            lr=lr, plateau=plateau, smoothing=smoothing, time_points=time_points, edges_per_step=edges_per_step,
            method=method, krylov_steps=krylov_steps, rtol=rtol, rescale=rescale, shuffle=shuffle,
            checkpoint_every=checkpoint_every, progress=progress, callback=callback, first=first, all_keys=all_keys,
            stopping=stopping,
        )


def _run(  # type: ignore[no-untyped-def]
    model, stack, params, batches, gen, goal, kinds, settings, ckpt, ddp, main, seed, *, tol, patience, max_steps,
    max_seconds, optimizer, lr, plateau, smoothing, time_points, edges_per_step, method, krylov_steps, rtol, rescale,
    shuffle, checkpoint_every, progress, callback, first, all_keys, stopping,
) -> PretrainResult:
    """The pre-training loop of :func:`pretrain`, with its arguments validated and its
    checkpoint directory held."""
    state, opt_state = _RunState(lr=lr), None
    if ckpt is not None and ckpt.exists():
        state, opt_state = _resume(ckpt, model, gen, settings)
        if state.position > 0:
            batches.seek(state.position)
    opt = _optimizer(optimizer, params, state.lr)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    if ddp:
        _dist.broadcast_module(model)  # every rank starts from rank 0's weights
        if gen is not None and state.step > 0:  # resumed: the checkpoint holds rank 0's stream only
            gen.manual_seed(int(seed) + 0x5EED_15C + 7_919 * _dist.rank() + 1_000_003 * state.step)  # type: ignore[arg-type]
    if state.stopped in ("max_steps", "max_seconds") and state.step < max_steps and (
        max_seconds is None or state.seconds < max_seconds
    ):
        state.stopped = ""  # a larger budget: carry on
    stopped, message = state.stopped, state.message

    bar = _progress(progress if not stopped and main else False, max_steps)
    if bar is not None:
        bar.update(state.step)  # type: ignore[attr-defined]
    start = time.perf_counter() - state.seconds
    pending: Tensor | None = first if state.position == 0 else None
    try:
        while not stopped:
            if state.step >= max_steps:
                stopped, message = "max_steps", f"reached max_steps={max_steps}"
                break
            late = max_seconds is not None and time.perf_counter() - start >= max_seconds
            if ddp and max_seconds is not None:  # the clocks differ: stop when any rank is out of time
                late = _dist.all_reduce_floats([float(late)], op="max", device=stack.device)[0] > 0
            if late:
                stopped, message = "max_seconds", f"reached max_seconds={max_seconds}"
                break
            state.generator = gen.get_state() if gen is not None else None  # a resumed step redraws the same
            state.position = 0 if pending is not None else batches.position  # ...from the same place in the data
            xb = pending if pending is not None else _next_input(stack, batches, state.step)
            pending = None
            if not ddp:
                row, loss = _step(stack, xb, goal, kinds, time_points, edges_per_step, method, krylov_steps, rtol, gen)
            else:
                row, loss = _step_reduced(stack, xb, goal, kinds, time_points, edges_per_step, method, krylov_steps, rtol, gen, all_keys, state.step)
            if not math.isfinite(row["loss"]) or row["loss"] > EXPLODED:  # type: ignore[arg-type]
                raise NonFiniteError(f"the radius loss became {row['loss']} at step {state.step}: the radii ran away")
            row.update(step=state.step, seconds=round(time.perf_counter() - start, 4), lr=state.lr)
            ema = _ema(state.ema, row, smoothing)
            gaps = [abs(ema[key] - goal[key.split(":")[0]]) if key in ema else math.inf for key in stopping]
            worst = max(gaps)  # convergence: every edge within tol
            gap = math.sqrt(sum(g * g for g in gaps) / len(gaps))  # best weights, plateaus: all edges count
            row["smoothed_gap"] = worst if math.isfinite(worst) else None
            improved = gap < state.best_gap
            within = state.within + 1 if worst <= tol else 0
            converged = within >= patience
            restart = not converged and plateau is not None and state.step - state.plateau_step >= plateau
            restart = restart and not gap < state.plateau_gap * 0.99 and state.best_state is not None
            with _interrupts_deferred():  # the update and its bookkeeping happen together or not at all
                snapshot = copy.deepcopy(model.state_dict()) if improved else None
                if restart:
                    # stuck, or thrown off (a saturated gate passes no gradient back): return to
                    # the best weights and go on with half the step size and fresh moments
                    model.load_state_dict(state.best_state)  # type: ignore[arg-type]
                    state.lr *= 0.5
                    opt = _optimizer(optimizer, params, state.lr)
                    ema = {}
                elif not converged:
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if ddp:
                        _dist.all_reduce_grads(params, average=True)
                    opt.step()
                    if rescale:
                        rescale_towards_target(stack, _edge_means(row), goal)
                    if shuffle:
                        shuffle_weights(stack, shuffle, gen)
                del loss
                state.history.append(row)
                state.ema, state.within = ema, within
                if improved:
                    state.best_gap, state.best_step, state.best_state = gap, state.step, snapshot
                if restart:  # measure the plateau afresh from the restored weights
                    state.plateau_gap, state.plateau_step = math.inf, state.step
                elif gap < state.plateau_gap * 0.99:
                    state.plateau_gap, state.plateau_step = gap, state.step
                state.step += 1
                state.generator, state.position = None, batches.position
            if bar is not None:
                bar.set_postfix(_postfix(row), refresh=False)  # type: ignore[attr-defined]
                bar.update(1)  # type: ignore[attr-defined]
            if callback is not None:
                callback(row)
            if converged:
                stopped, message = "converged", f"every edge within {tol} of its target for {patience} steps"
            elif ckpt is not None and main and state.step % checkpoint_every == 0:
                _save(ckpt, model, opt, gen, settings, state, time.perf_counter() - start)
    except NonFiniteError as exc:
        stopped, message = "diverged", str(exc)
    except KeyboardInterrupt:
        stopped, message = "interrupted", "interrupted; run again with the same checkpoint directory to resume"
    except BaseException:  # anything else: keep the run resumable and the best weights in place, then re-raise
        if ckpt is not None and main:
            _save(ckpt, model, opt, gen, settings, state, time.perf_counter() - start)
        if state.best_state is not None:
            model.load_state_dict(state.best_state)
        raise
    finally:
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    if ckpt is not None:
        if stopped != "interrupted":
            state.stopped, state.message = stopped, message
        if main:
            _save(ckpt, model, opt, gen, settings, state, seconds)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
        if stopped == "diverged":
            message += f"; restored the best weights (step {state.best_step}, rms gap {state.best_gap:.4f})"
    report = None
    if stopped != "interrupted":  # measured afresh on a new batch, not the last step's estimate
        fresh = _next_input(stack, batches, state.step)
        try:
            report = measure(model, fresh if stack.batch_first else fresh.transpose(0, 1), target=goal, kinds=kinds, seed=seed)
        except NonFiniteError as exc:  # even the weights kept diverge on fresh input: say so, return them
            stopped = "diverged"
            message += f"; the final measurement on a fresh batch failed too ({exc})"
    return PretrainResult(
        converged=stopped == "converged",
        stopped=stopped,
        message=message,
        steps=state.step,
        seconds=seconds,
        best_step=state.best_step,
        best_gap=state.best_gap,
        target=goal,
        history=state.history,
        best_state=state.best_state if state.best_state is not None else copy.deepcopy(model.state_dict()),
        report=report,
    )


def _next_input(stack: Stack, batches: Iterator[Tensor], step: int) -> Tensor:
    """The next batch, validated and batch-first on the model's device and dtype; a bad
    batch is the caller's input error, never the model's divergence."""
    try:
        x = next(batches)
    except StopIteration:
        raise ValueError(f"data ran out after {step} batches; pass a re-iterable (a tensor, list or DataLoader)") from None
    try:
        x = stack.check_input(x, batch_first=True)
    except NonFiniteError as exc:
        raise ValueError(f"input batch {step}: {exc}") from None
    return x.to(device=stack.device, dtype=stack.dtype if x.is_floating_point() else x.dtype)


class _interrupts_deferred:
    """Hold a Ctrl-C until the block is done (main thread only), then raise it."""

    def __enter__(self) -> "_interrupts_deferred":
        self.hit, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, *_: object) -> None:
        self.hit = True

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.hit:
            raise KeyboardInterrupt


def _step(
    stack: Stack,
    xb: Tensor,
    goal: Mapping[str, float],
    kinds: Sequence[str],
    time_points: int,
    edges_per_step: int | None,
    method: str,
    krylov_steps: int,
    rtol: float,
    gen: torch.Generator | None,
) -> tuple[dict[str, object], Tensor]:
    """One measurement of the chosen edges at random time points; returns the history
    row and the differentiable loss."""
    T = xb.shape[1]
    dev = gen.device if gen is not None else "cpu"
    k = min(time_points, T)
    times = sorted(torch.randperm(T, generator=gen, device=dev)[:k].tolist())
    traj = trajectory(stack, xb, times)
    found = edges(stack, traj, kinds)
    if edges_per_step is not None and edges_per_step < len(found):
        pick = torch.randperm(len(found), generator=gen, device=dev)[:edges_per_step].tolist()
        found = [found[i] for i in sorted(pick)]
    values = estimate_all(
        [e.jacobian for e in found], "radius", method, steps=krylov_steps, rtol=rtol, generator=gen
    )
    loss = torch.stack([((v - goal[e.kind]) ** 2).mean() for e, v in zip(found, values)]).mean()
    means = torch.stack([v.detach().mean() for v in values]).tolist()
    radii = {edge_key(e.kind, e.layer): m for e, m in zip(found, means)}
    row: dict[str, object] = {
        "loss": float(loss.detach()),
        "worst_gap": max(abs(m - goal[e.kind]) for e, m in zip(found, means)),
        "radii": radii,
        "times": times,
    }
    return row, loss


class _RankItems:
    """Every ``count``-th item of a re-iterable, starting at ``index``: one rank's share."""

    def __init__(self, data: Iterable[object], index: int, count: int) -> None:
        self.data, self.index, self.count = data, index, count

    def __iter__(self) -> Iterator[object]:
        for i, item in enumerate(self.data):
            if i % self.count == self.index:
                yield item


def _step_reduced(
    stack: Stack, xb: Tensor, goal: Mapping[str, float], kinds: Sequence[str], time_points: int,
    edges_per_step: int | None, method: str, krylov_steps: int, rtol: float, gen: torch.Generator | None,
    keys: Sequence[str], step: int,
) -> tuple[dict[str, object], Tensor | None]:
    """:func:`_step` on this rank's batch, then the loss and every edge's mean radius
    averaged over ranks, so every rank holds the same row (and raises alike)."""
    try:
        row, loss = _step(stack, xb, goal, kinds, time_points, edges_per_step, method, krylov_steps, rtol, gen)
        failed = ""
    except NonFiniteError as exc:
        row, loss, failed = {"loss": math.nan, "radii": {}, "times": []}, None, str(exc)
    radii = row["radii"]  # type: ignore[assignment]
    flat = [float(bool(failed)), 0.0 if failed else float(row["loss"])]  # type: ignore[arg-type]
    for key in keys:
        flat += [radii[key], 1.0] if key in radii else [0.0, 0.0]  # type: ignore[operator]
    total = _dist.all_reduce_floats(flat, device=stack.device)
    if total[0]:
        raise NonFiniteError(failed or f"the trajectory or a radius became non-finite on another rank at step {step}")
    means = {k: total[2 + 2 * i] / total[3 + 2 * i] for i, k in enumerate(keys) if total[3 + 2 * i] > 0}
    row["loss"] = total[1] / _dist.world_size()
    row["radii"] = means
    row["worst_gap"] = max(abs(m - goal[k.split(":")[0]]) for k, m in means.items())
    return row, loss


def _ema(past: Mapping[str, float], row: Mapping[str, object], smoothing: float) -> dict[str, float]:
    """Running means of every edge's batch-mean radius (weight ``smoothing`` on the past).
    Per-step means over one batch are noisy; the stopping rule and the best weights
    follow the running means."""
    out = dict(past)
    for key, value in row["radii"].items():  # type: ignore[union-attr]
        out[key] = value if key not in past else smoothing * past[key] + (1 - smoothing) * value
    return out


def _edge_means(row: Mapping[str, object]) -> dict[tuple[str, int], float]:
    out = {}
    for key, v in row["radii"].items():  # type: ignore[union-attr]
        kind, layer = key.split(":")
        out[(kind, int(layer))] = v
    return out


def _postfix(row: Mapping[str, object]) -> dict[str, str]:
    by_kind: dict[str, list[float]] = {}
    for (kind, _), v in _edge_means(row).items():
        by_kind.setdefault(kind, []).append(v)
    post = {"loss": f"{row['loss']:.2e}", "gap": f"{row['worst_gap']:.3f}"}
    post.update({k: f"{sum(v) / len(v):.3f}" for k, v in by_kind.items()})
    return post


@dataclass
class _RunState:
    step: int = 0
    within: int = 0
    best_gap: float = math.inf
    best_step: int = -1
    best_state: dict[str, Tensor] | None = None
    history: list[dict[str, object]] = field(default_factory=list)
    seconds: float = 0.0
    ema: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0
    plateau_gap: float = math.inf
    plateau_step: int = 0
    stopped: str = ""  # set once the run has finished
    message: str = ""
    generator: Tensor | None = None  # generator state at the start of the step under way
    position: int = 0  # batches drawn from the data before the step under way (after the last step when none is)


def _save(
    path: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator | None,
    settings: Mapping[str, object],
    state: _RunState,
    seconds: float,
) -> None:
    write_state(path, KIND, {
        "model": model.state_dict(),
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "generator": state.generator if state.generator is not None else (gen.get_state() if gen is not None else None),
        "settings": dict(settings),
        "state": {**asdict(state), "seconds": seconds, "generator": None},
    })


def _resume(
    path: Path, model: nn.Module, gen: torch.Generator | None, settings: Mapping[str, object]
) -> tuple[_RunState, dict[str, object]]:
    """The saved run state and optimiser state; the model and generator are restored.
    Another run's checkpoint (other settings, another model) is refused, naming the differences."""
    blob = read_state(path, KIND)
    require(blob, path, "model", "shapes", "optimizer", "generator", "settings", "state")
    old = blob["settings"]
    assert isinstance(old, dict)
    diffs = [f"{k} {old.get(k)!r} -> {settings.get(k)!r}" for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    if diffs:
        raise ValueError(
            f"{path.parent} holds a pre-training run with other settings ({'; '.join(diffs)}); run with the same "
            "settings to resume, or use another directory, or delete it (--force) to start afresh"
        )
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    if blob["shapes"] != shapes:
        raise ValueError(f"{path} was written by a different model (other parameters or shapes); use another directory")
    try:
        model.load_state_dict(blob["model"])  # type: ignore[arg-type]
        if gen is not None and blob["generator"] is not None:
            gen.set_state(blob["generator"])  # type: ignore[arg-type]
        return _RunState(**blob["state"]), blob["optimizer"]  # type: ignore[arg-type, return-value]
    except (RuntimeError, TypeError, KeyError) as exc:
        raise DamagedFileError(path, f"its contents do not fit ({str(exc).splitlines()[0][:200]})") from None


def history_jsonl(history: Iterable[Mapping[str, object]]) -> str:
    """The history as JSON lines."""
    return "".join(json.dumps(row) + "\n" for row in history)
