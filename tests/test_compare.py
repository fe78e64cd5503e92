"""lsc.compare: paired pilot runs of several inits (docs/compare.md)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lsc


class Elman(nn.Module):
    """A 4-layer ReLU Elman RNN whose recurrent weights are scaled up: PyTorch's default
    explodes over 50 steps (time radii above 1), a model where pre-training to 0.5 must help.
    The readout is clamped to [-10, 10], so an exploded state gives a large but finite loss
    (about 100 against a target of variance 3) instead of one that varies by orders of
    magnitude from seed to seed."""

    def __init__(self, width: int = 16, layers: int = 4, scale: float = 3.0) -> None:
        super().__init__()
        self.rnn = nn.RNN(1, width, num_layers=layers, nonlinearity="relu", batch_first=True)
        with torch.no_grad():
            for layer in range(layers):
                getattr(self.rnn, f"weight_hh_l{layer}").mul_(scale)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1]).clamp(-10, 10)


def _task(n: int = 256, T: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, T, 1, generator=g)
    return x, x[:, -3:, 0].sum(1, keepdim=True)


def mse(output: torch.Tensor, item: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.mse_loss(output, item[1])


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(seed: int) -> nn.Module:
    return Elman(width=4, layers=2, scale=1.0)


def test_identical_inits_are_undecided_with_an_interval_at_zero():
    data = _task(64, 10)
    c = lsc.compare(small, data, loss=mse, inits=("default", "default"), steps=6, seeds=3, batch_size=8)
    row = c.rows[1]
    assert row["init"] == "default#2" and row["diff"] == 0.0
    low, high = row["interval"]
    assert low <= 0 <= high and row["verdict"] == "undecided"
    assert "undecided" in str(c)


def test_same_seed_same_comparison_and_resume_after_interrupt(tmp_path):
    data = _task(64, 10)
    kw = dict(
        loss=mse,
        inits=("default", 0.5, "orthogonal"),
        steps=6,
        seeds=2,
        batch_size=8,
        eval_every=2,
        pretrain_options={"max_steps": 3, "kinds": ["time", "depth"]},
    )
    a = lsc.compare(small, data, **kw)
    b = lsc.compare(small, data, **kw)
    calls = {"n": 0}

    def stopping(output, item):
        calls["n"] += 1
        if calls["n"] == 40:
            raise KeyboardInterrupt
        return mse(output, item)

    kw_out = {**kw, "loss": stopping}
    part = lsc.compare(small, data, out=tmp_path, **kw_out)
    assert part.interrupted and 0 < len(part.runs) < 6
    resumed = lsc.compare(small, data, out=tmp_path, **kw_out)
    assert not resumed.interrupted and len(resumed.runs) == 6
    for other in (b, resumed):
        for ra, rb in zip(a.rows, other.rows):
            for key in ("final", "diff"):
                assert ra[key] == pytest.approx(rb[key], abs=1e-6)
        for init in a.inits:
            for seed in a.seeds:
                assert [v for _, v in a.curves[init][seed]] == pytest.approx(
                    [v for _, v in other.curves[init][seed]], abs=1e-6
                )
    with pytest.raises(ValueError, match="other settings"):
        lsc.compare(small, data, out=tmp_path, **{**kw_out, "steps": 7})


def test_outputs(tmp_path):
    c = lsc.compare(small, _task(64, 10), loss=mse, inits=("default", "default"), steps=4, seeds=1, batch_size=8)
    assert c.plot(tmp_path / "c.png").stat().st_size > 1000
    assert '"rows"' in c.to_json(tmp_path / "c.json").read_text()
    assert "init" in c.table() and "fewer than 3 seeds" in str(c)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"inits": ("default",)}, "at least two"),
        ({"inits": ("default", "nope")}, "unknown entry"),
        ({"steps": 0}, "steps"),
        ({"seeds": -1}, "seeds"),
        ({"budget": "epochs"}, "budget"),
    ],
)
def test_bad_input_is_one_clear_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        lsc.compare(small, _task(16, 5), **{"loss": mse, **bad})


@pytest.mark.slow  # ~40 s on an idle core (3 pre-trainings, 600 steps of a 4-layer RNN over 50 steps)
def test_pretraining_to_half_beats_an_exploding_default():
    c = lsc.compare(
        lambda seed: Elman(),
        _task(),
        loss=mse,
        inits=("default", 0.5),
        seeds=3,
        steps=100,
        eval_every=50,
        pretrain_options={"kinds": ["time", "depth"], "max_steps": 10},
        batch_size=16,
    )
    row = c.rows[1]
    print(c.table())
    assert row["verdict"] == "better" and row["interval"][0] > 0, str(c)
    assert math.isfinite(row["pretrain_steps_equivalent"])


class Lengths(nn.Module):
    """A forward(x, lengths): reads each sequence's state at its own last step."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, 4, batch_first=True)
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = self.rnn(x)[0]
        return self.head(out[torch.arange(len(x)), lengths - 1])


def test_a_forward_with_lengths_is_compared_with_input_key_as_with_forward():
    """input_key=(0, 1) calls model(x, lengths) of (x, lengths, y) items, in the runs and in
    pre-training: the same comparison as the equivalent forward=."""
    x, y = _task(64, 10)
    data = (x, torch.randint(5, 11, (64,), generator=torch.Generator().manual_seed(1)), y)

    def loss(output, item):
        return nn.functional.mse_loss(output, item[2])

    opts = dict(loss=loss, inits=("default", 0.5), steps=4, seeds=1, batch_size=8)
    opts["pretrain_options"] = {"max_steps": 3}
    by_key = lsc.compare(lambda seed: Lengths(), data, input_key=(0, 1), **opts)
    by_forward = lsc.compare(lambda seed: Lengths(), data, forward=lambda m, item: m(item[0], item[1]), **opts)
    assert [r["final"] for r in by_key.rows] == [r["final"] for r in by_forward.rows]
    assert all(math.isfinite(r["final"]) for r in by_key.rows)
