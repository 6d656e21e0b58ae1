"""`window.count_batch` bins a batch once however many buckets it spans (monitor/window.py).

Oracles: each accepted event counted alone with `ModelLayout.count` and added to its bucket
(the window's rules: an evicted bucket is skipped, a lagging hour still held is taken), and
the former per-bucket path (`_per_bucket_count_batch`, one masked `count` per key), both fed
the same admissions. Hostile values: NaN, +-inf, huge numbers, None, unseen and NUL-marked
categories, a non-str object.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import window as window_module
from monitor.histogram import CategoricalBins, ModelLayout, NumericBins
from monitor.window import (
    EventTimeWindow,
    LaggingReference,
    count_batch,
    layout_counter,
)

BUCKET = 10.0
HOUR = 60.0
CATEGORIES = ("a", "b", "c")
VOCABULARY = frozenset((*CATEGORIES, "d", "5"))
CATEGORY_POOL: tuple[object, ...] = (
    "a",
    "b",
    "c",
    "d",
    "never-seen",
    None,
    "\x00",
    "\x00bad",
    "a\x00",
    "",
    5,
)
Windows = tuple[EventTimeWindow, LaggingReference]


def _layout() -> ModelLayout:
    numeric = [
        ("x", NumericBins(np.asarray([-1.0, 0.0, 1.0]))),
        ("y", NumericBins(np.asarray([0.0, 10.0, 100.0, 1000.0]))),
        ("z", NumericBins(np.asarray([5.0]))),
    ]
    categorical = [
        ("k", CategoricalBins(CATEGORIES, VOCABULARY, 0.1)),
        ("m", CategoricalBins(("d",), VOCABULARY, 0.1)),
    ]
    return ModelLayout(numeric, categorical)


def _values(rng: np.random.Generator, n: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """A numeric matrix with NaN, +-inf and huge values; two hostile categorical columns."""
    numeric = rng.normal(0.0, 50.0, (3, n))
    special = np.asarray([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, 5.0])
    hit = rng.random((3, n)) < 0.2
    numeric[hit] = rng.choice(special, int(hit.sum()))
    columns = tuple(
        np.asarray([CATEGORY_POOL[i] for i in rng.integers(0, len(CATEGORY_POOL), n)], object)
        for _ in range(2)
    )
    return numeric, columns


def _windows() -> Windows:
    window = EventTimeWindow(
        (5, _layout().width), BUCKET, 6 * BUCKET, allowed_lateness_seconds=3 * BUCKET
    )
    return window, LaggingReference((5, _layout().width), HOUR, HOUR, 2 * HOUR)


def _event_by_event(
    layout: ModelLayout,
    window: EventTimeWindow,
    lagging: LaggingReference,
    numeric: np.ndarray,
    categorical: tuple[np.ndarray, ...],
    times: np.ndarray,
    accepted: np.ndarray,
) -> np.ndarray:
    """Oracle: every accepted event counted alone and added to its bucket and hour."""
    lagging.advance(window.watermark)
    total = np.zeros((layout.n_features, layout.width), dtype=np.int64)
    for i in np.flatnonzero(accepted).tolist():
        counts = layout.count(numeric[:, i : i + 1], tuple(c[i : i + 1] for c in categorical))
        bucket = int(np.floor(times[i] / BUCKET))
        if window.holds(bucket):
            window.add_counts(bucket, counts)
        lagging.add_counts(float(times[i]), counts)
        total += counts
    return total


def _per_bucket_count_batch(
    layout: ModelLayout,
    window: EventTimeWindow,
    lagging: LaggingReference,
    numeric: np.ndarray,
    categorical: tuple[np.ndarray, ...],
    times: np.ndarray,
    accepted: np.ndarray,
) -> np.ndarray:
    """Oracle: the former `count_batch`, one masked `ModelLayout.count` per distinct key."""
    buckets = window.ring.bucket_of(times)
    hours = lagging.ring.bucket_of(times)
    keys = buckets * 1_000_003 + (hours - int(hours.min()))
    lagging.advance(window.watermark)
    total = np.zeros((layout.n_features, layout.width), dtype=np.int64)
    for key in np.unique(keys[accepted]).tolist():
        select = accepted & (keys == key)
        counts = layout.count(numeric[:, select], tuple(c[select] for c in categorical))
        first = int(np.flatnonzero(select)[0])
        if window.holds(int(buckets[first])):
            window.add_counts(int(buckets[first]), counts)
        lagging.add_counts(float(times[first]), counts)
        total += counts
    return total


def _assert_same(
    a: tuple[EventTimeWindow, LaggingReference], b: tuple[EventTimeWindow, LaggingReference]
) -> None:
    for ring_a, ring_b in ((a[0].ring, b[0].ring), (a[1].ring, b[1].ring)):
        np.testing.assert_array_equal(ring_a.bucket_ids, ring_b.bucket_ids)
        np.testing.assert_array_equal(ring_a.counts, ring_b.counts)
    np.testing.assert_array_equal(a[0].current(), b[0].current())
    np.testing.assert_array_equal(a[0].current(), a[0].recompute())
    np.testing.assert_array_equal(a[1].reference(), b[1].reference())


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([None, 1, 3]))
def test_count_batch_over_many_buckets_equals_each_event_added_alone(
    seed: int, keys_per_call: int | None
) -> None:
    """Deferred batches spanning many buckets and lagging hours, with a random accepted
    subset and hostile values, give rings equal bucket by bucket to per-event adds and to
    the per-bucket path (also when the keys are counted in runs of 1 or 3)."""
    rng = np.random.default_rng(seed)
    layout = _layout()
    grouped, by_event, by_bucket = _windows(), _windows(), _windows()
    cells = layout.n_features * layout.width
    limit = window_module.MAX_BLOCK_CELLS if keys_per_call is None else keys_per_call * cells
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(window_module, "MAX_BLOCK_CELLS", limit)
        start = 0.0
        for _ in range(int(rng.integers(3, 8))):
            pending: list[tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray, np.ndarray]] = []
            for _ in range(int(rng.integers(1, 4))):  # polls admitted before the count
                n = int(rng.integers(1, 120))
                times = start + rng.uniform(-80.0, 150.0, n)
                start += float(rng.uniform(0.0, 90.0))
                accepted = grouped[0].admit(times).accepted
                assert np.array_equal(by_event[0].admit(times).accepted, accepted)
                assert np.array_equal(by_bucket[0].admit(times).accepted, accepted)
                numeric, categorical = _values(rng, n)
                pending.append((numeric, categorical, times, accepted & (rng.random(n) < 0.8)))
            for numeric, categorical, times, accepted in pending:
                count = layout_counter(layout, numeric, categorical)
                total = count_batch(grouped[0], grouped[1], times, accepted, count)
                expected = _event_by_event(layout, *by_event, numeric, categorical, times, accepted)
                np.testing.assert_array_equal(total, expected)
                np.testing.assert_array_equal(
                    total,
                    _per_bucket_count_batch(
                        layout, *by_bucket, numeric, categorical, times, accepted
                    ),
                )
                assert int(total.sum()) == 5 * int(accepted.sum())
            _assert_same(grouped, by_event)
            _assert_same(grouped, by_bucket)


@pytest.mark.parametrize("n_buckets", [1, 2, 40])
def test_count_batch_makes_one_count_call_per_batch(n_buckets: int) -> None:
    """A batch spanning 1, 2 or 40 buckets is binned by one `count` call (runs only above
    MAX_BLOCK_CELLS), with one block per bucket (plus the dropped block of events not
    accepted)."""
    rng = np.random.default_rng(n_buckets)
    layout = _layout()
    window = EventTimeWindow((5, layout.width), BUCKET, 100 * BUCKET)
    times = (np.arange(400) % n_buckets) * BUCKET + rng.uniform(0.0, BUCKET, 400)
    accepted = window.admit(times).accepted
    assert accepted.all()
    numeric, categorical = _values(rng, times.size)
    inner = layout_counter(layout, numeric, categorical)
    calls: list[tuple[bool, int]] = []

    def count(select: np.ndarray | None, groups: np.ndarray | None, n_groups: int) -> np.ndarray:
        calls.append((select is None, n_groups))
        return inner(select, groups, n_groups)

    subset = accepted & (rng.random(times.size) < 0.5)
    subset[:n_buckets] = True  # every bucket keeps an accepted event
    count_batch(window, None, times, subset, count)
    assert calls == [(n_buckets > 1, n_buckets + 1 if n_buckets > 1 else 1)]
    assert int(window.current().sum()) == 5 * int(subset.sum())
