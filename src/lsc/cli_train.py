"""``lsc tasks`` and ``lsc train``: the task list and task training from the command line.

Kept apart from :mod:`lsc.cli` (which registers them with :func:`add_commands`) so the
measuring and pre-training commands stay as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from . import tasks as task_registry
from .models import cell_names
from .pretrain import history_jsonl, pretrain
from .files import hold_directory, remove_run_files, write_atomic
from .train import BEST, CHECKPOINT, CONFIG, METRICS, OPTIMIZERS, RESULT, check_compatible, train

PRETRAIN_DIR = "pretrain"


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as int, float, true/false/none or a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"bad task option {text!r}: expected key=value, e.g. delay=20")
    value: object = raw.strip()
    low = raw.strip().lower()
    if low in ("true", "false"):
        value = low == "true"
    elif low == "none":
        value = None
    else:
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                pass
    return key.strip().replace("-", "_"), value


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``tasks`` and ``train`` on the ``lsc`` sub-command parser."""
    from .cli import _init_options, positive_float, positive_int  # the same parsing as measure and pretrain

    t = sub.add_parser(
        "tasks",
        help="list the tasks lsc can train on, their shapes and where their data comes from",
        description="List every task: input and output shapes, metric, and where its data is read from now "
        "(files are looked for in the path option, $LSC_DATA/<folder> and system folders; nothing is downloaded).",
    )
    t.add_argument("--json", action="store_true", help="print the list as JSON (with each task's options)")
    t.set_defaults(run=run_tasks)

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
    g.add_argument("--task-option", "-o", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                   help="a task option, repeatable, e.g. -o delay=20 -o layout=reference (see `lsc tasks --json`)")
    g.add_argument("--time-repeat", type=positive_int, default=None, help="repeat every step this many times (the reference uses 2)")
    g = p.add_argument_group("model")
    g.add_argument("--cell", default="gru", help=f"cell kind: {', '.join(cell_names())} (default gru)")
    g.add_argument("--layers", type=positive_int, default=2, help="stacked layers (default 2)")
    g.add_argument("--width", type=positive_int, default=128, help="hidden width of every layer (default 128)")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="parameter dtype (default float32)")
    g.add_argument("--embedding", type=positive_int, default=None, help="embedding size for token tasks (default: --width)")
    g.add_argument("--dropout", type=float, default=0.0, help="dropout between layers (default 0)")
    _init_options(g)
    g = p.add_argument_group("pre-training (before training)")
    g.add_argument("--pretrain", default=None, metavar="TARGET",
                   help="pre-train to the LSC first: 0.5, 1, unbalanced, auto or kind=value,... (default: no pre-training)")
    g.add_argument("--pretrain-kinds", default=None, help="edge kinds to pre-train (default encoder,time,depth)")
    g.add_argument("--pretrain-steps", type=positive_int, default=1000, help="pre-training step budget (default 1000)")
    g.add_argument("--pretrain-seconds", type=positive_float, default=300.0, help="pre-training time budget in s (default 300)")
    g.add_argument("--pretrain-tol", type=float, default=0.02, help="pre-training tolerance (default 0.02)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=5, help="epochs (default 5)")
    g.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default 1e-3)")
    g.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default 64)")
    g.add_argument("--optimizer", default="adam", help=f"{', '.join(OPTIMIZERS)} (default adam)")
    g.add_argument("--weight-decay", type=float, default=0.0, help="weight decay (default 0)")
    g.add_argument("--clip", type=float, default=None, help="clip the gradient norm to this value (default: no clipping)")
    g.add_argument("--schedule", choices=("none", "cosine"), default="none", help="learning-rate schedule (default none)")
    g.add_argument("--patience", type=positive_int, default=None, help="early stopping after this many epochs without a better validation metric")
    g.add_argument("--seed", type=int, default=0, help="seed for the model, the data order and dropout (default 0)")
    g.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto: cuda when available; under torchrun cuda:LOCAL_RANK)")
    g.add_argument("--amp", choices=("none", "bf16"), default="none", help="mixed precision: bf16 autocast on cpu/cuda (default none)")
    g.add_argument("--out", default=None, help="directory for metrics, config, best checkpoint and resuming")
    g.add_argument("--force", action="store_true", help="start afresh: delete the run files lsc wrote in --out first")
    g.add_argument("--json", action="store_true", help="print the result as JSON")
    g.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run_train)


def run_tasks(args: argparse.Namespace) -> int:
    rows = []
    for name in task_registry.available():
        entry = task_registry.info(name)
        rows.append({
            "name": name, "summary": entry.summary, "input": entry.input, "output": entry.output,
            "metric": entry.metric, "data": entry.data(), "options": task_registry.options(name),
        })
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    cols = ("name", "input", "output", "metric", "data")
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols[:-1]}
    print("  ".join(c.ljust(width[c]) for c in cols[:-1]) + "  data")
    for r in rows:
        print("  ".join(str(r[c]).ljust(width[c]) for c in cols[:-1]) + f"  {r['data']}")
    print(f"\nData directory: ${task_registry.ENV}/<folder> or --data. Options: `lsc tasks --json`, set with -o key=value.")
    return 0


def _parse_pretrain_target(text: str):  # type: ignore[no-untyped-def]
    from .cli import parse_target  # the same syntax as `lsc pretrain --target`

    try:
        return parse_target(text)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"--pretrain: {exc}") from None


TRAIN_FILES = (CONFIG, METRICS, BEST, CHECKPOINT, RESULT, "pretrain.json", "pretrain_history.jsonl", PRETRAIN_DIR)


def run_train(args: argparse.Namespace) -> int:
    options = dict(args.task_option)
    if args.data is not None:
        options["path"] = args.data
    if args.time_repeat is not None:
        options["time_repeat"] = args.time_repeat
    target = _parse_pretrain_target(args.pretrain) if args.pretrain is not None else None
    kinds = [k.strip() for k in args.pretrain_kinds.split(",") if k.strip()] if args.pretrain_kinds else None
    task = task_registry.get(args.task, **options)
    torch.manual_seed(args.seed)
    model = task.model(args.cell, args.layers, args.width, embedding=args.embedding, dropout=args.dropout)
    model = model.to(device=args.device, dtype=getattr(torch, args.dtype))
    from .cli import apply_init, parse_init_options  # lazily: cli imports this module

    init_options = parse_init_options(args.init_opt)
    apply_init(model, args.init, init_options, task.steps, args.seed)  # chrono/critical horizon: the task's steps
    check_compatible(model, task)  # before anything is written
    from .distributed import is_main

    out = Path(args.out) if args.out else None
    with hold_directory(out if is_main() else None):  # one run per --out, found writable before any work
        if out is not None and args.force:
            remove_run_files(out, TRAIN_FILES)
        return _train_held(args, out, task, model, options, init_options, target, kinds)


def _train_held(  # type: ignore[no-untyped-def]
    args: argparse.Namespace, out: Path | None, task, model, options, init_options, target, kinds
) -> int:
    """Pre-train (when asked) and train, with ``out`` held by this process."""
    from .distributed import is_main

    main = is_main()  # under torchrun only rank 0 writes and prints
    quiet = args.quiet or args.json or not main
    say = (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    resuming = out is not None and (out / CHECKPOINT).exists()
    cli_config = {
        "cli": {"task_options": options, "cell": args.cell, "layers": args.layers, "width": args.width,
                "embedding": args.embedding, "dropout": args.dropout, "dtype": args.dtype, "init": args.init,
                "init_options": init_options, "pretrain": args.pretrain, "pretrain_kinds": kinds,
                "pretrain_steps": args.pretrain_steps, "pretrain_seconds": args.pretrain_seconds,
                "pretrain_tol": args.pretrain_tol}
    }

    # what must match for an interrupted pre-training to resume: all but the budgets, training settings too
    # (so a changed --lr is refused now, not after the pre-training it would have resumed)
    budgets = ("pretrain_steps", "pretrain_seconds")
    resume_config = {
        "cli": {k: v for k, v in cli_config["cli"].items() if k not in budgets},
        "train": {"lr": args.lr, "batch_size": args.batch_size, "optimizer": args.optimizer,
                  "weight_decay": args.weight_decay, "clip": args.clip, "schedule": args.schedule},
    }
    pre_summary = None
    if target is not None and not resuming:  # a resumed training run already holds the pre-trained weights
        say(f"pre-training to {args.pretrain} ...")
        pre = pretrain(
            model, task.inputs(32, seed=args.seed), target=target, kinds=kinds, tol=args.pretrain_tol,
            max_steps=args.pretrain_steps, max_seconds=args.pretrain_seconds, seed=args.seed,
            checkpoint=None if out is None else out / PRETRAIN_DIR, progress=False if quiet else None,
            config=resume_config,
        )
        if pre.stopped == "interrupted":
            say("interrupted during pre-training; run the same command again to resume")
            return 130
        pre_summary = pre.summary()
        say(f"pre-training {pre.stopped} after {pre.steps} steps in {pre.seconds:.1f} s: {pre.message}")
        if pre.report is not None and not quiet:
            print(pre.report.table(), file=sys.stderr)
        if out is not None and main:
            out.mkdir(parents=True, exist_ok=True)
            write_atomic(out / "pretrain.json", json.dumps(pre_summary, indent=2, default=str) + "\n")
            write_atomic(out / "pretrain_history.jsonl", history_jsonl(pre.history))

    def on_epoch(row: dict[str, object]) -> None:
        if not quiet and not sys.stderr.isatty():  # no progress bar: one line per epoch
            metric = f"val_{task.metric}"
            say(f"epoch {row['epoch']}/{args.epochs}: train loss {row['train_loss']:.4f}, {metric} {row[metric]:.4f} ({row['seconds']:.1f} s)")

    if resuming:
        say(f"resuming from {out / CHECKPOINT}")
    result = train(
        model, task, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, optimizer=args.optimizer,
        weight_decay=args.weight_decay, clip=args.clip, schedule=None if args.schedule == "none" else args.schedule,
        patience=args.patience, seed=args.seed, out=out, progress=False if quiet else None, callback=on_epoch,
        config=cli_config, amp=None if args.amp == "none" else args.amp,
    )
    if result.stopped == "interrupted":
        print(result.message, file=sys.stderr)
        return 130
    if not main:
        return 0
    if args.json:
        print(json.dumps({"result": result.summary(), "pretrain": pre_summary}, indent=2, default=str))
        return 0
    label = f"{args.task} · {args.cell} {args.layers}x{args.width}" + (f" · LSC {args.pretrain}" if args.pretrain else "")
    if result.stopped == "diverged":
        print(f"{label}: diverged: {result.message}", file=sys.stderr)
    print(f"{label}: {result.line()}")
    return 0
