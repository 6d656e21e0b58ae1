"""Tests of monitor.reference: fitting, JSON round trip, validation and the model layout."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from monitor.errors import ReferenceDataError
from monitor.histogram import INVALID_CATEGORY_PREFIX, CategoricalBins, NumericBins
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import (
    PROFILE_FORMAT,
    ReferenceProfile,
    fit_categorical,
    fit_numeric,
    fit_profile,
    layout_for,
    profile_from_json,
    profile_to_json,
)

SPECS = [
    FeatureSpec("amount", FeatureKind.NUMERIC),
    FeatureSpec("country", FeatureKind.CATEGORICAL),
    FeatureSpec("age", FeatureKind.NUMERIC),
]


def _profile(created_at: str = "2026-11-26T10:00:00Z", seed: int = 1) -> ReferenceProfile:
    """A fitted three-feature profile with missing and invalid values in it."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, 5000)
    amount[:50] = np.nan
    amount[50:53] = np.inf
    country = rng.choice(["de", "fr", "it", "es", "pl"], 5000, p=[0.4, 0.3, 0.2, 0.09, 0.01])
    countries: list[object] = list(country)
    countries[:20] = [None] * 20
    countries[20:25] = [INVALID_CATEGORY_PREFIX + "invalid"] * 5
    countries[25] = "lu"  # a singleton
    return fit_profile(
        "fraud",
        SPECS,
        numeric={"amount": amount, "age": rng.integers(18, 90, 5000).astype(np.float64)},
        categorical={"country": countries},
        top_k={"country": 3},
        model_version="v7",
        created_at=created_at,
        source="unit-test",
    )


def _document() -> dict[str, Any]:
    """The profile's JSON document as a dict, ready to be edited."""
    data: dict[str, Any] = json.loads(profile_to_json(_profile()))
    return data


def test_fitted_profile_counts_every_value() -> None:
    """Counts per feature add up to the sample size, incl. missing and invalid slots."""
    profile = _profile()
    assert profile.events == 5000
    amount = profile.feature("amount")
    assert amount is not None
    assert isinstance(amount.bins, NumericBins)
    assert sum(amount.counts) == 5000
    assert amount.counts[-2:] == (50, 3)
    assert amount.samples == 5000 - 53
    assert len(amount.counts) == amount.bins.value_slots + 2
    country = profile.feature("country")
    assert country is not None
    assert isinstance(country.bins, CategoricalBins)
    assert country.bins.categories == ("de", "fr", "it")
    assert country.bins.vocabulary == frozenset({"de", "fr", "it", "es", "pl", "lu"})
    assert country.counts[-2:] == (20, 5)
    assert country.counts[country.bins.unseen_slot] == 0
    assert sum(country.counts) == 5000
    assert country.bins.singleton_fraction == pytest.approx(1 / (5000 - 25))
    age = profile.feature("age")
    assert age is not None
    assert isinstance(age.bins, NumericBins)
    np.testing.assert_array_equal(age.bins.edges, np.arange(18.0, 90.0))
    assert profile.feature("nope") is None


def test_json_round_trip_keeps_everything() -> None:
    """to_json -> from_json gives the same id, bins, counts and descriptive fields."""
    profile = _profile()
    loaded = profile_from_json(profile_to_json(profile))
    assert loaded.reference_id == profile.reference_id
    assert loaded.reference_id.startswith("sha256:")
    assert len(loaded.reference_id) == len("sha256:") + 16
    assert (loaded.model, loaded.events, loaded.model_version) == ("fraud", 5000, "v7")
    assert (loaded.created_at, loaded.source) == ("2026-11-26T10:00:00Z", "unit-test")
    for a, b in zip(profile.features, loaded.features, strict=True):
        assert (a.name, a.kind, a.counts) == (b.name, b.kind, b.counts)
        if isinstance(a.bins, NumericBins):
            assert isinstance(b.bins, NumericBins)
            np.testing.assert_array_equal(a.bins.edges, b.bins.edges)
        else:
            assert isinstance(b.bins, CategoricalBins)
            assert a.bins.categories == b.bins.categories
            assert a.bins.vocabulary == b.bins.vocabulary
            assert a.bins.singleton_fraction == b.bins.singleton_fraction
    assert profile_to_json(loaded) == profile_to_json(profile)
    assert profile_from_json(profile_to_json(profile).encode()).reference_id == profile.reference_id


def test_reference_id_ignores_created_at_but_follows_content() -> None:
    """Same data at another time: same id; different data: another id."""
    assert _profile("2020-01-01T00:00:00Z").reference_id == _profile("2030-01-01Z").reference_id
    assert _profile(seed=2).reference_id != _profile(seed=1).reference_id


def _edit(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit that sets document[path...] = value."""

    def apply(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    """An edit that removes document[path...]."""

    def apply(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return apply


def _bump_count(doc: dict[str, Any]) -> None:
    """Add one to a valid count: still well-formed, but the content hash no longer matches."""
    doc["features"][0]["counts"][3] += 1


def _swap_edges(doc: dict[str, Any]) -> None:
    """Make the first two edges decreasing."""
    edges = doc["features"][0]["edges"]
    edges[0], edges[1] = edges[1], edges[0]


EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "changed count": (_bump_count, "reference_id .* does not match the profile content"),
    "decreasing edges": (_swap_edges, "feature 'amount': edges must be strictly increasing"),
    "string edge": (_edit(["features", 0, "edges", 2], "x"), "edges must be a list of numbers"),
    "nan edge": (_edit(["features", 0, "edges", 2], float("nan")), "edges must all be finite"),
    "empty edges": (_edit(["features", 0, "edges"], []), "non-empty"),
    "missing edges": (_delete(["features", 0, "edges"]), "edges must be a list of numbers"),
    "missing counts": (_delete(["features", 1, "counts"]), "feature 'country': counts must be"),
    "missing model": (_delete(["model"]), "field 'model' must be a string"),
    "missing events": (_delete(["events"]), "field 'events' must be a non-negative integer"),
    "missing features": (_delete(["features"]), "has no features"),
    "missing reference_id": (_delete(["reference_id"]), "reference_id None does not match"),
    "wrong format": (_edit(["format"], "driftmon.reference/v0"), "not a driftmon reference"),
    "negative count": (_edit(["features", 2, "counts", 0], -1), r"integers in \[0, "),
    "bool count": (_edit(["features", 2, "counts", 0], True), r"integers in \[0, "),
    "float count": (_edit(["features", 2, "counts", 0], 1.5), r"integers in \[0, "),
    "huge count": (
        _edit(["features", 2, "counts", 0], 2**63),
        r"in \[0, 9007199254740992\]",
    ),
    "edge beyond floats": (_edit(["features", 0, "edges", 2], 10**400), "a number is out of range"),
    "fraction beyond floats": (
        _edit(["features", 1, "singleton_fraction"], 10**400),
        "a number is out of range",
    ),
    "short counts": (_edit(["features", 2, "counts"], [1, 2]), "counts must be 76"),
    "all counts missing": (
        _edit(["features", 2, "counts"], [0] * 74 + [5, 0]),
        "the reference has no valid value",
    ),
    "bad kind": (_edit(["features", 0, "kind"], "ordinal"), "kind must be numeric or categorical"),
    "nameless": (_edit(["features", 0, "name"], ""), r"features\[0\].name must be"),
    "feature not object": (_edit(["features", 1], 7), r"features\[1\] is not an object"),
    "category outside vocabulary": (
        _edit(["features", 1, "categories"], ["de", "fr", "xx"]),
        "categories must be distinct and in the vocabulary",
    ),
    "duplicate categories": (
        _edit(["features", 1, "categories"], ["de", "de", "fr"]),
        "categories must be distinct",
    ),
    "bad singleton fraction": (
        _edit(["features", 1, "singleton_fraction"], 1.5),
        "singleton_fraction must be in",
    ),
    "vocabulary entry too long": (
        _edit(["features", 1, "vocabulary"], ["de", "fr", "x" * 257]),
        "a vocabulary entry is longer than 256 characters",
    ),
    "vocabulary not strings": (
        _edit(["features", 1, "vocabulary"], ["de", 3]),
        "vocabulary must be a list of strings",
    ),
    "negative events": (_edit(["events"], -3), "'events' must be a non-negative integer"),
    "a name twice": (_edit(["features", 2, "name"], "amount"), "feature 'amount' appears twice"),
    "a name too long": (_edit(["features", 0, "name"], "a" * 257), r"features\[0\].name must be 1"),
    "a name with a newline": (_edit(["features", 0, "name"], "a\nb"), r"features\[0\].name must"),
    "a 1 MB id": (
        _edit(["reference_id"], "sha256:" + "R" * 1_000_000),
        r"'sha256:R{72} does not match",
    ),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_edited_profiles_are_refused_with_a_named_problem(case: str) -> None:
    """Every defect of an edited profile raises ReferenceDataError naming it."""
    doc = _document()
    # features are stored in spec order: amount, country, age
    assert [f["name"] for f in doc["features"]] == ["amount", "country", "age"]
    assert len(doc["features"][2]["counts"]) == 76  # 72 ages: 74 value slots + 2
    edit, message = EDITS[case]
    edit(doc)
    with pytest.raises(ReferenceDataError, match=message):
        profile_from_json(json.dumps(doc))


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "null", b"\xff\xfe"])
def test_non_profile_documents_are_refused(text: str | bytes) -> None:
    """Invalid JSON, a non-object or bad bytes raise ReferenceDataError."""
    with pytest.raises(ReferenceDataError):
        profile_from_json(text)


def test_layout_for_orders_numeric_first_and_fills_the_reference_matrix() -> None:
    """The layout puts numeric features first; matrix rows hold value, missing, invalid."""
    profile = _profile()
    layout, matrix, ordered = layout_for(profile, SPECS)
    assert layout.names == ("amount", "age", "country")
    assert [s.name for s in ordered] == ["amount", "age", "country"]
    assert matrix.shape == (3, layout.width)
    assert matrix.dtype == np.int64
    for row, name in enumerate(layout.names):
        feature = profile.feature(name)
        assert feature is not None
        values = feature.counts[:-2]
        np.testing.assert_array_equal(matrix[row, : len(values)], values)
        assert not matrix[row, len(values) : layout.missing_col].any()
        assert matrix[row, layout.missing_col] == feature.counts[-2]
        assert matrix[row, layout.invalid_col] == feature.counts[-1]


def test_layout_for_ignores_unconfigured_profile_features() -> None:
    """Profile features that are not configured are left out of the layout."""
    layout, matrix, _ = layout_for(_profile(), [FeatureSpec("age", FeatureKind.NUMERIC)])
    assert layout.names == ("age",)
    assert matrix.shape[0] == 1


def test_layout_for_errors_on_missing_feature_and_kind_mismatch() -> None:
    """A configured feature absent from the profile, or of another kind, is named."""
    profile = _profile()
    with pytest.raises(ReferenceDataError, match="feature 'income' is configured but not in"):
        layout_for(profile, [*SPECS, FeatureSpec("income", FeatureKind.NUMERIC)])
    wrong = [FeatureSpec("country", FeatureKind.NUMERIC)]
    with pytest.raises(ReferenceDataError, match="'country' is numeric in the config but categ"):
        layout_for(profile, wrong)


def test_fit_errors_name_the_feature() -> None:
    """Unusable reference columns raise ReferenceDataError naming the feature."""
    with pytest.raises(ReferenceDataError, match="feature 'x': the reference sample has no finite"):
        fit_numeric("x", [np.nan, np.inf])
    with pytest.raises(ReferenceDataError, match="feature 'c': the reference sample has no categ"):
        fit_categorical("c", [None, INVALID_CATEGORY_PREFIX, INVALID_CATEGORY_PREFIX + "x"])
    with pytest.raises(ReferenceDataError, match="feature 'amount': no column"):
        fit_profile("m", SPECS, numeric={}, categorical={"country": ["a"]})
    with pytest.raises(ReferenceDataError, match="feature 'country': no column"):
        fit_profile("m", SPECS, numeric={"amount": [1.0], "age": [2.0]}, categorical={})


def test_fit_categorical_ranks_by_count_then_name_and_keeps_nul_suffixes() -> None:
    """Ties are broken by name; "a\\x00" is its own category and "\\x00" is invalid."""
    values: list[object] = ["b", "a", "c", "c", "a\x00", "\x00", None, "b", "a"]
    feature = fit_categorical("c", values, top_k=3)
    assert isinstance(feature.bins, CategoricalBins)
    assert feature.bins.categories == ("a", "b", "c")
    assert feature.bins.vocabulary == frozenset({"a", "b", "c", "a\x00"})
    assert feature.bins.singleton_fraction == pytest.approx(1 / 7)
    # slots: a, b, c, OTHER (a\x00), UNSEEN, then missing, invalid
    assert feature.counts == (2, 2, 2, 1, 0, 1, 1)


def test_format_tag_is_written() -> None:
    """The serialised document carries the format tag."""
    assert _document()["format"] == PROFILE_FORMAT
