"""lsc.analysis.pascal: PascalRNN and the path-count bound, exactly (binomial sums)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lsc.analysis import (
    pascal_rnn,
    path_count_bound,
)


def test_pascal_rnn_equals_binomial_sums_exactly():
    one = pascal_rnn(depth=10, time=100, rho=1.0)
    # independent closed form: hockey stick, dy/dx_t = C(L + T-1-t, T-1-t)
    exact = np.array([math.comb(10 + 99 - t, 99 - t) for t in range(100)], dtype=np.float64)
    assert one.gradient[0] == 42634215112710 == math.comb(109, 99)  # ~4.3e13, the paper's "about 4e13"
    np.testing.assert_array_equal(one.gradient, exact)
    np.testing.assert_array_equal(one.bound, exact)
    half = pascal_rnn(depth=10, time=100, rho=0.5)
    nb = np.array([sum(math.comb(9 + k, k) * 0.5 ** (10 + k) for k in range(100 - t)) for t in range(100)])
    np.testing.assert_allclose(half.gradient, nb, rtol=1e-13)
    np.testing.assert_allclose(half.bound, nb, rtol=1e-13)
    assert abs(half.gradient[0] - 1.0) < 1e-12  # "about 1"
    assert half.gradient[-1] == 0.5**10  # the last input only reaches y through L depth edges
    other = pascal_rnn(depth=3, time=7, rho=0.7, seed=5)
    np.testing.assert_allclose(other.gradient, other.bound, rtol=1e-13)


def test_pascal_gradient_does_not_depend_on_the_input():
    a, b = pascal_rnn(4, 20, 0.9, seed=0), pascal_rnn(4, 20, 0.9, seed=1, batch=2)
    np.testing.assert_allclose(a.gradient, b.gradient, rtol=1e-14)


def test_path_count_bound():
    assert path_count_bound(5, 3) == 56.0
    assert path_count_bound(5, 3, 0.5, 0.5) == 56 / 256
    assert math.isclose(path_count_bound(5, 3, 0.3, 0.9, log=True), math.log(56 * 0.3**5 * 0.9**3))
    arr = path_count_bound(np.array([1, 2, 3]), 2)
    np.testing.assert_array_equal(arr, [3.0, 6.0, 10.0])
    # rho_l + rho_t = 1: every term is a binomial probability, and they sum to 1 over the splits of n steps
    n, p = 30, 0.3
    terms = path_count_bound(np.arange(n + 1), n - np.arange(n + 1), p, 1 - p)
    assert terms.max() <= 1.0 and math.isclose(terms.sum(), 1.0, rel_tol=1e-12)
    # along 100 dl = T the count reaches ~1e220 (lsc_paper.md 1.4), and overflows only in linear form
    assert 200 < path_count_bound(100, 10000, log=True) / math.log(10) < 260
    assert 1e200 < path_count_bound(100, 10000) < 1e260
    assert path_count_bound(200, 20000) == math.inf
    with pytest.raises(ValueError, match="depth"):
        path_count_bound(-1, 3)
    with pytest.raises(ValueError, match="rho_depth"):
        path_count_bound(1, 3, 0.0)
