"""Watch the radii of a model's recurrent parts while it trains: lsc.Monitor in a plain
PyTorch loop, then the same model under PyTorch Lightning with lsc's callback (which also
pre-trains at the start of fitting), when the `lightning` extra is installed.

    python examples/watch_training.py [--out runs/watch]

Writes runs/watch/loop/stability.jsonl (and TensorBoard scalars when tensorboard is
installed: tensorboard --logdir runs/watch) and runs/watch/lightning/.../metrics.csv.
About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

import lsc


class Tagger(nn.Module):
    """A per-step classifier: nn.GRU (2 layers) -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(8, 64, num_layers=2, batch_first=True)
        self.head = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Label each step by which of four input channels summed largest so far."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 50, 8, generator=g)
    return x, x[..., :4].cumsum(1).argmax(-1)


def plain_loop(out: Path) -> None:
    torch.manual_seed(0)
    model = Tagger()
    held, _ = data(32, seed=0)
    monitor = lsc.Monitor(model, held, every=50, target=0.5, log_dir=out)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(201):
        x, y = data(32, seed=step + 1)
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        monitor(step)
    monitor.close()
    for line in (out / "stability.jsonl").read_text().splitlines():
        row = json.loads(line)
        print(f"step {row['step']:>3}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if "/" in k))


def with_lightning(out: Path) -> None:
    try:
        import lightning.pytorch as pl
    except ImportError:
        print("lightning is not installed (pip install 'lsc[lightning]'): skipping the callback")
        return
    from lsc.lightning_callback import LSCCallback

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = Tagger()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x).flatten(0, 1), y.flatten())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=3e-3)

    torch.manual_seed(0)
    x, y = data(1024, seed=1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    held, _ = data(32, seed=0)
    callback = LSCCallback(held, target=0.5, kinds=["time", "depth"], every=50, data=x, pretrain_options={"tol": 0.05})
    trainer = pl.Trainer(
        max_steps=200,
        logger=pl.loggers.CSVLogger(out),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(Module(), loader)
    assert callback.result is not None
    print(f"lightning: {callback.result.message} ({callback.result.steps} steps)")
    for step, values in callback.logged:
        print(f"step {step:>3}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/watch")
    args = ap.parse_args()
    plain_loop(Path(args.out) / "loop")
    with_lightning(Path(args.out) / "lightning")


if __name__ == "__main__":
    main()
