"""Fixed-bin histograms for all features of one model, as one integer count matrix.

A model's histogram is an int64 matrix `counts[F, W]`, one row per feature. Every row has
the same width W = (largest number of value slots over the model's features) + 2:

    columns 0 .. W-3   value slots (numeric: see monitor.edges; categorical: top-K
                       reference categories, then OTHER (in the reference vocabulary but
                       not in the top K), then UNSEEN (not in the reference vocabulary));
                       slots a feature does not use stay 0
    column  W-2        MISSING (null, absent key, NaN)
    column  W-1        INVALID (wrong type, +-inf)

Adding, merging and subtracting histograms is plain integer matrix arithmetic, so windows,
references and checkpoints share one representation. Binning a batch is vectorised per
feature (searchsorted / unique), then a single bincount over the whole batch: there is no
per-event Python loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.edges import (
    EdgeGrid,
    FloatArray,
    IntArray,
    numeric_slot_count,
    numeric_slots,
    validate_edges,
)
from monitor.errors import ReferenceDataError

INVALID_CATEGORY_PREFIX = "\x00"

CountMatrix = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]


@dataclass(frozen=True, slots=True, eq=False)
class NumericBins:
    """Frozen edges of one numeric feature (value slots: len(edges) + 2)."""

    edges: FloatArray

    @property
    def value_slots(self) -> int:
        """Underflow, minimum, interior bins and overflow."""
        return numeric_slot_count(self.edges)


@dataclass(frozen=True, slots=True, eq=False)
class CategoricalBins:
    """Frozen top-K categories, the whole reference vocabulary and its singleton fraction.

    `singleton_fraction` is f1 / n_ref (reference categories seen exactly once, over the
    reference's non-missing count): the Good-Turing estimate of the probability mass of
    categories the reference never saw, used by the new-category check.
    `doubleton_fraction` is f2 / n_ref (categories seen exactly twice), which gives that
    estimate's variance (`monitor.stats.good_turing_variance`); None for a reference written
    before it was recorded.
    """

    categories: tuple[str, ...]
    vocabulary: frozenset[str]
    singleton_fraction: float
    doubleton_fraction: float | None = None

    @property
    def value_slots(self) -> int:
        """Top-K categories, OTHER and UNSEEN."""
        return len(self.categories) + 2

    @property
    def other_slot(self) -> int:
        """Slot of reference categories outside the top K."""
        return len(self.categories)

    @property
    def unseen_slot(self) -> int:
        """Slot of categories absent from the reference vocabulary."""
        return len(self.categories) + 1


FeatureBins = NumericBins | CategoricalBins


class ModelLayout:
    """Bins of every feature of a model, in a fixed order: numeric features, then categorical.

    `bin_batch` turns a decoded batch (numeric float64 matrix + categorical object columns)
    into per-feature slot indices; `histogram` turns slot indices into a count matrix.
    """

    def __init__(
        self,
        numeric: Sequence[tuple[str, NumericBins]],
        categorical: Sequence[tuple[str, CategoricalBins]],
    ) -> None:
        names = [name for name, _ in numeric] + [name for name, _ in categorical]
        if not names:
            raise ReferenceDataError("a model needs at least one feature")
        if len(set(names)) != len(names):
            raise ReferenceDataError("feature names must be unique within a model")
        for name, bins in numeric:
            try:
                validate_edges(bins.edges)
            except ReferenceDataError as exc:
                raise ReferenceDataError(f"feature {name!r}: {exc}") from exc
        self.numeric_names: tuple[str, ...] = tuple(name for name, _ in numeric)
        self.categorical_names: tuple[str, ...] = tuple(name for name, _ in categorical)
        self.numeric_bins: tuple[NumericBins, ...] = tuple(b for _, b in numeric)
        self.categorical_bins: tuple[CategoricalBins, ...] = tuple(b for _, b in categorical)
        self.names: tuple[str, ...] = tuple(names)
        slots = [b.value_slots for b in self.numeric_bins] + [
            b.value_slots for b in self.categorical_bins
        ]
        self.value_slots: IntArray = np.asarray(slots, dtype=np.int64)
        self.width: int = int(self.value_slots.max()) + 2
        self.missing_col: int = self.width - 2
        self.invalid_col: int = self.width - 1
        self._lookups: tuple[dict[str, int], ...] = tuple(
            _category_lookup(b) for b in self.categorical_bins
        )
        self._first_edges: FloatArray = np.asarray(
            [b.edges[0] for b in self.numeric_bins], dtype=np.float64
        )[:, None]
        self._row_offsets: npt.NDArray[np.intp] = (
            np.arange(self.n_numeric, dtype=np.intp) * self.width
        )[:, None]

    @cached_property
    def _grid(self) -> EdgeGrid:
        """#{edges < x} of the numeric block without a binary search per value (built at
        the first count: about 1.6 KiB per numeric feature at 128 bins)."""
        return EdgeGrid([b.edges for b in self.numeric_bins])

    @property
    def n_features(self) -> int:
        """Number of features (rows of the count matrix)."""
        return len(self.names)

    @property
    def n_numeric(self) -> int:
        """Number of numeric features (the first rows)."""
        return len(self.numeric_names)

    def empty(self, dtype: type[np.integer] = np.int64) -> npt.NDArray[np.integer]:
        """A zero count matrix of this layout's shape."""
        return np.zeros((self.n_features, self.width), dtype=dtype)

    def bin_batch(self, numeric: FloatArray, categorical: Sequence[ObjectArray]) -> IntArray:
        """Slot index of every value: int64[F, N] (column index into the count matrix).

        numeric: float64[n_numeric, N] with NaN = missing and +-inf = invalid (finite values,
        however large, are binned: beyond the edges they land in under/overflow).
        categorical: one object array [N] per categorical feature holding str (a category),
        None (missing) or a str starting with NUL (invalid; bools should arrive as
        "true"/"false"). Any other object is compared by its str() (the decoder only emits
        str or None).
        """
        n = self._batch_size(numeric, categorical)
        slots = np.empty((self.n_features, n), dtype=np.int64)
        for row, bins in enumerate(self.numeric_bins):
            column = numeric[row]
            target = slots[row]
            target[:] = numeric_slots(column, bins.edges)
            target[np.isnan(column)] = self.missing_col
            target[np.isinf(column)] = self.invalid_col
        for offset, (cat_bins, lookup) in enumerate(
            zip(self.categorical_bins, self._lookups, strict=True)
        ):
            slots[self.n_numeric + offset] = self._categorical_slots(
                categorical[offset], cat_bins, lookup
            )
        return slots

    def histogram(self, slots: IntArray) -> CountMatrix:
        """Count matrix int64[F, W] of a slot-index matrix from `bin_batch` (one bincount)."""
        n_features, _ = slots.shape
        flat = slots + (np.arange(n_features, dtype=np.int64) * self.width)[:, None]
        counts = np.bincount(flat.ravel(), minlength=n_features * self.width)
        return counts.reshape(n_features, self.width).astype(np.int64, copy=False)

    def count(self, numeric: FloatArray, categorical: Sequence[ObjectArray]) -> CountMatrix:
        """Count a batch without keeping each event's slot (the daemon's hot path).

        Equal to `histogram(bin_batch(numeric, categorical))` and to `count_per_feature`, bin
        by bin. Numeric features are counted as one block (`_count_numeric_block`: #{edges <
        x} by `edges.EdgeGrid` over the whole [F, N] matrix, every other step too, one
        bincount for all of them), so there is no per-feature Python work, which matters when
        a batch is wide and short; categorical columns are counted with a
        Counter each and only their distinct values are looked up.
        """
        self._batch_size(numeric, categorical)
        counts = np.zeros((self.n_features, self.width), dtype=np.int64)
        self._count_numeric_block(numeric, counts[: self.n_numeric])
        for offset, (cat_bins, lookup) in enumerate(
            zip(self.categorical_bins, self._lookups, strict=True)
        ):
            self._count_categorical(
                categorical[offset], cat_bins, lookup, counts[self.n_numeric + offset]
            )
        return counts

    def count_grouped(
        self,
        numeric: FloatArray,
        categorical: Sequence[ObjectArray],
        groups: npt.NDArray[np.integer],
        n_groups: int,
    ) -> npt.NDArray[np.int64]:
        """Counts int64[n_groups, F, W] of a batch whose event i belongs to group groups[i].

        Block k equals `count` of the events of group k, so the blocks sum to `count` of the
        batch (monitor/segments.py: one block per segment; monitor/window.py: one block per
        window bucket). Each event is binned once: the numeric slots as in
        `_count_numeric_block`, the categorical ones by `_categorical_slots`, all offset by
        (groups[i] x F + row) x W and counted with one bincount of n_groups x F x W cells.
        """
        n = self._batch_size(numeric, categorical)
        size = n_groups * self.n_features * self.width
        if n == 0:
            return np.zeros((n_groups, self.n_features, self.width), dtype=np.int64)
        slots = np.empty((self.n_features, n), dtype=np.intp)
        n_rows = self.n_numeric
        if n_rows:
            numeric_slots = slots[:n_rows]
            self._grid.count_below(numeric, numeric_slots)
            numeric_slots += numeric >= self._first_edges
            numeric_slots[np.isnan(numeric)] = self.missing_col
            numeric_slots[np.isinf(numeric)] = self.invalid_col
        for offset, (cat_bins, lookup) in enumerate(
            zip(self.categorical_bins, self._lookups, strict=True)
        ):
            slots[n_rows + offset] = self._categorical_slots(categorical[offset], cat_bins, lookup)
        slots += (np.arange(self.n_features, dtype=np.intp) * self.width)[:, None]
        slots += np.asarray(groups, dtype=np.intp) * (self.n_features * self.width)
        counts = np.bincount(slots.ravel(), minlength=size)
        return counts.reshape(n_groups, self.n_features, self.width)

    def count_per_feature(
        self, numeric: FloatArray, categorical: Sequence[ObjectArray]
    ) -> CountMatrix:
        """`count` one numeric feature at a time (sort + searchsorted of the edges per
        column): the reference the block path is tested against."""
        self._batch_size(numeric, categorical)
        counts = np.zeros((self.n_features, self.width), dtype=np.int64)
        for row, bins in enumerate(self.numeric_bins):
            self._count_numeric(numeric[row], bins.edges, counts[row])
        for offset, (cat_bins, lookup) in enumerate(
            zip(self.categorical_bins, self._lookups, strict=True)
        ):
            self._count_categorical(
                categorical[offset], cat_bins, lookup, counts[self.n_numeric + offset]
            )
        return counts

    def _count_numeric_block(self, numeric: FloatArray, out: IntArray) -> None:
        """Counts of all numeric features of a batch into `out` (their rows, int64[Fn, W]).

        slot[f, i] = searchsorted(edges_f, x, 'left') + (x >= e_f0) (`edges.numeric_slots`;
        the first term by `edges.EdgeGrid`),
        then MISSING where x is NaN and INVALID where x is +-inf; the slots of row f are
        offset by f * W and counted with one bincount over the whole block.
        """
        n_rows, n = numeric.shape
        if n_rows == 0 or n == 0:
            return
        slots = np.empty((n_rows, n), dtype=np.intp)
        self._grid.count_below(numeric, slots)
        slots += numeric >= self._first_edges
        slots[np.isnan(numeric)] = self.missing_col
        slots[np.isinf(numeric)] = self.invalid_col
        slots += self._row_offsets[:n_rows]
        out += np.bincount(slots.ravel(), minlength=n_rows * self.width).reshape(n_rows, self.width)

    def _count_numeric(self, column: FloatArray, edges: FloatArray, out: IntArray) -> None:
        """Counts of one numeric column into `out` (one row of the count matrix).

        With v = sort(column) (-inf first, then finite values, +inf, NaN last) and
        le_k = #{v <= e_k} = searchsorted(v, e_k, 'right'): underflow = #{v < e_0} - #-inf,
        the minimum slot = le_0 - #{v < e_0}, slot k+1 = le_k - le_{k-1}, overflow =
        #{v < +inf} - le_{m-1}, missing = #NaN, invalid = #-inf + #+inf.
        """
        n = column.shape[0]
        if n == 0:
            return
        ordered = np.sort(column)
        m = edges.shape[0]
        le = np.searchsorted(ordered, edges, side="right")
        below, below_pos_inf = np.searchsorted(ordered, (edges[0], np.inf), side="left").tolist()
        n_neg_inf, upto_pos_inf = np.searchsorted(ordered, (-np.inf, np.inf), side="right").tolist()
        out[0] += below - n_neg_inf
        out[1] += int(le[0]) - below
        if m > 1:
            out[2 : m + 1] += np.diff(le)
        out[m + 1] += below_pos_inf - int(le[-1])
        out[self.missing_col] += n - upto_pos_inf
        out[self.invalid_col] += n_neg_inf + upto_pos_inf - below_pos_inf

    def _count_categorical(
        self,
        column: ObjectArray,
        bins: CategoricalBins,
        lookup: dict[str, int],
        out: IntArray,
    ) -> None:
        """Counts of one categorical column: a Counter over the values, then one bincount.

        Only the distinct values are looked up: top-K slot, OTHER for the rest of the
        reference vocabulary, UNSEEN for anything else, INVALID for the NUL-prefixed marker,
        MISSING for None.
        """
        counter = Counter(column.tolist())
        missing = counter.pop(None, 0)
        if missing:
            out[self.missing_col] += missing
        if not counter:
            return
        values = list(counter)
        slots = [lookup.get(v, -1) for v in values]
        for index, slot in enumerate(slots):
            if slot < 0:
                text = values[index] if type(values[index]) is str else str(values[index])
                if text.startswith(INVALID_CATEGORY_PREFIX):
                    slots[index] = self.invalid_col
                else:
                    slots[index] = lookup.get(text, bins.unseen_slot)
        out += np.bincount(slots, weights=list(counter.values()), minlength=self.width).astype(
            np.int64
        )

    def _batch_size(self, numeric: FloatArray, categorical: Sequence[ObjectArray]) -> int:
        if numeric.ndim != 2 or numeric.shape[0] != self.n_numeric:
            raise ValueError(
                f"numeric batch must have shape ({self.n_numeric}, N), got {numeric.shape}"
            )
        if len(categorical) != len(self.categorical_bins):
            raise ValueError(
                f"expected {len(self.categorical_bins)} categorical columns, got {len(categorical)}"
            )
        n = int(numeric.shape[1])
        if self.n_numeric == 0 and categorical:
            n = len(categorical[0])
        for column in categorical:
            if len(column) != n:
                raise ValueError("all columns of a batch must have the same length")
        return n

    def _categorical_slots(
        self, column: ObjectArray, bins: CategoricalBins, lookup: dict[str, int]
    ) -> IntArray:
        """Vectorised category -> slot, with the rules of `_count_categorical`.

        Every value is first looked up as it is (one C-level `map` of `dict.get`); the misses
        are resolved in Python once per distinct value, then mapped back with another `map`:
        None is MISSING, a str (or the str() of any other object) starting with NUL is
        INVALID, else its lookup or UNSEEN. A dict of Python strings, not numpy's fixed-width
        str dtype, which drops trailing NUL characters ("\\x00" would lose its invalid
        marker, "a\\x00" would count as "a").
        """
        values = column.tolist() if isinstance(column, np.ndarray) else list(column)
        n = len(values)
        result = np.fromiter(map(lookup.get, values, repeat(-1, n)), dtype=np.int64, count=n)
        misses = np.flatnonzero(result < 0)
        if misses.size:
            missed = np.asarray(column, dtype=object)[misses].tolist()
            resolved = {value: self._miss_slot(value, bins, lookup) for value in set(missed)}
            result[misses] = np.fromiter(
                map(resolved.__getitem__, missed), dtype=np.int64, count=misses.size
            )
        return result

    def _miss_slot(self, value: object, bins: CategoricalBins, lookup: dict[str, int]) -> int:
        """Slot of a categorical value its lookup did not find (see `_categorical_slots`)."""
        if value is None:
            return self.missing_col
        text = value if type(value) is str else str(value)
        if text.startswith(INVALID_CATEGORY_PREFIX):
            return self.invalid_col
        return lookup.get(text, bins.unseen_slot)


def _category_lookup(bins: CategoricalBins) -> dict[str, int]:
    lookup = dict.fromkeys(bins.vocabulary, bins.other_slot)
    lookup.update({category: slot for slot, category in enumerate(bins.categories)})
    return lookup


def relayout_counts(
    counts: npt.NDArray[Any],
    old: ModelLayout,
    new: ModelLayout,
    keep: Sequence[int],
) -> npt.NDArray[Any]:
    """Count matrices (`[..., F, W_old]`) of `old` re-laid out for `new` (`[..., F, W_new]`).

    Rows in `keep` must have the same bins in both layouts: their value slots, MISSING and
    INVALID counts are copied. Every other row (a feature whose bins changed) is zero.
    """
    out = np.zeros((*counts.shape[:-1], new.width), dtype=counts.dtype)
    for row in keep:
        slots = int(old.value_slots[row])
        if slots != int(new.value_slots[row]):
            raise ValueError(f"row {row} has different bins in the two layouts")
        out[..., row, :slots] = counts[..., row, :slots]
        out[..., row, new.missing_col] = counts[..., row, old.missing_col]
        out[..., row, new.invalid_col] = counts[..., row, old.invalid_col]
    return out
