"""Chrono initialisation (Tallec & Ollivier, ICLR 2018, "Can recurrent neural networks warp
time?"; init_theories.md D).

A gate bias b gives a unit the characteristic time T = 1 / (1 - sigma(b)). Chrono spreads
the times over [1, T_max]:

* LSTM: b_f = ln(u), u ~ U[1, T_max - 1], and b_i = -b_f; the other gate biases are 0;
* GRU (PyTorch form h_t = (1 - z) n + z h_{t-1}, z keeps the past): b_z = ln(u), the
  same u; the other biases are 0.

PyTorch adds two bias vectors, ``bias_ih + bias_hh``; the prescribed value goes into
``bias_ih`` and ``bias_hh`` is zeroed, so their *sum* is what the method prescribes.
Weights are left as they are.
"""

from __future__ import annotations

import torch

from ..checks import check_number
from ..models.torch_layout import TorchLayoutCell
from . import draws
from .classical import NotApplicable
from .units import Unit, gate_names, gate_rows

_CHRONO_GATES: tuple[tuple[str, ...], ...] = (("i", "f", "g", "o"), ("r", "z", "n"))  # LSTM, GRU


def chrono_biases(n: int, t_max: float, gen: torch.Generator) -> torch.Tensor:
    """ln(u), u ~ U[1, t_max - 1] (float64)."""
    u = 1.0 + torch.rand(n, generator=gen, dtype=torch.float64) * (t_max - 2.0)
    return torch.log(u)


def chrono(unit: Unit, gen: torch.Generator, *, t_max: float | None = None) -> None:
    if t_max is None:
        raise ValueError("chrono needs t_max=: the longest time dependency to cover, e.g. the sequence length")
    if check_number(t_max, "chrono t_max") <= 2:
        raise ValueError(f"chrono t_max must be a number > 2 (times are drawn from [1, t_max - 1]), got {t_max!r}")
    m = unit.module
    if unit.kind != "gated" or not isinstance(m, TorchLayoutCell) or gate_names(m) not in _CHRONO_GATES:
        raise NotApplicable("chrono sets the forget/update gate biases of LSTM and GRU cells")
    if m.bias_ih is None or m.bias_hh is None:  # m.bias, spelled out for the type checker
        raise NotApplicable("chrono sets gate biases, and this layer was built with bias=False")
    b = torch.zeros(m.bias_ih.shape, dtype=torch.float64)
    keep = chrono_biases(m.cell_size, float(t_max), gen)
    if gate_names(m)[0] == "i":
        b[gate_rows(m, "f")] = keep
        b[gate_rows(m, "i")] = -keep
    else:
        b[gate_rows(m, "z")] = keep
    draws.put(m.bias_ih, b)
    draws.constant(m.bias_hh, 0.0)
