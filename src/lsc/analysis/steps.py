"""The *joint* state map of a whole stack, and the states and inputs of every layer.

Every analysis runs the model through its step protocol with :meth:`Stack.unroll
<lsc.models.Stack.unroll>` (``encoder`` -> cells' ``transition``/``output`` ->
``decoder``), never through a fused kernel, so that ``torch.func`` transforms and
per-step hooks see every state s^l_t.

The joint state of an L-layer stack is S_t = [s^0_t; ...; s^{L-1}_t] (the layers'
full states concatenated), and one time step is the map S_t = F(x_t, S_{t-1}).
Its Jacobian dF/dS is block lower-triangular: layer l reads layer l-1's new output.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models import Stack


def layer_sizes(stack: Stack) -> list[int]:
    """The state size of every layer, bottom to top."""
    return [int(c.state_size) for c in stack.cells]


def split_state(stack: Stack, S: Tensor) -> list[Tensor]:
    """(B, sum of state sizes) -> one (B, state_size) tensor per layer."""
    return list(torch.split(S, layer_sizes(stack), dim=-1))


def joint_step(stack: Stack, x_t: Tensor, S: Tensor) -> Tensor:
    """S_t = F(x_t, S_{t-1}) for the whole stack (see the module docstring).

    ``x_t`` is the raw input of one step, (B, features) or (B,) tokens; ``S`` is (B, N).
    """
    u = stack.encoder(x_t)
    new = []
    for cell, s in zip(stack.cells, split_state(stack, S)):
        s = cell.transition(u, s)
        new.append(s)
        u = cell.output(u, s)
    return torch.cat(new, dim=-1)


def layer_inputs(stack: Stack, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Run ``stack`` on batch-first ``x`` without a graph and return, per layer, the
    inputs u^l_t it read, (B, T, in), and the states s^l_t it produced, (B, T, n)
    (checked for NaN/inf step by step)."""
    inputs: list[list[Tensor]] = [[] for _ in stack.cells]
    states: list[list[Tensor]] = [[] for _ in stack.cells]

    def record(l: int, t: int, s: Tensor) -> Tensor:
        states[l].append(s)
        return s

    def record_input(l: int, t: int, u: Tensor) -> None:
        inputs[l].append(u)

    with torch.no_grad():
        stack.unroll(x, hook=record, input_hook=record_input)
    return [torch.stack(u, dim=1) for u in inputs], [torch.stack(s, dim=1) for s in states]
