"""The reference code's weight post-processing, as opt-in switches (off by default).

The official LSC code (lsc_paper.md 2.3-2.5) does more than gradient descent on the
radius loss: after every step it may multiply weights by clip(target / radius) and
permute the entries of weight tensors. They are offered here so ablations can tell
"gradient-based LSC" from "distribution search"; lsc's pre-training never relies on them.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .models import Stack


def _input_weights(cell: nn.Module) -> list[Tensor]:
    if hasattr(cell, "weight_ih"):
        return [cell.weight_ih]
    linear = getattr(cell, "linear", None)
    return [linear.weight] if isinstance(linear, nn.Linear) else []


def _recurrent_weights(cell: nn.Module) -> list[Tensor]:
    return [cell.weight_hh] if hasattr(cell, "weight_hh") else []


@torch.no_grad()
def rescale_towards_target(
    stack: Stack, means: Mapping[tuple[str, int], float], goal: Mapping[str, float], clip: tuple[float, float] = (0.85, 1.15)
) -> None:
    """Multiply each layer's recurrent weights by clip(target_time / radius_time) and its
    input weights by clip(target / radius) of its depth (layer 0: encoder) edge
    (the reference's ``wmultiplier``)."""
    for (kind, layer), mean in means.items():
        if kind not in goal or mean <= 0:
            continue
        factor = min(max(goal[kind] / mean, clip[0]), clip[1])
        cell = stack.cells[layer]
        weights = _recurrent_weights(cell) if kind == "time" else _input_weights(cell) if kind in ("depth", "encoder") else []
        for w in weights:
            w.mul_(factor)


@torch.no_grad()
def shuffle_weights(stack: Stack, probability: float, generator: torch.Generator | None = None) -> bool:
    """With ``probability``, permute the entries of every weight matrix of the stack
    (the reference's ``wshuff``): shapes and value distributions stay, structure goes.
    Returns whether it shuffled."""
    dev = generator.device if generator is not None else "cpu"
    if float(torch.rand((), generator=generator, device=dev)) >= probability:
        return False
    for p in stack.parameters():
        if p.dim() >= 2:
            order = torch.randperm(p.numel(), generator=generator, device=dev).to(p.device)
            p.copy_(p.flatten()[order].view_as(p))
    return True
