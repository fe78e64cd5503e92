"""Forward + backward time per sequence for every cell kind, against torch.nn.LSTM in the
same run, and the LRU's parallel scan against its own step loop.

Width 256, T = 500, batch 32 (issue 4), one layer each, float32, 2 CPU cores. Each
figure is the best of ``--repeats`` runs of: forward over the whole sequence, sum of
outputs, backward.

    python benchmarks/bench_cells.py [--width 256] [--time 500] [--batch 32] [--scan-time 1000]
"""

from __future__ import annotations

import argparse
import time

import torch

from lsc.models import StackedRNN
from lsc.models.stacked import Stack


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def fwd_bwd(model: torch.nn.Module, x: torch.Tensor, step_loop: bool = False):
    def run():
        model.zero_grad(set_to_none=True)
        y = Stack.forward(model, x) if step_loop else model(x)
        (y[0] if isinstance(y, tuple) else y).sum().backward()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--time", type=int, default=500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--scan-time", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    W, T, B = args.width, args.time, args.batch
    x = torch.randn(B, T, W)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; width {W}, T {T}, batch {B}: forward+backward"
    )
    reference = best_time(fwd_bwd(torch.nn.LSTM(W, W, batch_first=True), x), args.repeats)
    print(f"{'cell':<14} {'seconds':>8} {'vs nn.LSTM':>11}")
    print(f"{'torch.nn.LSTM':<14} {reference:>8.3f} {1.0:>10.2f}x")
    for cell in ("lstm", "gru", "elman", "alif", "alifb", "lru"):
        model = StackedRNN(cell, input_size=W, hidden_size=W, num_layers=1)
        t = best_time(fwd_bwd(model, x), args.repeats)
        print(f"{cell:<14} {t:>8.3f} {t / reference:>10.2f}x", flush=True)

    print(f"\nLRU width {W}, batch {B}: parallel scan vs step loop (forward+backward)")
    print(f"{'T':>6} {'scan s':>8} {'loop s':>8} {'speed-up':>9} {'max |diff|':>11}")
    model = StackedRNN("lru", input_size=W, hidden_size=W, num_layers=1)
    for steps in (T, args.scan_time):
        xs = torch.randn(B, steps, W)
        scan = best_time(fwd_bwd(model, xs), args.repeats)
        loop = best_time(fwd_bwd(model, xs, step_loop=True), 1)
        with torch.no_grad():
            diff = float((model(xs) - Stack.forward(model, xs)).abs().max())
        print(f"{steps:>6} {scan:>8.3f} {loop:>8.3f} {loop / scan:>8.1f}x {diff:>11.2e}", flush=True)


if __name__ == "__main__":
    main()
