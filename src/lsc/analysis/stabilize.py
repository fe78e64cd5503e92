"""Make a recurrent model contracting: the "stable" RNNs of Miller & Hardt ("Stable
recurrent models", ICLR 2019), as the ``--stabilize`` option of Ribeiro et al.'s code
applies them ("Beyond exploding and vanishing gradients", AISTATS 2020;
init_theories.md C.3(c)): the recurrent matrices are *normalised to* fixed absolute
row sums (not projected onto a ball), so that every step is a contraction in the
infinity norm, ||dS_t/dS_{t-1}||_inf <= L_x < 1. Under constant input the stack then
has exactly one attractor, a globally attracting fixed point (Banach), and its
gradients vanish: the contrast to a free model's multistability or limit cycles.

Per cell (rows of PyTorch's layout W_hh (G H x H), gate blocks stacked):

* Elman, h' = phi(W_ih x + W_hh h + b): every row of W_hh to abs sum ``bound / sup|phi'|``,
  so L_x <= bound.
* GRU (reset-after form), on the invariant box ||h||_inf <= 1: the row of the Jacobian is
  z_i + (1 - z_i) [r_i a_i + (a_i + |b_hn,i|) c_i / 4 + 2 z_i d_i] with a, c, d the row abs
  sums of W_hn, W_hr, W_hz. Normalising a = bound/2, d = bound/8,
  c_i = bound / (a + |b_hn,i|) gives L_x <= z + (1 - z) bound < 1 (our derivation).
* LSTM: Ribeiro's constants, W_hh blocks (i, f, g, o) to row abs sums 0.395, 0.155, 0.099,
  0.395 and the forget gate's input block W_if to 0.25 (the reference's numbers; ``bound``
  does not apply). Projections (``proj_size``) are not supported.

Each layer is contracting in its own state given its input, and the stack is a cascade
of such layers, so it converges to one fixed point under constant input.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..models import ElmanCell, GRUCell, LSTMCell, as_stack

SUP_DERIVATIVE = {
    "tanh": 1.0,
    "sigmoid": 0.25,
    "relu": 1.0,
    "identity": 1.0,
    "linear": 1.0,
    "sin": 1.0,
    "cos": 1.0,
    "silu": 1.0998,
    "swish": 1.0998,
    "gelu": 1.1290,
}
"""sup |phi'(a)| of the Elman nonlinearities (silu, gelu rounded up)."""
LSTM_ROW_SUMS = (0.395, 0.155, 0.099, 0.395)
"""Ribeiro et al.'s recurrent row sums for the LSTM gates i, f, g, o."""
LSTM_FORGET_INPUT_SUM = 0.25


def _normalise_rows(w: Tensor, target: Tensor | float) -> None:
    """Scale every row of ``w`` (in place) to absolute sum ``target`` (rows of zeros stay)."""
    sums = w.abs().sum(dim=1, keepdim=True)
    target = torch.as_tensor(target, dtype=w.dtype, device=w.device).reshape(-1, 1)
    w.mul_(torch.where(sums > 0, target / sums.clamp_min(torch.finfo(w.dtype).tiny), torch.ones_like(sums)))


@torch.no_grad()
def _stabilize_cell(cell: nn.Module, bound: float) -> None:
    if isinstance(cell, LSTMCell):
        if cell.proj_size:
            raise ValueError("stabilize does not support LSTM projections (proj_size > 0)")
        H = cell.cell_size
        for k, s in enumerate(LSTM_ROW_SUMS):
            _normalise_rows(cell.weight_hh[k * H : (k + 1) * H], s)
        _normalise_rows(cell.weight_ih[H : 2 * H], LSTM_FORGET_INPUT_SUM)
    elif isinstance(cell, GRUCell):
        H = cell.hidden_size
        w = cell.weight_hh
        a = bound / 2
        b_hn = cell.bias_hh[2 * H :].abs() if cell.bias_hh is not None else torch.zeros(H, dtype=w.dtype)
        _normalise_rows(w[:H], bound / (a + b_hn))  # W_hr
        _normalise_rows(w[H : 2 * H], bound / 8)  # W_hz
        _normalise_rows(w[2 * H :], a)  # W_hn
    elif isinstance(cell, ElmanCell):
        sup = SUP_DERIVATIVE.get(cell.nonlinearity)
        if sup is None:  # pragma: no cover - every registered activation is listed
            raise ValueError(f"no derivative bound for nonlinearity {cell.nonlinearity!r}")
        _normalise_rows(cell.weight_hh, bound / sup)
    else:
        raise TypeError(
            f"stabilize knows Elman, GRU and LSTM cells (Miller & Hardt's conditions), not {type(cell).__name__}"
        )


def stabilize(model: nn.Module, bound: float = 0.9, *, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (or ``model`` itself with ``inplace=True``) whose recurrent
    weights are normalised so every step contracts (module docstring).

    Args:
        model: ``StackedRNN``, ``torch.nn.LSTM/GRU/RNN`` or a model of such cells.
        bound: the Lipschitz bound L_x in (0, 1) for Elman and GRU cells.
    """
    if not (isinstance(bound, (int, float)) and 0 < bound < 1):
        raise ValueError(f"bound must be a number in (0, 1) (a contraction), got {bound!r}")
    out = model if inplace else copy.deepcopy(model)
    for cell in as_stack(out).cells:
        _stabilize_cell(cell, float(bound))
    return out
