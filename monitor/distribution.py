"""The picture behind a drift decision: each window's shares over a few bins, and which to show.

Bins are fixed by the reference, the same for both windows:

- numeric: "(below)" (the underflow slot: values under the reference minimum), the 10
  reference-decile groups the PSI uses ("p0-10" ... "p90-100": the fine slots grouped by
  `monitor.stats.decile_groups`), "(above)" (the overflow slot), "(missing)";
- categorical: the first min(K, MAX_CATEGORIES) top-K reference categories in reference order
  (names cut to MAX_NAME characters), "(other)" (the rest of the reference vocabulary,
  including top categories past the cap), "(unseen)" (not in the reference vocabulary),
  "(missing)".

For a window with counts c_b per bin, share_b = c_b / sum_b c_b: the denominator is the
window's valid plus missing values (invalid values are left out), so the shares sum to 1 and
"(missing)" equals the feature's missing ratio. An empty window has no shares (None).

Bin names never come from event payloads: the numeric names are constants and the
categorical ones are reference categories (at most MAX_CATEGORIES per feature); a category
outside the reference lands in "(unseen)".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Final

import numpy as np
import numpy.typing as npt

from monitor.histogram import CountMatrix, ModelLayout
from monitor.model import (
    Distribution,
    DistributionExport,
    DistributionPolicy,
    FeatureResult,
    ModelEvaluation,
)

__all__ = [
    "MAX_CATEGORIES",
    "NUMERIC_BINS",
    "DistributionBins",
    "PictureShares",
    "drift_order",
    "exported_features",
]

MAX_CATEGORIES: Final = 20
MAX_NAME: Final = 40
PSI_GROUPS: Final = 10
NUMERIC_BINS: Final = (
    "(below)",
    *(f"p{10 * g}-{10 * (g + 1)}" for g in range(PSI_GROUPS)),
    "(above)",
    "(missing)",
)
_ABOVE: Final = PSI_GROUPS + 1
_MISSING: Final = PSI_GROUPS + 2

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class DistributionBins:
    """Bin names of every feature of a layout and the map from count-matrix slots to bins.

    Built once per layout. A slot that belongs to no bin (padding, INVALID) maps to a last
    "discard" bin that is summed and dropped.
    """

    def __init__(self, layout: ModelLayout) -> None:
        self.layout = layout
        n_num = layout.n_numeric
        names: list[tuple[str, ...]] = [NUMERIC_BINS] * n_num
        for bins in layout.categorical_bins:
            top = tuple(_short(c) for c in bins.categories[:MAX_CATEGORIES])
            names.append((*top, "(other)", "(unseen)", "(missing)"))
        self.names: tuple[tuple[str, ...], ...] = tuple(names)
        self.width = max(len(n) for n in self.names) + 1
        self._discard = self.width - 1
        base = np.full((layout.n_features, layout.width), self._discard, dtype=np.int64)
        for offset, bins in enumerate(layout.categorical_bins):
            row = base[n_num + offset]
            k = len(bins.categories)
            shown = min(k, MAX_CATEGORIES)
            row[:shown] = np.arange(shown)
            row[shown:k] = shown
            row[bins.other_slot] = shown
            row[bins.unseen_slot] = shown + 1
            row[layout.missing_col] = shown + 2
        self._base = base

    def slot_map(self, groups: IntArray | None) -> IntArray:
        """Bin of every (feature, slot); `groups` are the PSI decile groups of the numeric rows.

        Numeric rows: slot 0 -> "(below)", the overflow slot -> "(above)", an interior slot s
        -> decile group groups[f, s] (bin 1 + group), MISSING -> "(missing)".
        """
        layout = self.layout
        n_num = layout.n_numeric
        mapping = self._base.copy()
        if n_num == 0:
            return mapping
        if groups is None:
            raise ValueError("numeric features need their PSI decile groups")
        value_cols = layout.width - 2
        over = layout.value_slots[:n_num] - 1
        columns = np.arange(value_cols)
        interior = (columns >= 1) & (columns < over[:, None])
        numeric = mapping[:n_num]
        numeric[:, :value_cols] = np.where(interior, groups[:, :value_cols] + 1, self._discard)
        numeric[:, 0] = 0
        numeric[np.arange(n_num), over] = _ABOVE
        numeric[:, layout.missing_col] = _MISSING
        return mapping

    def shares(self, counts: CountMatrix, mapping: IntArray) -> FloatArray:
        """float64[F, width - 1]: each row's bin counts over their sum (NaN for an empty row)."""
        n_features = counts.shape[0]
        flat = mapping + (np.arange(n_features, dtype=np.int64) * self.width)[:, None]
        summed = np.bincount(
            flat.ravel(),
            weights=np.asarray(counts, dtype=np.float64).ravel(),
            minlength=n_features * self.width,
        ).reshape(n_features, self.width)[:, : self._discard]
        totals = summed.sum(axis=1)
        out = np.full(summed.shape, np.nan)
        np.divide(summed, totals[:, None], out=out, where=totals[:, None] > 0)
        return out

    def distributions(
        self, reference: CountMatrix, current: CountMatrix, groups: IntArray | None
    ) -> tuple[Distribution, ...]:
        """One `Distribution` per feature, in layout order (see the module docstring).

        The pictures are deferred: the shares of every feature are computed together on the
        first read of any picture (`PictureShares`), from copies of the counts taken now.
        """
        source = PictureShares(self, reference, current, groups)
        n_features = len(self.names)
        return tuple(map(Distribution.deferred, self.names, repeat(source), range(n_features)))


class PictureShares:
    """The shares of every feature's picture of one evaluation, computed on first use.

    Holds copies of both count matrices (the windows move on after the evaluation); the
    first `shares(row)` call computes both share matrices (`DistributionBins.shares`) and
    keeps them as lists, later calls only slice a row. Safe to read from several threads:
    a race computes the same matrices twice and keeps one.
    """

    def __init__(
        self,
        bins: DistributionBins,
        reference: CountMatrix,
        current: CountMatrix,
        groups: IntArray | None,
    ) -> None:
        self._bins = bins
        self._reference = np.array(reference, dtype=np.int64)
        self._current = np.array(current, dtype=np.int64)
        self._groups = None if groups is None else np.array(groups, dtype=np.int64)
        self._rows: tuple[list[list[float]], list[list[float]]] | None = None

    def shares(self, row: int) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
        """Row `row`'s (reference, current) shares over its bins (None: an empty window)."""
        rows = self._rows
        if rows is None:
            mapping = self._bins.slot_map(self._groups)
            rows = (
                self._bins.shares(self._reference, mapping).tolist(),
                self._bins.shares(self._current, mapping).tolist(),
            )
            self._rows = rows
        n_bins = len(self._bins.names[row])
        return _window(rows[0][row], n_bins), _window(rows[1][row], n_bins)


def _short(category: str) -> str:
    """A category cut to MAX_NAME characters (the last one "…" when cut)."""
    return category if len(category) <= MAX_NAME else category[: MAX_NAME - 1] + "…"


def _window(row: list[float], n_bins: int) -> tuple[float, ...] | None:
    values = row[:n_bins]
    return None if values[0] != values[0] else tuple(values)  # NaN: an empty window


def _drift_key(feature: FeatureResult) -> tuple[int, int, float, str]:
    psi = feature.psi
    return (
        0 if feature.drift_detected else 1,
        0 if psi is not None else 1,
        -(psi or 0.0),
        feature.name,
    )


def drift_order(features: Iterable[FeatureResult]) -> list[FeatureResult]:
    """Features by drift: flagged first, then by PSI descending (no PSI last), then by name."""
    return sorted(features, key=_drift_key)


def exported_features(
    evaluation: ModelEvaluation, policy: DistributionPolicy
) -> Sequence[FeatureResult]:
    """The features of `evaluation` whose distribution series are exported under `policy`.

    `all`: every feature that has a distribution. `none`: no feature. `drifting`: in
    `drift_order`, the first min(limit, flagged + top) features that have a distribution,
    so the count never exceeds `policy.limit`.
    """
    if policy.mode is DistributionExport.NONE:
        return ()
    candidates = [f for f in evaluation.features if f.distribution is not None]
    if policy.mode is DistributionExport.ALL:
        return candidates
    flagged = sum(1 for f in candidates if f.drift_detected)
    return drift_order(candidates)[: min(policy.limit, flagged + policy.top)]
