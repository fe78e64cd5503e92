"""The verdict rule of the experiments (lsc.experiments.stats) against independent
computations: the sign test by enumerating every sign pattern, the bootstrap interval
against normal theory on a large sample."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lsc.experiments.stats import bootstrap_interval, paired, sign_test, trend


@pytest.mark.parametrize("wins,losses", [(9, 1), (5, 5), (7, 0), (2, 6), (0, 0), (3, 4)])
def test_the_sign_test_equals_the_enumeration_of_all_sign_patterns(wins, losses):
    n = wins + losses
    observed = abs(wins - n / 2)
    extreme = sum(abs(sum(p) - n / 2) >= observed - 1e-12 for p in itertools.product((0, 1), repeat=n))
    assert sign_test(wins, losses) == pytest.approx(min(1.0, extreme / 2**n) if n else 1.0)
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)


def test_the_bootstrap_interval_matches_normal_theory_on_a_large_sample():
    d = np.random.default_rng(3).normal(2.0, 1.0, size=400)
    low, high = bootstrap_interval(d)
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    assert (low + high) / 2 == pytest.approx(d.mean(), abs=0.02)
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert bootstrap_interval([1.0, 1.0, 1.0]) == (1.0, 1.0)
    assert bootstrap_interval([0.5, -1.0, 2.0], seed=4) == bootstrap_interval([0.5, -1.0, 2.0], seed=4)


def test_the_verdict_rule():
    assert paired([3, 4, 5, 6], [1, 2, 3, 4]).verdict == "holds"
    assert paired([1, 2, 3, 4], [3, 4, 5, 6]).verdict == "fails"
    assert paired([1, 5, 2, 6], [3, 3, 3, 3]).verdict == "undecided (n = 4)"
    assert paired([3, 4], [1, 2]).verdict == "undecided (n = 2)"  # too few pairs, whatever the interval
    p = paired([3, None, 5, None], [1, 2, None, None])  # a diverged run (None) loses; two diverged: a tie
    assert (p.wins, p.losses, p.ties, p.n, p.mean) == (2, 1, 1, 4, 2.0)
    with pytest.raises(ValueError, match="equal lengths"):
        paired([1.0], [1.0, 2.0])


def test_a_depth_trend_holds_only_when_deep_differences_exceed_shallow_ones():
    assert trend([5, 6, 7, 6, 5], [0, 1, -1, 0, 1]).verdict == "holds"
    assert trend([0, 1, -1, 0, 1], [5, 6, 7, 6, 5]).verdict == "fails"
    assert trend([1, -1, 2, -2, 0], [0, 1, -1, 0, 1]).verdict.startswith("undecided")
