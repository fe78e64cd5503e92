"""``lsc train``: a stacked RNN on a task, optionally initialised and pre-trained first."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import tasks as task_registry
from ..distributed import is_main
from ..job import TrainJob, run_job
from ..models import cell_names
from ..rundir import refuse_other_run
from ..settings import names, setting_field, unspelt
from .options import (
    init_options,
    parse_init_options,
    parse_kinds,
    parse_option,
    parse_target,
    positive_float,
    positive_int,
    setting_option,
)
from .pretrain import PRETRAIN_FILES


def _pretraining_options(p: argparse.ArgumentParser) -> None:
    """The ``--pretrain*`` options: pre-training before training."""
    g = p.add_argument_group("pre-training (before training)")
    g.add_argument(
        "--pretrain",
        default=None,
        metavar="TARGET",
        help="pre-train to the LSC first: 0.5, 1, unbalanced, auto or kind=value,... (default: no pre-training)",
    )
    setting_option(g, TrainJob, "pretrain_kinds", "--pretrain-kinds", type=parse_kinds)
    setting_option(g, TrainJob, "pretrain_steps", "--pretrain-steps", type=positive_int)
    setting_option(
        g,
        TrainJob,
        "pretrain_seconds",
        "--pretrain-seconds",
        type=positive_float,
        help="a time cap in seconds (none: the step budget decides, so a seed fixes the init on a busy "
        "machine as on an idle one)",
    )
    setting_option(g, TrainJob, "pretrain_tol", "--pretrain-tol", type=float)
    setting_option(g, TrainJob, "pretrain_rescale", "--pretrain-rescale", closed=True)
    setting_option(g, TrainJob, "pretrain_shuffle", "--pretrain-shuffle", type=float)
    g.add_argument(
        "--pretrain-decoder", action="store_true", help=setting_field(TrainJob, "pretrain_decoder").metadata["help"]
    )
    setting_option(g, TrainJob, "pretrain_optimizer", "--pretrain-optimizer")


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a stacked RNN on a task (optionally after LSC pre-training)",
        description="Build a stacked RNN for --task, optionally initialise it (--init) and pre-train it to the "
        "Local Stability Condition (--pretrain), train it with a progress bar per epoch and print the validation "
        "and test metric. With --out DIR: DIR/config.json, DIR/metrics.jsonl (one row per epoch), DIR/best.pt "
        "(lsc.load), DIR/result.json, DIR/pretrain.json and a checkpoint; running the same command again resumes.",
    )
    g = p.add_argument_group("task")
    g.add_argument("--task", required=True, help=f"task name: {', '.join(task_registry.available())} (see `lsc tasks`)")
    g.add_argument("--data", default=None, help="data directory or file for the task (default: $LSC_DATA/<folder>)")
    g.add_argument(
        "--task-option",
        "-o",
        action="append",
        type=parse_option,
        default=[],
        metavar="KEY=VALUE",
        help="a task option, repeatable, e.g. -o delay=20 -o layout=reference (see `lsc tasks --json`)",
    )
    g.add_argument(
        "--time-repeat",
        type=positive_int,
        default=None,
        help="repeat every step this many times (the reference uses 2)",
    )
    g = p.add_argument_group("model")
    setting_option(g, TrainJob, "cell", "--cell", help=f"cell kind: {', '.join(cell_names())}")
    setting_option(g, TrainJob, "layers", "--layers", type=positive_int)
    setting_option(g, TrainJob, "width", "--width", type=positive_int)
    setting_option(g, TrainJob, "dtype", "--dtype", closed=True)
    setting_option(g, TrainJob, "embedding", "--embedding", type=positive_int)
    setting_option(g, TrainJob, "dropout", "--dropout", type=float)
    init_options(g)
    _pretraining_options(p)
    g = p.add_argument_group("training")
    setting_option(g, TrainJob, "epochs", "--epochs", type=positive_int)
    setting_option(g, TrainJob, "lr", "--lr", type=positive_float)
    setting_option(g, TrainJob, "batch_size", "--batch-size", type=positive_int)
    setting_option(g, TrainJob, "optimizer", "--optimizer")
    setting_option(g, TrainJob, "weight_decay", "--weight-decay", type=float)
    setting_option(g, TrainJob, "clip", "--clip", type=float)
    setting_option(g, TrainJob, "schedule", "--schedule", closed=True)
    setting_option(g, TrainJob, "patience", "--patience", type=positive_int)
    setting_option(
        g, TrainJob, "seed", "--seed", type=int, help="seed of the model, pre-training, the data order and dropout"
    )
    g.add_argument(
        "--device",
        default="auto",
        help="auto, cpu or cuda (default auto: cuda when available; under torchrun cuda:LOCAL_RANK)",
    )
    setting_option(g, TrainJob, "amp", "--amp", closed=True)
    g.add_argument("--out", default=None, help="directory for metrics, config, best checkpoint and resuming")
    g.add_argument("--force", action="store_true", help="start afresh: delete the run files lsc wrote in --out first")
    g.add_argument("--json", action="store_true", help="print the result as JSON")
    g.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run)


def job_from_args(args: argparse.Namespace) -> TrainJob:
    """The :class:`lsc.job.TrainJob` the options describe."""
    options = dict(args.task_option)
    if args.data is not None:
        options["path"] = args.data
    if args.time_repeat is not None:
        options["time_repeat"] = args.time_repeat
    if args.pretrain is not None:
        try:
            parse_target(args.pretrain)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"--pretrain: {exc}") from None
    given = {name: getattr(args, name) for name in names(TrainJob) if name not in ("task_options", "init_options")}
    given.update(schedule=unspelt(args.schedule), amp=unspelt(args.amp), pretrain_kinds=args.pretrain_kinds or None)
    return TrainJob(task_options=options, init_options=parse_init_options(args.init_opt), **given)


PRETRAIN_RUN_FILES = tuple(name for name in PRETRAIN_FILES if name != "checkpoint.pt")
"""The files that mark a directory as ``lsc pretrain``'s (its ``checkpoint.pt`` shares the name of ours)."""


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args)
    main = is_main()  # under torchrun only rank 0 writes and prints
    quiet = args.quiet or args.json or not main

    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    def on_epoch(row: dict[str, object]) -> None:
        if not quiet and not sys.stderr.isatty():  # no progress bar: one line per epoch
            key = next(k for k in row if k.startswith("val_") and k != "val_loss")
            say(
                f"epoch {row['epoch']}/{args.epochs}: train loss {row['train_loss']:.4f}, {key} {row[key]:.4f} "
                f"({row['seconds']:.1f} s)"
            )

    def warn(msg: str) -> None:  # also with --quiet and --json: a warning is no progress
        print(f"lsc train: warning: {msg}", file=sys.stderr, flush=True)

    if args.out is not None:  # lsc pretrain's files: its run is not ours to mix with or clear
        refuse_other_run(args.out, PRETRAIN_RUN_FILES, "lsc pretrain", "lsc train")
    done = run_job(
        job, args.out, force=args.force, progress=False if quiet else None, say=say, on_epoch=on_epoch, warn=warn
    )
    result = done.train
    if done.interrupted:
        print(result.message, file=sys.stderr)
        return 130
    if not main:
        return 0
    if args.json:
        print(json.dumps({"result": result.summary(), "pretrain": done.pretrain_summary}, indent=2, default=str))
        return 0
    label = f"{args.task} · {args.cell} {args.layers}x{args.width}" + (
        f" · LSC {args.pretrain}" if args.pretrain else ""
    )
    if result.stopped == "diverged":
        print(f"{label}: diverged: {result.message}", file=sys.stderr)
    print(f"{label}: {result.line()}")
    return 0
