"""How far an init is from the Local Stability Condition (Herranz-Celotti & Rouat; the
paper's claim that Glorot, He and orthogonal inits satisfy it for feed-forward networks)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn

from ..condition import StabilityReport, Target, check_tol, measure

if TYPE_CHECKING:
    from collections.abc import Sequence

    from typing_extensions import TypedDict, Unpack  # typing's own from Python 3.11

    from ..jacobian import Estimator

    class MeasureOptions(TypedDict, total=False):
        """The options of :func:`lsc.measure` that :func:`check_lsc` passes through."""

        kinds: Sequence[str] | None
        quantity: str
        time_points: int | Sequence[int] | str
        seed: int | None
        estimator: Estimator | str | None
        precision: float
        lengths: Sequence[int] | Tensor | None


@dataclass(frozen=True)
class InitCheck:
    """A measured init: the report, and the worst and root-mean-square gap to the target
    over the edges whose kind has one."""

    report: StabilityReport
    tol: float
    worst_gap: float
    rms_gap: float

    @property
    def holds(self) -> bool:
        return abs(self.worst_gap) <= self.tol

    def __str__(self) -> str:
        verdict = "satisfies" if self.holds else "does not satisfy"
        return (
            self.report.table(tol=self.tol)
            + f"\ninit {verdict} the LSC within {self.tol}: worst gap {self.worst_gap:+.3f}, rms gap {self.rms_gap:.3f}"
        )


def check_lsc(
    model: nn.Module, x: Tensor, *, target: Target = "auto", tol: float = 0.1, **measure_options: Unpack[MeasureOptions]
) -> InitCheck:
    """Measure every local Jacobian of ``model`` on ``x`` (:func:`lsc.measure`, whose options
    pass through) and summarise the gap to ``target`` (``auto``: 1 for a feed-forward net or a
    single layer, 0.5 for a deep RNN)."""
    check_tol(tol)
    report = measure(model, x, target=target, **measure_options)
    gaps = [g for g in report.gaps() if g is not None]
    if not gaps:
        raise ValueError("the target names no edge kind this model has")
    worst = max(gaps, key=abs)
    scale = abs(worst) or 1.0  # the rms of gaps / scale cannot overflow, even for a target near the float maximum
    return InitCheck(report, tol, worst, scale * math.sqrt(sum((g / scale) ** 2 for g in gaps) / len(gaps)))
