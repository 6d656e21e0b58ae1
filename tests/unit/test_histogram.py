"""Tests of monitor.histogram: the count-matrix layout, numeric and categorical binning."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from monitor.errors import ReferenceDataError
from monitor.histogram import (
    INVALID_CATEGORY_PREFIX,
    CategoricalBins,
    ModelLayout,
    NumericBins,
)

EDGES = np.asarray([0.0, 1.0, 2.0])
COLORS = CategoricalBins(("red", "green"), frozenset({"red", "green", "blue", "teal"}), 0.1)


def _layout() -> ModelLayout:
    """Two numeric features (3 and 5 edges) and one categorical (2 of 4 categories)."""
    return ModelLayout(
        [("x", NumericBins(EDGES)), ("y", NumericBins(np.arange(5.0)))],
        [("color", COLORS)],
    )


def _objects(values: list[object]) -> np.ndarray:
    """An object column like the decoder produces."""
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def test_layout_shape_and_special_columns() -> None:
    """Width is the widest feature's value slots + 2; missing and invalid are the last two."""
    layout = _layout()
    assert layout.names == ("x", "y", "color")
    assert layout.n_features == 3
    assert layout.n_numeric == 2
    np.testing.assert_array_equal(layout.value_slots, [5, 7, 4])
    assert layout.width == 9
    assert (layout.missing_col, layout.invalid_col) == (7, 8)
    assert layout.empty().shape == (3, 9)
    assert not layout.empty().any()


def test_numeric_binning_uses_the_documented_slots() -> None:
    """Values map to under/min/(e_{k-1}, e_k]/over; NaN -> missing; +-inf -> invalid."""
    layout = ModelLayout([("x", NumericBins(EDGES))], [])
    values = np.asarray([[-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, np.nan, np.inf, -np.inf, 1e308]])
    slots = layout.bin_batch(values, [])
    np.testing.assert_array_equal(slots, [[0, 1, 2, 2, 3, 3, 4, 5, 6, 6, 4]])
    counts = layout.histogram(slots)
    np.testing.assert_array_equal(counts, [[1, 1, 2, 2, 2, 1, 2]])
    np.testing.assert_array_equal(layout.count(values, []), counts)


def test_categorical_binning_top_k_other_unseen_missing_invalid() -> None:
    """Top-K -> own slot, rest of vocabulary -> OTHER, unknown -> UNSEEN, None/NUL specials."""
    layout = ModelLayout([], [("color", COLORS)])
    column = _objects(
        ["red", "green", "blue", "teal", "pink", None, "\x00invalid", "red", "\x00", "red\x00"]
    )
    slots = layout.bin_batch(np.empty((0, len(column))), [column])
    other, unseen = COLORS.other_slot, COLORS.unseen_slot
    missing, invalid = layout.missing_col, layout.invalid_col
    expected = [0, 1, other, other, unseen, missing, invalid, 0, invalid, unseen]
    np.testing.assert_array_equal(slots, [expected])


def test_categorical_non_strings_are_compared_by_their_str() -> None:
    """An int 7 is the category "7"; a bool True is the category "True"."""
    bins = CategoricalBins(("7", "True"), frozenset({"7", "True"}), 0.0)
    layout = ModelLayout([], [("c", bins)])
    slots = layout.bin_batch(np.empty((0, 4)), [_objects([7, "7", True, 7.5])])
    np.testing.assert_array_equal(slots, [[0, 0, 1, bins.unseen_slot]])


def test_mixed_batch_rows_follow_layout_order() -> None:
    """A batch with numeric and categorical features fills one row per feature in order."""
    layout = _layout()
    numeric = np.asarray([[0.5, np.nan, 9.0], [4.0, 4.5, -1.0]])
    counts = layout.count(numeric, [_objects(["green", None, "blue"])])
    expected = layout.empty()
    expected[0, [2, layout.missing_col, 4]] += 1
    expected[1, [5, 6, 0]] += 1
    expected[2, [1, layout.missing_col, COLORS.other_slot]] += 1
    np.testing.assert_array_equal(counts, expected)
    assert counts.dtype == np.int64


def test_empty_batch_counts_nothing() -> None:
    """A batch of zero events gives a zero count matrix of the layout's shape."""
    layout = _layout()
    counts = layout.count(np.empty((2, 0)), [_objects([])])
    assert counts.shape == (3, layout.width)
    assert not counts.any()


def test_batch_shape_errors_are_reported() -> None:
    """Wrong numeric shape, wrong number of categorical columns or ragged columns: ValueError."""
    layout = _layout()
    with pytest.raises(ValueError, match="numeric batch must have shape"):
        layout.bin_batch(np.zeros((3, 4)), [_objects([None] * 4)])
    with pytest.raises(ValueError, match="expected 1 categorical columns"):
        layout.bin_batch(np.zeros((2, 4)), [])
    with pytest.raises(ValueError, match="same length"):
        layout.bin_batch(np.zeros((2, 4)), [_objects([None] * 3)])


def test_layout_rejects_bad_definitions() -> None:
    """No feature, duplicate names or bad edges raise ReferenceDataError naming the feature."""
    with pytest.raises(ReferenceDataError, match="at least one feature"):
        ModelLayout([], [])
    with pytest.raises(ReferenceDataError, match="unique"):
        ModelLayout([("a", NumericBins(EDGES))], [("a", COLORS)])
    with pytest.raises(ReferenceDataError, match=r"feature 'bad'.*strictly increasing"):
        ModelLayout([("bad", NumericBins(np.asarray([1.0, 0.0])))], [])


ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)
SPECIAL_FLOATS = st.sampled_from(
    [np.nan, np.inf, -np.inf, 1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 0.0, -0.0]
)


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    n_numeric=st.integers(0, 3),
    n_events=st.integers(0, 60),
)
def test_binning_conserves_every_value(data: st.DataObject, n_numeric: int, n_events: int) -> None:
    """Every row of a count matrix sums to the batch size whatever the values are."""
    layouts_numeric = [
        (f"x{i}", NumericBins(np.sort(np.unique(data.draw(_edges_strategy())))))
        for i in range(n_numeric)
    ]
    categorical = [("c", COLORS)] if (n_numeric == 0 or data.draw(st.booleans())) else []
    layout = ModelLayout(layouts_numeric, categorical)
    numeric = data.draw(
        hnp.arrays(np.float64, (n_numeric, n_events), elements=ANY_FLOAT | SPECIAL_FLOATS)
    )
    columns = [
        _objects(data.draw(st.lists(_category_values(), min_size=n_events, max_size=n_events)))
        for _ in categorical
    ]
    slots = layout.bin_batch(numeric, columns)
    assert slots.shape == (layout.n_features, n_events)
    for row in range(layout.n_features):
        assert np.all(slots[row] >= 0)
        assert np.all(slots[row] < layout.width)
        used = (slots[row] < layout.value_slots[row]) | (slots[row] >= layout.missing_col)
        assert np.all(used), "a value landed in a padding column"
    counts = layout.histogram(slots)
    np.testing.assert_array_equal(counts.sum(axis=1), np.full(layout.n_features, n_events))
    for row in range(n_numeric):
        column = numeric[row]
        assert counts[row, layout.missing_col] == np.count_nonzero(np.isnan(column))
        assert counts[row, layout.invalid_col] == np.count_nonzero(np.isinf(column))
    if categorical:
        values = list(columns[0])
        row = n_numeric
        assert counts[row, layout.missing_col] == sum(v is None for v in values)
        n_invalid = sum(
            isinstance(v, str) and v.startswith(INVALID_CATEGORY_PREFIX) for v in values
        )
        assert counts[row, layout.invalid_col] == n_invalid
        known = sum(v in COLORS.vocabulary for v in values)
        assert counts[row, : COLORS.unseen_slot].sum() == known


def _edges_strategy() -> st.SearchStrategy[list[float]]:
    """1-6 distinct finite edges, including extreme magnitudes."""
    return st.lists(
        st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True),
        min_size=1,
        max_size=6,
        unique=True,
    )


def _category_values() -> st.SearchStrategy[object]:
    """Known, unseen, missing and invalid categorical values."""
    return st.one_of(
        st.sampled_from(["red", "green", "blue", "teal"]),
        st.none(),
        st.text(max_size=4),
        st.text(max_size=3).map(lambda s: INVALID_CATEGORY_PREFIX + s),
    )


@settings(max_examples=40, deadline=None)
@given(values=hnp.arrays(np.float64, st.integers(1, 50), elements=ANY_FLOAT | SPECIAL_FLOATS))
def test_numeric_slots_are_monotone_in_the_value(values: np.ndarray) -> None:
    """For finite values a larger value never gets a smaller slot."""
    layout = ModelLayout([("x", NumericBins(EDGES))], [])
    finite = values[np.isfinite(values)]
    order = np.argsort(finite, kind="mergesort")
    slots = layout.bin_batch(finite[None, order], [])[0]
    assert np.all(np.diff(slots) >= 0)
