"""Seeded random draws written in place into (slices of) parameters.

Every draw is made on the CPU from a ``torch.Generator`` in float64 and then copied to the
parameter's device and dtype, so an init with ``seed=`` gives the same numbers on every
device and dtype.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def put(target: Tensor, values: Tensor) -> None:
    with torch.no_grad():
        target.copy_(values.to(device=target.device, dtype=target.dtype))


def uniform(target: Tensor, bound: float, gen: torch.Generator) -> None:
    """target ~ U(-bound, bound)."""
    put(target, (torch.rand(target.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound)


def normal(target: Tensor, std: float, gen: torch.Generator, mean: float = 0.0) -> None:
    """target ~ N(mean, std^2)."""
    put(target, mean + std * torch.randn(target.shape, generator=gen, dtype=torch.float64))


def orthogonal_matrix(rows: int, cols: int, gen: torch.Generator) -> Tensor:
    """A Haar-random matrix with orthonormal rows or columns (whichever are fewer):
    QR of a Gaussian matrix with the signs of R's diagonal folded into Q (Mezzadri 2007)."""
    a = torch.randn(max(rows, cols), min(rows, cols), generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones(()))
    return q if rows >= cols else q.T


def orthogonal(target: Tensor, gain: float, gen: torch.Generator) -> None:
    """target = gain x (semi-)orthogonal matrix."""
    put(target, gain * orthogonal_matrix(target.shape[0], target.shape[1], gen))


def identity(target: Tensor, scale: float) -> None:
    """target = scale x I (the leading square block for a rectangular matrix)."""
    put(target, scale * torch.eye(target.shape[0], target.shape[1], dtype=torch.float64))


def constant(target: Tensor, value: float) -> None:
    with torch.no_grad():
        target.fill_(value)


def glorot_bound(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """Glorot & Bengio (2010) uniform bound gain * sqrt(6 / (fan_in + fan_out))."""
    return gain * math.sqrt(6.0 / (fan_in + fan_out))
