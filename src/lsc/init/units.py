"""What an init sees of a model: its layers as *units*, each a module an init rule acts on.

* gated layers: cells with PyTorch's recurrent layout (:class:`TorchLayoutCell`: LSTM,
  GRU, Elman), including views of the layers of a user's ``nn.LSTM/GRU/RNN`` (they share
  the module's ``Parameter`` objects, so initialising the view initialises the module);
* dense layers: ``nn.Linear`` (encoders, decoders, the layers of an :class:`FFN`, or a
  user's plain ``nn.Linear``), with the activation that follows them when known;
* other cells (ALIF, LRU), which only some inits know.

Gate blocks: PyTorch stacks the G gates of a layer along the rows of ``weight_ih``,
``weight_hh``, ``bias_ih`` and ``bias_hh`` (LSTM: i, f, g, o; GRU: r, z, n), so per-gate
fans are (input or recurrent width, hidden width), not the stacked shape's.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..models import (
    ALIFCell,
    DenseCell,
    ElmanCell,
    GRUCell,
    LRUCell,
    LSTMCell,
    as_stack,
)
from ..models.torch_layout import TorchLayoutCell

GATE_NAMES: dict[type, tuple[str, ...]] = {LSTMCell: ("i", "f", "g", "o"), GRUCell: ("r", "z", "n"), ElmanCell: ("h",)}


@dataclass
class Unit:
    """One initialisable layer: ``kind`` is ``gated``, ``dense``, ``alif`` or ``lru``;
    ``role`` is ``encoder``, ``layer``, ``decoder`` or ``inner`` (a dense map inside a
    cell, e.g. an LRU block's GLU); ``activation`` is the
    nonlinearity that follows a dense layer (``None`` when unknown)."""

    kind: str
    module: nn.Module
    role: str
    index: int
    activation: str | None = None

    @property
    def name(self) -> str:
        return type(self.module).__name__


def gate_names(cell: TorchLayoutCell) -> tuple[str, ...]:
    for cls, names in GATE_NAMES.items():
        if isinstance(cell, cls):
            return names
    return tuple(f"gate{k}" for k in range(cell.gates))


def gate_rows(cell: TorchLayoutCell, gate: str) -> slice:
    """Rows of the stacked weights and biases that belong to ``gate``."""
    names = gate_names(cell)
    k = names.index(gate)
    H = cell.cell_size
    return slice(k * H, (k + 1) * H)


def _cell_unit(cell: nn.Module, index: int) -> Unit:
    if isinstance(cell, TorchLayoutCell):
        return Unit("gated", cell, "layer", index, getattr(cell, "nonlinearity", None))
    if isinstance(cell, DenseCell):
        return Unit("dense", cell.linear, "layer", index, cell.activation)
    if isinstance(cell, ALIFCell):
        return Unit("alif", cell, "layer", index)
    if isinstance(cell, LRUCell):
        return Unit("lru", cell, "layer", index)
    return Unit(type(cell).__name__, cell, "layer", index)


def units(model: nn.Module) -> list[Unit]:
    """The units of ``model`` in order: encoder, layers, decoder.

    Works on ``StackedRNN``, ``FFN``, anything :func:`lsc.models.as_stack` sees, a plain
    ``nn.Linear``, and (as a last resort) any module made of ``nn.Linear`` layers.
    """
    if isinstance(model, nn.Linear):
        return [Unit("dense", model, "layer", 0)]
    try:
        stack = as_stack(model)
    except TypeError:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise TypeError(
                f"lsc.init finds nothing to initialise in a {type(model).__name__}: it is not a recurrent "
                "module lsc can see (torch.nn.LSTM/GRU/RNN, lsc.models.StackedRNN/FFN) and holds no nn.Linear"
            ) from None
        return [Unit("dense", m, "layer", i) for i, m in enumerate(linears)]
    out = []
    if isinstance(stack.encoder, nn.Linear):
        out.append(Unit("dense", stack.encoder, "encoder", 0))
    out += [_cell_unit(c, i) for i, c in enumerate(stack.cells)]
    for i, cell in enumerate(stack.cells):  # the LRU's own input adapter and GLU are dense layers too
        if isinstance(cell, LRUCell):
            out += [
                Unit("dense", m, "inner", i) for m in (cell.adapter, cell.glu_gate, cell.glu_value) if m is not None
            ]
    if isinstance(stack.decoder, nn.Linear):
        out.append(Unit("dense", stack.decoder, "decoder", 0))
    return out


def refresh(model: nn.Module) -> None:
    """After in-place edits: let cuDNN re-pack the weights of a torch RNN module."""
    for m in model.modules():
        if isinstance(m, nn.RNNBase):
            m.flatten_parameters()


def matrices(cell: TorchLayoutCell) -> list[tuple[str, Tensor]]:
    """The 2-D weights of a gated cell other than weight_ih/weight_hh (e.g. LSTM projections)."""
    return [
        (name, p)
        for name, p in cell.named_parameters(recurse=False)
        if p.dim() == 2 and name not in ("weight_ih", "weight_hh")
    ]
