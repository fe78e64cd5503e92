"""LSTM cell (Hochreiter & Schmidhuber 1997) in PyTorch's ``nn.LSTM`` form.

    [i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    c_t = sigma(f) * c_{t-1} + sigma(i) * tanh(g)
    h_t = sigma(o) * tanh(c_t)            (then h_t = W_hr h_t with a projection)

State s_t = [h_t; c_t], the full state of the LSC paper's grid (docs/design.md A1.1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .torch_layout import TorchLayoutCell


class LSTMCell(TorchLayoutCell):
    """LSTM cell over state [h; c]; ``proj_size > 0`` adds PyTorch's output projection."""

    gates = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        proj_size: int = 0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if proj_size < 0 or (proj_size != 0 and proj_size >= hidden_size):
            raise ValueError(f"proj_size must be 0 or in [1, hidden_size), got {proj_size}")
        out = proj_size or hidden_size
        super().__init__(input_size, hidden_size, bias, recurrent_size=out, device=device, dtype=dtype)
        self.proj_size = proj_size
        self.hidden_size = out
        self.state_size = out + hidden_size
        if proj_size:
            self.weight_hr = nn.Parameter(torch.empty(proj_size, hidden_size, device=device, dtype=dtype))
            if str(device) != "meta":
                bound = 1.0 / math.sqrt(hidden_size)
                nn.init.uniform_(self.weight_hr, -bound, bound)
        else:
            self.register_parameter("weight_hr", None)

    def transition(self, x: Tensor, state: Tensor) -> Tensor:
        out = self.hidden_size
        h, c = state[:, :out], state[:, out:]
        z = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        i, f, g, o = z.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        if self.weight_hr is not None:
            h = F.linear(h, self.weight_hr)
        return torch.cat([h, c], dim=1)

    def output(self, x: Tensor, state: Tensor) -> Tensor:
        return state[:, : self.hidden_size]

    def output_columns(self) -> slice:
        return slice(0, self.hidden_size)  # h; c reaches the output only through the next step

    def flat_weights(self) -> list[Tensor]:
        ws = super().flat_weights()
        return [*ws, self.weight_hr] if self.weight_hr is not None else ws

    def forward_sequence(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if state is None:
            state = self.init_state(x.shape[0], device=x.device, dtype=x.dtype)
        out = self.hidden_size
        hx = (self._hx(state[:, :out]), self._hx(state[:, out:]))
        y, h, c = torch.lstm(x, hx, self.flat_weights(), self.bias, 1, 0.0, self.training, False, True)
        return y, torch.cat([h[0], c[0]], dim=1)

    @classmethod
    def _empty_like(cls, module, sfx, w_ih, w_hh, bias, **options):
        w_hr = getattr(module, "weight_hr" + sfx, None)
        hidden = w_ih.shape[0] // 4
        cell = cls(w_ih.shape[1], hidden, bias, proj_size=0 if w_hr is None else w_hr.shape[0], device="meta")
        if w_hr is not None:
            cell.weight_hr = w_hr
        return cell
