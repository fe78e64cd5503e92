"""The experiments by name: each experiment module registers its :class:`Experiment` when
imported; :func:`get` and :func:`available` import them all first."""

from __future__ import annotations

import importlib

from .base import Experiment

MODULES = (
    "fig1_paths",
    "fig2_ffn",
    "fig3_deep_rnn",
    "fig4_lru",
    "glorot_long_range",
    "meanfield_critical",
    "smoothness_attractors",
)
REGISTRY: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    REGISTRY[exp.name] = exp
    return exp


def load_all() -> None:
    """Import every experiment module (each registers itself)."""
    for m in MODULES:
        importlib.import_module(f"lsc.experiments.{m}")


def get(name: str) -> Experiment:
    load_all()
    if name not in REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def available() -> list[str]:
    load_all()
    return list(REGISTRY)
