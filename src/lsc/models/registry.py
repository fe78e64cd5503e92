"""Cell names -> cell classes, so models, the CLI and later cell kinds share one list."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

from ..checks import unknown_name
from .alif import ALIFCell
from .cell import Cell
from .elman import ElmanCell
from .gru import GRUCell
from .lru import LRUCell
from .lstm import LSTMCell

CellFactory = Callable[..., Cell]

_CELLS: dict[str, CellFactory] = {
    "lstm": LSTMCell,
    "gru": GRUCell,
    "elman": ElmanCell,
    "alif": ALIFCell,
    "alifb": partial(ALIFCell, beta="gaussian"),  # the reference's maLSNNb: zero-mean Gaussian beta
    "lru": LRUCell,
}


def register_cell(name: str, factory: CellFactory) -> None:
    """Make ``factory(input_size, hidden_size, **options) -> Cell`` available as ``cell=name``."""
    _CELLS[name] = factory


def cell_names() -> list[str]:
    """The registered cell names."""
    return sorted(_CELLS)


def make_cell(name: str, input_size: int, hidden_size: int, **options: object) -> Cell:
    """Build the cell registered under ``name``; unknown names and options get a clear error."""
    if name not in _CELLS:
        raise unknown_name("cell", name, _CELLS)
    factory = _CELLS[name]
    accepted = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    bad = [k for k in options if k not in accepted and not takes_any]
    if bad:
        allowed = [k for k in accepted if k not in ("input_size", "hidden_size", "device", "dtype")]
        raise ValueError(f"cell {name!r} does not take option(s) {bad}; it takes {allowed}")
    return factory(input_size, hidden_size, **options)
