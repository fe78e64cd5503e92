"""lsc: make deep and recurrent networks trainable by controlling how their gradients flow.

Measure the spectral radius of every local Jacobian of a network (across time and
depth) with :func:`measure`; see ``README.md`` and ``DESIGN.md``.
"""

from . import jacobian, models
from .condition import EdgeStat, StabilityReport, measure, resolve_target
from .grid import KINDS

__version__ = "0.1.0"

__all__ = ["KINDS", "EdgeStat", "StabilityReport", "jacobian", "measure", "models", "resolve_target", "__version__"]
