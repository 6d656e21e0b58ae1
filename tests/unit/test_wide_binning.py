"""The block binning of wide batches (`ModelLayout.count`) against the per-feature path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from monitor.decode import INVALID_CATEGORY
from monitor.histogram import CategoricalBins, ModelLayout, NumericBins

CATEGORIES = tuple(f"k{i}" for i in range(12))
VOCABULARY = frozenset((*CATEGORIES, "rare1", "rare2"))


def _layout(rng: np.random.Generator, n_numeric: int, n_categorical: int) -> ModelLayout:
    """Numeric features with 1-128 random edges of varied scale; categoricals with top-K 12."""
    numeric = []
    for i in range(n_numeric):
        m = int(rng.integers(1, 129))
        scale = 10.0 ** rng.uniform(-6, 6)
        edges = np.unique(rng.normal(rng.normal() * scale, scale, m))
        numeric.append((f"x{i}", NumericBins(edges)))
    categorical = [
        (f"c{j}", CategoricalBins(CATEGORIES[: 1 + j % 12], VOCABULARY, 0.01))
        for j in range(n_categorical)
    ]
    return ModelLayout(numeric, categorical)


def _batch(
    rng: np.random.Generator, layout: ModelLayout, n: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Values around and far outside the edges, exactly on edges, NaN, +-inf; categories
    known, OTHER, unseen, missing and invalid."""
    numeric = np.empty((layout.n_numeric, n))
    for row, bins in enumerate(layout.numeric_bins):
        edges = bins.edges
        spread = max(float(edges[-1] - edges[0]), 1e-9)
        column = rng.uniform(edges[0] - spread, edges[-1] + spread, n)
        on_edge = rng.random(n) < 0.2
        column[on_edge] = rng.choice(edges, int(on_edge.sum()))
        special = rng.random(n)
        column[special < 0.05] = np.nan
        column[(special >= 0.05) & (special < 0.08)] = np.inf
        column[(special >= 0.08) & (special < 0.10)] = -np.inf
        column[(special >= 0.10) & (special < 0.12)] = edges[0] - 1e300
        numeric[row] = column
    pool = [*CATEGORIES, "rare1", "rare2", "never-seen", "other-new", None, INVALID_CATEGORY]
    categorical = []
    for _ in layout.categorical_bins:
        column = np.empty(n, dtype=object)
        column[:] = [pool[i] for i in rng.integers(0, len(pool), n)]
        categorical.append(column)
    return numeric, categorical


@pytest.mark.parametrize(
    ("n_numeric", "n_categorical", "n"), [(1, 0, 1), (40, 6, 7), (300, 30, 200)]
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_block_counts_equal_per_feature_counts_bin_by_bin(
    n_numeric: int, n_categorical: int, n: int, seed: int
) -> None:
    """`count` equals `count_per_feature` and `histogram(bin_batch)` on wide random batches."""
    rng = np.random.default_rng(seed)
    layout = _layout(rng, n_numeric, n_categorical)
    numeric, categorical = _batch(rng, layout, n)
    block = layout.count(numeric, categorical)
    np.testing.assert_array_equal(block, layout.count_per_feature(numeric, categorical))
    np.testing.assert_array_equal(block, layout.histogram(layout.bin_batch(numeric, categorical)))
    assert block.sum() == layout.n_features * n


def test_block_counts_of_an_empty_batch_are_zero() -> None:
    """A batch of no events counts nothing in either path."""
    layout = _layout(np.random.default_rng(4), 5, 2)
    numeric, categorical = _batch(np.random.default_rng(4), layout, 0)
    assert not layout.count(numeric, categorical).any()


@settings(max_examples=60, deadline=None)
@given(
    edges=st.lists(
        st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=8, unique=True
    ),
    values=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 3), st.integers(0, 20)),
        elements=st.floats(allow_subnormal=True),
    ),
)
def test_block_counts_equal_per_feature_counts_on_any_floats(
    edges: list[float], values: np.ndarray
) -> None:
    """Any floats (subnormals, extremes, NaN, +-inf) land in the same bins in both paths."""
    bins = NumericBins(np.sort(np.asarray(edges)))
    layout = ModelLayout([(f"x{i}", bins) for i in range(values.shape[0])], [])
    np.testing.assert_array_equal(layout.count(values, []), layout.count_per_feature(values, []))
