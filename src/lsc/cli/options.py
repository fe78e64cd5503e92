"""Option groups and value parsers shared by the ``lsc`` commands: targets, time points,
edge kinds, sizes, inits, dtypes, the model a command builds from them, and the options
made from the settings' own fields (:func:`setting_option`)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from dataclasses import MISSING
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .. import condition
from ..checks import check_seed, generator_seed
from ..condition import Target
from ..files import DamagedFileError, load_untrusted, unwrap
from ..init import registry as init_registry
from ..models import FFN, StackedRNN, cell_names
from ..parts import InputKey
from ..settings import setting_field, spelt

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def parse_target(text: str) -> Target:
    """An argparse type: :func:`lsc.condition.parse_target`."""
    try:
        return condition.parse_target(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_time_points(text: str) -> int | list[int] | str:
    """``auto`` | ``8`` (a count) | ``all`` | ``0,10,49`` (step indices)."""
    if text in ("all", "auto"):
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


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def setting_option(
    group: Any,
    config: type,
    name: str,
    flag: str,
    *,
    type: Callable[[str], object] | None = None,
    default: object = MISSING,
    closed: bool = False,
    dest: str | None = None,
    help: str | None = None,
) -> None:
    """Add option ``flag`` for setting ``name`` of the dataclass ``config``: its default,
    help line and choices come from the field (:func:`lsc.settings.setting`), so each is
    written once. ``closed``: argparse takes only the choices, spelt by :func:`lsc.settings.spelt`
    (else the library checks the value, with a "did you mean"). ``default``, ``dest``,
    ``help``: the command's own, where it differs."""
    f = setting_field(config, name)
    value = f.default if default is MISSING else default
    choices = f.metadata.get("choices")
    text = f.metadata.get("help", name) if help is None else help
    if choices is not None and not closed:
        text += f": {', '.join(spelt(c) for c in choices)}"
    kwargs: dict[str, Any] = {
        "default": spelt(value) if closed else value,
        "dest": dest or name,
        "help": f"{text} (default {spelt(value)})".replace("%", "%%"),
    }
    if type is not None:
        kwargs["type"] = type
    if closed and choices is not None:
        kwargs["choices"] = [spelt(c) for c in choices]
    group.add_argument(flag, **kwargs)


def model_options(p: argparse.ArgumentParser, user_model: bool = True) -> None:
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
    g.add_argument(
        "--device",
        default="cpu",
        help="torch device: cpu, cuda or auto (default cpu; under torchrun cuda is cuda:LOCAL_RANK)",
    )
    init_options(g)
    if not user_model:
        return
    u = p.add_argument_group("your own model (instead of --cell ...)")
    u.add_argument(
        "--model",
        default=None,
        metavar="MODULE:FACTORY",
        help="an importable callable returning your model, e.g. mypkg.models:make_lm (needs --inputs)",
    )
    u.add_argument(
        "--checkpoint",
        default=None,
        metavar="FILE",
        help="weights for --model: your state_dict (torch.save) or an lsc file; loaded without executing it",
    )
    u.add_argument(
        "--inputs",
        default=None,
        metavar="FILE",
        help="what your model's forward takes: a tensor in a .npy or .pt file, or in a .pt file a tuple or dict of "
        "tensors with the samples along their first axis, e.g. torch.save((x, lengths, y), FILE)",
    )
    u.add_argument(
        "--input-key",
        type=parse_input_key,
        default=0,
        metavar="KEY[,KEY...]",
        help="which elements of a tuple (indices) or dict (keys) --inputs your forward is called with, in order, "
        "e.g. 0,1 for forward(x, lengths) (default 0)",
    )
    u.add_argument(
        "--forward",
        default=None,
        metavar="MODULE:FUNCTION",
        help="an importable function(model, batch) that calls your model on one batch of --inputs, for any other "
        "signature",
    )


def init_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--init", default=None, metavar="NAME", help="initialise the model with a named init (see lsc init --list)"
    )
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
    return init_registry.run(model, name, seed=seed, horizon=time_steps, **options)[1]


def user_factory(spec: str, option: str = "--model", what: str = "FACTORY") -> Callable[..., Any]:
    """``package.module:factory`` -> the callable (the convention of uvicorn and friends).
    Importing the module runs its code: the user named it."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{option} must be MODULE:{what} (e.g. mypkg.models:{what.lower()}), got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{option} {spec}: cannot import {module_name} ({exc}); is it on PYTHONPATH?") from None
    factory: Any = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ValueError(f"{option} {spec}: {module_name} has no {attr}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ValueError(f"{option} {spec}: {attr} is not callable")
    return cast("Callable[..., Any]", factory)


def parse_input_key(text: str) -> InputKey:
    """``0`` -> 0, ``0,1`` -> (0, 1), ``input_ids`` -> "input_ids", ``x,lengths`` -> ("x", "lengths")."""
    keys: list[int | str] = [int(k) if k.strip().lstrip("-").isdigit() else k.strip() for k in text.split(",")]
    if any(k == "" for k in keys):
        raise argparse.ArgumentTypeError(f"expected KEY[,KEY...] (indices or names), got {text!r}")
    return keys[0] if len(keys) == 1 else tuple(keys)


Inputs = torch.Tensor | tuple[torch.Tensor, ...] | dict[str, torch.Tensor]
"""What ``--inputs`` holds: a tensor, or a tuple / dict of tensors (one batch of samples)."""


def read_inputs(path: str) -> Inputs:
    """A tensor from a ``.npy`` file (no pickles), or from a ``.pt`` file (weights only) a
    tensor or a tuple / list / dict of tensors whose first axes hold the same samples."""
    if not Path(path).exists():
        raise FileNotFoundError(f"--inputs {path} does not exist")
    if path.endswith(".npy"):
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except ValueError as exc:
            raise ValueError(f"--inputs {path}: not a plain .npy array ({exc})") from None
    value = load_untrusted(path)
    if isinstance(value, torch.Tensor):
        return value
    items = list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, (tuple, list)) else []
    if not items or not all(isinstance(v, torch.Tensor) and v.dim() > 0 for v in items):
        raise ValueError(
            f"--inputs {path} holds a {type(value).__name__}, not a tensor or a tuple / dict of tensors: "
            "torch.save(x, FILE) or torch.save((x, lengths, y), FILE)"
        )
    if len({v.shape[0] for v in items}) > 1:
        raise ValueError(f"--inputs {path}: its tensors hold different numbers of samples (their first axes differ)")
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    return tuple(items)


def batches(inputs: Inputs, size: int) -> list[object] | torch.Tensor:
    """Pre-training data from ``--inputs``: a tensor as it is (random mini-batches of it),
    a tuple / dict cut along its samples into batches of ``size``."""
    if isinstance(inputs, torch.Tensor):
        return inputs
    n = next(iter(inputs.values() if isinstance(inputs, dict) else inputs)).shape[0]
    return [_rows(inputs, i, min(i + size, n)) for i in range(0, n, size)]


def _rows(inputs: Inputs, start: int, stop: int) -> Inputs:
    if isinstance(inputs, dict):
        return {k: v[start:stop] for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(v[start:stop] for v in inputs)
    return inputs[start:stop]


def user_call(args: argparse.Namespace) -> dict[str, Any]:
    """``input_key`` and ``forward`` of :func:`lsc.measure` / :func:`lsc.pretrain` from
    ``--input-key`` and ``--forward``."""
    forward = getattr(args, "forward", None)
    return {
        "input_key": getattr(args, "input_key", 0),
        "forward": None if forward is None else user_factory(forward, "--forward", "FUNCTION"),
    }


def load_weights(model: nn.Module, path: str) -> None:
    """``--checkpoint``: a plain ``state_dict`` or an lsc model file, into ``model``."""
    blob = load_untrusted(path)
    if isinstance(blob, dict) and "lsc" in blob:
        blob = unwrap(blob, path, "model").get("state_dict")
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise DamagedFileError(
            Path(path),
            "it is neither a state_dict nor an lsc model file",
            "pass the file torch.save(model.state_dict(), ...) wrote",
        )
    try:
        model.load_state_dict(blob)
    except RuntimeError as exc:
        raise ValueError(f"--checkpoint {path} does not fit the --model: {str(exc).splitlines()[0][:300]}") from None


def build_user_model(args: argparse.Namespace) -> tuple[nn.Module, Inputs]:
    """``--model`` (with ``--checkpoint``) and its ``--inputs``."""
    if args.inputs is None:
        raise ValueError(
            "--model needs --inputs FILE: lsc runs your model's forward on them to find its recurrent parts"
        )
    torch.manual_seed(generator_seed(check_seed(args.seed) or 0))
    model = user_factory(args.model)()
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {args.model} returned a {type(model).__name__}, not a torch.nn.Module")
    if args.checkpoint is not None:
        load_weights(model, args.checkpoint)
    x = read_inputs(args.inputs)
    if isinstance(x, dict):
        return model.to(args.device), {k: v.to(args.device) for k, v in x.items()}
    if isinstance(x, tuple):
        return model.to(args.device), tuple(v.to(args.device) for v in x)
    return model.to(args.device), x.to(args.device)


def build_model(args: argparse.Namespace) -> tuple[nn.Module, Inputs]:
    """The model and Gaussian input the CLI uses: seeded, so runs are reproducible; or the
    user's ``--model`` and ``--inputs``."""
    if getattr(args, "model", None) is not None:
        return build_user_model(args)
    if getattr(args, "checkpoint", None) is not None or getattr(args, "inputs", None) is not None:
        raise ValueError("--checkpoint and --inputs go with --model MODULE:FACTORY")
    torch.manual_seed(generator_seed(check_seed(args.seed) or 0))  # any integer; torch takes [0, 2**64)
    dtype = DTYPES[args.dtype]
    if args.cell == "ffn":
        model: nn.Module = FFN(
            depth=args.layers,
            width=args.width,
            activation=args.activation,
            input_size=args.input_size,
            output_size=args.output_size or None,
        )
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
