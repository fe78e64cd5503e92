"""A pre-training checkpoint is the saved :class:`~.step.State`, with the model's weights,
the estimator's generator and the settings that must match to resume.

Written and read through :mod:`lsc.files` (never executed, checksummed, atomic). A
checkpoint written in the middle of a step (an exception other than Ctrl-C) holds the
generator and the data position from the *start* of that step, so the resumed run
repeats the step exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..files import AFRESH, DamagedFileError, read_state, require, write_state
from ..optimizers import make_optimizer
from ..settings import changes
from .step import Pretrainer, State, StepRecord
from .stopping import Progress

NAME = "checkpoint.pt"
KIND = "pretrain-checkpoint"


@dataclass(frozen=True)
class StepStart:
    """Where the step under way began: the generator's state and the data's position."""

    generator: Tensor | None
    position: int


def save_state(
    path: Path,
    pre: Pretrainer,
    state: State,
    settings: Mapping[str, object],
    seconds: float,
    start: StepStart | None = None,
) -> None:
    """Write ``state`` (and the model, the generator, the settings) to ``path``."""
    gen = pre.generator
    p = state.progress
    write_state(
        path,
        KIND,
        {
            "model": pre.model.state_dict(),
            "shapes": {k: list(v.shape) for k, v in pre.model.state_dict().items()},
            "optimizer": state.optimizer.state_dict(),
            "generator": start.generator if start is not None else (gen.get_state() if gen is not None else None),
            "settings": dict(settings),
            "progress": {
                "step": p.step,
                "within": p.within,
                "ema": [[k, layer, v] for (k, layer), v in p.ema.items()],
                "best_gap": p.best_gap,
                "best_step": p.best_step,
                "plateau_gap": p.plateau_gap,
                "plateau_step": p.plateau_step,
                "lr": p.lr,
                "restarts": p.restarts,
            },
            "best": dict(state.best) if state.best is not None else None,
            "history": [r.row() for r in state.history],
            "position": start.position if start is not None else state.position,
            "seconds": seconds,
            "stopped": state.stopped,
            "message": state.message,
        },
    )


def load_state(path: Path, pre: Pretrainer, settings: Mapping[str, object]) -> State:
    """The state saved at ``path``; the model's weights and the generator are restored.
    Another run's checkpoint (other settings or seed, another model) is refused, naming the
    differences old -> new (nested entries one by one: ``train.lr 0.01 -> 0.001``); so is
    another run's checkpoint copied into the directory, whose settings are its own."""
    blob = read_state(path, KIND)
    require(
        blob,
        path,
        "model",
        "shapes",
        "optimizer",
        "generator",
        "settings",
        "progress",
        "best",
        "history",
        "position",
        "seconds",
        "stopped",
        "message",
    )
    old = blob["settings"]
    assert isinstance(old, dict)
    diffs = changes(old, settings)
    if diffs:
        raise ValueError(
            f"{path.parent} holds a pre-training run with other settings ({'; '.join(diffs)}); run with the same "
            f"settings to resume, or use another directory, or delete it to start afresh ({AFRESH})"
        )
    model: nn.Module = pre.model
    if blob["shapes"] != {k: list(v.shape) for k, v in model.state_dict().items()}:
        raise ValueError(f"{path} was written by a different model (other parameters or shapes); use another directory")
    try:
        model.load_state_dict(blob["model"])  # type: ignore[arg-type]
        if pre.generator is not None and blob["generator"] is not None:
            pre.generator.set_state(blob["generator"])  # type: ignore[arg-type]
        b: Mapping[str, Any] = blob  # the file's payload: a wrong type is a DamagedFileError below
        p = dict(b["progress"])
        progress = Progress(**{**p, "ema": {(k, int(layer)): float(v) for k, layer, v in p["ema"]}})
        optimizer = make_optimizer(pre.config.optimizer, pre.params, progress.lr)
        optimizer.load_state_dict(b["optimizer"])
        history = tuple(StepRecord.from_row(row) for row in b["history"])
    except (RuntimeError, TypeError, KeyError, ValueError) as exc:
        raise DamagedFileError(path, f"its contents do not fit ({str(exc).splitlines()[0][:200]})") from None
    return State(
        progress,
        optimizer,
        b["best"],
        history,
        int(b["position"]),
        float(b["seconds"]),
        str(b["stopped"]),
        str(b["message"]),
    )
