"""The `lsc.compare` comparison on the Lightning route: a LightningModule trained by
`Trainer(max_steps=...)` from each init, paired per seed, and read by lsc's `Comparison`
(the same table, paragraph, plot and statistics as `lsc.compare`).

    python examples/compare_lightning.py [--steps 100] [--seeds 3]

For each seed every init starts from the same weights (`seed_everything(seed)` before the
module is built) and sees the same batches (a seeded DataLoader generator); the init is
`lsc.pretrain` of the module's own model, timed, before `Trainer.fit`.
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lsc
from lsc.comparison.result import Comparison, RunRecord


class Model(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(4, 64, num_layers=3, batch_first=True)
        self.head = nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        return nn.functional.mse_loss(self(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def task(n: int, seed: int) -> TensorDataset:
    """Remember the first input's first channel for 50 steps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 50, 4, generator=g)
    return TensorDataset(x, x[:, :1, 0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    train, valid = task(1024, 0), task(256, 1)
    inits: dict[str, float | None] = {"default": None, "0.5": 0.5, "1": 1.0}
    runs = []
    for seed in range(args.seeds):
        for label, target in inits.items():
            L.seed_everything(seed, verbose=False)
            module = Model()
            start = time.perf_counter()
            if target is not None:
                lsc.pretrain(module, train.tensors[0][:256], target=target, kinds=["time", "depth"], progress=False)
            init_seconds = time.perf_counter() - start
            L.seed_everything(seed, verbose=False)
            loader = DataLoader(train, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed))
            trainer = L.Trainer(
                max_steps=args.steps,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                deterministic=True,
            )
            start = time.perf_counter()
            trainer.fit(module, loader)
            seconds = time.perf_counter() - start
            with torch.no_grad():
                final = float(nn.functional.mse_loss(module(valid.tensors[0]), valid.tensors[1]))
            runs.append(
                RunRecord(
                    label, seed, ((args.steps, seconds, final),), init_seconds, seconds, args.steps, False, "lightning"
                )
            )
    c = Comparison(tuple(inits), tuple(range(args.seeds)), args.steps, "steps", tuple(runs))
    print(c.table())
    print(c)


if __name__ == "__main__":
    main()
