"""Inits of linear recurrences: rescaled Glorot (Bar et al. 2025) on Elman cells and, in its
diagonal variant, on LRU cells; the LRU ring (Orvieto et al. 2023). See :mod:`.rescaled`
for the mathematics."""

from __future__ import annotations

import math

import torch

from ..models.lru import LRUCell, ring_init
from ..models.torch_layout import TorchLayoutCell
from . import draws
from .classical import NotApplicable
from .rescaled import (
    lru_parameters,
    rescaled_glorot_eigenvalues,
    rescaled_glorot_matrix,
)
from .units import Unit


def rescaled_glorot(unit: Unit, gen: torch.Generator) -> None:
    """Elman: W_hh = c_n G / sqrt(n), W_ih ~ N(0, 1 / fan_in), biases 0 (the official code's
    dense linear RNN); LRU: eigenvalues of that matrix as the diagonal recurrence."""
    m = unit.module
    square = isinstance(m, TorchLayoutCell) and m.weight_hh.shape[0] == m.weight_hh.shape[1]
    if unit.kind == "gated" and isinstance(m, TorchLayoutCell) and m.gates == 1 and square:
        draws.put(m.weight_hh, rescaled_glorot_matrix(m.cell_size, gen))
        draws.normal(m.weight_ih, 1.0 / math.sqrt(m.weight_ih.shape[1]), gen)
        for b in (m.bias_ih, m.bias_hh):
            if b is not None:
                draws.constant(b, 0.0)
    elif unit.kind == "lru":
        assert isinstance(m, LRUCell)
        nu, theta, gamma = lru_parameters(rescaled_glorot_eigenvalues(m.complex_size, gen))
        for p, v in ((m.nu_log, nu), (m.theta_log, theta), (m.gamma_log, gamma)):
            draws.put(p, v)
    else:
        raise NotApplicable("rescaled Glorot is for linear(-ised) recurrences: Elman and LRU cells")


def lru_ring(
    unit: Unit, gen: torch.Generator, *, r_min: float = 0.4, r_max: float = 0.99, max_phase: float = math.pi / 10
) -> None:
    """|lambda|^2 ~ U[r_min^2, r_max^2], phase ~ U[0, max_phase], gamma = sqrt(1 - |lambda|^2)."""
    m = unit.module
    if unit.kind != "lru":
        raise NotApplicable("the ring init sets the eigenvalues of LRU cells")
    assert isinstance(m, LRUCell)
    nu, theta = ring_init(m.complex_size, r_min, r_max, max_phase, generator=gen)
    gamma = 0.5 * torch.log1p(-torch.exp(-2 * torch.exp(nu)))
    for p, v in ((m.nu_log, nu), (m.theta_log, theta), (m.gamma_log, gamma)):
        draws.put(p, v)
