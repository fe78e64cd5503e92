"""fig3-deep-rnn: deep RNNs from PyTorch's default init vs pre-trained to rho = 1 vs
rho = 0.5 (docs/design.md A4.5 and A5, Fig. 3).

Every run is ``lsc train`` (the command line, run in the worker's process) with the same
seed across the three conditions of a (cell, depth, seed): same starting weights, same data
order. The paired comparison the paper reports is the share of (task, cell, depth, seed)
pairs where rho = 0.5 beats rho = 1, where rho = 0.5 beats the default, and where rho = 1
beats the default (ALIF and non-ALIF apart), by the test metric (accuracy; perplexity for
language modelling, lower wins; a diverged run loses).

Tasks: the preset's ``task`` (sl-MNIST), then its ``extra`` tasks, each run only when its
files are present (``when_files``: SHD, PTB) or replaced by its ``otherwise`` (the offline
char-level corpus for PTB). An extra task may narrow cells, layers, seeds or epochs; its
run ids start with the task name.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

from ..job import TrainJob
from .base import (
    Run,
    RunRecord,
    TrainExperiment,
    figure,
    group,
    mean_std,
    present,
    register,
    save_figure,
    table,
)

CONDITIONS = {"default": None, "rho1": "1", "rho0.5": "0.5"}
SHD_FILES, PTB_FILES = ("shd_train.h5", "shd_test.h5"), ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")
CHAR = {"task": "char", "options": {"max_chars": 300000, "bptt": 100}}
PAIRS = (("rho0.5", "rho1"), ("rho0.5", "default"), ("rho1", "default"))


class Fig3DeepRNN(TrainExperiment):
    name = "fig3-deep-rnn"
    claim = (
        "Pre-training deep RNNs (LSTM, GRU, Elman, ALIF; depth 2 and 5) to rho = 0.5 beats pre-training to rho = 1 and "
        "beats the default init in most paired runs, the advantage growing with depth (Fig. 3 as read in docs/design.md A5)."
    )
    source = "Herranz-Celotti & Rouat, Fig. 3 (docs/design.md A4.5, A5)"
    presets = {
        "smoke": {"task": "delayed-xor", "options": {"delay": 5, "train_size": 128, "val_size": 64, "test_size": 64},
                  "cells": ["gru"], "layers": [2], "width": 8, "epochs": 1, "batch": 32, "lr": 3e-3, "seeds": [0],
                  "pretrain_seconds": None, "pretrain_steps": 5},
        "cpu": {"task": "slmnist", "options": {}, "cells": ["gru", "lstm", "elman", "alif"], "layers": [2, 5],
                "width": 64, "epochs": 3, "batch": 64, "lr": 1e-3, "seeds": [0, 1],
                "pretrain_seconds": None, "pretrain_steps": 500,
                "extra": [{"task": "shd", "options": {}, "when_files": ["shd", SHD_FILES], "cells": ["alif", "lstm"],
                           "layers": [2], "epochs": 2},
                          {"task": "ptb", "options": {"bptt": 100}, "when_files": ["ptb", PTB_FILES], "cells": ["gru", "lstm"],
                           "layers": [5], "seeds": [0], "epochs": 1, "batch": 32,
                           "otherwise": {**CHAR, "cells": ["gru", "lstm"], "layers": [5], "seeds": [0], "epochs": 1, "batch": 32}}]},
        "paper": {"task": "slmnist", "options": {"time_repeat": 2}, "cells": ["gru", "lstm", "elman", "alif"],
                  "layers": [2, 5], "width": 256, "epochs": 50, "batch": 64, "lr": 1e-3, "seeds": [0, 1, 2, 3],
                  "pretrain_seconds": None, "pretrain_steps": 5000,
                  "extra": [{"task": "shd", "options": {}, "when_files": ["shd", SHD_FILES]},
                            {"task": "ptb", "options": {"bptt": 300}, "when_files": ["ptb", PTB_FILES], "cells": ["gru", "lstm", "elman"],
                             "batch": 32, "otherwise": {**CHAR, "cells": ["gru", "lstm", "elman"], "batch": 32}}]},
    }

    def runs(self, preset: str) -> list[Run]:
        p = self.params(preset)
        keep = ("task", "options", "width", "epochs", "batch", "lr", "pretrain_seconds", "pretrain_steps")
        out = []
        for prefix, t in _tasks(p):
            q = {**p, **t}
            out += [Run(f"{prefix}{cell}-L{layers}-{cond}-s{seed}",
                        {"cell": cell, "layers": layers, "condition": cond, "pretrain": CONDITIONS[cond], "seed": seed,
                         **{k: q[k] for k in keep}})
                    for cell, layers, seed, cond in itertools.product(q["cells"], q["layers"], q["seeds"], CONDITIONS)]
        return out

    @classmethod
    def job(cls, config: dict[str, Any]) -> TrainJob:
        return cls.stack_job(config, config["cell"])

    def report(self, records: list[RunRecord], figures: Path, preset: str) -> str:
        recs = present(records)
        if not recs:
            return ""
        tasks = list(dict.fromkeys(r.config["task"] for r in recs))
        by = group(recs, lambda r: (r.config["task"], r.config["cell"], r.config["layers"], r.config["condition"]))
        rows = []
        for (task, cell, layers, cond), rs in sorted(by.items(), key=lambda kv: (tasks.index(kv[0][0]), kv[0][1], kv[0][2],
                                                                                list(CONDITIONS).index(kv[0][3]))):
            ok = [r for r in rs if r.state == "ok"]
            conv = sum(bool((r.result.get("pretrain") or {}).get("converged")) for r in ok)
            shown = lambda key: (_shown(r, key) for r in ok if r.result.get(key) is not None)  # noqa: E731
            rows.append((task, cell, layers, cond, mean_std(shown("test"), "{:.1f}"), mean_std(shown("val"), "{:.1f}"),
                         "—" if cond == "default" else f"{conv}/{len(ok)}",
                         sum(r.state == "diverged" for r in rs), sum(r.state == "failed" for r in rs)))
        parts = [table(("task", "cell", "layers", "condition", "test (acc % or ppl)", "val (acc % or ppl)",
                        "pre-training converged", "diverged", "failed"), rows)]
        keyed = group([r for r in recs if r.state in ("ok", "diverged")],
                      lambda r: (r.config["task"], r.config["cell"], r.config["layers"], r.config["seed"]))
        share_rows = []
        depths = sorted({r.config["layers"] for r in recs})
        shares: dict[tuple[str, str, int], float] = {}
        for a, b in PAIRS:
            for alif in (False, True):
                row = [f"{a} beats {b}" + (" (ALIF)" if alif else " (non-ALIF)")]
                for L in depths:
                    n = w = 0
                    for (_, cell, layers, seed), rs in keyed.items():
                        d = {r.config["condition"]: r for r in rs}
                        if layers == L and (cell == "alif") == alif and a in d and b in d:
                            n += 1
                            w += score(d[a]) > score(d[b])
                    row.append(f"{100 * w / n:.0f}% ({w}/{n})" if n else "—")
                    if n:
                        shares[(f"{a}>{b}{' alif' if alif else ''}", "", L)] = 100 * w / n
                share_rows.append(row)
        parts.append(table(("paired comparison", *(f"depth {L}" for L in depths)), share_rows))
        fig = figure()
        ax = fig.subplots()
        labels = sorted({k[0] for k in shares})
        for j, L in enumerate(depths):
            ax.bar([i + 0.4 * j for i in range(len(labels))], [shares.get((lab, "", L), 0) for lab in labels], 0.4, label=f"depth {L}")
        ax.axhline(50, color="k", ls=":", lw=0.8)
        ax.set_xticks([i + 0.2 for i in range(len(labels))])
        ax.set_xticklabels(labels, rotation=20, fontsize=7)
        ax.set_ylabel("% of paired runs")
        ax.legend()
        fig.tight_layout()
        parts.append(f"![paired shares]({save_figure(fig, figures / 'paired_shares.png')})")
        overall = {}
        for a, b in PAIRS[:2]:
            n = w = 0
            for rs in keyed.values():
                d = {r.config["condition"]: r for r in rs}
                if a in d and b in d:
                    n, w = n + 1, w + (score(d[a]) > score(d[b]))
            overall[(a, b)] = (w, n)
        (w1, n1), (w2, n2) = overall[PAIRS[0]], overall[PAIRS[1]]
        if n1 and n2:
            lo = min(w1 / n1, w2 / n2)  # "most paired runs": clearly (>= 2/3) or barely (> 1/2)
            word = ("agrees with" if lo >= 2 / 3 else "leans towards (barely above half)" if lo > 0.5 else
                    "disagrees with" if w1 / n1 < 0.5 and w2 / n2 < 0.5 else "is mixed on")
            parts.append(f"**Verdict.** Over all cells and depths, rho = 0.5 beats rho = 1 in {w1}/{n1} paired runs and the "
                         f"default in {w2}/{n2} (ties count as not beating; a diverged run loses): this {word} the claim"
                         + (" at this scale (few seeds: treat as indicative)." if n1 < 10 else "."))
        return "\n\n".join(parts)


def _present(folder: str, files: tuple[str, ...] | list[str]) -> bool:
    """Whether a data folder lsc.tasks would read (``$LSC_DATA/folder`` or ``$LSC_DATA``) holds ``files``."""
    from lsc.tasks.paths import candidates, find_file

    return any(all(find_file(place, f, gzip_ok=False) for f in files) for place in candidates(None, folder))


def _tasks(p: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(run-id prefix, overrides) of every task of preset ``p``: its own, then the present extras."""
    out: list[tuple[str, dict[str, Any]]] = [("", {})]
    for spec in p.get("extra", []):
        if "when_files" in spec and not _present(*spec["when_files"]):
            spec = spec.get("otherwise")
            if spec is None:
                continue
        out.append((spec["task"] + "-", {k: v for k, v in spec.items() if k not in ("when_files", "otherwise")}))
    return out


def _shown(r: RunRecord, key: str) -> float:
    """A metric as the tables show it: accuracy in %, perplexity as is."""
    return r.result[key] if r.result.get("metric") == "perplexity" else 100 * r.result[key]


def score(r: RunRecord) -> float:
    """Higher is better: accuracy, or minus perplexity; a diverged or failed run loses to any finished one."""
    if r.state != "ok" or r.result.get("test") is None:
        return -math.inf
    return -r.result["test"] if r.result.get("metric") == "perplexity" else r.result["test"]


register(Fig3DeepRNN())
