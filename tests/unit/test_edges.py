"""Tests of monitor.edges: learned edges, their validation and the numeric slot layout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from monitor.edges import (
    learn_edges,
    numeric_slot_count,
    numeric_slots,
    validate_edges,
)
from monitor.errors import ReferenceDataError
from monitor.model import DEFAULT_MAX_BINS


def test_few_integer_values_give_one_edge_per_value() -> None:
    """A count feature with fewer distinct values than max_bins gets exactly those values."""
    rng = np.random.default_rng(1)
    sample = rng.integers(0, 40, 5000).astype(np.float64)
    edges = learn_edges(sample, max_bins=128)
    np.testing.assert_array_equal(edges, np.unique(sample))
    assert edges.dtype == np.float64


def test_exactly_max_bins_distinct_values_are_kept_as_edges() -> None:
    """The one-edge-per-value rule applies up to and including max_bins distinct values."""
    sample = np.repeat(np.arange(16, dtype=np.float64), 3)
    np.testing.assert_array_equal(learn_edges(sample, max_bins=16), np.arange(16.0))
    quantiled = learn_edges(np.arange(17, dtype=np.float64), max_bins=16)
    assert quantiled.size <= 17
    assert quantiled[0] == 0.0
    assert quantiled[-1] == 16.0


def test_constant_feature_has_one_edge_and_three_useful_slots() -> None:
    """A constant reference gives one edge; values below, on and above it land in 0, 1, 2."""
    edges = learn_edges(np.full(100, 7.5))
    np.testing.assert_array_equal(edges, [7.5])
    assert numeric_slot_count(edges) == 3
    slots = numeric_slots(np.asarray([-1.0, 7.5, 7.5000001, 1e300]), edges)
    np.testing.assert_array_equal(slots, [0, 1, 2, 2])


def test_missing_and_infinite_values_are_ignored_when_learning() -> None:
    """NaN and +-inf take no part in the edges."""
    sample = np.asarray([np.nan, 1.0, np.inf, 2.0, -np.inf, 3.0, np.nan])
    np.testing.assert_array_equal(learn_edges(sample), [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (np.asarray([], dtype=np.float64), "empty"),
        (np.full(10, np.nan), "no finite value"),
        (np.asarray([np.inf, -np.inf, np.inf]), "no finite value"),
        (np.asarray([np.nan, np.inf]), "no finite value"),
    ],
    ids=["empty", "all-nan", "all-inf", "nan-and-inf"],
)
def test_unusable_samples_raise_a_clear_error(sample: np.ndarray, message: str) -> None:
    """An empty, all-missing or all-infinite sample raises ReferenceDataError saying why."""
    with pytest.raises(ReferenceDataError, match=message):
        learn_edges(sample)


@pytest.mark.parametrize("max_bins", [1, 0, -5])
def test_max_bins_below_two_is_rejected(max_bins: int) -> None:
    """max_bins < 2 cannot make a histogram and is refused with the value in the message."""
    with pytest.raises(ReferenceDataError, match=f"max_bins must be >= 2, got {max_bins}"):
        learn_edges(np.arange(10.0), max_bins=max_bins)


@pytest.mark.parametrize("max_bins", [2, 10, 128, 1000])
def test_quantile_edges_are_strictly_increasing_and_bounded(max_bins: int) -> None:
    """Continuous data gives max_bins + 1 strictly increasing edges spanning min..max."""
    rng = np.random.default_rng(max_bins)
    sample = rng.lognormal(0.0, 2.0, 20_000)
    edges = learn_edges(sample, max_bins=max_bins)
    assert edges.size == max_bins + 1
    assert np.all(np.diff(edges) > 0)
    assert edges[0] == sample.min()
    assert edges[-1] == sample.max()


def test_atoms_collapse_to_one_edge() -> None:
    """A heavy atom (half the sample on one value) becomes one edge, not many equal ones."""
    rng = np.random.default_rng(3)
    sample = np.concatenate([np.zeros(5000), rng.normal(5.0, 1.0, 5000)])
    edges = learn_edges(sample, max_bins=DEFAULT_MAX_BINS)
    assert np.all(np.diff(edges) > 0)
    assert edges.size <= DEFAULT_MAX_BINS + 1
    assert np.count_nonzero(edges == 0.0) == 1
    assert edges.size < 80  # ~64 quantile levels fall on the atom and collapse into one


@settings(max_examples=60, deadline=None)
@given(
    sample=hnp.arrays(
        np.float64,
        st.integers(1, 400),
        elements=st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    ),
    max_bins=st.integers(2, 64),
)
def test_learned_edges_are_always_valid(sample: np.ndarray, max_bins: int) -> None:
    """Any sample with a finite value yields finite, strictly increasing, <= max_bins+1 edges."""
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        with pytest.raises(ReferenceDataError):
            learn_edges(sample, max_bins)
        return
    edges = learn_edges(sample, max_bins)
    assert np.all(np.isfinite(edges))
    assert np.all(edges[1:] > edges[:-1])
    assert 1 <= edges.size <= max_bins + 1
    assert edges[0] == finite.min()
    assert edges[-1] == finite.max()


def test_opposite_extreme_values_do_not_overflow_the_quantiles() -> None:
    """Interpolating between -1.7e308 and +1e308 must not produce an infinite edge."""
    sample = np.concatenate([np.linspace(-1.7e308, -1e308, 200), np.linspace(1e308, 1.7e308, 200)])
    edges = learn_edges(sample, max_bins=128)
    assert np.all(np.isfinite(edges))
    assert np.all(edges[1:] > edges[:-1])


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ([], "non-empty"),
        ([[1.0, 2.0]], "non-empty 1-d"),
        ([1.0, np.nan], "finite"),
        ([1.0, np.inf], "finite"),
        ([1.0, 1.0, 2.0], "strictly increasing"),
        ([3.0, 2.0], "strictly increasing"),
    ],
)
def test_validate_edges_rejects_bad_edges(edges: list[float], message: str) -> None:
    """Empty, non-finite, repeated or decreasing edges are refused."""
    with pytest.raises(ReferenceDataError, match=message):
        validate_edges(edges)


def test_validate_edges_accepts_extreme_but_finite_edges() -> None:
    """Edges at +-1.7e308 are valid (their difference overflows, the order does not)."""
    out = validate_edges([-1.7e308, 0.0, 1.7e308])
    assert out.dtype == np.float64


def test_slot_layout_on_a_hand_example() -> None:
    """Edges [0, 1, 2]: below 0 -> 0, exactly 0 -> 1, (0,1] -> 2, (1,2] -> 3, above 2 -> 4."""
    edges = np.asarray([0.0, 1.0, 2.0])
    assert numeric_slot_count(edges) == 5
    values = np.asarray([-5.0, -1e-300, 0.0, -0.0, 5e-324, 0.5, 1.0, 1.0000001, 2.0, 2.5, 1e308])
    expected = [0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4]
    np.testing.assert_array_equal(numeric_slots(values, edges), expected)


def test_slot_cumulative_counts_are_the_ecdf_at_the_edges() -> None:
    """cumsum(counts)[k+1] / n equals the fraction of values <= e_k (scipy's ECDF convention)."""
    rng = np.random.default_rng(11)
    values = np.round(rng.normal(0.0, 2.0, 3000), 1)
    edges = learn_edges(rng.normal(0.0, 2.0, 500), max_bins=32)
    counts = np.bincount(numeric_slots(values, edges), minlength=numeric_slot_count(edges))
    cdf = np.cumsum(counts) / values.size
    for k, edge in enumerate(edges):
        assert cdf[k + 1] == np.count_nonzero(values <= edge) / values.size
    assert cdf[0] == np.count_nonzero(values < edges[0]) / values.size
