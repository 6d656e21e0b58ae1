"""The contributor side of the fleet: per owned partition, the counts not yet committed (pure).

A replica counts the events of each source partition it owns separately, between commits:
per model a few dense count matrices keyed by bucket (the dirty buckets) and the largest
event time among them. `commit(source)` turns what was counted in `[from_offset,
to_offset)` into the records of one commit (docs/fleet.md), one increment per model and
reference id the events were binned with (the active reference and each pre-warm shadow's),
and starts the next range at
`to_offset`; nothing counted here reaches a global window until its commit is folded back
from the state topic, by this replica and every other (`monitor.fleet`). A partition is
owned from the moment the fold accepts this replica's claim (`own`, at the claim's start
offset) until it is revoked (`drop`, after a last commit) or the replica dies (then its
uncommitted counts die with it, and the next owner re-reads from the chain head).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from monitor.fleet_records import (
    DEFAULT_CHUNK_BYTES,
    LAGGING_PREFIX,
    encode_commit,
    model_increment,
)
from monitor.schema_change import Row
from monitor.window import AddResult, BucketRing, EventTimeWindow, FloatArray


@dataclass(slots=True)
class _ModelPart:
    shape: tuple[int, int]
    reference_id: str
    rows: tuple[Row, ...] = ()
    watermark: float = -np.inf
    buckets: dict[int, npt.NDArray[np.int64]] = field(default_factory=dict)


@dataclass(slots=True)
class Owned:
    """One owned source partition: its epoch and the offsets `[from_offset, to_offset)`
    counted since the last commit."""

    epoch: int
    from_offset: int | None
    to_offset: int | None
    models: dict[tuple[str, str], _ModelPart] = field(default_factory=dict)


class Contributor:
    """The owned partitions of one replica (`member`) and their uncommitted counts."""

    def __init__(self, member: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.member = member
        self.chunk_bytes = chunk_bytes
        self.owned: dict[str, Owned] = {}

    def own(self, source: str, epoch: int, start: int | None) -> None:
        """Own `source` under `epoch`, counting from `start` (None: the first offset read)."""
        self.owned[source] = Owned(epoch, start, start)

    def drop(self, source: str) -> None:
        """Forget a partition (revoked, after its last commit) and its uncommitted counts."""
        self.owned.pop(source, None)

    def add(
        self,
        source: str,
        model: str,
        bucket: int,
        counts: npt.NDArray[np.integer],
        event_time: float,
        reference_id: str = "",
        rows: tuple[Row, ...] = (),
    ) -> None:
        """Count events of an owned partition: `counts` (binned with `reference_id`'s edges,
        one row per item of `rows`) in `bucket`, the newest at `event_time`.

        Counts of a partition this replica does not own are ignored (the caller filters them
        out first; a record read between revoke and drop is never committed).
        """
        owned = self.owned.get(source)
        if owned is None:
            return
        shape = (int(counts.shape[0]), int(counts.shape[1]))
        key = (model, reference_id)
        part = owned.models.get(key)
        if part is None or part.shape != shape or part.rows != rows:
            part = owned.models[key] = _ModelPart(shape, reference_id, rows)
        held = part.buckets.get(bucket)
        if held is None:
            part.buckets[bucket] = np.asarray(counts, dtype=np.int64).copy()
        else:
            held += counts
        part.watermark = max(part.watermark, float(event_time))

    def consumed(self, source: str, next_offset: int) -> None:
        """Every record of `source` before `next_offset` has been counted (after `start_at`
        when the partition has no chain yet)."""
        owned = self.owned.get(source)
        if owned is None or owned.from_offset is None:
            return
        if owned.to_offset is None or next_offset > owned.to_offset:
            owned.to_offset = next_offset

    def start_at(self, source: str, offset: int) -> None:
        """Set the first offset of a partition owned from the reset position (no chain yet)."""
        owned = self.owned.get(source)
        if owned is not None and owned.from_offset is None:
            owned.from_offset = owned.to_offset = offset

    def prepare(self, source: str) -> tuple[list[tuple[bytes, bytes]], int]:
        """The records of a commit of everything counted since the last one ([] if nothing
        new was read) and the offset it ends at; nothing changes until `confirm`."""
        owned = self.owned.get(source)
        if owned is None or owned.from_offset is None or owned.to_offset is None:
            return [], -1
        if owned.to_offset <= owned.from_offset:
            return [], owned.to_offset
        increments = [
            model_increment(
                name, part.shape, part.watermark, part.buckets, part.reference_id, part.rows
            )
            for (name, _), part in sorted(owned.models.items())
            if part.buckets
        ]
        records = encode_commit(
            source,
            owned.epoch,
            self.member,
            owned.from_offset,
            owned.to_offset,
            increments,
            self.chunk_bytes,
        )
        return records, owned.to_offset

    def confirm(self, source: str, to_offset: int) -> None:
        """The commit `prepare` made, ending at `to_offset`, is written: the next range starts
        there and the counts it carried are forgotten."""
        owned = self.owned.get(source)
        if owned is not None and owned.to_offset == to_offset:
            owned.from_offset = to_offset
            owned.models.clear()

    def commit(self, source: str) -> list[tuple[bytes, bytes]]:
        """`prepare` then `confirm`: the records of the commit, taken as written."""
        records, to_offset = self.prepare(source)
        if records:
            self.confirm(source, to_offset)
        return records


def admit_against(window: EventTimeWindow, times: FloatArray, now: float | None) -> AddResult:
    """`window.admit(times)` without changing `window`: the contributor's admission.

    The watermark judged against is max(the global watermark, the batch's newest event that is
    not too early); too_early is `t > now + max_future_seconds` (`now` None: never). Events
    older than that watermark's window start minus the allowed lateness are too late, the
    ones within the lateness are `outside`. The global window itself only moves when commits
    are folded back from the state topic.
    """
    times = np.asarray(times, dtype=np.float64)
    n_events = times.size
    early = np.zeros(n_events, dtype=bool)
    if now is not None and math.isfinite(window.max_future_seconds):
        early = times > now + window.max_future_seconds
    candidates = ~early
    mark = window.watermark
    if candidates.any():
        newest = float(times[candidates].max())
        mark = newest if mark is None else max(mark, newest)
    none = np.zeros(n_events, dtype=bool)
    if mark is None:
        return AddResult(none, 0, int(early.sum()), early, none)
    head = int(window.ring.bucket_of(np.asarray([mark]))[0])
    first = head - window.n_buckets + 1
    buckets = window.ring.bucket_of(times)
    late = candidates & (buckets < first - window.lateness_buckets)
    accepted = candidates & ~late
    return AddResult(
        accepted, int(late.sum()), int(early.sum()), early, accepted & (buckets < first)
    )


class ContributionTap:
    """A `window.CountTarget` for `ModelRuntime.tap` (or a shadow's): admits against the
    global ring of `reference_id` (`admit_against`, nothing changes) and adds the counts to
    `contributor` under the source partition being ingested (`source`, set by the caller
    before each slice), `reference_id` (the ring's name, `fleet_records.ring_key`) and the
    matrix's `rows`."""

    def __init__(
        self,
        model: str,
        window: EventTimeWindow,
        contributor: Contributor,
        clock: Callable[[], float] | None = None,
        reference_id: str = "",
        rows: tuple[Row, ...] = (),
    ) -> None:
        self.model = model
        self.reference_id = reference_id
        self.rows = rows
        self.window = window
        self.contributor = contributor
        self.source = ""
        self._clock = clock
        self._newest = -math.inf

    @property
    def ring(self) -> BucketRing:
        """The global window's ring (its bucket width is what `count_batch` needs)."""
        return self.window.ring

    @property
    def watermark(self) -> float | None:
        """The global window's watermark."""
        return self.window.watermark

    @property
    def newest(self) -> float:
        """The newest event time this tap admitted (-inf before any)."""
        return self._newest

    def admit(self, times: FloatArray) -> AddResult:
        """Admission against the global window; remembers the newest admitted event time."""
        result = admit_against(self.window, times, None if self._clock is None else self._clock())
        if result.accepted.any():
            self._newest = float(np.asarray(times, dtype=np.float64)[result.accepted].max())
        return result

    def holds(self, bucket: int) -> bool:
        """Always: a contribution is counted at once (never deferred), and the fold applies
        the global window's ring rules when it folds the commit."""
        return True

    def add_counts(self, bucket: int, counts: npt.NDArray[np.integer]) -> None:
        """Count admitted events of the current source partition (uncommitted until published)."""
        self.contributor.add(
            self.source, self.model, bucket, counts, self._newest, self.reference_id, self.rows
        )


class LaggingTap:
    """`count_batch`'s lagging target in a fleet (a `window.LaggingTarget`): the hour counts
    of the events `tap` admitted go to its contributor under the same source partition and
    the reference id `LAGGING_PREFIX + tap.reference_id`; nothing moves locally, and the fold
    applies the lagging ring's rules (`ring`: the global lagging ring, for its hour width)."""

    def __init__(self, tap: ContributionTap, ring: EventTimeWindow) -> None:
        self.tap = tap
        self.window = ring

    @property
    def ring(self) -> BucketRing:
        """The global lagging ring's buckets (hourly)."""
        return self.window.ring

    def advance(self, watermark: float | None) -> None:
        """Nothing: the global lagging ring moves only when commits are folded."""

    def add_counts(self, event_time: float, counts: npt.NDArray[np.integer]) -> None:
        """Count admitted events of one hour (that of `event_time`), uncommitted until published."""
        tap = self.tap
        bucket = int(self.ring.bucket_of(np.asarray([event_time]))[0])
        tap.contributor.add(
            tap.source,
            tap.model,
            bucket,
            counts,
            tap.newest,
            LAGGING_PREFIX + tap.reference_id,
            tap.rows,
        )
