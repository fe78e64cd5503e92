"""Stability watched during training: lsc.Monitor in a user's loop, and the Lightning
callback (the optional extra, installed by `make test`)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import lsc
from lsc.monitor import CHEAP, scalars


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(4, 24, num_layers=2, batch_first=True)
        self.head = nn.Linear(24, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def _data(seed: int, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 12, 4, generator=g), torch.randint(0, 3, (n, 12), generator=g)


def test_monitor_measures_every_n_steps_and_writes_what_measure_gives(tmp_path):
    torch.manual_seed(0)
    model = Tagger()
    held, _ = _data(0)
    monitor = lsc.Monitor(model, held, every=2, target=0.5, log_dir=tmp_path)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    measured = []
    for step in range(5):
        x, y = _data(step + 1)
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if monitor(step) is not None:
            measured.append(step)
    monitor.close()
    assert measured == [0, 2, 4]
    rows = [json.loads(line) for line in (tmp_path / "stability.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4] and "rnn/time/1" in rows[0] and "rnn/depth/1" in rows[0]
    direct = lsc.measure(model, held, target=0.5, time_points=2, estimator=CHEAP, seed=0)  # the weights of step 4
    assert {k: rows[-1][k] for k in scalars(direct)} == pytest.approx(scalars(direct))
    assert rows[0]["rnn/time/0"] != rows[-1]["rnn/time/0"]  # training moved it
    events = list(tmp_path.glob("events.out.tfevents.*"))
    try:  # TensorBoard scalars exactly when tensorboard is installed (the monitor extra)
        import tensorboard  # noqa: F401
    except ImportError:
        assert not events
    else:
        assert events


def test_lightning_callback_pretrains_then_logs_the_radii_measure_gives(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger

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
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    torch.manual_seed(0)
    module = Module()
    x, y = _data(1, n=32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    held, _ = _data(0)
    callback = LSCCallback(
        held, target=0.5, kinds=["time", "depth"], every=2, pretrain_options={"max_steps": 3, "tol": 0.05}
    )
    trainer = pl.Trainer(
        max_steps=4,
        logger=CSVLogger(tmp_path),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    before = module.net.rnn.weight_hh_l0.detach().clone()
    trainer.fit(module, loader)
    assert callback.result is not None and callback.result.steps == 3
    assert [s for s, _ in callback.logged] == [0, 2, 4]
    assert not torch.equal(before, module.net.rnn.weight_hh_l0)
    direct = lsc.measure(module, held, target=0.5, kinds=["time", "depth"], time_points=2, estimator=CHEAP, seed=0)
    assert callback.logged[-1][1] == pytest.approx(scalars(direct))
    csv = next(tmp_path.rglob("metrics.csv")).read_text()
    assert "lsc/net.rnn/time/0" in csv and "lsc/pretrain_steps" in csv


@pytest.mark.filterwarnings("default::lsc.pretraining.NotConvergedWarning")  # shown, as outside the tests
def test_lightning_callback_calls_a_forward_with_lengths_and_says_when_pretraining_misses(tmp_path, capsys):
    """A LightningModule whose forward takes (x, lengths), a held (x, lengths, y) batch:
    pre-trained and logged with input_key=(0, 1), no wrapper; a budget too small to
    converge prints one ``lsc: warning:`` line naming what missed."""
    pl = pytest.importorskip("lightning.pytorch")

    from lsc.lightning_callback import LSCCallback

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(4, 16, num_layers=2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(32, 3)

        def forward(self, x, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            return self.head(torch.cat(list(self.rnn(packed)[1][-2:]), dim=-1))

        def training_step(self, batch, batch_idx):
            x, lengths, y = batch
            return nn.functional.cross_entropy(self(x, lengths), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x, lengths, y = (
        torch.randn(32, 12, 4, generator=g),
        torch.randint(6, 13, (32,), generator=g),
        torch.randint(0, 3, (32,), generator=g),
    )
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, lengths, y), batch_size=8)
    held = (x[:8], lengths[:8], y[:8])
    callback = LSCCallback(held, every=2, input_key=(0, 1), pretrain_options={"max_steps": 1})
    trainer = pl.Trainer(
        max_steps=2,
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(Module(), loader)
    assert callback.result is not None and list(callback.result.parts) == [
        "rnn/l0",
        "rnn/l0/reverse",
        "rnn/l1",
        "rnn/l1/reverse",
    ]
    assert [s for s, _ in callback.logged] == [0, 2] and "rnn/l1/depth/1" in callback.logged[0][1]
    err = capsys.readouterr().err
    assert err.count("lsc: warning: pre-training did not converge (max_steps after 4 steps") == 1
