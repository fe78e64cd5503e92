"""fig1-paths: the path-count explosion and rho = 0.5 (docs/design.md A1.4, Fig. 1).

* PascalRNN y^l_t = rho (y^{l-1}_t + y^l_{t-1}): |dy/dx_t| at rho = 1 and 0.5 against the
  path-count bound (exact for this linear model).
* A deep GRU from PyTorch's default init and pre-trained (time and depth edges) to rho = 1
  and to rho = 0.5: the layer-0 gradient ||dE/ds^0_t|| over t (E = sum of all outputs) on
  the same Gaussian input, same seeds across conditions. Headline: the early/late ratio
  g(t = 0) / g(t = T - 1) and the flatness max_t / min_t of the layer-0 profile.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from ..analysis.plots import figure, save_figure
from .base import Experiment, Logger, Run, RunRecord
from .registry import register
from .summaries import group, mean_std, table

TARGETS = {"default": None, "rho1": 1.0, "rho0.5": 0.5}


class Fig1Paths(Experiment):
    name = "fig1-paths"
    claim = (
        "With every local Jacobian at radius 1 the gradient adds up over the C(dl+dt, dt) depth-time paths "
        "(PascalRNN, L = 10, T = 100: |dy/dx_0| ~ 4e13); at radius 0.5 it stays ~1, and a deep GRU pre-trained "
        "to 0.5 has a flat gradient over time while one pre-trained to 1 grows towards early steps."
    )
    source = "Herranz-Celotti & Rouat, Fig. 1 (docs/design.md A1.4)"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "pascal": (4, 20),
            "cell": "gru",
            "layers": 2,
            "width": 8,
            "time": 20,
            "seconds": None,
            "steps": 20,
            "seeds": [0],
        },
        "cpu": {
            "pascal": (10, 100),
            "cell": "gru",
            "layers": 5,
            "width": 32,
            "time": 100,
            "seconds": None,
            "steps": 1000,
            "seeds": [0, 1, 2],
        },
        "paper": {
            "pascal": (10, 100),
            "cell": "gru",
            "layers": 7,
            "width": 128,
            "time": 500,
            "seconds": None,
            "steps": 5000,
            "seeds": [0, 1, 2, 3],
        },
    }

    def runs(self, preset: str) -> list[Run]:
        p = self.params(preset)
        depth, time = p["pascal"]
        out = [
            Run(f"pascal-rho{rho:g}", {"kind": "pascal", "depth": depth, "time": time, "rho": rho})
            for rho in (1.0, 0.5)
        ]
        for seed in p["seeds"]:
            for cond, target in TARGETS.items():
                out.append(
                    Run(
                        f"grid-{cond}-s{seed}",
                        {
                            "kind": "grid",
                            "condition": cond,
                            "target": target,
                            "cell": p["cell"],
                            "layers": p["layers"],
                            "width": p["width"],
                            "time": p["time"],
                            "pretrain_seconds": p["seconds"],
                            "pretrain_steps": p["steps"],
                            "seed": seed,
                        },
                    )
                )
        return out

    def execute(self, config: dict[str, Any], out: Path, log: Logger) -> dict[str, Any]:
        import torch

        import lsc
        from lsc.analysis import gradient_grid, pascal_rnn

        if config["kind"] == "pascal":
            r = pascal_rnn(config["depth"], config["time"], config["rho"])
            for t, (g, b) in enumerate(zip(r.gradient, r.bound)):
                log(t=t, gradient=float(g), bound=float(b))
            return {
                "gradient_t0": float(r.gradient[0]),
                "gradient_last": float(r.gradient[-1]),
                "max_rel_error_vs_bound": float(max(abs(g - b) / b for g, b in zip(r.gradient, r.bound))),
            }
        seed = config["seed"]
        torch.manual_seed(seed)  # the same base model for every condition of a seed
        model = lsc.models.StackedRNN(
            config["cell"], input_size=8, hidden_size=config["width"], num_layers=config["layers"], output_size=4
        )
        x = torch.randn(32, config["time"], 8, generator=torch.Generator().manual_seed(1000 + seed))
        result: dict[str, Any] = {}
        if config["target"] is not None:
            pre = lsc.pretrain(
                model,
                None,
                target=config["target"],
                kinds=("time", "depth"),
                max_seconds=config["pretrain_seconds"],
                max_steps=config["pretrain_steps"],
                time_steps=config["time"],
                batch_size=32,
                seed=seed,
                progress=False,
            )
            result["pretrain"] = {
                "stopped": pre.stopped,
                "steps": pre.steps,
                "seconds": pre.seconds,
                "converged": pre.converged,
            }
        rep = lsc.measure(model, x[:8], kinds=("time", "depth"), seed=seed)
        result["radius"] = {k: v for k, v in _kind_means(rep).items()}
        g = gradient_grid(model, x)
        prof = g.profile(0)
        for t, v in enumerate(prof):
            log(t=t, layer0=float(v))
        result.update(
            {
                "g_t0": float(prof[0]),
                "g_last": float(prof[-1]),
                "early_late_ratio": float(prof[0] / prof[-1]),
                "flatness": g.flatness(0),
                "profile_layer0": [float(v) for v in prof],
                "diverged": not all(math.isfinite(float(v)) for v in prof),
            }
        )
        return result

    def report(self, records: list[RunRecord], figures: Path, preset: str) -> str:
        parts = []
        pas = {r.config.get("rho"): r for r in records if r.config.get("kind") == "pascal" and r.state == "ok"}
        if pas:
            fig = figure()
            ax = fig.subplots()
            rows: list[tuple[Any, ...]] = []
            for rho, r in sorted(pas.items(), reverse=True):
                m = r.metrics()
                ax.plot([row["t"] for row in m], [row["gradient"] for row in m], label=f"rho = {rho:g} (autograd)")
                ax.plot([row["t"] for row in m], [row["bound"] for row in m], "k:", lw=0.8)
                rows.append(
                    (
                        f"{rho:g}",
                        f"{r.result['gradient_t0']:.3g}",
                        f"{r.result['gradient_last']:.3g}",
                        f"{r.result['max_rel_error_vs_bound']:.1e}",
                    )
                )
            ax.set_yscale("log")
            ax.set_xlabel("input step t")
            ax.set_ylabel("|dy/dx_t|")
            ax.set_title(
                f"PascalRNN L = {r.config['depth']}, T = {r.config['time']} (dotted: path-count bound)", fontsize=10
            )
            ax.legend()
            fig.tight_layout()
            png = save_figure(fig, figures / "pascal.png")
            parts.append(table(("rho", "|dy/dx_0|", "|dy/dx_{T-1}|", "max rel. error vs bound"), rows))
            parts.append(f"![PascalRNN]({png})")
        grids = [r for r in records if r.config.get("kind") == "grid"]
        if grids:
            by = group(grids, lambda r: r.config["condition"])
            rows = []
            fig = figure()
            ax = fig.subplots()
            for cond in TARGETS:
                rs = [r for r in by.get(cond, []) if r.state == "ok"]
                bad = [r for r in by.get(cond, []) if r.state in ("failed", "diverged")]
                rad = lambda k, rs=rs: mean_std(r.result.get("radius", {}).get(k) for r in rs)  # noqa: E731
                conv = sum(bool(r.result.get("pretrain", {}).get("converged")) for r in rs)
                rows.append(
                    (
                        cond,
                        rad("time"),
                        rad("depth"),
                        mean_std(r.result["g_t0"] for r in rs),
                        mean_std(r.result["g_last"] for r in rs),
                        mean_std(r.result["early_late_ratio"] for r in rs),
                        mean_std(_early_mid(r) for r in rs),
                        mean_std(r.result["flatness"] for r in rs),
                        "—" if cond == "default" else f"{conv}/{len(rs)}",
                        len(bad),
                    )
                )
                for i, r in enumerate(rs):
                    ax.plot(
                        r.result["profile_layer0"],
                        color={"default": "C2", "rho1": "C0", "rho0.5": "C1"}[cond],
                        alpha=0.8,
                        label=cond if i == 0 else None,
                    )
            ax.set_yscale("log")
            ax.set_xlabel("step t")
            ax.set_ylabel("||dE/ds^0_t|| (layer 0)")
            c = grids[0].config
            ax.set_title(
                f"{c['cell'].upper()} {c['layers']} x {c['width']}, T = {c['time']}: layer-0 gradient, one "
                f"line per seed",
                fontsize=10,
            )
            ax.legend()
            fig.tight_layout()
            png = save_figure(fig, figures / "gradient_grid.png")
            parts.append(
                table(
                    (
                        "condition",
                        "time radius",
                        "depth radius",
                        "g(t=0)",
                        "g(T-1)",
                        "g(0)/g(T-1)",
                        "g(0)/g(T/2)",
                        "flatness max/min",
                        "pre-training converged",
                        "failed/diverged",
                    ),
                    rows,
                )
            )
            parts.append(f"![gradient profiles]({png})")
            parts.append(self.verdict(pas, by))
        return "\n\n".join(parts)

    def verdict(self, pas: dict, by: dict) -> str:
        from .summaries import mean

        bits = []
        if 1.0 in pas and 0.5 in pas:
            g1, g5 = pas[1.0].result["gradient_t0"], pas[0.5].result["gradient_t0"]
            bits.append(
                f"PascalRNN: |dy/dx_0| = {g1:.3g} at rho = 1 vs {g5:.3g} at rho = 0.5 "
                f"({'agrees' if g1 > 1e3 * g5 and g5 < 10 else 'disagrees'} with the path-count claim)."
            )
        r1 = {r.config["seed"]: _early_mid(r) for r in by.get("rho1", []) if r.state == "ok"}
        r5 = {r.config["seed"]: _early_mid(r) for r in by.get("rho0.5", []) if r.state == "ok"}
        seeds = sorted(set(r1) & set(r5))  # paired by seed: same starting weights and inputs
        if seeds:
            m1, m5 = mean(r1.values()), mean(r5.values())
            wins = sum(r1[s] > r5[s] for s in seeds)
            word = "agrees" if m1 > m5 and wins == len(seeds) else ("is inconclusive" if m1 > m5 else "disagrees")
            bits.append(
                f"GRU: the layer-0 gradient ratio g(t = 0) / g(t = T/2) is {m1:.3g} at rho = 1 vs {m5:.3g} "
                f"at rho = 0.5 "
                f"(rho = 1 larger in {wins}/{len(seeds)} paired seeds): this {word} with the claim."
            )
        return "**Verdict.** " + " ".join(bits) if bits else ""


def _early_mid(r: RunRecord) -> float:
    p = r.result["profile_layer0"]
    return p[0] / p[len(p) // 2]


def _kind_means(rep: Any) -> dict[str, float]:
    d = rep.to_dict()
    out: dict[str, list[float]] = {}
    for e in d.get("edges", []):
        out.setdefault(e["kind"], []).append(e["mean"])
    return {k: sum(v) / len(v) for k, v in out.items()}


register(Fig1Paths())
