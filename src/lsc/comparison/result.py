"""What :func:`lsc.compare` found: :class:`RunRecord` (one init, one seed) and
:class:`Comparison` (the table, the paragraph, the curves, the plot and the JSON).

The statistics are the experiments' own (:mod:`lsc.stats`, docs/design.md
section 18): per seed the paired difference of the final evaluation losses, its 95 %
t-interval and the verdict rule fixed there. Lower loss is better, so each init is scored
by ``-loss``: ``diff`` is *the reference's loss minus this init's loss*, positive when this
init ends lower. ``better`` when the interval lies above 0, ``worse`` when below, else
``undecided``; fewer than 3 seeds are always undecided.

Identical runs: when two inits are the same (``("default", "default")``) every difference is
exactly 0, the interval is [0, 0], which does not lie strictly above or below 0, so the
verdict is ``undecided``. Differences within ``TIE`` (relative) of the reference are set to
exactly 0 first, so float noise of the last bits cannot turn identical runs into a "win".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from ..files import write_atomic
from ..stats import MIN_PAIRS, Paired, paired

TIE = 1e-9
"""Differences smaller than this, relative to the reference's loss, are ties (exactly 0)."""
VERDICTS = {"holds": "better", "fails": "worse"}


@dataclass(frozen=True)
class RunRecord:
    """One (init, seed) run: the evaluation curve as (step, training seconds, loss) points,
    the init's cost, and whether training diverged (a non-finite loss)."""

    init: str
    seed: int
    curve: tuple[tuple[int, float, float], ...]
    pretrain_seconds: float
    train_seconds: float
    steps: int  # training steps taken
    diverged: bool
    message: str

    @property
    def seconds_per_step(self) -> float:
        return self.train_seconds / self.steps if self.steps else math.nan

    @property
    def pretrain_steps_equivalent(self) -> float:
        """The init's cost in this model's own training steps."""
        per = self.seconds_per_step
        return self.pretrain_seconds / per if per > 0 else math.nan

    def final(self, within: float | None = None) -> float | None:
        """The last evaluation loss (``None``: diverged); with ``within`` seconds, the last one
        reached within that wall-clock, the init's cost included."""
        points = [p for p in self.curve if within is None or self.pretrain_seconds + p[1] <= within + 1e-9]
        if (self.diverged and within is None) or not points or not math.isfinite(points[-1][2]):
            return None
        return points[-1][2]

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "curve": [list(p) for p in self.curve]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunRecord:
        curve = tuple((int(s), float(t), float(v)) for s, t, v in d["curve"])
        return cls(
            str(d["init"]),
            int(d["seed"]),
            curve,
            float(d["pretrain_seconds"]),
            float(d["train_seconds"]),
            int(d["steps"]),
            bool(d["diverged"]),
            str(d["message"]),
        )


class _Pair(TypedDict):
    """One comparison against another init (:attr:`Comparison.pairs`)."""

    diff: float | None
    interval: list[float] | None
    wins: int | None
    n: int
    verdict: str


class _Row(TypedDict):
    """One init's line of the table (:attr:`Comparison.rows`)."""

    init: str
    final: float | None
    pretrain_seconds: float
    pretrain_steps_equivalent: float
    diff: float | None
    interval: list[float] | None
    wins: int | None
    n: int
    verdict: str


def _g(x: float | None, fmt: str = ".4g") -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, fmt)


@dataclass(frozen=True)
class Comparison:
    """Paired pilot runs of several inits on one model and data (:func:`lsc.compare`).

    ``rows``: one dict per init (module docstring for ``diff`` and ``verdict``);
    ``curves``: ``{init: {seed: [(step, loss), ...]}}``; ``pairs``: every two non-reference
    inits against each other; ``str()``: the paragraph a person reads."""

    inits: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int
    budget: str  # "steps" | "time"
    runs: tuple[RunRecord, ...]
    interrupted: bool = False
    settings: Mapping[str, object] = field(default_factory=dict)

    def _run(self, init: str, seed: int) -> RunRecord | None:
        return next((r for r in self.runs if r.init == init and r.seed == seed), None)

    def _finals(self, init: str) -> list[float | None]:
        """The final loss of ``init`` per seed, among the seeds every init has finished."""
        out = []
        for seed in self._paired_seeds():
            run = self._run(init, seed)
            assert run is not None
            within = None
            if self.budget == "time":  # equal wall-clock: the time the quickest init of this seed took in all
                within = min(r.pretrain_seconds + r.train_seconds for i in self.inits if (r := self._run(i, seed)))
            out.append(run.final(within))
        return out

    def _paired_seeds(self) -> list[int]:
        return [s for s in self.seeds if all(self._run(i, s) is not None for i in self.inits)]

    def paired(self, init: str, against: str) -> Paired:
        """``init`` against ``against``: scores ``-loss`` per seed (higher is better), ties within :data:`TIE`."""
        a, b = self._finals(init), self._finals(against)
        a = [
            y if x is not None and y is not None and abs(x - y) <= TIE * max(abs(y), 1e-30) else x for x, y in zip(a, b)
        ]
        return paired([None if x is None else -x for x in a], [None if y is None else -y for y in b])

    @property
    def rows(self) -> list[_Row]:
        reference, out = self.inits[0], []
        for init in self.inits:
            finals = [f for f in self._finals(init) if f is not None]
            runs = [r for s in self._paired_seeds() if (r := self._run(init, s))]
            row: _Row = {
                "init": init,
                "final": sum(finals) / len(finals) if finals else None,
                "pretrain_seconds": _mean([r.pretrain_seconds for r in runs]),
                "pretrain_steps_equivalent": _mean([r.pretrain_steps_equivalent for r in runs]),
                "diff": 0.0,
                "interval": None,
                "wins": None,
                "n": len(runs),
                "verdict": "reference",
            }
            if init != reference:
                p = self.paired(init, reference)
                row["diff"] = _num(p.mean)
                row["interval"] = None if math.isnan(p.low) else [p.low, p.high]
                row["wins"] = p.wins
                row["n"] = p.n
                row["verdict"] = VERDICTS.get(p.verdict, "undecided")
            out.append(row)
        return out

    @property
    def pairs(self) -> dict[str, _Pair]:
        """``{"a vs b": {diff, interval, wins, n, verdict}}`` for every two non-reference inits."""
        out: dict[str, _Pair] = {}
        others = self.inits[1:]
        for i, a in enumerate(others):
            for b in others[i + 1 :]:
                p = self.paired(a, b)
                out[f"{a} vs {b}"] = {
                    "diff": _num(p.mean),
                    "interval": None if math.isnan(p.low) else [p.low, p.high],
                    "wins": p.wins,
                    "n": p.n,
                    "verdict": VERDICTS.get(p.verdict, "undecided"),
                }
        return out

    @property
    def curves(self) -> dict[str, dict[int, list[tuple[int, float]]]]:
        return {i: {r.seed: [(s, v) for s, _, v in r.curve] for r in self.runs if r.init == i} for i in self.inits}

    def table(self) -> str:
        """The rows as an aligned text table."""
        head = (
            "init",
            "final loss",
            f"diff vs {self.inits[0]}",
            "95% interval",
            "wins",
            "n",
            "verdict",
            "init s",
            "init steps",
        )
        lines = [head]
        for r in self.rows:
            interval = r["interval"]
            lines.append(
                (
                    str(r["init"]),
                    _g(r["final"]),
                    "" if r["verdict"] == "reference" else _g(r["diff"], "+.3g"),
                    "" if interval is None else f"[{interval[0]:+.3g}, {interval[1]:+.3g}]",
                    "" if r["wins"] is None else f"{r['wins']}/{r['n']}",
                    str(r["n"]),
                    str(r["verdict"]),
                    _g(r["pretrain_seconds"], ".1f"),
                    _g(r["pretrain_steps_equivalent"], ".0f"),
                )
            )
        widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
        return "\n".join(
            "  ".join(
                cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(line, widths))
            ).rstrip()
            for line in lines
        )

    def __str__(self) -> str:
        rows = self.rows
        n = len(self._paired_seeds())
        when = f"after {self.steps} steps" if self.budget == "steps" else "at equal wall-clock (init time included)"
        parts = [
            f"Final evaluation loss {when}, lower is better, paired over {n} seed{'s' * (n != 1)} against "
            f"{self.inits[0]} (95 % t-interval of the difference)"
        ]
        said = []
        for r in rows[1:]:
            interval = r["interval"]
            size = "" if interval is None else f" [{interval[0]:.3g}, {interval[1]:.3g}]"
            gap = abs(r["diff"]) if r["diff"] is not None else math.nan
            if r["verdict"] == "better":
                said.append(f"{r['init']} beats it by {gap:.3g}{size}")
            elif r["verdict"] == "worse":
                said.append(f"{r['init']} is worse by {gap:.3g}{size}")
            else:
                said.append(f"{r['init']} undecided ({_g(r['diff'], '+.3g')}{size})")
        text = parts[0] + ": " + "; ".join(said) + "."
        if self.pairs:
            text += (
                " Among the others: "
                + "; ".join(
                    f"{k} {v['verdict']}" + ("" if v["verdict"] == "undecided" else f" ({_g(v['diff'], '+.3g')})")
                    for k, v in self.pairs.items()
                )
                + "."
            )
        costs = [
            f"{r['init']} {_g(r['pretrain_seconds'], '.1f')} s "
            f"(≈ {_g(r['pretrain_steps_equivalent'], '.0f')} training steps)"
            for r in rows
            if (r["pretrain_seconds"] or 0) >= 0.05
        ]
        if costs:
            text += " Init cost: " + ", ".join(costs) + "."
        if n < MIN_PAIRS:
            text += f" With fewer than {MIN_PAIRS} seeds every verdict is undecided."
        if self.interrupted:
            text += f" Interrupted: {len(self.runs)} of {len(self.inits) * len(self.seeds)} runs finished."
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "inits": list(self.inits),
            "seeds": list(self.seeds),
            "steps": self.steps,
            "budget": self.budget,
            "interrupted": self.interrupted,
            "settings": dict(self.settings),
            "rows": self.rows,
            "pairs": self.pairs,
            "summary": str(self),
            "runs": [r.to_dict() for r in self.runs],
        }

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` to ``path`` (atomically) and return the path."""
        path = Path(path)
        write_atomic(path, json.dumps(_json_ready(self.to_dict()), indent=2) + "\n")
        return path

    def plot(self, path: str | Path) -> Path:
        """The learning curves, per init the mean over seeds and a min-max band, as a PNG at ``path``
        (x: training step; with ``budget="time"`` seconds, the init's cost included)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ValueError("Comparison.plot needs matplotlib: pip install 'lsc[plot]'") from None
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
        high = []
        for init in self.inits:
            runs = [r for r in self.runs if r.init == init]
            if not runs:
                continue
            length = min(len(r.curve) for r in runs)
            if self.budget == "time":
                xs = [_mean([r.pretrain_seconds + r.curve[k][1] for r in runs]) for k in range(length)]
            else:
                xs = [float(runs[0].curve[k][0]) for k in range(length)]
            values = [[r.curve[k][2] for r in runs] for k in range(length)]
            mean = [_mean(v) for v in values]
            line = ax.plot(xs, mean, label=f"{init} (n = {len(runs)})")[0]
            ax.fill_between(xs, [min(v) for v in values], [max(v) for v in values], color=line.get_color(), alpha=0.2)
            high += [m for m in mean if math.isfinite(m)]
        if high and min(high) > 0 and max(high) / min(high) > 100:
            ax.set_yscale("log")
        ax.set_xlabel("training step" if self.budget == "steps" else "seconds (init included)")
        ax.set_ylabel("evaluation loss")
        ax.set_title("lsc.compare: mean over seeds, band min-max")
        ax.legend()
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path)
        plt.close(fig)
        return path


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def _json_ready(obj: object) -> object:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    return obj
