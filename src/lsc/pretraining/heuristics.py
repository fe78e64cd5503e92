"""Weight multipliers and the reference code's weight post-processing.

The official LSC code does more than gradient descent on the radius loss: after every
step it may multiply weights by clip(target / radius) (its ``wmultiplier``) and permute
the entries of weight tensors (its ``wshuff``). They are offered here as opt-in switches
(off by default, but for LRU/ALIF layers) so ablations can tell "gradient-based LSC" from
"distribution search". :class:`Secant` is lsc's own first move: per-edge multipliers solved
for radius = target before the first gradient step (``PretrainConfig.first_move``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from ..models import Stack


@torch.no_grad()
def rescale_towards_target(
    stack: Stack,
    means: Mapping[tuple[str, int], float],
    goal: Mapping[str, float],
    clip: tuple[float, float] = (0.85, 1.15),
) -> None:
    """Scale each layer's recurrence by clip(target_time / radius_time) and its input by
    clip(target / radius) of its depth (layer 0: encoder) edge, through the cells'
    ``scale_recurrence`` / ``scale_input`` (the reference's ``wmultiplier``; for ALIF it
    scales the decays too, for LRU |lambda|)."""
    for (kind, layer), mean in means.items():
        if kind not in goal or mean <= 0 or kind == "decoder":
            continue
        cell = stack.cells[layer]
        if not all(p.requires_grad for p in cell.parameters()):
            continue  # a (partly) frozen layer is left as it is
        factor = min(max(goal[kind] / mean, clip[0]), clip[1])
        (cell.scale_recurrence if kind == "time" else cell.scale_input)(factor)


MOVE_LIMITS = (0.25, 4.0)
"""The most a multiplier of the first move changes in one round (docs/design.md section 9)."""
SLOPE_LIMITS = (0.25, 4.0)
"""The range the secant's slope d log(radius) / d log(multiplier) is kept in; an edge whose
measured slope is below it (an LSTM's time edge under its recurrent weights: its radius is
its largest forget gate) takes its last move back and moves no more."""


def knob(stack: Stack, kind: str, layer: int) -> Callable[[float], None] | None:
    """The multiplier that moves edge ``(kind, layer)``: the layer's recurrence for a time
    edge, its input for a depth or encoder edge; ``None`` for the decoder, a (partly)
    frozen layer, or a cell that offers no scaling."""
    if kind == "decoder":
        return None
    cell = stack.cells[layer]
    if not all(p.requires_grad for p in cell.parameters()):
        return None
    return getattr(cell, "scale_recurrence" if kind == "time" else "scale_input", None)


@dataclass
class Secant:
    """Per-edge multipliers solving radius(c) = target by a secant on log radius against
    log c (docs/design.md section 9): from radius rho at the current multiplier, the next
    move is log c += (log target - log rho) / s, s the slope of the last two rounds (1 at
    first, at most the top of :data:`SLOPE_LIMITS`), each move kept in :data:`MOVE_LIMITS`.
    An edge whose slope is below :data:`SLOPE_LIMITS` takes its last move back and stays."""

    goal: Mapping[str, float]
    moved: dict[tuple[str, int], float] = field(default_factory=dict)  # log c of the last move
    slope: dict[tuple[str, int], float] = field(default_factory=dict)
    last: dict[tuple[str, int], float] = field(default_factory=dict)  # log radius before the last move
    stuck: set[tuple[str, int]] = field(default_factory=set)  # edges their multiplier does not move

    def settled(self, stack: Stack, radii: Mapping[tuple[str, int], float], tol: float) -> bool:
        """Whether every edge a multiplier still moves is within ``tol`` of its target."""
        return all(
            abs(rho - self.goal[kind]) <= tol
            for (kind, layer), rho in radii.items()
            if kind in self.goal and (kind, layer) not in self.stuck and knob(stack, kind, layer) is not None
        )

    @torch.no_grad()
    def move(self, stack: Stack, radii: Mapping[tuple[str, int], float]) -> None:
        """One move of every edge that has a multiplier, from this round's ``radii``."""
        for (kind, layer), rho in radii.items():
            scale = knob(stack, kind, layer)
            key = (kind, layer)
            if scale is None or kind not in self.goal or key in self.stuck or not (rho > 0 and math.isfinite(rho)):
                continue
            log_rho = math.log(rho)
            if abs(self.moved.get(key, 0.0)) > 1e-3:
                s = (log_rho - self.last[key]) / self.moved[key]
                if s < SLOPE_LIMITS[0]:
                    scale(math.exp(-self.moved[key]))
                    self.stuck.add(key)
                    continue
                self.slope[key] = min(s, SLOPE_LIMITS[1])
            step = (math.log(self.goal[kind]) - log_rho) / self.slope.get(key, 1.0)
            step = min(max(step, math.log(MOVE_LIMITS[0])), math.log(MOVE_LIMITS[1]))
            scale(math.exp(step))
            self.moved[key], self.last[key] = step, log_rho


@torch.no_grad()
def shuffle_weights(stack: Stack, probability: float, generator: torch.Generator | None = None) -> bool:
    """With ``probability``, permute the entries of every trainable weight matrix of the
    stack (the reference's ``wshuff``): shapes and value distributions stay, structure
    goes. Returns whether it shuffled."""
    dev = generator.device if generator is not None else "cpu"
    if float(torch.rand((), generator=generator, device=dev)) >= probability:
        return False
    for p in stack.parameters():
        if p.dim() >= 2 and p.requires_grad:
            order = torch.randperm(p.numel(), generator=generator, device=dev).to(p.device)
            p.copy_(p.flatten()[order].view_as(p))
    return True
