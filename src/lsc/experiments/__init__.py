"""Reproducing the papers' claims (issue 8): ``lsc experiment list|run|report``.

Each experiment (a module here) names the claim it tests, expands a preset (``smoke``:
seconds, for the tests; ``cpu``: a 2-core machine, minutes; ``paper``: the papers' sizes)
into independent runs, and reports tables and plots from whatever runs exist. See
:mod:`lsc.experiments.base` for the run directory layout.

    from lsc import experiments
    exp = experiments.get("fig1-paths")
    experiments.run(exp, "smoke", Path("results"), jobs=2)  # records in results/records
    print(experiments.report(Path("results/records"), figures=Path("results/figures")))
"""

from __future__ import annotations

from .base import (
    PRESETS,
    REGISTRY,
    Experiment,
    Run,
    RunRecord,
    available,
    get,
    records,
    register,
)
from .runner import commands, pending, run

MODULES = ("fig1_paths", "fig2_ffn", "fig3_deep_rnn", "fig4_lru", "glorot_long_range", "meanfield_critical", "smoothness_attractors")


def _load_all() -> None:
    import importlib

    for m in MODULES:
        importlib.import_module(f"{__name__}.{m}")


def report(records, figures=None, names=None, presets=PRESETS, link_base=None, header=False) -> str:
    """Markdown of every experiment/preset with run records under ``records`` (see :mod:`.reporting`)."""
    from .reporting import report as _report

    return _report(records, figures, names, presets, link_base, header)


__all__ = [
    "PRESETS", "REGISTRY", "Experiment", "Run", "RunRecord", "available", "commands", "get", "pending",
    "records", "register", "report", "run",
]
