"""Feed-forward networks as the T = 1 case of the grid (docs/design.md, section 1).

Layer l computes h^l = phi(W_l h^{l-1} + b_l) with a ``torch.nn.Linear``; its depth
Jacobian is diag(phi'(a_l)) W_l. The first layer's Jacobian is the encoder edge, the
readout's the decoder edge. Each layer is a :class:`DenseCell` whose transition
ignores the (unused) previous state, so the stack has no time edges.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .activations import activation
from .cell import Cell
from .stacked import Stack


class DenseCell(Cell):
    """One feed-forward layer ``phi(linear(x))`` seen as a cell without recurrence."""

    recurrent = False  # its transition ignores the previous state: no time edge

    def __init__(self, input_size: int, width: int, activation_name: str = "relu", bias: bool = True) -> None:
        phi = activation(activation_name)
        super().__init__()
        self.linear = nn.Linear(input_size, width, bias=bias)
        self.input_size = input_size
        self.hidden_size = self.state_size = width
        self.activation = activation_name
        self._phi = phi

    def transition(self, x: Tensor, state: Tensor | None) -> Tensor:
        return self._phi(self.linear(x))

    @torch.no_grad()
    def scale_input(self, factor: float) -> None:
        self.linear.weight.mul_(factor)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", activation={self.activation!r}"


class FeedForward(Stack):
    """A stack of cells without recurrence over (batch, features) input: the T = 1 case."""

    def check_input(self, x: object, batch_first: bool | None = None) -> Tensor:
        """(batch, features) -> (batch, 1, features); (batch, 1, features) is accepted too."""
        if isinstance(x, Tensor) and x.dim() == 2:
            x = x.unsqueeze(1)
        if isinstance(x, Tensor) and x.dim() == 3 and x.shape[1] != 1:
            raise ValueError(f"a feed-forward network takes (batch, features) input, got shape {tuple(x.shape)}")
        return super().check_input(x, batch_first=True)


# what may follow a Linear inside one layer of a chain: element-wise maps and per-sample
# normalisation (their Jacobians are those of the user's module); dropout is the identity
# (the Jacobian of the network as it is evaluated)
_LAYER_TAIL = (
    nn.Tanh,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Softplus,
    nn.Hardtanh,
    nn.Mish,
    nn.SELU,
    nn.CELU,
    nn.Identity,
    nn.LayerNorm,
    nn.Dropout,
)


class LinearLayerCell(Cell):
    """One layer of a user's ``nn.Sequential`` chain seen as a cell without recurrence:
    ``tail(linear(x))`` over the user's own modules (nothing is copied)."""

    recurrent = False

    def __init__(self, linear: nn.Linear, tail: list[nn.Module]) -> None:
        super().__init__()
        self.linear = linear
        self.tail = nn.ModuleList([m for m in tail if not isinstance(m, nn.Dropout)])
        self.input_size = linear.in_features
        self.hidden_size = self.state_size = linear.out_features

    def transition(self, x: Tensor, state: Tensor | None) -> Tensor:
        y = self.linear(x)
        for m in self.tail:
            y = m(y)
        return y

    @torch.no_grad()
    def scale_input(self, factor: float) -> None:
        self.linear.weight.mul_(factor)


def linear_chain(seq: nn.Sequential) -> FeedForward | None:
    """A user's ``nn.Sequential`` of ``Linear`` layers, each followed by element-wise
    activations, normalisation or dropout, as a feed-forward stack over its own
    parameters: every Linear with what follows it is a layer (depth edges between them);
    a last Linear with nothing after it is the decoder. ``None`` when ``seq`` is not such
    a chain (or has fewer than two layers)."""
    modules = list(seq)
    if not modules or not isinstance(modules[0], nn.Linear):
        return None
    groups: list[tuple[nn.Linear, list[nn.Module]]] = []
    for m in modules:
        if isinstance(m, nn.Linear):
            groups.append((m, []))
        elif isinstance(m, _LAYER_TAIL):
            groups[-1][1].append(m)
        else:
            return None
    decoder = None
    if len(groups) > 1 and not [m for m in groups[-1][1] if not isinstance(m, nn.Dropout)]:
        decoder = groups.pop()[0]
    if len(groups) < 2:
        return None
    stack = FeedForward(
        [LinearLayerCell(lin, tail) for lin, tail in groups], None, decoder, input_size=groups[0][0].in_features
    )
    stack.source = seq
    return stack


class FFN(FeedForward):
    """``depth`` x [Linear(width) -> activation] -> Linear(output_size).

    Input is (batch, features); the grid sees it as a sequence of length 1.

    Example::

        net = FFN(depth=30, width=128, activation="relu", input_size=784, output_size=10)
        logits = net(torch.randn(64, 784))
    """

    def __init__(
        self,
        depth: int = 30,
        width: int = 128,
        activation: str = "relu",
        input_size: int = 784,
        output_size: int | None = 10,
        *,
        bias: bool = True,
    ) -> None:
        for name, value in (("depth", depth), ("width", width), ("input_size", input_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"FFN {name} must be an integer >= 1, got {value!r}")
        cells = [DenseCell(input_size if l == 0 else width, width, activation, bias) for l in range(depth)]
        decoder = nn.Linear(width, output_size, bias=bias) if output_size else None
        super().__init__(cells, None, decoder)
        self.config = {
            "depth": depth,
            "width": width,
            "activation": activation,
            "input_size": input_size,
            "output_size": output_size,
            "bias": bias,
        }

    def forward(self, x: Tensor) -> Tensor:
        """(batch, features) -> (batch, output_size) (or the last hidden layer)."""
        squeeze = x.dim() == 2
        u = self.check_input(x)[:, 0]
        for cell in self.cells:
            assert isinstance(cell, DenseCell)  # an FFN is built of DenseCells
            u = cell.transition(u, None)  # feed-forward: no previous state
        y = self.decoder(u) if self.decoder is not None else u
        return y if squeeze else y.unsqueeze(1)
