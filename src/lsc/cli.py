"""The ``lsc`` command line: ``lsc measure``, ``lsc pretrain``, ``lsc init`` (more subcommands arrive with their issues)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .checks import NonFiniteError
from .condition import DEFAULT_TOL, Target, measure
from .grid import DEFAULT_TIME_POINTS, KINDS
from .jacobian import DEFAULT_PROBES, DEFAULT_STEPS, METHODS, QUANTITIES
from .batches import copy_task_inputs
from .models import FFN, StackedRNN, cell_names
from .files import hold_directory, remove_run_files, write_atomic
from .models.io import save
from .pretrain import CHECKPOINT, history_jsonl, pretrain
from .cli_analyze import add_commands as add_analyze_commands
from .cli_experiment import add_commands as add_experiment_commands
from .cli_train import add_commands as add_train_commands

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def parse_target(text: str) -> Target:
    """``0.5`` | ``auto`` | ``unbalanced`` | ``time=0.5,depth=0.5,decoder=1``."""
    text = text.strip()
    if text in ("auto", "unbalanced"):
        return text
    if "=" in text:
        out: dict[str, float] = {}
        for part in text.split(","):
            kind, _, value = part.partition("=")
            try:
                out[kind.strip()] = float(value)
            except ValueError:
                raise argparse.ArgumentTypeError(f"bad target entry {part!r}: expected kind=number") from None
        return out
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad target {text!r}: use a number, auto, unbalanced or kind=value pairs"
        ) from None


def parse_time_points(text: str) -> int | list[int] | str:
    """``8`` (a count) | ``all`` | ``0,10,49`` (step indices)."""
    if text == "all":
        return text
    try:
        return [int(t) for t in text.split(",")] if "," in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad time points {text!r}: a count, 'all' or comma-separated steps") from None


def parse_kinds(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def natural_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (built fresh with --seed, on Gaussian input)")
    g.add_argument("--cell", default="lstm", help=f"cell kind: {', '.join(cell_names())}, or ffn (default lstm)")
    g.add_argument("--layers", type=int, default=3, help="number of stacked layers (default 3)")
    g.add_argument("--width", type=int, default=64, help="hidden width of every layer (default 64)")
    g.add_argument("--input-size", type=int, default=8, help="input features per step (default 8)")
    g.add_argument("--output-size", type=int, default=10, help="linear readout size; 0 for none (default 10)")
    g.add_argument("--nonlinearity", default=None, help="Elman nonlinearity: tanh, relu, sigmoid, silu, identity")
    g.add_argument("--activation", default="relu", help="ffn activation: relu, tanh, sin, cos, ... (default relu)")
    g.add_argument("--time", type=positive_int, default=50, help="sequence length T (default 50; ffn: 1)")
    g.add_argument("--batch", type=positive_int, default=32, help="batch size (default 32)")
    g.add_argument("--seed", type=int, default=0, help="seed for the model, the input and the estimators (default 0)")
    g.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="parameter dtype (default float32)")
    g.add_argument("--device", default="cpu", help="torch device: cpu, cuda or auto (default cpu; under torchrun cuda is cuda:LOCAL_RANK)")
    _init_options(g)


def _init_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--init", default=None, metavar="NAME", help="initialise the model with a named init (see lsc init --list)")
    g.add_argument(
        "--init-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the init, e.g. gain=0.5 (repeatable); seq_len/t_max default to --time",
    )


def parse_init_options(pairs: Sequence[str]) -> dict[str, object]:
    """``["gain=0.5", "distribution=normal"]`` -> {"gain": 0.5, "distribution": "normal"}."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"bad --init-opt {pair!r}: expected KEY=VALUE")
        value: object = text
        for convert in (int, float):
            try:
                value = convert(text)
                break
            except ValueError:
                pass
        out[key.strip()] = value
    return out


def apply_init(model: nn.Module, name: str | None, options: dict[str, object], time_steps: int, seed: int) -> object:
    """Apply ``--init NAME`` with its options; the horizon of chrono/critical defaults to ``time_steps``.
    Returns what the init returned (a :class:`lsc.init.CriticalInit` for ``critical``)."""
    if name is None:
        if options:
            raise ValueError("--init-opt given without --init")
        return None
    from .init import registry

    options = dict(options)
    takes = registry.options(name)
    for horizon in ("seq_len", "t_max"):
        if horizon in takes and horizon not in options:
            options[horizon] = time_steps
    return registry.run(model, name, seed=seed, **options)[1]


def _measure_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("measurement")
    g.add_argument("--method", choices=METHODS, default="auto", help="auto (dense for small Jacobians), dense, arnoldi, power")
    g.add_argument("--quantity", choices=QUANTITIES, default="radius", help="radius (default), norm or rms singular value")
    g.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS, help=f"Krylov/power steps (default {DEFAULT_STEPS})")
    g.add_argument("--probes", type=positive_int, default=DEFAULT_PROBES, help=f"Hutchinson probes for rms (default {DEFAULT_PROBES})")
    g.add_argument(
        "--time-points",
        type=parse_time_points,
        default=DEFAULT_TIME_POINTS,
        help=f"steps measured: a count (evenly spaced), 'all' or e.g. 0,10,49 (default {DEFAULT_TIME_POINTS})",
    )
    g.add_argument("--kinds", type=parse_kinds, default=None, help=f"edge kinds, comma-separated from {','.join(KINDS)} (default all)")
    g.add_argument(
        "--target",
        type=parse_target,
        default="auto",
        help="LSC target: a number, auto (0.5 for deep RNNs, else 1), unbalanced, or kind=value,... (default auto)",
    )
    g.add_argument("--tol", type=float, default=DEFAULT_TOL, help=f"tolerance for the LSC verdict (default {DEFAULT_TOL})")
    g.add_argument("--json", action="store_true", help="print the report as JSON (exactly report.to_dict())")
    g.add_argument("--check", action="store_true", help="exit with status 1 when the LSC does not hold")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsc",
        description="Measure (and make) the Local Stability Condition of deep and recurrent networks: "
        "the spectral radius of every local Jacobian across time and depth.",
    )
    parser.add_argument("--version", action="version", version=f"lsc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    m = sub.add_parser(
        "measure",
        help="measure the radius of every local Jacobian of a model",
        description="Build a stacked recurrent model, run it on Gaussian input and print the "
        "spectral radius (or norm) of every local Jacobian: time, depth, encoder and decoder edges.",
    )
    _model_options(m)
    _measure_options(m)
    m.set_defaults(run=run_measure)

    i = sub.add_parser(
        "init",
        help="list the named initialisations",
        description="List the named initialisations (use one with --init NAME on measure, pretrain or train).",
    )
    i.add_argument("--list", action="store_true", help="list the inits with their source paper (the default)")
    i.set_defaults(run=run_init)

    p = sub.add_parser(
        "pretrain",
        help="pre-train a model so every local Jacobian's radius sits at a target",
        description="Build a model, pre-train it to the Local Stability Condition (every local "
        "Jacobian's spectral radius at --target) and print the before/after tables. With --out, "
        "write DIR/pretrained.pt (load with lsc.load), DIR/history.jsonl, DIR/report.json and a "
        "checkpoint: an interrupted run continues when the same command runs again.",
    )
    _model_options(p)
    g = p.add_argument_group("pre-training")
    g.add_argument("--target", type=parse_target, default="auto", help="a number, auto (0.5 for deep RNNs, else 1), unbalanced, or kind=value,...")
    g.add_argument("--data", choices=("gaussian", "copy"), default="gaussian", help="input: Gaussian noise or copy-task sequences (default gaussian)")
    g.add_argument("--kinds", type=parse_kinds, default=None, help="edge kinds to pre-train (default encoder,time,depth; add decoder)")
    g.add_argument("--tol", type=float, default=0.02, help="converged when every edge is this close to target (default 0.02)")
    g.add_argument("--patience", type=positive_int, default=5, help="...for this many consecutive steps (default 5)")
    g.add_argument("--max-steps", type=positive_int, default=1000, help="step budget (default 1000)")
    g.add_argument("--max-seconds", type=positive_float, default=None, help="time budget in seconds (default none)")
    g.add_argument("--optimizer", default="adam", help="adam, adamw, sgd or rmsprop (default adam)")
    g.add_argument("--lr", type=positive_float, default=1e-2, help="learning rate (default 1e-2)")
    g.add_argument("--time-points", type=positive_int, default=1, help="random time points per step (default 1)")
    g.add_argument("--method", choices=METHODS, default="arnoldi", help="radius estimator (default arnoldi)")
    g.add_argument("--rescale", action="store_true", help="the reference code's weight rescaling towards target (off by default)")
    g.add_argument("--shuffle", type=float, default=0.0, help="probability per step of the reference's weight shuffling (default 0)")
    g.add_argument("--out", default=None, help="directory for pretrained.pt, history.jsonl, report.json and the checkpoint")
    g.add_argument("--force", action="store_true", help="start afresh: delete the run files lsc wrote in --out first")
    g.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_pretrain)
    add_train_commands(sub)  # lsc tasks, lsc train (cli_train.py)
    add_analyze_commands(sub)  # lsc analyze grid|lyapunov|smoothness|attractors (cli_analyze.py)
    add_experiment_commands(sub)  # lsc experiment list|run|report (cli_experiment.py)
    return parser


def build_model(args: argparse.Namespace) -> tuple[nn.Module, torch.Tensor]:
    """The model and Gaussian input the CLI uses: seeded, so runs are reproducible."""
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise ValueError(f"unknown device {args.device!r}; use e.g. cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but this torch has no CUDA device; use --device cpu")
    torch.manual_seed(args.seed)
    dtype = DTYPES[args.dtype]
    if args.cell == "ffn":
        model: nn.Module = FFN(args.layers, args.width, args.activation, args.input_size, args.output_size or None)
        model = model.to(device=args.device, dtype=dtype)
        apply_init(model, args.init, parse_init_options(args.init_opt), 1, args.seed)
        return model, torch.randn(args.batch, args.input_size, dtype=dtype, device=args.device)
    options = {} if args.nonlinearity is None else {"nonlinearity": args.nonlinearity}
    model = StackedRNN(
        args.cell,
        input_size=args.input_size,
        hidden_size=args.width,
        num_layers=args.layers,
        output_size=args.output_size or None,
        dtype=dtype,
        device=args.device,
        **options,
    )
    apply_init(model, args.init, parse_init_options(args.init_opt), args.time, args.seed)
    x = torch.randn(args.batch, args.time, args.input_size, dtype=dtype, device=args.device)
    return model, x


def run_init(args: argparse.Namespace) -> int:
    from .init import available

    for info in available().values():
        print(info)
    return 0


def run_measure(args: argparse.Namespace) -> int:
    model, x = build_model(args)
    report = measure(
        model,
        x,
        kinds=args.kinds,
        target=args.target,
        method=args.method,
        quantity=args.quantity,
        steps=args.steps,
        probes=args.probes,
        time_points=args.time_points,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.table(tol=args.tol))
    return 1 if args.check and not report.satisfies(tol=args.tol) else 0


PRETRAIN_FILES = (CHECKPOINT, "pretrained.pt", "history.jsonl", "report.json")


def run_pretrain(args: argparse.Namespace) -> int:
    from .distributed import is_main

    model, x = build_model(args)
    out = Path(args.out) if args.out else None
    with hold_directory(out if is_main() else None):  # one run per --out, found writable before any work
        if out is not None and args.force:
            remove_run_files(out, PRETRAIN_FILES)
        return _pretrain_held(args, out, model, x)


def _pretrain_held(args: argparse.Namespace, out: Path | None, model: nn.Module, x: torch.Tensor) -> int:
    """Measure, pre-train and write, with ``out`` held by this process."""
    data = None
    if args.data == "copy":
        if args.cell == "ffn":
            raise ValueError("--data copy makes sequences; use --data gaussian for an ffn")
        gen = torch.Generator().manual_seed(args.seed)
        data = copy_task_inputs(args.batch * 16, args.time, args.input_size, generator=gen)
        data = data.to(device=args.device, dtype=DTYPES[args.dtype])
        x = data[: args.batch]
    before = measure(model, x, target=args.target, kinds=args.kinds, seed=args.seed)
    if out is not None and (out / CHECKPOINT).exists() and not args.json:
        print(f"resuming from {out / CHECKPOINT}", file=sys.stderr)
    cli = {k: getattr(args, k) for k in ("cell", "layers", "width", "input_size", "output_size", "nonlinearity",
                                         "activation", "dtype", "init", "init_opt", "data")}
    result = pretrain(
        model,
        data,
        target=args.target,
        kinds=args.kinds,
        tol=args.tol,
        patience=args.patience,
        max_steps=args.max_steps,
        max_seconds=args.max_seconds,
        optimizer=args.optimizer,
        lr=args.lr,
        batch_size=args.batch,
        time_steps=args.time,
        time_points=args.time_points,
        method=args.method,
        seed=args.seed,
        rescale=args.rescale,
        shuffle=args.shuffle,
        checkpoint=out,
        progress=False if args.quiet or args.json else None,
        config={"cli": cli},
    )
    from .distributed import is_main

    if not is_main():  # under torchrun: rank 0 writes and prints
        return 130 if result.stopped == "interrupted" else 0
    if out is not None:
        save(model, out / "pretrained.pt", pretrain=result.summary())
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
        print(f"\nwrote {out / 'pretrained.pt'}, {out / 'history.jsonl'}" + (f", {out / 'report.json'}" if result.report else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from . import distributed

    try:
        spec = getattr(args, "device", None)
        if spec is not None and (distributed.launched() or spec == "auto"):
            # under torchrun: join the process group; cuda means cuda:LOCAL_RANK
            args.device = str(distributed.setup(spec))
        elif spec is not None:
            args.device = str(distributed.select_device(spec))  # a bad name is one clear line, not a traceback
        return int(args.run(args))
    except distributed.DistributedError as exc:
        print(f"lsc {args.command}: distributed run failed: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, NonFiniteError) as exc:
        print(f"lsc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lsc ... | head`: the reader left; not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (no second traceback at exit flush)
        return 0
    finally:
        distributed.teardown()


if __name__ == "__main__":
    raise SystemExit(main())
