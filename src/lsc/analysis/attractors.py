"""Attractors of a recurrent model under constant input: fixed points and limit cycles.

For a constant input x, one step of the stack is an autonomous map S -> F(x, S) of the
joint state S = [s^0; ...; s^{L-1}] (:mod:`lsc.analysis.steps`). Following Ribeiro
et al. ("Beyond exploding and vanishing gradients: analysing RNN training using
attractors and smoothness", AISTATS 2020; init_theories.md C.2-C.3) we run it from
``n_init`` random initial states, drop the transient and look at where the orbits end:

* a fixed point S* = F(S*) (period 1), or a period-p cycle S* = F^p(S*) (p <= max_period,
  the smallest p is reported); orbits ending on the same set are merged;
* its stability: the spectral radius of the Jacobian of F^p at S* (the largest Floquet
  multiplier), rho < 1 attracting, rho > 1 repelling (``method="newton"`` finds those too);
* orbits that neither settle nor diverge within ``steps`` are counted as ``unresolved``
  (slow transients, quasi-periodic or chaotic), orbits that overflow as ``diverged``.

Storing information needs several attractors (multistability), oscillating needs a limit
cycle; a contracting ("stable", :func:`lsc.analysis.stabilize`) model has exactly one
fixed point, which ``stable=True`` shows for contrast.

``method="newton"`` instead solves F(S) = S by damped Newton from the same initial
states (dense per-sample Jacobians, so for small joint states): it finds unstable fixed
points and saddles as well, which forward iteration never reaches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..checks import check_finite, check_parameters_finite, unknown_name
from ..jacobian import LocalJacobian, estimate
from ..models import Stack, as_stack
from .stabilize import stabilize
from .steps import joint_step

METHODS = ("iterate", "newton")
NEWTON_MAX_STATE = 2048
"""``method="newton"`` materialises (n_init, N, N) Jacobians; larger joint states are refused."""
TAIL = 50
"""States kept from the end of every orbit for orbit plots (at least ``max_period + 1``)."""


@dataclass(frozen=True)
class Attractor:
    """One fixed point (``period`` 1) or cycle, reached under input ``input_index``.

    ``states``: (period, N) points of the cycle (joint state); ``radius``: spectral radius
    of d F^p / dS there; ``attracting``: radius < 1; ``count``: initial states that
    ended on it.
    """

    input_index: int
    period: int
    states: np.ndarray = field(repr=False)
    radius: float
    attracting: bool
    count: int

    @property
    def kind(self) -> str:
        return "fixed point" if self.period == 1 else f"period-{self.period} cycle"

    def to_dict(self) -> dict[str, object]:
        return {
            "input_index": self.input_index,
            "kind": self.kind,
            "period": self.period,
            "radius": self.radius,
            "attracting": self.attracting,
            "count": self.count,
            "state": self.states[0].tolist(),
        }


@dataclass(frozen=True)
class AttractorReport:
    """Everything :func:`attractors` found, over every constant input.

    ``unresolved`` / ``diverged``: per input, initial states whose orbit did not settle
    / overflowed. ``orbits``: per input, the last :data:`TAIL` (or ``max_period + 1``) states of every orbit
    projected on the two leading principal axes of all final states,
    (inputs, n_init, tail, 2), for orbit plots (:meth:`project` maps any joint state there).
    """

    attractors: list[Attractor]
    inputs: np.ndarray = field(repr=False)
    n_init: int
    steps: int
    method: str
    stable: bool
    unresolved: list[int]
    diverged: list[int]
    orbits: np.ndarray = field(repr=False)
    center: np.ndarray = field(repr=False)
    axes: np.ndarray = field(repr=False)
    seconds: float

    def project(self, states: np.ndarray) -> np.ndarray:
        """Joint states (..., N) in the plane of ``orbits``: (states - center) @ axes."""
        return (np.asarray(states) - self.center) @ self.axes

    def fixed_points(self, input_index: int | None = None) -> list[Attractor]:
        """The period-1 attractors (of one input, or all)."""
        return [a for a in self.attractors if a.period == 1 and (input_index is None or a.input_index == input_index)]

    def count(self, input_index: int | None = None) -> int:
        return sum(1 for a in self.attractors if input_index is None or a.input_index == input_index)

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "stable": self.stable,
            "n_init": self.n_init,
            "steps": self.steps,
            "inputs": self.inputs.tolist(),
            "count": self.count(),
            "fixed_points": len(self.fixed_points()),
            "cycles": sum(1 for a in self.attractors if a.period > 1),
            "attracting": sum(1 for a in self.attractors if a.attracting),
            "unresolved": self.unresolved,
            "diverged": self.diverged,
            "attractors": [a.to_dict() for a in self.attractors],
            "seconds": self.seconds,
        }

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Write a PNG: the orbits' tails in the plane of the two leading principal axes,
        fixed points (filled: attracting, open: repelling) and cycles marked (needs matplotlib)."""
        from .plots import plot_attractors

        return plot_attractors(self, path, title=title)


def _constant_inputs(stack: Stack, inputs: Tensor) -> Tensor:
    """(n, F) floats or (n,) tokens, validated."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if stack.takes_tokens:
        if inputs.is_floating_point():
            raise ValueError("this model embeds tokens: give constant inputs as integer token ids, shape () or (n,)")
        inputs = inputs.reshape(-1)
        emb = stack.encoder
        assert isinstance(emb, nn.Embedding)
        if inputs.numel() and (int(inputs.min()) < 0 or int(inputs.max()) >= emb.num_embeddings):
            raise ValueError(f"token ids must lie in [0, {emb.num_embeddings})")
        return inputs.to(stack.device)
    F = stack.input_size
    if inputs.dim() == 1:
        inputs = inputs.unsqueeze(0)
    if inputs.dim() != 2 or (F is not None and inputs.shape[1] != F):
        raise ValueError(
            f"constant inputs must have shape (features,) or (n_inputs, features) with features = {F}, "
            f"got {tuple(inputs.shape)}"
        )
    if not inputs.is_floating_point():
        raise ValueError(f"float inputs expected, got dtype {inputs.dtype}")
    check_finite(inputs, "inputs")
    return inputs.to(device=stack.device, dtype=stack.dtype)


def _power_map(stack: Stack, x: Tensor, period: int, S: Tensor) -> Tensor:
    for _ in range(period):
        S = joint_step(stack, x.expand(S.shape[0], *x.shape[1:]), S)
    return S


def _radius(stack: Stack, x: Tensor, period: int, S: Tensor) -> float:
    with torch.enable_grad():  # the dense path's vjp is slow under no_grad
        J = LocalJacobian.of(partial(_power_map, stack, x, period), S.detach().unsqueeze(0))
        gen = torch.Generator(device=S.device).manual_seed(0)
        return float(estimate(J, "radius", "auto", generator=gen)[0].detach())


def _iterate(stack: Stack, x: Tensor, S: Tensor, steps: int, keep: int) -> tuple[Tensor, Tensor]:
    """Run ``steps`` steps; return the last ``keep`` states (n, keep, N) and a per-orbit
    diverged flag."""
    tail: list[Tensor] = []
    xb = x.expand(S.shape[0], *x.shape[1:])
    dead = torch.zeros(S.shape[0], dtype=torch.bool, device=S.device)
    for t in range(steps):
        S = joint_step(stack, xb, S)
        if t % 50 == 49 or t == steps - 1:  # stop overflowing orbits from spreading NaN
            bad = ~torch.isfinite(S).all(dim=1) | (S.abs().amax(dim=1) > 1e30)
            dead |= bad
            S = torch.where(bad.unsqueeze(1), torch.zeros_like(S), S)
        if t >= steps - keep:
            tail.append(S)
    return torch.stack(tail, dim=1), dead


def _newton(stack: Stack, x: Tensor, S: Tensor, iters: int, tol: float) -> tuple[Tensor, Tensor]:
    """Damped Newton on G(S) = F(S) - S for every row of S; returns (S, converged:
    ||G|| <= tol (1 + ||S||)). Rows keep polishing to 1e-3 tol, or until no step helps."""
    n, N = S.shape
    eye = torch.eye(N, dtype=S.dtype, device=S.device)
    f = partial(_power_map, stack, x, 1)

    def residual(S: Tensor) -> Tensor:
        return f(S) - S

    G = residual(S)
    for _ in range(iters):
        done = G.norm(dim=1) <= 1e-3 * tol * (1 + S.norm(dim=1))
        if bool(done.all()):
            break
        J = LocalJacobian.of(f, S).dense() - eye
        step = torch.linalg.lstsq(J, -G.unsqueeze(-1)).solution.squeeze(-1)  # solve, robust to singular J
        step = torch.where(torch.isfinite(step), step, torch.zeros_like(step))
        alpha = torch.ones(n, 1, dtype=S.dtype, device=S.device)
        old = G.norm(dim=1)
        for _ in range(30):  # backtracking: accept where the residual shrinks enough
            Gt = residual(S + alpha * step)
            ok = torch.isfinite(Gt).all(dim=1) & (Gt.norm(dim=1) <= (1 - 1e-4 * alpha.squeeze(1)) * old)
            if bool(ok.all()):
                break
            alpha = torch.where(ok.unsqueeze(1), alpha, alpha / 2)
        trial = S + alpha * step
        Gt = residual(trial)
        better = torch.isfinite(Gt).all(dim=1) & (Gt.norm(dim=1) < old) & ~done
        if not bool(better.any()):
            break
        S = torch.where(better.unsqueeze(1), trial, S)
        G = torch.where(better.unsqueeze(1), Gt, G)
    return S, G.norm(dim=1) <= tol * (1 + S.norm(dim=1))


def _period(tail: Tensor, max_period: int, tol: float) -> Tensor:
    """The smallest p <= max_period with ||S_T - S_{T-p}|| <= tol (1 + ||S_T||) per orbit (0: none)."""
    last = tail[:, -1]
    scale = tol * (1 + last.norm(dim=1))
    period = torch.zeros(tail.shape[0], dtype=torch.long, device=tail.device)
    for p in range(max_period, 0, -1):  # smallest p wins: overwrite downwards
        hit = (last - tail[:, -1 - p]).norm(dim=1) <= scale
        period = torch.where(hit, torch.full_like(period, p), period)
    return period


def attractors(
    model: nn.Module,
    inputs: Tensor,
    n_init: int = 64,
    steps: int = 1000,
    *,
    stable: bool = False,
    bound: float = 0.9,
    method: str = "iterate",
    max_period: int = 8,
    tol: float = 1e-5,
    merge: float = 1e-3,
    init_scale: float = 1.0,
    seed: int | None = 0,
) -> AttractorReport:
    """Fixed points and cycles of ``model`` under constant input (module docstring).

    Args:
        model: a ``StackedRNN``, ``torch.nn.LSTM/GRU/RNN`` or step-protocol model.
        inputs: one constant input (features,) or several (n_inputs, features); integer
            token ids for models that embed tokens.
        n_init: random initial joint states per input (Gaussian, std ``init_scale``).
        steps: steps per orbit (``iterate``) before its end is classified.
        stable: analyse :func:`stabilize` (``model``, ``bound``), a contracting copy, instead.
        method: ``"iterate"`` (forward orbits: attractors only) or ``"newton"`` (every
            fixed point, attracting or not; up to ``NEWTON_MAX_STATE`` joint states).
        max_period: longest cycle looked for.
        tol: an orbit has settled on period p when ||S_T - S_{T-p}|| <= tol (1 + ||S_T||).
        merge: two end points closer than merge (1 + ||S||) are the same attractor.
        seed: seeds the initial states.
    """
    if method not in METHODS:
        raise unknown_name("attractor method", method, METHODS)
    for name, v, lo in (("n_init", n_init, 1), ("steps", steps, 1), ("max_period", max_period, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    for name, value in (("tol", tol), ("merge", merge), ("init_scale", init_scale)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
    start = time.perf_counter()
    if stable:
        model = stabilize(model, bound)
    stack = as_stack(model)
    if not stack.recurrent:
        raise ValueError("the model is feed-forward (no state carries over between steps): it has no attractors")
    check_parameters_finite(getattr(stack, "source", stack))
    xs = _constant_inputs(stack, inputs)
    N = sum(c.state_size for c in stack.cells)
    if method == "newton" and N > NEWTON_MAX_STATE:
        raise ValueError(
            f"method='newton' needs dense {N}x{N} Jacobians per initial state; use method='iterate' for joint states "
            f"above {NEWTON_MAX_STATE}"
        )
    keep = max(TAIL, max_period + 1)
    steps = max(steps, keep)
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    found: list[Attractor] = []
    unresolved: list[int] = []
    diverged: list[int] = []
    tails = []
    for i in range(xs.shape[0]):
        x = xs[i : i + 1]
        S0 = (init_scale * torch.randn(n_init, N, generator=gen, dtype=torch.float64)).to(stack.dtype).to(stack.device)
        with torch.no_grad():
            if method == "iterate":
                tail, dead = _iterate(stack, x, S0, steps, keep)
                period = torch.where(dead, torch.zeros_like(dead, dtype=torch.long), _period(tail, max_period, tol))
            else:
                with torch.enable_grad():
                    S, ok = _newton(stack, x, S0, max(steps // 10, 20), tol)
                S = S.detach()
                dead = ~torch.isfinite(S).all(dim=1)
                ok = ok & ~dead
                tail = S.unsqueeze(1).expand(n_init, keep, N)
                period = ok.long()
        tails.append(torch.where(dead.view(-1, 1, 1), torch.full_like(tail, float("nan")), tail))
        diverged.append(int(dead.sum()))
        unresolved.append(int(((period == 0) & ~dead).sum()))
        found += _merge(stack, x, i, tail, period, merge)
    orbits, center, axes = _project(torch.stack(tails))
    seconds = time.perf_counter() - start
    inputs_np = xs.detach().cpu().numpy()
    return AttractorReport(
        found, inputs_np, n_init, steps, method, stable, unresolved, diverged, orbits, center, axes, seconds
    )


def _merge(stack: Stack, x: Tensor, index: int, tail: Tensor, period: Tensor, merge: float) -> list[Attractor]:
    """Deduplicate the settled orbits of one input and measure each attractor's radius."""
    groups: list[tuple[int, Tensor, int]] = []  # (period, cycle points (p, N), count)
    for b in range(tail.shape[0]):
        p = int(period[b])
        if p == 0:
            continue
        cycle = tail[b, -p:]
        end = cycle[-1]
        for g, (q, pts, c) in enumerate(groups):
            if q == p and bool(((pts - end).norm(dim=1) <= merge * (1 + end.norm())).any()):
                groups[g] = (q, pts, c + 1)
                break
        else:
            groups.append((p, cycle, 1))
    out = []
    for p, pts, c in sorted(groups, key=lambda g: (g[0], -g[2])):
        r = _radius(stack, x, p, pts[-1])
        out.append(Attractor(index, p, pts.detach().cpu().double().numpy(), r, r < 1.0, c))
    return out


def _project(tails: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, n, keep, N) -> (inputs, n, keep, 2) on the two leading principal axes of
    the finite final states, with the centre (N,) and axes (N, 2) used (for N <= 2 the
    state's own coordinates, padded with zeros)."""
    flat = tails.detach().double().cpu()
    N = flat.shape[-1]
    ends = flat[:, :, -1].reshape(-1, N)
    ends = ends[torch.isfinite(ends).all(dim=1)]
    center = torch.zeros(N, dtype=torch.float64)
    axes = torch.eye(N, 2, dtype=torch.float64)
    if ends.shape[0] >= 2 and N > 2:
        center = ends.mean(dim=0)
        _, _, Vh = torch.linalg.svd(ends - center, full_matrices=False)
        axes[:, : min(2, Vh.shape[0])] = Vh[:2].T
    return ((flat - center) @ axes).numpy(), center.numpy(), axes.numpy()
