"""Optimisers by name, for training and pre-training alike (docs/design.md A2.3, A4.5,
section 13): PyTorch's, the reference code's AdaBelief (+ Lookahead) and ``none``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from .checks import unknown_name


def _pytorch_optimizer():
    try:
        import pytorch_optimizer
    except ImportError:
        raise ValueError(
            "the AdaBelief optimisers come from the pytorch-optimizer package: "
            "pip install 'lsc[optimizers]' (or pytorch-optimizer)"
        ) from None
    return pytorch_optimizer


def adabelief(params: Iterable[nn.Parameter], lr: float, **options: object) -> torch.optim.Optimizer:
    """AdaBelief (Zhuang et al. 2020) from ``pytorch-optimizer``, with the reference code's
    TF-Addons settings: betas (0.9, 0.999), eps 1e-14, rectified (SMA threshold 5),
    decoupled weight decay (docs/design.md A2.3, A4.5)."""
    settings = {
        "betas": (0.9, 0.999),
        "eps": 1e-14,
        "rectify": True,
        "n_sma_threshold": 5,
        "weight_decouple": True,
        **options,
    }
    return _pytorch_optimizer().AdaBelief(params, lr=lr, **settings)


def adabelief_lookahead(
    params: Iterable[nn.Parameter], lr: float, *, k: int = 6, alpha: float = 0.5, **options: object
) -> torch.optim.Optimizer:
    """:func:`adabelief` inside Lookahead (Zhang et al. 2019; sync period 6, slow step 0.5),
    the reference code's optimiser, both from ``pytorch-optimizer``."""
    return _pytorch_optimizer().Lookahead(adabelief(params, lr, **options), k=k, alpha=alpha)


class NoStep(torch.optim.Optimizer):
    """No gradient step at all: pre-training by the reference's weight heuristics alone
    (``rescale``, ``shuffle``), its method for LRU stacks (docs/design.md section 13)."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float = 0.0) -> None:
        super().__init__(params, {"lr": lr})

    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        return None


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "none": NoStep,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adabelief": adabelief,
    "adabelief-lookahead": adabelief_lookahead,
}
"""Optimisers by name, for training and pre-training alike (the AdaBelief ones need the
``optimizers`` extra)."""


def make_optimizer(
    spec: str | Callable[..., torch.optim.Optimizer], params: Iterable[nn.Parameter], lr: float, **options: object
) -> torch.optim.Optimizer:
    """``OPTIMIZERS[spec](params, lr=lr, **options)``, or ``spec(params, lr=lr, **options)`` for a callable."""
    if isinstance(spec, str):
        if spec not in OPTIMIZERS:
            raise unknown_name("optimizer", spec, OPTIMIZERS)
        return OPTIMIZERS[spec](params, lr=lr, **options)
    if not callable(spec):
        raise ValueError(
            f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or a callable (params, lr=...) -> Optimizer, "
            f"got {spec!r}"
        )
    return spec(params, lr=lr, **options)
