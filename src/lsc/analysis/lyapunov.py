"""Lyapunov spectra of a model's own dynamics by the QR (Benettin) method.

Along the model's trajectory S_t = F(x_t, S_{t-1}) on real input, the leading k
Lyapunov exponents are the growth rates of k-dimensional volumes of tangent space:

    Q_0 random orthonormal (N x k);   Q_t R_t = qr(D_t Q_{t-1}),  D_t = dF/dS at (x_t, S_{t-1})
    lambda_i = 1/(T - warmup) * sum_{t >= warmup} log |(R_t)_ii|          (natural log, per step)

(Benettin et al. 1980; as used for RNNs by Engelken, "Gradient Flossing", NeurIPS 2023,
init_theories.md section D). The first ``warmup`` steps align Q with the dominant
directions and are not averaged. lambda_1 > 0: gradients explode along the chaotic
direction; all lambda_i < 0: a contracting system (its gradients vanish); the LSC at
radius 1 aims at the edge lambda_1 ~ 0.

D_t Q is computed matrix-free: one batched ``torch.func.jvp`` per column under
``vmap`` (never the N x N Jacobian), for every sample of the batch at once, then one
batched ``torch.linalg.qr`` of (B, N, k).

``per_layer=True`` gives each layer's *conditional* spectrum instead: the time
Jacobians ds^l_t/ds^l_{t-1} along the trajectory, with the layer's input from below
held as recorded. The joint Jacobian is block lower-triangular with these blocks on
its diagonal, so the whole stack's spectrum is (asymptotically) their union.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import jvp, vmap

from ..grid import prepare
from ..models import Cell, Stack
from .steps import joint_step, layer_inputs


@dataclass(frozen=True)
class LyapunovSpectrum:
    """The leading Lyapunov exponents (natural log per step), largest first.

    ``exponents``: (k,) for the whole stack, or (L, k) per layer; ``per_sample``: the
    same per input sample (B, k) or (L, B, k), whose mean is ``exponents``;
    ``history``: running estimates after each averaged step, (T - warmup, k) (or
    (L, T - warmup, k)), for convergence plots.
    """

    exponents: np.ndarray
    per_sample: np.ndarray = field(repr=False)
    history: np.ndarray = field(repr=False)
    per_layer: bool
    steps: int
    warmup: int
    seconds: float

    @property
    def max_exponent(self) -> float:
        """The largest exponent (over layers for a per-layer spectrum)."""
        return float(np.max(self.exponents))

    def to_dict(self) -> dict[str, object]:
        return {
            "exponents": self.exponents.tolist(),
            "max_exponent": self.max_exponent,
            "per_layer": self.per_layer,
            "steps": self.steps,
            "warmup": self.warmup,
            "batch": int(self.per_sample.shape[-2]),
            "seconds": self.seconds,
        }

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Write a PNG: the exponents by index (one line per layer for a per-layer
        spectrum) and the running estimates over steps (needs matplotlib)."""
        from .plots import plot_lyapunov

        return plot_lyapunov(self, path, title=title)


def _check_counts(k: int, warmup: int, steps: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (number of exponents) must be an integer >= 1, got {k!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    if steps <= warmup:
        raise ValueError(
            f"the input has {steps} steps but warmup is {warmup}: nothing is left to average. "
            f"Give a sequence longer than warmup (e.g. {warmup + 500} steps) or lower warmup."
        )


def qr_iteration(tangent: Callable[[int, Tensor], Tensor], Q: Tensor, steps: int, warmup: int) -> tuple[Tensor, Tensor]:
    """The QR iteration of the module docstring for any per-step product
    ``tangent(t, Q) = D_t Q`` ((B, N, k) -> (B, N, k)).

    Returns the per-sample exponents (B, k) and the running estimates (T - warmup, B, k),
    both float64.
    """
    B, _, k = Q.shape
    total = torch.zeros(B, k, dtype=torch.float64, device=Q.device)
    history = []
    for t in range(steps):
        Q, R = torch.linalg.qr(tangent(t, Q))
        if t >= warmup:
            diag = R.diagonal(dim1=-2, dim2=-1).abs().double()
            total = total + torch.log(diag.clamp_min(torch.finfo(torch.float64).tiny))
            history.append(total / (t - warmup + 1))
    return total / (steps - warmup), torch.stack(history)


def _products(fn: Callable[[Tensor], Tensor], point: Tensor, Q: Tensor) -> Tensor:
    """D Q for D the per-sample Jacobian of the row-wise map ``fn`` at ``point`` (B, N):
    one batched jvp per column of Q (B, N, k), vectorised with vmap. ``point`` is cloned:
    forward AD on a view of the whole trajectory would build a tangent for all of it."""
    point = point.clone()
    return vmap(lambda v: jvp(fn, (point,), (v,))[1], in_dims=2, out_dims=2)(Q)


def _start(B: int, N: int, k: int, generator: torch.Generator, like: Tensor) -> Tensor:
    G = torch.randn(B, N, k, generator=generator, dtype=torch.float64).to(device=like.device, dtype=like.dtype)
    return torch.linalg.qr(G)[0]


def lyapunov_spectrum(
    model: nn.Module,
    x: Tensor,
    k: int = 16,
    warmup: int = 100,
    *,
    per_layer: bool = False,
    seed: int | None = 0,
    basis: Tensor | None = None,
) -> LyapunovSpectrum:
    """The leading ``k`` Lyapunov exponents of ``model`` along its trajectory on ``x``.

    Args:
        model: a ``StackedRNN``, ``torch.nn.LSTM/GRU/RNN`` or any step-protocol model.
        x: input (batch, time, features) in the model's layout; the exponents average
            over steps ``warmup .. time - 1`` and are reported as the batch mean.
        k: how many exponents (at most the state size: the joint one, or every layer's).
        warmup: leading steps that only align the tangent basis.
        per_layer: each layer's conditional spectrum (its own time Jacobians) instead
            of the whole stack's.
        seed: seeds the random orthonormal start basis.
        basis: the start basis instead, (N, k) or (B, N, k) with orthonormal columns
            (whole stack only; N the joint state size).

    Raises:
        NonFiniteError: the trajectory turns NaN/inf (the message names layer and step).
    """
    stack, xb = prepare(model, x)
    if not stack.recurrent:
        raise ValueError("the model is feed-forward (no state carries over between steps): it has no Lyapunov spectrum")
    B, T = xb.shape[0], xb.shape[1]
    _check_counts(k, warmup, T)
    sizes = [c.state_size for c in stack.cells]
    need = min(sizes) if per_layer else sum(sizes)
    if k > need:
        what = "the smallest layer's state size" if per_layer else "the joint state size"
        raise ValueError(f"k = {k} exponents asked for, but {what} is {need}; use k <= {need}")
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    if basis is not None:
        if per_layer:
            raise ValueError("basis= sets the whole stack's start basis; it cannot be combined with per_layer=True")
        basis = basis.to(device=xb.device, dtype=stack.dtype)
        basis = basis.expand(B, *basis.shape) if basis.dim() == 2 else basis
        if basis.shape != (B, sum(sizes), k):
            raise ValueError(
                f"basis must have shape ({sum(sizes)}, {k}) or ({B}, {sum(sizes)}, {k}), got {tuple(basis.shape)}"
            )
    start = time.perf_counter()
    inputs, states = layer_inputs(stack, xb)  # also checks every step for NaN/inf
    with torch.no_grad():
        if per_layer:
            results = []
            for l, cell in enumerate(stack.cells):
                prev = torch.cat(
                    [cell.init_state(B, device=xb.device, dtype=stack.dtype).unsqueeze(1), states[l][:, :-1]], 1
                )
                tangent = partial(_layer_tangent, cell, inputs[l], prev)
                results.append(qr_iteration(tangent, _start(B, sizes[l], k, gen, prev), T, warmup))
            per_sample = torch.stack([r[0] for r in results])  # (L, B, k)
            history = torch.stack([r[1].mean(dim=1) for r in results])  # (L, T - warmup, k)
            exponents = per_sample.mean(dim=1)
        else:
            joint = torch.cat(states, dim=-1)  # (B, T, N)
            init = torch.cat(stack.init_states(B, device=xb.device, dtype=stack.dtype), dim=-1).unsqueeze(1)
            prev = torch.cat([init, joint[:, :-1]], dim=1)
            tangent = partial(_joint_tangent, stack, xb, prev)
            Q0 = basis if basis is not None else _start(B, sum(sizes), k, gen, prev)
            per_sample, hist = qr_iteration(tangent, Q0, T, warmup)
            history, exponents = hist.mean(dim=1), per_sample.mean(dim=0)
    seconds = time.perf_counter() - start
    if not bool(torch.isfinite(exponents).all()):
        raise ValueError("the Lyapunov exponents are not finite: a tangent vector collapsed to 0 or overflowed")
    return LyapunovSpectrum(
        exponents.cpu().numpy(),
        per_sample.cpu().numpy(),
        history.cpu().numpy(),
        per_layer,
        T - warmup,
        warmup,
        seconds,
    )


def _joint_tangent(stack: Stack, x: Tensor, prev: Tensor, t: int, Q: Tensor) -> Tensor:
    return _products(partial(joint_step, stack, x[:, t]), prev[:, t], Q)


def _layer_tangent(cell: Cell, inputs: Tensor, prev: Tensor, t: int, Q: Tensor) -> Tensor:
    return _products(partial(cell.transition, inputs[:, t]), prev[:, t], Q)
