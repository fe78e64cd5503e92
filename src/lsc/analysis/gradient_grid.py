"""The gradient grid: how much every node (l, t) of the depth x time grid matters.

For a stacked recurrent model with states s^l_t (layer l, step t) and an objective
E (a loss, or by default the sum of all outputs y_t over steps and units, as the
PascalRNN figure of Herranz-Celotti & Rouat, "Stabilizing RNN Gradients through
Pre-training", Fig. 1c, uses), the grid holds

    G[l, t] = E_b || dE / ds^l_t ||_2            (per sample b, then batch mean)

where dE/ds^l_t is the *total* derivative through every later path of the grid:
a sum over the C(dl + dt, dt) monotone lattice paths of products of local
Jacobians (docs/design.md A1.4). Under the LSC at 0.5 the grid is flat over t; at
radius 1 it grows towards early steps like the path count.

Implementation: one unrolled forward where every new state gets a zero tensor
added, s^l_t <- s^l_t + 0 (requires grad), and one backward pass: the gradient of
that zero is dE/ds^l_t (samples do not interact, so the batch objective's gradient
row b is sample b's own gradient).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..grid import prepare

LossFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class GradientGrid:
    """||dE/ds^l_t|| for every layer l (rows) and step t (columns), batch-averaged.

    ``values``: (L, T) array; ``objective``: what E was; ``batch``: samples averaged.
    """

    values: np.ndarray = field(repr=False)
    objective: str
    batch: int

    @property
    def layers(self) -> int:
        return int(self.values.shape[0])

    @property
    def steps(self) -> int:
        return int(self.values.shape[1])

    def profile(self, layer: int | None = 0) -> np.ndarray:
        """The gradient over t of one layer, or (``None``) of the whole stack,
        sqrt(sum_l G[l, t]^2) (an upper bound on the batch mean of the joint norm)."""
        if layer is None:
            return np.sqrt((self.values**2).sum(axis=0))
        if not -self.layers <= layer < self.layers:
            raise ValueError(f"layer must be in [0, {self.layers}), got {layer}")
        return self.values[layer]

    def flatness(self, layer: int | None = 0, steps: slice | None = None) -> float:
        """max_t / min_t of :meth:`profile` over ``steps`` (default all): 1 is perfectly
        flat, large means the gradient explodes or vanishes over time."""
        p = self.profile(layer)[steps if steps is not None else slice(None)]
        if p.size == 0:
            raise ValueError("no steps selected for the flatness ratio")
        lo = float(p.min())
        return float("inf") if lo == 0.0 else float(p.max()) / lo

    def to_dict(self) -> dict[str, object]:
        return {
            "objective": self.objective,
            "batch": self.batch,
            "layers": self.layers,
            "steps": self.steps,
            "flatness_layer0": self.flatness(0),
            "flatness_total": self.flatness(None),
            "values": self.values.tolist(),
        }

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Write a PNG: the (L, T) grid as a log-colour heat map, and every layer's
        gradient over t on a log axis (needs matplotlib, the ``plot`` extra)."""
        from .plots import plot_gradient_grid

        return plot_gradient_grid(self, path, title=title)


def gradient_grid(model: nn.Module, x: Tensor, loss: LossFn | None = None) -> GradientGrid:
    """||d loss / d s^l_t|| for every layer l and step t (see the module docstring).

    Args:
        model: a ``StackedRNN``, ``torch.nn.LSTM/GRU/RNN`` or any model the step
            protocol sees (:func:`lsc.models.as_stack`).
        x: input, (batch, time, features) (or tokens (batch, time)), in the model's layout.
        loss: ``loss(outputs) -> scalar`` with ``outputs`` the model's outputs (B, T, out),
            batch-first; close over targets if it needs them. Default: the sum of all
            outputs over batch, steps and units (the paper's "y summed over all outputs").

    Returns:
        :class:`GradientGrid` with ``values`` of shape (L, T).

    Raises:
        NonFiniteError: a state turns NaN/inf; the message names the layer and step.
    """
    stack, xb = prepare(model, x)
    B, T = xb.shape[0], xb.shape[1]
    zeros = [
        torch.zeros(T, B, c.state_size, device=xb.device, dtype=stack.dtype, requires_grad=True) for c in stack.cells
    ]
    with torch.enable_grad():
        y = stack.unroll(xb, hook=lambda l, t, s: s + zeros[l][t])
        assert y is not None  # readout=True: unroll returns the outputs
        if loss is None:
            objective = y.sum()
        else:
            objective = loss(y)
            if not isinstance(objective, Tensor) or objective.numel() != 1:
                shape = tuple(objective.shape) if isinstance(objective, Tensor) else type(objective).__name__
                raise ValueError(f"loss(outputs) must return a scalar tensor, got {shape}")
            objective = objective.reshape(())
        if not bool(torch.isfinite(objective)):
            raise ValueError(f"the objective is {float(objective)} although every state is finite; check the loss")
        grads = torch.autograd.grad(objective, zeros, allow_unused=True)
    values = torch.stack(
        [(torch.zeros(T, B) if g is None else g.detach().norm(dim=-1).cpu()).mean(dim=1) for g in grads]
    )
    name = "sum of outputs" if loss is None else getattr(loss, "__name__", "loss")
    return GradientGrid(values.double().numpy(), name, B)
