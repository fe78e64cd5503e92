"""Render the analysis figures of the docs (docs/img/*.png) and print their numbers.

    python benchmarks/analysis_figures.py [OUT_DIR]      # default docs/img

1. pascal_rnn.png: PascalRNN |dy/dx_t| at rho = 1 and 0.5 (L = 10, T = 100) with the
   path-count bound (lsc_paper.md 1.4, Fig. 1c first row).
2. gradient_grid_gru.png: layer-0 gradient over t of a 5-layer width-32 GRU pre-trained
   to 0.5 and to 1 (time and depth edges; Fig. 1c second row, at small scale).
3. smoothness_sweep.png: the top Hessian eigenvalue of an Elman RNN's MSE against the
   spectral radius of W_hh, for sequence lengths 10, 30 and 100 (Ribeiro et al.).
About 2 minutes on 2 cores.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

import lsc
from lsc.analysis import gradient_grid, pascal_rnn, radius_sweep
from lsc.analysis.plots import figure, plot_profiles, save_figure

RADII = [0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5, 2.0]


def main(out: Path) -> None:
    torch.set_num_threads(1)
    one, half = pascal_rnn(10, 100, 1.0), pascal_rnn(10, 100, 0.5)
    one.plot(out / "pascal_rnn.png", others=[half])
    print(f"PascalRNN L=10 T=100: |dy/dx_0| = {one.gradient[0]:.6g} (rho 1), {half.gradient[0]:.16g} (rho 0.5)")

    torch.manual_seed(0)
    base = lsc.models.StackedRNN("gru", input_size=8, hidden_size=32, num_layers=5, output_size=4)
    x = torch.randn(32, 100, 8, generator=torch.Generator().manual_seed(1))
    grids = {"PyTorch default init": gradient_grid(base, x)}
    for target in (0.5, 1.0):
        model = copy.deepcopy(base)
        r = lsc.pretrain(
            model,
            None,
            target=target,
            kinds=("time", "depth"),
            max_seconds=40,
            time_steps=100,
            batch_size=32,
            seed=0,
            progress=False,
        )
        grids[f"pre-trained to {target:g} ({r.stopped}, {r.steps} steps)"] = gradient_grid(model, x)
    plot_profiles(grids, out / "gradient_grid_gru.png", layer=0, title="5-layer GRU, width 32, T = 100: layer 0")
    for label, g in grids.items():
        print(
            f"GRU 5x32 {label}: layer-0 flatness (max/min over t) all {g.flatness(0):.3g}, "
            f"t < 50 {g.flatness(0, slice(0, 50)):.3g}; |grad| at t = 0, 50, 99: "
            + ", ".join(f"{v:.3g}" for v in g.values[0, [0, 50, 99]])
        )

    torch.manual_seed(0)
    elman = lsc.models.StackedRNN("elman", input_size=2, hidden_size=16, num_layers=1, output_size=1).double()
    with torch.no_grad():
        torch.nn.init.orthogonal_(elman.cells[0].weight_hh)
    fig = figure()
    ax = fig.subplots()
    for T in (10, 30, 100):
        g = torch.Generator().manual_seed(1)
        xs = 0.5 * torch.randn(4, T, 2, generator=g, dtype=torch.float64)
        ys = torch.randn(4, T, 1, generator=g, dtype=torch.float64)
        sweep = radius_sweep(elman, (xs, ys), RADII, iters=20)
        ax.plot(sweep.radii, sweep.top, marker="o", label=f"T = {T}")
        print(f"Elman 16, T = {T}: beta by radius " + ", ".join(f"{r:g}: {b:.3g}" for r, b in zip(RADII, sweep.top)))
    ax.axvline(1.0, color="k", ls=":", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("spectral radius of W_hh (r x orthogonal)")
    ax.set_ylabel("beta = top |Hessian eigenvalue| of the MSE")
    ax.set_title("Elman RNN, width 16: loss smoothness against the recurrent radius", fontsize=10)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "smoothness_sweep.png")
    print(f"wrote {out}/pascal_rnn.png, gradient_grid_gru.png, smoothness_sweep.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "img")
