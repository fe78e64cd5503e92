"""Rescaled Glorot for long linear recurrences (Bar, Seleznova, Alexander, Kutyniok, Giryes,
NeurIPS 2025, "Revisiting Glorot Initialization for Long-Range Linear Recurrences";
init_theories.md B.3-B.4).

A Glorot recurrent matrix A = G / sqrt(n) (G_ij ~ N(0, 1)) has a spectral radius whose
edge fluctuations follow a Gumbel law (Rider 2003),

    rho(A) ~ 1 + sqrt(gamma_n / (4n)) + Gumbel / sqrt(4 n gamma_n),
    gamma_n = ln(n / (2 pi ln^2 n)),

so rho(A) > 1 with high probability and the state of h_t = A h_{t-1} + B x_t explodes once
t = O(sqrt(n)). The fix divides A by the radius at the Gumbel's mean + one standard
deviation (gamma_E + pi / sqrt(6)):

    c_n = [1 + sqrt(gamma_n / (4n)) + (gamma_E + pi/sqrt(6)) / sqrt(4 n gamma_n)]^(-1),
    A   = c_n G / sqrt(n).

Small n (our choice, the formula is asymptotic): gamma_n <= 0 for n <= 163, so the formula
has no value there, and just above it the last term blows up (c_164 = 0.45, c_170 = 0.69),
an artefact of the asymptotics, not a property of the matrices (the measured mean + sd of
rho(G / sqrt(n)) is about 1.07 at n = 164). Below ``SMALL_N = 200`` we therefore use the
exact radius instead: :func:`rescaled_glorot_matrix` draws G / sqrt(n) and rescales it to
spectral radius exactly c_200 = 0.8347, and :func:`rescaled_glorot_scale` returns c_200
there, so the scale is defined (and non-decreasing) for every n >= 1.

The diagonal variant takes the eigenvalues of that matrix as a complex diagonal
recurrence; for an LRU they set nu = ln(-ln|lambda|) and theta = ln(arg lambda + pi) (the
+pi shift maps lambda to -lambda, harmless since the spectrum of a real Gaussian matrix is
symmetric), with gamma = sqrt(1 - |lambda|^2) as in the official code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

EULER_GAMMA = 0.5772156649015329
GUMBEL_MEAN_PLUS_SD = EULER_GAMMA + math.pi / math.sqrt(6)
SMALL_N = 200


def _formula(n: int) -> float:
    gamma_n = math.log(n / (2 * math.pi * math.log(n) ** 2))
    return 1.0 / (1.0 + math.sqrt(gamma_n / (4 * n)) + GUMBEL_MEAN_PLUS_SD / math.sqrt(4 * n * gamma_n))


def check_width(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the width n must be an integer >= 1, got {n!r}")
    return n


def rescaled_glorot_scale(n: int) -> float:
    """c_n of Bar et al. (see module docstring); c_200 for n < 200. Never NaN.

    >>> round(rescaled_glorot_scale(256), 3), round(rescaled_glorot_scale(1024), 3)
    (0.888, 0.958)
    """
    n = check_width(n)
    return _formula(max(n, SMALL_N))


def rescaled_glorot_matrix(n: int, generator: torch.Generator | None = None) -> Tensor:
    """An n x n recurrent matrix: c_n G / sqrt(n) for n >= 200; below, G / sqrt(n) rescaled
    to spectral radius exactly c_200 (float64, CPU)."""
    n = check_width(n)
    a = torch.randn(n, n, generator=generator, dtype=torch.float64) / math.sqrt(n)
    if n >= SMALL_N:
        return rescaled_glorot_scale(n) * a
    radius = torch.linalg.eigvals(a).abs().max()
    return a * (rescaled_glorot_scale(n) / radius)


def rescaled_glorot_eigenvalues(n: int, generator: torch.Generator | None = None) -> Tensor:
    """The n complex eigenvalues of :func:`rescaled_glorot_matrix` (the diagonal variant)."""
    return torch.linalg.eigvals(rescaled_glorot_matrix(n, generator))


def lru_parameters(eigenvalues: Tensor, max_modulus: float = 1 - 1e-6) -> tuple[Tensor, Tensor, Tensor]:
    """(nu_log, theta_log, gamma_log) of an LRU whose eigenvalues are ``-eigenvalues``
    (the official code's +pi phase shift); moduli are clipped to ``max_modulus``."""
    modulus = eigenvalues.abs().clamp(1e-12, max_modulus)
    nu = torch.log(-torch.log(modulus))
    theta = torch.log(torch.angle(eigenvalues) + math.pi)
    gamma = 0.5 * torch.log1p(-(modulus**2))
    return nu, theta, gamma
