"""The step protocol every recurrent layer follows (docs/design.md, section 1).

A cell is a pure step function over one state tensor::

    y_t, s_t = cell(x_t, s_{t-1})          # x_t: (B, input_size), s: (B, state_size)

split into the two maps the stability grid differentiates separately:

* ``transition(x_t, s_{t-1}) -> s_t``  (its Jacobian in s is the *time* edge),
* ``output(x_t, s_t) -> y_t``          (what the next layer, or the decoder, reads;
  the *depth* edge of layer l+1 goes through layer l's output map).

Rules: no state kept on ``self``, no in-place ops on inputs, no hooks, so
``torch.func.jvp/vjp/vmap/jacrev`` work on every cell. Models know nothing of LSC.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def check_sizes(owner: str, **sizes: object) -> None:
    """Raise a ValueError naming the first size that is not an integer >= 1."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")


class Cell(nn.Module):
    """Base class of a recurrent cell.

    Subclasses set ``input_size``, ``hidden_size`` (width of ``y_t``) and
    ``state_size`` (width of ``s_t``) and implement :meth:`transition`;
    :meth:`output` defaults to the whole state.
    """

    input_size: int
    hidden_size: int
    state_size: int
    diagonal_recurrence: bool = False
    """True when each unit recurs on its own (a diagonal or block-diagonal time Jacobian, or
    one dominated by per-unit decays): its spectrum has one eigenvalue per unit, not one that
    stands out (LRU, ALIF)."""

    def init_state(self, batch: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Tensor:
        """The state at t = -1: zeros of shape (batch, state_size)."""
        ref = next(self.parameters(), None)
        device = device if device is not None else (ref.device if ref is not None else None)
        dtype = dtype if dtype is not None else (ref.dtype if ref is not None else None)
        return torch.zeros(batch, self.state_size, device=device, dtype=dtype)

    def transition(self, x: Tensor, state: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def output(self, x: Tensor, state: Tensor) -> Tensor:
        """y_t from the input x_t and the new state s_t (default: the state itself)."""
        return state

    def output_columns(self) -> slice:
        """The columns of the state that :meth:`output` reads (default: all of them). The
        rest pass nothing to the output (an LSTM's cell state c reaches y only through
        the next step), so the decoder edge leaves them out (docs/design.md section 1)."""
        return slice(0, self.state_size)

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        new_state = self.transition(x, state)
        return self.output(x, new_state), new_state

    def scale_recurrence(self, factor: float) -> None:
        """Multiply the gain from s_{t-1} to s_t by about ``factor`` (in place). Optional:
        the default does nothing; cells with an obvious recurrent gain override it."""

    def scale_input(self, factor: float) -> None:
        """Multiply the gain from x_t to s_t by about ``factor`` (in place). Optional."""

    def forward_sequence(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run over a whole sequence x: (B, T, input_size) -> (y: (B, T, hidden_size), s_T).

        The default loops over :meth:`forward`; cells with a fused kernel or a
        parallel scan override it (same parameters, same map).
        """
        if state is None:
            state = self.init_state(x.shape[0], device=x.device, dtype=x.dtype)
        ys = []
        for t in range(x.shape[1]):
            y, state = self(x[:, t], state)
            ys.append(y)
        return torch.stack(ys, dim=1), state

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}, state_size={self.state_size}"
