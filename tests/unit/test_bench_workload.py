"""The benchmark workload's ground truth: documented counts, real injected drifts, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats

from bench import dataset, workload
from bench.scoring import score

DIFFERS_P = 1e-6
SAME_P = 1e-5


@pytest.fixture(scope="module")
def reference() -> workload.Batch:
    """The 100,000 reference events (drawn once for the module)."""
    return workload.reference()


def _numeric_p(ref: npt.NDArray[np.float64], cur: npt.NDArray[np.float64]) -> float:
    """Smallest p of KS on the present values and chi2 on the missing counts."""
    ks = stats.ks_2samp(ref[~np.isnan(ref)], cur[~np.isnan(cur)]).pvalue
    missing = np.array(
        [
            [np.isnan(ref).sum(), (~np.isnan(ref)).sum()],
            [np.isnan(cur).sum(), (~np.isnan(cur)).sum()],
        ]
    )
    if missing[:, 0].sum() == 0:
        return float(ks)
    return float(min(ks, stats.chi2_contingency(missing).pvalue))


def _categorical_p(ref: npt.NDArray[np.int32], cur: npt.NDArray[np.int32]) -> float:
    """chi2 homogeneity p over the levels seen in either sample."""
    size = int(max(ref.max(), cur.max())) + 1
    table = np.vstack([np.bincount(ref, minlength=size), np.bincount(cur, minlength=size)])
    table = table[:, table.sum(axis=0) > 0]
    return float(stats.chi2_contingency(table).pvalue)


def _p_values(ref: workload.Batch, cur: workload.Batch) -> dict[str, float]:
    p = {
        name: _numeric_p(ref.numeric[:, i], cur.numeric[:, i])
        for i, name in enumerate(workload.NUMERIC_FEATURES)
    }
    p.update(
        {
            name: _categorical_p(ref.categorical[:, j], cur.categorical[:, j])
            for j, name in enumerate(workload.CATEGORICAL_FEATURES)
        }
    )
    return p


def test_schedule_and_truth_have_the_documented_counts() -> None:
    """60 windows, 35 drifted (5 per scenario), 100 drifted pairs of which 80 numeric."""
    truth = workload.ground_truth()
    assert workload.N_WINDOWS == 60
    assert truth.shape == (60, 22)
    assert sum(s is not None for s in workload.SCHEDULE) == 35
    assert all(workload.SCHEDULE.count(s) == 5 for s in workload.SCENARIO_NAMES)
    assert workload.SCHEDULE[:10] == (None,) * 10
    assert int(truth.sum()) == 100
    assert int(truth[:, :20].sum()) == 80
    assert int((~truth).sum()) == 1220
    assert not truth[[w for w, s in enumerate(workload.SCHEDULE) if s is None]].any()


@pytest.mark.parametrize("name", workload.SCENARIO_NAMES)
def test_each_scenario_changes_exactly_its_features(reference: workload.Batch, name: str) -> None:
    """In the scenario's first window its features differ from the reference; no other does."""
    w = workload.SCHEDULE.index(name)
    p = _p_values(reference, workload.window(w))
    changed = set(workload.scenario(name).features)
    assert {f for f in changed if p[f] < DIFFERS_P} == changed, {f: p[f] for f in changed}
    unchanged = {f: v for f, v in p.items() if f not in changed}
    assert min(unchanged.values()) > SAME_P, unchanged


@pytest.mark.parametrize("w", [0, 15, 59])
def test_clean_windows_do_not_differ_from_the_reference(reference: workload.Batch, w: int) -> None:
    """No feature of a clean window differs from the reference by KS / chi2."""
    assert workload.SCHEDULE[w] is None
    p = _p_values(reference, workload.window(w))
    assert min(p.values()) > SAME_P, p


def test_clean_distributions_have_the_documented_shapes(reference: workload.Batch) -> None:
    """Means, missing rates, outlier rates and category frequencies match the docstring."""
    x = reference.numeric
    assert np.nanmean(x[:, 3]) == pytest.approx(30.0, abs=0.05)
    assert np.nanstd(x[:, 3]) == pytest.approx(2.5, rel=0.02)
    assert np.median(x[:, 10]) == pytest.approx(np.exp(1.0), rel=0.02)
    assert np.mean(np.abs(x[:, 14]) >= 50) == pytest.approx(0.01, abs=0.002)
    assert np.isnan(x[:, 19]).mean() == pytest.approx(0.05, abs=0.003)
    assert not np.isnan(x[:, :19]).any()
    c10 = np.bincount(reference.categorical[:, 0], minlength=11) / len(reference)
    assert c10[10] == 0 and c10[0] == pytest.approx(1 / sum(1 / r for r in range(1, 11)), rel=0.02)
    assert reference.categorical[:, 1].max() < 1000


def test_windows_are_deterministic_and_drawn_alone() -> None:
    """window(w) alone equals the w-th window of the iterator, and twice the same."""
    by_iterator = dict(workload.windows())
    for w in (0, 31, 52):
        alone = workload.window(w)
        np.testing.assert_array_equal(alone.numeric, by_iterator[w].numeric)
        np.testing.assert_array_equal(alone.categorical, by_iterator[w].categorical)
    with pytest.raises(ValueError, match="window must be"):
        workload.window(60)


@pytest.mark.parametrize("name", workload.SCENARIO_NAMES)
def test_drifted_and_clean_twins_share_unaffected_columns(name: str) -> None:
    """The same seed with and without a scenario gives identical unaffected columns."""
    clean = workload.draw(workload.stream_rng(99), 2000)
    drifted = workload.draw(workload.stream_rng(99), 2000, active=name)
    changed = set(workload.scenario(name).features)
    for i, feature in enumerate(workload.NUMERIC_FEATURES):
        same = np.array_equal(clean.numeric[:, i], drifted.numeric[:, i], equal_nan=True)
        assert same == (feature not in changed), feature
    for j, feature in enumerate(workload.CATEGORICAL_FEATURES):
        same = np.array_equal(clean.categorical[:, j], drifted.categorical[:, j])
        assert same == (feature not in changed), feature


def test_partial_rows_only_drift_where_asked() -> None:
    """With `rows`, the scenario only touches the selected events."""
    rows = np.arange(4000) >= 2000
    clean = workload.draw(workload.stream_rng(7), 4000)
    mixed = workload.draw(workload.stream_rng(7), 4000, active="large-shift", rows=rows)
    np.testing.assert_array_equal(mixed.numeric[:2000], clean.numeric[:2000])
    shift = mixed.numeric[2000:, 0] - clean.numeric[2000:, 0]
    np.testing.assert_allclose(shift, 1.0)  # f00: sd 1, shifted by 1 sd


def test_wide_batches_repeat_the_base_shapes() -> None:
    """Numeric feature i has base shape i mod 20; categorical j alternates c10 and c1000."""
    batch = workload.draw(workload.stream_rng(8), 5000, n_numeric=45, n_categorical=5)
    assert batch.numeric.shape == (5000, 45)
    assert batch.categorical.shape == (5000, 5)
    assert np.isnan(batch.numeric[:, 39]).mean() == pytest.approx(0.05, abs=0.01)
    assert np.nanmean(batch.numeric[:, 27]) == pytest.approx(70.0, abs=0.2)
    assert batch.categorical[:, 4].max() < 10 < batch.categorical[:, 3].max()
    assert workload.numeric_names(200)[:2] == ("f0000", "f0001")
    assert workload.categorical_names(5) == ("c10", "c1000", "c10_001", "c1000_001", "c10_002")
    with pytest.raises(ValueError, match="unknown scenario"):
        workload.draw(workload.stream_rng(8), 10, active="nope")


def test_dataset_round_trip(tmp_path: Path) -> None:
    """The .npz holds the same arrays, truth, schedule and names as the generator."""
    path = dataset.write(tmp_path / "w.npz", windows=3)
    data = dataset.Dataset(path)
    assert data.n_windows == 3
    assert data.features == workload.FEATURES
    np.testing.assert_array_equal(data.truth, workload.ground_truth()[:3])
    np.testing.assert_array_equal(data.window(2).numeric, workload.window(2).numeric)
    np.testing.assert_array_equal(data.reference().categorical, workload.reference().categorical)
    strings = data.strings(np.array([0, 10]), 0)
    assert list(strings) == ["a0", "a10"]
    assert [w for w, _ in data.windows()] == [0, 1, 2]


def test_scoring_counts_hits_and_false_alarms() -> None:
    """The truth scores 100/100 with no false alarm; flagging everything gives 1,220 alarms."""
    truth = workload.ground_truth()
    perfect = score(truth, truth, workload.SCHEDULE)
    assert (perfect.detected, perfect.drifted, perfect.false_alarms) == (100, 100, 0)
    assert perfect.per_scenario["small-shift"] == (20, 20)
    assert perfect.per_scenario["new-category"] == (10, 10)
    everything = score(np.ones_like(truth), truth, workload.SCHEDULE)
    assert everything.false_alarm_text == "1220/1220"
    prefix = score(np.zeros((12, 22), dtype=bool), truth, workload.SCHEDULE)
    assert prefix.detected_text == "0/8"
    with pytest.raises(ValueError, match="shape"):
        score(np.zeros((3, 5)), truth, workload.SCHEDULE)
