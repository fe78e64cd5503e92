"""The depth x time grid of a stacked recurrent model and its local Jacobians (edges).

Node (l, t) is layer l's full state s^l_t (docs/design.md, section 1). Edges, each a
:class:`~lsc.jacobian.LocalJacobian` evaluated on the model's *own* trajectory
(states start at the cell's initial state and follow the model on real input):

=========  ===================================================  =====================
kind       Jacobian                                             point
=========  ===================================================  =====================
time l     d s^l_t / d s^l_{t-1}                                s^l_{t-1}
depth l    d s^l_t / d s^{l-1}_t, through layer l-1's output    s^{l-1}_t   (l >= 1)
encoder    d s^0_t / d x_t (through the encoder; for token      x_t (or the embedded
           input, with respect to the embedded vector)          token)
decoder    d y_t / d s^{L-1}_t, over the columns the output reads   s^{L-1}_t (an LSTM's
                                                                h, not c)
=========  ===================================================  =====================

All chosen time points of one edge are stacked along the batch axis, so one batched
estimator call covers them (samples and time points are independent).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from .checks import NonFiniteError, check_parameters_finite, unknown_name
from .jacobian import LocalJacobian
from .models import Cell, Stack, as_stack

KINDS = ("encoder", "time", "depth", "decoder")
DEFAULT_TIME_POINTS = "auto"
"""What :func:`lsc.measure` measures at by default (see its ``time_points``)."""


@dataclass(frozen=True)
class Edge:
    """One local Jacobian of the grid: its kind, its layer (0-based) and the operator."""

    kind: str
    layer: int
    jacobian: LocalJacobian


@dataclass(frozen=True)
class Trajectory:
    """What the edges need at the chosen time points, stacked as (K * B, .) per layer:
    the input u^l_t each cell read, its previous state s^l_{t-1}, its new state s^l_t,
    and the raw input x_t."""

    times: tuple[int, ...]
    inputs: list[Tensor]
    previous: list[Tensor]
    states: list[Tensor]
    raw: Tensor
    batch: int

    def part(self, start: int, stop: int) -> Trajectory:
        """Only the time points ``times[start:stop]``."""
        return self._take(self.times[start:stop], slice(start * self.batch, stop * self.batch))

    def at(self, times: Sequence[int]) -> Trajectory:
        """Only the given time points (each one of :attr:`times`), in the order of :attr:`times`."""
        wanted = set(times)
        missing = sorted(wanted - set(self.times))
        if missing:
            raise ValueError(f"the trajectory has no time points {missing} (it has {list(self.times)})")
        keep = [k for k, t in enumerate(self.times) if t in wanted]
        if len(keep) == len(self.times):
            return self
        rows = torch.cat([torch.arange(k * self.batch, (k + 1) * self.batch) for k in keep]).to(self.raw.device)
        return self._take(tuple(self.times[k] for k in keep), rows)

    def _take(self, times: tuple[int, ...], rows: slice | Tensor) -> Trajectory:
        """The trajectory at ``times``, whose stacked rows are ``rows`` of this one."""
        inputs, previous, states = ([t[rows] for t in ts] for ts in (self.inputs, self.previous, self.states))
        return Trajectory(times, inputs, previous, states, self.raw[rows], self.batch)


def pick_time_points(time_steps: int, spec: int | Sequence[int] | str = 8) -> tuple[int, ...]:
    """Which steps to measure at: ``"all"``, a count (evenly spaced, ending at the last
    step, the first step only when nothing else fits) or explicit step indices."""
    wrong = f"time points must be 'all', a count or a list of step indices, got {spec!r}"
    if isinstance(spec, str):
        if spec != "all":
            raise ValueError(wrong)
        return tuple(range(time_steps))
    if isinstance(spec, (bool, Mapping)) or not isinstance(spec, (numbers.Integral, Iterable)):
        raise ValueError(wrong)
    if isinstance(spec, numbers.Integral):
        count = int(spec)
        if count < 1:
            raise ValueError(f"the number of time points must be >= 1, got {spec}")
        if count >= time_steps:
            return tuple(range(time_steps))
        picks = torch.linspace(0, time_steps - 1, count + 1)[1:].round().long().tolist()
        return tuple(sorted(set(picks)))
    items = spec.tolist() if isinstance(spec, torch.Tensor) else list(spec)
    if not isinstance(items, list) or any(isinstance(t, bool) or not isinstance(t, numbers.Integral) for t in items):
        raise ValueError(f"time points must be integer step indices, got {spec!r}")
    steps = sorted({int(t) for t in items if isinstance(t, numbers.Integral)})  # all are, checked above
    if not steps or steps[0] < 0 or steps[-1] >= time_steps:
        raise ValueError(f"time points must lie in [0, {time_steps}), got {items}")
    return tuple(steps)


def prepare(model: nn.Module, x: Tensor) -> tuple[Stack, Tensor]:
    """The model as a :class:`Stack` and its input validated, batch-first, on its device."""
    stack = as_stack(model)
    if any(p.is_meta for p in stack.parameters()):
        raise ValueError(
            "the model's parameters are on the 'meta' device (no values); materialise them first "
            "(model.to_empty(device=...) and load or initialise the weights)"
        )
    if stack.dtype not in (torch.float32, torch.float64):
        raise ValueError(
            f"lsc measures float32 or float64 models, got {stack.dtype}; use model.float() for the measurement"
        )
    check_parameters_finite(getattr(stack, "source", stack))
    x = stack.check_input(x).to(stack.device)
    if x.is_floating_point():
        x = x.to(stack.dtype)
    return stack, x


@torch.no_grad()
def trajectory(stack: Stack, x: Tensor, times: Sequence[int]) -> Trajectory:
    """Run ``stack`` on batch-first ``x`` up to the last of ``times``, recording the grid.

    The steps between the chosen ones run with the cells' sequence kernels
    (:meth:`Stack.advance <lsc.models.Stack.advance>`: fused LSTM/GRU/RNN, the LRU scan);
    each chosen step t runs through the step protocol (:meth:`Stack.unroll
    <lsc.models.Stack.unroll>`), whose hooks keep each cell's input u^l_t, previous state
    s^l_{t-1} and new state s^l_t. A state that turns NaN/inf is found and named by
    stepping the segment where it happened.
    """
    B, L = x.shape[0], stack.num_layers
    order = sorted(set(times))
    last = stack.init_states(B, device=x.device, dtype=stack.dtype)
    inputs: list[list[Tensor]] = [[] for _ in range(L)]
    previous: list[list[Tensor]] = [[] for _ in range(L)]
    states: list[list[Tensor]] = [[] for _ in range(L)]

    def on_input(l: int, t: int, u: Tensor) -> None:
        inputs[l].append(u)
        previous[l].append(last[l])

    def on_state(l: int, t: int, s: Tensor) -> Tensor:
        states[l].append(s)
        last[l] = s
        return s

    start = 0
    for t in order:
        last[:] = stack.advance(x[:, start:t], last)
        try:
            if not all(bool(torch.isfinite(s).all()) for s in last):
                raise NonFiniteError(f"a state turned NaN/inf before step {t}: check the input and the weights")
            stack.unroll(x[:, t : t + 1], hook=on_state, input_hook=on_input, states=list(last), readout=False)
        except NonFiniteError:  # step from the start to name the layer and the step where it happened
            stack.unroll(x[:, : t + 1], readout=False)
            raise
        start = t + 1
    raw = torch.cat([x[:, t] for t in order])

    def cat(parts: list[list[Tensor]]) -> list[Tensor]:
        return [torch.cat(p, dim=0) for p in parts]

    return Trajectory(tuple(order), cat(inputs), cat(previous), cat(states), raw, B)


def _depth(below: Cell, cell: Cell, u_below: Tensor, s_prev: Tensor, s_below: Tensor) -> Tensor:
    return cell.transition(below.output(u_below, s_below), s_prev)


def _encoder(encoder: nn.Module, cell: Cell, s_prev: Tensor, x: Tensor) -> Tensor:
    return cell.transition(encoder(x), s_prev)


def _decoder(decoder: nn.Module, cell: Cell, u: Tensor, s: Tensor, part: Tensor) -> Tensor:
    """y_t as a function of the state columns the output reads (``part``), the rest of
    ``s`` held fixed."""
    cols = cell.output_columns()
    y: Tensor = decoder(cell.output(u, torch.cat([s[:, : cols.start], part, s[:, cols.stop :]], dim=1)))
    return y


def available_kinds(stack: Stack) -> tuple[str, ...]:
    """The edge kinds ``stack`` has (no depth edge with one layer, no decoder edge without
    one, no time edge in a feed-forward stack)."""
    missing = {"depth": stack.num_layers < 2, "decoder": stack.decoder is None, "time": not stack.recurrent}
    return tuple(k for k in KINDS if not missing.get(k, False))


def kind_names(kinds: object, offered: Sequence[str] = KINDS) -> tuple[str, ...]:
    """``kinds`` (one edge kind name or an iterable of them) as a tuple of known names, in
    the order given; a wrong type or an empty list names the kinds ``offered``."""
    if isinstance(kinds, str):
        kinds = [kinds]
    if isinstance(kinds, Mapping) or not isinstance(kinds, Iterable):
        raise ValueError(f"kinds must be an edge kind or a list of them (from {', '.join(offered)}), got {kinds!r}")
    out = tuple(kinds)
    if not out:
        raise ValueError(f"no edge kinds given; choose from {', '.join(offered)}")
    for k in out:
        if k not in KINDS:
            raise unknown_name("edge kind", k, KINDS)
    return out


def check_kinds(stack: Stack, kinds: Sequence[str] | None) -> tuple[str, ...]:
    """Validate requested edge kinds against what ``stack`` has (``None``: all it has)."""
    have = available_kinds(stack)
    if kinds is None:
        return have
    kinds = kind_names(kinds, have)
    for k in kinds:
        if k not in have:
            why = {"depth": "it has one layer", "decoder": "it has no decoder", "time": "it is feed-forward"}[k]
            raise ValueError(f"the model has no {k} edge ({why}); it has {', '.join(have)}")
    return tuple(k for k in KINDS if k in kinds)


def edge_list(stack: Stack, kinds: Sequence[str]) -> list[tuple[str, int]]:
    """(kind, layer) of every edge of ``stack`` of the given kinds, in grid order:
    encoder, then per layer depth and time, then decoder."""
    out = [("encoder", 0)] if "encoder" in kinds else []
    for l in range(stack.num_layers):
        out += [("depth", l)] if "depth" in kinds and l > 0 else []
        out += [("time", l)] if "time" in kinds else []
    return out + ([("decoder", stack.num_layers - 1)] if "decoder" in kinds else [])


def edges(stack: Stack, traj: Trajectory, kinds: Sequence[str]) -> list[Edge]:
    """The requested edges of ``stack`` along ``traj``, in :func:`edge_list` order."""
    cells = stack.cells
    out: list[Edge] = []
    for kind, l in edge_list(stack, kinds):
        if kind == "encoder":
            if traj.raw.is_floating_point():
                fn = partial(_encoder, stack.encoder, cells[0], traj.previous[0])
                point = traj.raw
            else:  # tokens: differentiate with respect to the embedded vector
                fn = partial(_encoder, nn.Identity(), cells[0], traj.previous[0])
                point = traj.inputs[0]
        elif kind == "depth":
            fn = partial(_depth, cells[l - 1], cells[l], traj.inputs[l - 1], traj.previous[l])
            point = traj.states[l - 1]
        elif kind == "time":
            fn, point = partial(cells[l].transition, traj.inputs[l]), traj.previous[l]
        else:
            assert stack.decoder is not None
            s = traj.states[l]
            fn = partial(_decoder, stack.decoder, cells[l], traj.inputs[l], s)
            point = s[:, cells[l].output_columns()]
        out.append(Edge(kind, l, LocalJacobian.of(fn, point)))
    return out
