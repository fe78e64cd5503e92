"""Input validation shared by every public entry point.

Rule (docs/design.md, section 6): bad input never yields a silently wrong number. Every
check here raises with a message that names the problem and says what to do.
"""

from __future__ import annotations

import difflib
import math
import numbers
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


def _digits(value: object) -> int:
    """How many digits an int has (for messages about ints too large for a float)."""
    return len(str(abs(value))) if isinstance(value, int) else 0


def check_number(value: object, what: str) -> float:
    """Return ``float(value)`` if it is a finite number (not a bool or a string), else raise ValueError."""
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of more than one element
        raise ValueError(f"{what} must be a finite number, got {value!r}") from None
    except OverflowError:  # an int beyond the range of a float
        raise ValueError(
            f"{what} must be a finite number, got an integer of {_digits(value)} digits, too large for a float"
        ) from None
    if not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return v


def check_positive(value: float, what: str) -> float:
    """Return ``float(value)`` if it is a finite number > 0, else raise ValueError."""
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(f"{what} must be a number > 0, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what} must be a number > 0, got {value!r}") from None
    except OverflowError:  # an int beyond the range of a float
        raise ValueError(
            f"{what} must be a finite number > 0, got an integer of {_digits(value)} digits, too large for a float"
        ) from None
    if not (v > 0 and v != float("inf")):
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    return v


def check_count(value: object, what: str, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum`` (not a bool, not 2.0), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_seed(seed: object, what: str = "seed") -> int | None:
    """Return ``seed`` as an int (or ``None``) if it is an integer or None, else raise ValueError.
    Any integer is a seed: :func:`generator_seed` folds it into the range torch takes."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"{what} must be an integer or None, got {seed!r}")
    return int(seed)


def generator_seed(seed: int) -> int:
    """``seed`` folded into [0, 2**64), the range ``torch.Generator.manual_seed`` takes; torch itself
    maps a negative seed -s to 2**64 - s, so every seed torch took before gives the same stream."""
    return int(seed) % (1 << 64)
