"""The reference code's weight post-processing, as opt-in switches (off by default).

The official LSC code does more than gradient descent on the radius loss: after every
step it may multiply weights by clip(target / radius) (its ``wmultiplier``) and permute
the entries of weight tensors (its ``wshuff``). They are offered here so ablations can tell
"gradient-based LSC" from "distribution search"; lsc's pre-training never relies on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch

from ..models import Cell, Stack


@torch.no_grad()
def rescale_towards_target(
    stack: Stack, means: Mapping[tuple[str, int], float], goal: Mapping[str, float], clip: tuple[float, float] = (0.85, 1.15)
) -> None:
    """Scale each layer's recurrence by clip(target_time / radius_time) and its input by
    clip(target / radius) of its depth (layer 0: encoder) edge, through the cells'
    ``scale_recurrence`` / ``scale_input`` (the reference's ``wmultiplier``; for ALIF it
    scales the decays too, for LRU |lambda|)."""
    for (kind, layer), mean in means.items():
        if kind not in goal or mean <= 0 or kind == "decoder":
            continue
        cell = cast(Cell, stack.cells[layer])
        if not all(p.requires_grad for p in cell.parameters()):
            continue  # a (partly) frozen layer is left as it is
        factor = min(max(goal[kind] / mean, clip[0]), clip[1])
        (cell.scale_recurrence if kind == "time" else cell.scale_input)(factor)


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
