"""Input validation shared by every public entry point.

Rule (DESIGN.md section 5): bad input never yields a silently wrong number. Every
check here raises with a message that names the problem and says what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import torch
from torch import nn


class NonFiniteError(ValueError):
    """A tensor that must be finite holds NaN or inf."""


def unknown_name(kind: str, name: object, choices: Iterable[str]) -> ValueError:
    """A ValueError for an unknown ``name``, with a "did you mean" hint."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}.{hint} Choose one of: {', '.join(choices)}.")


def check_finite(tensor: torch.Tensor, what: str) -> None:
    """Raise :class:`NonFiniteError` if a floating tensor holds NaN or inf."""
    if tensor.is_floating_point() or tensor.is_complex():
        bad = ~torch.isfinite(tensor)
        if bool(bad.any()):
            n_nan = int(torch.isnan(tensor).sum())
            raise NonFiniteError(
                f"{what} contains {int(bad.sum())} non-finite values ({n_nan} NaN, "
                f"{int(bad.sum()) - n_nan} inf); clean or re-normalise it first."
            )


def check_parameters_finite(module: nn.Module, what: str = "model") -> None:
    """Raise :class:`NonFiniteError` naming the first parameter that holds NaN or inf."""
    for name, p in module.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise NonFiniteError(
                f"parameter {name!r} of the {what} contains NaN or inf; the model is broken "
                "(a diverged training run?). Re-initialise it or load a good checkpoint."
            )


def check_positive(value: float, what: str) -> float:
    """Return ``float(value)`` if it is a finite number > 0, else raise ValueError."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number > 0, got {value!r}") from None
    if not (v > 0 and v != float("inf")):
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    return v
