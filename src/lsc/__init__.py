"""lsc: make deep and recurrent networks trainable by controlling how their gradients flow.

Measure the spectral radius of every local Jacobian of a network (across time and
depth) with :func:`measure`, and pre-train the network so every radius sits at a
target with :func:`pretrain` (its settings: :class:`PretrainConfig`); train it on a task
with :func:`train` (:class:`TrainConfig`); see ``README.md`` and ``docs/design.md``.
"""

from . import analysis, init, jacobian, models, tasks
from .comparison import CompareConfig, Comparison, compare
from .condition import EdgeStat, StabilityReport, measure, resolve_target
from .grid import KINDS
from .models.io import load, save
from .monitor import Monitor
from .parts import view
from .pretraining import PretrainConfig, PretrainResult, pretrain
from .train import TrainConfig, TrainResult, train
from .version import __version__

__all__ = [
    "KINDS",
    "CompareConfig",
    "Comparison",
    "EdgeStat",
    "Monitor",
    "PretrainConfig",
    "PretrainResult",
    "StabilityReport",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "analysis",
    "compare",
    "init",
    "jacobian",
    "load",
    "measure",
    "models",
    "pretrain",
    "resolve_target",
    "save",
    "tasks",
    "train",
    "view",
]
