"""Classical initialisations, applied per gate block (init_theories.md D, E.1).

For a weight block of shape (fan_out, fan_in):

* Glorot (Glorot & Bengio 2010): U(-b, b), b = gain sqrt(6 / (fan_in + fan_out)), or
  N(0, 2 gain^2 / (fan_in + fan_out));
* He (He et al. 2015): N(0, 2 gain^2 / fan_in) (or uniform with the same variance);
* orthogonal (Saxe et al. 2014): gain x a Haar (semi-)orthogonal matrix;
* identity (IRNN, Le, Jaitly & Hinton 2015): recurrent W = scale I, input weights
  N(0, input_std^2), for Elman cells (and square dense layers).

Biases are set to zero. In a gated layer each gate's rows of ``weight_ih`` and
``weight_hh`` are one block, so the fans are (input or recurrent width, hidden width):
PyTorch's stacked (G H) x I shape would give a wrong fan.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..models import ALIFCell
from ..models.torch_layout import TorchLayoutCell
from . import draws
from .units import Unit, gate_names, gate_rows, matrices

BlockRule = Callable[[Tensor, int, int, torch.Generator], None]  # (block, fan_in, fan_out, generator)


class NotApplicable(Exception):
    """An init rule that does not apply to this unit (the message says why)."""

    unit: Unit | None = None  # the unit it does not apply to, where the raiser knows it


def _zero_biases(*biases: Tensor | None) -> None:
    for b in biases:
        if b is not None:
            draws.constant(b, 0.0)


def per_block(rule: BlockRule, unit: Unit, gen: torch.Generator) -> None:
    """Apply a block rule to every weight block of a unit and zero its biases."""
    m = unit.module
    if unit.kind == "dense":
        assert isinstance(m, nn.Linear)
        rule(m.weight, m.in_features, m.out_features, gen)
        _zero_biases(m.bias)
    elif unit.kind == "gated":
        assert isinstance(m, TorchLayoutCell)
        H = m.cell_size
        for gate in gate_names(m):
            rows = gate_rows(m, gate)
            rule(m.weight_ih[rows], m.weight_ih.shape[1], H, gen)
            rule(m.weight_hh[rows], m.weight_hh.shape[1], H, gen)
        for _, w in matrices(m):
            rule(w, w.shape[1], w.shape[0], gen)
        _zero_biases(m.bias_ih, m.bias_hh)
    elif unit.kind == "alif":
        assert isinstance(m, ALIFCell)
        rule(m.weight_in, m.input_size, m.hidden_size, gen)
        rule(m.weight_rec, m.hidden_size, m.hidden_size, gen)
        _zero_biases(m.bias)
    else:
        raise NotApplicable(f"it sets weight matrices, and a {unit.name} has its own parametrisation")


def glorot(unit: Unit, gen: torch.Generator, *, distribution: str = "uniform", gain: float = 1.0) -> None:
    if distribution not in ("uniform", "normal"):
        raise ValueError(f"glorot distribution must be 'uniform' or 'normal', got {distribution!r}")

    def rule(block: Tensor, fan_in: int, fan_out: int, g: torch.Generator) -> None:
        if distribution == "uniform":
            draws.uniform(block, draws.glorot_bound(fan_in, fan_out, gain), g)
        else:
            draws.normal(block, gain * math.sqrt(2.0 / (fan_in + fan_out)), g)

    per_block(rule, unit, gen)


def he(unit: Unit, gen: torch.Generator, *, distribution: str = "normal", gain: float = 1.0) -> None:
    if distribution not in ("uniform", "normal"):
        raise ValueError(f"he distribution must be 'uniform' or 'normal', got {distribution!r}")

    def rule(block: Tensor, fan_in: int, fan_out: int, g: torch.Generator) -> None:
        std = gain * math.sqrt(2.0 / fan_in)
        if distribution == "normal":
            draws.normal(block, std, g)
        else:
            draws.uniform(block, math.sqrt(3.0) * std, g)

    per_block(rule, unit, gen)


def orthogonal(unit: Unit, gen: torch.Generator, *, gain: float = 1.0) -> None:
    per_block(lambda block, fan_in, fan_out, g: draws.orthogonal(block, gain, g), unit, gen)


def identity(unit: Unit, gen: torch.Generator, *, scale: float = 1.0, input_std: float = 1e-3) -> None:
    m = unit.module
    if unit.kind == "dense":
        assert isinstance(m, nn.Linear)
        draws.identity(m.weight, scale)
        _zero_biases(m.bias)
    elif unit.kind == "gated" and isinstance(m, TorchLayoutCell) and m.gates == 1:
        draws.identity(m.weight_hh, scale)
        draws.normal(m.weight_ih, input_std, gen)
        _zero_biases(m.bias_ih, m.bias_hh)
    elif unit.kind == "gated":
        raise NotApplicable(
            "the identity (IRNN) init is for Elman cells; for LSTM/GRU use orthogonal, chrono or critical"
        )
    else:
        raise NotApplicable(f"a {unit.name} has no recurrent matrix to set to the identity")


def keras(unit: Unit, gen: torch.Generator, *, forget_bias: float = 1.0) -> None:
    """Keras's defaults for its recurrent layers, the reference code's "default" init:
    the input kernel Glorot-uniform over the *whole* stacked kernel (fans I and G H, as
    Keras's (I, G H) kernel has them), the recurrent kernel one (semi-)orthogonal G H x H
    matrix, zero biases and, for an LSTM, forget-gate bias ``forget_bias``
    (``unit_forget_bias=True``); dense layers Glorot-uniform with zero bias. ALIF: Glorot
    input and orthogonal recurrent weights (docs/design.md section 14)."""
    m = unit.module
    if unit.kind == "dense":
        assert isinstance(m, nn.Linear)
        draws.uniform(m.weight, draws.glorot_bound(m.in_features, m.out_features), gen)
        _zero_biases(m.bias)
    elif unit.kind == "gated":
        assert isinstance(m, TorchLayoutCell)
        w_ih, w_hh = m.weight_ih, m.weight_hh
        draws.uniform(w_ih, draws.glorot_bound(w_ih.shape[1], w_ih.shape[0]), gen)
        draws.orthogonal(w_hh, 1.0, gen)
        for _, w in matrices(m):
            draws.uniform(w, draws.glorot_bound(w.shape[1], w.shape[0]), gen)
        _zero_biases(m.bias_ih, m.bias_hh)
        if "f" in gate_names(m) and m.bias_ih is not None:
            draws.constant(m.bias_ih[gate_rows(m, "f")], forget_bias)
    elif unit.kind == "alif":
        assert isinstance(m, ALIFCell)
        draws.uniform(m.weight_in, draws.glorot_bound(m.input_size, m.hidden_size), gen)
        draws.orthogonal(m.weight_rec, 1.0, gen)
        _zero_biases(m.bias)
    else:
        raise NotApplicable(f"Keras has no default for a {unit.name}; it keeps its own parametrisation")
