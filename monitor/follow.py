"""Which model versions carry a model's current window (for `reference.follow_model_version`).

`VersionShares` counts the accepted events of each model version per window bucket and
answers, for the current window [head - n + 1, head], the share of each version:

    share(v) = events of v in the window / events in the window

Events without a version count under "". The version of an event is the version of its
decoded slice (`ModelColumns.model_version`: the last non-empty version among the slice's
records, monitor/decode.py), so a slice that mixes versions is attributed to one of them;
a stream that switches versions moves the shares within one slice of the switch.

Bounded: buckets older than the window are dropped on every `shares` call, and at most
`max_versions` versions are kept (the one seen longest ago is dropped first). Pure.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import numpy.typing as npt

MAX_VERSIONS = 16
FOLLOW_SHARE = 0.5
"""A version whose share of the current window reaches this is followed."""


class VersionShares:
    """Events per version per bucket over the current window (see the module doc)."""

    def __init__(self, max_versions: int = MAX_VERSIONS) -> None:
        self._counts: dict[str, defaultdict[int, int]] = {}
        self._last: dict[str, int] = {}
        self._max = max_versions

    def add(self, version: str, buckets: npt.NDArray[np.int64]) -> None:
        """Count events of `version` in the given window buckets (one entry per event)."""
        if buckets.size == 0:
            return
        per_bucket = self._counts.get(version)
        if per_bucket is None:
            if len(self._counts) >= self._max:
                oldest = min(self._last, key=self._last.__getitem__)
                del self._counts[oldest], self._last[oldest]
            per_bucket = self._counts[version] = defaultdict(int)
        distinct, counts = np.unique(buckets, return_counts=True)
        for bucket, count in zip(distinct.tolist(), counts.tolist(), strict=True):
            per_bucket[int(bucket)] += int(count)
        self._last[version] = max(self._last.get(version, int(distinct[-1])), int(distinct[-1]))

    @property
    def newest_bucket(self) -> int | None:
        """The newest bucket any version was counted in (None before the first event)."""
        return max(self._last.values(), default=None)

    def shares(self, first_bucket: int) -> dict[str, float]:
        """Each version's share of the events in buckets >= `first_bucket` (older ones are
        forgotten); versions without events there are left out."""
        totals: dict[str, int] = {}
        for version in list(self._counts):
            per_bucket = self._counts[version]
            for bucket in [b for b in per_bucket if b < first_bucket]:
                del per_bucket[bucket]
            if not per_bucket:
                del self._counts[version], self._last[version]
                continue
            totals[version] = sum(per_bucket.values())
        everything = sum(totals.values())
        return {v: n / everything for v, n in totals.items()} if everything else {}


def dominant(
    shares: dict[str, float], threshold: float = FOLLOW_SHARE, current: str = ""
) -> str | None:
    """The version whose share reaches `threshold` (None when none does; "" never counts).

    Two versions can both hold exactly half: then `current` stays if it is one of them,
    else the first of them wins.
    """
    reached = [v for v, share in shares.items() if v and share >= threshold]
    if current in reached:
        return current
    return max(reached, key=shares.__getitem__, default=None)
