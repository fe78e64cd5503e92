"""Seeing gradients: the gradient grid, PascalRNN and the path-count bound, Lyapunov
spectra, loss smoothness and attractors (issue 7). Plots need matplotlib (the ``plot``
extra); everything else needs only torch and numpy.
"""

from .attractors import Attractor, AttractorReport, attractors
from .gradient_grid import GradientGrid, gradient_grid
from .lyapunov import LyapunovSpectrum, lyapunov_spectrum
from .pascal import PascalRNN, pascal_bound, pascal_rnn, path_count_bound
from .smoothness import (
    LossSlice,
    RadiusSweep,
    Smoothness,
    loss_slice,
    radius_sweep,
    recurrent_radius,
    set_recurrent_radius,
    smoothness,
)
from .stabilize import stabilize

__all__ = [
    "Attractor",
    "AttractorReport",
    "GradientGrid",
    "LossSlice",
    "LyapunovSpectrum",
    "PascalRNN",
    "RadiusSweep",
    "Smoothness",
    "attractors",
    "gradient_grid",
    "loss_slice",
    "lyapunov_spectrum",
    "pascal_bound",
    "pascal_rnn",
    "path_count_bound",
    "radius_sweep",
    "recurrent_radius",
    "set_recurrent_radius",
    "smoothness",
    "stabilize",
]
