"""Stacks of cells: the generic :class:`Stack` view and the trainable :class:`StackedRNN`.

A stack is what the stability grid sees (docs/design.md, section 1):
``cells`` (layer l reads layer l-1's output), ``encoder`` (raw input x_t ->
layer 0's input; identity or an embedding) and ``decoder`` (top layer's output ->
y_t, or ``None``). ``batch_first`` says where the time axis of the raw input is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, cast, overload

import torch
from torch import Tensor, nn

from ..checks import NonFiniteError, check_finite
from .cell import Cell
from .registry import make_cell

if TYPE_CHECKING:

    class CellList(nn.ModuleList):
        """What the type checker sees of ``Stack.cells``: an ``nn.ModuleList`` of :class:`Cell`."""

        @overload
        def __getitem__(self, idx: slice) -> CellList: ...
        @overload
        def __getitem__(self, idx: int) -> Cell: ...
        def __getitem__(self, idx: int | slice) -> Cell | CellList: ...
        def __iter__(self) -> Iterator[Cell]: ...

else:
    CellList = nn.ModuleList


class Stack(nn.Module):
    """Cells + encoder + decoder, stepped one time step at a time."""

    cells: CellList
    encoder: nn.Module
    decoder: nn.Module | None

    def __init__(
        self,
        cells: Sequence[Cell],
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        *,
        batch_first: bool = True,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        if len(cells) == 0:
            raise ValueError("a stack needs at least one cell")
        self.cells = cast("CellList", cells if isinstance(cells, nn.ModuleList) else nn.ModuleList(cells))
        self.encoder = encoder if encoder is not None else nn.Identity()
        self.decoder = decoder
        self.batch_first = batch_first
        self._input_size = input_size

    @property
    def num_layers(self) -> int:
        return len(self.cells)

    @property
    def recurrent(self) -> bool:
        """False when no cell reads its previous state (a feed-forward stack: no time edges)."""
        return any(getattr(c, "recurrent", True) for c in self.cells)

    @property
    def input_size(self) -> int | None:
        """Feature size of the raw float input (embedding dimension for token input);
        ``None`` when a custom encoder hides it and none was declared."""
        if self._input_size is not None:
            return self._input_size
        if isinstance(self.encoder, nn.Linear):
            return self.encoder.in_features
        if isinstance(self.encoder, nn.Embedding):
            return self.encoder.embedding_dim
        if isinstance(self.encoder, nn.Identity):
            return self.cells[0].input_size
        return None

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the first floating parameter (the default dtype if none)."""
        p = next((p for p in self.parameters() if p.is_floating_point()), None)
        return p.dtype if p is not None else torch.get_default_dtype()

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def takes_tokens(self) -> bool:
        return isinstance(self.encoder, nn.Embedding)

    def init_states(
        self, batch: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> list[Tensor]:
        return [cell.init_state(batch, device=device, dtype=dtype) for cell in self.cells]

    def step(self, x_t: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """One time step of the whole stack: (x_t, [s^l_{t-1}]) -> (y_t, [s^l_t])."""
        states = list(states)
        y = self._step(x_t, states, 0, None, None, True, None)
        assert y is not None  # readout=True: _step returns the output
        return y, states

    def _step(
        self,
        x_t: Tensor,
        states: list[Tensor],
        t: int,
        hook: StateHook | None,
        input_hook: InputHook | None,
        readout: bool,
        flags: list[Tensor] | None,
    ) -> Tensor | None:
        """Step ``t`` through the layers, updating ``states`` in place: encoder, every cell's
        ``transition`` then ``output``, decoder. The one place the layers are walked."""
        u = self.encoder(x_t)
        for l, cell in enumerate(self.cells):
            if input_hook is not None:
                input_hook(l, t, u)
            s = cell.transition(u, states[l])
            if flags is not None:
                flags.append(torch.isfinite(s.detach()).all())
            if hook is not None:
                s = hook(l, t, s)
            states[l] = s
            u = cell.output(u, s)
        if not readout:
            return None
        y = self.decoder(u) if self.decoder is not None else u
        if flags is not None:
            flags.append(torch.isfinite(y.detach()).all())
        return y

    def unroll(
        self,
        x: Tensor,
        *,
        hook: StateHook | None = None,
        input_hook: InputHook | None = None,
        states: list[Tensor] | None = None,
        steps: int | None = None,
        readout: bool = True,
        check: bool = True,
    ) -> Tensor | None:
        """The outputs on batch-first ``x``, (B, T, out), one step at a time through the
        step protocol (never a fused kernel), so ``torch.func`` transforms and hooks see
        every state s^l_t (docs/design.md, section 1).

        ``hook(l, t, s)`` may replace each new state s^l_t (e.g. add a zero tensor that
        requires grad, to read dLoss/ds^l_t, or record it); ``input_hook(l, t, u)`` sees
        the input u^l_t each cell reads. ``states`` (updated in place) start the run;
        ``steps`` stops it early; ``readout=False`` skips the decoder (and returns None).
        With ``check`` a state or output that turns NaN/inf raises
        :class:`~lsc.checks.NonFiniteError` naming the first layer and step; the check is
        one flag per (step, layer), read once at the end, so it costs no sync per step.
        """
        B, T = x.shape[0], x.shape[1] if steps is None else steps
        if states is None:
            states = self.init_states(B, device=x.device, dtype=self.dtype)
        flags: list[Tensor] | None = [] if check else None
        ys = [self._step(x[:, t], states, t, hook, input_hook, readout, flags) for t in range(T)]
        if flags:
            _check_flags(self, flags, self.num_layers + int(readout))
        return torch.stack(ys, dim=1) if readout else None  # type: ignore[arg-type]

    def check_input(self, x: object, batch_first: bool | None = None) -> Tensor:
        """Validate a raw input sequence and return it batch-first.

        Float input: (batch, time, features) (time-first if the layout, by default the
        stack's ``batch_first``, says so); token input: (batch, time) integers below
        the vocabulary size.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        batch_first = self.batch_first if batch_first is None else batch_first
        bt = "(batch, time" if batch_first else "(time, batch"
        if self.takes_tokens:
            emb = self.encoder
            assert isinstance(emb, nn.Embedding)
            if x.dim() != 2 or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
                raise ValueError(
                    f"this model embeds tokens: input must be integer token ids of shape {bt}), "
                    f"got dtype {x.dtype} and shape {tuple(x.shape)}"
                )
            if x.dtype not in (torch.int32, torch.int64):  # what nn.Embedding takes
                x = x.long()
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= emb.num_embeddings):
                raise ValueError(
                    f"token ids must lie in [0, {emb.num_embeddings}), got range [{int(x.min())}, {int(x.max())}]"
                )
        else:
            if x.dim() != 3:
                hint = " (for one sequence use x.unsqueeze(0))" if x.dim() == 2 else ""
                want = f" with features = {self.input_size}" if self.input_size is not None else ""
                raise ValueError(f"input must have shape {bt}, features){want}, got shape {tuple(x.shape)}{hint}")
            if self.input_size is not None and x.shape[-1] != self.input_size:
                raise ValueError(
                    f"input has {x.shape[-1]} features but the model's first layer takes "
                    f"{self.input_size}; got shape {tuple(x.shape)}"
                )
            if not x.is_floating_point():
                raise ValueError(f"float input expected, got dtype {x.dtype}")
            check_finite(x, "input")
        if not batch_first:
            x = x.transpose(0, 1)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"input is empty: batch {x.shape[0]}, time {x.shape[1]}")
        return x

    def advance(self, x: Tensor, states: list[Tensor]) -> list[Tensor]:
        """The states after the batch-first segment ``x`` (B, t, F) from ``states``, layer by
        layer with each cell's sequence kernel (PyTorch's fused LSTM/GRU/RNN, the LRU's scan)
        where the cell has one: the fast way to a time point when the steps before it need
        no hooks. Same map as :meth:`unroll`; the states are not checked for NaN/inf."""
        if x.shape[1] == 0:
            return list(states)
        if isinstance(self.encoder, (nn.Identity, nn.Embedding, nn.Linear)):
            u = self.encoder(x)  # these act on (B, t, F) as on (B, F)
        else:  # a custom encoder is applied step by step, as unroll does
            u = torch.stack([self.encoder(x[:, t]) for t in range(x.shape[1])], dim=1)
        new = []
        for cell, s in zip(self.cells, states):
            u, s = cell.forward_sequence(u, s)
            new.append(s)
        return new

    def forward(self, x: Tensor) -> Tensor:
        """Outputs for a whole sequence (time axis as given), stepping every cell."""
        y = self.unroll(self.check_input(x), check=False)
        assert y is not None
        return y if self.batch_first else y.transpose(0, 1)


StateHook = Callable[[int, int, Tensor], Tensor]
"""``hook(layer, step, state) -> state``: lets :meth:`Stack.unroll` perturb or record s^l_t."""
InputHook = Callable[[int, int, Tensor], None]
"""``input_hook(layer, step, input)``: sees the input u^l_t of each cell."""


def _check_flags(stack: Stack, flags: list[Tensor], per_step: int) -> None:
    """Raise for the first False in ``flags`` (``per_step`` flags a step: the layers' states,
    then the readout's when there is one)."""
    ok = torch.stack(flags)
    if bool(ok.all()):
        return
    first = int((~ok).nonzero()[0, 0])
    t, where = divmod(first, per_step)
    raise non_finite_error(stack, t, where if where < stack.num_layers else None)


def non_finite_error(stack: Stack, step: int, layer: int | None) -> NonFiniteError:
    """The error for a state (``layer``) or the readout (``layer=None``) that turned NaN/inf at ``step``."""
    if layer is None:
        what = "the readout (decoder output)"
    else:
        what = f"the state of layer {layer} ({type(stack.cells[layer]).__name__})"
    return NonFiniteError(
        f"{what} became NaN/inf at step {step} (0-based) while every earlier step was finite: the model "
        "diverges on this input, so its Jacobians, gradients, exponents and curvature are undefined from there "
        "on. Rescale the weights (or the input), or use a shorter sequence."
    )


class StackedRNN(Stack):
    """A deep recurrent network: (optional embedding) -> L cells -> (optional linear readout).

    ``forward`` runs every layer over the whole sequence with the cell's fast
    sequence kernel (PyTorch's fused LSTM/GRU/RNN where the cell has one) and
    reads out at every step; ``step`` is the same map one step at a time, on the
    same parameters. Input is batch-first. Dropout, if any, acts between layers
    in training ``forward`` only, never in ``step``.

    Example::

        model = StackedRNN("lstm", input_size=8, hidden_size=64, num_layers=3, output_size=10)
        logits = model(torch.randn(32, 50, 8))          # (32, 50, 10)
    """

    def __init__(
        self,
        cell: str = "lstm",
        input_size: int = 1,
        hidden_size: int | Sequence[int] = 64,
        num_layers: int | None = None,
        output_size: int | None = None,
        *,
        vocab_size: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **cell_options: object,
    ) -> None:
        if num_layers is not None and (
            isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1
        ):
            raise ValueError(f"num_layers must be >= 1, got {num_layers!r}")
        if isinstance(hidden_size, (list, tuple)):
            widths = list(hidden_size)
            if num_layers is not None and num_layers != len(widths):
                raise ValueError(f"num_layers={num_layers} but {len(widths)} hidden sizes were given")
        else:
            widths = [hidden_size] * (1 if num_layers is None else num_layers)
        if len(widths) < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        for w in widths:  # named here, before a cell sees it (2.5 is no width, nor is a string)
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ValueError(f"hidden_size must be an integer >= 1 (or a list of them), got {hidden_size!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        for name, value in (("input_size", input_size), ("output_size", output_size), ("vocab_size", vocab_size)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        cells = []
        width_in = input_size
        for width in widths:
            c = make_cell(cell, width_in, width, bias=bias, **cell_options)
            cells.append(c.to(device=device, dtype=dtype))  # None: left as it is
            width_in = c.hidden_size
        encoder = nn.Embedding(vocab_size, input_size, device=device, dtype=dtype) if vocab_size else None
        decoder = nn.Linear(width_in, output_size, device=device, dtype=dtype) if output_size else None
        super().__init__(cells, encoder, decoder)
        self.dropout = dropout
        self.config = {
            "cell": cell,
            "input_size": input_size,
            "hidden_size": widths if len(set(widths)) > 1 else widths[0],
            "num_layers": len(widths),
            "output_size": output_size,
            "vocab_size": vocab_size,
            "bias": bias,
            "dropout": dropout,
            **cell_options,
        }

    def forward(self, x: Tensor, states: list[Tensor] | None = None, return_states: bool = False):
        """(B, T, F) floats or (B, T) tokens -> (B, T, output_size) (or top-layer outputs)."""
        x = self.check_input(x)
        u = self.encoder(x)
        new_states = []
        for l, cell in enumerate(self.cells):
            if l > 0 and self.dropout and self.training:
                u = nn.functional.dropout(u, self.dropout, training=True)
            u, s = cell.forward_sequence(u, None if states is None else states[l])
            new_states.append(s)
        y = self.decoder(u) if self.decoder is not None else u
        return (y, new_states) if return_states else y

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}" if self.dropout else ""
