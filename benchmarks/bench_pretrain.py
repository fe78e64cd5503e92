"""Pre-training to the LSC: time to target with the matrix-free estimator, and the per-step
cost of the dense reference approach, side by side in one run.

Runs (2 CPU cores; seeds fixed):

* 5-layer, width-128 LSTM and GRU (input 16, T = 100, batch 32), target 0.5, tol 0.02:
  with the default edge kinds (encoder, time, depth) and with time + depth only;
* 30-layer, width-128 ReLU FFN (input 784), target 1, tol 0.02.

For each: steps and seconds until every edge's running mean is within tol (or the
budget), the worst gap of an independent dense measurement on fresh data afterwards,
and the per-step time of ``method="dense"`` (materialised Jacobians + eig, the
reference approach) over a few steps of the same run. Dense time-to-target is
extrapolated as steps x dense per-step time, and the output says so.

    python benchmarks/bench_pretrain.py [--budget 120] [--dense-steps 3]
"""

from __future__ import annotations

import argparse
import time

import torch

import lsc
from lsc.models import FFN, StackedRNN


def case(name: str):
    torch.manual_seed(0)
    if name == "ffn":
        return FFN(30, 128, "relu", 784, 10), None, {"target": 1.0}, (256, 784)
    model = StackedRNN(name, input_size=16, hidden_size=128, num_layers=5, output_size=10)
    return model, None, {"target": 0.5, "time_steps": 100}, (32, 100, 16)


def dense_step_seconds(name: str, kinds, steps: int) -> float:
    model, data, opts, _ = case(name)
    res = lsc.pretrain(model, data, kinds=kinds, estimator="dense", max_steps=steps, tol=0.0, progress=False, **opts)
    return res.seconds / res.steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=120.0, help="seconds per run (default 120)")
    ap.add_argument("--dense-steps", type=int, default=3, help="steps timed with method=dense (default 3)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, budget {args.budget:.0f} s per run")
    header = (
        f"{'model':<6} {'edges':<20} {'stopped':<11} {'steps':>5} {'seconds':>8} {'s/step':>7} "
        f"{'check':>6} {'dense s/step':>12} {'ratio':>6} {'dense s (extrap.)':>17}"
    )
    print(header)
    print("-" * len(header))
    runs = [("lstm", None), ("lstm", ("time", "depth")), ("gru", None), ("gru", ("time", "depth")), ("ffn", None)]
    for name, kinds in runs:
        model, data, opts, shape = case(name)
        res = lsc.pretrain(model, data, kinds=kinds, tol=0.02, max_seconds=args.budget, progress=False, **opts)
        x = torch.randn(*shape)
        check = lsc.measure(model, x, estimator="dense", target=res.target, kinds=list(res.target), seed=11)
        worst = max(abs(g) for g in check.gaps() if g is not None)
        per_step = res.seconds / max(res.steps, 1)
        dense = dense_step_seconds(name, kinds, args.dense_steps)
        label = ",".join(res.target)
        print(
            f"{name:<6} {label:<20} {res.stopped:<11} {res.steps:>5} {res.seconds:>8.1f} {per_step:>7.3f} "
            f"{worst:>6.3f} {dense:>12.2f} {dense / per_step:>6.1f} {dense * res.steps:>17.0f}",
            flush=True,
        )
    print("check: worst |mean - target| of a dense measurement on fresh data after pre-training")
    print("ratio: dense per-step time / matrix-free per-step time; dense seconds extrapolated as steps x dense s/step")


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"total {time.time() - start:.0f} s")
