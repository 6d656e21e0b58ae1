"""Per-feature carry-over of window counts when a model's features or their bins change.

A model's count matrices have one row per feature (monitor.histogram). When the configured
features change (a restart with a new config, a SIGHUP reload, a new `file` reference), the
rows of the old matrices are re-laid out for the new layout *by feature name*:

- every row is described by a `Row`: the feature's name, a digest of its bins and the
  number of value slots. The digest is `""` for a row without a reference (placeholder bins:
  its counts mean nothing and are never carried);
- a row of the new layout takes over the old row of the same name when both digests are
  equal and not empty: its value slots, its MISSING and its INVALID column are copied, so
  the feature's current window (and rolling reference ring) is exactly what it was;
- every other new row (an added feature, a feature whose kind or bins changed) starts at 0,
  and an old row without a new one (a removed feature) is dropped.

The digest covers everything that decides which slot a value lands in: the kind, and the
numeric edges (their float64 bytes) or the top-K categories and the reference vocabulary
(which decides OTHER versus UNSEEN). Two features with the same digest bin every value
identically, so their counts are interchangeable bit for bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from monitor.histogram import CategoricalBins, ModelLayout, NumericBins


class Row(NamedTuple):
    """One row of a count matrix: feature name, bins digest ("" = no reference), value slots."""

    name: str
    digest: str
    slots: int


def bins_digest(bins: NumericBins | CategoricalBins) -> str:
    """A short hash of the bins: kind + edges bytes, or kind + top-K + sorted vocabulary."""
    digest = hashlib.sha256()
    if isinstance(bins, NumericBins):
        digest.update(b"numeric\x00")
        digest.update(np.ascontiguousarray(bins.edges, dtype="<f8").tobytes())
    else:
        digest.update(b"categorical\x00")
        for part in (bins.categories, ("\x01",), sorted(bins.vocabulary)):
            for category in part:
                digest.update(category.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()[:24]


def layout_rows(layout: ModelLayout, fitted: Collection[str]) -> tuple[Row, ...]:
    """The rows of `layout` in order; a feature not in `fitted` gets digest "" (no reference)."""
    bins: list[NumericBins | CategoricalBins] = [*layout.numeric_bins, *layout.categorical_bins]
    return tuple(
        Row(name, bins_digest(b) if name in fitted else "", int(slots))
        for name, b, slots in zip(layout.names, bins, layout.value_slots.tolist(), strict=True)
    )


def rows_to_meta(rows: Sequence[Row]) -> list[list[Any]]:
    """`rows` as JSON-able lists (the checkpoint's `rows` metadata)."""
    return [[r.name, r.digest, r.slots] for r in rows]


def rows_from_meta(data: object) -> tuple[Row, ...]:
    """Rows written by `rows_to_meta`; ValueError when `data` is not such a list."""
    if not isinstance(data, list):
        raise ValueError("checkpointed rows are not a list")
    rows: list[Row] = []
    for item in data:
        if not isinstance(item, list) or len(item) != 3:
            raise ValueError(f"checkpointed row {item!r} is not [name, digest, slots]")
        name, digest, slots = item
        if not isinstance(name, str) or not isinstance(digest, str) or not isinstance(slots, int):
            raise ValueError(f"checkpointed row {item!r} has the wrong types")
        rows.append(Row(name, digest, slots))
    return tuple(rows)


def carried(old: Sequence[Row], new: Sequence[Row]) -> list[tuple[int, int]]:
    """(old row, new row) index pairs whose counts carry over (same name, same non-empty digest)."""
    by_name = {row.name: i for i, row in enumerate(old)}
    pairs: list[tuple[int, int]] = []
    for j, row in enumerate(new):
        i = by_name.get(row.name)
        if i is not None and row.digest and old[i].digest == row.digest:
            if old[i].slots != row.slots:
                raise ValueError(f"feature {row.name!r}: equal bins with different slot counts")
            pairs.append((i, j))
    return pairs


def carry_counts(
    counts: npt.NDArray[Any],
    old: Sequence[Row],
    new: Sequence[Row],
    new_width: int,
) -> npt.NDArray[Any]:
    """Count matrices `[..., len(old), W_old]` re-laid out as `[..., len(new), new_width]`.

    Carried rows (see `carried`) copy their value slots, MISSING (column W-2) and INVALID
    (column W-1); every other row is zero. ValueError when `counts` does not have `len(old)`
    rows or a carried row does not fit the old width.
    """
    counts = np.asarray(counts)
    if counts.ndim < 2 or counts.shape[-2] != len(old):
        raise ValueError(f"counts of shape {counts.shape} do not have {len(old)} feature rows")
    old_width = int(counts.shape[-1])
    out = np.zeros((*counts.shape[:-2], len(new), new_width), dtype=counts.dtype)
    for i, j in carried(old, new):
        slots = new[j].slots
        if slots > old_width - 2 or slots > new_width - 2:
            raise ValueError(f"feature {new[j].name!r} has more slots than the matrix is wide")
        out[..., j, :slots] = counts[..., i, :slots]
        out[..., j, new_width - 2] = counts[..., i, old_width - 2]
        out[..., j, new_width - 1] = counts[..., i, old_width - 1]
    return out
