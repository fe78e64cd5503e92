"""Named elementwise activations shared by the cells and the feed-forward network."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from ..checks import unknown_name


def _identity(a: Tensor) -> Tensor:
    return a


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "swish": F.silu,
    "gelu": F.gelu,
    "sin": torch.sin,
    "cos": torch.cos,
    "identity": _identity,
    "linear": _identity,
}


def activation(name: str, what: str = "activation") -> Callable[[Tensor], Tensor]:
    """The activation called ``name``; unknown names get a "did you mean" error."""
    if name not in ACTIVATIONS:
        raise unknown_name(what, name, ACTIVATIONS)
    return ACTIVATIONS[name]
