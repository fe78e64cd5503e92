"""Tables and summary statistics of run records, shared by the experiments' reports:
``mean ± std (n)``, markdown tables, run-state lines, paired scores, flagged inits and the
init-radii table (docs/design.md section 18)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .base import RunRecord


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def mean_std(values: Iterable[Any], fmt: str = "{:.3g}") -> str:
    """``"m ± s (n)"`` over the finite values; ``"—"`` when there are none."""
    vals = [float(v) for v in values if finite(v)]
    if not vals:
        return "—"
    m = sum(vals) / len(vals)
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return f"{fmt.format(m)} ± {fmt.format(s)} (n={len(vals)})"


def mean(values: Iterable[Any]) -> float:
    vals = [float(v) for v in values if finite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def std(values: Iterable[Any]) -> float:
    vals = [float(v) for v in values if finite(v)]
    if len(vals) < 2:
        return 0.0 if vals else float("nan")
    m = sum(vals) / len(vals)
    return math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table (``|`` inside a cell is escaped)."""
    cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def state_summary(recs: Sequence[RunRecord]) -> str:
    """``"12 runs: 10 ok, 1 diverged, 1 failed, 0 missing; 83 s of run time"``."""
    counts = {s: sum(r.state == s for r in recs) for s in ("ok", "diverged", "failed", "missing", "stale")}
    if not counts["stale"]:
        del counts["stale"]
    secs = sum(r.seconds or 0.0 for r in recs)
    text = f"{len(recs)} runs: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + f"; {secs:.0f} s of run time"
    failed = [r for r in recs if r.state == "failed"]
    if failed:
        text += "\n\nFailed runs: " + "; ".join(
            f"`{r.id}` ({(r.error or '').splitlines()[-1:] or ['?']})" for r in failed[:10]
        )
    return text


def paired_score(r: RunRecord) -> float | None:
    """A run's score for paired comparisons, higher is better: test accuracy in points, or
    minus test perplexity; ``None`` for a run without one (diverged, failed)."""
    if r.state != "ok" or r.result.get("test") is None:
        return None
    return -r.result["test"] if r.result.get("metric") == "perplexity" else 100 * r.result["test"]


def flagged(r: RunRecord) -> bool:
    """Whether a run's pre-trained init was more than 0.05 off its target (``init.json``)."""
    return bool((r.result.get("init") or {}).get("flagged"))


def agreement(verdicts: Sequence[str]) -> str:
    """How a claim made of parts fares, from its parts' verdicts (``holds`` / ``fails`` /
    ``undecided ...``): ``"agrees with"`` when every part holds, ``"disagrees with"`` when
    every part fails, else which parts held, failed or were undecided."""
    held = sum(v == "holds" for v in verdicts)
    failed = sum(v == "fails" for v in verdicts)
    if verdicts and held == len(verdicts):
        return "agrees with"
    if verdicts and failed == len(verdicts):
        return "disagrees with"
    if held and failed:
        return "agrees in part and disagrees in part with"
    if held:
        return "agrees in part (the rest undecided) with"
    if failed:
        return "disagrees in part (the rest undecided) with"
    return "is undecided on"


def init_table(recs: Sequence[RunRecord], keys: Sequence[str], order: Callable[[tuple], Any]) -> list[str]:
    """The radii every run's training started from (dense, on a fresh batch: ``init.json``),
    by the config ``keys``; pre-trained inits more than 0.05 off their target are counted
    as flagged (left out of the statistics; docs/design.md section 18)."""
    with_init = [r for r in recs if (r.result.get("init") or {}).get("edges")]
    rows = []
    for key, rs in sorted(
        group(with_init, lambda r: tuple(r.config[k] for k in keys)).items(), key=lambda kv: order(kv[0])
    ):

        def radii(kind: str, rs: list[RunRecord] = rs) -> str:
            per_run = ([e["mean"] for e in r.result["init"]["edges"] if e["kind"] == kind] for r in rs)
            return mean_std((sum(v) / len(v) for v in per_run if v), "{:.3f}")

        gaps = [r.result["init"]["worst_gap"] for r in rs if r.result["init"].get("worst_gap") is not None]
        rows.append(
            (
                *key,
                radii("time"),
                radii("depth"),
                radii("encoder"),
                mean_std(gaps, "{:.3f}") if gaps else "—",
                sum(flagged(r) for r in rs),
            )
        )
    if not rows:
        return []
    return [
        "**Init radii** (dense, on a batch pre-training did not draw; mean over layers, then over seeds; "
        "a pre-trained init whose worst edge is more than 0.05 off its target is flagged and left out of the "
        "statistics below):",
        table((*keys, "time", "depth", "encoder", "worst gap", "flagged"), rows),
    ]


def group(recs: Iterable[RunRecord], key: Callable[[RunRecord], Any]) -> dict[Any, list[RunRecord]]:
    out: dict[Any, list[RunRecord]] = {}
    for r in recs:
        out.setdefault(key(r), []).append(r)
    return out
