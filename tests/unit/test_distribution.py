"""Tests for monitor.distribution: the shares per bin and which features export them."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest

from monitor.distribution import (
    MAX_CATEGORIES,
    NUMERIC_BINS,
    DistributionBins,
    PictureShares,
    drift_order,
    exported_features,
)
from monitor.evaluate import RESULT_FIELDS, EvaluationContext, ModelEvaluator
from monitor.histogram import ModelLayout
from monitor.http.jsonview import to_jsonable
from monitor.model import (
    DecisionPolicy,
    Distribution,
    DistributionExport,
    DistributionPolicy,
    FeatureKind,
    FeatureResult,
    FeatureSpec,
    ModelEvaluation,
)
from monitor.reference import fit_categorical, fit_numeric
from tests.support.raw_shares import categorical_shares, numeric_groups, numeric_shares

RNG = np.random.default_rng(20261203)


def _layout_and_reference(
    numeric: dict[str, np.ndarray], categorical: dict[str, list[object]]
) -> tuple[ModelLayout, np.ndarray]:
    profiles_n = [fit_numeric(name, values, 64) for name, values in numeric.items()]
    profiles_c = [fit_categorical(name, values, 30) for name, values in categorical.items()]
    layout = ModelLayout(
        [(p.name, p.bins) for p in profiles_n],  # type: ignore[misc]
        [(p.name, p.bins) for p in profiles_c],  # type: ignore[misc]
    )
    reference = layout.empty()
    for row, profile in enumerate([*profiles_n, *profiles_c]):
        reference[row, : len(profile.counts) - 2] = profile.counts[:-2]
        reference[row, layout.missing_col] = profile.counts[-2]
        reference[row, layout.invalid_col] = profile.counts[-1]
    return layout, np.asarray(reference, dtype=np.int64)


def _evaluate(
    layout: ModelLayout, reference: np.ndarray, current: np.ndarray
) -> tuple[FeatureResult, ...]:
    specs = [FeatureSpec(n, FeatureKind.NUMERIC) for n in layout.numeric_names] + [
        FeatureSpec(n, FeatureKind.CATEGORICAL) for n in layout.categorical_names
    ]
    evaluator = ModelEvaluator(layout, specs, DecisionPolicy(min_samples=10))
    return evaluator.evaluate(reference, current, EvaluationContext("m", 1.0)).features


def _count(layout: ModelLayout, numeric: list[np.ndarray], categorical: list[list[object]]):  # type: ignore[no-untyped-def]
    n = len(numeric[0]) if numeric else len(categorical[0])
    matrix = np.vstack(numeric) if numeric else np.empty((0, n))
    return layout.count(matrix, [np.asarray(c, dtype=object) for c in categorical])


class TestShares:
    def test_numeric_shares_equal_shares_of_the_raw_values(self) -> None:
        """Numeric shares per bin equal those recomputed from the raw values, to 1e-12."""
        ref_values = RNG.lognormal(3.0, 1.0, 20_000)
        ref_values[::50] = np.nan
        ties = np.round(RNG.normal(0, 1, 20_000))  # heavy ties: some decile groups stay empty
        layout, reference = _layout_and_reference({"amount": ref_values, "score": ties}, {})
        cur_amount = RNG.lognormal(3.4, 1.2, 5_000)
        cur_amount[:40] = -1.0  # below the reference range
        cur_amount[40:60] = np.inf  # invalid: counted nowhere
        cur_amount[60:400] = np.nan
        cur_ties = np.round(RNG.normal(0.5, 1.5, 5_000))
        current = _count(layout, [cur_amount, cur_ties], [])

        results = _evaluate(layout, reference, current)

        for row, (ref_raw, cur_raw) in enumerate(((ref_values, cur_amount), (ties, cur_ties))):
            edges = layout.numeric_bins[row].edges.tolist()
            groups = numeric_groups(edges, ref_raw.tolist())
            picture = results[row].distribution
            assert picture is not None and picture.bins == NUMERIC_BINS
            assert picture.reference == pytest.approx(
                numeric_shares(edges, groups, ref_raw.tolist()), abs=1e-12
            )
            assert picture.current == pytest.approx(
                numeric_shares(edges, groups, cur_raw.tolist()), abs=1e-12
            )
            assert sum(picture.current or ()) == pytest.approx(1.0, abs=1e-12)
        amount = results[0].distribution
        assert amount is not None and amount.current is not None
        assert amount.current[0] == pytest.approx(40 / 4980, abs=1e-15)
        assert amount.current[-1] == pytest.approx(results[0].current_missing_ratio, abs=1e-15)

    def test_categorical_shares_fold_the_tail_into_other_and_keep_unseen(self) -> None:
        """Top 20 categories in reference order, the rest in (other), new ones in (unseen)."""
        names = [f"c{i:02d}" for i in range(30)]
        weights = np.arange(30, 0, -1, dtype=float)
        ref_values: list[object] = list(RNG.choice(names, 6_000, p=weights / weights.sum()))
        ref_values[:100] = [None] * 100
        layout, reference = _layout_and_reference({}, {"country": ref_values})
        cur_values: list[object] = list(RNG.choice(names, 3_000))
        cur_values[:300] = [f"attacker-{i}" for i in range(300)]  # payload-made names
        cur_values[300:310] = ["\x00invalid"] * 10
        cur_values[310:330] = [None] * 20
        current = _count(layout, [], [cur_values])

        (result,) = _evaluate(layout, reference, current)

        bins = layout.categorical_bins[0]
        picture = result.distribution
        assert picture is not None
        assert len(bins.categories) == 30
        assert picture.bins == (
            *bins.categories[:MAX_CATEGORIES],
            "(other)",
            "(unseen)",
            "(missing)",
        )
        assert not any(b.startswith("attacker") for b in picture.bins)
        assert picture.reference == pytest.approx(
            categorical_shares(bins.categories, bins.vocabulary, ref_values), abs=1e-12
        )
        cur_plain: list[object] = [None if v is None else str(v) for v in cur_values]
        cur_plain[300:310] = [1.5] * 10  # the invalid marker: counted nowhere
        assert picture.current == pytest.approx(
            categorical_shares(bins.categories, bins.vocabulary, cur_plain), abs=1e-12
        )
        assert picture.current is not None
        assert picture.current[-2] == pytest.approx(300 / 2990, abs=1e-15)

    def test_a_long_category_name_is_cut(self) -> None:
        """A 5,000-character reference category is shown as 40 characters ending in '…'."""
        long_name = "x" * 5_000
        values: list[object] = [long_name] * 5
        values += ["a"] * 3
        layout, _ = _layout_and_reference({}, {"c": values})
        names = DistributionBins(layout).names[0]
        assert names[0] == "x" * 39 + "…"
        assert names[1] == "a"

    def test_an_empty_window_has_no_shares(self) -> None:
        """A window with no value and no missing value has None shares, not zeros or NaN."""
        layout, reference = _layout_and_reference({"a": RNG.normal(0, 1, 500)}, {"c": ["x", "y"]})
        (num, cat) = _evaluate(layout, reference, layout.empty())
        for result in (num, cat):
            assert result.distribution is not None
            assert result.distribution.current is None
            assert result.distribution.reference is not None

    def test_distributions_off_gives_none(self) -> None:
        """An evaluator built with distributions=False attaches no distribution."""
        layout, reference = _layout_and_reference({"a": RNG.normal(0, 1, 500)}, {})
        evaluator = ModelEvaluator(
            layout, [FeatureSpec("a", FeatureKind.NUMERIC)], DecisionPolicy(), distributions=False
        )
        (result,) = evaluator.evaluate(reference, reference, EvaluationContext("m", 1.0)).features
        assert result.distribution is None


def _feature(name: str, psi: float | None, drifted: bool = False) -> FeatureResult:
    return FeatureResult(
        name=name,
        kind=FeatureKind.NUMERIC,
        reference_samples=1,
        current_samples=1,
        reference_missing_ratio=0.0,
        current_missing_ratio=0.0,
        evaluated=psi is not None,
        psi=psi,
        drift_detected=drifted,
        distribution=Distribution(NUMERIC_BINS, (1.0,) + (0.0,) * 12, (1.0,) + (0.0,) * 12),
    )


def _model(features: list[FeatureResult]) -> ModelEvaluation:
    return ModelEvaluation("m", 1.0, tuple(features), DecisionPolicy().correction, 1e-3)


class TestDeferred:
    def _fixture(self) -> tuple[ModelLayout, np.ndarray, np.ndarray]:
        ref_values = RNG.normal(0.0, 1.0, 4_000)
        layout, reference = _layout_and_reference(
            {"x": ref_values}, {"c": list(RNG.choice(["a", "b", "c"], 4_000))}
        )
        current = _count(
            layout, [RNG.normal(0.3, 1.0, 2_000)], [list(RNG.choice(["a", "b", "d"], 2_000))]
        )
        return layout, reference, current

    def test_pictures_are_computed_on_first_read_from_copies_of_the_counts(self) -> None:
        """An evaluation computes no shares until a picture is read, then from its own counts."""
        layout, reference, current = self._fixture()
        specs = [FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("c", FeatureKind.CATEGORICAL)]
        evaluator = ModelEvaluator(layout, specs, DecisionPolicy(min_samples=10))
        expected = DistributionBins(layout).distributions(
            reference.copy(), current.copy(), evaluator.psi_groups(reference)
        )
        features = evaluator.evaluate(reference, current, EvaluationContext("m", 1.0)).features
        source = features[0].distribution._source  # type: ignore[union-attr]
        assert isinstance(source, PictureShares) and source._rows is None  # nothing computed yet
        current[:] = 0  # the window moves on after the evaluation
        reference[:] = 0
        pictures = [f.distribution for f in features]
        assert pictures == list(expected)
        assert all(p is not None and p.current is not None for p in pictures)
        assert source._rows is not None

    def test_a_deferred_picture_equals_an_eager_one_and_renders_the_same_json(self) -> None:
        """Deferred and eager pictures of the same shares compare, hash and render equal."""
        layout, reference, current = self._fixture()
        specs = [FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("c", FeatureKind.CATEGORICAL)]
        groups = ModelEvaluator(layout, specs, DecisionPolicy()).psi_groups(reference)
        deferred = DistributionBins(layout).distributions(reference, current, groups)[0]
        eager = Distribution(deferred.bins, deferred.reference, deferred.current)
        assert deferred == eager and hash(deferred) == hash(eager)
        assert (
            to_jsonable(deferred)
            == to_jsonable(eager)
            == {
                "bins": list(NUMERIC_BINS),
                "reference": list(eager.reference or ()),
                "current": list(eager.current or ()),
            }
        )
        assert repr(deferred) == repr(eager)

    def test_the_evaluator_passes_result_values_in_field_order(self) -> None:
        """RESULT_FIELDS, the evaluator's positional order, is FeatureResult's field order."""
        assert tuple(f.name for f in fields(FeatureResult)) == RESULT_FIELDS


class TestSelection:
    def test_drift_order_puts_flagged_first_then_psi(self) -> None:
        """Flagged features first, then by PSI descending, unevaluated last, ties by name."""
        features = [
            _feature("low", 0.01),
            _feature("none", None),
            _feature("flag_small", 0.05, drifted=True),
            _feature("high", 0.5),
            _feature("flag_big", 0.9, drifted=True),
            _feature("also_low", 0.01),
        ]
        order = [f.name for f in drift_order(features)]
        assert order == ["flag_big", "flag_small", "high", "also_low", "low", "none"]

    def test_drifting_exports_flagged_plus_top(self) -> None:
        """`drifting` exports every flagged feature and the N most drifting others."""
        features = [_feature(f"f{i:02d}", i / 100, drifted=i >= 35) for i in range(40)]
        chosen = exported_features(_model(features), DistributionPolicy(top=3, limit=100))
        assert [f.name for f in chosen] == [f"f{i:02d}" for i in (39, 38, 37, 36, 35, 34, 33, 32)]

    def test_drifting_is_capped_at_limit_even_when_everything_is_flagged(self) -> None:
        """With every feature flagged, `drifting` still exports at most `limit` features."""
        features = [_feature(f"f{i}", 0.5, drifted=True) for i in range(1000)]
        chosen = exported_features(_model(features), DistributionPolicy())
        assert len(chosen) == DistributionPolicy().limit == 20

    def test_all_and_none(self) -> None:
        """`all` exports every feature with a distribution, `none` no feature."""
        features = [_feature(f"f{i}", 0.1) for i in range(30)]
        features.append(replace(_feature("bare", 0.1), distribution=None))
        model = _model(features)
        assert len(exported_features(model, DistributionPolicy(DistributionExport.ALL))) == 30
        assert exported_features(model, DistributionPolicy(DistributionExport.NONE)) == ()
