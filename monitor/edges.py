"""Numeric bin edges learned from a reference sample (numpy only).

Slot layout of a numeric feature with edges e_0 < e_1 < ... < e_{m-1} (m = len(edges)):

    slot 0        underflow      x < e_0
    slot 1        the minimum    x == e_0
    slot k+1      (e_{k-1}, e_k] for k = 1 .. m-1   (upper edge inclusive)
    slot m+1      overflow       x > e_{m-1}

so `cumsum(counts)[k+1] / n` is the empirical CDF at e_k, the convention of
`scipy.stats.ks_2samp` (searchsorted side='right'). A numeric feature has m + 2 value slots.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from monitor.errors import ReferenceDataError
from monitor.model import DEFAULT_MAX_BINS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TILE_VALUES = 1 << 17
"""Values an `EdgeGrid` bins per pass (1 MiB of float64): the ~10 vectorised passes over a
tile stay in the core's cache instead of streaming a whole block through memory each time
(a block of 2^20 values: 0.58-0.62 of one pass's CPU at 20 features, 0.76-0.78 at 200,
0.84 at 2,000; `python -m bench.grid_tiles`, bench/results/grid-tiles.md)."""


def learn_edges(sample: npt.ArrayLike, max_bins: int = DEFAULT_MAX_BINS) -> FloatArray:
    """Learn frozen edges from a reference sample.

    If the finite values take at most `max_bins` distinct values (integer codes, counts,
    flags), the edges are exactly those values: one bin per value, so the binned KS is exact.
    Otherwise the edges are the quantiles q(k / max_bins), k = 0..max_bins, with duplicates
    removed (an atom collapses to one edge). NaN counts as missing and +-inf as invalid: both
    are ignored here.

    Raises ReferenceDataError for an empty sample, one with no finite value, or edges that
    are not strictly increasing and finite.
    """
    if max_bins < 2:
        raise ReferenceDataError(f"max_bins must be >= 2, got {max_bins}")
    values = np.asarray(sample, dtype=np.float64).ravel()
    if values.size == 0:
        raise ReferenceDataError("the reference sample is empty")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ReferenceDataError(
            f"the reference sample has no finite value ({values.size} values, all missing or ±inf)"
        )
    distinct = np.unique(finite)
    if distinct.size <= max_bins:
        edges = distinct
    else:
        levels = np.linspace(0.0, 1.0, max_bins + 1)
        with np.errstate(over="ignore", invalid="ignore"):
            quantiles = np.quantile(finite, levels, method="linear")
        overflow = ~np.isfinite(quantiles)
        if overflow.any():
            # Interpolating between two order statistics of opposite sign near +-1.8e308
            # overflows (b - a = inf): use the lower order statistic there instead.
            quantiles[overflow] = np.quantile(finite, levels[overflow], method="lower")
        edges = np.unique(quantiles)
    validate_edges(edges)
    return edges.astype(np.float64)


def validate_edges(edges: npt.ArrayLike) -> FloatArray:
    """Check that edges are a non-empty, finite, strictly increasing 1-d float array."""
    array = np.asarray(edges, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ReferenceDataError("edges must be a non-empty 1-d array")
    if not np.all(np.isfinite(array)):
        raise ReferenceDataError("edges must all be finite")
    if not np.all(array[1:] > array[:-1]):  # not np.diff: it overflows near +-1.8e308
        raise ReferenceDataError("edges must be strictly increasing")
    return array


def numeric_slot_count(edges: FloatArray) -> int:
    """Number of value slots of a numeric feature: underflow, minimum, m-1 bins, overflow."""
    return int(edges.size) + 2


def numeric_slots(values: FloatArray, edges: FloatArray) -> IntArray:
    """Map finite values to value slots (see module docstring). Non-finite input is not checked.

    slot = searchsorted(edges, x, 'left') + (x >= e_0): 0 below e_0, 1 at e_0, k+1 for
    x in (e_{k-1}, e_k], m+1 above e_{m-1}.

    Computed the other way round for speed (3-4x on 10k-value batches): sort the values once,
    then `searchsorted(sorted_values, edges, 'right')` gives, for each edge, where the
    values above it start, so #{edges < x} for every value is a run-length expansion.
    """
    n = values.shape[0]
    if n < 64:
        slots = np.searchsorted(edges, values, side="left").astype(np.int64)
    else:
        order = np.argsort(values)
        starts = np.searchsorted(values[order], edges, side="right")
        runs = np.diff(starts, prepend=0, append=n)
        slots = np.empty(n, dtype=np.int64)
        slots[order] = np.repeat(np.arange(edges.shape[0] + 1, dtype=np.int64), runs)
    slots += values >= edges[0]
    return slots


class EdgeGrid:
    """#{e_f < x} (`np.searchsorted(edges_f, x, 'left')`) for a block of values, row f of
    the block against its own sorted edges, without a binary search per value.

    Row f's range is cut into G equal cells (G = `cells_per_edge` x the most edges of any
    row): the cell of a value is cell(x) = int(min(max((t(x) - t(e_0)) * s, 0), G - 1)) with
    s = G / (t(e_{m-1}) - t(e_0)), computed with the same float64 operations for the values
    and for the edges. t is the identity, or, for a row whose edges crowd into a few cells
    (a heavy tail), t(x) = sign(x - c) * sqrt(sqrt(|x - c|)) around the row's middle edge c.
    Each operation is correctly rounded, hence monotone, so cell() never decreases with x: an
    edge in a lower cell than x is below x, one in a higher cell is above it. So start[c] =
    #{e : cell(e) < c} is at most the answer for every x of cell c, and at most n_c =
    #{e : cell(e) = c} below it; `steps` = max_c n_c vectorised steps s += (e_s < x) over
    the block reach it exactly (the edges are padded with +inf, so a value that has arrived
    stays). A row with a cell of more than `max_steps` edges under both maps, fewer than two
    edges or a range that overflows keeps `np.searchsorted`.

    Values that are not finite get a count that callers must overwrite (NaN and -inf: 0;
    +inf: m). tests/unit/test_edge_grid.py checks every finite value against
    `np.searchsorted`.
    """

    def __init__(
        self, edges: list[FloatArray], *, cells_per_edge: int = 2, max_steps: int = 6
    ) -> None:
        widest = max((e.shape[0] for e in edges), default=1)
        cells = max(1, cells_per_edge * widest)
        padded, lengths = _pad(edges, widest)
        # counts fit in int16 for every allowed bin count (max_bins <= 1024): 2 bytes a cell
        start = np.zeros((len(edges), cells), dtype=np.int16 if widest < 2**15 else np.int32)
        every = np.arange(len(edges), dtype=np.intp)
        linear = _Frames(padded, lengths, every, cells, start, rooted=False)
        is_linear = linear.steps <= max_steps
        others = every[~is_linear]  # the rooted map is tried on these only
        rooted = _Frames(padded, lengths, others, cells, start, rooted=True)
        is_rooted = rooted.steps <= max_steps
        self._grids = tuple(
            _Grid(
                padded,
                start,
                frames,
                picked,
                all_rows=bool(picked.all()) and picked.size == len(edges),
            )
            for frames, picked in ((linear, is_linear), (rooted, is_rooted))
            if picked.any()
        )
        self.rooted_rows: npt.NDArray[np.intp] = others[is_rooted]
        """The rows whose grid is laid on the rooted map (heavy tails)."""
        self.grid_rows: npt.NDArray[np.intp] = np.union1d(every[is_linear], self.rooted_rows)
        self.search_rows: npt.NDArray[np.intp] = others[~is_rooted]
        self._edges = edges

    def count_below(
        self, block: FloatArray, out: npt.NDArray[np.intp], tile_values: int = TILE_VALUES
    ) -> None:
        """out[f, i] = #{e_f < block[f, i]} for every finite value (see the class docstring),
        the grid rows in tiles of whole columns of about `tile_values` values."""
        for row in self.search_rows.tolist():
            out[row] = np.searchsorted(self._edges[row], block[row], side="left")
        n_rows, n = block.shape
        if n == 0:
            return
        step = max(1, tile_values // max(1, n_rows))
        for lo in range(0, n, step):
            tile, target = block[:, lo : lo + step], out[:, lo : lo + step]
            for grid in self._grids:
                grid.count_below(tile, target)


def _pad(edges: list[FloatArray], widest: int) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """The rows' edges in one float64[k, widest + 1] matrix padded with +inf, and their lengths."""
    lengths = np.fromiter((e.shape[0] for e in edges), dtype=np.intp, count=len(edges))
    padded = np.full((len(edges), widest + 1), np.inf, dtype=np.float64)
    for row, row_edges in enumerate(edges):
        padded[row, : row_edges.shape[0]] = row_edges
    return padded, lengths


class _Frames:
    """The cell map of some rows under one map (identity or rooted), laid for them all at once.

    Row f: c = its middle edge e_{m//2} (rooted map; 0 for the identity), t(e_0) = `low`,
    s = G / (t(e_{m-1}) - t(e_0)) = `scale`; s is 0 (and `steps` 2^31, no grid) when the
    row has fewer than two edges or its span or s is not a finite positive number.
    steps[i] = max_c #{e of row rows[i] : cell(e) = c}, and row rows[i] of the shared `start`
    table becomes #{e : cell(e) < c} under this map. Rows are done in chunks of about 2^18
    cells (2 MiB of counts at a time).
    """

    CHUNK_CELLS = 1 << 18

    def __init__(
        self,
        padded: FloatArray,
        lengths: npt.NDArray[np.intp],
        rows: npt.NDArray[np.intp],
        cells: int,
        start: npt.NDArray[np.integer],
        *,
        rooted: bool,
    ) -> None:
        k = rows.shape[0]
        self.rows = rows
        self.rooted = rooted
        self.cells = cells
        lengths = lengths[rows]
        self.centre = padded[rows, lengths // 2] if rooted else np.zeros(k, dtype=np.float64)
        ends = np.stack([padded[rows, 0], padded[rows, np.maximum(lengths - 1, 0)]], axis=1)
        if rooted:
            ends = _root(ends, self.centre[:, None])
        self.low = ends[:, 0].copy()
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            span = ends[:, 1] - self.low
            self.scale = np.float64(cells) / span
        gridless = (lengths < 2) | ~(np.isfinite(span) & (span > 0.0)) | ~np.isfinite(self.scale)
        self.scale[gridless] = 0.0
        self.steps = np.zeros(k, dtype=np.int64)
        chunk = max(1, self.CHUNK_CELLS // cells)
        for lo in range(0, k, chunk):
            part = slice(lo, min(k, lo + chunk))
            edge_cells = _Grid.cells_of(
                padded[rows[part]],
                self.centre[part, None],
                self.low[part, None],
                self.scale[part, None],
                cells,
                rooted=rooted,
            )
            n_rows = edge_cells.shape[0]
            real = np.arange(padded.shape[1]) < lengths[part, None]
            edge_cells += (np.arange(n_rows, dtype=np.intp) * cells)[:, None]
            per_cell = np.bincount(edge_cells[real], minlength=n_rows * cells)
            per_cell = per_cell.reshape(n_rows, cells)
            self.steps[part] = per_cell.max(axis=1, initial=0)
            start[rows[part]] = np.cumsum(per_cell, axis=1) - per_cell
        self.steps[gridless] = 2**31


class _Grid:
    """The rows of an `EdgeGrid` that share one cell map (identity or rooted); the padded
    edges and the start table are the `EdgeGrid`'s, shared by its grids."""

    def __init__(
        self,
        padded: FloatArray,
        start: npt.NDArray[np.integer],
        frames: _Frames,
        picked: npt.NDArray[np.bool_],
        *,
        all_rows: bool,
    ) -> None:
        """`picked`: which rows of `frames` this grid bins."""
        self.rows = frames.rows[picked]
        self.cells = frames.cells
        self.rooted = frames.rooted
        self.all_rows = all_rows
        self.centre = frames.centre[picked, None]
        self.low = frames.low[picked, None]
        self.scale = frames.scale[picked, None]
        self.steps = int(frames.steps[picked].max())
        self.start_base = (self.rows * self.cells)[:, None]
        self.edge_base = (self.rows * padded.shape[1])[:, None]
        self.start_flat = start.ravel()
        self.padded_flat = padded.ravel()

    @staticmethod
    def cells_of(
        values: FloatArray,
        centre: FloatArray | np.float64,
        low: FloatArray | np.float64,
        scale: FloatArray | np.float64,
        cells: int,
        *,
        rooted: bool,
    ) -> npt.NDArray[np.intp]:
        """cell(x) of the `EdgeGrid` docstring (the same operations for edges and values)."""
        with np.errstate(over="ignore", invalid="ignore"):  # far values clip to the ends
            cell = _root(values, centre) if rooted else values.astype(np.float64, copy=True)
            cell -= low
            cell *= scale
        np.fmax(cell, 0.0, out=cell)  # NaN -> 0 as well
        np.fmin(cell, float(cells - 1), out=cell)
        return cell.astype(np.intp)

    def count_below(self, block: FloatArray, out: npt.NDArray[np.intp]) -> None:
        """The counts of this group's rows of `block` into the same rows of `out`."""
        values = block if self.all_rows else block[self.rows]
        index = _Grid.cells_of(
            values, self.centre, self.low, self.scale, self.cells, rooted=self.rooted
        )
        index += self.start_base
        position = self.start_flat.take(index) + self.edge_base  # flat index of edge `count`
        for _ in range(self.steps):
            position += self.padded_flat.take(position) < values
        position -= self.edge_base
        if self.all_rows:
            out[...] = position
        else:
            out[self.rows] = position


def _root(values: FloatArray, centre: FloatArray | np.float64) -> FloatArray:
    """sign(x - c) * sqrt(sqrt(|x - c|)): monotone in float64 (each step correctly rounded)."""
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = values - centre
        rooted = np.abs(shifted)
        np.sqrt(rooted, out=rooted)
        np.sqrt(rooted, out=rooted)
        np.copysign(rooted, shifted, out=rooted)
    return rooted
