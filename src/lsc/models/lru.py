"""Residual LRU block (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for
Long Sequences"), as the LSC reference code's ResLRU (docs/design.md A3).

Per step, with u_t the block input (adapted to width d by a linear map when the widths
differ) and a complex diagonal state x_t of size N:

    n_t = LayerNorm(u_t)
    x_t = lambda * x_{t-1} + gamma * (B n_t),     lambda = exp(-exp(nu) + i exp(theta))
    y_t = GELU(Re(C x_t) + D * n_t)
    out = sigmoid(W_1 y_t) * (W_3 y_t) + u_t      (GLU, residual)

The cell's state is [Re x_t; Im x_t] (2N reals), so its time Jacobian is the real form of
diag(lambda): its spectral radius is max |lambda| exactly. Ring initialisation draws
|lambda|^2 uniformly in [r_min^2, r_max^2] (default 0.4-0.99) and the phase uniformly in
[0, max_phase] (default pi/10); gamma = sqrt(1 - |lambda|^2). B and C (real and imaginary
parts) are uniform with variance 1/(fan_in + fan_out) (the reference's "half Glorot"),
D ~ N(0, 1). N defaults to 2d, as in the reference. Dropout is not part of the step.

``forward_sequence`` runs the projections for all steps at once and the recurrence
with a chunked scan (about 2 sqrt(T) sequential steps instead of T); ``transition`` is
the same map for one step, in real arithmetic so every ``torch.func`` transform works.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .cell import Cell, check_sizes


def _uniform(shape: tuple[int, int]) -> Tensor:
    fan_out, fan_in = shape
    lim = math.sqrt(3.0 / (fan_in + fan_out))  # variance 1 / (fan_in + fan_out)
    return torch.empty(shape).uniform_(-lim, lim)


def ring_init(
    n: int,
    r_min: float = 0.4,
    r_max: float = 0.99,
    max_phase: float = math.pi / 10,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """(nu, theta) so that lambda = exp(-exp(nu) + i exp(theta)) lies on the ring
    r_min <= |lambda| <= r_max with |lambda|^2 uniform and phase uniform in [0, max_phase]."""
    if not (0.0 <= r_min < r_max < 1.0):
        raise ValueError(f"LRU ring needs 0 <= r_min < r_max < 1, got r_min={r_min}, r_max={r_max}")
    if not max_phase > 0:
        raise ValueError(f"LRU max_phase must be > 0, got {max_phase}")
    u1, u2 = torch.rand(n, generator=generator), torch.rand(n, generator=generator)
    modulus_sq = u1 * (r_max**2 - r_min**2) + r_min**2
    nu = torch.log(-0.5 * torch.log(modulus_sq.clamp_min(1e-30)))
    theta = torch.log((max_phase * u2).clamp_min(1e-12))
    return nu, theta


class LRUCell(Cell):
    """Residual LRU block as a cell over the state [Re x; Im x]."""

    diagonal_recurrence = True  # each unit recurs on its own: the time Jacobian holds one eigenvalue per unit

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        state_size: int | None = None,
        r_min: float = 0.4,
        r_max: float = 0.99,
        max_phase: float = math.pi / 10,
    ) -> None:
        super().__init__()
        d = hidden_size
        N = 2 * d if state_size is None else state_size
        check_sizes("LRUCell", input_size=input_size, hidden_size=hidden_size, state_size=N)
        self.input_size, self.hidden_size, self.complex_size, self.state_size = input_size, d, N, 2 * N
        self.adapter = nn.Linear(input_size, d, bias=bias) if input_size != d else None
        self.norm = nn.LayerNorm(d)
        nu, theta = ring_init(N, r_min, r_max, max_phase)
        self.nu_log = nn.Parameter(nu)
        self.theta_log = nn.Parameter(theta)
        self.gamma_log = nn.Parameter(0.5 * torch.log1p(-torch.exp(-2 * torch.exp(nu))))  # log sqrt(1 - |lambda|^2)
        self.B_re, self.B_im = nn.Parameter(_uniform((N, d))), nn.Parameter(_uniform((N, d)))
        self.C_re, self.C_im = nn.Parameter(_uniform((d, N))), nn.Parameter(_uniform((d, N)))
        self.D = nn.Parameter(torch.randn(d))
        self.glu_gate = nn.Linear(d, d, bias=bias)
        self.glu_value = nn.Linear(d, d, bias=bias)

    def eigenvalues(self) -> tuple[Tensor, Tensor]:
        """(Re lambda, Im lambda) of the diagonal recurrence."""
        modulus = torch.exp(-torch.exp(self.nu_log))
        phase = torch.exp(self.theta_log)
        return modulus * torch.cos(phase), modulus * torch.sin(phase)

    @torch.no_grad()
    def scale_recurrence(self, factor: float) -> None:
        """|lambda| x factor for every mode (kept below 1); the phases stay."""
        modulus = (torch.exp(-torch.exp(self.nu_log)) * factor).clamp(1e-6, 1 - 1e-6)
        self.nu_log.copy_(torch.log(-torch.log(modulus)))

    @torch.no_grad()
    def scale_input(self, factor: float) -> None:
        self.B_re.mul_(factor)
        self.B_im.mul_(factor)

    def _normed(self, u: Tensor) -> tuple[Tensor, Tensor]:
        u = self.adapter(u) if self.adapter is not None else u
        return u, self.norm(u)

    def _drive(self, n: Tensor) -> tuple[Tensor, Tensor]:
        g = torch.exp(self.gamma_log)
        return F.linear(n, self.B_re) * g, F.linear(n, self.B_im) * g

    def transition(self, x: Tensor, state: Tensor) -> Tensor:
        _, n = self._normed(x)
        br, bi = self._drive(n)
        lr, li = self.eigenvalues()
        xr, xi = state[:, : self.complex_size], state[:, self.complex_size :]
        return torch.cat([lr * xr - li * xi + br, lr * xi + li * xr + bi], dim=1)

    def _read(self, u: Tensor, n: Tensor, xr: Tensor, xi: Tensor) -> Tensor:
        y = F.gelu(F.linear(xr, self.C_re) - F.linear(xi, self.C_im) + self.D * n)
        return torch.sigmoid(self.glu_gate(y)) * self.glu_value(y) + u

    def output(self, x: Tensor, state: Tensor) -> Tensor:
        u, n = self._normed(x)
        return self._read(u, n, state[:, : self.complex_size], state[:, self.complex_size :])

    def forward_sequence(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u, n = self._normed(x)
        hr, hi = self._drive(n)  # (B, T, N): x_t = lambda x_{t-1} + b_t
        lr, li = self.eigenvalues()
        if state is not None:  # fold the initial state into the first step
            sr, si = state[:, : self.complex_size], state[:, self.complex_size :]
            first_r = hr[:, :1] + (lr * sr - li * si).unsqueeze(1)
            first_i = hi[:, :1] + (lr * si + li * sr).unsqueeze(1)
            hr, hi = torch.cat([first_r, hr[:, 1:]], 1), torch.cat([first_i, hi[:, 1:]], 1)
        hr, hi = linear_scan(lr, li, hr, hi)
        y = self._read(u, n, hr, hi)
        return y, torch.cat([hr[:, -1], hi[:, -1]], dim=1)


def linear_scan(lr: Tensor, li: Tensor, br: Tensor, bi: Tensor, chunk: int | None = None) -> tuple[Tensor, Tensor]:
    """All h_t of h_t = lambda h_{t-1} + b_t (h_{-1} = 0) for a complex diagonal lambda
    given as real pairs, b of shape (B, T, N): a two-level chunked scan.

    The sequence is cut into chunks of C ~ sqrt(T) steps. One sweep of C steps runs the
    recurrence inside every chunk at once (from a zero start); a second sweep of T/C
    steps carries each chunk's last value into the next; then h_{k,j} += lambda^(j+1)
    carry_k. About 2 sqrt(T) sequential steps and O(T N) work, where the step loop
    needs T steps; powers of |lambda| <= 1 only shrink, so it is stable. Real
    arithmetic throughout (complex kernels are several times slower on CPU).
    """
    B, T, N = br.shape
    C = chunk or max(1, math.isqrt(T))
    K = -(-T // C)
    if K * C != T:
        pad = br.new_zeros(B, K * C - T, N)
        br, bi = torch.cat([br, pad], dim=1), torch.cat([bi, pad], dim=1)
    br, bi = br.view(B, K, C, N), bi.view(B, K, C, N)
    hr, hi = br.new_zeros(B, K, N), bi.new_zeros(B, K, N)
    local_r, local_i = [], []
    # unbind, not indexing: one backward op instead of a full-size zero gradient per step
    for b_r, b_i in zip(br.unbind(dim=2), bi.unbind(dim=2)):  # inside every chunk at once
        hr, hi = lr * hr - li * hi + b_r, lr * hi + li * hr + b_i
        local_r.append(hr)
        local_i.append(hi)
    inner_r, inner_i = torch.stack(local_r, dim=2), torch.stack(local_i, dim=2)  # (B, K, C, N)
    powers_r, powers_i = [lr], [li]  # lambda^1 .. lambda^C
    for _ in range(C - 1):
        powers_r, powers_i = (
            [*powers_r, powers_r[-1] * lr - powers_i[-1] * li],
            [*powers_i, powers_r[-1] * li + powers_i[-1] * lr],
        )
    pr, pi = torch.stack(powers_r), torch.stack(powers_i)  # (C, N)
    cr, ci = br.new_zeros(B, N), bi.new_zeros(B, N)
    carries_r, carries_i = [], []
    for end_r, end_i in zip(
        local_r[-1].unbind(dim=1), local_i[-1].unbind(dim=1)
    ):  # chunk k starts from chunk k-1's end
        carries_r.append(cr)
        carries_i.append(ci)
        cr, ci = end_r + pr[-1] * cr - pi[-1] * ci, end_i + pr[-1] * ci + pi[-1] * cr
    cr, ci = torch.stack(carries_r, dim=1).unsqueeze(2), torch.stack(carries_i, dim=1).unsqueeze(2)  # (B, K, 1, N)
    out_r = (inner_r + pr * cr - pi * ci).reshape(B, K * C, N)[:, :T]
    out_i = (inner_i + pr * ci + pi * cr).reshape(B, K * C, N)[:, :T]
    return out_r, out_i
