"""lsc on a model you wrote: a character language model (embedding -> nn.LSTM -> head),
measured, pre-trained to radius 0.5 on its own inputs, and trained for a few hundred Adam
steps from both inits, side by side. The corpus is the Python standard library's own
sources (offline).

    python examples/own_model.py [--steps 200] [--layers 3] [--width 128] [--seed 0]

About 10 minutes on 2 busy cores (each 200-step training run takes most of it).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

import lsc
from lsc.tasks.text import build_vocab, stdlib_corpus, to_ids


class CharLM(nn.Module):
    def __init__(self, vocab: int, layers: int, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 64)
        self.lstm = nn.LSTM(64, width, num_layers=layers, batch_first=True, dropout=0.1)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(tokens))[0])


def batches(ids: torch.Tensor, batch: int, T: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` random windows of T + 1 characters."""
    start = torch.randint(0, len(ids) - T - 1, (batch,), generator=generator)
    return torch.stack([ids[s : s + T + 1] for s in start.tolist()])


def train(model: nn.Module, train_ids, val_ids, steps: int, seed: int) -> list[tuple[int, float]]:
    """Adam 2e-3, clip 1; the validation loss every 50 steps."""
    g, gv = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(1234)
    val = batches(val_ids, 64, 100, gv)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    curve = []
    for step in range(steps + 1):
        if step % 50 == 0:
            model.eval()
            with torch.no_grad():
                logits = model(val[:, :-1])
                curve.append((step, float(nn.functional.cross_entropy(logits.flatten(0, 1), val[:, 1:].flatten()))))
            model.train()
        if step == steps:
            break
        xb = batches(train_ids, 32, 100, g)
        loss = nn.functional.cross_entropy(model(xb[:, :-1]).flatten(0, 1), xb[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    text, source = stdlib_corpus(300_000)
    vocab = build_vocab(list(text), extra=("\0",))
    ids = to_ids(list(text), vocab, "\0")
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    print(f"corpus: {source}; {len(vocab)} symbols")

    torch.manual_seed(args.seed)
    default = CharLM(len(vocab), args.layers, args.width)
    pretrained = copy.deepcopy(default)
    sample = batches(train_ids, 32, 100, torch.Generator().manual_seed(7))[:, :-1]

    # 1. measure the model as it is: lsc finds its LSTM and measures it on the embedded characters
    print(lsc.measure(default, sample, target=0.5))
    # 2. pre-train the LSTM's time and depth edges to 0.5 on the model's own inputs
    data = batches(train_ids, 512, 100, torch.Generator().manual_seed(8))[:, :-1]
    start = time.perf_counter()
    res = lsc.pretrain(pretrained, data, target=0.5, kinds=["time", "depth"], tol=0.05, progress=False)
    print(f"\n{res.message} ({res.steps} steps, {time.perf_counter() - start:.0f} s)")
    print(res.report)
    # 3. train both the same way
    curves = {}
    for name, model in (("default", default), ("lsc 0.5", pretrained)):
        start = time.perf_counter()
        curves[name] = train(model, train_ids, val_ids, args.steps, args.seed)
        print(f"trained {name}: {time.perf_counter() - start:.0f} s")
    print("\nvalidation loss (nats per character)")
    print(f"{'step':>6}  {'default':>8}  {'lsc 0.5':>8}")
    for (step, a), (_, b) in zip(curves["default"], curves["lsc 0.5"]):
        print(f"{step:>6}  {a:8.3f}  {b:8.3f}")


if __name__ == "__main__":
    main()
