"""``lsc measure``: the radius (or norm) of every local Jacobian of a freshly built model."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from ..condition import DEFAULT_TOL, MEASURE_ESTIMATOR, measure
from ..grid import DEFAULT_TIME_POINTS, KINDS
from ..jacobian import METHODS, QUANTITIES
from .options import (
    build_model,
    model_options,
    parse_kinds,
    parse_target,
    parse_time_points,
    positive_int,
    user_call,
)


def add_command(sub: Any) -> None:
    m = sub.add_parser(
        "measure",
        help="measure the radius of every local Jacobian of a model",
        description="Build a stacked recurrent model, run it on Gaussian input and print the "
        "spectral radius (or norm) of every local Jacobian: time, depth, encoder and decoder edges.",
    )
    model_options(m)
    measure_options(m)
    m.set_defaults(run=run)


def measure_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("measurement")
    est = MEASURE_ESTIMATOR
    g.add_argument(
        "--method",
        choices=METHODS,
        default=est.method,
        help=f"auto (dense for small Jacobians), dense, arnoldi, power (default {est.method})",
    )
    g.add_argument(
        "--quantity", choices=QUANTITIES, default="radius", help="radius (default), norm or rms singular value"
    )
    g.add_argument("--steps", type=positive_int, default=est.steps, help=f"Krylov/power steps (default {est.steps})")
    g.add_argument(
        "--probes", type=positive_int, default=est.probes, help=f"Hutchinson probes for rms (default {est.probes})"
    )
    g.add_argument(
        "--time-points",
        type=parse_time_points,
        default=DEFAULT_TIME_POINTS,
        help="steps measured: auto (2, 4, then 8 evenly spaced steps until the standard error of every edge mean "
        "is at most 1%% of it), "
        f"a count (evenly spaced), 'all' or e.g. 0,10,49 (default {DEFAULT_TIME_POINTS})",
    )
    g.add_argument(
        "--kinds",
        type=parse_kinds,
        default=None,
        help=f"edge kinds, comma-separated from {','.join(KINDS)} (default all)",
    )
    g.add_argument(
        "--target",
        type=parse_target,
        default="auto",
        help="LSC target: a number, auto (0.5 for deep RNNs, else 1), unbalanced, or kind=value,... (default auto)",
    )
    g.add_argument(
        "--tol", type=float, default=DEFAULT_TOL, help=f"tolerance for the LSC verdict (default {DEFAULT_TOL})"
    )
    g.add_argument("--json", action="store_true", help="print the report as JSON (exactly report.to_dict())")
    g.add_argument("--check", action="store_true", help="exit with status 1 when the LSC does not hold")


def run(args: argparse.Namespace) -> int:
    model, x = build_model(args)
    report = measure(
        model,
        x,
        kinds=args.kinds,
        target=args.target,
        quantity=args.quantity,
        estimator=replace(MEASURE_ESTIMATOR, method=args.method, steps=args.steps, probes=args.probes),
        time_points=args.time_points,
        seed=args.seed,
        **user_call(args),
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.table(tol=args.tol))
    return 1 if args.check and not report.satisfies(tol=args.tol) else 0
