"""Tests of monitor.window: the event-time window against an independent oracle.

The oracle keeps every raw accepted event and recomputes the window from the documented
rules (module docstring of monitor.window and docs/architecture.md, Statistics):

    bucket(t)  = floor(t / bucket_seconds)
    watermark  = max time of all events that were not too early
    head       = bucket(watermark); window = buckets [head - n + 1, head]
    too_early  : t > clock() + max_future_seconds
    too_late   : bucket(t) < head - n + 1 - L,  L = ceil(allowed_lateness / bucket_seconds)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.window import BucketRing, CountFn, EventTimeWindow, LaggingReference, count_batch

F, W = 3, 5
BUCKET = 10.0


@dataclass
class Oracle:
    """Raw-event model of EventTimeWindow (no ring, no running sum)."""

    n_buckets: int
    lateness_buckets: int
    max_future: float
    watermark: float | None = None
    times: list[float] = field(default_factory=list)
    slots: list[np.ndarray] = field(default_factory=list)

    def add(
        self, slots: np.ndarray, times: np.ndarray, now: float | None
    ) -> tuple[list[bool], int, int]:
        """Apply one batch; return (accepted per event, too_late, too_early)."""
        early = [now is not None and float(t) > now + self.max_future for t in times]
        for t, is_early in zip(times.tolist(), early, strict=True):
            if not is_early and (self.watermark is None or t > self.watermark):
                self.watermark = t
        if self.watermark is None:
            return [False] * len(early), 0, sum(early)
        head = math.floor(self.watermark / BUCKET)
        oldest_kept = head - self.n_buckets + 1 - self.lateness_buckets
        accepted: list[bool] = []
        late = 0
        for i, t in enumerate(times.tolist()):
            if early[i]:
                accepted.append(False)
            elif math.floor(t / BUCKET) < oldest_kept:
                accepted.append(False)
                late += 1
            else:
                accepted.append(True)
                self.times.append(t)
                self.slots.append(slots[:, i].copy())
        return accepted, late, sum(early)

    def window(self) -> np.ndarray:
        """Histogram of the accepted raw events whose bucket lies in the current window."""
        out = np.zeros((F, W), dtype=np.int64)
        if self.watermark is None:
            return out
        head = math.floor(self.watermark / BUCKET)
        for t, column in zip(self.times, self.slots, strict=True):
            if head - self.n_buckets + 1 <= math.floor(t / BUCKET) <= head:
                out[np.arange(F), column] += 1
        return out


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """A sequence of (slots, times, clock value) batches with jumps, disorder and duplicates."""
    n_batches = draw(st.integers(1, 12))
    out = []
    base = draw(st.floats(0.0, 1000.0))
    for _ in range(n_batches):
        base += draw(st.sampled_from([0.0, 3.0, 10.0, 25.0, 60.0, 200.0, -40.0]))
        size = draw(st.integers(0, 12))
        offsets = draw(
            st.lists(
                st.one_of(st.floats(-120.0, 60.0), st.sampled_from([0.0, -10.0, 9.999])),
                min_size=size,
                max_size=size,
            )
        )
        times = np.asarray([base + o for o in offsets], dtype=np.float64)
        slots = np.asarray(
            draw(st.lists(st.integers(0, W - 1), min_size=F * size, max_size=F * size)),
            dtype=np.int64,
        ).reshape(F, size)
        clock = base + draw(st.sampled_from([-30.0, 0.0, 15.0, 1e6]))
        out.append((slots, times, clock))
    return out


@settings(max_examples=150, deadline=None)
@given(
    plan=batches(),
    n_buckets=st.integers(1, 6),
    lateness=st.sampled_from([0.0, 5.0, 10.0, 25.0]),
    max_future=st.sampled_from([0.0, 20.0, math.inf]),
    use_clock=st.booleans(),
)
def test_window_matches_raw_event_oracle(
    plan: list[tuple[np.ndarray, np.ndarray, float]],
    n_buckets: int,
    lateness: float,
    max_future: float,
    use_clock: bool,
) -> None:
    """After every batch current() == recompute() == the oracle's window, drops match too."""
    now = {"t": 0.0}
    window = EventTimeWindow(
        (F, W),
        BUCKET,
        n_buckets * BUCKET,
        allowed_lateness_seconds=lateness,
        max_future_seconds=max_future,
        clock=(lambda: now["t"]) if use_clock else None,
    )
    oracle = Oracle(n_buckets, math.ceil(lateness / BUCKET), max_future)
    for slots, times, clock in plan:
        now["t"] = clock
        result = window.add(slots, times)
        accepted, late, early = oracle.add(
            slots, times, clock if use_clock and math.isfinite(max_future) else None
        )
        assert result.accepted.tolist() == accepted
        assert (result.too_late, result.too_early) == (late, early)
        assert result.n_accepted == sum(accepted)
        assert window.watermark == oracle.watermark
        expected = oracle.window()
        np.testing.assert_array_equal(window.current(), expected)
        np.testing.assert_array_equal(window.recompute(), expected)


def _one_event(slot: int) -> np.ndarray:
    """Slot matrix of a single event that uses `slot` for every feature."""
    return np.full((F, 1), slot, dtype=np.int64)


def test_replaying_history_far_behind_the_clock_works() -> None:
    """Events a year older than the clock are accepted: the window follows event time."""
    year = 365 * 86400.0
    window = EventTimeWindow((F, W), 60.0, 3600.0, 60.0, 300.0, clock=lambda: 2 * year)
    times = year + np.arange(0.0, 7200.0, 30.0)
    slots = np.tile(np.arange(times.size) % W, (F, 1))
    for start in range(0, times.size, 20):  # replayed in order, 10 minutes per batch
        chunk = slice(start, start + 20)
        result = window.add(slots[:, chunk], times[chunk])
        assert result.n_accepted == 20
        assert (result.too_late, result.too_early) == (0, 0)
    in_window = times >= year + 7200.0 - 3600.0
    expected = np.zeros((F, W), dtype=np.int64)
    for s in slots[0, in_window]:
        expected[:, s] += 1
    np.testing.assert_array_equal(window.current(), expected)
    assert window.current().sum() == F * 120


def test_jump_of_more_than_the_window_empties_it() -> None:
    """A watermark jump by more than n buckets leaves an empty current window."""
    window = EventTimeWindow((F, W), BUCKET, 4 * BUCKET, allowed_lateness_seconds=10.0)
    window.add(np.tile([[0, 1, 2]], (F, 1)), np.asarray([1.0, 12.0, 33.0]))
    assert window.current().sum() == 3 * F
    window.add(_one_event(4), np.asarray([33.0 + 5 * BUCKET]))
    expected = np.zeros((F, W), dtype=np.int64)
    expected[:, 4] = 1
    np.testing.assert_array_equal(window.current(), expected)
    window.add(_one_event(3), np.asarray([10_000.0]))
    np.testing.assert_array_equal(window.current().sum(axis=1), np.ones(F))
    np.testing.assert_array_equal(window.recompute(), window.current())


def test_early_and_late_events_are_dropped_and_counted() -> None:
    """An event past clock + max_future is too_early; one before the lateness zone too_late."""
    window = EventTimeWindow(
        (F, W),
        BUCKET,
        3 * BUCKET,
        allowed_lateness_seconds=BUCKET,
        max_future_seconds=5.0,
        clock=lambda: 100.0,
    )
    times = np.asarray([100.0, 105.0, 105.5, 80.0, 69.9, 59.9, 70.0])
    result = window.add(np.zeros((F, times.size), dtype=np.int64), times)
    # head = bucket(105) = 10, window = buckets 8..10, lateness zone = bucket 7.
    assert result.accepted.tolist() == [True, True, False, True, False, False, True]
    assert (result.too_late, result.too_early) == (2, 1)
    assert window.watermark == 105.0
    assert window.current()[0, 0] == 3  # 100, 105, 80; 70.0 is in the lateness zone


def test_all_early_batch_before_any_event_accepts_nothing() -> None:
    """With no watermark yet, a batch of only too-early events leaves the window empty."""
    window = EventTimeWindow((F, W), BUCKET, 3 * BUCKET, max_future_seconds=1.0, clock=lambda: 0.0)
    result = window.add(np.zeros((F, 2), dtype=np.int64), np.asarray([50.0, 60.0]))
    assert (result.n_accepted, result.too_late, result.too_early) == (0, 0, 2)
    assert window.watermark is None
    assert window.head is None
    assert not window.current().any()


def test_state_restore_round_trips_exactly() -> None:
    """A window restored from state() has the same ring, watermark and current counts."""
    rng = np.random.default_rng(5)
    window = EventTimeWindow((F, W), BUCKET, 5 * BUCKET, allowed_lateness_seconds=20.0)
    for start in range(0, 200, 17):
        times = start + rng.uniform(-30.0, 10.0, 40)
        window.add(rng.integers(0, W, (F, 40)), times)
    state = {name: array.copy() for name, array in window.state().items()}
    restored = EventTimeWindow((F, W), BUCKET, 5 * BUCKET, allowed_lateness_seconds=20.0)
    restored.restore(state)
    assert restored.watermark == window.watermark
    np.testing.assert_array_equal(restored.current(), window.current())
    np.testing.assert_array_equal(restored.ring.counts, window.ring.counts)
    np.testing.assert_array_equal(restored.ring.bucket_ids, window.ring.bucket_ids)
    more_slots, more_times = rng.integers(0, W, (F, 30)), 190.0 + rng.uniform(-40.0, 40.0, 30)
    a, b = window.add(more_slots, more_times), restored.add(more_slots, more_times)
    assert a.accepted.tolist() == b.accepted.tolist()
    np.testing.assert_array_equal(restored.current(), window.current())


def test_restore_of_an_empty_window_keeps_no_watermark() -> None:
    """An empty window's state restores to an empty window without a watermark."""
    window = EventTimeWindow((F, W), BUCKET, 2 * BUCKET)
    restored = EventTimeWindow((F, W), BUCKET, 2 * BUCKET)
    restored.restore(window.state())
    assert restored.watermark is None
    assert not restored.current().any()


@pytest.mark.parametrize(
    ("shape", "length"), [((F, W + 1), 5 * BUCKET), ((F + 1, W), 5 * BUCKET), ((F, W), 6 * BUCKET)]
)
def test_restore_rejects_a_wrong_shape(shape: tuple[int, int], length: float) -> None:
    """A checkpoint of another layout or window length is refused with ValueError."""
    source = EventTimeWindow(shape, BUCKET, length)
    source.add(np.zeros((shape[0], 1), dtype=np.int64), np.asarray([5.0]))
    target = EventTimeWindow((F, W), BUCKET, 5 * BUCKET)
    with pytest.raises(ValueError, match="does not match"):
        target.restore(source.state())


def test_window_rejects_bad_parameters() -> None:
    """A length that is not a whole number of buckets, or negative lateness, is refused."""
    with pytest.raises(ValueError, match="whole number of buckets"):
        EventTimeWindow((F, W), 60.0, 90.0)
    with pytest.raises(ValueError, match="whole number of buckets"):
        EventTimeWindow((F, W), 60.0, 0.0)
    with pytest.raises(ValueError, match="lateness"):
        EventTimeWindow((F, W), 60.0, 120.0, allowed_lateness_seconds=-1.0)
    with pytest.raises(ValueError, match="bucket_seconds"):
        BucketRing((F, W), 0.0, 4)


@settings(max_examples=80, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.floats(0.0, 400.0), st.integers(0, W - 1)), min_size=1, max_size=60
    ),
    batch_size=st.integers(1, 10),
    lag=st.sampled_from([0.0, 10.0, 35.0, 100.0]),
    length_buckets=st.integers(1, 4),
)
def test_lagging_reference_sums_the_lagged_buckets(
    events: list[tuple[float, int]], batch_size: int, lag: float, length_buckets: int
) -> None:
    """reference() == sum of fed events with bucket in [b(wm-lag)-len+1, b(wm-lag)]."""
    ref = LaggingReference((F, W), BUCKET, lag, length_buckets * BUCKET)
    assert not ref.reference().any()
    fed: list[tuple[float, int]] = []
    for start in range(0, len(events), batch_size):
        chunk = events[start : start + batch_size]
        times = np.asarray([t for t, _ in chunk])
        slots = np.tile(np.asarray([s for _, s in chunk], dtype=np.int64), (F, 1))
        accepted = np.asarray([i % 3 != 2 for i in range(len(chunk))])
        ref.add(slots, times, accepted)
        fed.extend(e for e, ok in zip(chunk, accepted.tolist(), strict=True) if ok)
        if not fed:
            assert not ref.reference().any()
            continue
        watermark = max(t for t, _ in fed)
        hi = math.floor((watermark - lag) / BUCKET)
        expected = np.zeros((F, W), dtype=np.int64)
        for t, s in fed:
            if hi - length_buckets + 1 <= math.floor(t / BUCKET) <= hi:
                expected[:, s] += 1
        assert ref.watermark == watermark
        np.testing.assert_array_equal(ref.reference(), expected)


def test_memory_for_a_thousand_features_and_sixty_buckets() -> None:
    """F=1000, W=132, 60 one-minute buckets: window + frozen reference stay within 35 MiB."""
    window = EventTimeWindow((1000, 132), 60.0, 3600.0)
    reference = np.zeros((1000, 132), dtype=np.int64)
    mib = (window.nbytes + reference.nbytes) / 2**20
    assert window.ring.counts.dtype == np.int32
    assert mib <= 35.0, f"{mib:.1f} MiB"


def _slot_counter(slots: np.ndarray, calls: list[int] | None = None) -> CountFn:
    """A `CountFn` over pre-binned slots int64[F, N] (counted with numpy, row by row)."""

    def count(select: np.ndarray | None, groups: np.ndarray | None, n_groups: int) -> np.ndarray:
        if calls is not None:
            calls.append(n_groups)
        chosen = slots if select is None else slots[:, select]
        ids = np.zeros(chosen.shape[1], dtype=np.int64) if groups is None else groups
        out = np.zeros((n_groups, F, W), dtype=np.int64)
        for group in range(n_groups):
            for row in range(F):
                out[group, row] = np.bincount(chosen[row][ids == group], minlength=W)
        return out

    return count


def test_count_batch_equals_slot_by_slot_adds_for_window_and_lagging_hours() -> None:
    """count_batch bins each batch in one call whatever its (bucket, hour) groups and gives
    the same rings as add()."""
    rng = np.random.default_rng(9)
    direct = EventTimeWindow((F, W), BUCKET, 30 * BUCKET, allowed_lateness_seconds=120.0)
    grouped = EventTimeWindow((F, W), BUCKET, 30 * BUCKET, allowed_lateness_seconds=120.0)
    lag_direct = LaggingReference((F, W), 3600.0, 3600.0, 3600.0)
    lag_grouped = LaggingReference((F, W), 3600.0, 3600.0, 3600.0)
    calls: list[int] = []
    for batches, start in enumerate(range(0, 4 * 3600, 600), start=1):
        times = start + rng.uniform(-200.0, 600.0, 300)
        slots = rng.integers(0, W, (F, 300))
        result = direct.add(slots, times)
        lag_direct.add(slots, times, result.accepted)
        admitted = grouped.admit(times)
        assert admitted.accepted.tolist() == result.accepted.tolist()
        keys = {(t // BUCKET, t // 3600.0) for t in times[admitted.accepted].tolist()}
        total = count_batch(
            grouped, lag_grouped, times, admitted.accepted, _slot_counter(slots, calls)
        )
        assert len(calls) == batches, "one binning per batch, not per (bucket, lagging hour)"
        assert calls[-1] >= len(keys) > 1
        assert int(total[0].sum()) == int(admitted.accepted.sum())
        np.testing.assert_array_equal(grouped.current(), direct.current())
        np.testing.assert_array_equal(lag_grouped.reference(), lag_direct.reference())


def test_count_batch_of_nothing_accepted_adds_nothing() -> None:
    """With no accepted event the window is unchanged and the total is zero."""
    window = EventTimeWindow((F, W), BUCKET, 5 * BUCKET)
    times = np.asarray([10.0, 20.0])
    ones = np.ones((1, F, W), dtype=np.int64)
    total = count_batch(window, None, times, np.zeros(2, dtype=bool), lambda _s, _g, _n: ones)
    assert not total.any() and not window.current().any()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_merged_windows_equal_one_window_fed_every_event(seed: int, parts: int) -> None:
    """Events split over several windows and merged give the counts of one window of all."""
    rng = np.random.default_rng(seed)
    times = rng.uniform(0.0, 5 * BUCKET, 200)
    slots = rng.integers(0, W, (F, 200))
    whole = EventTimeWindow((F, W), BUCKET, 5 * BUCKET, allowed_lateness_seconds=2 * BUCKET)
    whole.add(slots, times)
    owner = rng.integers(0, parts, 200)
    windows = []
    for part in range(parts):
        window = EventTimeWindow((F, W), BUCKET, 5 * BUCKET, allowed_lateness_seconds=2 * BUCKET)
        mine = owner == part
        window.add(slots[:, mine], times[mine])
        windows.append(window)
    merged = EventTimeWindow((F, W), BUCKET, 5 * BUCKET, allowed_lateness_seconds=2 * BUCKET)
    for window in reversed(windows):
        merged.merge(window)
    assert merged.watermark == whole.watermark
    np.testing.assert_array_equal(merged.current(), whole.current())
    np.testing.assert_array_equal(merged.recompute(), merged.current())


def test_merge_leaves_out_buckets_the_window_no_longer_holds() -> None:
    """A far newer window evicts the other's old buckets, as too_late would have."""
    old = EventTimeWindow((F, W), BUCKET, 5 * BUCKET)
    old.add(np.zeros((F, 3), dtype=np.int64), np.asarray([1.0, 2.0, 3.0]))
    new = EventTimeWindow((F, W), BUCKET, 5 * BUCKET)
    new.add(np.ones((F, 2), dtype=np.int64), np.asarray([500.0, 501.0]))
    new.merge(old)
    assert int(new.current().sum()) == 2 * F
    with pytest.raises(ValueError, match="same shape"):
        new.merge(EventTimeWindow((F, W), BUCKET, 6 * BUCKET))
