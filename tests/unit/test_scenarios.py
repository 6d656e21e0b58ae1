"""Tests for monitor.tools.scenarios: event shape, determinism and the drift ground truth."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from scipy import stats

from monitor.model import FeatureKind
from monitor.tools.scenarios import (
    COUNTRIES,
    DEMO_FEATURES,
    DEVICES,
    NEW_CATEGORY,
    SCENARIOS,
    Columns,
    EventGenerator,
    affected_features,
    encode,
    encode_array,
)

NUMERIC = [f.name for f in DEMO_FEATURES if f.kind is FeatureKind.NUMERIC]
CATEGORICAL = [f.name for f in DEMO_FEATURES if f.kind is FeatureKind.CATEGORICAL]
N_LARGE = 20_000


def drifted_columns(scenario: str, seed: int, n: int = N_LARGE) -> Columns:
    """`n` events of `scenario`, every one of them after the drift start."""
    return EventGenerator("fraud", scenario, seed=seed, drift_start=-math.inf).columns(n, 0.0, 1.0)


def feature_pvalues(a: Columns, b: Columns, name: str) -> list[float]:
    """p-values of 'same distribution' tests between two samples of one feature.

    Numeric: two-sample KS on the present values and a chi-square test of the missing
    proportion. Categorical: chi-square test of the category counts.
    """
    if name in a.numeric:
        x, y = a.numeric[name], b.numeric[name]
        ks = stats.ks_2samp(x[~np.isnan(x)], y[~np.isnan(y)]).pvalue
        miss = np.array([[np.isnan(x).sum(), (~np.isnan(x)).sum()],
                         [np.isnan(y).sum(), (~np.isnan(y)).sum()]])  # fmt: skip
        p_miss = stats.chi2_contingency(miss).pvalue if miss[:, 0].sum() else 1.0
        return [float(ks), float(p_miss)]
    cats = sorted(set(a.categorical[name]) | set(b.categorical[name]))
    table = np.array(
        [[np.sum(col[name] == c) for c in cats] for col in (a.categorical, b.categorical)]
    )
    return [float(stats.chi2_contingency(table).pvalue)]


def test_demo_features_are_the_documented_set() -> None:
    """The demo feature set has the five numeric and two categorical features, in order."""
    assert NUMERIC == ["amount", "age", "score", "latency_ms", "balance"]
    assert CATEGORICAL == ["country", "device"]
    assert len(COUNTRIES) == 12
    assert len(DEVICES) == 4


def test_event_shape_follows_the_event_contract() -> None:
    """Events carry ts, model, model_version and every demo feature, with null for missing."""
    events = EventGenerator("churn", seed=3).events(2000, 1_700_000_000.0, 100.0)
    assert len(events) == 2000
    assert events[0]["ts"] == 1_700_000_000.0
    assert events[1]["ts"] == pytest.approx(1_700_000_000.01)
    for e in events:
        assert set(e) == {"ts", "model", "model_version", "features"}
        assert e["model"] == "churn"
        assert e["model_version"] == "v1"
        assert list(e["features"]) == NUMERIC + CATEGORICAL
        f = e["features"]
        assert isinstance(f["age"], int)
        assert 18 <= f["age"] <= 90
        assert isinstance(f["amount"], float)
        assert f["balance"] is None or isinstance(f["balance"], float)
        assert f["country"] in COUNTRIES
        assert f["device"] in DEVICES
    missing = sum(e["features"]["balance"] is None for e in events) / len(events)
    assert 0.015 < missing < 0.05


def test_encode_produces_one_json_object_per_event() -> None:
    """encode() gives one JSON object per event that decodes back to the same event."""
    events = EventGenerator("fraud", seed=1).events(50, 10.0, 2.0)
    encoded = encode(events)
    assert len(encoded) == 50
    assert [msgspec.json.decode(b) for b in encoded] == events
    assert EventGenerator.encode(events) == encoded
    assert msgspec.json.decode(encode_array(events)) == events


def test_same_seed_gives_same_events() -> None:
    """Two generators with the same model and seed produce identical events."""
    a = EventGenerator("fraud", "outliers", seed=42, drift_start=5.0)
    b = EventGenerator("fraud", "outliers", seed=42, drift_start=5.0)
    assert a.events(300, 0.0, 10.0) == b.events(300, 0.0, 10.0)
    assert a.events(300, 30.0, 10.0) == b.events(300, 30.0, 10.0)


def test_seed_and_model_change_the_stream() -> None:
    """A different seed or a different model name gives a different stream."""
    base = EventGenerator("fraud", seed=1).events(100, 0.0, 1.0)
    assert EventGenerator("fraud", seed=2).events(100, 0.0, 1.0) != base
    other = EventGenerator("churn", seed=1).events(100, 0.0, 1.0)
    assert [e["features"] for e in other] != [e["features"] for e in base]


def test_unknown_scenario_lists_the_valid_ones() -> None:
    """An unknown scenario is a ValueError naming every valid scenario."""
    with pytest.raises(ValueError, match="unknown scenario 'shift'") as info:
        EventGenerator("fraud", "shift", seed=0)
    for name in SCENARIOS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="mean-shift"):
        affected_features("bogus")


def test_affected_features_are_demo_features() -> None:
    """Every scenario but none affects at least one demo feature, and only demo features."""
    names = {f.name for f in DEMO_FEATURES}
    assert affected_features("none") == frozenset()
    for scenario in SCENARIOS[1:]:
        assert affected_features(scenario)
        assert affected_features(scenario) <= names


def test_drift_applies_only_from_drift_start() -> None:
    """Events before drift_start equal the clean stream; after it they change."""
    clean = EventGenerator("fraud", "none", seed=9).columns(1000, 0.0, 1.0)
    drifted = EventGenerator("fraud", "new-category", seed=9, drift_start=500.0).columns(
        1000, 0.0, 1.0
    )
    before = clean.ts < 500.0
    assert np.array_equal(
        drifted.categorical["country"][before], clean.categorical["country"][before]
    )
    assert not np.any(drifted.categorical["country"][before] == NEW_CATEGORY)
    share = np.mean(drifted.categorical["country"][~before] == NEW_CATEGORY)
    assert 0.05 < share < 0.11


def test_drift_start_none_never_drifts() -> None:
    """drift_start=None keeps every event clean whatever the scenario."""
    clean = EventGenerator("fraud", "none", seed=5).events(500, 0.0, 1.0)
    never = EventGenerator("fraud", "mean-shift", seed=5, drift_start=None).events(500, 0.0, 1.0)
    assert never == clean


@pytest.mark.parametrize("scenario", SCENARIOS[1:])
def test_same_seed_leaves_unaffected_columns_identical(scenario: str) -> None:
    """With the same seed, a scenario changes its affected columns and no other column."""
    clean = drifted_columns("none", seed=11, n=5000)
    drifted = drifted_columns(scenario, seed=11, n=5000)
    for name in NUMERIC:
        same = np.array_equal(clean.numeric[name], drifted.numeric[name], equal_nan=True)
        assert same is (name not in affected_features(scenario)), name
    for name in CATEGORICAL:
        same = np.array_equal(clean.categorical[name], drifted.categorical[name])
        assert same is (name not in affected_features(scenario)), name


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_ground_truth_by_two_sample_tests(scenario: str) -> None:
    """Against an independent clean sample, affected features differ strongly, others do not."""
    clean = drifted_columns("none", seed=1001)
    drifted = drifted_columns(scenario, seed=2002)
    affected = affected_features(scenario)
    for name in NUMERIC + CATEGORICAL:
        p = min(feature_pvalues(clean, drifted, name))
        if name in affected:
            assert p < 1e-20, f"{scenario}: {name} should drift (p={p:.3g})"
        else:
            assert p > 1e-3, f"{scenario}: {name} should not drift (p={p:.3g})"


def test_mean_shift_is_detectable_with_a_thousand_events() -> None:
    """The mean-shift scenario is found by KS on amount and score with 1,000 current events."""
    clean = drifted_columns("none", seed=7, n=10_000)
    drifted = drifted_columns("mean-shift", seed=8, n=1000)
    for name in ("amount", "score"):
        assert stats.ks_2samp(clean.numeric[name], drifted.numeric[name]).pvalue < 1e-8
