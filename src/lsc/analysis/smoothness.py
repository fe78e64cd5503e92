"""Loss smoothness: the top Hessian eigenvalue and slices of the loss landscape.

A loss V(theta) is beta-smooth when ||grad V(theta) - grad V(theta')|| <= beta ||theta - theta'||,
i.e. beta = sup ||H(theta)||_2; gradient descent with step < 2 / beta decreases V.
Ribeiro, Tiels, Aguirre & Schoen ("Beyond exploding and vanishing gradients: analysing
RNN training using attractors and smoothness", AISTATS 2020; init_theories.md C.2)
read exploding gradients as a smoothness problem: for contracting dynamics beta stays
bounded in the sequence length N, for non-contracting ones it grows like L_x^N.

:func:`smoothness` estimates beta at theta = the model's parameters as the largest
|eigenvalue| of the Hessian of the loss over one batch, from Hessian-vector products
H v = jvp(grad V)(theta; v) (``torch.func``, forward-over-reverse; never the n x n
Hessian), by Lanczos with full re-orthogonalisation (default; extreme Ritz values
converge first) or power iteration. :func:`loss_slice` evaluates
V(theta + a d1 (+ b d2)) on a grid along one or two directions (Ribeiro's ray
theta(s) = s theta is ``"ray"``; ``"random"`` is a Gaussian direction normalised per
tensor to the parameter's norm, Li et al. 2018). :func:`radius_sweep` repeats
:func:`smoothness` while the recurrent weights' spectral radius grows.

The model runs through its step protocol (cells' ``transition``/``output``), so every
``StackedRNN`` cell and ``torch.nn.LSTM/GRU/RNN`` adapter works under ``torch.func``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp
from torch.nn import functional as F

from ..checks import unknown_name
from ..grid import prepare
from ..krylov import lanczos, power
from ..models import Stack

Batch = Tensor | tuple[Tensor, Tensor] | list[Tensor]
LossFn = Callable[..., Tensor]
METHODS = ("lanczos", "power")
DIRECTIONS = ("random", "ray")


class _Unrolled(nn.Module):
    """The stack's outputs over a whole sequence via its step protocol (for functional_call)."""

    def __init__(self, stack: Stack) -> None:
        super().__init__()
        self.stack = stack

    def forward(self, x: Tensor) -> Tensor:
        y = self.stack.unroll(x, check=False)
        assert y is not None  # readout=True: unroll returns the outputs
        return y


def default_loss(outputs: Tensor, target: Tensor | None = None) -> Tensor:
    """The loss used when none is given, over every step:
    float target: mean squared error; integer target (B, T): cross-entropy of the
    outputs as logits; no target: 0.5 * mean(y^2)."""
    if target is None:
        return 0.5 * outputs.pow(2).mean()
    if target.is_floating_point():
        if target.shape != outputs.shape:
            raise ValueError(f"target shape {tuple(target.shape)} differs from the outputs' {tuple(outputs.shape)}")
        return (outputs - target).pow(2).mean()  # not F.mse_loss: its double backward breaks under jvp
    if target.shape != outputs.shape[:-1]:
        raise ValueError(
            f"integer targets must have shape (batch, time) = {tuple(outputs.shape[:-1])}, got {tuple(target.shape)}"
        )
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), target.reshape(-1))


class _Objective:
    """V(theta) on a fixed batch, over flat parameter vectors."""

    def __init__(self, model: nn.Module, batch: Batch, loss_fn: LossFn | None) -> None:
        if isinstance(batch, (tuple, list)):
            if len(batch) != 2:
                raise ValueError(f"batch must be x or (x, target), got a sequence of {len(batch)} items")
            x, target = batch
        else:
            x, target = batch, None
        stack, self.x = prepare(model, x)
        self.module = _Unrolled(stack)
        self.target = None if target is None else target.to(self.x.device)
        if self.target is not None and self.target.is_floating_point():
            self.target = self.target.to(stack.dtype)
        self.loss_fn = loss_fn or default_loss
        named = [(f"stack.{n}", p) for n, p in stack.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("the model has no parameters that require grad: nothing to take a Hessian over")
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.theta = torch.cat([p.detach().reshape(-1) for _, p in named])
        with torch.no_grad():  # one checked run: a NaN names its layer and step
            y = stack.unroll(self.x)
            assert y is not None  # readout=True: unroll returns the outputs
            value = self._loss(y)
        if not bool(torch.isfinite(value)):
            raise ValueError(f"the loss is {float(value)} at the model's parameters although every state is finite")
        self.value = float(value)

    def _loss(self, y: Tensor) -> Tensor:
        out = self.loss_fn(y) if self.target is None else self.loss_fn(y, self.target)
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise ValueError("loss_fn must return a scalar tensor")
        return out.reshape(())

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        parts = torch.split(flat, [math.prod(s) for s in self.shapes])
        return {n: p.view(s) for n, p, s in zip(self.names, parts, self.shapes)}

    def __call__(self, flat: Tensor) -> Tensor:
        return self._loss(functional_call(self.module, self.unflatten(flat), (self.x,)))

    def hvp(self, v: Tensor) -> Tensor:
        """H v at theta: forward-mode derivative of the reverse-mode gradient."""
        return jvp(grad(self), (self.theta,), (v,))[1]


@dataclass(frozen=True)
class Smoothness:
    """The Hessian's extreme eigenvalues at the model's parameters, on one batch.

    ``top`` = max |eigenvalue| = ||H||_2, the local smoothness constant beta;
    ``max_eigenvalue`` / ``min_eigenvalue``: the extreme (signed) Ritz values;
    ``ritz``: all Ritz values (Lanczos) or the last Rayleigh quotient (power);
    ``loss``: V(theta); ``hvps``: Hessian-vector products spent.
    """

    top: float
    max_eigenvalue: float
    min_eigenvalue: float
    loss: float
    parameters: int
    hvps: int
    method: str
    ritz: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "top": self.top,
            "max_eigenvalue": self.max_eigenvalue,
            "min_eigenvalue": self.min_eigenvalue,
            "loss": self.loss,
            "parameters": self.parameters,
            "hvps": self.hvps,
            "method": self.method,
        }


def _lanczos(op: Callable[[Tensor], Tensor], v0: Tensor, iters: int) -> tuple[np.ndarray, int]:
    """Ritz values of a symmetric operator after ``iters`` Lanczos steps (:func:`lsc.krylov.lanczos`)."""
    _, T = lanczos(lambda v: op(v[0]).unsqueeze(0), v0.unsqueeze(0), iters)
    return torch.linalg.eigvalsh(T[0].double()).cpu().numpy(), T.shape[-1]


def _power(op: Callable[[Tensor], Tensor], v0: Tensor, iters: int, tol: float) -> tuple[np.ndarray, int]:
    """The eigenvalue of largest modulus by power iteration (Rayleigh quotient, :func:`lsc.krylov.power`)."""
    _, growth, rayleigh = power(lambda v: op(v[0]).unsqueeze(0), v0.unsqueeze(0), iters, tol=tol)
    if float(growth[-1][0]) == 0.0:
        return np.array([0.0]), len(rayleigh)
    return np.array([float(rayleigh[-1][0])]), len(rayleigh)


def smoothness(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn | None = None,
    *,
    iters: int = 20,
    method: str = "lanczos",
    tol: float = 1e-4,
    seed: int | None = 0,
) -> Smoothness:
    """The top Hessian eigenvalue of the loss w.r.t. the parameters (module docstring).

    Args:
        model: a step-protocol model (``StackedRNN``, ``torch.nn.LSTM/GRU/RNN``, ...).
        batch: ``x`` or ``(x, target)``; ``x`` in the model's layout.
        loss_fn: ``loss_fn(outputs)`` or ``loss_fn(outputs, target)`` -> scalar, outputs
            (B, T, out) batch-first; default :func:`default_loss`.
        iters: Lanczos steps (exact once >= the number of parameters) or the most
            power-iteration steps.
        method: ``"lanczos"`` (default) or ``"power"``.
        tol: power iteration stops when the Rayleigh quotient moves less than this (relative).
        seed: seeds the start vector.
    """
    if method not in METHODS:
        raise unknown_name("smoothness method", method, METHODS)
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an integer >= 1, got {iters!r}")
    obj = _Objective(model, batch, loss_fn)
    n = obj.theta.numel()
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    v0 = torch.randn(n, generator=gen, dtype=torch.float64).to(obj.theta)
    if method == "lanczos":
        ritz, used = _lanczos(obj.hvp, v0, min(iters, n))
    else:
        ritz, used = _power(obj.hvp, v0, iters, tol)
    if not np.isfinite(ritz).all():
        raise ValueError("a Hessian-vector product is not finite: the loss is too rough here (or overflows)")
    top = float(np.abs(ritz).max())
    return Smoothness(top, float(ritz.max()), float(ritz.min()), obj.value, n, used, method, ritz)


# ---------------------------------------------------------------------------- slices


@dataclass(frozen=True)
class LossSlice:
    """V(theta + a d1) (1-D, ``values`` (steps,)) or V(theta + a d1 + b d2) (2-D,
    ``values`` (steps, steps), rows a, columns b) along the offsets in ``offsets``.
    Non-finite losses (a diverging model far out) stay NaN/inf."""

    offsets: list[np.ndarray]
    values: np.ndarray
    center: float
    directions: list[str]

    def to_dict(self) -> dict[str, object]:
        return {
            "directions": self.directions,
            "offsets": [o.tolist() for o in self.offsets],
            "values": np.where(np.isfinite(self.values), self.values, np.nan).tolist(),
            "center": self.center,
        }

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Write a PNG: a log-loss curve (1-D) or filled contour (2-D) (needs matplotlib)."""
        from .plots import plot_loss_slice

        return plot_loss_slice(self, path, title=title)


def _direction(obj: _Objective, spec: object, gen: torch.Generator) -> tuple[Tensor, str]:
    theta = obj.theta
    if isinstance(spec, str):
        if spec == "ray":
            return theta.clone(), "ray"
        if spec == "random":
            d = torch.randn(theta.numel(), generator=gen, dtype=torch.float64).to(theta)
            parts = []
            for dp, tp in zip(torch.split(d, [math.prod(s) for s in obj.shapes]), obj.unflatten(theta).values()):
                norm_p = tp.norm()
                parts.append(dp * (norm_p / dp.norm()) if float(norm_p) > 0 else torch.zeros_like(dp))
            return torch.cat(parts), "random"
        raise unknown_name("slice direction", spec, DIRECTIONS)
    if isinstance(spec, dict):
        missing = [n for n in obj.names if n.removeprefix("stack.") not in spec and n not in spec]
        if missing:
            raise ValueError(f"a direction given as a dict must name every parameter; missing {missing[:3]}")
        flat = [spec[short] if (short := n.removeprefix("stack.")) in spec else spec[n] for n in obj.names]
        if any(t.shape != s for t, s in zip(flat, obj.shapes)):
            raise ValueError("a direction's tensors must have the parameters' shapes")
        return torch.cat([t.reshape(-1) for t in flat]).to(theta), "given"
    if isinstance(spec, Tensor):
        if spec.numel() != theta.numel():
            raise ValueError(f"a flat direction needs {theta.numel()} entries (the parameters), got {spec.numel()}")
        return spec.reshape(-1).to(theta), "given"
    raise TypeError(
        f"a direction is 'random', 'ray', a {{name: tensor}} dict or a flat tensor, got {type(spec).__name__}"
    )


def loss_slice(
    model: nn.Module,
    batch: Batch,
    directions: object = "random",
    steps: int = 21,
    *,
    span: float = 1.0,
    loss_fn: LossFn | None = None,
    seed: int | None = 0,
) -> LossSlice:
    """The loss along one or two directions through the model's parameters.

    Args:
        directions: one direction or a list of one or two: ``"random"`` (per-tensor
            normalised Gaussian), ``"ray"`` (theta itself: offset a is Ribeiro's s = 1 + a),
            a {parameter name: tensor} dict or a flat tensor.
        steps: grid points per direction (offsets ``linspace(-span, span, steps)``).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if not (isinstance(span, (int, float)) and span > 0 and math.isfinite(span)):
        raise ValueError(f"span must be a finite number > 0, got {span!r}")
    specs = list(directions) if isinstance(directions, (list, tuple)) else [directions]
    if not 1 <= len(specs) <= 2:
        raise ValueError(f"give one or two directions, got {len(specs)}")
    obj = _Objective(model, batch, loss_fn)
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    dirs = [_direction(obj, s, gen) for s in specs]
    offsets = np.linspace(-span, span, steps)
    shape = (steps,) * len(dirs)
    values = np.empty(shape)
    with torch.no_grad():
        for idx in np.ndindex(shape):
            theta = obj.theta + sum(float(offsets[i]) * d for i, (d, _) in zip(idx, dirs))
            values[idx] = float(obj(theta))
    return LossSlice([offsets.copy() for _ in dirs], values, obj.value, [name for _, name in dirs])


# ---------------------------------------------------------------------------- sweeps


def recurrent_radius(cell: nn.Module) -> float:
    """max over the gate blocks of W_hh (PyTorch layout, square blocks) of the spectral radius."""
    w = getattr(cell, "weight_hh", None)
    if not isinstance(w, Tensor) or w.dim() != 2 or w.shape[0] % w.shape[1]:
        raise TypeError(
            f"{type(cell).__name__} has no square-block recurrent matrix weight_hh; radius sweeps need "
            "Elman/GRU/LSTM cells (without projection)"
        )
    blocks = w.detach().double().reshape(-1, w.shape[1], w.shape[1])
    return float(torch.linalg.eigvals(blocks).abs().max())


def set_recurrent_radius(model: nn.Module, radius: float) -> nn.Module:
    """A copy of ``model`` whose every cell's W_hh is scaled so that
    :func:`recurrent_radius` equals ``radius``."""
    if not (radius > 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
    from ..models import as_stack

    out = copy.deepcopy(model)
    for cell in as_stack(out).cells:
        r = recurrent_radius(cell)
        if r == 0.0:
            raise ValueError(f"{type(cell).__name__} has W_hh = 0: its radius cannot be scaled")
        with torch.no_grad():
            # nn.Module.__getattr__ is typed Tensor | Module; recurrent_radius checked it is a Tensor
            cast(Tensor, cell.weight_hh).mul_(radius / r)
    return out


@dataclass(frozen=True)
class RadiusSweep:
    """:func:`smoothness` (``results``) for every recurrent radius in ``radii``."""

    radii: np.ndarray
    results: list[Smoothness] = field(repr=False)

    @property
    def top(self) -> np.ndarray:
        """beta = ||H||_2 per radius."""
        return np.array([r.top for r in self.results])

    def to_dict(self) -> dict[str, object]:
        return {"radii": self.radii.tolist(), "top": self.top.tolist(), "results": [r.to_dict() for r in self.results]}

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Write a PNG of beta against the recurrent radius (log axis; needs matplotlib)."""
        from .plots import plot_radius_sweep

        return plot_radius_sweep(self, path, title=title)


def radius_sweep(
    model: nn.Module, batch: Batch, radii: Sequence[float], loss_fn: LossFn | None = None, **options: object
) -> RadiusSweep:
    """:func:`smoothness` of copies of ``model`` with W_hh's spectral radius set to each of ``radii``
    (:func:`set_recurrent_radius`); ``options`` go to :func:`smoothness`. The model is unchanged."""
    rs = [float(r) for r in radii]
    if not rs:
        raise ValueError("radius_sweep needs at least one radius")
    results = [smoothness(set_recurrent_radius(model, r), batch, loss_fn, **options) for r in rs]  # type: ignore[arg-type]
    return RadiusSweep(np.array(rs), results)
