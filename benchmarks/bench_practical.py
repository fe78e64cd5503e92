"""lsc at the widths people train, in the model's own currency: every cost as a multiple of
one training step of the same model, measured side by side in one run.

Rows (seeded; batch ``--batch`` 32, T = ``--time-steps`` 100 unless given):

* ``lstm:W``, ``gru:W``: a 4-layer width-W ``torch.nn.LSTM`` / ``GRU`` language model on
  embedded characters (vocabulary 96, embedding 64); the training step is the fused
  module's forward + backward + Adam on the next-character loss; lsc measures and
  pre-trains the recurrent module on the embedded inputs (``lstm`` = ``lstm:256``);
* ``relu``: a 3 x 128 ReLU ``nn.RNN`` tagger (input 16, 5 classes);
* ``cells``: two ``nn.LSTMCell`` (width 128) stepped in the user's own loop (input 16, a
  head on the last state); lsc sees the whole model and finds the cells inside;
* ``proj``: a 2 x 128 ``nn.LSTM`` with ``proj_size=64`` tagger (input 16);
* ``lru``, ``alif``: a 3-layer width-64 ``lsc.models.StackedRNN`` (input 16, 10 classes);
  the training step is forward + backward + Adam on a per-step cross-entropy.

Columns: the training step (s); ``lsc.measure`` with defaults (s, the median of 3 calls
after a warm-up call, in training steps) and the median / max relative error of its edge
means against ``estimator="dense"`` on the whole batch at the time points measure chose
(``--dense-samples``: on the first n samples only, for widths where dense is slow);
``lsc.pretrain`` to 0.5 on time + depth and on encoder + time + depth (LRU, ALIF: time +
depth to 0.5 / 1 / unbalanced): steps, s, in training steps (final measurement included),
converged, and the worst gap of an independent dense measurement on fresh data afterwards.

``--device cuda --dtype bf16`` times the training step under ``torch.autocast`` in bfloat16
(lsc measures and pre-trains the float32 weights: the radii of the model as stored);
``--budget S`` skips what would start after S seconds of the run, and ``--out FILE`` writes
the markdown table there (``benchmarks/gpu_practical.sh``: the GPU run).

    python benchmarks/bench_practical.py [--only lstm:64 lstm gru relu cells proj lru alif] [--threads N]
        [--skip-dense] [--device cpu|cuda] [--dtype fp32 bf16] [--batch 32] [--time-steps 100]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import lsc
from lsc.models import StackedRNN

VOCAB, EMB = 96, 64
DEFAULT_ROWS = ["lstm:64", "lstm", "gru", "relu", "cells", "proj", "lru", "alif"]


@dataclass(frozen=True)
class Shape:
    batch: int = 32
    steps: int = 100
    device: str = "cpu"
    dtype: str = "fp32"  # the training step's: fp32, or bf16 autocast


class CharLM(nn.Module):
    def __init__(self, cell: str, width: int = 256) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMB)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](EMB, width, num_layers=4, batch_first=True)
        self.head = nn.Linear(width, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(tokens))[0])


class Cells(nn.Module):
    """Two ``nn.LSTMCell`` stepped in the user's loop, a head on the last state."""

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.cells = nn.ModuleList([nn.LSTMCell(16, width), nn.LSTMCell(width, width)])
        self.head = nn.Linear(width, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states: list[tuple[torch.Tensor, torch.Tensor] | None] = [None, None]
        for t in range(x.shape[1]):
            h = x[:, t]
            for i, cell in enumerate(self.cells):
                states[i] = cell(h, states[i])
                h = states[i][0]  # type: ignore[index]
        return self.head(h)


class Tagger(nn.Module):
    def __init__(self, rnn: nn.RNNBase, out: int) -> None:
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(out, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def _split(name: str) -> tuple[str, int]:
    cell, _, width = name.partition(":")
    return cell, int(width) if width else (256 if cell in ("lstm", "gru") else 128)


def setup(name: str, shape: Shape, seed: int = 0):
    """(model, the module lsc sees, its input maker, the training step)."""
    torch.manual_seed(seed)
    cell, width = _split(name)
    dev, B, T = shape.device, shape.batch, shape.steps
    amp = (
        (lambda: torch.autocast(torch.device(dev).type, dtype=torch.bfloat16))
        if shape.dtype == "bf16"
        else contextlib.nullcontext
    )
    if cell in ("lstm", "gru"):
        model = CharLM(cell, width).to(dev)
        tokens = lambda g: torch.randint(0, VOCAB, (B, T + 1), generator=g).to(dev)  # noqa: E731

        def inputs(g: torch.Generator) -> torch.Tensor:
            with torch.no_grad():
                return model.embed(tokens(g)[:, :-1])

        def loss(g: torch.Generator) -> torch.Tensor:
            t = tokens(g)
            return nn.functional.cross_entropy(model(t[:, :-1]).reshape(-1, VOCAB).float(), t[:, 1:].reshape(-1))

        return model, model.rnn, inputs, _trainer(model, loss, amp)
    if cell in ("lru", "alif"):
        model = StackedRNN(cell, input_size=16, hidden_size=64, num_layers=3, output_size=10).to(dev)
        classes, seen = 10, model
    elif cell == "relu":
        model = Tagger(nn.RNN(16, width, num_layers=3, nonlinearity="relu", batch_first=True), width).to(dev)
        classes, seen = 5, model.rnn
    elif cell == "proj":
        model = Tagger(nn.LSTM(16, width, num_layers=2, proj_size=64, batch_first=True), 64).to(dev)
        classes, seen = 5, model.rnn
    elif cell == "cells":
        model = Cells(width).to(dev)
        classes, seen = 5, model
    else:
        raise ValueError(f"unknown row {name!r}")
    inputs = lambda g: torch.randn(B, T, 16, generator=g).to(dev)  # noqa: E731

    def loss(g: torch.Generator) -> torch.Tensor:
        x = inputs(g)
        out = model(x).float()
        y = torch.randint(0, classes, out.shape[:-1], generator=g).to(dev)
        return nn.functional.cross_entropy(out.reshape(-1, classes), y.reshape(-1))

    return model, seen, inputs, _trainer(model, loss, amp)


def _trainer(
    model: nn.Module, loss: Callable[[torch.Generator], torch.Tensor], amp
) -> Callable[[torch.Generator], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step(g: torch.Generator) -> None:
        with amp():
            value = loss(g)
        opt.zero_grad()
        value.backward()
        opt.step()

    return train_step


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> tuple[object, float]:
    """``fn()`` and its wall seconds (the device synchronised at both ends)."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def training_step_seconds(name: str, shape: Shape, repeats: int = 5) -> float:
    _model, _, _, step = setup(name, shape)
    g = torch.Generator().manual_seed(1)
    step(g)  # warm up
    return statistics.median(timed(lambda: step(g), shape.device)[1] for _ in range(repeats))


def worst_gap(part: nn.Module, x: torch.Tensor, target, kinds) -> float:
    """The worst |gap| over every edge of a dense measurement of ``part`` on ``x``."""
    check = lsc.measure(part, x, estimator="dense", target=target, kinds=kinds, seed=7)
    return max(abs(g) for g in check.gaps() if g is not None)


def targets_of(name: str) -> list[tuple[object, tuple[str, ...]]]:
    if _split(name)[0] in ("lru", "alif"):
        return [(0.5, ("time", "depth")), (1.0, ("time", "depth")), ("unbalanced", ("time", "depth"))]
    return [(0.5, ("time", "depth")), (0.5, ("encoder", "time", "depth"))]


def measure_row(name: str, shape: Shape, step: float, args) -> str:
    _, part, inputs, _ = setup(name, shape)
    x = inputs(torch.Generator().manual_seed(2))
    lsc.measure(part, x)  # warm up, as the training step is
    runs = [timed(lambda: lsc.measure(part, x), shape.device) for _ in range(3)]
    rep, secs = runs[0][0], statistics.median(s for _, s in runs)
    cell = f"{secs:.2f} s = {secs / step:.1f} steps"
    if not args.skip_dense:
        n = args.dense_samples or x.shape[0]
        xs = x[:n]
        mine = rep if n == x.shape[0] else lsc.measure(part, xs, time_points=list(rep.time_points))
        dense = lsc.measure(part, xs, estimator="dense", time_points=list(rep.time_points))
        errs = [abs(a.mean - b.mean) / b.mean for a, b in zip(mine.edges, dense.edges) if b.mean > 0]
        cell += f", {100 * statistics.median(errs):.2f} % / {100 * max(errs):.2f} %"
    return cell


def pretrain_row(name: str, shape: Shape, step: float, target, kinds, args) -> str:
    _, part, inputs, _ = setup(name, shape)
    data = [inputs(torch.Generator().manual_seed(100 + i)) for i in range(8)]
    res, secs = timed(
        lambda: lsc.pretrain(
            part,
            data,
            target=target,
            kinds=kinds,
            tol=0.05,
            max_steps=args.max_steps,
            max_seconds=args.max_seconds,
            first_move=args.first_move,
            progress=False,
        ),
        shape.device,
    )
    fresh = inputs(torch.Generator().manual_seed(99))
    n = args.dense_samples or fresh.shape[0]
    gap = worst_gap(part, fresh[:n], res.target, list(kinds))
    ok = "yes" if res.converged else f"no ({res.stopped})"
    return f"{res.steps} steps, {secs:.1f} s = {secs / step:.0f} steps | {ok} | {gap:.3f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=DEFAULT_ROWS, help="rows, e.g. lstm:1024 gru:2048 relu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--skip-dense", action="store_true", help="no dense accuracy check of measure")
    ap.add_argument("--dense-samples", type=int, default=None, help="dense checks on this many samples (default all)")
    ap.add_argument("--max-steps", type=int, default=300, help="pre-training step budget (default 300)")
    ap.add_argument("--max-seconds", type=float, default=None, help="pre-training time budget per run")
    ap.add_argument("--skip-pretrain", action="store_true", help="training step and measure only")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", nargs="+", default=["fp32"], choices=["fp32", "bf16"], help="the training step's")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--time-steps", type=int, default=100)
    ap.add_argument("--budget", type=float, default=None, help="start nothing after this many seconds of the run")
    ap.add_argument(
        "--first-move",
        type=int,
        default=lsc.PretrainConfig().first_move,
        help="PretrainConfig.first_move (default: the library's, 0; 4: the trial)",
    )
    ap.add_argument("--out", default=None, help="also write the table to this file, row by row")
    args = ap.parse_args()
    warnings.simplefilter("ignore", lsc.pretraining.NotConvergedWarning)  # the table says converged or not
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    head = (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}"
        f"{' (' + torch.cuda.get_device_name() + ')' if args.device.startswith('cuda') else ''}, "
        f"batch {args.batch}, T {args.time_steps}, tol 0.05"
    )
    lines = [
        head,
        "",
        "| row | dtype | training step | measure (s = steps, vs dense median / max) | pre-training to | "
        "steps, s = training steps | converged | dense check |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out = open(args.out, "w") if args.out else None  # noqa: SIM115  (written row by row: a cut-off run keeps its rows)

    def emit(line: str) -> None:
        print(line, flush=True)
        if out is not None:
            out.write(line + "\n")
            out.flush()

    for line in lines:
        emit(line)

    for name in args.only:
        for dtype in args.dtype:
            shape = Shape(args.batch, args.time_steps, args.device, dtype)
            if args.budget is not None and time.time() - start > args.budget:
                emit(f"| {name} | {dtype} | skipped: past the {args.budget:.0f} s budget | | | | | |")
                continue
            step = training_step_seconds(name, shape)
            emit(f"| {name} | {dtype} | {step:.4f} s | {measure_row(name, shape, step, args)} | | | | |")
            if args.skip_pretrain or dtype != args.dtype[0]:
                continue  # lsc pre-trains the float32 weights: once per row
            for target, kinds in targets_of(name):
                if args.budget is not None and time.time() - start > args.budget:
                    emit(f"| | | | | {target}, {'+'.join(kinds)} | skipped: past the budget | | |")
                    continue
                emit(f"| | | | | {target}, {'+'.join(kinds)} | {pretrain_row(name, shape, step, target, kinds, args)}")
    emit(f"\ntotal {time.time() - start:.0f} s")
    if out is not None:
        out.close()


if __name__ == "__main__":
    main()
