"""A reference's slices per segment: which segments exist and each one's reference counts.

A model with `segment_by: FIELD` splits its events by the string value of FIELD. The
segments are the `max_segments` most frequent values of the reference (count descending,
ties by name) plus OTHER (`OTHER_SEGMENT`), which takes every other value: values the
reference saw less often or never, values that cannot be a label (longer than
MAX_SEGMENT_CHARS, or with a control character), and events whose field is absent, null or
not a string (these are also counted as *unassigned*, README "Segments").

Every segment is binned in the model's own frozen bins (the edges and top-K categories fitted
on the whole reference), so the segments of a feature partition its reference counts exactly:
summed over the segments, a feature's slice counts equal its profile counts, and the daemon's
whole-model window is the sum of its segment windows. `SegmentSlices` is the part of a
reference profile (`reference fit --segment-by`, or a warm-up) that records them; the JSON
form is `slices_to_json` / `slices_from_json`, which validates everything it reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from monitor.errors import ReferenceDataError
from monitor.histogram import INVALID_CATEGORY_PREFIX, CategoricalBins, ModelLayout, NumericBins

OTHER_SEGMENT: Final = "__other__"
"""The `segment` label value of every event outside the top reference segments."""

DEFAULT_MAX_SEGMENTS: Final = 10
"""Segments per model unless `max_segments` says otherwise."""

MAX_SEGMENTS: Final = 100
"""Largest `max_segments` (and segment names a profile may hold): it bounds a label set."""

MAX_SEGMENT_CHARS: Final = 128
"""Longest segment value kept as a segment; a longer reference value goes to OTHER."""

ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class SegmentSlices:
    """Segment names (most frequent first; OTHER implicit last) and per-feature slice counts.

    `features` maps a feature name to one count tuple per segment (len(names) + 1, OTHER
    last), each in the feature's profile slot layout (value slots, missing, invalid).
    `events` is the number of reference events per segment (OTHER last).
    """

    field: str
    names: tuple[str, ...]
    events: tuple[int, ...]
    features: tuple[tuple[str, tuple[tuple[int, ...], ...]], ...]

    def of(self, feature: str) -> tuple[tuple[int, ...], ...] | None:
        """The named feature's per-segment counts, if the slices hold it."""
        for name, counts in self.features:
            if name == feature:
                return counts
        return None


def _is_segment_value(value: object) -> bool:
    return (
        isinstance(value, str)
        and value != OTHER_SEGMENT
        and 0 < len(value) <= MAX_SEGMENT_CHARS
        and value.isprintable()
        and not value.startswith(INVALID_CATEGORY_PREFIX)
    )


def top_segments(column: Sequence[object] | ObjectArray, max_segments: int) -> tuple[str, ...]:
    """The `max_segments` most frequent usable values of a column (count desc, then name)."""
    tally = Counter(v for v in np.asarray(column, dtype=object).tolist() if _is_segment_value(v))
    ranked = sorted(tally.items(), key=lambda item: (-item[1], item[0]))
    return tuple(name for name, _ in ranked[:max_segments])


class SegmentCoder:
    """Maps a column of segment values to segment codes: 0..S-1 for the named, S for OTHER."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.other = len(self.names)
        self._lookup: dict[object, int] = {name: i for i, name in enumerate(self.names)}

    @property
    def labels(self) -> tuple[str, ...]:
        """The segment label values in code order (OTHER last)."""
        return (*self.names, OTHER_SEGMENT)

    def codes(self, column: ObjectArray) -> IntArray:
        """Code of every value (one C-level dict lookup per value; None and the rest: OTHER)."""
        values = column.tolist()
        return np.fromiter(
            map(self._lookup.get, values, repeat(self.other)), dtype=np.int64, count=len(values)
        )

    @staticmethod
    def unassigned(column: ObjectArray, codes: IntArray, other: int) -> int:
        """Events whose segment value is absent, null or not a string (the decoder's marker)."""
        rest = column[codes == other]
        if rest.size == 0:
            return 0
        tally = Counter(rest.tolist())
        return sum(
            n
            for value, n in tally.items()
            if value is None
            or (isinstance(value, str) and value.startswith(INVALID_CATEGORY_PREFIX))
        )


def fit_slices(
    field: str,
    names: Sequence[str],
    bins: Sequence[tuple[str, NumericBins | CategoricalBins]],
    numeric: Mapping[str, npt.ArrayLike],
    categorical: Mapping[str, Sequence[object] | ObjectArray],
    segment_column: Sequence[object] | ObjectArray,
) -> SegmentSlices:
    """Count each feature's reference values per segment in the feature's frozen `bins`.

    The columns and `segment_column` hold the same events in the same order; a feature
    without a column is left out (it is then never tested per segment).
    """
    coder = SegmentCoder(names)
    codes = coder.codes(np.asarray(segment_column, dtype=object))
    groups = len(names) + 1
    events = np.bincount(codes, minlength=groups)
    features: list[tuple[str, tuple[tuple[int, ...], ...]]] = []
    for name, feature_bins in bins:
        if isinstance(feature_bins, NumericBins):
            if name not in numeric:
                continue
            layout = ModelLayout([(name, feature_bins)], [])
            matrix = np.asarray(numeric[name], dtype=np.float64)[None, :]
            columns: list[ObjectArray] = []
        else:
            if name not in categorical:
                continue
            layout = ModelLayout([], [(name, feature_bins)])
            columns = [np.asarray(categorical[name], dtype=object)]
            matrix = np.empty((0, columns[0].size))
        if matrix.shape[1] != codes.size:
            raise ReferenceDataError(f"feature {name!r}: column and segment field differ in length")
        slots = feature_bins.value_slots
        per_segment = []
        for k in range(groups):
            idx = np.flatnonzero(codes == k)
            row = layout.count(matrix[:, idx], [c[idx] for c in columns])[0]
            per_segment.append(
                (*(int(v) for v in row[:slots].tolist()), int(row[-2]), int(row[-1]))
            )
        features.append((name, tuple(per_segment)))
    return SegmentSlices(
        field, tuple(names), tuple(int(e) for e in events.tolist()), tuple(features)
    )


def slices_to_json(slices: SegmentSlices) -> dict[str, Any]:
    """The profile's `segments` object (see `slices_from_json`)."""
    return {
        "field": slices.field,
        "names": list(slices.names),
        "events": list(slices.events),
        "features": {name: [list(c) for c in counts] for name, counts in slices.features},
    }


def slices_from_json(data: object, feature_counts: Mapping[str, tuple[int, ...]]) -> SegmentSlices:
    """Parse and validate a profile's `segments` object; ReferenceDataError names the defect.

    Checks: a non-empty field; at most MAX_SEGMENTS distinct usable names; one event count
    per segment; every feature is one of the profile's (`feature_counts`, name -> counts) and
    has one non-negative integer count list per segment of the profile's length, and its
    segments sum to the profile's counts exactly.
    """
    where = "segments"
    if not isinstance(data, dict):
        raise ReferenceDataError(f"{where} must be an object")
    field = data.get("field")
    names = data.get("names")
    events = data.get("events")
    features = data.get("features")
    if not isinstance(field, str) or not field:
        raise ReferenceDataError(f"{where}.field must be a non-empty string")
    if (
        not isinstance(names, list)
        or len(names) > MAX_SEGMENTS
        or not all(_is_segment_value(n) for n in names)
        or len(set(names)) != len(names)
    ):
        raise ReferenceDataError(
            f"{where}.names must be at most {MAX_SEGMENTS} distinct segment values"
        )
    groups = len(names) + 1
    if not _count_list(events, groups):
        raise ReferenceDataError(f"{where}.events must be {groups} non-negative integers")
    if not isinstance(features, dict):
        raise ReferenceDataError(f"{where}.features must be an object")
    parsed: list[tuple[str, tuple[tuple[int, ...], ...]]] = []
    for name, counts in features.items():
        total = feature_counts.get(name)
        if total is None:
            raise ReferenceDataError(f"{where}: feature {name!r} is not in the profile")
        if not isinstance(counts, list) or len(counts) != groups:
            raise ReferenceDataError(f"{where}: feature {name!r} needs {groups} count lists")
        if not all(_count_list(c, len(total)) for c in counts):
            raise ReferenceDataError(
                f"{where}: feature {name!r}: each segment needs {len(total)} non-negative integers"
            )
        if [sum(column) for column in zip(*counts, strict=True)] != list(total):
            raise ReferenceDataError(
                f"{where}: feature {name!r}: the segments do not sum to the profile's counts"
            )
        parsed.append((name, tuple(tuple(c) for c in counts)))
    assert isinstance(events, list)
    return SegmentSlices(field, tuple(names), tuple(events), tuple(parsed))


def _count_list(value: object, length: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == length
        and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value)
    )
