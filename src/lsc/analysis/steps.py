"""Stepping a stack for the analyses: the unrolled forward pass with a NaN check that
names the layer and the step, and the *joint* state map of the whole stack.

Every analysis runs the model through its step protocol (``encoder`` -> cells'
``transition``/``output`` -> ``decoder``), never through a fused kernel, so that
``torch.func`` transforms and per-step hooks see every state s^l_t.

The joint state of an L-layer stack is S_t = [s^0_t; ...; s^{L-1}_t] (the layers'
full states concatenated), and one time step is the map S_t = F(x_t, S_{t-1}).
Its Jacobian dF/dS is block lower-triangular: layer l reads layer l-1's new output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..checks import NonFiniteError
from ..models import Stack

StateHook = Callable[[int, int, Tensor], Tensor]
"""``hook(layer, step, state) -> state``: lets :func:`unroll` perturb or record s^l_t."""


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
        unroll(stack, x, hook=record, input_hook=record_input)
    return [torch.stack(u, dim=1) for u in inputs], [torch.stack(s, dim=1) for s in states]


def unroll(
    stack: Stack,
    x: Tensor,
    *,
    hook: StateHook | None = None,
    input_hook: Callable[[int, int, Tensor], None] | None = None,
    states: list[Tensor] | None = None,
    check: bool = True,
) -> Tensor:
    """The stack's outputs on batch-first ``x``, (B, T, out), one step at a time.

    ``hook(l, t, s)`` may replace each new state s^l_t (e.g. add a zero tensor that
    requires grad, to read dLoss/ds^l_t). Raises :class:`NonFiniteError` naming the
    first layer and step whose state (or the decoder's output) is NaN/inf. The check is
    one flag per (step, layer), read once at the end, so it costs no sync per step;
    ``check=False`` skips it (inside ``torch.func`` transforms, after a checked run).
    """
    B, T = x.shape[0], x.shape[1]
    if states is None:
        states = stack.init_states(B, device=x.device, dtype=stack.dtype)
    flags: list[Tensor] = []
    ys = []
    L = stack.num_layers
    for t in range(T):
        u = stack.encoder(x[:, t])
        for l, cell in enumerate(stack.cells):
            if input_hook is not None:
                input_hook(l, t, u)
            s = cell.transition(u, states[l])
            if check:
                flags.append(torch.isfinite(s.detach()).all())
            if hook is not None:
                s = hook(l, t, s)
            states[l] = s
            u = cell.output(u, s)
        y = stack.decoder(u) if stack.decoder is not None else u
        if check:
            flags.append(torch.isfinite(y.detach()).all())
        ys.append(y)
    if check:
        check_flags(stack, flags, L)
    return torch.stack(ys, dim=1)


def check_flags(stack: Stack, flags: list[Tensor], layers: int) -> None:
    """Raise for the first False in ``flags`` (L state flags + 1 output flag per step)."""
    if not flags:
        return
    ok = torch.stack(flags)
    if bool(ok.all()):
        return
    first = int((~ok).nonzero()[0, 0])
    t, where = divmod(first, layers + 1)
    raise non_finite_error(stack, t, where if where < layers else None)


def non_finite_error(stack: Stack, step: int, layer: int | None) -> NonFiniteError:
    """The error for a state (``layer``) or the readout (``layer=None``) that turned NaN/inf at ``step``."""
    if layer is None:
        what = "the readout (decoder output)"
    else:
        what = f"the state of layer {layer} ({type(stack.cells[layer]).__name__})"
    return NonFiniteError(
        f"{what} became NaN/inf at step {step} (0-based) while every earlier step was finite: the model "
        "diverges on this input, so gradients, exponents and curvature are undefined from there on. "
        "Rescale the weights (or the input), or analyse a shorter sequence."
    )
