"""Cells whose parameters are laid out exactly as PyTorch's ``nn.LSTM/GRU/RNN`` lay them out.

One layer holds ``weight_ih`` (G*H x I), ``weight_hh`` (G*H x P), ``bias_ih`` and
``bias_hh`` (G*H each), with the G gate blocks stacked along rows in PyTorch's
order (LSTM: i, f, g, o; GRU: r, z, n; RNN: one block). Because the layout is the
same, a cell can be a *view* of one layer of a user's module (:meth:`view_of`
shares the very ``Parameter`` objects, no copies), and a cell's own parameters
can run PyTorch's fused sequence kernels for fast training.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from .cell import Cell, check_sizes


class TorchLayoutCell(Cell):
    """A :class:`Cell` with PyTorch's recurrent parameter layout (see module docstring)."""

    gates: ClassVar[int]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        recurrent_size: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_sizes(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        self.input_size = input_size
        self.cell_size = hidden_size
        rec = hidden_size if recurrent_size is None else recurrent_size
        g = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size, device=device, dtype=dtype))
        self.weight_hh = nn.Parameter(torch.empty(g, rec, device=device, dtype=dtype))
        self.bias_ih: nn.Parameter | None
        self.bias_hh: nn.Parameter | None
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g, device=device, dtype=dtype))
            self.bias_hh = nn.Parameter(torch.empty(g, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        if str(device) != "meta":
            self.reset_parameters()

    @property
    def bias(self) -> bool:
        return self.bias_ih is not None

    def reset_parameters(self) -> None:
        """PyTorch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.cell_size)
        for p in self.parameters(recurse=False):
            nn.init.uniform_(p, -bound, bound)

    @torch.no_grad()
    def scale_recurrence(self, factor: float) -> None:
        self.weight_hh.mul_(factor)

    @torch.no_grad()
    def scale_input(self, factor: float) -> None:
        self.weight_ih.mul_(factor)

    def flat_weights(self) -> list[Tensor]:
        """Parameters in the order PyTorch's fused kernels expect."""
        ws: list[Tensor] = [self.weight_ih, self.weight_hh]
        if self.bias_ih is not None and self.bias_hh is not None:
            ws += [self.bias_ih, self.bias_hh]
        return ws

    @classmethod
    def view_of(
        cls, module: nn.Module, layer: int | None = None, *, reverse: bool = False, **options: object
    ) -> TorchLayoutCell:
        """A cell sharing the ``Parameter`` objects of one layer of ``module``.

        ``layer=None`` reads ``weight_ih`` etc. (``nn.LSTMCell``-style modules);
        an integer k reads ``weight_ih_l{k}`` etc. (``nn.LSTM``-style modules), and
        ``weight_ih_l{k}_reverse`` etc. with ``reverse`` (a bidirectional module's
        reverse direction).
        """
        sfx = ("" if layer is None else f"_l{layer}") + ("_reverse" if reverse else "")
        w_ih = getattr(module, "weight_ih" + sfx)
        w_hh = getattr(module, "weight_hh" + sfx)
        b_ih = getattr(module, "bias_ih" + sfx, None)
        cell = cls._empty_like(module, sfx, w_ih, w_hh, b_ih is not None, **options)
        cell.weight_ih = w_ih
        cell.weight_hh = w_hh
        if b_ih is not None:
            cell.bias_ih = b_ih
            cell.bias_hh = getattr(module, "bias_hh" + sfx)
        return cell

    @classmethod
    def _empty_like(
        cls, module: nn.Module, sfx: str, w_ih: Tensor, w_hh: Tensor, bias: bool, **options: object
    ) -> TorchLayoutCell:
        hidden = w_ih.shape[0] // cls.gates
        return cls(w_ih.shape[1], hidden, bias, device="meta", **options)  # type: ignore[arg-type]

    @staticmethod
    def _hx(state: Tensor) -> Tensor:
        return state.unsqueeze(0).contiguous()
