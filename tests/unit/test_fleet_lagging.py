"""The fold's lagging rings (rolling references in a fleet; WIP): hourly rings per reference."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.fleet import FleetFold
from monitor.fleet_contrib import ContributionTap, Contributor, LaggingTap
from monitor.fleet_records import LAGGING_PREFIX, encode_claim, encode_commit, model_increment
from monitor.window import (
    EMPTY_BUCKET,
    CountFn,
    EventTimeWindow,
    LaggingReference,
    count_batch,
)

SHAPE = (2, 4)
HOUR = 3600.0
N_SLOTS = 6  # lag 2 h + length 3 h + 1
LAG_ID = f"{LAGGING_PREFIX}r1"


def _fold(lagging: bool = True) -> FleetFold:
    fold = FleetFold()
    fold.declare(
        "m",
        EventTimeWindow((2, 1), 60.0, 600.0, 60.0, 300.0),
        EventTimeWindow((2, 1), HOUR, N_SLOTS * HOUR, 0.0, 300.0) if lagging else None,
    )
    return fold


def _stream(seed: int) -> tuple[list[list[list[tuple[bytes, bytes]]]], np.ndarray, np.ndarray]:
    """Per source, its commits (each the records of one commit of 25 time-ordered events
    with a window and a lagging increment); every event's time and cell."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, 10 * HOUR, 600))
    cells = rng.integers(0, SHAPE[0] * SHAPE[1], times.size)
    source_of = rng.integers(0, 3, times.size)
    per_source: list[list[list[tuple[bytes, bytes]]]] = []
    for s in range(3):
        index = np.flatnonzero(source_of == s)
        commits: list[list[tuple[bytes, bytes]]] = [[encode_claim(f"t:{s}", 1, "a")]]
        for lo in range(0, index.size, 25):
            chunk = index[lo : lo + 25]
            mark = float(times[chunk].max())
            increments = []
            for width, rid in ((60.0, "r1"), (HOUR, LAG_ID)):
                by_bucket: dict[int, np.ndarray] = {}
                for i in chunk.tolist():
                    b = int(times[i] // width)
                    by_bucket.setdefault(b, np.zeros(SHAPE, np.int64)).flat[cells[i]] += 1
                increments.append(model_increment("m", SHAPE, mark, by_bucket, rid))
            commits.append(encode_commit(f"t:{s}", 1, "a", lo, lo + chunk.size, increments))
        per_source.append(commits)
    return per_source, times, cells


def _interleave(per_source: list[list[list[tuple[bytes, bytes]]]], seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    queues = [list(q) for q in per_source]
    out: list[bytes] = []
    while any(queues):
        q = rng.choice([i for i, each in enumerate(queues) if each])
        out.extend(v for _, v in queues[q].pop(0))
    return out


def _held(window: EventTimeWindow) -> dict[int, list[int]]:
    ring = window.ring
    return {
        int(b): ring.counts[slot].ravel().tolist()
        for slot, b in enumerate(ring.bucket_ids.tolist())
        if b != EMPTY_BUCKET
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lagging_rings_fold_to_the_held_hours_in_any_interleaving(seed: int) -> None:
    """Every interleaving folds the lagging ring to each held hour's counts of all its events
    (first principles), and a snapshot restored halfway gives the same ring."""
    per_source, times, cells = _stream(seed)
    head = int(times.max() // HOUR)
    expected: dict[int, list[int]] = {}
    for b in range(head - N_SLOTS + 1, head + 1):
        counts = np.zeros(SHAPE[0] * SHAPE[1], np.int64)
        np.add.at(counts, cells[(times // HOUR).astype(int) == b], 1)
        if counts.any():
            expected[b] = counts.tolist()
    for order in range(3):
        values = _interleave(per_source, seed * 10 + order)
        fold = _fold()
        for value in values:
            fold.apply(value)
        ring = fold.ring("m", LAG_ID)
        assert ring is not None and _held(ring) == expected
        assert fold.ring("m", "r1") is not None
        half = _fold()
        for value in values[: len(values) // 2]:
            half.apply(value)
        restored = _fold()
        assert restored.restore(half.snapshot_body()) is None
        for value in values[len(values) // 2 :]:
            restored.apply(value)
        again = restored.ring("m", LAG_ID)
        assert again is not None and _held(again) == expected


def test_a_lagging_ring_without_a_rolling_reference_is_refused() -> None:
    """A model declared without a lagging template refuses lagging increments (the whole
    commit, so its chain does not advance)."""
    per_source, _, _ = _stream(4)
    fold = _fold(lagging=False)
    for _, value in per_source[0][0] + per_source[0][1]:
        fold.apply(value)
    assert fold.ring("m", LAG_ID) is None and fold.ring("m", "r1") is None
    assert fold.head("t:0").next is None
    assert sum(fold.rejected.values()) == 1


def _count(cells: np.ndarray) -> CountFn:
    def count(select: np.ndarray | None, groups: np.ndarray | None, n_groups: int) -> np.ndarray:
        chosen = cells if select is None else cells[select]
        ids = np.zeros(chosen.size, np.int64) if groups is None else groups
        out = np.zeros(n_groups * SHAPE[0] * SHAPE[1], np.int64)
        np.add.at(out, ids * (SHAPE[0] * SHAPE[1]) + chosen, 1)
        return out.reshape(n_groups, *SHAPE)

    return count


@pytest.mark.parametrize("seed", [5, 6])
def test_a_lagging_tap_commits_hours_that_fold_to_the_single_node_lagging_reference(
    seed: int,
) -> None:
    """Events counted through a replica's taps, committed and folded back, give the lagging
    ring whose reference equals a single node's `LaggingReference` fed the same batches."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, 9 * HOUR, 800)) + rng.normal(0.0, 30.0, 800)
    cells = rng.integers(0, SHAPE[0] * SHAPE[1], times.size)
    fold = _fold()
    contributor = Contributor("a")
    contributor.own("t:0", 1, 0)
    fold.apply(encode_claim("t:0", 1, "a")[1])
    placeholder = EventTimeWindow(SHAPE, 60.0, 600.0, 60.0, 300.0)
    lag_placeholder = EventTimeWindow(SHAPE, HOUR, N_SLOTS * HOUR, 0.0, 300.0)
    single = EventTimeWindow(SHAPE, 60.0, 600.0, 60.0, 300.0)
    lagging = LaggingReference(SHAPE, HOUR, 2 * HOUR, 3 * HOUR)
    for lo in range(0, times.size, 40):
        batch, batch_cells = times[lo : lo + 40], cells[lo : lo + 40]
        tap = ContributionTap("m", fold.ring("m", "r1") or placeholder, contributor, None, "r1")
        tap.source = "t:0"
        lag_tap = LaggingTap(tap, fold.ring("m", LAG_ID) or lag_placeholder)
        accepted = tap.admit(batch).accepted
        count_batch(tap, lag_tap, batch, accepted, _count(batch_cells))
        contributor.consumed("t:0", lo + batch.size)
        for _, value in contributor.commit("t:0"):
            fold.apply(value)
        single_accepted = single.admit(batch).accepted
        assert np.array_equal(single_accepted, accepted)
        count_batch(single, lagging, batch, single_accepted, _count(batch_cells))
    ring = fold.ring("m", LAG_ID)
    assert ring is not None and ring.watermark is not None
    assert ring.watermark == lagging.watermark
    hi = int(ring.ring.bucket_of(np.asarray([ring.watermark - 2 * HOUR]))[0])
    assert np.array_equal(ring.ring.sum_range(hi - 3 + 1, hi), lagging.reference())
    assert lagging.reference().sum() > 0
