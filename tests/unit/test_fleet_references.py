"""The fleet fold with several references per model: one global ring per reference id.

Each commit's model increments carry the reference id whose edges binned them; the fold keeps
a ring per (model, reference id), made by the first increment binned with it and dropped when
it holds no bucket (docs/fleet.md, References). These tests check the fold's docstring
argument with the real records: any interleaving of the source partitions' commits gives the
same rings, equal to a first-principles count; an expired ring is dropped; the bound refuses
(and counts) a fifth reference while the rest of its commit counts; a snapshot carries every
ring and the model's watermark.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import load_settings
from monitor.errors import CommitResult, StateRejectReason
from monitor.fleet import MAX_RINGS, FleetFold
from monitor.fleet_contrib import Contributor
from monitor.fleet_records import (
    RECORD_VERSION,
    Increments,
    decode_increments,
    encode_claim,
)
from monitor.window import EMPTY_BUCKET, EventTimeWindow, histograms_by_bucket

F = 2
BUCKET, LENGTH, LATENESS = 10.0, 60.0, 10.0
#: Each reference bins the same events in its own edges: its own width and slot function.
WIDTHS = {"ref-a": 5, "ref-b": 7, "ref-c": 6}
P = 3


def _template() -> EventTimeWindow:
    return EventTimeWindow((F, 1), BUCKET, LENGTH, LATENESS)


def _events(p: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets [lo, hi) of partition p: (raw integer values [F, N], event times)."""
    offsets = np.arange(lo, hi, dtype=np.int64)
    times = 1000.0 + offsets * 1.3 + p * 7.0
    values = np.stack([offsets * 3 + p, offsets * offsets + 1])
    return values, times


def _slots(reference_id: str, values: np.ndarray) -> np.ndarray:
    """The bins of `values` in a reference's edges."""
    width = WIDTHS[reference_id]
    shift = sorted(WIDTHS).index(reference_id)
    return ((values + shift) % width).astype(np.int64)


def _count(c: Contributor, p: int, lo: int, hi: int, refs: tuple[str, ...]) -> None:
    """A replica counts offsets [lo, hi) of partition p once per reference it bins with."""
    source = f"events:{p}"
    c.start_at(source, lo)
    values, times = _events(p, lo, hi)
    buckets = np.floor(times / BUCKET).astype(np.int64)
    for rid in refs:
        for bucket, counts in histograms_by_bucket(_slots(rid, values), buckets, WIDTHS[rid]):
            newest = float(times[buckets == bucket].max())
            c.add(source, "m", bucket, counts, newest, rid)
    c.consumed(source, hi)


def _fold() -> FleetFold:
    fold = FleetFold()
    fold.declare("m", _template())
    return fold


def _held(window: EventTimeWindow | None) -> dict[int, list[int]]:
    if window is None:
        return {}
    ring = window.ring
    return {
        int(b): ring.counts[slot].astype(np.int64).ravel().tolist()
        for slot, b in enumerate(ring.bucket_ids.tolist())
        if b != EMPTY_BUCKET and ring.counts[slot].any()
    }


def _rings(fold: FleetFold) -> dict[str, dict[int, list[int]]]:
    return {rid: _held(w) for rid, w in fold.rings["m"].items() if _held(w)}


Plan = list[tuple[int, int, tuple[str, ...]]]


def _log(plan: Plan) -> dict[int, list[bytes]]:
    """The commit records of each partition, in chain order (claims first)."""
    out: dict[int, list[bytes]] = {p: [encode_claim(f"events:{p}", 1, "r")[1]] for p in range(P)}
    c = Contributor("r")
    at = dict.fromkeys(range(P), 0)
    for p in range(P):
        c.own(f"events:{p}", 1, 0)
    for p, n, refs in plan:
        _count(c, p, at[p], at[p] + n, refs)
        at[p] += n
        out[p].extend(v for _, v in c.commit(f"events:{p}"))
    return out


def _oracle(plan: Plan) -> dict[str, dict[int, list[int]]]:
    """First principles: per reference, the counts of every bucket held behind the final
    watermark (the newest event time counted under any reference)."""
    per_ref: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    at = dict.fromkeys(range(P), 0)
    newest = -np.inf
    for p, n, refs in plan:
        values, times = _events(p, at[p], at[p] + n)
        at[p] += n
        if refs and n:
            newest = max(newest, float(times.max()))
        for rid in refs:
            per_ref.setdefault(rid, []).append((_slots(rid, values), times))
    if not np.isfinite(newest):
        return {}
    head = int(np.floor(newest / BUCKET))
    oldest = head - round(LENGTH / BUCKET) + 1 - round(LATENESS / BUCKET)
    out: dict[str, dict[int, list[int]]] = {}
    for rid, parts in per_ref.items():
        held: dict[int, np.ndarray] = {}
        for slots, times in parts:
            buckets = np.floor(times / BUCKET).astype(np.int64)
            for bucket, counts in histograms_by_bucket(slots, buckets, WIDTHS[rid]):
                if bucket >= oldest:
                    held[bucket] = held.get(bucket, 0) + counts
        kept = {b: c.astype(np.int64).ravel().tolist() for b, c in held.items() if c.any()}
        if kept:
            out[rid] = kept
    return out


def _interleave(log: dict[int, list[bytes]], rng: random.Random) -> list[bytes]:
    """One reader's order: each partition's records in order, partitions merged at random."""
    queues = {p: list(values) for p, values in log.items()}
    out: list[bytes] = []
    while any(queues.values()):
        p = rng.choice([q for q, values in queues.items() if values])
        out.append(queues[p].pop(0))
    return out


_PLANS = st.lists(
    st.tuples(
        st.integers(0, P - 1),
        st.integers(0, 25),
        st.sets(st.sampled_from(sorted(WIDTHS)), max_size=3).map(lambda s: tuple(sorted(s))),
    ),
    max_size=14,
)


@settings(max_examples=150, deadline=None)
@given(_PLANS, st.integers(0, 2**32 - 1))
def test_rings_per_reference_do_not_depend_on_the_interleaving(plan: Plan, seed: int) -> None:
    """Any interleaving of the partitions' commits folds into the same per-reference rings,
    equal to a first-principles count of each reference's events behind the final watermark."""
    log = _log(plan)
    rng = random.Random(seed)
    folds = []
    for _ in range(3):
        fold = _fold()
        for value in _interleave(log, rng):
            fold.apply(value)
        assert fold.rejected == {}
        folds.append(fold)
    want = _oracle(plan)
    for fold in folds:
        assert _rings(fold) == want
        assert fold.marks == folds[0].marks
    # a snapshot taken halfway through one order, restored, then the rest: the same rings
    order = _interleave(log, rng)
    first = _fold()
    for value in order[: len(order) // 2]:
        first.apply(value)
    restored = _fold()
    assert (
        restored.restore(
            msgspec.msgpack.decode(
                msgspec.msgpack.encode(first.snapshot_body()), type=type(first.snapshot_body())
            )
        )
        is None
    )
    for value in order[len(order) // 2 :]:
        restored.apply(value)
    assert _rings(restored) == want


def test_a_ring_is_dropped_once_all_its_buckets_expired() -> None:
    """A reference no replica bins with any more loses its ring once the model's watermark
    has moved past its newest bucket by length + lateness; a snapshot keeps the watermark."""
    fold = _fold()
    for p in range(P):
        fold.apply(encode_claim(f"events:{p}", 1, "r")[1])
    c = Contributor("r")
    c.own("events:0", 1, 0)
    _count(c, 0, 0, 10, ("ref-a", "ref-b"))
    for value in [v for _, v in c.commit("events:0")]:
        assert fold.apply(value).result is CommitResult.ACCEPTED
    assert set(fold.rings["m"]) == {"ref-a", "ref-b"}
    # ref-b only, 200 events later (260 s of event time: far past length + lateness)
    _count(c, 0, 10, 210, ("ref-b",))
    for value in [v for _, v in c.commit("events:0")]:
        fold.apply(value)
    assert set(fold.rings["m"]) == {"ref-b"}
    assert fold.ring("m", "ref-a") is None
    body = fold.snapshot_body()
    assert body.marks == {"m": fold.marks["m"]} and len(body.models) == 1
    restored = _fold()
    assert restored.restore(body) is None
    assert restored.marks == fold.marks and _rings(restored) == _rings(fold)


def test_a_reference_beyond_the_bound_is_refused_and_counted_and_the_rest_counts() -> None:
    """With MAX_RINGS rings held, a further reference's increments are refused
    (too_many_references, their counts in refused_counts); the commit itself is accepted."""
    fold = _fold()
    fold.apply(encode_claim("events:0", 1, "r")[1])
    refs = [f"x{i}" for i in range(MAX_RINGS + 1)]
    counts = np.zeros((F, 4), dtype=np.int64)
    counts[0, 1] = counts[1, 2] = 3
    c = Contributor("r")
    c.own("events:0", 1, 0)
    for rid in refs:
        c.add("events:0", "m", 100, counts, 1005.0, rid)
    c.consumed("events:0", 5)
    outcomes = [fold.apply(v) for _, v in c.commit("events:0")]
    assert outcomes[-1].result is CommitResult.ACCEPTED
    assert fold.head("events:0").next == 5
    assert len(fold.rings["m"]) == MAX_RINGS
    assert fold.rejected == {StateRejectReason.TOO_MANY_REFERENCES: 1}
    assert fold.refused_counts == 6
    assert sorted(fold.rings["m"]) == sorted(refs)[:MAX_RINGS]


def test_a_ring_of_another_shape_is_refused_as_a_whole_commit() -> None:
    """Increments whose feature count differs from the model's, or whose width differs from
    the held ring of the same reference, are refused (shape_mismatch); the chain stays."""
    fold = _fold()
    fold.apply(encode_claim("events:0", 1, "r")[1])
    c = Contributor("r")
    c.own("events:0", 1, 0)
    _count(c, 0, 0, 10, ("ref-a",))
    for _, value in c.commit("events:0"):
        fold.apply(value)
    wide = np.ones((F, WIDTHS["ref-a"] + 1), dtype=np.int64)
    c.add("events:0", "m", 100, wide, 1005.0, "ref-a")
    c.consumed("events:0", 20)
    outcome = [fold.apply(v) for _, v in c.commit("events:0")][-1]
    assert outcome.rejected is not None
    assert outcome.rejected.reason is StateRejectReason.SHAPE_MISMATCH
    assert fold.head("events:0").next == 10
    three = np.ones((F + 1, 3), dtype=np.int64)
    c.own("events:0", 1, 10)
    c.add("events:0", "m", 100, three, 1005.0, "ref-new")
    c.consumed("events:0", 20)
    outcome = [fold.apply(v) for _, v in c.commit("events:0")][-1]
    assert outcome.rejected is not None
    assert outcome.rejected.reason is StateRejectReason.SHAPE_MISMATCH
    assert fold.ring("m", "ref-new") is None


def test_increments_written_without_a_reference_id_decode_to_the_empty_one() -> None:
    """A commit blob of the earlier form (no reference_id field) still decodes; its counts
    belong to the ring of reference id ""."""
    old = {
        "models": [
            {
                "model": "m",
                "features": F,
                "width": 3,
                "watermark": 1.0,
                "buckets": b"",
                "cells": b"",
                "counts": b"",
            }
        ]
    }
    decoded = decode_increments(msgspec.msgpack.encode(old))
    assert isinstance(decoded, Increments)
    assert decoded.models[0].reference_id == ""
    assert RECORD_VERSION == 1


def test_a_fleet_accepts_every_reference_mode_and_version_following(tmp_path: Path) -> None:
    """state.backend kafka accepts file, registry, warmup and rolling references, and a
    registry model following its model versions."""
    path = tmp_path / "c.yaml"
    features = [{"name": "a", "kind": "numeric"}]
    base: dict[str, Any] = {
        "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"]},
        "state": {"backend": "kafka"},
    }
    accepted = [
        {"mode": "registry"},
        {"mode": "file", "path": str(path)},
        {"mode": "warmup"},
        {"mode": "rolling"},
    ]
    for reference in accepted:
        model = {"name": "m", "features": features, "reference": reference}
        path.write_text(yaml.safe_dump({**base, "models": [model]}))
        assert load_settings(path, env={}).models[0].reference.mode.value == reference["mode"]
    following = {"mode": "registry", "follow_model_version": True}
    model = {"name": "m", "features": features, "reference": following}
    path.write_text(yaml.safe_dump({**base, "models": [model]}))
    assert load_settings(path, env={}).models[0].reference.follow_model_version
