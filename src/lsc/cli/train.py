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
from ..train import OPTIMIZERS
from .options import (
    init_options,
    parse_init_options,
    parse_option,
    parse_target,
    positive_float,
    positive_int,
)


def _pretraining_options(p: argparse.ArgumentParser) -> None:
    """The ``--pretrain*`` options: pre-training before training."""
    g = p.add_argument_group("pre-training (before training)")
    g.add_argument(
        "--pretrain",
        default=None,
        metavar="TARGET",
        help="pre-train to the LSC first: 0.5, 1, unbalanced, auto or kind=value,... (default: no pre-training)",
    )
    g.add_argument("--pretrain-kinds", default=None, help="edge kinds to pre-train (default encoder,time,depth)")
    g.add_argument("--pretrain-steps", type=positive_int, default=1000, help="pre-training step budget (default 1000)")
    g.add_argument(
        "--pretrain-seconds",
        type=positive_float,
        default=None,
        help="an extra time cap on pre-training in s (default none: the step budget decides, so a seed "
        "fixes the init on a busy machine as on an idle one)",
    )
    g.add_argument("--pretrain-tol", type=float, default=0.02, help="pre-training tolerance (default 0.02)")
    g.add_argument(
        "--pretrain-rescale",
        choices=("auto", "on", "off"),
        default="auto",
        help="the reference's weight multiplier clip(target / radius) during pre-training (default auto: "
        "on diagonal-recurrence cells)",
    )
    g.add_argument(
        "--pretrain-shuffle",
        type=float,
        default=0.0,
        help="probability per step of the reference's weight shuffling (default 0)",
    )
    g.add_argument(
        "--pretrain-decoder",
        action="store_true",
        help="also pre-train the decoder edge to 1 when the model has at most 100 outputs (the reference's "
        "choice; in the loss, not in the stopping rule)",
    )
    g.add_argument(
        "--pretrain-optimizer", default="adam", help=f"pre-training optimiser: {', '.join(OPTIMIZERS)} (default adam)"
    )


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
    g.add_argument("--cell", default="gru", help=f"cell kind: {', '.join(cell_names())} (default gru)")
    g.add_argument("--layers", type=positive_int, default=2, help="stacked layers (default 2)")
    g.add_argument("--width", type=positive_int, default=128, help="hidden width of every layer (default 128)")
    g.add_argument(
        "--dtype", choices=("float32", "float64"), default="float32", help="parameter dtype (default float32)"
    )
    g.add_argument(
        "--embedding", type=positive_int, default=None, help="embedding size for token tasks (default: --width)"
    )
    g.add_argument("--dropout", type=float, default=0.0, help="dropout between layers (default 0)")
    init_options(g)
    _pretraining_options(p)
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=5, help="epochs (default 5)")
    g.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default 1e-3)")
    g.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default 64)")
    g.add_argument("--optimizer", default="adam", help=f"{', '.join(OPTIMIZERS)} (default adam)")
    g.add_argument("--weight-decay", type=float, default=0.0, help="weight decay (default 0)")
    g.add_argument(
        "--clip", type=float, default=None, help="clip the gradient norm to this value (default: no clipping)"
    )
    g.add_argument(
        "--schedule", choices=("none", "cosine"), default="none", help="learning-rate schedule (default none)"
    )
    g.add_argument(
        "--patience",
        type=positive_int,
        default=None,
        help="early stopping after this many epochs without a better validation metric",
    )
    g.add_argument("--seed", type=int, default=0, help="seed for the model, the data order and dropout (default 0)")
    g.add_argument(
        "--device",
        default="auto",
        help="auto, cpu or cuda (default auto: cuda when available; under torchrun cuda:LOCAL_RANK)",
    )
    g.add_argument(
        "--amp",
        choices=("none", "bf16"),
        default="none",
        help="mixed precision: bf16 autocast on cpu/cuda (default none)",
    )
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
    kinds = [k.strip() for k in args.pretrain_kinds.split(",") if k.strip()] if args.pretrain_kinds else None
    return TrainJob(
        task=args.task,
        task_options=options,
        cell=args.cell,
        layers=args.layers,
        width=args.width,
        embedding=args.embedding,
        dropout=args.dropout,
        dtype=args.dtype,
        init=args.init,
        init_options=parse_init_options(args.init_opt),
        pretrain=args.pretrain,
        pretrain_kinds=kinds,
        pretrain_steps=args.pretrain_steps,
        pretrain_seconds=args.pretrain_seconds,
        pretrain_tol=args.pretrain_tol,
        pretrain_rescale=args.pretrain_rescale,
        pretrain_shuffle=args.pretrain_shuffle,
        pretrain_optimizer=args.pretrain_optimizer,
        pretrain_decoder=args.pretrain_decoder,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        clip=args.clip,
        schedule=None if args.schedule == "none" else args.schedule,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        amp=None if args.amp == "none" else args.amp,
    )


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args)
    main = is_main()  # under torchrun only rank 0 writes and prints
    quiet = args.quiet or args.json or not main
    say = (lambda _: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))

    def on_epoch(row: dict[str, object]) -> None:
        if not quiet and not sys.stderr.isatty():  # no progress bar: one line per epoch
            key = next(k for k in row if k.startswith("val_") and k != "val_loss")
            say(
                f"epoch {row['epoch']}/{args.epochs}: train loss {row['train_loss']:.4f}, {key} {row[key]:.4f} "
                f"({row['seconds']:.1f} s)"
            )

    done = run_job(job, args.out, force=args.force, progress=False if quiet else None, say=say, on_epoch=on_epoch)
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
