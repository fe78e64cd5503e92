"""The stopping rule of pre-training, as pure functions of the measured radii.

Per-step batch means are noisy, so the rule reads running means (EMA, weight
``smoothing`` on the past) of every edge's radius:

* **converged** when the *worst* running gap |mean - target| over the stopping edges (all
  but the decoder, as in the reference code) is within ``tol`` for ``patience``
  *consecutive* steps;
* the **best weights** are those of the smallest root-mean-square gap over those edges
  (the worst gap would let one edge that cannot reach its target choose them);
* a **plateau**: when the rms gap has not improved by 1% for ``plateau`` steps (a
  saturated gate passes no gradient back, or the step size is too large), go back to the
  best weights, halve the learning rate, start the running means afresh; each restart
  doubles the steps the next plateau waits (``plateau * 2**restarts``), so an edge that
  moves slowly under a noisy rms gap is not stopped by a learning rate halved to nothing.

:func:`judge` decides from (rule, progress, radii); :func:`advance` returns the progress
after the step. Neither touches a model (docs/design.md, section 9).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

EdgeKey = tuple[str, int]
"""An edge of the grid: (kind, layer)."""


@dataclass(frozen=True)
class Rule:
    """Targets per kind, the edges that decide, and the rule's constants (their defaults
    and meaning: :class:`~lsc.pretraining.PretrainConfig`)."""

    goal: Mapping[str, float]
    stopping: tuple[EdgeKey, ...]
    tol: float
    patience: int
    plateau: int | None
    smoothing: float

    @property
    def deciding(self) -> frozenset[str]:
        """The edge kinds whose gaps decide convergence (the stopping edges' kinds)."""
        return frozenset(kind for kind, _ in self.stopping)


@dataclass(frozen=True)
class Progress:
    """The rule's memory: steps taken, consecutive steps within ``tol``, running means, the
    best and the plateau marks, the learning rate, the plateau restarts so far."""

    step: int = 0
    within: int = 0
    ema: Mapping[EdgeKey, float] = field(default_factory=dict)
    best_gap: float = math.inf
    best_step: int = -1
    plateau_gap: float = math.inf
    plateau_step: int = 0
    lr: float = 0.0
    restarts: int = 0


@dataclass(frozen=True)
class Verdict:
    """What one step's radii mean: the new running means, the worst and rms gaps, and
    whether the weights are the best so far, the run converged or must restart."""

    ema: Mapping[EdgeKey, float]
    worst: float
    gap: float
    improved: bool
    within: int
    converged: bool
    restart: bool


def running_means(
    past: Mapping[EdgeKey, float], radii: Mapping[EdgeKey, float], smoothing: float
) -> dict[EdgeKey, float]:
    """EMA of every edge's batch-mean radius: ``smoothing * past + (1 - smoothing) * now``
    (an edge seen for the first time starts at its value)."""
    out = dict(past)
    for key, value in radii.items():
        out[key] = value if key not in past else smoothing * past[key] + (1 - smoothing) * value
    return out


def judge(rule: Rule, progress: Progress, radii: Mapping[EdgeKey, float]) -> Verdict:
    """The verdict on a step that measured ``radii`` (batch means per edge)."""
    ema = running_means(progress.ema, radii, rule.smoothing)
    gaps = [abs(ema[key] - rule.goal[key[0]]) if key in ema else math.inf for key in rule.stopping]
    worst = max(gaps)  # convergence: every edge within tol
    gap = math.sqrt(sum(g * g for g in gaps) / len(gaps))  # best weights, plateaus: all edges count
    within = progress.within + 1 if worst <= rule.tol else 0
    converged = within >= rule.patience
    stuck = rule.plateau is not None and progress.step - progress.plateau_step >= rule.plateau * 2**progress.restarts
    restart = not converged and stuck and not gap < progress.plateau_gap * 0.99 and progress.best_step >= 0
    return Verdict(
        ema={} if restart else ema,
        worst=worst,
        gap=gap,
        improved=gap < progress.best_gap,
        within=within,
        converged=converged,
        restart=restart,
    )


def advance(progress: Progress, verdict: Verdict) -> Progress:
    """The progress after the step judged by ``verdict`` (a restart halves the learning rate
    and measures the plateau afresh from the restored weights)."""
    best = (verdict.gap, progress.step) if verdict.improved else (progress.best_gap, progress.best_step)
    if verdict.restart:
        plateau = (math.inf, progress.step)
    elif verdict.gap < progress.plateau_gap * 0.99:
        plateau = (verdict.gap, progress.step)
    else:
        plateau = (progress.plateau_gap, progress.plateau_step)
    return replace(
        progress,
        step=progress.step + 1,
        within=verdict.within,
        ema=verdict.ema,
        best_gap=best[0],
        best_step=best[1],
        plateau_gap=plateau[0],
        plateau_step=plateau[1],
        lr=progress.lr * 0.5 if verdict.restart else progress.lr,
        restarts=progress.restarts + verdict.restart,
    )
