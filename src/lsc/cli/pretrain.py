"""``lsc pretrain``: build a model, pre-train it to the Local Stability Condition, write the run."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checks import generator_seed
from ..condition import measure
from ..distributed import is_main
from ..files import write_atomic
from ..job import FILES
from ..models.io import save
from ..pretraining import CHECKPOINT, PretrainConfig, copy_task_inputs, history_jsonl, part_directories, pretrain
from ..rundir import hold_directory, refuse_other_run, remove_run_files
from ..settings import unspelt
from ..train import CHECKPOINT as TRAIN_CHECKPOINT
from ..train import CONFIG
from .options import (
    DTYPES,
    Inputs,
    batches,
    build_model,
    model_options,
    parse_kinds,
    parse_target,
    positive_float,
    positive_int,
    setting_option,
    user_call,
)


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pre-train a model so every local Jacobian's radius sits at a target",
        description="Build a model, pre-train it to the Local Stability Condition (every local "
        "Jacobian's spectral radius at --target) and print the before/after tables. With --out, "
        "write DIR/pretrained.pt (load with lsc.load), DIR/history.jsonl, DIR/report.json and a "
        "checkpoint: an interrupted run continues when the same command runs again.",
    )
    model_options(p)
    g = p.add_argument_group("pre-training")
    setting_option(g, PretrainConfig, "target", "--target", type=parse_target)
    g.add_argument(
        "--data",
        choices=("gaussian", "copy"),
        default="gaussian",
        help="input: Gaussian noise or copy-task sequences (default gaussian)",
    )
    setting_option(g, PretrainConfig, "kinds", "--kinds", type=parse_kinds)
    setting_option(g, PretrainConfig, "tol", "--tol", type=float)
    setting_option(g, PretrainConfig, "patience", "--patience", type=positive_int)
    setting_option(g, PretrainConfig, "max_steps", "--max-steps", type=positive_int)
    setting_option(g, PretrainConfig, "max_seconds", "--max-seconds", type=positive_float)
    setting_option(g, PretrainConfig, "optimizer", "--optimizer")
    setting_option(g, PretrainConfig, "lr", "--lr", type=positive_float)
    setting_option(g, PretrainConfig, "time_points", "--time-points", type=positive_int)
    setting_option(
        g,
        PretrainConfig,
        "estimator",
        "--method",
        closed=True,
        dest="method",
        default=PretrainConfig().edge_estimator.method,
    )
    setting_option(g, PretrainConfig, "rescale", "--rescale", closed=True)
    setting_option(g, PretrainConfig, "shuffle", "--shuffle", type=float)
    g.add_argument(
        "--out", default=None, help="directory for pretrained.pt, history.jsonl, report.json and the checkpoint"
    )
    g.add_argument("--force", action="store_true", help="start afresh: delete the run files lsc wrote in --out first")
    g.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


PRETRAIN_FILES = (CHECKPOINT, "pretrained.pt", "history.jsonl", "report.json")
TRAIN_RUN_FILES = tuple(name for name in FILES if name not in (TRAIN_CHECKPOINT, CONFIG))
"""The files that mark a directory as ``lsc train``'s (its ``checkpoint.pt`` shares the name of
ours; a ``config.json`` may be anyone's)."""
MODEL_SETTINGS = {"batch_size": "batch", "time_steps": "time", "seed": "seed"}
"""Settings that the model's options give (``--batch``, ``--time``, ``--seed``)."""


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    """The :class:`~lsc.pretraining.PretrainConfig` the options describe."""
    given = {
        name: getattr(args, name)
        for name in (
            "target",
            "kinds",
            "tol",
            "patience",
            "max_steps",
            "max_seconds",
            "optimizer",
            "lr",
            "time_points",
            "shuffle",
        )
    }
    given.update({name: getattr(args, option) for name, option in MODEL_SETTINGS.items()})
    given.update(estimator=args.method, rescale=unspelt(args.rescale))
    return PretrainConfig(**given)


def run(args: argparse.Namespace) -> int:
    model, x = build_model(args)
    out = Path(args.out) if args.out else None
    with hold_directory(out if is_main() else None):  # one run per --out, found writable before any work
        if out is not None:
            refuse_other_run(out, TRAIN_RUN_FILES, "lsc train", "lsc pretrain")
        if out is not None and args.force:
            remove_run_files(out, [*PRETRAIN_FILES, *(p.name for p in part_directories(out))])
        return _pretrain_held(args, out, model, x)


def _pretrain_held(args: argparse.Namespace, out: Path | None, model: nn.Module, x: Inputs) -> int:
    """Measure, pre-train and write, with ``out`` held by this process."""
    data: torch.Tensor | list[object] | None = None
    if args.model is not None:  # the user's model: pre-trained on its own --inputs
        if args.data != "gaussian":
            raise ValueError("--data copy makes inputs for lsc's own models; with --model, --inputs is the data")
        data = batches(x, args.batch)
        probe: object = data[0] if isinstance(data, list) else data[: args.batch]
    elif args.data == "copy":
        if args.cell == "ffn":
            raise ValueError("--data copy makes sequences; use --data gaussian for an ffn")
        gen = torch.Generator().manual_seed(generator_seed(args.seed))
        data = copy_task_inputs(args.batch * 16, args.time, args.input_size, generator=gen)
        data = data.to(device=args.device, dtype=DTYPES[args.dtype])
        probe = data[: args.batch]
    else:
        probe = x
    call = user_call(args) if args.model is not None else {}
    before = measure(model, probe, target=args.target, kinds=args.kinds, seed=args.seed, **call)
    if out is not None and (out / CHECKPOINT).exists() and not args.json:
        print(f"resuming from {out / CHECKPOINT}", file=sys.stderr)
    cli = {
        k: getattr(args, k)
        for k in (
            "cell",
            "layers",
            "width",
            "input_size",
            "output_size",
            "nonlinearity",
            "activation",
            "dtype",
            "init",
            "init_opt",
            "data",
            "model",
            "checkpoint",
            "inputs",
            "input_key",
            "forward",
        )
    }
    result = pretrain(
        model,
        data,
        config_from_args(args),
        checkpoint=out,
        progress=False if args.quiet or args.json else None,
        extra={"cli": cli},
        **call,
    )
    if not is_main():  # under torchrun: rank 0 writes and prints
        return 130 if result.stopped == "interrupted" else 0
    if out is not None and args.model is not None:  # your model: its own state_dict, as --checkpoint reads it
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        write_atomic(out / "pretrained.pt", buffer.getvalue())
    elif out is not None:
        save(model, out / "pretrained.pt", pretrain=result.summary())
    if out is not None:
        write_atomic(out / "history.jsonl", history_jsonl(result.history))
        if result.report is not None:
            write_atomic(out / "report.json", json.dumps(result.report.to_dict(), indent=2))
    if result.stopped == "interrupted":
        print(f"interrupted after {result.steps} steps; run the same command again to resume", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps({"before": before.to_dict(), "result": result.summary()}, indent=2))
        return 0
    print("before pre-training:\n" + before.table(target=result.target, tol=args.tol))
    print(f"\n{result.stopped} after {result.steps} steps in {result.seconds:.1f} s: {result.message}\n")
    if result.report is not None:
        print("after pre-training:\n" + result.report.table(tol=args.tol))
    if out is not None:
        print(
            f"\nwrote {out / 'pretrained.pt'}, {out / 'history.jsonl'}"
            + (f", {out / 'report.json'}" if result.report else "")
        )
    return 0
