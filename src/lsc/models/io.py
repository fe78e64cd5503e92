"""Model files: ``save(model, path)`` writes the weights and what is needed to rebuild
the model; ``load(path)`` rebuilds it. Works for ``StackedRNN``, ``FFN`` and
``torch.nn.LSTM/GRU/RNN``.

A model file is an lsc state file of kind ``"model"`` (:mod:`lsc.files`): read without
running anything in it, checked against its SHA-256, written atomically. Files of the
first format (``{"format": "lsc-model/1", ...}`` without the checksum) still load, with
the same restricted reader."""

from __future__ import annotations

from pathlib import Path
from typing import SupportsInt, cast

import torch
from torch import nn

from ..checks import unknown_name
from ..files import DamagedFileError, load_untrusted, require, unwrap, write_state
from .ffn import FFN
from .stacked import StackedRNN

FORMAT = "lsc-model/1"
WINDOW = "max_length"  # the plain attribute load() gives a model trained by lsc.train (its window)
_TORCH = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}
_TORCH_KEYS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")


def describe(model: nn.Module) -> dict[str, object]:
    """The constructor call that rebuilds ``model``: {"class": ..., "config": {...}}."""
    dtype = str(next((p.dtype for p in model.parameters()), torch.float32)).replace("torch.", "")
    if isinstance(model, (StackedRNN, FFN)):
        return {"class": type(model).__name__, "config": dict(model.config), "dtype": dtype}
    for name, cls in _TORCH.items():
        if type(model) is cls:
            config = {k: getattr(model, k) for k in _TORCH_KEYS}
            if name == "LSTM":
                config["proj_size"] = model.proj_size
            if name == "RNN":
                config["nonlinearity"] = model.nonlinearity
            return {"class": name, "config": config, "dtype": dtype}
    raise TypeError(
        f"lsc cannot describe a {type(model).__name__} for saving; save its state_dict with torch.save instead"
    )


KIND = "model"


def save(model: nn.Module, path: str | Path, **extra: object) -> None:
    """Write ``model`` (weights + constructor config) and ``extra`` entries to ``path``."""
    write_state(path, KIND, {"format": FORMAT, **describe(model), "state_dict": model.state_dict(), **extra})


def build(description: dict[str, object]) -> nn.Module:
    """A fresh model from a :func:`describe` dictionary."""
    name = description.get("class")
    classes = {"StackedRNN": StackedRNN, "FFN": FFN, **_TORCH}
    if name not in classes:
        raise unknown_name("model class", name, classes)
    model = classes[name](**description["config"])  # type: ignore[arg-type]
    return model.to(getattr(torch, str(description.get("dtype", "float32"))))


def load(path: str | Path, map_location: str | torch.device | None = "cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` (by :func:`save`, ``lsc pretrain`` or ``lsc train``).
    A file written by ``lsc.train`` records its window, the sequence length it was trained
    on; the model gets it as ``model.max_length``, and ``lsc.train`` refuses longer tasks.
    Nothing in the file is executed; a damaged file or another program's file raises
    :class:`lsc.files.DamagedFileError` naming it."""
    if Path(path).is_dir():
        found = sorted(p.name for p in Path(path).glob("*.pt"))
        raise ValueError(
            f"{path} is a directory; pass the model file in it"
            + (f" ({', '.join(found)})" if found else "")
            + ": DIR/best.pt from lsc train --out, "
            "DIR/pretrained.pt from lsc pretrain --out, or a file lsc.save wrote"
        )
    blob = load_untrusted(path, map_location)
    if isinstance(blob, dict) and "lsc" in blob:
        blob = unwrap(blob, path, KIND)
    elif not isinstance(blob, dict) or blob.get("format") != FORMAT:  # neither format: not ours
        raise DamagedFileError(
            path,
            f"it is not an lsc model file (expected format {FORMAT!r})",
            "pass a file written by lsc.save, lsc pretrain --out or lsc train --out",
        )
    require(blob, path, "class", "config", "state_dict")
    try:
        model = build(blob)
        model.load_state_dict(blob["state_dict"])  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise DamagedFileError(path, f"its weights do not fit its model ({str(exc).splitlines()[0][:200]})") from None
    window = blob.get("window")
    if window is not None:  # written by lsc.train: the longest sequence it was trained on
        # setattr: nn.Module's __setattr__ is typed for tensors and modules, and this is a plain int;
        # the cast: lsc.train writes an int, and int() still refuses what is none
        setattr(model, WINDOW, int(cast(SupportsInt, window)))
    return model
