"""Tests of monitor.stats against first-principles loops and scipy's reference tests.

The PSI oracle below is written from docs/architecture.md (Statistics) and the monitor.stats
docstrings, with exact rational arithmetic for the decile grouping and plain Python loops
for the rest:

    group of fine slot s = min(floor(10 * m_s), 9), m_s = mid-point of the slot's cumulative
        reference mass interval [before_s, before_s + r_s] / n_r
    buckets = groups non-empty in the pooled data; +0.5 on every count of those buckets
    PSI = sum (c_i - r_i) ln(c_i / r_i) over proportions; p = chi2.sf(PSI / (1/n_r + 1/n_c), B - 1)
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats as sps

from monitor.edges import learn_edges
from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.histogram import CategoricalBins, CountMatrix, ModelLayout, NumericBins
from monitor.model import DecisionPolicy, FeatureKind, FeatureSpec
from monitor.stats import (
    benjamini_hochberg,
    bonferroni,
    chi2_homogeneity,
    cochran_merge,
    decile_groups,
    good_turing_variance,
    group_counts,
    ks_binned,
    ks_pvalue,
    new_category_pvalue,
    psi,
    total_variation,
    two_proportion_pvalue,
)

TOL = 1e-12


def psi_oracle(ref: list[int], cur: list[int], grouped: bool = True) -> tuple[float, float]:
    """PSI and its p-value from fine counts, one loop at a time (see the module docstring)."""
    n_r, n_c = sum(ref), sum(cur)
    if grouped:
        ref_g, cur_g = [0] * 10, [0] * 10
        before = 0
        for r, c in zip(ref, cur, strict=True):
            mid = Fraction(2 * before + r, 2 * n_r)
            group = min(math.floor(10 * mid), 9)
            ref_g[group] += r
            cur_g[group] += c
            before += r
    else:
        ref_g, cur_g = list(ref), list(cur)
    used = [i for i in range(len(ref_g)) if ref_g[i] + cur_g[i] > 0]
    sum_r = sum(ref_g[i] + 0.5 for i in used)
    sum_c = sum(cur_g[i] + 0.5 for i in used)
    value = 0.0
    for i in used:
        r_p = (ref_g[i] + 0.5) / sum_r
        c_p = (cur_g[i] + 0.5) / sum_c
        value += (c_p - r_p) * math.log(c_p / r_p)
    if len(used) < 2:
        return value, 1.0
    return value, float(sps.chi2.sf(value / (1.0 / n_r + 1.0 / n_c), len(used) - 1))


def _zeros(layout: ModelLayout) -> CountMatrix:
    """An int64 zero count matrix of the layout's shape."""
    return np.zeros((layout.n_features, layout.width), dtype=np.int64)


def _close(a: float | None, b: float, rel: float = TOL) -> bool:
    """Equal to 1e-12 absolutely or relatively."""
    assert a is not None
    return math.isclose(a, b, rel_tol=rel, abs_tol=TOL)


def _numeric_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """Reference/current fine-count pairs of different shapes, sparsity and drift."""
    rng = np.random.default_rng(2024)
    edges = learn_edges(rng.normal(0.0, 1.0, 2000))
    slots = edges.size + 2

    def counts(values: np.ndarray) -> np.ndarray:
        layout = ModelLayout([("x", NumericBins(edges))], [])
        return layout.count(values[None, :], [])[0, :slots]

    cases = [
        (counts(rng.normal(0.0, 1.0, 20_000)), counts(rng.normal(0.0, 1.0, 5_000))),
        (counts(rng.normal(0.0, 1.0, 20_000)), counts(rng.normal(0.3, 1.2, 5_000))),
        (counts(rng.normal(0.0, 1.0, 3_000)), counts(rng.normal(4.0, 1.0, 3_000))),  # overflow
        (counts(rng.normal(0.0, 1.0, 1_000)), counts(rng.normal(0.0, 0.01, 400))),  # sparse
        (counts(rng.normal(0.0, 0.2, 7_001)), counts(rng.normal(0.0, 3.0, 999))),
    ]
    ints = rng.integers(0, 4, 3000).astype(np.float64)
    int_edges = learn_edges(ints)
    int_layout = ModelLayout([("k", NumericBins(int_edges))], [])
    cur_ints = rng.integers(2, 6, 800).astype(np.float64)
    cases.append(
        (
            int_layout.count(ints[None, :], [])[0, : int_edges.size + 2],
            int_layout.count(cur_ints[None, :], [])[0, : int_edges.size + 2],
        )
    )
    return cases


@pytest.mark.parametrize("case", range(6))
def test_psi_matches_the_loop_oracle(case: int) -> None:
    """decile_groups + group_counts + psi equal the rational/loop implementation to 1e-12."""
    ref, cur = _numeric_cases()[case]
    groups = decile_groups(ref[None, :])
    value, p = psi(group_counts(ref[None, :], groups), group_counts(cur[None, :], groups))
    want_value, want_p = psi_oracle(ref.tolist(), cur.tolist())
    assert _close(float(value[0]), want_value)
    assert _close(float(p[0]), want_p, rel=1e-9)


def test_evaluate_psi_matches_the_loop_oracle_with_and_without_cached_groups() -> None:
    """ModelEvaluator's numeric PSI and p equal the oracle, cached decile groups or not."""
    cases = _numeric_cases()[:5]  # same edges: one layout with five features
    rng = np.random.default_rng(2024)
    edges = learn_edges(rng.normal(0.0, 1.0, 2000))
    names = [f"x{i}" for i in range(len(cases))]
    layout = ModelLayout([(n, NumericBins(edges)) for n in names], [])
    specs = [FeatureSpec(n, FeatureKind.NUMERIC) for n in names]
    reference, current = _zeros(layout), _zeros(layout)
    for row, (ref, cur) in enumerate(cases):
        reference[row, : ref.size] = ref
        current[row, : cur.size] = cur
    evaluator = ModelEvaluator(layout, specs, DecisionPolicy(min_samples=100))
    context = EvaluationContext("m", 0.0)
    fresh = evaluator.evaluate(reference, current, context)
    cached = evaluator.evaluate(reference, current, context, evaluator.psi_groups(reference))
    for row, (ref, cur) in enumerate(cases):
        want_value, want_p = psi_oracle(ref.tolist(), cur.tolist())
        for result in (fresh.features[row], cached.features[row]):
            assert _close(result.psi, want_value)
            assert _close(result.psi_pvalue, want_p, rel=1e-9)


def test_decile_groups_hold_a_tenth_of_the_reference_each() -> None:
    """With 128 equal-mass fine bins every group holds 0.1 +- 1/128 of the reference."""
    rng = np.random.default_rng(8)
    sample = rng.lognormal(0.0, 1.0, 50_000)
    edges = learn_edges(sample)
    layout = ModelLayout([("x", NumericBins(edges))], [])
    ref = layout.count(sample[None, :], [])[:, : edges.size + 2]
    shares = group_counts(ref, decile_groups(ref))[0] / sample.size
    assert np.all(np.abs(shares - 0.1) <= 1 / 128 + 1e-12)
    groups = decile_groups(ref)[0]
    assert np.all(np.diff(groups) >= 0)
    assert groups[0] == 0
    assert groups[-1] == 9


def test_psi_on_a_hand_example() -> None:
    """Two buckets 50/50 vs 75/25 with +0.5 smoothing: PSI and p by hand."""
    value, p = psi(np.asarray([[50.0, 50.0]]), np.asarray([[75.0, 25.0]]))
    r = np.asarray([50.5, 50.5]) / 101.0
    c = np.asarray([75.5, 25.5]) / 101.0
    want = float(np.sum((c - r) * np.log(c / r)))
    assert math.isclose(float(value[0]), want, rel_tol=TOL)
    assert math.isclose(float(p[0]), float(sps.chi2.sf(want / (2 / 100), 1)), rel_tol=1e-9)


def test_psi_degenerate_rows() -> None:
    """An empty window gives NaN; a single non-empty bucket gives PSI 0 and p 1."""
    value, p = psi(np.asarray([[0.0, 0.0], [5.0, 0.0]]), np.asarray([[3.0, 1.0], [7.0, 0.0]]))
    assert math.isnan(value[0])
    assert math.isnan(p[0])
    assert (value[1], p[1]) == (0.0, 1.0)


def _random_table(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Two count vectors of k buckets with some zero buckets and a random drift."""
    base = rng.dirichlet(np.ones(k))
    base[rng.random(k) < 0.2] = 0.0
    base /= base.sum() if base.sum() > 0 else 1.0
    if base.sum() == 0:
        base[0] = 1.0
    shifted = 0.8 * base + 0.2 * rng.dirichlet(np.ones(k)) * (base > 0)
    shifted /= shifted.sum()
    return (
        rng.multinomial(int(rng.integers(50, 5000)), base).astype(np.float64),
        rng.multinomial(int(rng.integers(50, 5000)), shifted).astype(np.float64),
    )


@pytest.mark.parametrize("seed", range(8))
def test_chi2_homogeneity_matches_scipy_contingency(seed: int) -> None:
    """X^2 and p equal chi2_contingency(correction=False) on the non-empty columns."""
    rng = np.random.default_rng(seed)
    ref, cur = _random_table(rng, int(rng.integers(2, 25)))
    stat, p = chi2_homogeneity(ref[None, :], cur[None, :])
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        assert p[0] == 1.0
        return
    want = sps.chi2_contingency(table, correction=False)
    assert math.isclose(float(stat[0]), float(want.statistic), rel_tol=1e-10)
    assert math.isclose(float(p[0]), float(want.pvalue), rel_tol=1e-9, abs_tol=TOL)


def test_cochran_merge_moves_small_buckets_into_other() -> None:
    """Buckets with expected count < 5 are added to OTHER and zeroed; OTHER is never merged."""
    ref = np.asarray([[100.0, 2.0, 50.0, 1.0, 0.0]])
    cur = np.asarray([[90.0, 3.0, 60.0, 0.0, 0.0]])
    merged_r, merged_c = cochran_merge(ref, cur, np.asarray([3]))
    # expected_j = min(153, 153) * pooled_j / 306: 95, 2.5, 55, 0.5 -> bucket 1 merges.
    np.testing.assert_array_equal(merged_r, [[100.0, 0.0, 50.0, 3.0, 0.0]])
    np.testing.assert_array_equal(merged_c, [[90.0, 0.0, 60.0, 3.0, 0.0]])
    assert merged_r.sum() == ref.sum()
    assert merged_c.sum() == cur.sum()


def test_total_variation_hand_formula() -> None:
    """TVD = 1/2 sum |r/n_r - c/n_c|, and an empty row is NaN."""
    ref = np.asarray([[10.0, 30.0, 60.0], [0.0, 0.0, 0.0]])
    cur = np.asarray([[20.0, 20.0, 10.0], [1.0, 2.0, 3.0]])
    tvd = total_variation(ref, cur)
    assert math.isclose(tvd[0], 0.5 * (abs(0.1 - 0.4) + abs(0.3 - 0.4) + abs(0.6 - 0.2)))
    assert math.isnan(tvd[1])


@pytest.mark.parametrize(
    ("unseen", "n", "p0"),
    [(0, 1000, 0.01), (1, 1000, 0.01), (15, 1000, 0.01), (60, 1000, 0.008), (3, 50, 0.2)],
)
def test_new_category_pvalue_with_an_exact_p0_is_the_poisson_tail(
    unseen: int, n: int, p0: float
) -> None:
    """With no uncertainty on p0, p = P(U >= u) under Poisson(n p0), as scipy's poisson.sf."""
    got = new_category_pvalue(np.asarray([float(unseen)]), np.asarray([float(n)]), np.asarray([p0]))
    want = sps.poisson.sf(unseen - 1, n * p0) if unseen > 0 else 1.0
    assert math.isclose(float(got[0]), float(want), rel_tol=1e-9, abs_tol=TOL)


@pytest.mark.parametrize(
    ("unseen", "n", "p0", "v0"),
    [
        (1, 1000, 0.01, 1e-6),
        (40, 1190, 0.0216, 5.7e-6),
        (60, 1000, 0.008, 1e-7),
        (3, 50, 0.2, 1e-3),
    ],
)
def test_new_category_pvalue_with_an_uncertain_p0_is_the_negative_binomial_tail(
    unseen: int, n: int, p0: float, v0: float
) -> None:
    """Poisson(n M0), M0 ~ Gamma(mean p0, variance v0): nbinom.sf(u - 1, r, r / (r + mu))."""
    got = new_category_pvalue(
        np.asarray([float(unseen)]), np.asarray([float(n)]), np.asarray([p0]), np.asarray([v0])
    )
    r, mu = p0 * p0 / v0, n * p0
    want = sps.nbinom.sf(unseen - 1, r, r / (r + mu))
    assert math.isclose(float(got[0]), float(want), rel_tol=1e-7, abs_tol=TOL)
    exact = new_category_pvalue(*(np.asarray([float(v)]) for v in (unseen, n, p0)))
    if unseen > mu:  # above the mean, an uncertain p0 can only weaken the evidence
        assert got[0] > exact[0]


def test_good_turing_variance_matches_the_spread_of_warmups() -> None:
    """(p1 (1 - p1) + 2 p2) / n matches the spread of f1/n - M0 over 2,000 Zipf warm-ups."""
    rng = np.random.default_rng(1_113)
    p = 1.0 / np.arange(1, 1001) ** 1.1
    p /= p.sum()
    n = 10_000
    errors, variances = [], []
    for _ in range(2_000):
        counts = rng.multinomial(n, p)
        p1, p2 = np.sum(counts == 1) / n, np.sum(counts == 2) / n
        errors.append(p1 - p[counts == 0].sum())
        variances.append(
            float(good_turing_variance(np.asarray([p1]), np.asarray([p2]), np.asarray([n]))[0])
        )
    assert np.var(errors) == pytest.approx(np.mean(variances), rel=0.1)
    only_f1 = good_turing_variance(np.asarray([0.0222]), np.asarray([np.nan]), np.asarray([n]))
    assert only_f1[0] == pytest.approx(0.0222 * (1 - 0.0222) / n)
    assert only_f1[0] < 0.5 * np.var(errors), "f1 alone misses most of the variance"


def test_new_category_pvalue_edge_cases() -> None:
    """p0 = 0 with an unseen value gives 0; no unseen value gives 1; n = 0 gives NaN."""
    got = new_category_pvalue(
        np.asarray([1.0, 0.0, 0.0]), np.asarray([100.0, 100.0, 0.0]), np.zeros(3)
    )
    assert got[0] == 0.0
    assert got[1] == 1.0
    assert math.isnan(got[2])


@pytest.mark.parametrize(
    ("k_r", "n_r", "k_c", "n_c"),
    [(50, 1000, 300, 1000), (50, 1000, 55, 1200), (0, 500, 3, 500), (7, 90, 2, 4000)],
)
def test_two_proportion_pvalue_matches_hand_formula(k_r: int, n_r: int, k_c: int, n_c: int) -> None:
    """Pooled two-sided z-test: p = erfc(|z| / sqrt 2)."""
    pooled = (k_r + k_c) / (n_r + n_c)
    z = (k_c / n_c - k_r / n_r) / math.sqrt(pooled * (1 - pooled) * (1 / n_r + 1 / n_c))
    want = math.erfc(abs(z) / math.sqrt(2))
    got = two_proportion_pvalue(*(np.asarray([float(v)]) for v in (k_r, n_r, k_c, n_c)))
    assert math.isclose(float(got[0]), want, rel_tol=1e-9, abs_tol=1e-300)


def test_two_proportion_pvalue_degenerate() -> None:
    """Both proportions 0 or both 1 give p = 1; an empty sample gives NaN."""
    got = two_proportion_pvalue(
        np.asarray([0.0, 10.0, 1.0]),
        np.asarray([10.0, 10.0, 0.0]),
        np.asarray([0.0, 20.0, 1.0]),
        np.asarray([20.0, 20.0, 5.0]),
    )
    assert got[0] == 1.0
    assert got[1] == 1.0
    assert math.isnan(got[2])


def _bh_loop(p: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values by the textbook step-up loop."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        out[i] = running
    return out


@pytest.mark.parametrize("seed", range(5))
def test_benjamini_hochberg_matches_scipy_and_a_loop(seed: int) -> None:
    """q-values equal scipy.stats.false_discovery_control and the step-up loop."""
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 1, 40), rng.uniform(0, 1e-4, 10), [0.0, 1.0, 0.5, 0.5]])
    rng.shuffle(p)
    q = benjamini_hochberg(p)
    np.testing.assert_allclose(q, sps.false_discovery_control(p, method="bh"), rtol=1e-12)
    np.testing.assert_allclose(q, _bh_loop(p.tolist()), rtol=1e-12)
    order = np.argsort(p, kind="mergesort")
    assert np.all(np.diff(q[order]) >= 0)
    assert np.all(q >= p)


def test_benjamini_hochberg_leaves_nan_out_of_the_family() -> None:
    """NaN p-values stay NaN and do not count in m."""
    p = np.asarray([0.01, np.nan, 0.04, np.nan, 0.03])
    q = benjamini_hochberg(p)
    assert np.isnan(q[[1, 3]]).all()
    np.testing.assert_allclose(q[[0, 2, 4]], _bh_loop([0.01, 0.04, 0.03]), rtol=1e-12)
    assert np.isnan(benjamini_hochberg(np.asarray([np.nan, np.nan]))).all()


def test_bonferroni_counts_finite_p_values_only() -> None:
    """Bonferroni is min(m p, 1) with m the number of finite p-values; NaN stays NaN."""
    q = bonferroni(np.asarray([0.01, np.nan, 0.2, 0.5]))
    np.testing.assert_allclose(q[[0, 2, 3]], [0.03, 0.6, 1.0], rtol=1e-15)
    assert math.isnan(q[1])


def test_ks_binned_on_a_hand_example() -> None:
    """D is the largest CDF gap over slots; err_bound the largest single-slot mass."""
    ref = np.asarray([[10, 20, 30, 40]])
    cur = np.asarray([[40, 30, 20, 10]])
    d, err = ks_binned(ref, cur)
    assert math.isclose(d[0], 0.4)  # cumsums 0.1/0.3/0.6/1 vs 0.4/0.7/0.9/1
    assert math.isclose(err[0], 0.4)
    n_eff = 100 * 100 / 200
    p = ks_pvalue(d, np.asarray([100.0]), np.asarray([100.0]))
    assert math.isclose(p[0], float(sps.kstwobign.sf(0.4 * math.sqrt(n_eff))), rel_tol=1e-12)


def test_ks_empty_rows_are_nan() -> None:
    """An empty reference or current row gives NaN statistic and p-value."""
    d, _ = ks_binned(np.asarray([[0, 0], [1, 2]]), np.asarray([[1, 1], [0, 0]]))
    assert np.isnan(d).all()
    assert np.isnan(ks_pvalue(d, np.asarray([0.0, 3.0]), np.asarray([2.0, 0.0]))).all()


COUNTS = hnp.arrays(np.int64, st.integers(1, 12), elements=st.integers(0, 10_000))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), ref=COUNTS)
def test_psi_is_non_negative_and_zero_on_identical_counts(
    data: st.DataObject, ref: np.ndarray
) -> None:
    """PSI >= 0 always, exactly 0 for identical counts, and never NaN on non-empty rows."""
    cur = data.draw(hnp.arrays(np.int64, ref.shape, elements=st.integers(0, 10_000)))
    value, p = psi(ref[None, :], cur[None, :])
    same, same_p = psi(ref[None, :], ref[None, :])
    if ref.sum() == 0 or cur.sum() == 0:
        assert math.isnan(value[0])
    else:
        assert value[0] >= 0.0
        assert 0.0 <= p[0] <= 1.0
        assert _close(float(value[0]), psi_oracle(ref.tolist(), cur.tolist(), grouped=False)[0])
    if ref.sum() > 0:
        assert same[0] == 0.0
        assert same_p[0] == 1.0


@settings(max_examples=60, deadline=None)
@given(ref=hnp.arrays(np.int64, st.integers(1, 12), elements=st.integers(1, 1000)))
def test_psi_of_proportional_counts_is_only_smoothing(ref: np.ndarray) -> None:
    """Same proportions at 3x the size: PSI > 0 only through the +0.5 smoothing, and tiny."""
    value, _ = psi(ref[None, :], 3 * ref[None, :])
    assert 0.0 <= value[0] <= 0.5 * ref.size / ref.sum()


@settings(max_examples=150, deadline=None)
@given(data=st.data(), ref=COUNTS)
def test_ks_is_bounded_and_symmetric(data: st.DataObject, ref: np.ndarray) -> None:
    """D in [0, 1], ks(a, b) == ks(b, a), err_bound in [0, 1], D(a, a) == 0."""
    cur = data.draw(hnp.arrays(np.int64, ref.shape, elements=st.integers(0, 10_000)))
    d_ab, err_ab = ks_binned(ref[None, :], cur[None, :])
    d_ba, err_ba = ks_binned(cur[None, :], ref[None, :])
    if ref.sum() == 0 or cur.sum() == 0:
        assert math.isnan(d_ab[0])
        return
    assert 0.0 <= d_ab[0] <= 1.0
    assert d_ab[0] == d_ba[0]
    assert err_ab[0] == err_ba[0]
    assert 0.0 <= err_ab[0] <= 1.0
    assert ks_binned(ref[None, :], ref[None, :])[0][0] == 0.0


@settings(max_examples=100, deadline=None)
@given(data=st.data(), k=st.integers(2, 10))
def test_tvd_and_chi2_are_bounded(data: st.DataObject, k: int) -> None:
    """TVD in [0, 1], chi-square p in [0, 1] for any pair of non-empty count vectors."""
    elements = st.integers(0, 5000)
    ref = data.draw(hnp.arrays(np.int64, k, elements=elements).filter(lambda a: a.sum() > 0))
    cur = data.draw(hnp.arrays(np.int64, k, elements=elements).filter(lambda a: a.sum() > 0))
    tvd = total_variation(ref[None, :], cur[None, :])[0]
    assert 0.0 <= tvd <= 1.0 + 1e-15
    _, p = chi2_homogeneity(ref[None, :], cur[None, :])
    assert 0.0 <= p[0] <= 1.0


def test_evaluate_categorical_statistics_match_scipy_on_the_merged_table() -> None:
    """A categorical FeatureResult's chi2 p, TVD and new-category p match scipy by hand."""
    rng = np.random.default_rng(77)
    bins = CategoricalBins(
        ("a", "b", "c", "d"), frozenset({"a", "b", "c", "d", "e", "f"}), singleton_fraction=0.004
    )
    layout = ModelLayout([], [("cat", bins)])
    # Slots: a b c d OTHER UNSEEN; reference UNSEEN is 0 by construction.
    ref_row = np.asarray([4000, 3000, 2000, 3, 990, 0])
    cur_row = np.asarray([1800, 1500, 1100, 1, 500, int(rng.integers(20, 60))])
    reference, current = _zeros(layout), _zeros(layout)
    reference[0, :6], current[0, :6] = ref_row, cur_row
    current[0, layout.missing_col] = 17
    evaluator = ModelEvaluator(
        layout, [FeatureSpec("cat", FeatureKind.CATEGORICAL)], DecisionPolicy(min_samples=100)
    )
    result = evaluator.evaluate(reference, current, EvaluationContext("m", 0.0)).features[0]
    # Unseen merged into OTHER, then bucket "d" (expected < 5) merged into OTHER as well.
    merged_r = [4000, 3000, 2000, 0, 993]
    merged_c = [1800, 1500, 1100, 0, 500 + int(cur_row[5]) + 1]
    table = np.asarray([merged_r, merged_c])
    table = table[:, table.sum(axis=0) > 0]
    want = sps.chi2_contingency(table, correction=False)
    assert _close(result.chi2_pvalue, float(want.pvalue), rel=1e-9)
    unmerged_r = [4000, 3000, 2000, 3, 990]
    unmerged_c = [1800, 1500, 1100, 1, 500 + int(cur_row[5])]
    tvd = 0.5 * sum(
        abs(r / sum(unmerged_r) - c / sum(unmerged_c))
        for r, c in zip(unmerged_r, unmerged_c, strict=True)
    )
    assert _close(result.tvd, tvd)
    n_c = int(cur_row.sum())
    # p0 = 0.004 from a reference of 9,993 values, no doubleton fraction recorded
    v0 = 0.004 * 0.996 / 9_993
    shape = 0.004**2 / v0
    want_new = sps.nbinom.sf(int(cur_row[5]) - 1, shape, shape / (shape + n_c * 0.004))
    assert _close(result.new_category_pvalue, float(want_new), rel=1e-9)
    assert _close(result.unseen_category_ratio, cur_row[5] / n_c)
    assert _close(result.psi, psi_oracle(unmerged_r, unmerged_c, grouped=False)[0])
    assert result.ks_statistic is None
    assert result.ks_pvalue is None
    assert result.ks_error_bound is None
    assert result.psi_pvalue is None
    assert result.out_of_range_ratio is None
    assert result.current_samples == n_c
    assert _close(result.current_missing_ratio, 17 / (n_c + 17))
