"""Acceptance of the correlation drift test (monitor.correlation): level and power by simulation.

Raw events are drawn (no histogram shortcut: the statistic is a function of raw values), the
reference is fitted from raw reference events as `reference fit` and the warm-up do, and the
current window's sums are the production `CorrelationReference.moments`. Fixed seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.correlation_power import correlated
from monitor.correlation import correlations, evaluate_pairs, fisher_z_pvalue, fit_reference
from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.histogram import CountMatrix, ModelLayout
from monitor.model import DecisionPolicy, FeatureKind, FeatureSpec
from monitor.reference import fit_profile, layout_for

NAMES = ("f0", "f1", "f2", "f3", "f4")


def _null_level(lognormal: bool, seed: int) -> tuple[float, int]:
    """Share of (pair, window) tests with p <= 0.05 under no change, and the drifted pairs."""
    rng = np.random.default_rng(seed)
    rejections = tests = drifted = 0
    upper = np.triu_indices(5, k=1)
    for _ in range(300):
        ref = fit_reference(NAMES, correlated(rng, 10_000, 0.3, lognormal))
        current = ref.moments(correlated(rng, 2_000, 0.3, lognormal))
        r_ref, n_ref = correlations(ref.sums)
        r_cur, n_cur = correlations(current)
        factor = ref.variance_factor[upper]
        p = fisher_z_pvalue(r_ref[upper], n_ref[upper], r_cur[upper], n_cur[upper], factor)
        rejections += int((p <= 0.05).sum())
        tests += p.size
        drifted += evaluate_pairs(ref, current, DecisionPolicy()).drifted_pairs
    return rejections / tests, drifted


@pytest.mark.slow
@pytest.mark.parametrize("lognormal", [False, True], ids=["normal", "lognormal"])
def test_fisher_z_level_on_null_data_is_near_nominal(lognormal: bool) -> None:
    """Under no change, p <= 0.05 in [0.03, 0.07] of (pair, window) tests, and no pair drifts."""
    level, drifted = _null_level(lognormal, 2026)
    print(f"Fisher-z level at 0.05 ({'lognormal' if lognormal else 'normal'}): {level:.4f}")
    assert 0.03 <= level <= 0.07
    assert drifted == 0


def test_variance_factor_is_one_for_normal_and_larger_for_lognormal_pairs() -> None:
    """k estimated on the reference is ~1 for bivariate normal data and > 1.5 for lognormals."""
    rng = np.random.default_rng(4)
    normal = fit_reference(NAMES, correlated(rng, 50_000, 0.5)).variance_factor
    skewed = fit_reference(NAMES, correlated(rng, 50_000, 0.5, lognormal=True)).variance_factor
    upper = np.triu_indices(5, k=1)
    assert np.all(np.abs(normal[upper] - 1.0) < 0.05)
    assert skewed[0, 1] > 1.5


def _marginal_evaluator(
    reference_raw: np.ndarray,
) -> tuple[ModelEvaluator, ModelLayout, CountMatrix]:
    """The production per-feature evaluator of the five numeric features (KS and PSI legs)."""
    specs = [FeatureSpec(n, FeatureKind.NUMERIC) for n in NAMES]
    profile = fit_profile("m", specs, {n: reference_raw[i] for i, n in enumerate(NAMES)}, {})
    layout, counts, _ = layout_for(profile, specs)
    evaluator = ModelEvaluator(layout, specs, DecisionPolicy())
    return evaluator, layout, counts


@pytest.mark.slow
def test_correlation_change_is_detected_while_every_marginal_stays_below_its_floor() -> None:
    """r(f0, f1) 0.3 -> 0.5 at n_cur = 1e4: flagged in >= 95 % of windows, no marginal floor met."""
    rng = np.random.default_rng(13)
    reference_raw = correlated(rng, 50_000, 0.3)
    ref = fit_reference(NAMES, reference_raw)
    evaluator, layout, counts = _marginal_evaluator(reference_raw)
    groups = evaluator.psi_groups(counts)
    windows, detected, marginal_floor_met, other_pairs = 100, 0, 0, 0
    context = EvaluationContext("m", 0.0)
    for _ in range(windows):
        raw = correlated(rng, 10_000, 0.5)
        result = evaluate_pairs(ref, ref.moments(raw), DecisionPolicy())
        flagged = {(p.feature_a, p.feature_b) for p in result.top_pairs if p.drifted}
        detected += ("f0", "f1") in flagged
        other_pairs += len(flagged - {("f0", "f1")})
        current = layout.count(raw, [])
        evaluation = evaluator.evaluate(counts, current, context, groups)
        for feature in evaluation.features:
            assert feature.ks_statistic is not None and feature.psi is not None
            marginal_floor_met += feature.ks_statistic >= 0.05 or feature.psi >= 0.02
            marginal_floor_met += feature.drift_detected
    print(f"correlation 0.3 -> 0.5 detected in {detected}/{windows} windows")
    assert detected >= 0.95 * windows
    assert marginal_floor_met == 0
    assert other_pairs == 0
