"""Adaptive leaky integrate-and-fire (ALIF) cell: Bellec et al.'s LSNN neuron in the form
the LSC reference code trains (docs/design.md A3, "maLSNN").

State s_t = [v_t; a_t] (membrane voltage, threshold adaptation). The previous spike is
recomputed from the state, z_{t-1} = H(v_{t-1} - b - beta a_{t-1}), as the reference
does during LSC pre-training, so the time edge d s_t / d s_{t-1} is square:

    i_t   = W_in x_t + W_rec z_{t-1}            (W_rec has a zero diagonal)
    a_t   = rho_a a_{t-1} + (1 - rho_a) z_{t-1},          rho_a = exp(-1 / tau_a)
    thr_t = b + beta a_t
    v_t   = alpha v_{t-1} + i_t - sg(thr_t z_{t-1}),      alpha = exp(-1 / tau_v)
    z_t   = H(v_t - thr_t)                      (surrogate derivative in the backward pass)

``sg`` stops the gradient of the reset term, as in the reference. tau_v, tau_a, b and
beta are per-neuron trainable vectors initialised truncated-normal with mean p and
std 3p/7 (the reference's rule); W_in and W_rec are Glorot-uniform.

Defaults and their sources:

* tau_v = 20 steps (Bellec et al. 2018: tau_m = 20 ms at dt = 1 ms). The reference code
  uses tau_v = 0.1, i.e. alpha = exp(-10) = 4.5e-5: the membrane forgets its voltage
  at every step, so the neuron no longer integrates. We take that for a unit slip
  (0.1 s read as 0.1 steps) and expose it as ``tau_v=0.1`` for faithful replication.
* tau_a = 100 steps (the reference sets in_len / 2; sl-MNIST with time repeat 2 gives 100).
* b = 0.01, beta = 1.8 (``alif``); ``alifb`` draws beta ~ N(0, (1.8/sqrt(n_in))^2),
  which may be negative (the reference's maLSNNb).
* surrogate fast sigmoid, dampening 0.5, sharpness 1 (the reference's ``_dampf:.5``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .cell import Cell, check_sizes
from .surrogate import check_surrogate, spike


def _positive(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
        raise ValueError(f"ALIF {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _trunc_normal(n: int, mean: float) -> Tensor:
    """The reference's per-neuron init: truncated normal, mean p, std 3p/7 (within 2 std)."""
    std = 3 * abs(mean) / 7
    t = torch.empty(n)
    if std == 0:
        return t.fill_(mean)
    return nn.init.trunc_normal_(t, mean, std, mean - 2 * std, mean + 2 * std)


class ALIFCell(Cell):
    """ALIF spiking cell over state [v; a]; output: the spikes z_t (exactly 0 or 1)."""

    diagonal_recurrence = True  # each unit recurs on its own: the time Jacobian holds one eigenvalue per unit
    rec_mask: Tensor  # a buffer (register_buffer in __init__)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        tau_v: float = 20.0,
        tau_a: float = 100.0,
        threshold: float = 0.01,
        beta: float | str = 1.8,
        surrogate: str = "fast_sigmoid",
        dampening: float = 0.5,
        sharpness: float = 1.0,
    ) -> None:
        super().__init__()
        check_sizes("ALIFCell", input_size=input_size, hidden_size=hidden_size)
        tau_v, tau_a = _positive(tau_v, "tau_v"), _positive(tau_a, "tau_a")
        self.surrogate = check_surrogate(surrogate)
        self.dampening, self.sharpness = float(dampening), float(sharpness)
        n = hidden_size
        self.input_size, self.hidden_size, self.state_size = input_size, n, 2 * n
        lim_in, lim_rec = math.sqrt(6 / (input_size + n)), math.sqrt(6 / (2 * n))
        self.weight_in = nn.Parameter(torch.empty(n, input_size).uniform_(-lim_in, lim_in))
        self.weight_rec = nn.Parameter(torch.empty(n, n).uniform_(-lim_rec, lim_rec))
        self.register_buffer("rec_mask", 1.0 - torch.eye(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None  # a learnable internal current
        self.tau_v = nn.Parameter(_trunc_normal(n, tau_v))
        self.tau_a = nn.Parameter(_trunc_normal(n, tau_a))
        self.threshold = nn.Parameter(_trunc_normal(n, _positive(threshold, "threshold")))
        if beta == "gaussian":
            self.beta = nn.Parameter(torch.randn(n) * 1.8 / math.sqrt(input_size))
        else:
            self.beta = nn.Parameter(_trunc_normal(n, float(beta)))

    def _spike(self, v: Tensor, a: Tensor) -> Tensor:
        return spike(v - self.threshold - self.beta * a, self.surrogate, self.dampening, self.sharpness)

    def transition(self, x: Tensor, state: Tensor) -> Tensor:
        n = self.hidden_size
        v, a = state[:, :n], state[:, n:]
        z = self._spike(v, a)  # the previous spike, recomputed from the state
        current = F.linear(x, self.weight_in, self.bias) + F.linear(z, self.weight_rec * self.rec_mask)
        rho = torch.exp(-1.0 / self.tau_a)
        a = rho * a + (1 - rho) * z
        reset = (self.threshold + self.beta * a) * z
        v = torch.exp(-1.0 / self.tau_v) * v + current - reset.detach()
        return torch.cat([v, a], dim=1)

    def output(self, x: Tensor, state: Tensor) -> Tensor:
        n = self.hidden_size
        return self._spike(state[:, :n], state[:, n:])

    @torch.no_grad()
    def scale_recurrence(self, factor: float) -> None:
        """Recurrent weights x factor, and both decays exp(-1/tau) x factor (kept below 1)."""
        self.weight_rec.mul_(factor)
        for tau in (self.tau_v, self.tau_a):
            decay = (torch.exp(-1.0 / tau) * factor).clamp(1e-6, 1 - 1e-6)
            tau.copy_(-1.0 / torch.log(decay))

    @torch.no_grad()
    def scale_input(self, factor: float) -> None:
        self.weight_in.mul_(factor)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", surrogate={self.surrogate!r}"
