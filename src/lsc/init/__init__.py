"""Analytic initialisations and the theory behind them.

* :func:`apply` / :func:`available`: named inits (glorot, he, orthogonal, identity, chrono,
  critical, rescaled_glorot, lru_ring) for ``StackedRNN``, ``FFN`` and the user's
  ``torch.nn.LSTM/GRU/RNN/Linear``, per gate block and seeded;
* :mod:`lsc.init.meanfield`: the mean-field calculator of LSTMs and GRUs (Gilboa et al.
  2019): fixed-point variances, time scales and Jacobian moments;
* :func:`critical`: the LSTM/GRU init chosen from that theory for a sequence length;
* :func:`rescaled_glorot_scale`: c_n of Bar et al. (2025);
* :func:`check_lsc`: how far an init is from the Local Stability Condition.

Where theory gives a stable start, use it; where it does not, :func:`lsc.pretrain` takes over.
"""

from . import meanfield
from .check import InitCheck, check_lsc
from .critical import CriticalInit, LayerChoice
from .meanfield import GateInit, MeanField
from .registry import InitInfo, apply, available, critical
from .rescaled import (
    rescaled_glorot_eigenvalues,
    rescaled_glorot_matrix,
    rescaled_glorot_scale,
)

__all__ = [
    "CriticalInit",
    "GateInit",
    "InitCheck",
    "InitInfo",
    "LayerChoice",
    "MeanField",
    "apply",
    "available",
    "check_lsc",
    "critical",
    "meanfield",
    "rescaled_glorot_eigenvalues",
    "rescaled_glorot_matrix",
    "rescaled_glorot_scale",
]
