"""Models that follow the step protocol, and adapters for ``torch.nn`` recurrent modules."""

from .activations import ACTIVATIONS
from .adapters import adapt_torch_rnn, as_stack
from .alif import ALIFCell
from .cell import Cell
from .elman import ElmanCell
from .ffn import FFN, DenseCell
from .gru import GRUCell
from .lru import LRUCell
from .lstm import LSTMCell
from .registry import cell_names, make_cell, register_cell
from .stacked import Stack, StackedRNN

__all__ = [
    "ACTIVATIONS",
    "FFN",
    "ALIFCell",
    "Cell",
    "DenseCell",
    "ElmanCell",
    "GRUCell",
    "LRUCell",
    "LSTMCell",
    "Stack",
    "StackedRNN",
    "adapt_torch_rnn",
    "as_stack",
    "cell_names",
    "make_cell",
    "register_cell",
]
