"""Spikes with surrogate gradients, transform-safe.

A spike is z = H(u) (Heaviside of the distance to threshold u). Training needs a
surrogate derivative dz/du = psi(u). We use the straight-through *detach trick*:

    z = H(u) + F(u) - F(u).detach(),   F' = psi

Forward values are exactly 0 or 1 (F(u) - F(u).detach() is exactly 0), and every
derivative (autograd, ``torch.func.jvp/vjp/jacrev/vmap``) sees psi; no custom
``autograd.Function`` is involved (docs/design.md, section 1).

Surrogates (F is the antiderivative of psi; ``dampening`` gamma scales psi,
``sharpness`` s widens or narrows it):

* ``fast_sigmoid`` (default; Zenke & Ganguli's SuperSpike form, as in the LSC reference
  code): psi = gamma / (1 + |2 s u|)^2, F = gamma u / (1 + 2 s |u|)
* ``triangular`` (Bellec et al. 2018): psi = gamma max(0, 1 - s|u|)
* ``sigmoid``: psi = gamma s sigma'(s u)
* ``gaussian``: psi = gamma exp(-(s u)^2 / 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..checks import unknown_name


def _fast_sigmoid(u: Tensor, s: float) -> Tensor:
    # d/du [u / (1 + 2 s |u|)] = 1 / (1 + 2 s |u|)^2
    return u / (1 + 2 * s * u.abs())


def _triangular(u: Tensor, s: float) -> Tensor:
    # antiderivative of max(0, 1 - s|u|), constant beyond |u| = 1/s
    c = (u * s).clamp(-1.0, 1.0)
    return (c - c * c.abs() / 2) / s


def _sigmoid(u: Tensor, s: float) -> Tensor:
    return torch.sigmoid(s * u)


def _gaussian(u: Tensor, s: float) -> Tensor:
    return math.sqrt(math.pi / 2) * torch.erf(s * u / math.sqrt(2)) / s


SURROGATES: dict[str, Callable[[Tensor, float], Tensor]] = {
    "fast_sigmoid": _fast_sigmoid,
    "triangular": _triangular,
    "sigmoid": _sigmoid,
    "gaussian": _gaussian,
}


def check_surrogate(name: str) -> str:
    if name not in SURROGATES:
        raise unknown_name("surrogate", name, SURROGATES)
    return name


def spike(u: Tensor, surrogate: str = "fast_sigmoid", dampening: float = 0.5, sharpness: float = 1.0) -> Tensor:
    """H(u) in the forward pass (exactly 0/1), ``dampening * psi(u)`` in every derivative."""
    F = dampening * SURROGATES[surrogate](u, sharpness)
    return (u > 0).to(u.dtype) + (F - F.detach())
