"""Tests of monitor.evaluate: the per-feature decision rule on hand-made models.

Reference profiles are fitted from raw data with monitor.reference and current windows are
counted with the production layout, so the whole pure path raw values -> decision is used.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats as sps

from monitor.edges import learn_edges
from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.histogram import CategoricalBins, CountMatrix, ModelLayout, NumericBins
from monitor.model import (
    Correction,
    DecisionPolicy,
    FeatureKind,
    FeatureResult,
    FeatureSpec,
    ModelEvaluation,
    Thresholds,
)
from monitor.reference import fit_profile, layout_for

N = 20_000
CATEGORIES = [f"k{i}" for i in range(10)]
SPECS = [
    FeatureSpec("shifted", FeatureKind.NUMERIC),
    FeatureSpec("stable", FeatureKind.NUMERIC),
    FeatureSpec("gappy", FeatureKind.NUMERIC),
    FeatureSpec("brand", FeatureKind.CATEGORICAL),
    FeatureSpec("region", FeatureKind.CATEGORICAL),
]
CONTEXT = EvaluationContext("fraud", 1234.5, "sha256:abc", "file", "v7", 99.0)


def feature_kinds(layout: ModelLayout) -> tuple[FeatureKind, ...]:
    """Kind of each row of a layout: numeric rows first, then categorical."""
    n_categorical = layout.n_features - layout.n_numeric
    return (FeatureKind.NUMERIC,) * layout.n_numeric + (FeatureKind.CATEGORICAL,) * n_categorical


def _with_missing(rng: np.random.Generator, x: np.ndarray, share: float) -> np.ndarray:
    """x with `share` of its values replaced by NaN."""
    out = x.copy()
    out[rng.random(x.size) < share] = np.nan
    return out


def _categories(rng: np.random.Generator, n: int, new_share: float = 0.0) -> np.ndarray:
    """Uniform over CATEGORIES, with `new_share` of the values a never-seen category."""
    column = np.asarray(rng.choice(CATEGORIES, n), dtype=object)
    column[rng.random(n) < new_share] = "brand-new"
    return column


def _model(seed: int = 1) -> tuple[ModelLayout, CountMatrix, tuple[FeatureSpec, ...]]:
    """The reference of the hand-made model, fitted from raw columns."""
    rng = np.random.default_rng(seed)
    profile = fit_profile(
        "fraud",
        SPECS,
        numeric={
            "shifted": rng.normal(0.0, 1.0, N),
            "stable": rng.lognormal(0.0, 1.0, N),
            "gappy": _with_missing(rng, rng.normal(5.0, 2.0, N), 0.05),
        },
        categorical={"brand": list(_categories(rng, N)), "region": list(_categories(rng, N))},
    )
    return layout_for(profile, SPECS)


def _current(
    layout: ModelLayout, seed: int, n: int = N, drift: bool = True, tiny_new: bool = False
) -> CountMatrix:
    """A current window: with drift, shifted +1 sd, gappy 30 % missing, brand 5 % new."""
    rng = np.random.default_rng(seed)
    numeric = np.vstack(
        [
            rng.normal(1.0 if drift else 0.0, 1.0, n),
            rng.lognormal(0.0, 1.0, n),
            _with_missing(rng, rng.normal(5.0, 2.0, n), 0.30 if drift else 0.05),
        ]
    )
    new_share = 0.005 if tiny_new else (0.05 if drift else 0.0)
    columns = [_categories(rng, n, new_share), _categories(rng, n)]
    return layout.count(numeric, columns)


def _zeros(layout: ModelLayout) -> CountMatrix:
    """An int64 zero count matrix of the layout's shape."""
    return np.zeros((layout.n_features, layout.width), dtype=np.int64)


def _by_name(evaluation: ModelEvaluation) -> dict[str, FeatureResult]:
    """Feature results keyed by name."""
    return {f.name: f for f in evaluation.features}


def test_exactly_the_drifted_features_are_flagged_with_their_reasons() -> None:
    """Shift -> ks+psi, new 5 % category -> chi2+new_category, missing spike -> missing."""
    layout, reference, specs = _model()
    evaluator = ModelEvaluator(layout, specs, DecisionPolicy())
    evaluation = evaluator.evaluate(reference, _current(layout, seed=2), CONTEXT)
    result = _by_name(evaluation)
    flagged = {name: r.drift_reasons for name, r in result.items() if r.drift_detected}
    assert flagged == {
        "shifted": ("ks", "psi"),
        "gappy": ("missing",),
        "brand": ("chi2", "new_category"),
    }
    assert evaluation.drifted_features == 3
    assert result["shifted"].ks_statistic is not None
    assert result["shifted"].ks_statistic > 0.3  # D of a 1 sd shift is 0.38
    assert result["gappy"].current_missing_ratio == pytest.approx(0.30, abs=0.01)
    assert result["gappy"].reference_missing_ratio == pytest.approx(0.05, abs=0.005)
    assert result["brand"].unseen_category_ratio == pytest.approx(0.05, abs=0.005)
    assert result["brand"].tvd == pytest.approx(0.05, abs=0.01)
    for name in ("stable", "region"):
        assert not result[name].drift_detected
        assert result[name].drift_reasons == ()
        qvalue = result[name].qvalue
        assert qvalue is not None
        assert qvalue > evaluation.fdr_q


def test_no_drift_flags_nothing_and_copies_the_context() -> None:
    """The same distributions again: no feature drifts; the context fields are carried over."""
    layout, reference, specs = _model()
    evaluator = ModelEvaluator(layout, specs, DecisionPolicy())
    evaluation = evaluator.evaluate(reference, _current(layout, seed=3, drift=False), CONTEXT)
    assert evaluation.drifted_features == 0
    assert all(f.evaluated for f in evaluation.features)
    assert (evaluation.model, evaluation.evaluated_at) == ("fraud", 1234.5)
    assert (evaluation.reference_id, evaluation.reference_mode) == ("sha256:abc", "file")
    assert (evaluation.model_version, evaluation.watermark) == ("v7", 99.0)
    assert evaluation.correction is Correction.BH
    assert evaluation.fdr_q == 1e-3
    assert [f.kind for f in evaluation.features] == list(feature_kinds(layout))


def test_result_fields_follow_the_feature_kind() -> None:
    """Numeric results carry KS/PSI/out-of-range; categorical ones chi2/TVD/new, KS None."""
    layout, reference, specs = _model()
    evaluator = ModelEvaluator(layout, specs, DecisionPolicy())
    result = _by_name(evaluator.evaluate(reference, _current(layout, seed=4), CONTEXT))
    numeric, categorical = result["stable"], result["region"]
    assert numeric.kind is FeatureKind.NUMERIC
    for value in (
        numeric.ks_statistic,
        numeric.ks_error_bound,
        numeric.ks_pvalue,
        numeric.psi,
        numeric.psi_pvalue,
        numeric.out_of_range_ratio,
        numeric.missing_pvalue,
    ):
        assert value is not None
    assert (numeric.chi2_pvalue, numeric.tvd, numeric.unseen_category_ratio) == (None, None, None)
    assert numeric.new_category_pvalue is None
    assert categorical.kind is FeatureKind.CATEGORICAL
    assert (categorical.ks_statistic, categorical.ks_error_bound) == (None, None)
    assert (categorical.ks_pvalue, categorical.psi_pvalue) == (None, None)
    assert categorical.out_of_range_ratio is None
    for value in (
        categorical.chi2_pvalue,
        categorical.tvd,
        categorical.psi,
        categorical.unseen_category_ratio,
        categorical.new_category_pvalue,
    ):
        assert value is not None
    assert numeric.reference_samples == N
    assert numeric.current_samples == N
    assert numeric.thresholds == Thresholds()


def test_under_min_samples_no_statistic_but_sample_counts() -> None:
    """A 500-event current window (min_samples 1000): stats None, counts still reported."""
    layout, reference, specs = _model()
    evaluator = ModelEvaluator(layout, specs, DecisionPolicy(min_samples=1000))
    current = _current(layout, seed=5, n=500)
    evaluation = evaluator.evaluate(reference, current, CONTEXT)
    for row, result in enumerate(evaluation.features):
        assert not result.evaluated
        assert not result.drift_detected
        stats = (
            result.psi,
            result.psi_pvalue,
            result.ks_statistic,
            result.ks_pvalue,
            result.ks_error_bound,
            result.chi2_pvalue,
            result.tvd,
            result.unseen_category_ratio,
            result.new_category_pvalue,
            result.out_of_range_ratio,
            result.missing_pvalue,
            result.qvalue,
        )
        assert stats == (None,) * len(stats)
        value_cols = layout.width - 2
        assert result.current_samples == int(current[row, :value_cols].sum())
        assert result.reference_samples == int(reference[row, :value_cols].sum())
        assert result.current_missing_ratio is not None


def test_missing_leg_runs_when_values_are_below_min_samples() -> None:
    """900 values + 400 missing: no value statistic, but the missing leg (1300 >= 1000) fires."""
    layout, reference, specs = _model()
    current = _current(layout, seed=6, n=1300)
    gappy = layout.names.index("gappy")
    current[gappy, : layout.width - 2] = 0
    current[gappy, 2] = 900
    current[gappy, layout.missing_col] = 400
    evaluator = ModelEvaluator(layout, specs, DecisionPolicy(min_samples=1000))
    result = _by_name(evaluator.evaluate(reference, current, CONTEXT))["gappy"]
    assert not result.evaluated
    assert result.ks_statistic is None
    assert result.missing_pvalue is not None
    assert result.drift_detected
    assert result.drift_reasons == ("missing",)


def _bin_probabilities(edges: np.ndarray, shift: float) -> np.ndarray:
    """Slot probabilities of N(shift, 1) for the documented numeric slot layout."""
    cdf = sps.norm.cdf(edges - shift)
    return np.concatenate([[cdf[0], 0.0], np.diff(cdf), [1.0 - cdf[-1]]])


def _graded_model(
    shifts: list[float],
    n_ref: int,
    n_cur: int,
    seed: int,
    missing: dict[int, tuple[int, int]] | None = None,
) -> tuple[ModelLayout, list[FeatureSpec], CountMatrix, CountMatrix]:
    """Numeric features with the given location shifts, counts drawn by multinomial.

    `missing` maps a row to its (reference, current) missing counts (default none).
    """
    rng = np.random.default_rng(seed)
    edges = learn_edges(rng.normal(0.0, 1.0, 2000))
    names = [f"x{i}" for i in range(len(shifts))]
    layout = ModelLayout([(name, NumericBins(edges)) for name in names], [])
    slots = edges.size + 2
    reference, current = _zeros(layout), _zeros(layout)
    for row, shift in enumerate(shifts):
        reference[row, :slots] = rng.multinomial(n_ref, _bin_probabilities(edges, 0.0))
        current[row, :slots] = rng.multinomial(n_cur, _bin_probabilities(edges, shift))
    for row, (ref_missing, cur_missing) in (missing or {}).items():
        reference[row, layout.missing_col] = ref_missing
        current[row, layout.missing_col] = cur_missing
    return layout, [FeatureSpec(n, FeatureKind.NUMERIC) for n in names], reference, current


def _missing_change(result: FeatureResult) -> float:
    """|current - reference| missing ratio (0 when either is unknown)."""
    if result.current_missing_ratio is None or result.reference_missing_ratio is None:
        return 0.0
    return abs(result.current_missing_ratio - result.reference_missing_ratio)


def _psi_floor(result: FeatureResult, policy: DecisionPolicy) -> float:
    """max(psi_decision, multiple x the null mean 9 (1/n_r + 1/n_c)) for 10 non-empty groups."""
    noise = 9.0 * (1.0 / result.reference_samples + 1.0 / result.current_samples)
    return max(result.thresholds.psi_decision, policy.psi_noise_multiple * noise)


def _expected_reasons(
    results: tuple[FeatureResult, ...], policy: DecisionPolicy
) -> list[tuple[str, ...]]:
    """The documented rule recomputed from the published p-values and effects.

    Returns each feature's drift reasons (empty when it does not drift).
    """
    legs = [
        [
            ("ks", r.ks_pvalue, (r.ks_statistic or 0.0) >= r.thresholds.ks_decision),
            ("psi", r.psi_pvalue, (r.psi or 0.0) >= _psi_floor(r, policy)),
            (
                "missing",
                r.missing_pvalue,
                _missing_change(r) >= r.thresholds.missing_ratio_change_decision,
            ),
        ]
        for r in results
    ]
    family = [min(1.0, 2.0 * min(p for _, p, _ in f if p is not None)) for f in legs]
    m = len(family)
    if policy.correction is Correction.BH:
        q = list(sps.false_discovery_control(family, method="bh"))
        alpha = policy.fdr_q * sum(v <= policy.fdr_q for v in q) / m
    elif policy.correction is Correction.BONFERRONI:
        q = [min(1.0, m * p) for p in family]
        alpha = policy.fdr_q / m
    else:
        q, alpha = family, policy.fdr_q
    for result, want in zip(results, q, strict=True):
        assert result.qvalue == pytest.approx(want, rel=1e-12, abs=1e-300)
    reasons = []
    for q_i, f in zip(q, legs, strict=True):
        firing = tuple(name for name, p, ok in f if p is not None and p <= alpha / 2 and ok)
        reasons.append(firing if q_i <= policy.fdr_q else ())
    return reasons


def test_corrections_behave_as_documented() -> None:
    """BH, Bonferroni and none: q-values, alpha* and decisions follow the documented rule."""
    shifts = [0.0] * 10 + [0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.12, 0.15, 0.5]
    # The 0.5 sd feature also has a small missing-ratio change (4.8 % -> 5.8 %, p ~ 0.011):
    # over its floor, but its leg fires only where alpha*/2 >= 0.011 (none, not BH/Bonferroni).
    layout, specs, reference, current = _graded_model(
        shifts, 20_000, 3_000, seed=10, missing={19: (1000, 185)}
    )
    detected: dict[Correction, set[int]] = {}
    reasons_19: dict[Correction, tuple[str, ...]] = {}
    low = _with_floors(specs, ks=0.03, psi=0.005, missing=0.01)
    high = _with_floors(specs, ks=0.5, psi=0.5, missing=0.5)
    for correction in Correction:
        # the corrections alone (the noise floors: tests/stats/test_false_alarms.py)
        policy = DecisionPolicy(
            fdr_q=0.05,
            correction=correction,
            min_samples=500,
            psi_noise_multiple=0.0,
            ks_noise_multiple=0.0,
        )
        results = ModelEvaluator(layout, low, policy).evaluate(reference, current, CONTEXT)
        features = results.features
        assert results.correction is correction
        want = _expected_reasons(features, policy)
        assert [f.drift_reasons for f in features] == want
        assert [f.drift_detected for f in features] == [bool(r) for r in want]
        family = [min(1.0, 2.0 * min(f.ks_pvalue or 1.0, f.psi_pvalue or 1.0)) for f in features]
        order = np.argsort(family, kind="mergesort")
        qvalues = np.asarray([features[i].qvalue for i in order], dtype=np.float64)
        assert np.all(np.diff(qvalues) >= 0), "q-values must be monotone in the family p"
        for f in features:
            assert not f.drift_detected or (f.qvalue is not None and f.qvalue <= policy.fdr_q)
            assert f.drift_detected == bool(f.drift_reasons)
        detected[correction] = {i for i, f in enumerate(features) if f.drift_detected}
        reasons_19[correction] = features[19].drift_reasons
        strict = ModelEvaluator(layout, high, policy).evaluate(reference, current, CONTEXT)
        assert not any(f.drift_detected for f in strict.features)
        assert _expected_reasons(strict.features, policy) == [()] * len(shifts)
        assert [f.qvalue for f in strict.features] == [f.qvalue for f in features]
    bonferroni, bh, none = (
        detected[Correction.BONFERRONI],
        detected[Correction.BH],
        detected[Correction.NONE],
    )
    assert bonferroni < bh < none, (bonferroni, bh, none)
    assert {18, 19} <= bonferroni
    assert reasons_19[Correction.NONE] == ("ks", "psi", "missing")
    assert reasons_19[Correction.BH] == ("ks", "psi")
    assert reasons_19[Correction.BONFERRONI] == ("ks", "psi")


def test_out_of_range_ratio_counts_underflow_and_overflow() -> None:
    """out_of_range_ratio = (underflow + overflow) / current non-missing values."""
    layout, specs, reference, current = _graded_model([0.0, 0.0], 5_000, 5_000, seed=12)
    overflow = layout.value_slots[0] - 1
    current[0, 0] += 300
    current[0, overflow] += 200
    current[0, layout.missing_col] += 1000
    result = ModelEvaluator(layout, specs, DecisionPolicy()).evaluate(reference, current, CONTEXT)
    n_c = int(current[0, : layout.width - 2].sum())
    want = (int(current[0, 0]) + int(current[0, overflow])) / n_c
    assert result.features[0].out_of_range_ratio == pytest.approx(want, rel=1e-12)
    plain = current[1, 0] + current[1, overflow]
    assert result.features[1].out_of_range_ratio == pytest.approx(plain / 5_000, rel=1e-12)


def test_effect_below_the_floor_is_not_flagged_although_p_is_tiny() -> None:
    """A 0.02 sd shift at 5 million events: p ~ 0 but D < 0.05 and PSI < 0.02, no drift."""
    layout, specs, reference, current = _graded_model([0.02], 5_000_000, 5_000_000, seed=11)
    policy = DecisionPolicy()
    result = ModelEvaluator(layout, specs, policy).evaluate(reference, current, CONTEXT).features[0]
    assert result.ks_pvalue is not None and result.ks_pvalue < 1e-12
    assert result.psi_pvalue is not None and result.psi_pvalue < 1e-12
    assert result.qvalue is not None and result.qvalue <= policy.fdr_q
    assert result.ks_statistic is not None and result.ks_statistic < Thresholds().ks_decision
    assert result.psi is not None and result.psi < Thresholds().psi_decision
    assert not result.drift_detected
    lowered = _with_floors(specs, ks=0.001)
    again = ModelEvaluator(layout, lowered, policy).evaluate(reference, current, CONTEXT)
    assert again.features[0].drift_reasons == ("ks",)


def test_decision_floors_are_per_feature() -> None:
    """Two features with the same shift: only the one whose KS/PSI floors it reaches drifts."""
    layout, specs, reference, current = _graded_model([0.3, 0.3], 20_000, 5_000, seed=12)
    lenient, strict = _with_floors(specs[:1], ks=0.05, psi=0.02)[0], specs[1]
    strict = _with_floors([strict], ks=0.9, psi=50.0)[0]
    evaluation = ModelEvaluator(layout, [lenient, strict], DecisionPolicy()).evaluate(
        reference, current, CONTEXT
    )
    first, second = evaluation.features
    assert first.ks_statistic == pytest.approx(second.ks_statistic, abs=0.02)
    assert first.drift_detected and set(first.drift_reasons) == {"ks", "psi"}
    assert not second.drift_detected
    assert second.thresholds.ks_decision == 0.9


def test_new_category_floor_is_per_feature() -> None:
    """An unseen share of 0.5 % drifts a feature whose unseen-category floor is 0.001 only."""
    layout, reference, specs = _model()
    current = _current(layout, seed=7, drift=False, tiny_new=True)
    low = [
        dataclasses.replace(s, thresholds=Thresholds(unseen_category_ratio_decision=0.001))
        if s.name == "brand"
        else s
        for s in specs
    ]
    evaluation = ModelEvaluator(layout, low, DecisionPolicy()).evaluate(reference, current, CONTEXT)
    brand = _by_name(evaluation)["brand"]
    assert brand.drift_detected and "new_category" in brand.drift_reasons


def test_new_category_below_its_floor_is_not_flagged() -> None:
    """A brand-new category at 0.5 % (p0 = 0): p = 0, but 0.005 < p0 + 0.01, so no drift."""
    layout, reference, specs = _model()
    current = _current(layout, seed=7, drift=False, tiny_new=True)
    evaluation = ModelEvaluator(layout, specs, DecisionPolicy()).evaluate(
        reference, current, CONTEXT
    )
    brand = _by_name(evaluation)["brand"]
    assert brand.new_category_pvalue == 0.0
    assert brand.unseen_category_ratio is not None
    assert brand.unseen_category_ratio < 0.01
    assert not brand.drift_detected


def test_empty_current_window_evaluates_nothing() -> None:
    """An all-zero current window: every feature unevaluated, no q-value, no drift."""
    layout, reference, specs = _model()
    evaluation = ModelEvaluator(layout, specs, DecisionPolicy()).evaluate(
        reference, _zeros(layout), CONTEXT
    )
    for result in evaluation.features:
        assert not result.evaluated
        assert result.current_samples == 0
        assert result.current_missing_ratio is None
        assert result.qvalue is None
        assert not result.drift_detected


def test_specs_must_follow_the_layout_order() -> None:
    """Specs in another order than the layout's rows are refused."""
    layout, _, specs = _model()
    with pytest.raises(ValueError, match="layout's feature order"):
        ModelEvaluator(layout, list(reversed(specs)), DecisionPolicy())


def test_thresholds_are_copied_from_the_specs() -> None:
    """Each FeatureResult carries its FeatureSpec's thresholds (exported as series)."""
    layout, reference, specs = _model()
    custom = [
        FeatureSpec(s.name, s.kind, Thresholds(psi_warning=0.2 + i, psi_critical=0.4 + i))
        for i, s in enumerate(specs)
    ]
    evaluation = ModelEvaluator(layout, custom, DecisionPolicy()).evaluate(
        reference, _current(layout, seed=8), CONTEXT
    )
    for i, result in enumerate(evaluation.features):
        assert math.isclose(result.thresholds.psi_warning, 0.2 + i)
        assert math.isclose(result.thresholds.psi_critical, 0.4 + i)


def _with_floors(
    specs: list[FeatureSpec], *, ks: float = 0.05, psi: float = 0.02, missing: float = 0.05
) -> list[FeatureSpec]:
    """The specs with these KS, PSI and missing-ratio decision floors."""
    floors = Thresholds(ks_decision=ks, psi_decision=psi, missing_ratio_change_decision=missing)
    return [dataclasses.replace(s, thresholds=floors) for s in specs]


def _random_counts(layout: ModelLayout) -> st.SearchStrategy[np.ndarray]:
    """Count matrices of the layout's shape with zeros, tiny and large counts in used slots."""
    used = np.zeros((layout.n_features, layout.width), dtype=bool)
    for row, slots in enumerate(layout.value_slots.tolist()):
        used[row, :slots] = True
    used[:, layout.missing_col :] = True
    counts = hnp.arrays(
        np.int64,
        used.shape,
        elements=st.one_of(st.just(0), st.integers(0, 5), st.integers(0, 10**7)),
    )
    return counts.map(lambda c: np.where(used, c, 0))


def _mixed_layout() -> tuple[ModelLayout, list[FeatureSpec]]:
    """Two numeric features and two categorical ones of different widths."""
    layout = ModelLayout(
        [("a", NumericBins(np.asarray([0.0]))), ("b", NumericBins(np.arange(6.0)))],
        [
            ("c", CategoricalBins(("x",), frozenset({"x", "y"}), 0.0)),
            ("d", CategoricalBins(("p", "q", "r"), frozenset({"p", "q", "r"}), 0.5)),
        ],
    )
    specs = [FeatureSpec(n, k) for n, k in zip(layout.names, feature_kinds(layout), strict=True)]
    return layout, specs


MIXED_LAYOUT, MIXED_SPECS = _mixed_layout()


@settings(max_examples=150, deadline=None)
@given(
    reference=_random_counts(MIXED_LAYOUT),
    current=_random_counts(MIXED_LAYOUT),
    min_samples=st.integers(0, 20),
    correction=st.sampled_from(list(Correction)),
)
def test_evaluate_never_raises_and_keeps_statistics_in_range(
    reference: np.ndarray, current: np.ndarray, min_samples: int, correction: Correction
) -> None:
    """Any count matrices: no exception, no numpy warning, every statistic None or in range."""
    policy = DecisionPolicy(min_samples=min_samples, correction=correction)
    evaluator = ModelEvaluator(MIXED_LAYOUT, MIXED_SPECS, policy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluation = evaluator.evaluate(reference, current, CONTEXT)
    unit = (
        "psi_pvalue",
        "ks_statistic",
        "ks_error_bound",
        "ks_pvalue",
        "chi2_pvalue",
        "tvd",
        "out_of_range_ratio",
        "unseen_category_ratio",
        "new_category_pvalue",
        "missing_pvalue",
        "qvalue",
        "reference_missing_ratio",
        "current_missing_ratio",
    )
    for result in evaluation.features:
        for name in unit:
            value = getattr(result, name)
            assert value is None or 0.0 <= value <= 1.0 + 1e-12, (name, value)
        assert result.psi is None or result.psi >= 0.0
        assert result.drift_detected == bool(result.drift_reasons)
        if not result.evaluated:
            assert result.ks_statistic is None
            assert result.tvd is None


def test_reference_unseen_estimate_is_the_singleton_share_of_the_raw_reference() -> None:
    """Categorical results carry p0 = f1/n_ref counted on the raw reference, also under
    min_samples; numeric ones carry none."""
    from collections import Counter

    rng = np.random.default_rng(11)
    values: list[str | None] = [f"z{int(k)}" for k in rng.zipf(1.3, 5_000)]
    values += [None] * 200  # missing values are not part of n_ref
    specs = [FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("c", FeatureKind.CATEGORICAL)]
    profile = fit_profile(
        "m", specs, numeric={"x": rng.normal(size=5_200)}, categorical={"c": values}
    )
    layout, reference, specs_out = layout_for(profile, specs)
    seen = Counter(v for v in values if v is not None)
    p0 = sum(1 for c in seen.values() if c == 1) / sum(seen.values())
    assert 0.01 < p0 < 0.2
    evaluator = ModelEvaluator(layout, specs_out, DecisionPolicy(min_samples=1000))
    for n in (50, 5_000):
        current = layout.count(
            np.asarray([rng.normal(size=n)]),
            [np.asarray([f"z{int(k)}" for k in rng.zipf(1.3, n)], dtype=object)],
        )
        result = _by_name(evaluator.evaluate(reference, current, CONTEXT))
        assert result["c"].reference_unseen_estimate == pytest.approx(p0, rel=1e-12)
        assert result["x"].reference_unseen_estimate is None
        assert result["c"].evaluated is (n >= 1000)
