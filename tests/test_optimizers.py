"""The reference code's optimiser, AdaBelief inside Lookahead, from pytorch-optimizer (the
``optimizers`` extra, installed by `make test`): the package's own classes, the
reference's settings, and pre-training that converges with it."""

from __future__ import annotations

import pytest
import torch

import lsc
from lsc.models import StackedRNN
from lsc.optimizers import make_optimizer

po = pytest.importorskip("pytorch_optimizer")


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(5, 3, generator=g)), torch.nn.Parameter(torch.randn(3, generator=g))]


def _steps(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], n: int = 8) -> list[torch.Tensor]:
    for i in range(n):
        opt.zero_grad()
        loss = sum(((p - 0.1 * i) ** 2).sum() for p in params)
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in params]


def test_adabelief_is_the_packages_class_with_the_references_settings():
    params = _params()
    opt = make_optimizer("adabelief", params, 7.2e-3, weight_decay=1e-4)
    assert type(opt) is po.AdaBelief
    group = opt.param_groups[0]
    assert group["lr"] == 7.2e-3 and group["eps"] == 1e-14 and group["betas"] == (0.9, 0.999)
    assert group["rectify"] and group["weight_decouple"] and group["weight_decay"] == 1e-4
    by_hand = _params()
    ref = po.AdaBelief(
        by_hand,
        lr=7.2e-3,
        betas=(0.9, 0.999),
        eps=1e-14,
        rectify=True,
        n_sma_threshold=5,
        weight_decouple=True,
        weight_decay=1e-4,
    )
    for a, b in zip(_steps(opt, params), _steps(ref, by_hand)):
        assert torch.equal(a, b)


def test_lookahead_wraps_adabelief_with_sync_period_6_and_slow_step_half():
    params = _params()
    opt = make_optimizer("adabelief-lookahead", params, 1e-2)
    assert type(opt) is po.Lookahead and type(opt.optimizer) is po.AdaBelief
    assert opt.k == 6 and opt.alpha == 0.5
    by_hand = _params()
    ref = po.Lookahead(
        po.AdaBelief(
            by_hand, lr=1e-2, betas=(0.9, 0.999), eps=1e-14, rectify=True, n_sma_threshold=5, weight_decouple=True
        ),
        k=6,
        alpha=0.5,
    )
    for a, b in zip(_steps(opt, params, 13), _steps(ref, by_hand, 13)):  # two syncs
        assert torch.equal(a, b)


def test_pretraining_with_adabelief_lookahead_converges_on_a_3_layer_gru():
    torch.manual_seed(0)
    model = StackedRNN("gru", input_size=8, hidden_size=32, num_layers=3)
    res = lsc.pretrain(
        model,
        None,
        target=0.5,
        kinds=["time", "depth"],
        tol=0.05,
        optimizer="adabelief-lookahead",
        max_steps=300,
        progress=False,
    )
    assert res.converged, res.message
    check = lsc.measure(model, torch.randn(32, 50, 8), estimator="dense", target=0.5, kinds=["time", "depth"], seed=7)
    assert max(abs(g) for g in check.gaps()) <= 0.05


def test_training_and_its_resume_take_the_adabelief_optimisers(tmp_path):
    task = lsc.tasks.get("copy", symbols=4, length=3, delay=2, train_size=64, val_size=16, test_size=16)
    model = task.model("gru", layers=1, width=8)
    res = lsc.train(
        model, task, epochs=2, lr=1e-2, batch_size=16, optimizer="adabelief-lookahead", schedule="cosine", out=tmp_path
    )
    assert res.epochs == 2
    again = lsc.train(
        task.model("gru", layers=1, width=8),
        task,
        epochs=3,
        lr=1e-2,
        batch_size=16,
        optimizer="adabelief-lookahead",
        schedule="cosine",
        out=tmp_path,
    )
    assert again.epochs == 3
