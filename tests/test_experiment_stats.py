"""The verdict rule of the experiments (lsc.stats) against independent
computations: the sign test by enumerating every sign pattern, the t quantile against its
exact forms, and the interval's coverage of the true mean in simulated experiments of the
sizes the presets run (n = 4-9 pairs, skewed and heavy-tailed differences, cells as strata)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lsc.stats import paired, paired_interval, sign_test, t_quantile, trend


@pytest.mark.parametrize("wins,losses", [(9, 1), (5, 5), (7, 0), (2, 6), (0, 0), (3, 4)])
def test_the_sign_test_equals_the_enumeration_of_all_sign_patterns(wins, losses):
    n = wins + losses
    observed = abs(wins - n / 2)
    extreme = sum(abs(sum(p) - n / 2) >= observed - 1e-12 for p in itertools.product((0, 1), repeat=n))
    assert sign_test(wins, losses) == pytest.approx(min(1.0, extreme / 2**n) if n else 1.0)
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995])
def test_the_t_quantile_equals_its_exact_forms(p):
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)  # Cauchy
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) * math.sqrt(2 / (4 * p * (1 - p))), rel=1e-10)
    z = {0.6: 0.2533471, 0.9: 1.2815516, 0.975: 1.9599640, 0.995: 2.5758293}[p]  # normal limit
    assert t_quantile(p, 100_000) == pytest.approx(z, rel=1e-4)
    assert t_quantile(p, 3) > t_quantile(p, 4) > t_quantile(p, 9)
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile(p, 0)


def test_the_interval_on_a_large_sample_is_the_normal_one():
    d = np.random.default_rng(3).normal(2.0, 1.0, size=400)
    low, high = paired_interval(d)
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    assert (low + high) / 2 == pytest.approx(d.mean(), abs=1e-12)
    assert (high - low) / 2 == pytest.approx(half, rel=0.01)
    assert paired_interval([1.0, 1.0, 1.0]) == (1.0, 1.0)
    assert all(math.isnan(v) for v in paired_interval([1.0]))


def test_strata_take_the_differences_between_cells_out_of_the_noise():
    # two cells whose differences are each nearly constant: pooled naively, the spread between
    # the cells would read as noise; within the cells there is almost none
    d = [1.0, 1.1, 0.9, 11.0, 11.1, 10.9]
    cells = ["gru", "gru", "gru", "lstm", "lstm", "lstm"]
    low, high = paired_interval(d, cells)
    naive = paired_interval(d)
    assert low == pytest.approx(6.0 - t_quantile(0.975, 4) * math.sqrt(0.04 / 4 / 6))
    assert high - low < (naive[1] - naive[0]) / 20
    assert low > 5.5 and naive[0] < 1.0
    one_each = paired_interval([1.0, 3.0, 2.0], ["a", "b", "c"])  # no within-cell freedom: strata dropped
    assert one_each == paired_interval([1.0, 3.0, 2.0])
    with pytest.raises(ValueError, match="one label per difference"):
        paired_interval([1.0, 2.0], ["a"])


def _draw(rng: np.random.Generator, family: str, size: int) -> np.ndarray:
    """Differences with mean 0 from ``family``."""
    if family == "normal":
        return rng.normal(size=size)
    if family == "gamma":  # shape 4, centred: skewness 1
        return rng.gamma(4.0, size=size) - 4.0
    if family == "lognormal":  # sigma 0.4, centred
        return rng.lognormal(0.0, 0.4, size=size) - math.exp(0.08)
    return rng.standard_t(3, size=size)  # heavy tails


def _coverage(interval, family: str, sizes: tuple[int, ...], draws: int = 2000, seed: int = 0) -> float:
    """The share of ``draws`` simulated experiments whose interval covers the true mean;
    ``sizes`` the pairs per cell, the cells' true means 0, +3, -2 (strata when more than one)."""
    rng = np.random.default_rng(seed)
    shifts = (0.0, 3.0, -2.0)[: len(sizes)]
    truth = sum(n * m for n, m in zip(sizes, shifts)) / sum(sizes)
    labels = [h for h, n in enumerate(sizes) for _ in range(n)]
    hits = 0
    for _ in range(draws):
        d = np.concatenate([_draw(rng, family, n) + m for n, m in zip(sizes, shifts)])
        low, high = interval(d, labels if len(sizes) > 1 else None)
        hits += low <= truth <= high
    return hits / draws


FAMILIES = ("normal", "gamma", "lognormal", "t3")
DESIGNS = ((4,), (6,), (9,), (3, 3), (2, 2, 2), (4, 5), (3, 3, 3))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("sizes", DESIGNS, ids=lambda s: "+".join(map(str, s)))
def test_the_interval_covers_the_true_mean_at_small_n(family, sizes):
    coverage = _coverage(paired_interval, family, sizes)
    assert 0.90 <= coverage <= 0.99, f"{family} {sizes}: coverage {coverage:.3f}"


def _percentile_bootstrap(d, strata=None, resamples=2000):
    """The interval this module used before (resampling the pooled pairs)."""
    d = np.asarray(d)
    means = d[np.random.default_rng(0).integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def test_the_coverage_check_rejects_the_percentile_bootstrap_at_n_6():
    # the check above is not vacuous: the method of the first fair test fails it
    coverage = _coverage(_percentile_bootstrap, "normal", (6,), draws=1000)
    assert coverage < 0.90


def test_the_verdict_rule():
    assert paired([3, 4, 5, 6], [1, 2, 3, 4]).verdict == "holds"
    assert paired([1, 2, 3, 4], [3, 4, 5, 6]).verdict == "fails"
    assert paired([1, 5, 2, 6], [3, 3, 3, 3]).verdict == "undecided (n = 4)"
    assert paired([3, 4], [1, 2]).verdict == "undecided (n = 2)"  # too few pairs, whatever the interval
    p = paired([3, None, 5, None], [1, 2, None, None])  # a diverged run (None) loses; two diverged: a tie
    assert (p.wins, p.losses, p.ties, p.n, p.mean) == (2, 1, 1, 4, 2.0)
    with pytest.raises(ValueError, match="equal lengths"):
        paired([1.0], [1.0, 2.0])
    # strata decide: two cells with constant but different gains hold together, not pooled as noise
    a, b, cells = [2.0, 2.1, 1.9, 12.0, 12.1, 11.9], [0.0] * 6, ["g"] * 3 + ["l"] * 3
    assert paired(a, b, cells).verdict == "holds"
    assert paired(a, b, cells).low > paired(a, b).low


def test_a_depth_trend_holds_only_when_deep_differences_exceed_shallow_ones():
    assert trend([5, 6, 7, 6, 5], [0, 1, -1, 0, 1]).verdict == "holds"
    assert trend([0, 1, -1, 0, 1], [5, 6, 7, 6, 5]).verdict == "fails"
    assert trend([1, -1, 2, -2, 0], [0, 1, -1, 0, 1]).verdict.startswith("undecided")
    # the two-sample t-interval, by hand
    deep, shallow = [5.0, 6.0, 7.0, 6.0, 5.0], [0.0, 1.0, -1.0, 0.0, 1.0]
    ss = sum((x - 5.8) ** 2 for x in deep) + sum((x - 0.2) ** 2 for x in shallow)
    half = t_quantile(0.975, 8) * math.sqrt(ss / 8 * (1 / 5 + 1 / 5))
    t = trend(deep, shallow)
    assert (t.low, t.high) == pytest.approx((5.6 - half, 5.6 + half))
