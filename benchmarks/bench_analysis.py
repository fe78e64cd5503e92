"""Timings of the analyses (issue 7) on this machine.

    python benchmarks/bench_analysis.py

Prints one line per measurement: the Lyapunov spectrum (16 exponents of a width-256 GRU,
batch 1, 100 warm-up steps + 500 averaged steps; matrix-free against the same QR
iteration on dense jacrev Jacobians, also for a 5x256 stack), a gradient grid and a
smoothness estimate. Run it alone (or with OMP_NUM_THREADS=1 on a shared machine).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lsc.analysis import gradient_grid, lyapunov_spectrum, smoothness
from lsc.analysis.steps import joint_step
from lsc.models import StackedRNN


def _dense_lyapunov(model: StackedRNN, x: torch.Tensor, k: int, warmup: int) -> np.ndarray:
    """The reference: the same QR iteration on materialised (jacrev) step Jacobians."""
    N = sum(c.state_size for c in model.cells)
    Q = torch.linalg.qr(torch.randn(x.shape[0], N, k, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[
        0
    ]
    Q = Q.to(x.dtype)

    def one(x_t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return joint_step(model, x_t.unsqueeze(0), s.unsqueeze(0)).squeeze(0)

    S = torch.zeros(x.shape[0], N)
    total = torch.zeros(x.shape[0], k, dtype=torch.float64)
    with torch.no_grad():
        for t in range(x.shape[1]):
            J = torch.func.vmap(torch.func.jacrev(one, argnums=1))(x[:, t], S)
            Q, R = torch.linalg.qr(J @ Q)
            if t >= warmup:
                total += R.diagonal(dim1=-2, dim2=-1).abs().double().log()
            S = joint_step(model, x[:, t], S)
    return (total / (x.shape[1] - warmup)).mean(0).numpy()


def main() -> None:
    torch.manual_seed(0)
    gru = StackedRNN("gru", input_size=16, hidden_size=256, num_layers=1)
    x = torch.randn(1, 600, 16)
    lyapunov_spectrum(gru, x[:, :20], k=16, warmup=5)  # warm up torch.func
    spec = lyapunov_spectrum(gru, x, k=16, warmup=100)
    print(
        f"lyapunov: 16 exponents, GRU width 256, batch 1, 100 warm-up + 500 averaged steps: "
        f"{spec.seconds:.2f} s (lambda_1 = {spec.max_exponent:+.4f}, lambda_16 = {spec.exponents[-1]:+.4f})"
    )
    start = time.perf_counter()
    dense = _dense_lyapunov(gru, x, 16, 100)
    seconds = time.perf_counter() - start
    print(
        f"lyapunov: the same with dense jacrev Jacobians: {seconds:.2f} s ({seconds / spec.seconds:.1f}x), "
        f"max |difference| {abs(dense - spec.exponents).max():.1e}"
    )
    deep = StackedRNN("gru", input_size=16, hidden_size=256, num_layers=5)
    xd = torch.randn(1, 120, 16)
    spec_d = lyapunov_spectrum(deep, xd, k=16, warmup=20)
    start = time.perf_counter()
    dense = _dense_lyapunov(deep, xd, 16, 20)
    seconds = time.perf_counter() - start
    print(
        f"lyapunov: GRU 5x256 (joint state 1280), 20 + 100 steps: {spec_d.seconds:.2f} s, dense {seconds:.2f} s "
        f"({seconds / spec_d.seconds:.1f}x), max |difference| {abs(dense - spec_d.exponents).max():.1e}"
    )
    x4 = torch.randn(4, 600, 16)
    spec4 = lyapunov_spectrum(gru, x4, k=16, warmup=100)
    print(f"lyapunov: same, batch 4: {spec4.seconds:.2f} s")

    lstm = StackedRNN("lstm", input_size=16, hidden_size=128, num_layers=5, output_size=10)
    xs = torch.randn(32, 100, 16)
    start = time.perf_counter()
    grid = gradient_grid(lstm, xs)
    print(
        f"gradient grid: LSTM 5x128, batch 32, T 100: {time.perf_counter() - start:.2f} s (flatness "
        f"{grid.flatness(0):.3g})"
    )

    elman = StackedRNN("elman", input_size=4, hidden_size=32, num_layers=1, output_size=1)
    xe = torch.randn(8, 100, 4)
    start = time.perf_counter()
    sm = smoothness(elman, (xe, torch.randn(8, 100, 1)), iters=20)
    print(
        f"smoothness: Elman 32, batch 8, T 100, 20 Lanczos HVPs: {time.perf_counter() - start:.2f} s (beta "
        f"{sm.top:.4g})"
    )


if __name__ == "__main__":
    main()
