"""Event-time windows built from a ring of integer sub-histograms (numpy only).

Time is cut into buckets of `bucket_seconds`; an event at time t belongs to bucket
b = floor(t / bucket_seconds). A ring keeps one count matrix per recent bucket. The
*watermark* is the largest event time seen; with h = bucket(watermark) the current window
is buckets [h - n + 1, h] (n = length / bucket), kept as a running integer sum that is
updated on every add and every eviction (integer arithmetic: exact, bit for bit).

Late and early events (docs/architecture.md, Statistics):
- too_late: bucket < h - n + 1 - L with L = ceil(allowed_lateness / bucket): dropped,
  counted.
- outside_window: h - n + 1 - L <= bucket < h - n + 1, i.e. within the allowed lateness but
  older than the current window's first bucket: kept in the ring and admitted (a rolling
  reference's lagging hours count them) but never part of any current window, so they are
  reported separately (`AddResult.outside`), not as accepted into the current window.
- too_early: t > clock() + max_future_seconds: dropped, counted (clock injected).
Replaying history works because the window follows event time, not the wall clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from monitor.histogram import ModelLayout

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
EMPTY_BUCKET = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class AddResult:
    """What happened to a batch: per-event admission, the drop counts and the early mask.

    An event that is neither accepted nor early was too late. `outside` marks the accepted
    events that are older than the current window's first bucket (see the module docstring).
    """

    accepted: npt.NDArray[np.bool_]
    too_late: int
    too_early: int
    early: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    outside: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def n_accepted(self) -> int:
        """Number of events that were added."""
        return int(self.accepted.sum())


class BucketRing:
    """`n_slots` count matrices keyed by absolute bucket index; slot = bucket mod n_slots."""

    def __init__(
        self,
        shape: tuple[int, int],
        bucket_seconds: float,
        n_slots: int,
        dtype: type[np.integer] = np.int32,
    ) -> None:
        if bucket_seconds <= 0 or n_slots < 1:
            raise ValueError("bucket_seconds must be > 0 and n_slots >= 1")
        self.shape = shape
        self.bucket_seconds = float(bucket_seconds)
        self.n_slots = int(n_slots)
        self.counts: npt.NDArray[np.integer] = np.zeros((n_slots, *shape), dtype=dtype)
        self.bucket_ids: IntArray = np.full(n_slots, EMPTY_BUCKET, dtype=np.int64)

    def bucket_of(self, times: FloatArray) -> IntArray:
        """Absolute bucket index floor(t / bucket_seconds) of each time."""
        return np.floor(np.asarray(times, dtype=np.float64) / self.bucket_seconds).astype(np.int64)

    def add(self, bucket: int, counts: npt.NDArray[np.integer]) -> None:
        """Add a count matrix to a bucket, recycling the slot if it held an older bucket."""
        slot = bucket % self.n_slots
        if self.bucket_ids[slot] != bucket:
            self.counts[slot] = 0
            self.bucket_ids[slot] = bucket
        self.counts[slot] += counts.astype(self.counts.dtype, copy=False)

    def get(self, bucket: int) -> npt.NDArray[np.integer] | None:
        """The counts of a bucket if the ring still holds it."""
        slot = bucket % self.n_slots
        return self.counts[slot] if self.bucket_ids[slot] == bucket else None

    def sum_range(self, lo: int, hi: int) -> IntArray:
        """Sum (int64) of the held buckets b with lo <= b <= hi."""
        held = (self.bucket_ids >= lo) & (self.bucket_ids <= hi)
        if not held.any():
            return np.zeros(self.shape, dtype=np.int64)
        return np.asarray(self.counts[held].sum(axis=0, dtype=np.int64), dtype=np.int64)

    def drop_before(self, lo: int) -> None:
        """Forget every bucket older than `lo`."""
        old = (self.bucket_ids < lo) & (self.bucket_ids != EMPTY_BUCKET)
        if old.any():
            self.counts[old] = 0
            self.bucket_ids[old] = EMPTY_BUCKET

    @property
    def nbytes(self) -> int:
        """Memory held by the counts and bucket ids."""
        return int(self.counts.nbytes + self.bucket_ids.nbytes)


def histograms_by_bucket(
    slots: IntArray, buckets: IntArray, width: int
) -> list[tuple[int, IntArray]]:
    """Group a batch by bucket and count each group: [(bucket, int64[F, width])].

    slots: int64[F, N] slot index per feature and event; buckets: int64[N].
    One bincount per distinct bucket in the batch (usually one or two).
    """
    n_features = slots.shape[0]
    offsets = (np.arange(n_features, dtype=np.int64) * width)[:, None]
    flat = slots + offsets
    result: list[tuple[int, IntArray]] = []
    distinct = np.unique(buckets)
    for bucket in distinct.tolist():
        columns = flat if distinct.size == 1 else flat[:, buckets == bucket]
        counts = np.bincount(columns.ravel(), minlength=n_features * width)
        result.append((int(bucket), counts.reshape(n_features, width).astype(np.int64)))
    return result


def _ring_state(ring: BucketRing, watermark: float | None) -> dict[str, npt.NDArray[np.generic]]:
    """A ring and its watermark as checkpoint arrays (NaN: no watermark yet)."""
    return {
        "counts": ring.counts,
        "bucket_ids": ring.bucket_ids,
        "watermark": np.asarray([np.nan if watermark is None else watermark]),
    }


def _restore_ring(
    ring: BucketRing, state: dict[str, npt.NDArray[np.generic]], what: str
) -> float | None:
    """Load `_ring_state` arrays into `ring`; the watermark. ValueError when shapes differ."""
    counts = np.asarray(state["counts"])
    ids = np.asarray(state["bucket_ids"], dtype=np.int64)
    if counts.shape != ring.counts.shape or ids.shape != ring.bucket_ids.shape:
        raise ValueError(
            f"checkpointed {what} shape {counts.shape} does not match {ring.counts.shape}"
        )
    ring.counts[...] = counts
    ring.bucket_ids[...] = ids
    mark = float(np.asarray(state["watermark"], dtype=np.float64)[0])
    return None if math.isnan(mark) else mark


class EventTimeWindow:
    """The current window: the last `length` of event time, as a running sum of buckets."""

    def __init__(
        self,
        shape: tuple[int, int],
        bucket_seconds: float,
        length_seconds: float,
        allowed_lateness_seconds: float = 0.0,
        max_future_seconds: float = math.inf,
        clock: Callable[[], float] | None = None,
    ) -> None:
        n = round(length_seconds / bucket_seconds)
        if n < 1 or not math.isclose(n * bucket_seconds, length_seconds, rel_tol=1e-9):
            raise ValueError("window length must be a whole number of buckets")
        if allowed_lateness_seconds < 0:
            raise ValueError("allowed lateness must be >= 0")
        self.n_buckets = n
        self.lateness_buckets = math.ceil(allowed_lateness_seconds / bucket_seconds)
        self.max_future_seconds = max_future_seconds
        self._clock = clock
        self.ring = BucketRing(shape, bucket_seconds, n + self.lateness_buckets)
        self.total: IntArray = np.zeros(shape, dtype=np.int64)
        self.watermark: float | None = None

    @property
    def head(self) -> int | None:
        """Bucket of the watermark (the newest bucket of the window)."""
        if self.watermark is None:
            return None
        return int(self.ring.bucket_of(np.asarray([self.watermark]))[0])

    @property
    def bucket_seconds(self) -> float:
        """Width of one bucket in seconds."""
        return self.ring.bucket_seconds

    def current(self) -> IntArray:
        """The current window's counts (a copy of the running sum)."""
        return self.total.copy()

    def recompute(self) -> IntArray:
        """The current window summed afresh from the ring (for checks; equals `current()`)."""
        head = self.head
        if head is None:
            return np.zeros_like(self.total)
        return self.ring.sum_range(head - self.n_buckets + 1, head)

    def add(self, slots: IntArray, times: FloatArray) -> AddResult:
        """Add a binned batch (slots int64[F, N] from ModelLayout.bin_batch, times float64[N]).

        Equivalent to `admit(times)`, then `add_counts` of each accepted bucket's histogram.
        """
        result = self.admit(times)
        accepted = result.accepted
        if accepted.any():
            everything = bool(accepted.all())
            buckets = self.ring.bucket_of(np.asarray(times, dtype=np.float64))
            for bucket, counts in histograms_by_bucket(
                slots if everything else slots[:, accepted],
                buckets if everything else buckets[accepted],
                self.total.shape[1],
            ):
                self.add_counts(bucket, counts)
        return result

    def admit(self, times: FloatArray) -> AddResult:
        """Decide which events of a batch the window takes, advancing the watermark first.

        Precondition: times are finite (the decoder guarantees it). too_early is judged
        against the injected clock; the watermark then moves to the newest other event, and
        too_late is judged against the new watermark. Nothing is counted here: the caller
        adds the accepted events' counts per bucket with `add_counts`.
        """
        times = np.asarray(times, dtype=np.float64)
        n_events = times.size
        early = np.zeros(n_events, dtype=bool)
        if self._clock is not None and math.isfinite(self.max_future_seconds):
            early = times > self._clock() + self.max_future_seconds
        candidates = ~early
        if candidates.any():
            self.advance(float(times[candidates].max()))
        head = self.head
        if head is None:
            none = np.zeros(n_events, dtype=bool)
            return AddResult(none, 0, int(early.sum()), early, none)
        first = head - self.n_buckets + 1
        buckets = self.ring.bucket_of(times)
        late = candidates & (buckets < first - self.lateness_buckets)
        accepted = candidates & ~late
        outside = accepted & (buckets < first)
        return AddResult(accepted, int(late.sum()), int(early.sum()), early, outside)

    def holds(self, bucket: int) -> bool:
        """Whether the ring holds `bucket` (at most the watermark's, within length + lateness)."""
        head = self.head
        if head is None:
            return False
        return head - self.n_buckets + 1 - self.lateness_buckets <= bucket <= head

    def add_counts(self, bucket: int, counts: npt.NDArray[np.integer]) -> None:
        """Add the counts of admitted events of one bucket to the ring and the running sum."""
        head = self.head
        if head is None or bucket < head - self.n_buckets + 1 - self.lateness_buckets:
            raise ValueError(f"bucket {bucket} is not held by the window (admit events first)")
        if bucket > head:
            raise ValueError(f"bucket {bucket} is ahead of the watermark's bucket {head}")
        self.ring.add(bucket, counts)
        if bucket >= head - self.n_buckets + 1:
            self.total += counts

    def advance(self, event_time: float) -> None:
        """Move the watermark to max(watermark, event_time) and evict buckets that left."""
        if not math.isfinite(event_time):
            return
        if self.watermark is not None and event_time <= self.watermark:
            return
        old_head = self.head
        self.watermark = event_time
        new_head = self.head
        assert new_head is not None
        if old_head is None or new_head == old_head:
            return
        old_lo = old_head - self.n_buckets + 1
        new_lo = new_head - self.n_buckets + 1
        if new_lo - old_lo >= self.n_buckets:
            self.total[:] = 0
        else:
            for bucket in range(old_lo, new_lo):
                counts = self.ring.get(bucket)
                if counts is not None:
                    self.total -= counts
        self.ring.drop_before(new_lo - self.lateness_buckets)

    def merge(self, other: EventTimeWindow) -> None:
        """Add another window's counts: afterwards this window holds the union of both.

        `other` must have the same shape, bucket width and length. The watermark becomes the
        larger of the two, and `other`'s buckets that this window no longer holds (older than
        length + lateness behind the new watermark) are left out, exactly as their events
        would have been `too_late` here. Counts are integers, so merging is exact and the
        order of merges does not matter.
        """
        if (
            other.ring.counts.shape != self.ring.counts.shape
            or other.bucket_seconds != self.bucket_seconds
            or other.n_buckets != self.n_buckets
        ):
            raise ValueError("only windows of the same shape, bucket and length can be merged")
        self.add_buckets(other.watermark, other.ring.bucket_ids, other.ring.counts)

    def add_buckets(
        self,
        watermark: float | None,
        bucket_ids: IntArray,
        counts: npt.NDArray[np.integer],
    ) -> None:
        """Advance to `watermark`, then add `counts[i]` (this window's shape) to bucket
        `bucket_ids[i]` where this window still holds it; `EMPTY_BUCKET` entries are skipped
        (another window's ring, as `merge` adds it). Nothing happens without a watermark."""
        if watermark is None:
            return
        self.advance(watermark)
        head = self.head
        assert head is not None
        oldest = head - self.n_buckets + 1 - self.lateness_buckets
        for slot, bucket in enumerate(bucket_ids.tolist()):
            if bucket != EMPTY_BUCKET and oldest <= bucket <= head:
                self.add_counts(bucket, counts[slot])

    @property
    def nbytes(self) -> int:
        """Memory of the ring and the running sum."""
        return self.ring.nbytes + int(self.total.nbytes)

    def state(self) -> dict[str, npt.NDArray[np.generic]]:
        """Arrays to checkpoint (the running sum is rebuilt from the ring on restore)."""
        return _ring_state(self.ring, self.watermark)

    def restore(self, state: dict[str, npt.NDArray[np.generic]]) -> None:
        """Load arrays written by `state()`; raises ValueError if the shapes do not match."""
        self.watermark = _restore_ring(self.ring, state, "window")
        self.total = self.recompute()


class LaggingReference:
    """A reference that trails event time: [watermark - lag - length, watermark - lag].

    Keeps a coarser ring (e.g. hourly buckets) covering lag + length, fed with the same
    events as the current window; `reference(watermark)` sums the buckets b with
    bucket(watermark - lag) - length/bucket + 1 <= b <= bucket(watermark - lag).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        bucket_seconds: float,
        lag_seconds: float,
        length_seconds: float,
    ) -> None:
        n_len = round(length_seconds / bucket_seconds)
        if n_len < 1:
            raise ValueError("reference length must be at least one bucket")
        n_lag = math.ceil(lag_seconds / bucket_seconds)
        self.length_buckets = n_len
        self.lag_seconds = float(lag_seconds)
        self.ring = BucketRing(shape, bucket_seconds, n_lag + n_len + 1)
        self.watermark: float | None = None

    def add(self, slots: IntArray, times: FloatArray, accepted: npt.NDArray[np.bool_]) -> None:
        """Add the events the current window accepted."""
        if not accepted.any():
            return
        times = np.asarray(times, dtype=np.float64)[accepted]
        mark = float(times.max())
        if self.watermark is None or mark > self.watermark:
            self.watermark = mark
        head = int(self.ring.bucket_of(np.asarray([self.watermark]))[0])
        oldest = head - self.ring.n_slots + 1
        self.ring.drop_before(oldest)
        buckets = self.ring.bucket_of(times)
        keep = buckets >= oldest
        if not keep.any():
            return
        for bucket, counts in histograms_by_bucket(
            slots[:, accepted][:, keep], buckets[keep], self.ring.shape[1]
        ):
            self.ring.add(bucket, counts)

    def advance(self, watermark: float | None) -> None:
        """Move the watermark forward (the model's watermark) and forget buckets it left."""
        if watermark is None or (self.watermark is not None and watermark <= self.watermark):
            return
        self.watermark = watermark
        head = int(self.ring.bucket_of(np.asarray([watermark]))[0])
        self.ring.drop_before(head - self.ring.n_slots + 1)

    def add_counts(self, event_time: float, counts: npt.NDArray[np.integer]) -> None:
        """Add counts of accepted events that all fall in the hour bucket of `event_time`."""
        self.advance(event_time)
        assert self.watermark is not None
        head = int(self.ring.bucket_of(np.asarray([self.watermark]))[0])
        bucket = int(self.ring.bucket_of(np.asarray([event_time]))[0])
        if bucket >= head - self.ring.n_slots + 1:
            self.ring.add(bucket, counts)

    def state(self) -> dict[str, npt.NDArray[np.generic]]:
        """Arrays to checkpoint: the ring and the watermark."""
        return _ring_state(self.ring, self.watermark)

    def restore(self, state: dict[str, npt.NDArray[np.generic]]) -> None:
        """Load arrays written by `state()`; ValueError (or KeyError) if they do not fit."""
        self.watermark = _restore_ring(self.ring, state, "lagging")

    def reference(self) -> IntArray:
        """The lagging reference's counts at the current watermark (zeros before any event)."""
        if self.watermark is None:
            return np.zeros(self.ring.shape, dtype=np.int64)
        hi = int(self.ring.bucket_of(np.asarray([self.watermark - self.lag_seconds]))[0])
        return self.ring.sum_range(hi - self.length_buckets + 1, hi)

    @property
    def nbytes(self) -> int:
        """Memory of the ring."""
        return self.ring.nbytes


BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]
MAX_BLOCK_CELLS = 1 << 21
"""At most this many count cells (int64, 16 MiB) per `count` call of `count_batch`: a batch
spanning more buckets is counted in runs of consecutive keys."""


class CountFn(Protocol):
    """Counts events of one batch into blocks: int64[n_groups, F, W].

    `select`: the events counted (a mask over the batch; None: all of them). `groups`: the
    block of each counted event, in [0, n_groups) (None: all in block 0, n_groups == 1).
    Block k must equal the counts of the counted events with groups == k.
    """

    def __call__(
        self, select: BoolArray | None, groups: IntArray | None, n_groups: int
    ) -> npt.NDArray[np.int64]: ...


def layout_counter(
    layout: ModelLayout, numeric: FloatArray, categorical: Sequence[ObjectArray]
) -> CountFn:
    """The `CountFn` of a decoded batch: `layout.count` for one block (the cheaper call,
    bench/count_batch.py), `layout.count_grouped` for several; a `select` copies the
    selected columns."""

    def count(
        select: BoolArray | None, groups: IntArray | None, n_groups: int
    ) -> npt.NDArray[np.int64]:
        rows, columns = numeric, categorical
        if select is not None:
            rows, columns = numeric[:, select], tuple(c[select] for c in categorical)
        if groups is None:
            return layout.count(rows, columns)[np.newaxis]
        return layout.count_grouped(rows, columns, groups, n_groups)

    return count


class CountTarget(Protocol):
    """Where `count_batch` adds counts: an `EventTimeWindow`, or a fleet replica's tap that
    sends them to its uncommitted per-partition counts instead (`monitor.fleet_contrib`)."""

    @property
    def ring(self) -> BucketRing: ...

    @property
    def watermark(self) -> float | None: ...

    def admit(self, times: FloatArray) -> AddResult: ...

    def holds(self, bucket: int) -> bool: ...

    def add_counts(self, bucket: int, counts: npt.NDArray[np.integer]) -> None: ...


class LaggingTarget(Protocol):
    """Where `count_batch` adds a rolling reference's hour counts: a `LaggingReference`, or a
    fleet replica's lagging tap (`monitor.fleet_contrib.LaggingTap`)."""

    @property
    def ring(self) -> BucketRing: ...

    def advance(self, watermark: float | None) -> None: ...

    def add_counts(self, event_time: float, counts: npt.NDArray[np.integer]) -> None: ...


def count_batch(
    window: CountTarget,
    lagging: LaggingTarget | None,
    times: FloatArray,
    accepted: BoolArray,
    count: CountFn,
) -> npt.NDArray[np.int64]:
    """Add the accepted events of a batch to `window` (and `lagging`), each binned once.

    An event's key is its window bucket (and, for a rolling reference, its lagging hour);
    key k of the K distinct accepted keys (ascending) is block k of one `count` call, so each
    event is binned once however many buckets the batch spans. With one key, `count` bins
    the accepted events as one block; with several, every event of the batch is binned and
    the events not accepted go to block K, which is dropped (no copy of the columns). A batch
    whose K blocks exceed `MAX_BLOCK_CELLS` is counted in runs of consecutive keys, each run's
    events selected (one copy of the columns in all). Block k is then added to the window's
    bucket and the lagging hour of key k. Returns the sum of the added count matrices (its
    invalid column is the invalid values per feature). `window.admit(times)` must have
    accepted `accepted`, possibly several polls earlier (`monitor.accumulate`): a bucket the
    window has evicted since then is not added to it (added then, its counts would have left
    again), while a rolling reference's ring still takes the counts of the hours it holds.
    """
    if lagging is not None:
        lagging.advance(window.watermark)
    total = np.zeros(window.ring.shape, dtype=np.int64)
    if not accepted.any():
        return total
    buckets = window.ring.bucket_of(times)
    hours = lagging.ring.bucket_of(times) if lagging is not None else None
    keys = buckets if hours is None else buckets * 1_000_003 + (hours - int(hours.min()))
    for event, counts in key_blocks(count, keys, accepted, total.size):
        if window.holds(int(buckets[event])):
            window.add_counts(int(buckets[event]), counts)
        if lagging is not None:
            lagging.add_counts(float(times[event]), counts)
        total += counts
    return total


def key_blocks(
    count: CountFn, keys: IntArray, accepted: BoolArray, block_cells: int
) -> Iterator[tuple[int, npt.NDArray[np.int64]]]:
    """(first event, block) of each distinct key of the accepted events, ascending by key.

    The block of key k is block k of a `count` call in which every event is binned once (see
    `count_batch`): one call for the batch, or one per run of consecutive keys when the
    blocks (`block_cells` cells each) would exceed `MAX_BLOCK_CELLS`.
    """
    if not accepted.any():
        return
    everything = bool(accepted.all())
    positions = np.arange(keys.size) if everything else np.flatnonzero(accepted)
    _, first, inverse = np.unique(keys[positions], return_index=True, return_inverse=True)
    n_keys = int(first.size)
    firsts = positions[first].tolist()
    run = max(1, MAX_BLOCK_CELLS // max(1, block_cells))
    for lo in range(0, n_keys, run):
        hi = min(n_keys, lo + run)
        blocks = _count_keys(count, accepted, everything, positions, inverse, lo, hi, n_keys)
        for key in range(lo, hi):
            yield firsts[key], blocks[key - lo]


def _count_keys(
    count: CountFn,
    accepted: BoolArray,
    everything: bool,
    positions: IntArray,
    inverse: IntArray,
    lo: int,
    hi: int,
    n_keys: int,
) -> npt.NDArray[np.int64]:
    """Blocks int64[hi - lo, F, W] of keys lo..hi-1 (`count_batch`); `positions` are the
    accepted events' indices and `inverse` their key numbers."""
    if n_keys == 1:
        return count(None if everything else accepted, None, 1)
    if hi - lo == n_keys:
        if everything:
            return count(None, inverse, n_keys)
        groups = np.full(accepted.size, n_keys, dtype=np.int64)
        groups[positions] = inverse
        return count(None, groups, n_keys + 1)[:n_keys]
    in_run = (inverse >= lo) & (inverse < hi)
    select = np.zeros(accepted.size, dtype=bool)
    select[positions[in_run]] = True
    return count(select, inverse[in_run] - lo, hi - lo)
