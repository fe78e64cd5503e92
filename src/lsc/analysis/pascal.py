"""Path counting on the depth x time grid, and the PascalRNN that makes it exact.

The gradient between grid nodes (l, t) -> (l + dl, t + dt) is a sum over the
C(dl + dt, dt) monotone lattice paths of products of local Jacobians. Bounding
every depth edge by rho_l and every time edge by rho_t gives the path-count bound
(Herranz-Celotti & Rouat, "Stabilizing RNN Gradients through Pre-training",
docs/design.md A1.4)::

    ||d s^{l+dl}_{t+dt} / d s^l_t||  <~  C(dl + dt, dt) * rho_l^dl * rho_t^dt

With rho_l = rho_t = 1 it is the binomial coefficient (exponential when depth and time
grow together); with rho_l + rho_t = 1 every term is a binomial probability <= 1.

The PascalRNN (the paper's Fig. 1c) is the scalar linear deep RNN

    y^0_t = x_t,    y^l_t = rho * (y^{l-1}_t + y^l_{t-1})    (l = 1..L, y^l_{-1} = 0)

whose every local Jacobian is the positive scalar rho, so the bound holds with
equality. With y = sum_t' y^L_t' (the top layer's output summed over all steps) a path
from x_t to y^L_t' takes the depth edge x_t -> y^1_t first, then L - 1 depth and
dt = t' - t time edges in any order::

    dy/dx_t = sum_{dt=0}^{T-1-t} C(L - 1 + dt, dt) rho^(L + dt)
            = C(L + T - 1 - t, T - 1 - t)          at rho = 1 (hockey-stick identity)

L = 10, T = 100: dy/dx_0 = C(109, 99) = 42,634,215,112,710 ~ 4.3e13 at rho = 1 and
1 - 2.5e-15 ~ 1 at rho = 0.5 (a negative-binomial series).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checks import check_positive


def _count(n: int, what: str) -> int:
    if isinstance(n, bool) or not float(n).is_integer() or n < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {n!r}")
    return int(n)


def _bound_one(depth: int, time: int, rho_depth: float, rho_time: float, log: bool) -> float:
    d = _count(depth, "depth")
    t = _count(time, "time")
    log_c = math.lgamma(d + t + 1) - math.lgamma(d + 1) - math.lgamma(t + 1)
    log_r = (d * math.log(rho_depth) if d else 0.0) + (t * math.log(rho_time) if t else 0.0)
    if log:
        return log_c + log_r
    if log_c + log_r > 709.0:  # beyond float64
        return math.inf
    c = math.comb(d + t, t)
    if c < 2**53:  # exact binomial, then the radii
        return float(c) * (rho_depth**d if d else 1.0) * (rho_time**t if t else 1.0)
    return math.exp(log_c + log_r)


def path_count_bound(
    depth: int | np.ndarray,
    time: int | np.ndarray,
    rho_depth: float = 1.0,
    rho_time: float = 1.0,
    *,
    log: bool = False,
) -> float | np.ndarray:
    """C(depth + time, time) * rho_depth**depth * rho_time**time (module docstring).

    ``depth`` and ``time`` (the grid distances dl, dt) may be integer arrays; they
    broadcast. ``log=True`` returns the natural logarithm (no overflow: along
    100 dl = T the count reaches ~1e220 at T = 5-10 K and overflows float64 beyond).
    Binomials below 2^53 are exact.
    """
    rd = check_positive(rho_depth, "rho_depth")
    rt = check_positive(rho_time, "rho_time")
    if np.ndim(depth) == 0 and np.ndim(time) == 0:
        return _bound_one(depth, time, rd, rt, log)  # type: ignore[arg-type]
    d, t = np.broadcast_arrays(np.asarray(depth), np.asarray(time))
    out = np.empty(d.shape, dtype=np.float64)
    for idx in np.ndindex(d.shape):
        out[idx] = _bound_one(d[idx].item(), t[idx].item(), rd, rt, log)
    return out


@dataclass(frozen=True)
class PascalRNN:
    """|dy/dx_t| of the PascalRNN for every input step t, by autograd through the
    recurrence (``gradient``) and from the path-count bound (``bound``), which it equals."""

    depth: int
    time: int
    rho: float
    gradient: np.ndarray = field(repr=False)
    bound: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "depth": self.depth,
            "time": self.time,
            "rho": self.rho,
            "gradient": self.gradient.tolist(),
            "bound": self.bound.tolist(),
        }

    def plot(self, path: str | Path, others: list[PascalRNN] | None = None) -> Path:
        """Write a PNG of |dy/dx_t| against t (log axis), with the bound as a dashed line;
        ``others`` adds more radii to the same axes (the paper's Fig. 1c pairs 1 and 0.5)."""
        from .plots import plot_pascal

        return plot_pascal([self, *(others or [])], path)


def pascal_bound(depth: int, time: int, rho: float) -> np.ndarray:
    """sum_{dt=0}^{T-1-t} rho * C(L - 1 + dt, dt) rho^(L - 1 + dt) for every t (module docstring):
    the encoder edge x_t -> y^1_t, then the path-count bound from node (1, t) to every (L, t')."""
    dts = np.arange(time)
    per_dt = rho * np.asarray(path_count_bound(np.full(time, depth - 1), dts, rho, rho))
    tail = np.cumsum(per_dt)  # tail[k] = sum_{dt <= k}
    return tail[::-1].copy()  # step t sums dt = 0 .. T-1-t


def pascal_rnn(depth: int = 10, time: int = 100, rho: float = 1.0, *, batch: int = 6, seed: int = 0) -> PascalRNN:
    """Run the PascalRNN y^l_t = rho (y^{l-1}_t + y^l_{t-1}) (module docstring) on input
    2 N(0, 1) of shape (batch, time), as in the paper's script, and differentiate
    y = sum over steps of the top layer's outputs with respect to every x_t (float64).

    The model is linear, so the gradient does not depend on the input: ``gradient[t]``
    is |dy/dx_t| (batch mean) and equals ``bound[t]`` (:func:`pascal_bound`) exactly up
    to float64 rounding.
    """
    for name, v in (("depth", depth), ("time", time), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"pascal_rnn: {name} must be an integer >= 1, got {v!r}")
    rho = check_positive(rho, "rho")
    gen = torch.Generator().manual_seed(seed)
    x = (2 * torch.randn(batch, time, generator=gen, dtype=torch.float64)).requires_grad_(True)
    prev = [torch.zeros(batch, dtype=torch.float64) for _ in range(depth)]  # y^l_{t-1}, l = 1..L
    total = torch.zeros((), dtype=torch.float64)
    for t in range(time):
        below = x[:, t]
        for l in range(depth):
            prev[l] = rho * (below + prev[l])
            below = prev[l]
        total = total + below.sum()
    (g,) = torch.autograd.grad(total, x)
    gradient = g.abs().mean(dim=0).numpy()
    return PascalRNN(depth, time, rho, gradient, pascal_bound(depth, time, rho))
