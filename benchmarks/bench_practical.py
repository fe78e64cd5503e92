"""lsc at the widths people train, in the model's own currency: every cost as a multiple of
one training step of the same model, measured side by side in one run.

Models (seeded):

* ``lstm``, ``gru``: a 4-layer width-256 ``torch.nn.LSTM`` / ``GRU`` language model on
  embedded characters (vocabulary 96, embedding 64, batch 32, T = 100); the training step
  is the fused module's forward + backward + Adam on the next-character loss; lsc
  measures and pre-trains the recurrent module on the embedded inputs;
* ``lru``, ``alif``: a 3-layer width-64 ``lsc.models.StackedRNN`` (input 16, 10 classes,
  batch 32, T = 100); the training step is forward + backward + Adam on a per-step
  cross-entropy.

Columns: the training step (s); ``lsc.measure`` with defaults (s, in training steps) and
the median / max relative error of its edge means against ``method="dense"`` on the same
samples; ``lsc.pretrain`` to a target (steps, s, in training steps, final measurement
included) and the worst gap of an independent dense measurement on fresh data afterwards.

    python benchmarks/bench_practical.py [--only lstm gru lru alif] [--threads N] [--skip-dense]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import lsc
from lsc.models import StackedRNN

VOCAB, EMB, B, T = 96, 64, 32, 100


class CharLM(nn.Module):
    def __init__(self, cell: str) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMB)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](EMB, 256, num_layers=4, batch_first=True)
        self.head = nn.Linear(256, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(tokens))[0])


def setup(name: str, seed: int = 0):
    """(model, the part lsc sees, its input maker, the training step)."""
    torch.manual_seed(seed)
    if name in ("lstm", "gru"):
        model = CharLM(name)
        tokens = lambda g: torch.randint(0, VOCAB, (B, T + 1), generator=g)  # noqa: E731

        def inputs(g: torch.Generator) -> torch.Tensor:
            with torch.no_grad():
                return model.embed(tokens(g)[:, :-1])

        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def train_step(g: torch.Generator) -> None:
            t = tokens(g)
            loss = nn.functional.cross_entropy(model(t[:, :-1]).reshape(-1, VOCAB), t[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()

        return model, model.rnn, inputs, train_step
    model = StackedRNN(name, input_size=16, hidden_size=64, num_layers=3, output_size=10)
    inputs = lambda g: torch.randn(B, T, 16, generator=g)  # noqa: E731
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step(g: torch.Generator) -> None:
        x, y = inputs(g), torch.randint(0, 10, (B, T), generator=g)
        loss = nn.functional.cross_entropy(model(x).reshape(-1, 10), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return model, model, inputs, train_step


def training_step_seconds(name: str, repeats: int = 5) -> float:
    _model, _, _, step = setup(name)
    g = torch.Generator().manual_seed(1)
    step(g)  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step(g)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def worst_gaps(part: nn.Module, inputs, target, kinds) -> tuple[float, float]:
    """The worst |gap| of a dense measurement on fresh data: over every edge, over the time edges."""
    x = inputs(torch.Generator().manual_seed(99))
    check = lsc.measure(part, x, estimator="dense", target=target, kinds=kinds, seed=7)
    gaps = [(e.kind, abs(g)) for e, g in zip(check.edges, check.gaps()) if g is not None]
    return max(g for _, g in gaps), max(g for k, g in gaps if k == "time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=["lstm", "gru", "lru", "alif"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--skip-dense", action="store_true", help="no dense accuracy check of measure")
    ap.add_argument("--max-steps", type=int, default=300, help="pre-training step budget (default 300)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = "cpu"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {dev}")
    for name in args.only:
        step = training_step_seconds(name)
        print(f"\n{name}: training step {step:.3f} s")
        # measure with defaults, and its accuracy against dense on the same samples
        _, part, inputs, _ = setup(name)
        x = inputs(torch.Generator().manual_seed(2))
        t0 = time.perf_counter()
        rep = lsc.measure(part, x)
        secs = time.perf_counter() - t0
        line = f"  measure: {secs:.2f} s = {secs / step:.1f} training steps, {len(rep.edges)} edges"
        if not args.skip_dense:
            dense = lsc.measure(part, x, estimator="dense", time_points=list(rep.time_points))
            errs = [abs(a.mean - b.mean) / b.mean for a, b in zip(rep.edges, dense.edges) if b.mean > 0]
            line += f"; edge means vs dense: median {100 * statistics.median(errs):.2f} %, max {100 * max(errs):.2f} %"
        print(line, flush=True)
        recurrent_targets = [(0.5, ("time", "depth"))]
        if name in ("lstm", "gru"):
            recurrent_targets.append((0.5, ("encoder", "time", "depth")))
        else:
            recurrent_targets += [(1.0, ("time", "depth")), ("unbalanced", ("time", "depth"))]
        for target, kinds in recurrent_targets:
            _, part, inputs, _ = setup(name)
            data = [inputs(torch.Generator().manual_seed(100 + i)) for i in range(8)]
            t0 = time.perf_counter()
            res = lsc.pretrain(
                part, data, target=target, kinds=kinds, tol=0.05, max_steps=args.max_steps, progress=False
            )
            secs = time.perf_counter() - t0
            gap, time_gap = worst_gaps(part, inputs, res.target, list(kinds))
            print(
                f"  pretrain to {target} ({','.join(kinds)}): {res.stopped} after {res.steps} steps, {secs:.1f} s = "
                f"{secs / step:.0f} training steps (final measurement included); dense check worst gap {gap:.3f} "
                f"(time edges {time_gap:.3f})",
                flush=True,
            )


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"\ntotal {time.time() - start:.0f} s")
