"""Binned KS accuracy against the exact two-sample KS of scipy (README.md: the KS error bound).

Set-up of the acceptance number: edges from a separate 2,000-value warm-up sample via
`learn_edges` (B = 128), reference and current windows of n values each, no drift and a
small drift. D_exact = scipy.stats.ks_2samp(raw_ref, raw_cur).statistic, D_binned from the
count matrices through `ks_binned`. Acceptance: p95 |D_binned - D_exact| <= 0.002 at
n = 1e4 and <= 0.0006 at n = 1e5 (p95 over reps x variants per distribution), and always
0 <= D_exact - D_binned <= err_bound.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats as sps

from monitor.edges import learn_edges
from monitor.histogram import ModelLayout, NumericBins
from monitor.stats import ks_binned

WARMUP = 2_000
MAX_BINS = 128
COUNT_CAP = 120  # counts are capped so the feature has <= 121 distinct values

Generator = Callable[[np.random.Generator, int, bool], np.ndarray]


def _normal(rng: np.random.Generator, n: int, drift: bool) -> np.ndarray:
    """N(0, 1); drift +0.1."""
    return rng.normal(0.1 if drift else 0.0, 1.0, n)


def _lognormal(rng: np.random.Generator, n: int, drift: bool) -> np.ndarray:
    """lognormal(0, 1); drift x e^0.1."""
    return rng.lognormal(0.1 if drift else 0.0, 1.0, n)


def _t2_outliers(rng: np.random.Generator, n: int, drift: bool) -> np.ndarray:
    """Student-t(2) with 1 % of the values set to the sentinel 1e6; drift +0.1."""
    x = rng.standard_t(2, n) + (0.1 if drift else 0.0)
    x[rng.random(n) < 0.01] = 1e6
    return x


def _mixture(rng: np.random.Generator, n: int, drift: bool) -> np.ndarray:
    """0.6 N(0, 1) + 0.4 N(6, 0.3^2); drift +0.1."""
    second = rng.random(n) < 0.4
    x = np.where(second, rng.normal(6.0, 0.3, n), rng.normal(0.0, 1.0, n))
    return x + (0.1 if drift else 0.0)


def _offset(rng: np.random.Generator, n: int, drift: bool) -> np.ndarray:
    """N(100, 1): large mean, small spread; drift +0.1."""
    return rng.normal(100.1 if drift else 100.0, 1.0, n)


def _zinb_counts(rng: np.random.Generator, n: int, drift: bool) -> np.ndarray:
    """Zero-inflated NB(2, 0.1) counts (30 % extra zeros), capped at 120; drift p 0.095."""
    x = np.minimum(rng.negative_binomial(2, 0.095 if drift else 0.10, n), COUNT_CAP)
    x[rng.random(n) < 0.3] = 0
    return x.astype(np.float64)


DISTRIBUTIONS: dict[str, Generator] = {
    "normal": _normal,
    "lognormal": _lognormal,
    "t2_outliers": _t2_outliers,
    "mixture": _mixture,
    "normal_offset": _offset,
    "zinb_counts": _zinb_counts,
}


def _binned(edges: np.ndarray, ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """D_binned and err_bound through the production layout and ks_binned."""
    layout = ModelLayout([("x", NumericBins(edges))], [])
    value_cols = layout.width - 2
    r = layout.count(ref[None, :], [])[:, :value_cols]
    c = layout.count(cur[None, :], [])[:, :value_cols]
    d, err = ks_binned(r, c)
    return float(d[0]), float(err[0])


def _errors(name: str, n: int, reps: int, seed: int) -> np.ndarray:
    """|D_binned - D_exact| over reps x {no drift, drift}, checking the bound on each one."""
    gen = DISTRIBUTIONS[name]
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(reps):
        edges = learn_edges(gen(rng, WARMUP, False), MAX_BINS)
        assert edges.size <= MAX_BINS + 1
        for drift in (False, True):
            ref, cur = gen(rng, n, False), gen(rng, n, drift)
            d_binned, err_bound = _binned(edges, ref, cur)
            d_exact = float(sps.ks_2samp(ref, cur, method="asymp").statistic)
            gap = d_exact - d_binned
            assert -1e-12 <= gap <= err_bound + 1e-12, (name, n, drift, d_exact, d_binned)
            errors.append(abs(gap))
    return np.asarray(errors)


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_binned_ks_accuracy_at_ten_thousand(name: str) -> None:
    """n = 1e4 per window, 60 reps: p95 error <= 0.002 and the bound always holds."""
    errors = _errors(name, 10_000, 60, seed=1000 + list(DISTRIBUTIONS).index(name))
    assert np.quantile(errors, 0.95) <= 0.002, np.quantile(errors, 0.95)


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_binned_ks_accuracy_at_hundred_thousand(name: str) -> None:
    """n = 1e5 per window, 12 reps: p95 error <= 0.0006 and the bound always holds."""
    errors = _errors(name, 100_000, 12, seed=2000 + list(DISTRIBUTIONS).index(name))
    assert np.quantile(errors, 0.95) <= 0.0006, np.quantile(errors, 0.95)


def test_integer_feature_has_few_distinct_values() -> None:
    """The count feature really is an integer feature with <= 128 distinct values."""
    rng = np.random.default_rng(3)
    x = np.concatenate([_zinb_counts(rng, 100_000, False), _zinb_counts(rng, 100_000, True)])
    assert np.array_equal(x, np.round(x))
    assert np.unique(x).size <= MAX_BINS
    assert np.mean(x == 0) > 0.3  # ties: a heavy atom at zero


@pytest.mark.parametrize("n", [1_000, 10_000, 100_000])
def test_integer_feature_is_exact_with_edges_on_its_values(n: int) -> None:
    """Edges learned from the feature's distinct values make the binned KS exactly ks_2samp."""
    rng = np.random.default_rng(n)
    for drift in (False, True):
        ref, cur = _zinb_counts(rng, n, False), _zinb_counts(rng, n, drift)
        support = np.concatenate([ref, cur])
        edges = learn_edges(support, MAX_BINS)
        np.testing.assert_array_equal(edges, np.unique(support))
        d_binned, _ = _binned(edges, ref, cur)
        assert d_binned == float(sps.ks_2samp(ref, cur, method="asymp").statistic)


def test_integer_feature_is_exact_with_edges_from_the_full_support() -> None:
    """Edges 0..120 learned from a warm-up covering the support: zero error on every window."""
    rng = np.random.default_rng(12)
    edges = learn_edges(np.arange(COUNT_CAP + 1, dtype=np.float64), MAX_BINS)
    for _ in range(10):
        ref, cur = _zinb_counts(rng, 5_000, False), _zinb_counts(rng, 7_000, True)
        d_binned, _ = _binned(edges, ref, cur)
        assert d_binned == float(sps.ks_2samp(ref, cur, method="asymp").statistic)
