"""EdgeGrid: #{edges < x} of a block against np.searchsorted, value by value."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monitor.edges import EdgeGrid, _Frames, learn_edges

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)


def _oracle(edges: list[np.ndarray], block: np.ndarray) -> np.ndarray:
    rows = zip(edges, block, strict=True)
    return np.stack([np.searchsorted(e, row, side="left") for e, row in rows])


def _near_edges(rng: np.random.Generator, edges: np.ndarray, n: int) -> np.ndarray:
    """Values on, just below and just above the edges, and far outside them."""
    picks = edges[rng.integers(edges.size, size=n)]
    with np.errstate(over="ignore"):  # next to +-1.8e308 is +-inf
        shifted = np.where(
            rng.random(n) < 0.5, np.nextafter(picks, -np.inf), np.nextafter(picks, np.inf)
        )
    values = np.where(rng.random(n) < 0.5, picks, shifted)
    far = rng.random(n) < 0.1
    values[far] = rng.choice([-1e308, 1e308, -1e300, 1e300, 0.0, -0.0], size=int(far.sum()))
    return values


def test_quantile_edges_of_many_shapes_count_exactly() -> None:
    """Normal, lognormal, uniform, integer-coded, Cauchy and one-edge features, on and off edges."""
    rng = np.random.default_rng(21)
    samples = [
        rng.normal(size=5000),
        rng.normal(loc=1e6, scale=1e-3, size=5000),
        rng.lognormal(sigma=3.0, size=5000),
        rng.uniform(-1.0, 1.0, size=5000),
        rng.integers(0, 7, size=5000).astype(float),
        np.full(5000, 3.5),
        rng.standard_cauchy(size=5000),
    ]
    edges = [learn_edges(s) for s in samples]
    block = np.stack(
        [
            np.concatenate([_near_edges(rng, e, 600), s[:400] * 1.3])
            for e, s in zip(edges, samples, strict=True)
        ]
    )
    grid = EdgeGrid(edges)
    out = np.empty(block.shape, dtype=np.intp)
    grid.count_below(block, out)
    np.testing.assert_array_equal(out, _oracle(edges, block))
    assert 5 in grid.search_rows.tolist()  # one edge: nothing to lay a grid on
    assert 6 in grid.rooted_rows.tolist()  # Cauchy: the rooted map
    assert grid.grid_rows.size >= 5


def test_a_block_binned_in_tiles_equals_one_pass_and_the_oracle() -> None:
    """A block of several tiles (linear and rooted rows, a last partial tile) counts exactly
    as one pass over it and as searchsorted."""
    rng = np.random.default_rng(5)
    samples = [rng.normal(size=4000), rng.standard_cauchy(size=4000), rng.lognormal(size=4000)]
    edges = [learn_edges(s) for s in samples]
    block = np.stack(
        [
            np.concatenate([_near_edges(rng, e, 700), s[:301]])
            for e, s in zip(edges, samples, strict=True)
        ]
    )
    grid = EdgeGrid(edges)
    tiled, whole = (np.empty(block.shape, dtype=np.intp) for _ in range(2))
    grid.count_below(block, tiled, tile_values=3 * 64)  # 64 columns a tile: 16 tiles
    grid.count_below(block, whole, tile_values=block.size)
    np.testing.assert_array_equal(tiled, whole)
    np.testing.assert_array_equal(tiled, _oracle(edges, block))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(FINITE, min_size=1, max_size=40, unique=True).map(sorted),
        min_size=1,
        max_size=5,
    ),
    st.integers(0, 2**32 - 1),
)
def test_any_finite_edges_and_values_count_exactly(raw: list[list[float]], seed: int) -> None:
    """Arbitrary strictly increasing finite edges (down to subnormals, up to 1.8e308)."""
    edges = [np.unique(np.asarray(e, dtype=np.float64)) for e in raw]
    rng = np.random.default_rng(seed)
    block = np.stack([_near_edges(rng, e, 64) for e in edges])
    out = np.empty(block.shape, dtype=np.intp)
    EdgeGrid(edges).count_below(block, out)
    np.testing.assert_array_equal(out, _oracle(edges, block))


@given(arrays(np.float64, (3, 17)))
def test_non_finite_values_never_raise(block: np.ndarray) -> None:
    """NaN and infinities get some count (callers overwrite them); finite ones stay exact."""
    edges = [np.linspace(-1.0, 1.0, 9), np.array([0.0]), np.geomspace(1e-3, 1e3, 40)]
    out = np.empty(block.shape, dtype=np.intp)
    EdgeGrid(edges).count_below(block, out)
    finite = np.isfinite(block)
    np.testing.assert_array_equal(out[finite], _oracle(edges, block)[finite])


def test_an_empty_block_and_a_block_without_grid_rows_count_nothing_wrong() -> None:
    """Zero events, and only one-edge rows (no grid), give the searchsorted answer."""
    edges = [np.array([1.0]), np.array([-2.0])]
    grid = EdgeGrid(edges)
    assert grid.grid_rows.size == 0
    block = np.array([[0.0, 1.0, 2.0], [-3.0, -2.0, 5.0]])
    out = np.empty(block.shape, dtype=np.intp)
    grid.count_below(block, out)
    np.testing.assert_array_equal(out, _oracle(edges, block))
    empty = np.empty((2, 0), dtype=np.intp)
    grid.count_below(np.empty((2, 0)), empty)


def test_rows_of_different_lengths_in_several_chunks_are_gridded_and_count_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Short rows next to long ones keep their grid (padding is not an edge), and rows laid out
    a few at a time count as searchsorted."""
    monkeypatch.setattr(_Frames, "CHUNK_CELLS", 3 * 258)  # 3 rows of 258 cells a chunk
    rng = np.random.default_rng(8)
    edges = [
        learn_edges(rng.normal(size=3000)) if row % 3 else np.linspace(0.0, 1.0, 5 + row % 7)
        for row in range(40)
    ] + [learn_edges(rng.standard_cauchy(size=3000))]
    grid = EdgeGrid(edges)
    assert grid.search_rows.size == 0
    assert grid.rooted_rows.tolist() == [40]
    block = np.stack([_near_edges(rng, e, 200) for e in edges])
    out = np.empty(block.shape, dtype=np.intp)
    grid.count_below(block, out)
    np.testing.assert_array_equal(out, _oracle(edges, block))
