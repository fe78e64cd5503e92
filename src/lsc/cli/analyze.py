"""``lsc analyze grid|lyapunov|smoothness|attractors``: the analyses of :mod:`lsc.analysis`
on a fresh (optionally pre-trained) or saved model, written as PNG + JSON.

"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..checks import generator_seed
from ..files import write_atomic
from ..rundir import prepare_directory
from .options import DTYPES, build_model, model_options, parse_target, positive_float, positive_int


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    model_options(p, user_model=False)
    g = p.add_argument_group("model source and output")
    g.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="analyse a saved model (lsc.save, lsc pretrain --out DIR: DIR/pretrained.pt) instead of a fresh one",
    )
    g.add_argument(
        "--pretrain",
        type=parse_target,
        default=None,
        metavar="TARGET",
        help="pre-train the time and depth edges to this target first (e.g. 0.5 or 1)",
    )
    g.add_argument("--pretrain-steps", type=positive_int, default=200, help="step budget of --pretrain (default 200)")
    g.add_argument(
        "--pretrain-seconds",
        type=positive_float,
        default=None,
        help="an extra time cap on --pretrain in s (default none)",
    )
    g.add_argument("--out", required=True, metavar="DIR", help="directory for the PNG plot and the JSON numbers")


def add_command(sub: Any) -> None:
    """Register ``lsc analyze`` and its four analyses on the ``lsc`` sub-parser set."""
    a = sub.add_parser(
        "analyze",
        help="see gradients: gradient grid, Lyapunov spectrum, loss smoothness, attractors",
        description="Run one analysis of lsc.analysis on a model built from the options (optionally "
        "pre-trained with --pretrain) or loaded with --checkpoint, and write DIR/NAME.png and DIR/NAME.json.",
    )
    asub = a.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")

    p = asub.add_parser(
        "grid",
        help="||d(sum of outputs)/d s^l_t|| for every layer and step",
        description="The gradient grid: ||dE/ds^l_t|| of E = the sum of all outputs, batch mean.",
    )
    _common(p)
    p.set_defaults(run=run_grid)

    p = asub.add_parser(
        "lyapunov",
        help="leading Lyapunov exponents (QR method)",
        description="The leading k Lyapunov exponents along the model's trajectory on Gaussian input.",
    )
    _common(p)
    p.add_argument("--k", type=int, default=16, help="number of exponents (default 16)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps not averaged (default min(100, time/4))")
    p.add_argument(
        "--per-layer", action="store_true", help="each layer's conditional spectrum instead of the whole stack's"
    )
    p.set_defaults(run=run_lyapunov)

    p = asub.add_parser(
        "smoothness",
        help="top Hessian eigenvalue of the loss and a loss slice",
        description="The top Hessian eigenvalue (Lanczos on HVPs) of the MSE between the outputs and "
        "seeded Gaussian targets, a 1-D loss slice, and with --radii a sweep over W_hh's radius.",
    )
    _common(p)
    p.add_argument("--iters", type=int, default=20, help="Lanczos / power steps (default 20)")
    p.add_argument("--method", choices=("lanczos", "power"), default="lanczos", help="eigen solver (default lanczos)")
    p.add_argument("--direction", choices=("random", "ray"), default="random", help="slice direction (default random)")
    p.add_argument("--span", type=float, default=1.0, help="slice offsets in [-span, span] (default 1)")
    p.add_argument("--slice-steps", type=int, default=21, help="points of the slice (default 21)")
    p.add_argument(
        "--radii", type=_floats, default=None, help="also sweep W_hh's spectral radius, e.g. 0.5,0.8,1,1.2,1.5"
    )
    p.set_defaults(run=run_smoothness)

    p = asub.add_parser(
        "attractors",
        help="fixed points and cycles under constant input",
        description="Fixed points and limit cycles reached from random initial states under constant input.",
    )
    _common(p)
    p.add_argument("--n-init", type=int, default=64, help="random initial states per input (default 64)")
    p.add_argument("--steps", type=int, default=1000, help="steps per orbit (default 1000)")
    p.add_argument("--n-inputs", type=int, default=2, help="constant inputs: zero, then Gaussian ones (default 2)")
    p.add_argument(
        "--method",
        choices=("iterate", "newton"),
        default="iterate",
        help="iterate (attractors) or newton (all fixed points)",
    )
    p.add_argument("--max-period", type=int, default=8, help="longest cycle looked for (default 8)")
    p.add_argument(
        "--stable", action="store_true", help="analyse the stabilised (contracting) copy of the model instead"
    )
    p.add_argument("--bound", type=float, default=0.9, help="Lipschitz bound of --stable (default 0.9)")
    p.set_defaults(run=run_attractors)


MODEL_FLAGS = (
    "--cell",
    "--layers",
    "--width",
    "--input-size",
    "--output-size",
    "--nonlinearity",
    "--activation",
    "--dtype",
    "--init",
    "--init-opt",
)
"""Options that build a fresh model: they contradict ``--checkpoint``."""


def _model(args: argparse.Namespace, recurrent: bool = True) -> tuple[nn.Module, torch.Tensor, dict[str, object]]:
    """The model (fresh, loaded or pre-trained) and Gaussian input for it, plus JSON notes."""
    from ..models import as_stack
    from ..models.io import describe, load
    from ..pretraining import pretrain

    notes: dict[str, object] = {}
    if args.checkpoint:
        given = [flag for flag in MODEL_FLAGS if any(a == flag or a.startswith(flag + "=") for a in args.argv)]
        if given:
            raise ValueError(
                f"--checkpoint builds the model saved in the file; {', '.join(given)} would be ignored. "
                "Leave them out to analyse the saved model, or leave out --checkpoint to analyse a fresh one"
            )
        path = Path(args.checkpoint)
        if not path.is_file():
            raise ValueError(
                f"--checkpoint {path} is not a file (expected e.g. DIR/pretrained.pt from lsc pretrain --out)"
            )
        model = load(path).to(args.device)
        stack = as_stack(model)
        torch.manual_seed(generator_seed(args.seed))
        if stack.takes_tokens:
            assert isinstance(stack.encoder, nn.Embedding)  # what takes_tokens means
            vocab = stack.encoder.num_embeddings
            x = torch.randint(0, vocab, (args.batch, args.time), device=args.device)
        else:
            size = stack.input_size
            if size is None:
                raise ValueError("cannot tell the checkpoint's input size; analyse it from Python with lsc.analysis")
            x = torch.randn(args.batch, args.time, size, dtype=stack.dtype, device=args.device)
            if not getattr(model, "batch_first", True):
                x = x.transpose(0, 1)
        notes["checkpoint"] = str(path)
    else:
        if args.cell == "ffn" and recurrent:
            raise ValueError(f"lsc analyze {args.analysis} needs a recurrent model; use a cell such as lstm or gru")
        model, built = build_model(args)
        x = cast(torch.Tensor, built)  # lsc analyze builds lsc's own models: a tensor of inputs
        notes["dtype"] = str(DTYPES[args.dtype]).replace("torch.", "")
    try:
        notes["model"] = describe(model)
    except TypeError:
        notes["model"] = type(model).__name__
    if args.pretrain is not None:
        result = pretrain(
            model,
            None,
            target=args.pretrain,
            kinds=("time", "depth") if as_stack(model).num_layers > 1 else ("time",),
            max_steps=args.pretrain_steps,
            max_seconds=args.pretrain_seconds,
            batch_size=args.batch,
            time_steps=min(args.time, 100),
            seed=args.seed,
            progress=False,
        )
        s = result.summary()
        notes["pretrain"] = {k: s[k] for k in ("converged", "stopped", "steps", "seconds", "best_gap", "target")}
        print(f"pre-trained to {args.pretrain}: {result.stopped} after {result.steps} steps ({result.seconds:.1f} s)")
    return model, x, notes


def _write(args: argparse.Namespace, name: str, data: dict[str, object], plot: Any) -> None:
    out = prepare_directory(args.out)  # a file where the directory should be: one line naming it
    png = plot(out / f"{name}.png")
    write_atomic(out / f"{name}.json", json.dumps(data, indent=2))
    print(f"wrote {png} and {out / f'{name}.json'}")


def run_grid(args: argparse.Namespace) -> int:
    from ..analysis import gradient_grid

    model, x, notes = _model(args, recurrent=False)
    grid = gradient_grid(model, x)
    print(
        f"gradient grid {grid.layers} x {grid.steps}: flatness (max/min over t) layer 0 {grid.flatness(0):.3g}, "
        f"all layers {grid.flatness(None):.3g}"
    )
    _write(args, "grid", {**notes, **grid.to_dict()}, grid.plot)
    return 0


def run_lyapunov(args: argparse.Namespace) -> int:
    from ..analysis import lyapunov_spectrum

    model, x, notes = _model(args)
    warmup = args.warmup if args.warmup is not None else min(100, args.time // 4)
    spec = lyapunov_spectrum(model, x, k=args.k, warmup=warmup, per_layer=args.per_layer, seed=args.seed)
    print(f"Lyapunov exponents ({spec.steps} steps, {spec.seconds:.2f} s): max {spec.max_exponent:+.4f}")
    print("  " + " ".join(f"{v:+.3f}" for v in spec.exponents.reshape(-1)[: 4 * args.k]))
    _write(args, "lyapunov", {**notes, **spec.to_dict()}, spec.plot)
    return 0


def run_smoothness(args: argparse.Namespace) -> int:
    from ..analysis import loss_slice, radius_sweep, smoothness
    from ..grid import prepare

    model, x, notes = _model(args, recurrent=False)
    stack, xb = prepare(model, x)
    with torch.no_grad():
        y = stack.unroll(xb)  # batch-first, as the loss sees the outputs
    assert y is not None  # readout=True: unroll returns the outputs
    gen = torch.Generator().manual_seed(generator_seed(args.seed + 1))
    target = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(device=y.device, dtype=y.dtype)
    opts = {"iters": args.iters, "method": args.method, "seed": args.seed}
    sm = smoothness(model, (x, target), **opts)
    sl = loss_slice(model, (x, target), args.direction, args.slice_steps, span=args.span, seed=args.seed)
    print(
        f"top Hessian eigenvalue beta = {sm.top:.4g} (eigenvalues in [{sm.min_eigenvalue:.3g}, "
        f"{sm.max_eigenvalue:.3g}], loss {sm.loss:.4g}, {sm.parameters} parameters)"
    )
    data: dict[str, object] = {**notes, "loss": "mse to Gaussian targets", **sm.to_dict(), "slice": sl.to_dict()}
    if args.radii:
        sweep = radius_sweep(model, (x, target), args.radii, **opts)
        data["sweep"] = sweep.to_dict()
        sweep.plot(prepare_directory(args.out) / "smoothness_sweep.png")
        print("radius sweep: " + ", ".join(f"rho {r:g}: beta {b:.3g}" for r, b in zip(sweep.radii, sweep.top)))
    _write(args, "smoothness", data, sl.plot)
    return 0


def run_attractors(args: argparse.Namespace) -> int:
    from ..analysis import attractors
    from ..models import as_stack

    model, _, notes = _model(args)
    stack = as_stack(model)
    if args.n_inputs < 1:
        raise ValueError(f"--n-inputs must be >= 1, got {args.n_inputs}")
    gen = torch.Generator().manual_seed(generator_seed(args.seed + 2))
    if stack.takes_tokens:
        assert isinstance(stack.encoder, nn.Embedding)  # what takes_tokens means
        vocab = stack.encoder.num_embeddings
        inputs = torch.randint(0, vocab, (args.n_inputs,), generator=gen)
    else:
        size = stack.input_size
        assert size is not None  # _model raises when a checkpoint's input size is unknown
        inputs = torch.randn(args.n_inputs, size, generator=gen, dtype=torch.float64)
        inputs[0] = 0.0
        inputs = inputs.to(stack.dtype)
    rep = attractors(
        model,
        inputs,
        args.n_init,
        args.steps,
        stable=args.stable,
        bound=args.bound,
        method=args.method,
        max_period=args.max_period,
        seed=args.seed,
    )
    for i in range(args.n_inputs):
        found = [a for a in rep.attractors if a.input_index == i]
        desc = ", ".join(f"{a.kind} rho={a.radius:.3f} ({a.count})" for a in found) or "none"
        print(f"input {i}: {desc}; unresolved {rep.unresolved[i]}, diverged {rep.diverged[i]}")
    _write(args, "attractors", {**notes, **rep.to_dict()}, rep.plot)
    return 0
