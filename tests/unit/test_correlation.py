"""Tests of monitor.correlation: moment sums, r against numpy.corrcoef, the window ring, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.correlation import (
    CorrelationReference,
    CorrelationWindow,
    change_noise_floor,
    correlations,
    evaluate_pairs,
    fisher_z_pvalue,
    fit_reference,
)
from monitor.model import DecisionPolicy

NAMES = ("a", "b", "c", "d")


def _sample(rng: np.random.Generator, n: int, rho: float, missing: float = 0.0) -> np.ndarray:
    """Four features: (a, b) correlated rho, c heavy-tailed, d shifted by 1e6; some NaN."""
    a = rng.standard_normal(n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    c = rng.standard_t(2, n) + 0.2 * a
    d = 1e6 + 3.0 * rng.standard_normal(n) - b
    x = np.vstack([a, b, c, d])
    x[rng.random(x.shape) < missing] = np.nan
    return x


def _oracle(ref: CorrelationReference, raw: np.ndarray) -> np.ndarray:
    """numpy.corrcoef per pair on the winsorised raw values of the rows where both are present."""
    clipped = np.clip(raw, ref.lo[:, None], ref.hi[:, None])
    g = raw.shape[0]
    out = np.full((g, g), np.nan)
    for i in range(g):
        for j in range(g):
            both = ~np.isnan(raw[i]) & ~np.isnan(raw[j])
            out[i, j] = np.corrcoef(clipped[i, both], clipped[j, both])[0, 1]
    return out


def test_correlations_equal_numpy_corrcoef_on_winsorised_values() -> None:
    """Each pair's r from the sums equals numpy.corrcoef of its winsorised complete rows (1e-9)."""
    rng = np.random.default_rng(7)
    ref = fit_reference(NAMES, _sample(rng, 20_000, 0.3, missing=0.05))
    raw = _sample(rng, 5_000, 0.5, missing=0.1)
    raw[2, :10] = 1e9  # outliers are clipped to the reference 99.5 % quantile
    r, n = correlations(ref.moments(raw))
    expected = _oracle(ref, raw)
    assert np.max(np.abs(r - expected)) < 1e-9
    both = (~np.isnan(raw[0]) & ~np.isnan(raw[1])).sum()
    assert n[0, 1] == both


def test_reference_sums_reproduce_reference_correlations() -> None:
    """The reference's own r equals numpy.corrcoef on its winsorised values (1e-9)."""
    rng = np.random.default_rng(8)
    raw = _sample(rng, 10_000, 0.3, missing=0.02)
    ref = fit_reference(NAMES, raw)
    r, _ = correlations(ref.sums)
    assert np.max(np.abs(r - _oracle(ref, raw))) < 1e-9
    assert np.allclose(ref.lo, np.nanquantile(raw, 0.005, axis=1))
    assert np.allclose(ref.hi, np.nanquantile(raw, 0.995, axis=1))


def test_bucketed_window_equals_one_batch_and_evicts_old_buckets() -> None:
    """Sums added across buckets equal one batch of the buckets in range; older ones drop out."""
    rng = np.random.default_rng(9)
    ref = fit_reference(NAMES, _sample(rng, 5_000, 0.3))
    raw = _sample(rng, 6_000, 0.4, missing=0.05)
    times = np.sort(rng.uniform(0, 600, raw.shape[1]))  # buckets 0..9 at 60 s
    window = CorrelationWindow(4, 60.0, n_buckets=5, n_slots=6)
    for part in np.array_split(np.arange(raw.shape[1]), 13):
        window.add_batch(ref, raw[:, part], times[part])
    head = 9
    in_window = times >= 60.0 * (head - 5 + 1)
    expected = ref.moments(raw[:, in_window])
    assert np.allclose(window.current(head), expected, rtol=1e-12, atol=1e-6)
    r, _ = correlations(window.current(head))
    assert np.max(np.abs(r - _oracle(ref, raw[:, in_window]))) < 1e-9


def test_merge_of_two_halves_equals_the_whole_and_state_round_trips() -> None:
    """Two windows fed disjoint halves merge into the window fed everything; state restores it."""
    rng = np.random.default_rng(10)
    ref = fit_reference(NAMES, _sample(rng, 5_000, 0.3))
    raw = _sample(rng, 4_000, 0.3)
    times = 300.0 * rng.random(size=(int(raw.shape[1]),))
    whole, left, right = (CorrelationWindow(4, 60.0, 5, 6) for _ in range(3))
    whole.add_batch(ref, raw, times)
    half = rng.random(raw.shape[1]) < 0.5
    left.add_batch(ref, raw[:, half], times[half])
    right.add_batch(ref, raw[:, ~half], times[~half])
    left.merge(right, oldest=-1, head=4)
    assert np.allclose(left.current(4), whole.current(4), rtol=1e-12)
    copy = CorrelationWindow(4, 60.0, 5, 6)
    copy.restore(left.state())
    assert np.array_equal(copy.current(4), left.current(4))
    with pytest.raises(ValueError, match="checkpointed"):
        CorrelationWindow(3, 60.0, 5, 6).restore(left.state())


def test_reference_json_round_trip_and_refusals() -> None:
    """A reference survives JSON exactly; malformed ones are refused with ValueError."""
    rng = np.random.default_rng(11)
    ref = fit_reference(NAMES, _sample(rng, 2_000, 0.3))
    back = CorrelationReference.from_json(json.loads(json.dumps(ref.to_json())))
    assert back.names == ref.names
    assert np.array_equal(back.sums, ref.sums) and np.array_equal(back.lo, ref.lo)
    bad = ref.to_json()
    bad["scale"] = [0.0, 1.0, 1.0, 1.0]
    no_factor = {k: v for k, v in ref.to_json().items() if k != "variance_factor"}
    bad_sums = {**ref.to_json(), "sums": [[1.0]]}
    for item in (bad, bad_sums, no_factor, {"features": ["a"]}, [1], None):
        with pytest.raises(ValueError):
            CorrelationReference.from_json(item)
    with pytest.raises(ValueError, match="no finite"):
        fit_reference(("a", "b"), np.vstack([np.ones(10), np.full(10, np.nan)]))


def test_fisher_z_matches_first_principles() -> None:
    """p = 2(1 - Phi(|z|)) with z from atanh and the 1/(n-3) variances; NaN below 4 rows."""
    from scipy import stats as sps

    p = fisher_z_pvalue(
        np.array([0.3, 0.3]),
        np.array([1000.0, 3.0]),
        np.array([0.4, 0.4]),
        np.array([500.0, 500.0]),
    )
    z = (np.arctanh(0.4) - np.arctanh(0.3)) / np.sqrt(1 / 497 + 1 / 997)
    assert p[0] == pytest.approx(2 * sps.norm.sf(z), rel=1e-12)
    assert np.isnan(p[1])
    scaled = fisher_z_pvalue(
        np.array([0.3]), np.array([1000.0]), np.array([0.4]), np.array([500.0]), 2.0
    )
    assert scaled[0] == pytest.approx(2 * sps.norm.sf(z / np.sqrt(2.0)), rel=1e-12)


def test_constant_feature_is_never_evaluated_and_hostile_values_do_not_crash() -> None:
    """A constant feature has no r (its pairs are skipped); inf and NaN are missing values."""
    rng = np.random.default_rng(12)
    raw = _sample(rng, 3_000, 0.3)
    raw[3] = 5.0
    ref = fit_reference(NAMES, raw)
    cur = _sample(rng, 3_000, 0.3)
    cur[0, :100] = np.inf
    cur[1, :100] = -np.inf
    assert np.array_equal(ref.moments(cur), ref.moments(np.where(np.isfinite(cur), cur, np.nan)))
    result = evaluate_pairs(ref, ref.moments(cur), DecisionPolicy(min_samples=1000))
    assert result.pairs_evaluated == 3  # the pairs among a, b, c
    assert all("d" not in (p.feature_a, p.feature_b) for p in result.top_pairs)


def test_evaluate_pairs_flags_the_changed_pair_only() -> None:
    """r(a, b) from 0.3 to 0.6 is the one drifted pair, first in the top pairs."""
    rng = np.random.default_rng(13)
    ref = fit_reference(NAMES, _sample(rng, 20_000, 0.3))
    result = evaluate_pairs(ref, ref.moments(_sample(rng, 10_000, 0.6)), DecisionPolicy())
    assert result.drifted_pairs == 1
    top = result.top_pairs[0]
    assert (top.feature_a, top.feature_b, top.drifted) == ("a", "b", True)
    assert result.max_abs_change == pytest.approx(abs(top.change))
    assert top.change == pytest.approx(0.3, abs=0.03)
    assert len(result.top_pairs) == 6 and result.pairs_evaluated == 6


def test_noise_floor_is_the_delta_method_standard_error_of_the_change_times_m() -> None:
    """m (1 - r_ref^2) sqrt(k (1/(n_cur-3) + 1/(n_ref-3))) from first principles; NaN or 0."""
    r_ref = np.array([0.3, -0.5, np.nan, 0.3])
    n_ref = np.array([10_003.0, 5_003.0, 10_003.0, 3.0])
    n_cur = np.array([1_003.0, 2_003.0, 1_003.0, 1_003.0])
    factor = np.array([1.0, 2.5, 1.0, 1.0])
    got = change_noise_floor(r_ref, n_ref, n_cur, factor, 6.0)
    assert got[0] == pytest.approx(6 * 0.91 * np.sqrt(1 / 1_000 + 1 / 10_000), rel=1e-12)
    assert got[1] == pytest.approx(6 * 0.75 * np.sqrt(2.5 * (1 / 2_000 + 1 / 5_000)), rel=1e-12)
    assert np.isnan(got[2]) and np.isnan(got[3])
    assert change_noise_floor(r_ref, n_ref, n_cur, factor, 0.0)[:2].tolist() == [0.0, 0.0]


def test_a_change_inside_the_noise_of_a_small_window_is_not_a_drift() -> None:
    """r(a, b) 0.3 -> 0.45 in 1,100 events clears the 0.1 floor and BH but not 6 standard
    errors (about 0.17): not drifted at the default, drifted with the noise floor off, and
    the same change in 20,000 events (6 SE about 0.06) is drifted at the default."""
    rng = np.random.default_rng(14)
    ref = fit_reference(NAMES, _sample(rng, 20_000, 0.3))
    small = ref.moments(_sample(rng, 1_100, 0.45))
    policy = DecisionPolicy(min_samples=1000)
    default = evaluate_pairs(ref, small, policy)
    off = evaluate_pairs(ref, small, policy, noise_multiple=0.0)
    pair = off.top_pairs[0]
    assert (pair.feature_a, pair.feature_b) == ("a", "b")
    assert 0.1 <= abs(pair.change) < 0.17 and pair.drifted
    assert default.drifted_pairs == 0 and off.drifted_pairs == 1
    large = evaluate_pairs(ref, ref.moments(_sample(rng, 20_000, 0.45)), policy)
    assert large.drifted_pairs == 1 and large.top_pairs[0].drifted
