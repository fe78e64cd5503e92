"""Helpers shared by the tests (imported, not injected): small random cells of every kind
and a reference Jacobian."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from lsc.jacobian import LocalJacobian
from lsc.models import make_cell

CELL_KINDS = [
    pytest.param("lstm", {}, id="lstm"),
    pytest.param("lstm", {"proj_size": 4}, id="lstm-proj"),
    pytest.param("gru", {}, id="gru"),
    pytest.param("elman", {"nonlinearity": "tanh"}, id="elman-tanh"),
    pytest.param("elman", {"nonlinearity": "relu"}, id="elman-relu"),
    pytest.param("elman", {"nonlinearity": "sigmoid"}, id="elman-sigmoid"),
    pytest.param("alif", {}, id="alif"),
    pytest.param("alifb", {}, id="alifb"),
    pytest.param("lru", {}, id="lru"),
]


def random_cell(kind: str, opts: dict, *, input_size: int = 6, width: int = 24, scale: float = 2.0, seed: int = 0):
    """A cell with weights scaled up from PyTorch's default so its radii are O(1)."""
    torch.manual_seed(seed)
    cell = make_cell(kind, input_size, width, **opts).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.mul_(scale)
    return cell


def time_edge(cell, *, batch: int = 8, warmup: int = 5, seed: int = 1) -> LocalJacobian:
    """The cell's time Jacobian at a state reached on its own trajectory."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, warmup + 1, cell.input_size, generator=g, dtype=torch.float64)
    s = cell.init_state(batch)
    with torch.no_grad():
        for t in range(warmup):
            s = cell.transition(x[:, t], s)
    return LocalJacobian.of(partial(cell.transition, x[:, warmup]), s)


def reference_dense(J: LocalJacobian) -> torch.Tensor:
    """Per-sample Jacobians by plain autograd (diagonal blocks of the full batch Jacobian)."""
    full = torch.autograd.functional.jacobian(J.fn, J.point)  # (B, m, B, n)
    blocks = []
    for b in range(J.batch):
        block = full[b, :, b, :]
        if J.rows is not None:
            block = block[J.rows[b], :]
        if J.cols is not None:
            block = block[:, J.cols[b]]
        blocks.append(block)
    return torch.stack(blocks)


def flat_grad(value: torch.Tensor, params) -> torch.Tensor:
    """All parameters' gradients in one vector (zeros where a parameter does not matter,
    e.g. an additive bias for a Jacobian)."""
    grads = torch.autograd.grad(value, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for g, p in zip(grads, params)])


def reference_radius(J: LocalJacobian) -> torch.Tensor:
    """Per-sample spectral radius from plain autograd Jacobians and ``eigvals``: an
    independent reference, differentiable with respect to the parameters."""
    full = torch.autograd.functional.jacobian(J.fn, J.point, create_graph=True)
    blocks = torch.stack([full[b, :, b, :] for b in range(J.batch)])
    return torch.linalg.eigvals(blocks).abs().amax(-1)
