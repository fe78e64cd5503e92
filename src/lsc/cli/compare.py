"""``lsc compare``: paired pilot runs of several inits on the user's own model (:func:`lsc.compare`).

Prints the table and the paragraph, and writes ``comparison.json`` and ``comparison.png``
into ``--out``, where the runs are also recorded and resumed.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .options import parse_input_key, parse_option, user_factory

LOSSES = ("cross_entropy", "mse")


def _target(item: object) -> torch.Tensor:
    if isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[1], torch.Tensor):
        return item[1]
    raise ValueError(
        "the built-in losses read the target as item[1] of (inputs, targets) batches; "
        "pass --loss module:function for other data"
    )


def cross_entropy(output: torch.Tensor, item: object) -> torch.Tensor:
    """Cross-entropy of logits (..., classes) against integer targets item[1] (...)."""
    return nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), _target(item).reshape(-1))


def mse(output: torch.Tensor, item: object) -> torch.Tensor:
    """Mean squared error against item[1]."""
    return nn.functional.mse_loss(output, _target(item))


def load(spec: str, flag: str) -> Callable[..., Any]:
    """``package.module:function`` -> the callable (:func:`.options.user_factory`)."""
    return user_factory(spec, flag, "FUNCTION")


def parse_inits(text: str) -> list[object]:
    """``default,0.5,1,critical`` -> ['default', 0.5, 1.0, 'critical']."""
    out: list[object] = []
    for entry in (e.strip() for e in text.split(",")):
        try:
            out.append(float(entry))
        except ValueError:
            out.append(entry)
    return out


def _model_factory(factory: Callable[..., nn.Module]) -> Callable[[int], nn.Module]:
    """``factory(seed)`` when it takes an argument, else ``factory()`` (the seed is set globally anyway)."""
    try:
        takes = any(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
            for p in inspect.signature(factory).parameters.values()
        )
    except (TypeError, ValueError):
        takes = False
    return (lambda seed: factory(seed)) if takes else (lambda seed: factory())


def add_command(sub: Any) -> None:
    c = sub.add_parser(
        "compare",
        help="does pre-training help my model? paired runs of several inits on your own model and data",
        description="Train your model from several inits (the first is the reference) for --steps steps over "
        "--seeds seeds, each seed from the same weights and batches, and compare the final evaluation losses "
        "by the paired 95% t-interval of the experiments. Prints the table and a paragraph; writes "
        "comparison.json and comparison.png into --out, where runs are recorded and resumed.",
    )
    c.add_argument(
        "--model", required=True, help="MODULE:FACTORY building your model (called with the seed if it takes one)"
    )
    c.add_argument(
        "--data",
        required=True,
        help="MODULE:FUNCTION returning the training data: a DataLoader, a list of batches, a tensor "
        "or a tuple of tensors (samples along dim 0)",
    )
    c.add_argument(
        "--eval-data", help="MODULE:FUNCTION returning held-out data, as --data (default: fixed batches of --data)"
    )
    c.add_argument("--forward", help="MODULE:FUNCTION forward(model, item) -> output (default: model(item[0]))")
    c.add_argument(
        "--input-key",
        type=parse_input_key,
        default=0,
        metavar="KEY[,KEY...]",
        help="which elements of an item the model is called with, e.g. 0,1 for forward(x, lengths) (default 0)",
    )
    c.add_argument(
        "--loss",
        default="cross_entropy",
        help="cross_entropy | mse (against item[1]) | MODULE:FUNCTION loss(output, item) (default: %(default)s)",
    )
    c.add_argument(
        "--inits",
        type=parse_inits,
        default=parse_inits("default,0.5,1"),
        help="comma-separated: default, target radii (0.5, 1), lsc.init names (critical, orthogonal, "
        "chrono, ...); the first is the reference (default: default,0.5,1)",
    )
    c.add_argument("--steps", type=int, default=300, help="training steps per run (default: %(default)s)")
    c.add_argument("--seeds", type=int, default=3, help="seeds 0 .. K-1 (default: %(default)s)")
    c.add_argument("--eval-every", type=int, help="steps between evaluations (default: steps // 10)")
    c.add_argument(
        "--budget",
        choices=("steps", "time"),
        default="steps",
        help="compare after --steps, or at equal wall-clock with the init's time included (default: steps)",
    )
    c.add_argument("--batch-size", type=int, default=32, help="mini-batch of tensor data (default: %(default)s)")
    c.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    c.add_argument("--clip", type=float, help="gradient-norm clipping (default: none)")
    c.add_argument(
        "--pretrain",
        type=parse_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an lsc.pretrain option, repeatable (e.g. --pretrain max_steps=200)",
    )
    c.add_argument("--out", default="runs/compare", help="directory for the runs, JSON and plot (default: %(default)s)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..comparison.runs import compare

    loss: Any = {"cross_entropy": cross_entropy, "mse": mse}.get(args.loss) or load(args.loss, "--loss")
    pretrain = dict(args.pretrain)
    if isinstance(pretrain.get("kinds"), str):
        pretrain["kinds"] = [k.strip() for k in str(pretrain["kinds"]).split(",")]
    lr = args.lr
    result = compare(
        _model_factory(load(args.model, "--model")),
        load(args.data, "--data")(),
        loss=loss,
        inits=args.inits,
        steps=args.steps,
        seeds=args.seeds,
        eval_every=args.eval_every,
        budget=args.budget,
        out=args.out,
        eval_data=None if args.eval_data is None else load(args.eval_data, "--eval-data")(),
        forward=None if args.forward is None else load(args.forward, "--forward"),
        input_key=args.input_key,
        batch_size=args.batch_size,
        clip=args.clip,
        pretrain_options=pretrain,
        optimizer=lambda params: torch.optim.Adam(params, lr=lr),
        progress=False if args.no_progress else None,
    )
    print(result.table())
    print()
    print(result)
    out = Path(args.out)
    print(f"\nwrote {result.to_json(out / 'comparison.json')} and {result.plot(out / 'comparison.png')}")
    return 130 if result.interrupted else 0
