"""meanfield-critical: Gilboa et al., "Dynamical Isometry and a Mean Field Theory of LSTMs
and GRUs" (init_theories.md A.7-A.8).

``lsc train --task padded-mnist -o length=T`` (MNIST rows, then zeros up to T steps, label
read at the end) for a one-layer LSTM / GRU initialised ``standard`` (Glorot, zero biases)
or ``critical`` (:mod:`lsc.init.critical`, the forget-gate time scale set from T), at
growing T, same seeds (weights of the non-gate parts and data order) across inits.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, ClassVar

from ..analysis.plots import figure, save_figure
from ..job import TrainJob
from .base import Run, RunRecord, TrainExperiment, present
from .registry import register
from .summaries import group, mean, mean_std, table

INITS = {"standard": "glorot", "critical": "critical"}


class MeanfieldCritical(TrainExperiment):
    name = "meanfield-critical"
    claim = (
        "The mean-field critical init of LSTMs and GRUs keeps them trainable on long padded sequences where "
        "the standard "
        "init fails: test accuracy vs sequence length T stays high for critical and falls for standard."
    )
    source = "Gilboa, Chang, Chen, Yang, Schoenholz, Chi & Pennington 2019 (init_theories.md A.8)"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "lengths": [30],
            "cells": ["lstm"],
            "width": 8,
            "epochs": 1,
            "batch": 64,
            "lr": 1e-3,
            "seeds": [0],
            "task": "delayed-xor",
        },
        "cpu": {
            "lengths": [50, 200, 500],
            "cells": ["lstm", "gru"],
            "width": 64,
            "epochs": 2,
            "batch": 64,
            "lr": 1e-3,
            "seeds": [0, 1],
            "task": "padded-mnist",
        },
        "paper": {
            "lengths": [100, 300, 1000, 3000],
            "cells": ["lstm", "gru"],
            "width": 256,
            "epochs": 30,
            "batch": 128,
            "lr": 1e-3,
            "seeds": [0, 1, 2],
            "task": "padded-mnist",
        },
    }

    def runs(self, preset: str) -> list[Run]:
        p = self.params(preset)
        keep = ("width", "epochs", "batch", "lr", "task")
        return [
            Run(
                f"{cell}-T{T}-{init}-s{seed}",
                {"cell": cell, "length": T, "init": init, "seed": seed, **{k: p[k] for k in keep}},
            )
            for cell, T, seed, init in itertools.product(p["cells"], p["lengths"], p["seeds"], INITS)
        ]

    @staticmethod
    def job(config: dict[str, Any]) -> TrainJob:
        task = config["task"]
        opts = (
            {"length": config["length"]}
            if task == "padded-mnist"
            else {"delay": config["length"], "train_size": 256, "val_size": 64, "test_size": 64}
        )
        return TrainJob(
            task=task,
            task_options=opts,
            cell=config["cell"],
            layers=1,
            width=config["width"],
            init=INITS[config["init"]],
            epochs=config["epochs"],
            batch_size=config["batch"],
            lr=config["lr"],
            seed=config["seed"],
        )

    def report(self, records: list[RunRecord], figures: Path, preset: str) -> str:
        recs = present(records)
        if not recs:
            return ""
        lengths = sorted({r.config["length"] for r in recs})
        cells = list(dict.fromkeys(r.config["cell"] for r in recs))
        by = group(recs, lambda r: (r.config["cell"], r.config["init"], r.config["length"]))
        rows = []
        for cell in cells:
            for init in INITS:
                cells_txt = []
                for T in lengths:
                    rs = by.get((cell, init, T), [])
                    ok = [r for r in rs if r.state == "ok" and r.result.get("test") is not None]
                    bad = sum(r.state in ("failed", "diverged") for r in rs)
                    cells_txt.append(
                        mean_std((100 * r.result["test"] for r in ok), "{:.1f}")
                        + (f" [{bad} failed/diverged]" if bad else "")
                    )
                rows.append((cell, init, *cells_txt))
        parts = [table(("cell", "init", *(f"test acc % at T = {T}" for T in lengths)), rows)]
        fig = figure()
        ax = fig.subplots()
        for i, cell in enumerate(cells):
            for init, style in zip(INITS, ("--", "-")):
                ax.plot(
                    lengths,
                    [
                        mean(
                            100 * r.result["test"]
                            for r in by.get((cell, init, T), [])
                            if r.state == "ok" and r.result.get("test") is not None
                        )
                        for T in lengths
                    ],
                    style,
                    marker="o",
                    color=f"C{i}",
                    label=f"{cell} {init}",
                )
        ax.set_xscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("test accuracy % (mean over seeds)")
        ax.legend()
        fig.tight_layout()
        parts.append(f"![accuracy vs T]({save_figure(fig, figures / 'accuracy_vs_length.png')})")
        pairs = group(
            [r for r in recs if r.state in ("ok", "diverged")],
            lambda r: (r.config["cell"], r.config["length"], r.config["seed"]),
        )
        acc = lambda r: (r.result.get("test") or 0.0) if r.state == "ok" else -1.0  # noqa: E731
        n = wins = 0
        for rs in pairs.values():
            d = {r.config["init"]: r for r in rs}
            if "critical" in d and "standard" in d:
                n, wins = n + 1, wins + (acc(d["critical"]) > acc(d["standard"]))
        gaps = []
        for cell in cells:
            for T in lengths:
                c = mean(
                    100 * r.result["test"]
                    for r in by.get((cell, "critical", T), [])
                    if r.state == "ok" and r.result.get("test") is not None
                )
                st = mean(
                    100 * r.result["test"]
                    for r in by.get((cell, "standard", T), [])
                    if r.state == "ok" and r.result.get("test") is not None
                )
                if c == c and st == st:
                    gaps.append(f"{cell} T = {T}: {c - st:+.1f}")
        word = (
            "agrees with"
            if n and wins / n >= 0.75
            else "disagrees with"
            if n and wins / n <= 0.25
            else "is inconclusive on"
        )
        parts.append(
            f"**Verdict.** Critical beats standard in {wins}/{n} paired runs (same cell, T, seed); mean gaps in "
            f"test accuracy points: {'; '.join(gaps)}. This {word} the claim at this scale"
            + (
                " (short training: absolute accuracies are far below the paper's)."
                if recs[0].config["epochs"] < 10
                else "."
            )
        )
        return "\n\n".join(parts)


register(MeanfieldCritical())
