"""Matrix-free vs dense spectral radius of an LSTM time edge, side by side in one run.

For each state size (LSTM width w -> state [h; c] of 2w), batch 32, states taken on
the model's own trajectory after 20 steps of Gaussian input:

* dense: every per-sample Jacobian materialised + ``torch.linalg.eigvals`` (the
  reference code's approach);
* arnoldi: the matrix-free estimator of ``lsc.jacobian`` with its defaults
  (adaptive: stops when the top Ritz value settles, rtol 1e-3) and with a fixed
  budget of ``--steps`` Krylov steps (rtol 0);
* power: power iteration with ``--steps`` steps (the simple fallback).

Prints time, speed-up over dense and the relative error against dense (median, max).
Goal (issue 2): at state size 1024, arnoldi >= 50x faster, median error <= 5%.

    python benchmarks/bench_radius.py [--sizes 128 512 1024] [--batch 32] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from lsc.jacobian import LocalJacobian, estimate
from lsc.models import LSTMCell


def best_time(fn, repeats: int) -> tuple[float, torch.Tensor]:
    out, best = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def lstm_time_edge(state_size: int, batch: int, seed: int = 0) -> LocalJacobian:
    torch.manual_seed(seed)
    w = state_size // 2
    cell = LSTMCell(w, w)
    x = torch.randn(batch, 20, w)
    s = cell.init_state(batch)
    with torch.no_grad():
        for t in range(x.shape[1] - 1):
            s = cell.transition(x[:, t], s)
    u = x[:, -1]
    return LocalJacobian.of(lambda st: cell.transition(u, st), s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 512, 1024])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    header = f"{'state':>6} {'method':>8} {'time s':>9} {'speed-up':>9} {'med err':>9} {'max err':>9}"
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        J = lstm_time_edge(n, args.batch)
        with torch.no_grad():
            t_dense, ref = best_time(lambda J=J: estimate(J, "radius", "dense"), 1 if n >= 1024 else args.repeats)
            print(f"{n:>6} {'dense':>8} {t_dense:>9.3f} {1.0:>9.1f} {0.0:>9.2%} {0.0:>9.2%}")
            runs = {
                "arnoldi": {},
                f"arn-{args.steps}": {"steps": args.steps, "rtol": 0.0},
                f"pow-{args.steps}": {"steps": args.steps},
            }
            for label, options in runs.items():
                method = "power" if label.startswith("pow") else "arnoldi"
                gen = torch.Generator().manual_seed(0)
                t, est = best_time(
                    lambda J=J, method=method, gen=gen, options=options: estimate(
                        J, "radius", method, generator=gen, **options
                    ),
                    args.repeats,
                )
                err = ((est - ref) / ref).abs()
                print(
                    f"{n:>6} {label:>8} {t:>9.3f} {t_dense / t:>9.1f} "
                    f"{err.median().item():>9.2%} {err.max().item():>9.2%}"
                )


if __name__ == "__main__":
    main()
