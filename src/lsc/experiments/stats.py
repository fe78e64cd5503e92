"""Paired comparisons and the verdict rule, fixed in code before the runs (docs/design.md
section 18).

A claim "a beats b" is read from per-seed paired differences d_i = score(a_i) - score(b_i)
(the same seed, so the same starting weights and data order in both conditions):

* the mean difference and its 95 % percentile-bootstrap interval (resampling the pairs);
* the exact two-sided sign test on wins and losses (ties dropped):
  p = min(1, 2 * sum_{k <= min(W, L)} C(W + L, k) / 2^(W + L));
* the verdict: **holds** when the interval lies above 0, **fails** when it lies below 0,
  else **undecided (n = ...)**; fewer than 3 pairs are always undecided.

Pairs in which a run diverged count in the sign test (the diverged run loses) but not in
the interval (a difference to a run with no score has no size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 10_000
MIN_PAIRS = 3


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test of ``wins`` against ``losses`` (ties already dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap_interval(diffs: Sequence[float], level: float = LEVEL, resamples: int = RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``diffs`` (seeded: a report is reproducible)."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


@dataclass(frozen=True)
class Paired:
    """A paired comparison: n pairs, the mean difference and its interval, wins / losses /
    ties, the sign test's p, and the verdict."""

    n: int
    mean: float
    low: float
    high: float
    wins: int
    losses: int
    ties: int
    sign_p: float

    @property
    def verdict(self) -> str:
        if self.n >= MIN_PAIRS and self.low > 0:
            return "holds"
        if self.n >= MIN_PAIRS and self.high < 0:
            return "fails"
        return f"undecided (n = {self.n})"

    def row(self, fmt: str = "{:+.2f}") -> tuple[str, ...]:
        interval = "—" if math.isnan(self.low) else f"[{fmt.format(self.low)}, {fmt.format(self.high)}]"
        mean = "—" if math.isnan(self.mean) else fmt.format(self.mean)
        return (str(self.n), mean, interval, f"{self.wins}/{self.losses}/{self.ties}", f"{self.sign_p:.3g}", self.verdict)


HEADER = ("pairs", "mean diff", "95% interval", "wins/losses/ties", "sign test p", "verdict")

RULE = ("verdict rule, fixed before the runs: *holds* when the interval lies above 0, *fails* when below, "
        "else *undecided*")
"""The verdict rule as every report states it."""


def paired(a: Sequence[float | None], b: Sequence[float | None], *, seed: int = 0) -> Paired:
    """The comparison of scores ``a`` against ``b`` (higher is better; ``None``: the run
    diverged or failed and loses to any run with a score)."""
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    wins = losses = ties = 0
    diffs = []
    for x, y in zip(a, b):
        if x is None and y is None:
            ties += 1
            continue
        if x is None or y is None:
            wins, losses = wins + (y is None), losses + (x is None)
            continue
        diffs.append(x - y)
        wins, losses, ties = wins + (x > y), losses + (x < y), ties + (x == y)
    low, high = bootstrap_interval(diffs, seed=seed)
    mean = float(np.mean(diffs)) if diffs else math.nan
    return Paired(len(a), mean, low, high, wins, losses, ties, sign_test(wins, losses))


def trend(deep: Sequence[float], shallow: Sequence[float], *, seed: int = 0) -> Paired:
    """Whether the paired differences grow with depth: mean(deep) - mean(shallow), its
    interval by resampling each depth's differences on its own, and the verdict on it
    (wins/losses here count deep differences above / below the shallow mean)."""
    d, s = np.asarray(deep, dtype=float), np.asarray(shallow, dtype=float)
    if d.size == 0 or s.size == 0:
        return Paired(min(d.size, s.size), math.nan, math.nan, math.nan, 0, 0, 0, 1.0)
    rng = np.random.default_rng(seed)
    gaps = (d[rng.integers(0, d.size, size=(RESAMPLES, d.size))].mean(axis=1)
            - s[rng.integers(0, s.size, size=(RESAMPLES, s.size))].mean(axis=1))
    alpha = (1 - LEVEL) / 2
    centre = float(s.mean())
    wins, losses = int((d > centre).sum()), int((d < centre).sum())
    return Paired(int(min(d.size, s.size)), float(d.mean() - s.mean()), float(np.quantile(gaps, alpha)),
                  float(np.quantile(gaps, 1 - alpha)), wins, losses, int(d.size) - wins - losses,
                  sign_test(wins, losses))
