"""``lsc experiment list|run|report``: reproduce the papers' claims (issue 8).

Wired into ``lsc`` by :func:`add_command` (called from :func:`lsc.cli.build_parser`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..experiments.base import PRESETS, RECORDS


def add_command(sub: Any) -> None:
    """Register ``lsc experiment`` (list, run, report) on the ``lsc`` sub-parser set."""
    e = sub.add_parser(
        "experiment",
        help="reproduce the papers' claims: list, run (resumable, parallel) and report experiments",
        description="Experiments that each test one claim of a paper. Presets: smoke (seconds), cpu (a 2-core "
        "machine, minutes), fair and converged (core-hours), paper (the papers' sizes, for GPUs). Every run is an "
        "independent process working in OUT/EXPERIMENT/PRESET/RUN/ and leaving its record in "
        "RECORDS/EXPERIMENT/PRESET/RUN.json; reports are made from the records alone.",
    )
    esub = e.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = esub.add_parser("list", help="the experiments, the claim each tests and their presets")
    p.set_defaults(run=run_list)

    p = esub.add_parser(
        "run",
        help="run an experiment's preset (finished runs are skipped)",
        description="Run every unfinished run of the preset, --jobs at a time, each as its own "
        "process (python -m lsc.experiments.worker ...). Interrupt and run again to resume.",
    )
    p.add_argument("name", help="experiment name (see lsc experiment list)")
    p.add_argument("--preset", default="smoke", choices=PRESETS, help="size of the runs (default smoke)")
    p.add_argument("--out", default="results", help="working directory of the runs (default results/)")
    p.add_argument(
        "--records",
        default=None,
        metavar="DIR",
        help="where each finished run leaves its record, and "
        "where finished runs are looked up to be skipped (default OUT/records; the repository's is "
        "docs/results/records)",
    )
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per run (default 1)")
    p.add_argument("--force", action="store_true", help="run finished runs again too")
    p.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="PATTERN",
        help="only runs whose id matches this glob, e.g. 'grid-*-s0' (repeatable)",
    )
    p.add_argument(
        "--emit-commands",
        action="store_true",
        help="print one independent shell command per run (for a scheduler) and run nothing",
    )
    p.add_argument("--python", default="python", help="interpreter named in --emit-commands (default python)")
    p.add_argument(
        "--launcher",
        default="local",
        choices=("local", "submitit"),
        help="local: subprocesses here (default); submitit: one Slurm job per run through submitit "
        "(pip install 'lsc[cluster]'), waiting for them",
    )
    p.add_argument(
        "--cluster",
        default=None,
        help="submitit's cluster (default: Slurm when available; 'local' runs the jobs as local processes)",
    )
    p.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a submitit/Slurm parameter, e.g. slurm_partition=gpu, timeout_min=600, gpus_per_node=1 (repeatable)",
    )
    p.set_defaults(run=run_run)

    p = esub.add_parser(
        "report",
        help="markdown tables and PNG plots from the runs' records",
        description="Print a markdown report of every experiment/preset with records under "
        "--records; plots are written to --figures.",
    )
    p.add_argument("names", nargs="*", help="experiments (default: all)")
    p.add_argument(
        "--out",
        default="results",
        help="results directory whose records/ is read when --records is not given (default results/)",
    )
    p.add_argument("--records", default=None, metavar="DIR", help="the records to report (default OUT/records)")
    p.add_argument("--preset", action="append", default=None, help="only this preset (repeatable)")
    p.add_argument("--figures", default=None, help="directory for PNG plots (default OUT/figures)")
    p.add_argument(
        "--markdown",
        default=None,
        metavar="FILE",
        help="also write the report to FILE (links relative to it), with an introduction and the "
        "experiments not run yet: how RESULTS.md is made",
    )
    p.set_defaults(run=run_report)


def _records(args: argparse.Namespace) -> Path:
    return Path(args.records) if args.records else Path(args.out) / RECORDS


def run_list(args: argparse.Namespace) -> int:
    from .. import experiments

    for name in experiments.available():
        print(experiments.get(name).describe() + "\n")
    return 0


def run_run(args: argparse.Namespace) -> int:
    from .. import experiments

    exp = experiments.get(args.name)
    out = Path(args.out)
    exp.params(args.preset)  # a clear error for a preset the experiment lacks
    if args.emit_commands:
        for line in experiments.commands(exp, args.preset, out, args.python, args.only, _records(args)):
            print(line)
        return 0
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    parameters = {}
    for item in args.slurm:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm takes KEY=VALUE, got {item!r}")
        parameters[key] = int(value) if value.isdigit() else value
    if parameters and args.launcher != "submitit":
        raise ValueError("--slurm applies to --launcher submitit only")
    counts = experiments.run(
        exp,
        args.preset,
        out,
        args.jobs,
        force=args.force,
        threads=args.threads,
        only=args.only,
        launcher=args.launcher,
        cluster=args.cluster,
        parameters=parameters,
        records=_records(args),
    )
    print(
        f"{exp.name}/{args.preset}: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f"; lsc experiment report --records {_records(args)} {exp.name}",
        file=sys.stderr,
    )
    return 1 if counts["failed"] else 0


def run_report(args: argparse.Namespace) -> int:
    from .. import experiments

    names = args.names or None
    for n in names or []:
        experiments.get(n)
    presets = args.preset or list(experiments.PRESETS)
    md = Path(args.markdown) if args.markdown else None
    figures = Path(args.figures) if args.figures else Path(args.out) / "figures"
    text = experiments.report(
        _records(args), figures, names, presets, link_base=md.parent if md else None, header=md is not None
    )
    if md is not None:
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(text)
    print(text)
    return 0
