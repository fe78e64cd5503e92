"""GRU cell (Cho et al. 2014) in PyTorch's ``nn.GRU`` form.

    r = sigma(W_ir x + b_ir + W_hr h + b_hr),  z = sigma(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}

State s_t = h_t.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .torch_layout import TorchLayoutCell


class GRUCell(TorchLayoutCell):
    """GRU cell over state h (PyTorch's reset-after form)."""

    gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.hidden_size = self.state_size = hidden_size

    def transition(self, x: Tensor, state: Tensor) -> Tensor:
        ir, iz, in_ = F.linear(x, self.weight_ih, self.bias_ih).chunk(3, dim=1)
        hr, hz, hn = F.linear(state, self.weight_hh, self.bias_hh).chunk(3, dim=1)
        r = torch.sigmoid(ir + hr)
        z = torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return (1 - z) * n + z * state

    def forward_sequence(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if state is None:
            state = self.init_state(x.shape[0], device=x.device, dtype=x.dtype)
        y, h = torch.gru(x, self._hx(state), self.flat_weights(), self.bias, 1, 0.0, self.training, False, True)
        return y, h[0]
