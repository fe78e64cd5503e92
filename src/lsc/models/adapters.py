"""See a user's own recurrent module as a :class:`Stack`, over its own parameters.

``torch.nn.LSTM/GRU/RNN`` (any number of layers, batch_first or not, with or
without bias, LSTM projections too) and ``nn.LSTMCell/GRUCell/RNNCell``
become stacks of cells that share the module's ``Parameter`` objects: nothing
is copied, so what changes the stack's parameters changes the user's module.
"""

from __future__ import annotations

from torch import nn

from .elman import ElmanCell
from .ffn import linear_chain
from .gru import GRUCell
from .lstm import LSTMCell
from .stacked import Stack
from .torch_layout import TorchLayoutCell

_LAYERED: dict[type[nn.Module], type[TorchLayoutCell]] = {nn.LSTM: LSTMCell, nn.GRU: GRUCell, nn.RNN: ElmanCell}
_SINGLE: dict[type[nn.Module], type[TorchLayoutCell]] = {
    nn.LSTMCell: LSTMCell,
    nn.GRUCell: GRUCell,
    nn.RNNCell: ElmanCell,
}


def _cell_class(module: nn.Module, table: dict[type[nn.Module], type[TorchLayoutCell]]) -> type[TorchLayoutCell] | None:
    for base, cls in table.items():
        if isinstance(module, base):
            return cls
    return None


def layer_view(module: nn.Module, layer: int, *, reverse: bool = False) -> Stack:
    """A one-layer stack viewing one layer (one direction) of a ``torch.nn`` LSTM/GRU/RNN:
    how a bidirectional module is seen, a direction and a layer at a time."""
    cls = _cell_class(module, _LAYERED)
    if cls is None:
        raise TypeError(f"no adapter for {type(module).__name__}")
    stack = Stack([cls.view_of(module, layer, reverse=reverse)], batch_first=bool(module.batch_first))
    stack.source = module
    return stack


def cell_view(module: nn.Module) -> TorchLayoutCell:
    """A cell viewing an ``nn.LSTMCell``/``GRUCell``/``RNNCell`` (its own parameters)."""
    cls = _cell_class(module, _SINGLE)
    if cls is None:
        raise TypeError(f"no adapter for {type(module).__name__}")
    return cls.view_of(module, None)


def adapt_torch_rnn(module: nn.Module) -> Stack:
    """A :class:`Stack` of cells viewing the layers of a ``torch.nn`` recurrent module."""
    cls = _cell_class(module, _LAYERED)
    if cls is not None:
        if getattr(module, "bidirectional", False):
            raise ValueError(
                f"{type(module).__name__}(bidirectional=True) is not one stack but one per direction: "
                "lsc.measure / lsc.pretrain take it and see each direction (and layer) as its own part "
                "(lsc.parts.find)"
            )
        assert isinstance(module, nn.RNNBase)  # every _LAYERED class is one
        cells = [cls.view_of(module, k) for k in range(module.num_layers)]
        stack = Stack(cells, batch_first=bool(module.batch_first))
    else:
        cls = _cell_class(module, _SINGLE)
        if cls is None:
            raise TypeError(f"no adapter for {type(module).__name__}")
        stack = Stack([cls.view_of(module, None)])
    stack.source = module  # registered: the stack's parameters are the module's
    return stack


def as_stack(model: nn.Module) -> Stack:
    """The :class:`Stack` the stability grid should see for ``model``.

    Accepts a :class:`Stack` (e.g. :class:`StackedRNN`), a ``torch.nn`` LSTM/GRU/RNN
    module or cell, an ``nn.Sequential`` chain of ``Linear`` layers and activations
    (:func:`~lsc.models.ffn.linear_chain`), or any module with a ``cells`` sequence of :class:`Cell` (plus
    optional ``encoder``/``decoder``/``batch_first``/``input_size``). A stack made
    for another module keeps it as ``stack.source``.
    """
    if isinstance(model, Stack):
        return model
    if isinstance(model, nn.Sequential):
        chain = linear_chain(model)
        if chain is not None:
            return chain
    if _cell_class(model, _LAYERED) or _cell_class(model, _SINGLE):
        return adapt_torch_rnn(model)
    cells = getattr(model, "cells", None)
    if (
        cells is not None
        and len(cells)
        and all(hasattr(c, "transition") and hasattr(c, "output") and hasattr(c, "state_size") for c in cells)
    ):
        stack = Stack(
            list(cells),
            getattr(model, "encoder", None),
            getattr(model, "decoder", None),
            batch_first=getattr(model, "batch_first", True),
            input_size=getattr(model, "input_size", None),
        )
        stack.source = model
        return stack
    raise TypeError(
        f"lsc cannot see the recurrence of a {type(model).__name__}: it is not a torch.nn.LSTM/GRU/RNN "
        "(or LSTMCell/GRUCell/RNNCell), not an lsc.models.StackedRNN, and has no `cells` that follow "
        "the step protocol. lsc.measure and lsc.pretrain find the recurrent parts of a larger model by "
        "running it; lsc.view(rnn, encoder=..., decoder=...) makes a stack of known parts."
    )
