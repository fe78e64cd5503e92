"""One pre-training step, ``step(state, batch) -> (state, record)``.

A step runs the model without a graph along its own trajectory to a few random time
points, estimates every chosen edge's per-sample radius differentiably (matrix-free,
:mod:`lsc.jacobian`) and, unless the stopping rule says otherwise
(:mod:`.stopping`), takes one optimiser step on

    loss = mean over edges of mean over samples of (rho_b - target_edge)^2

which is E[(rho - rho*)^2], so it also narrows the spread of the radii (docs/design.md,
section 9). The :class:`Pretrainer` holds what does not change (the model, the rule, the
estimator, the generator); the :class:`State` is what a step passes on, and what a
checkpoint saves (the model's weights and the optimiser's moments with it).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .. import distributed as _dist
from ..checks import NonFiniteError
from ..grid import edges, trajectory
from ..interrupts import interrupts_deferred
from ..jacobian import Estimator, moduli
from ..models import Stack
from ..optimizers import NoStep, make_optimizer
from .heuristics import Secant, rescale_towards_target, shuffle_weights
from .stopping import EdgeKey, Progress, Rule, advance, judge

if TYPE_CHECKING:
    from .config import PretrainConfig

PRETRAINING_ESTIMATOR = Estimator("arnoldi", 20, 1e-2)
"""Pre-training's default estimator: Arnoldi, at most 20 steps, stopping at 1% (a step needs
a gradient more than a precise value; the final report is measured with :func:`lsc.measure`)."""
TIME_KRYLOV_STEPS = 40
"""The Krylov budget of the time edges in pre-training (``PretrainConfig.time_krylov_steps``). Pre-training
drives its own estimate to the target, so a bias of the estimate is a bias of the result:
20 steps read the time edges of a pre-trained 4x256 LSTM 1-2.5 % low, so their true radii
settled above target; 40 steps (stopping at 1 %) read them within 0.25 %. Other edges keep
20: a 30-layer FFN's depth edges converged in fewer steps with 20 (docs/design.md section 10)."""
EXPLODED = 1e6
"""A radius loss above this means the radii ran away: the step counts as diverged."""


def edge_name(key: EdgeKey) -> str:
    """How JSON names an edge: ``"time:3"``."""
    return f"{key[0]}:{key[1]}"


def edge_key(name: str) -> EdgeKey:
    """The edge a JSON name stands for: ``"time:3"`` -> ("time", 3)."""
    kind, _, layer = name.partition(":")
    return kind, int(layer)


@dataclass(frozen=True, eq=False)
class StepRecord(Mapping[str, object]):
    """What one step measured and decided. Typed (radii keyed by (kind, layer)), and read
    as its JSON row (``record["radii"]`` names edges ``"kind:layer"``), the row that
    ``history.jsonl`` holds."""

    step: int
    loss: float
    radii: Mapping[EdgeKey, float]
    worst_gap: float
    smoothed_gap: float | None
    times: tuple[int, ...]
    seconds: float
    lr: float

    def row(self) -> dict[str, object]:
        return {
            "loss": self.loss,
            "worst_gap": self.worst_gap,
            "radii": {edge_name(k): v for k, v in self.radii.items()},
            "times": list(self.times),
            "step": self.step,
            "seconds": self.seconds,
            "lr": self.lr,
            "smoothed_gap": self.smoothed_gap,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> StepRecord:
        r: Mapping[str, Any] = row  # a checkpoint's JSON-like row: checked by the callers' DamagedFileError
        radii = {edge_key(k): float(v) for k, v in r["radii"].items()}
        return cls(
            int(r["step"]),
            float(r["loss"]),
            radii,
            float(r["worst_gap"]),
            r["smoothed_gap"],
            tuple(r["times"]),
            float(r["seconds"]),
            float(r["lr"]),
        )

    def __getitem__(self, key: str) -> object:
        return self.row()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.row())

    def __len__(self) -> int:
        return len(self.row())


@dataclass(frozen=True)
class Measured:
    """One measurement of the chosen edges: batch-mean radius per edge, the differentiable
    loss (``None`` where another rank failed), the time points."""

    radii: dict[EdgeKey, float]
    loss_value: float
    loss: Tensor | None
    times: tuple[int, ...]


OBJECTIVES = ("mean", "samples")
SPECTRUM_K = 16
"""How many eigenvalues a step pushes down on an edge whose whole spectrum moves (``spectrum="auto"``)."""


def edge_loss(values: Tensor, target: float, objective: str = "mean") -> Tensor:
    """The loss of one edge from its per-sample eigenvalue moduli ``values`` (B, k), largest
    first (k = 1: the radius alone) (docs/design.md section 9):

    * ``"mean"`` (default): (mean_b rho_b - rho*)^2 + rho*^2 cv^2, cv the coefficient of
      variation of the radii. The first term's optimum is the stopping rule's (the mean at
      target); the spread term narrows the radii without pulling the mean (cv is unchanged
      by a common scaling), where E[(rho - rho*)^2] = (mean - rho*)^2 + mean^2 cv^2 settles
      the mean at rho* / (1 + cv^2) on a wide-spread edge;
    * ``"samples"``: mean_b (rho_b - rho*)^2, the reference code's loss (docs/design.md A1.3).

    With k > 1, a sample whose radius is above target also pushes down every further
    eigenvalue above target, sum_j (|lambda_j| - rho*)_+^2: the radius gradient alone moves
    one eigenvalue, which stalls diagonal recurrences (LRU, ALIF) whose units each hold one.
    At the optimum (radius at target, nothing above it) the term is zero.
    """
    rho = values[:, 0]
    if objective == "samples":
        loss = ((rho - target) ** 2).mean()
    else:
        m = rho.mean()
        loss = (m - target) ** 2 + target**2 * rho.var(correction=0) / m.clamp_min(torch.finfo(m.dtype).tiny) ** 2
    if values.shape[1] > 1:
        excess = (values[:, 1:] - target).clamp_min(0) ** 2
        loss = loss + (excess.sum(1) * (rho.detach() > target)).mean()
    return loss


def spectrum_size(stack: Stack, kind: str, layer: int, spectrum: int | str) -> int:
    """How many eigenvalue moduli an edge's loss reads: ``spectrum`` when a number; for
    ``"auto"``, :data:`SPECTRUM_K` on the time edges of cells whose units recur on their own
    (``diagonal_recurrence``: LRU, ALIF), else 1 (the radius)."""
    if not isinstance(spectrum, str):
        return int(spectrum)
    return SPECTRUM_K if kind == "time" and getattr(stack.cells[layer], "diagonal_recurrence", False) else 1


def measure_edges(
    stack: Stack,
    xb: Tensor,
    goal: Mapping[str, float],
    kinds: Sequence[str],
    time_points: int,
    edges_per_step: int | None,
    estimator: Estimator,
    gen: torch.Generator | None,
    objective: str = "mean",
    spectrum: int | str = "auto",
    time_estimator: Estimator | None = None,
) -> Measured:
    """The chosen edges' radii at ``time_points`` random time points of batch ``xb``
    (``edges_per_step`` of them drawn at random when given), and the loss (:func:`edge_loss`).
    Time edges are estimated with ``time_estimator`` when given, the others with ``estimator``."""
    T = xb.shape[1]
    dev = gen.device if gen is not None else "cpu"
    times = sorted(torch.randperm(T, generator=gen, device=dev)[: min(time_points, T)].tolist())
    found = edges(stack, trajectory(stack, xb, times), kinds)
    if edges_per_step is not None and edges_per_step < len(found):
        pick = torch.randperm(len(found), generator=gen, device=dev)[:edges_per_step].tolist()
        found = [found[i] for i in sorted(pick)]
    sizes = [spectrum_size(stack, e.kind, e.layer, spectrum) for e in found]
    ests = [time_estimator if e.kind == "time" and time_estimator is not None else estimator for e in found]
    values: list[Tensor | None] = [None] * len(found)
    for est in dict.fromkeys(ests):  # one batched call per estimator, in a fixed order
        single = [i for i, k in enumerate(sizes) if k == 1 and ests[i] == est]
        for i, v in zip(single, est.estimate_all([found[i].jacobian for i in single], "radius", gen)):
            values[i] = v.unsqueeze(1)
    for i, k in enumerate(sizes):
        if k > 1:
            est = ests[i]
            values[i] = moduli(
                found[i].jacobian,
                k,
                est.method if est.method != "power" else "arnoldi",
                steps=max(est.steps, k),
                rtol=est.rtol,
                generator=gen,
            )
    loss = torch.stack([edge_loss(v, goal[e.kind], objective) for e, v in zip(found, values)]).mean()  # type: ignore[arg-type]
    means = torch.stack([v[:, 0].detach().mean() for v in values]).tolist()  # type: ignore[index]
    return Measured({(e.kind, e.layer): m for e, m in zip(found, means)}, float(loss.detach()), loss, tuple(times))


def measure_reduced(
    measure: Callable[[], Measured], keys: Sequence[EdgeKey], device: torch.device, step: int
) -> Measured:
    """``measure()`` on this rank's batch, then the loss and every edge's mean radius
    averaged over ranks, so every rank holds the same numbers (and raises alike)."""
    try:
        mine, failed = measure(), ""
    except NonFiniteError as exc:
        mine, failed = Measured({}, math.nan, None, ()), str(exc)
    flat = [float(bool(failed)), 0.0 if failed else mine.loss_value]
    for key in keys:
        flat += [mine.radii[key], 1.0] if key in mine.radii else [0.0, 0.0]
    total = _dist.all_reduce_floats(flat, device=device)
    if total[0]:
        raise NonFiniteError(failed or f"the trajectory or a radius became non-finite on another rank at step {step}")
    means = {k: total[2 + 2 * i] / total[3 + 2 * i] for i, k in enumerate(keys) if total[3 + 2 * i] > 0}
    return Measured(means, total[1] / _dist.world_size(), mine.loss, mine.times)


@dataclass(frozen=True)
class State:
    """What a step passes on: the rule's progress, the optimiser (its moments), the best
    weights so far, the history, the data's position and the run's time and end."""

    progress: Progress
    optimizer: torch.optim.Optimizer
    best: Mapping[str, Tensor] | None = None
    history: tuple[StepRecord, ...] = ()
    position: int = 0  # batches drawn from the data after the last finished step
    seconds: float = 0.0  # run time before this call (a resumed run)
    stopped: str = ""  # set once the run has finished: converged | max_steps | max_seconds | diverged
    message: str = ""


@dataclass(frozen=True)
class Pretrainer:
    """The parts of a pre-training run that do not change from step to step: the model, its
    stack and trainable parameters, the stopping rule, the edges, the settings (:class:`~.config.PretrainConfig`:
    optimiser, time points, estimators, objective, heuristics) and the generator."""

    model: nn.Module
    stack: Stack
    params: tuple[nn.Parameter, ...]
    rule: Rule
    kinds: tuple[str, ...]
    edges: tuple[EdgeKey, ...]  # every edge measured, in grid order (the decoder too)
    config: PretrainConfig
    generator: torch.Generator | None = None
    ddp: bool = False
    elapsed: Callable[[], float] = lambda: 0.0

    def init(self, lr: float) -> State:
        """The state before the first step."""
        return State(Progress(lr=lr), make_optimizer(self.config.optimizer, self.params, lr))

    def measure(self, xb: Tensor, step: int) -> Measured:
        cfg = self.config
        args = (
            self.stack,
            xb,
            self.rule.goal,
            self.kinds,
            cfg.time_points,
            cfg.edges_per_step,
            cfg.edge_estimator,
            self.generator,
            cfg.objective,
            cfg.spectrum,
            cfg.time_estimator,
        )
        if not self.ddp:
            return measure_edges(*args)
        return measure_reduced(lambda: measure_edges(*args), self.edges, self.stack.device, step)

    def first_move(self, xb: Tensor) -> list[dict[EdgeKey, float]]:
        """Before the first gradient step: up to ``config.first_move`` measurements of batch
        ``xb`` without a graph, a :class:`~.heuristics.Secant` move of every edge's multiplier
        (a layer's recurrence for its time edge, its input for its depth or encoder edge)
        between them, stopping once every edge a multiplier still moves is within tol / 2 (the
        others are left to the gradient steps). The weights of
        the round with the smallest worst gap stay (the model's own when no move helped).
        Returns each round's radii (docs/design.md section 9)."""
        rounds: list[dict[EdgeKey, float]] = []
        secant = Secant(self.rule.goal)
        best: tuple[float, int, Mapping[str, Tensor] | None] = (math.inf, 0, None)
        for r in range(self.config.first_move):
            with torch.no_grad():
                radii = self.measure(xb, 0).radii
            rounds.append(radii)
            worst = max(abs(m - self.rule.goal[k[0]]) for k, m in radii.items() if k[0] in self.rule.deciding)
            if worst < best[0]:
                best = (worst, r, copy.deepcopy(self.model.state_dict()))
            if r + 1 == self.config.first_move or secant.settled(self.stack, radii, self.rule.tol / 2):
                break
            secant.move(self.stack, radii)
        if best[2] is not None and best[1] + 1 < len(rounds):  # a later move made it worse: back to the best
            self.model.load_state_dict(best[2])
        return rounds

    def step(self, state: State, xb: Tensor) -> tuple[State, StepRecord]:
        """Measure on batch ``xb``, judge, and update (or restart): the next state and the
        step's record. The update and its bookkeeping happen together or not at all."""
        progress = state.progress
        measured = self.measure(xb, progress.step)
        if not math.isfinite(measured.loss_value) or measured.loss_value > EXPLODED:
            raise NonFiniteError(
                f"the radius loss became {measured.loss_value} at step {progress.step}: the radii ran away"
            )
        verdict = judge(self.rule, progress, measured.radii)
        worst_now = max(abs(m - self.rule.goal[k[0]]) for k, m in measured.radii.items())
        record = StepRecord(
            step=progress.step,
            loss=measured.loss_value,
            radii=measured.radii,
            worst_gap=worst_now,
            smoothed_gap=verdict.worst if math.isfinite(verdict.worst) else None,
            times=measured.times,
            seconds=round(self.elapsed(), 4),
            lr=progress.lr,
        )
        with interrupts_deferred():
            snapshot = copy.deepcopy(self.model.state_dict()) if verdict.improved else None
            optimizer = state.optimizer
            if verdict.restart:
                # stuck, or thrown off (a saturated gate passes no gradient back): return to
                # the best weights and go on with half the step size and fresh moments
                self.model.load_state_dict(state.best)  # type: ignore[arg-type]
                optimizer = make_optimizer(self.config.optimizer, self.params, progress.lr * 0.5)
            elif not verdict.converged:
                self._update(optimizer, measured)
            new = replace(
                state,
                progress=advance(progress, verdict),
                optimizer=optimizer,
                best=snapshot if snapshot is not None else state.best,
                history=(*state.history, record),
            )
        return new, record

    def _update(self, optimizer: torch.optim.Optimizer, measured: Measured) -> None:
        if not isinstance(optimizer, NoStep):  # "none": the heuristics below are the whole update
            optimizer.zero_grad(set_to_none=True)
            assert measured.loss is not None
            measured.loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is untyped
            if self.ddp:
                _dist.all_reduce_grads(self.params, average=True)
            optimizer.step()
        rescale, shuffle = self.config.rescale, self.config.shuffle
        if rescale:
            radii = (
                measured.radii
                if rescale is True
                else {
                    (kind, layer): m
                    for (kind, layer), m in measured.radii.items()
                    if getattr(self.stack.cells[layer], "diagonal_recurrence", False)
                }
            )
            rescale_towards_target(self.stack, radii, self.rule.goal)
        if shuffle:
            shuffle_weights(self.stack, shuffle, self.generator)
