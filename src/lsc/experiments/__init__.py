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

from .base import PRESETS, Experiment, Run, RunRecord, records
from .registry import REGISTRY, available, get, register
from .reporting import report
from .runner import commands, pending, run

__all__ = [
    "PRESETS",
    "REGISTRY",
    "Experiment",
    "Run",
    "RunRecord",
    "available",
    "commands",
    "get",
    "pending",
    "records",
    "register",
    "report",
    "run",
]
