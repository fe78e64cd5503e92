"""The inits :func:`lsc.compare` puts side by side, and how each is applied to a fresh model.

An entry of ``inits`` is one of

* ``"default"``: the model as ``make_model(seed)`` built it;
* a number or a ``{kind: value}`` mapping: :func:`lsc.pretrain` to that target with lsc's
  defaults (docs/design.md, section 9), plus the caller's ``pretrain_options``;
* the name of an analytic init of :mod:`lsc.init` (``"critical"``, ``"orthogonal"``,
  ``"chrono"``, ...), applied with the run's seed; inits that read a sequence length
  (``critical``'s ``seq_len``, ``chrono``'s ``t_max``) get the length of the data's inputs;
* a callable ``init(model, items)``: the user's own, given the run's pre-training batches.

Each is timed: the seconds count against it when :func:`lsc.compare` compares at equal
wall-clock (``budget="time"``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import parts as _parts
from ..init import registry as _init_registry

Forward = Callable[[nn.Module, object], object]
"""``forward(model, item) -> output``: how the user's model is run on one item of the data."""


@dataclass(frozen=True)
class InitSpec:
    """One entry of ``inits``: its label in tables and files, and what it does."""

    label: str
    kind: str  # "default" | "pretrain" | "named" | "callable"
    value: object = None


def resolve(inits: Sequence[object]) -> tuple[InitSpec, ...]:
    """The entries of ``inits`` as :class:`InitSpec`, each with a unique label (a repeated
    entry is labelled ``"default#2"``); a bad entry is one ``ValueError`` naming it."""
    if isinstance(inits, (str, bytes)) or not isinstance(inits, Sequence) or len(inits) < 2:
        raise ValueError(
            f"inits must be a sequence of at least two entries to compare (the first is the reference), "
            f"e.g. ('default', 0.5, 1.0); got {inits!r}"
        )
    specs, seen = [], {}  # type: ignore[var-annotated]
    for entry in inits:
        spec = _one(entry)
        seen[spec.label] = seen.get(spec.label, 0) + 1
        label = spec.label if seen[spec.label] == 1 else f"{spec.label}#{seen[spec.label]}"
        specs.append(InitSpec(label, spec.kind, spec.value))
    return tuple(specs)


def _one(entry: object) -> InitSpec:
    if isinstance(entry, str):
        if entry == "default":
            return InitSpec("default", "default")
        known = _init_registry.available()
        if entry not in known:
            raise ValueError(
                f"inits: unknown entry {entry!r}; use 'default', a target number (0.5, 1), a "
                f"{{kind: value}} mapping, a callable init(model, items) or an lsc.init name "
                f"({', '.join(known)})"
            )
        return InitSpec(entry, "named", entry)
    if isinstance(entry, bool):
        raise ValueError(f"inits: {entry!r} is not an init; use a target number such as 0.5")
    if isinstance(entry, (int, float)):
        if not math.isfinite(entry) or entry <= 0:
            raise ValueError(f"inits: a target radius must be a positive finite number, got {entry!r}")
        return InitSpec(f"{entry:g}", "pretrain", float(entry))
    if isinstance(entry, Mapping):
        if not entry:
            raise ValueError("inits: an empty target mapping; give {kind: value}, e.g. {'time': 0.5, 'depth': 0.5}")
        label = ",".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in entry.items())
        return InitSpec(label, "pretrain", dict(entry))
    if callable(entry):
        return InitSpec(getattr(entry, "__name__", type(entry).__name__), "callable", entry)
    raise ValueError(
        f"inits: cannot use {entry!r} ({type(entry).__name__}); use 'default', a number, a mapping, "
        "an lsc.init name or a callable init(model, items)"
    )


@dataclass(frozen=True)
class Applied:
    """What applying an init cost and said."""

    seconds: float
    message: str


def apply(
    spec: InitSpec,
    model: nn.Module,
    items: Sequence[object],
    *,
    seed: int,
    forward: Forward | None,
    input_key: _parts.InputKey,
    pretrain_options: Mapping[str, object],
) -> Applied:
    """Apply ``spec`` to ``model`` in place, on the pre-training batches ``items``, timed."""
    from ..pretraining import pretrain  # the library's entry point, with keyword arguments only

    start = time.perf_counter()
    message = "as built"
    if spec.kind == "pretrain":
        options = {"progress": False, "seed": seed, **dict(pretrain_options), "target": spec.value}
        result = pretrain(model, list(items), input_key=input_key, forward=forward, **options)  # type: ignore[arg-type]
        message = result.message
    elif spec.kind == "named":
        horizon = _horizon(items, input_key) if forward is None else None
        _init_registry.run(model, str(spec.value), seed=seed, horizon=horizon)
        message = f"lsc.init {spec.value}"
    elif spec.kind == "callable":
        spec.value(model, list(items))  # type: ignore[operator]
        message = f"{spec.label}(model, items)"
    return Applied(time.perf_counter() - start, message)


def _horizon(items: Sequence[object], input_key: _parts.InputKey) -> int | None:
    """The sequence length of the data's inputs (the first of several), read batch-first
    ((B, T, ...) or (B, T))."""
    try:
        x = _parts.input_of(items[0], input_key if isinstance(input_key, (int, str)) else input_key[0])
    except (TypeError, ValueError, IndexError):
        return None
    return int(x.shape[1]) if isinstance(x, torch.Tensor) and x.dim() >= 2 else None
