"""PNG plots of the analyses, with matplotlib's Agg renderer (the ``plot`` extra:
``pip install 'lsc[plot]'``).

Figures are built as ``matplotlib.figure.Figure`` objects and saved through the Agg
canvas directly, never through ``pyplot``: no global backend switch, no open windows,
safe in threads and headless machines. Every PNG is ``FIGSIZE`` inches at ``DPI``
(640 x 480 pixels by default, not cropped), so tests can check its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .attractors import AttractorReport
    from .gradient_grid import GradientGrid
    from .lyapunov import LyapunovSpectrum
    from .pascal import PascalRNN
    from .smoothness import LossSlice, RadiusSweep

FIGSIZE = (6.4, 4.8)
DPI = 100


def figure(figsize: tuple[float, float] = FIGSIZE) -> Any:
    """A matplotlib figure on the Agg canvas (no display needed); needs the ``plot`` extra."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'lsc[plot]' (or pip install matplotlib)") from None
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` as a PNG (parent folders created) and return the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plots are written as PNG; give a path ending in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _positive(a: np.ndarray) -> np.ma.MaskedArray:
    """Zeros/negatives masked for log axes."""
    return np.ma.masked_less_equal(np.asarray(a, dtype=float), 0.0)


def plot_gradient_grid(grid: GradientGrid, path: str | Path, title: str | None = None) -> Path:
    from matplotlib.colors import LogNorm

    fig = figure()
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1.3]})
    v = _positive(grid.values)
    norm = LogNorm(vmin=float(v.min()), vmax=float(v.max())) if v.count() and v.min() < v.max() else None
    im = top.imshow(v, aspect="auto", origin="lower", norm=norm, cmap="viridis", interpolation="nearest")
    top.set_ylabel("layer l")
    top.set_xlabel("step t")
    fig.colorbar(im, ax=top, label="||dE/ds||")
    steps = np.arange(grid.steps)
    for l in range(grid.layers):
        bottom.plot(steps, _positive(grid.values[l]), label=f"layer {l}", lw=1.2)
    bottom.set_yscale("log")
    bottom.set_xlabel("step t")
    bottom.set_ylabel("||dE/ds^l_t||")
    if grid.layers <= 8:
        bottom.legend(fontsize=7, ncol=2)
    fig.suptitle(title or f"gradient grid ({grid.objective}, batch {grid.batch})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_profiles(
    grids: dict[str, GradientGrid], path: str | Path, layer: int | None = 0, title: str | None = None
) -> Path:
    """Several gradient grids' profiles over t (one layer, or ``None``: all layers) on one
    log axis, e.g. the same model pre-trained to 0.5 and to 1."""
    fig = figure()
    ax = fig.subplots()
    for label, grid in grids.items():
        ax.plot(np.arange(grid.steps), _positive(grid.profile(layer)), lw=1.8, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    which = "all layers" if layer is None else f"layer {layer}"
    ax.set_ylabel(f"||dE/ds_t|| ({which})")
    ax.set_title(title or "gradient over time", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_pascal(results: Sequence[PascalRNN], path: str | Path) -> Path:
    fig = figure()
    ax = fig.subplots()
    for r in results:
        t = np.arange(r.time)
        ax.plot(t, _positive(r.gradient), lw=2, label=f"rho = {r.rho:g}: |dy/dx_t|")
        ax.plot(t, _positive(r.bound), ls="--", color="k", lw=0.8)
    ax.plot([], [], ls="--", color="k", lw=0.8, label="path-count bound")
    ax.set_yscale("log")
    ax.set_xlabel("input step t")
    ax.set_ylabel("|dy/dx_t|")
    first = results[0]
    ax.set_title(f"PascalRNN, L = {first.depth}, T = {first.time}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_lyapunov(spec: LyapunovSpectrum, path: str | Path, title: str | None = None) -> Path:
    fig = figure()
    left, right = fig.subplots(1, 2)
    ex = np.atleast_2d(spec.exponents)
    hist = spec.history if spec.per_layer else spec.history[None]
    for i, row in enumerate(ex):
        label = f"layer {i}" if spec.per_layer else "whole stack"
        left.plot(np.arange(1, row.size + 1), row, marker="o", ms=3, lw=1, label=label)
    left.axhline(0.0, color="k", lw=0.6)
    left.set_xlabel("index i")
    left.set_ylabel("lambda_i (per step)")
    if ex.shape[0] <= 8:
        left.legend(fontsize=7)
    steps = np.arange(spec.warmup + 1, spec.warmup + hist.shape[1] + 1)
    for h in hist:
        right.plot(steps, h[:, 0], lw=1)
    right.axhline(0.0, color="k", lw=0.6)
    right.set_xlabel("step")
    right.set_ylabel("running lambda_1")
    fig.suptitle(title or f"Lyapunov spectrum ({spec.steps} steps after {spec.warmup} warm-up)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_loss_slice(sl: LossSlice, path: str | Path, title: str | None = None) -> Path:
    fig = figure()
    ax = fig.subplots()
    v = np.where(np.isfinite(sl.values), sl.values, np.nan)
    if v.ndim == 1:
        ax.plot(sl.offsets[0], v, lw=1.5)
        if np.nanmin(v) > 0:
            ax.set_yscale("log")
        ax.set_xlabel(f"offset along {sl.directions[0]} direction")
        ax.set_ylabel("loss")
    else:
        a, b = np.meshgrid(sl.offsets[0], sl.offsets[1], indexing="ij")
        z = np.log10(np.clip(v, 1e-300, None)) if np.nanmin(v) > 0 else v
        cs = ax.contourf(b, a, z, levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="log10 loss" if np.nanmin(v) > 0 else "loss")
        ax.plot([0], [0], "r+", ms=10)
        ax.set_xlabel(f"offset along {sl.directions[1]} direction")
        ax.set_ylabel(f"offset along {sl.directions[0]} direction")
    ax.set_title(title or "loss slice", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_radius_sweep(sweep: RadiusSweep, path: str | Path, title: str | None = None) -> Path:
    fig = figure()
    ax = fig.subplots()
    ax.plot(sweep.radii, _positive(sweep.top), marker="o", lw=1.5)
    ax.axvline(1.0, color="k", ls=":", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("spectral radius of W_hh")
    ax.set_ylabel("beta = ||Hessian||_2")
    ax.set_title(title or "loss smoothness against the recurrent radius", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_attractors(report: AttractorReport, path: str | Path, title: str | None = None) -> Path:
    fig = figure()
    ax = fig.subplots()
    orbits = report.orbits  # (inputs, n, keep, 2)
    colors = [f"C{i % 10}" for i in range(orbits.shape[0])]
    for i, tails in enumerate(orbits):
        pts = tails.reshape(-1, 2)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.25, color=colors[i])
        ax.scatter([], [], s=12, color=colors[i], label=f"input {i}: orbit tails")
        ends = tails[:, -1]
        ax.scatter(ends[:, 0], ends[:, 1], s=10, color=colors[i], marker="x", lw=0.8)
    fixed = [a for a in report.attractors if a.period == 1]
    for a in report.attractors:  # filled: attracting, open: repelling; cycles as closed polygons
        xy = report.project(a.states)
        c = colors[a.input_index]
        face = c if a.attracting else "none"
        if a.period == 1:
            ax.scatter(xy[:, 0], xy[:, 1], s=60, facecolors=face, edgecolors=c, lw=1.5, zorder=3)
        else:
            loop = np.vstack([xy, xy[:1]])
            ax.plot(loop[:, 0], loop[:, 1], color=c, lw=1, zorder=3)
            ax.scatter(xy[:, 0], xy[:, 1], s=30, facecolors=face, edgecolors=c, marker="s", zorder=3)
    ax.scatter([], [], s=60, facecolors="grey", edgecolors="grey", label="attracting (rho < 1)")
    ax.scatter([], [], s=60, facecolors="none", edgecolors="grey", label="repelling (rho > 1)")
    ax.set_xlabel("principal axis 1")
    ax.set_ylabel("principal axis 2")
    n_fixed = len(fixed)
    n_cycles = sum(1 for a in report.attractors if a.period > 1)
    stable = ", stabilised" if report.stable else ""
    ax.set_title(
        title
        or f"attractors{stable}: {n_fixed} fixed points, {n_cycles} cycles, "
        f"{sum(report.unresolved)} unresolved of {report.n_init * orbits.shape[0]} orbits",
        fontsize=9,
    )
    if orbits.shape[0] <= 6:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
