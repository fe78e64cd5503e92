"""Elman (simple) recurrent cell in PyTorch's ``nn.RNN`` form.

    h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

with phi one of :data:`lsc.models.activations.ACTIVATIONS`. The LSC paper's "RNN ReLU" (rsimplernn) and
"RNN sigma" (ssimplernn) are phi = relu and phi = sigmoid (docs/design.md A3).
``identity`` gives a linear recurrence (analytic test cases).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .activations import activation
from .torch_layout import TorchLayoutCell

_FUSED = {"tanh": torch.rnn_tanh, "relu": torch.rnn_relu}


class ElmanCell(TorchLayoutCell):
    """Elman cell over state h with a named nonlinearity."""

    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        phi = activation(nonlinearity, "Elman nonlinearity")
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.hidden_size = self.state_size = hidden_size
        self.nonlinearity = nonlinearity
        self._phi = phi

    def transition(self, x: Tensor, state: Tensor) -> Tensor:
        return self._phi(F.linear(x, self.weight_ih, self.bias_ih) + F.linear(state, self.weight_hh, self.bias_hh))

    def forward_sequence(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if state is None:
            state = self.init_state(x.shape[0], device=x.device, dtype=x.dtype)
        fused = _FUSED.get(self.nonlinearity)
        if fused is not None:
            y, h = fused(x, self._hx(state), self.flat_weights(), self.bias, 1, 0.0, self.training, False, True)
            return y, h[0]
        drive = F.linear(x, self.weight_ih, self.bias_ih)  # input projection for all steps at once
        ys = []
        for t in range(x.shape[1]):
            state = self._phi(drive[:, t] + F.linear(state, self.weight_hh, self.bias_hh))
            ys.append(state)
        return torch.stack(ys, dim=1), state

    @classmethod
    def _empty_like(cls, module, sfx, w_ih, w_hh, bias, **options):
        nonlinearity = options.pop("nonlinearity", getattr(module, "nonlinearity", "tanh"))
        return cls(w_ih.shape[1], w_ih.shape[0], bias, nonlinearity=str(nonlinearity), device="meta")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"
