"""Task names -> builders, with what ``lsc tasks`` prints about each.

``get(name, **options)`` builds a task; unknown names and options get a clear error (with
a "did you mean"). ``register(TaskInfo(...))`` adds one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from ..checks import unknown_name
from . import mnist, shd, slmnist, synthetic, text
from .base import Task
from .images import describe_source
from .paths import candidates, data_dir_note, find_file


@dataclass(frozen=True)
class TaskInfo:
    """A registered task: its builder and one line for each column of ``lsc tasks``."""

    name: str
    build: Callable[..., Task]
    summary: str
    input: str
    output: str
    metric: str
    data: Callable[[], str]  # where the data comes from now (cheap: no reading)


def _files_note(what: str, folder: str, files: tuple[str, ...]) -> Callable[[], str]:
    def note() -> str:
        for place in candidates(None, folder):
            if all(find_file(place, f, gzip_ok=False) for f in files):
                return f"{what} in {place}"
        return f"{what}: put {', '.join(files)} in {data_dir_note(folder)} or pass path"

    return note


_TASKS: dict[str, TaskInfo] = {}


def register(info: TaskInfo) -> None:
    """Make ``info.build(**options) -> Task`` available as ``lsc.tasks.get(info.name)``."""
    _TASKS[info.name] = info


for _info in (
    TaskInfo(
        "slmnist",
        slmnist.slmnist,
        "spike-latency MNIST (the LSC paper's sl-MNIST)",
        "100 x 784 spikes",
        "10 classes, every step",
        "mode accuracy",
        lambda: describe_source("mnist"),
    ),
    TaskInfo(
        "row-mnist",
        mnist.row_mnist,
        "MNIST row by row",
        "28 x 28",
        "10 classes, last step",
        "accuracy",
        lambda: describe_source("mnist"),
    ),
    TaskInfo(
        "pixel-mnist",
        mnist.pixel_mnist,
        "MNIST pixel by pixel",
        "784 x 1",
        "10 classes, last step",
        "accuracy",
        lambda: describe_source("mnist"),
    ),
    TaskInfo(
        "permuted-mnist",
        mnist.permuted_mnist,
        "MNIST pixels in a fixed random order",
        "784 x 1",
        "10 classes, last step",
        "accuracy",
        lambda: describe_source("mnist"),
    ),
    TaskInfo(
        "padded-mnist",
        mnist.padded_mnist,
        "MNIST rows then zeros (Gilboa et al.)",
        "length x 28",
        "10 classes, last step",
        "accuracy",
        lambda: describe_source("mnist"),
    ),
    TaskInfo(
        "shd",
        shd.shd,
        "Spiking Heidelberg Digits",
        "250 x 700 spikes",
        "20 classes, every step",
        "mode accuracy",
        _files_note("SHD", "shd", shd.FILES),
    ),
    TaskInfo(
        "ptb",
        text.ptb,
        "word-level language model, PTB format",
        "bptt tokens",
        "next word",
        "perplexity",
        _files_note("PTB", "ptb", text.PTB_FILES),
    ),
    TaskInfo(
        "char",
        text.char,
        "char-level language model",
        "bptt characters",
        "next character",
        "perplexity",
        lambda: "Python standard library sources (offline), or path=FILE",
    ),
    TaskInfo(
        "copy",
        synthetic.copy,
        "copy a string after a delay",
        "(2 length + delay) x (symbols + 1)",
        "symbols, recall steps",
        "accuracy",
        lambda: "generated",
    ),
    TaskInfo(
        "adding",
        synthetic.adding,
        "sum of two marked values",
        "length x 2",
        "1 value, last step",
        "mse",
        lambda: "generated",
    ),
    TaskInfo(
        "delayed-xor",
        synthetic.delayed_xor,
        "XOR of two bits after a delay",
        "(delay + 3) x 3",
        "2 classes, last step",
        "accuracy",
        lambda: "generated",
    ),
    TaskInfo(
        "store-recall",
        synthetic.store_recall,
        "store and recall a bit (spiking, Bellec et al.)",
        "200 x 40 spikes",
        "2 classes, recall steps",
        "accuracy",
        lambda: "generated",
    ),
    TaskInfo(
        "lorenz",
        synthetic.lorenz,
        "Lorenz-63 prediction",
        "length x 3",
        "3 values, every step",
        "mse",
        lambda: "generated",
    ),
):
    register(_info)


def available() -> list[str]:
    """The registered task names."""
    return sorted(_TASKS)


def info(name: str) -> TaskInfo:
    if name not in _TASKS:
        raise unknown_name("task", name, _TASKS)
    return _TASKS[name]


def options(name: str) -> dict[str, object]:
    """The options a task takes, with their defaults."""
    params = inspect.signature(info(name).build).parameters
    return {k: p.default for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def get(name: str, **opts: object) -> Task:
    """Build the task registered under ``name`` with ``opts`` (see :func:`options`)."""
    entry = info(name)
    accepted = options(name)
    bad = [k for k in opts if k not in accepted]
    if bad:
        raise ValueError(f"task {name!r} does not take option(s) {bad}; it takes {sorted(accepted)}")
    return entry.build(**opts)
