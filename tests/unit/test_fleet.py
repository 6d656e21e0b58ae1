"""The fleet's state records, fold and contributor (monitor.fleet*), without Kafka.

The schedule tests port the invariants of the fleet protocol (docs/fleet.md) from its
sketch onto the real records and fold: random schedules of consumption, commits, crashes,
zombies, racing claims and rebalances, after which the accepted commits of every partition
form one contiguous chain and the global window equals one window fed every event of the
accepted ranges, whatever the interleaving of partitions.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import msgspec
import numpy as np
import pytest
import structlog
import structlog.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor import registry
from monitor.account import BatchAccount
from monitor.decode import ModelColumns
from monitor.edges import numeric_slot_count
from monitor.errors import ClaimResult, CommitResult, StateRejectReason
from monitor.fleet import (
    EXTRA_ROWS,
    MAX_CLOCK_SKEW_S,
    MAX_WIDTH,
    RING_CELLS_PER_FEATURE,
    FleetFold,
    FoldOutcome,
)
from monitor.fleet_contrib import ContributionTap, Contributor, admit_against
from monitor.fleet_node import FleetNode
from monitor.fleet_records import (
    MAX_EPOCH,
    RECORD_VERSION,
    ChunkRecord,
    ClaimRecord,
    ModelIncrement,
    Rejected,
    SnapshotBody,
    decode_record,
    encode_claim,
    encode_commit,
    encode_snapshot,
    model_increment,
)
from monitor.metrics import FleetMetrics
from monitor.model import FeatureKind, FeatureSpec, RawMessage, ReferenceMode
from monitor.reference import MAX_EDGES, MAX_TOP_K, fit_profile, profile_to_json
from monitor.schema_change import Row
from monitor.state_log import StateLog
from monitor.window import EMPTY_BUCKET, EventTimeWindow, histograms_by_bucket

R = StateRejectReason
F, W = 2, 5  # features, width of the test model's count matrix
BUCKET, LENGTH, LATENESS = 10.0, 60.0, 10.0
P = 3  # source partitions


def _window() -> EventTimeWindow:
    return EventTimeWindow((F, W), BUCKET, LENGTH, LATENESS)


def _events(partition: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic events of offsets [lo, hi) of a source partition: (slots [F, N], times)."""
    offsets = np.arange(lo, hi, dtype=np.int64)
    times = 1000.0 + offsets * 0.7 + partition * 4.0
    slots = np.stack([(offsets * 3 + partition) % W, (offsets * offsets + 1) % W])
    return slots.astype(np.int64), times


def _held(window: EventTimeWindow) -> dict[int, list[int]]:
    ring = window.ring
    return {
        int(b): ring.counts[slot].astype(np.int64).ravel().tolist()
        for slot, b in enumerate(ring.bucket_ids.tolist())
        if b != EMPTY_BUCKET and ring.counts[slot].any()
    }


def _source(p: int) -> str:
    return f"events:{p}"


def _count(contributor: Contributor, p: int, lo: int, hi: int) -> None:
    """A replica counts offsets [lo, hi) of partition p (the daemon's path, without Kafka)."""
    contributor.start_at(_source(p), lo)
    slots, times = _events(p, lo, hi)
    buckets = np.floor(times / BUCKET).astype(np.int64)
    for bucket, counts in histograms_by_bucket(slots, buckets, W):
        newest = float(times[buckets == bucket].max())
        contributor.add(_source(p), "m", bucket, counts, newest)
    contributor.consumed(_source(p), hi)


def _commit(epoch: int, lo: int, hi: int, p: int = 0, chunk_bytes: int = 1 << 20) -> list[bytes]:
    c = Contributor("r0", chunk_bytes)
    c.own(_source(p), epoch, lo)
    _count(c, p, lo, hi)
    return [value for _, value in c.commit(_source(p))]


def _apply_all(fold: FleetFold, values: list[bytes]) -> list[object]:
    return [fold.apply(v) for v in values]


# -- records -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_never_raises_on_arbitrary_bytes(value: bytes) -> None:
    """Any byte string decodes to a record or a Rejected, never an exception."""
    record = decode_record(value)
    assert isinstance(record, Rejected) or hasattr(record, "v")
    FleetFold({"m": _window()}).apply(value)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                *("source", "epoch", "member", "from_offset", "to_offset", "blob_id", "chunks"),
                *("size", "sha256", "inline", "index", "total", "data", "positions", "at", "x"),
            ]
        ),
        st.integers(-(2**63), 2**63 - 1) | st.binary(max_size=8) | st.text(max_size=4),
        max_size=12,
    )
)
def test_fold_never_raises_on_arbitrary_msgpack_maps(fields: dict[str, object]) -> None:
    """A msgpack map of arbitrary fields (a careless producer) is refused, never raised."""
    fold = FleetFold({"m": _window()})
    for kind in ("claim", "commit", "chunk", "snapshot"):
        value = msgspec.msgpack.encode({**fields, "v": RECORD_VERSION, "kind": kind})
        outcome = fold.apply(value)
        assert outcome.kind in {"rejected", "claim", "commit", "chunk", "snapshot"}


def test_garbage_unknown_version_and_no_value_are_refused_with_reasons() -> None:
    """Garbage bytes, an unknown record version and a record without value are refused."""
    fold = FleetFold({"m": _window()})
    future = msgspec.msgpack.encode({"v": 99, "kind": "claim", "source": "events:0"})
    outcomes = _apply_all(fold, [b"\x00garbage", future])
    outcomes.append(fold.apply(None))
    assert [o.rejected.reason for o in outcomes] == [  # type: ignore[attr-defined]
        R.UNDECODABLE,
        R.UNKNOWN_VERSION,
        R.UNDECODABLE,
    ]
    assert fold.rejected == {R.UNDECODABLE: 2, R.UNKNOWN_VERSION: 1}
    assert fold.heads == {}


def test_chunked_commit_equals_inline_commit() -> None:
    """A commit cut into many chunks folds into exactly the counts of the same inline commit."""
    chunked, inline = FleetFold({"m": _window()}), FleetFold({"m": _window()})
    for fold, size in ((chunked, 64), (inline, 1 << 20)):
        fold.apply(encode_claim(_source(0), 1, "r0")[1])
        values = _commit(1, 0, 80, chunk_bytes=size)
        assert (len(values) > 2) == (size == 64)
        _apply_all(fold, values)
        assert fold.commits == {CommitResult.ACCEPTED: 1}
    assert _held(chunked.windows["m"]) == _held(inline.windows["m"])
    assert chunked.windows["m"].current().sum() == 80 * F


def test_truncated_or_missing_chunk_is_refused_and_the_chain_stays() -> None:
    """A truncated chunk (hash_mismatch) or a lost one (missing_chunk) refuses the whole commit."""
    for damage, reason in (("truncate", R.HASH_MISMATCH), ("drop", R.MISSING_CHUNK)):
        fold = FleetFold({"m": _window()})
        fold.apply(encode_claim(_source(0), 1, "r0")[1])
        values = _commit(1, 0, 80, chunk_bytes=64)
        chunk = msgspec.msgpack.decode(values[1], type=ChunkRecord)
        if damage == "truncate":
            cut = ChunkRecord(chunk.v, chunk.blob_id, chunk.index, chunk.total, chunk.data[:-5])
            values[1] = msgspec.msgpack.encode(cut)
        else:
            del values[1]
        outcome = _apply_all(fold, values)[-1]
        assert outcome.rejected is not None and outcome.rejected.reason is reason  # type: ignore[attr-defined]
        assert fold.head(_source(0)).next is None
        assert fold.windows["m"].watermark is None


def test_increments_of_another_shape_are_refused() -> None:
    """Increments whose matrix shape differs from the model's are refused (shape_mismatch)."""
    fold = FleetFold({"m": _window()})
    fold.apply(encode_claim(_source(0), 1, "r0")[1])
    wide = model_increment("m", (F, W + 1), 1000.0, {100: np.ones((F, W + 1), dtype=np.int64)})
    _, value = encode_commit(_source(0), 1, "r0", 0, 5, [wide])[-1]
    outcome = fold.apply(value)
    assert outcome.rejected is not None and outcome.rejected.reason is R.SHAPE_MISMATCH
    assert fold.head(_source(0)).next is None


@pytest.mark.parametrize(
    "bad",
    [
        {"cells": np.asarray([F * W], dtype="<i8").tobytes()},
        {"counts": np.asarray([-3], dtype="<i8").tobytes()},
        {"counts": b"\x01\x02\x03"},
        {"buckets": np.asarray([999], dtype="<i8").tobytes()},
        {"watermark": float("nan")},
        {"counts": np.asarray([2**31], dtype="<i8").tobytes()},
        {"counts": np.asarray([2**63 - 1], dtype="<i8").tobytes()},
    ],
)
def test_impossible_sparse_arrays_are_refused(bad: dict[str, Any]) -> None:
    """Out-of-range cells, negative counts, counts the int32 rings cannot hold, torn arrays or
    a bucket after the watermark: refused."""
    fold = FleetFold({"m": _window()})
    fold.apply(encode_claim(_source(0), 1, "r0")[1])
    one = {
        "buckets": np.asarray([100], dtype="<i8").tobytes(),
        "cells": np.asarray([0], dtype="<i8").tobytes(),
        "counts": np.asarray([1], dtype="<i8").tobytes(),
    }
    fields: dict[str, Any] = {"model": "m", "features": F, "width": W, "watermark": 1000.0}
    increment = ModelIncrement(**(fields | one | bad))
    _, value = encode_commit(_source(0), 1, "r0", 0, 5, [increment])[-1]
    outcome = fold.apply(value)
    assert outcome.rejected is not None and outcome.rejected.reason is R.INVALID_RECORD
    assert fold.head(_source(0)).next is None and fold.windows["m"].watermark is None


def test_a_deeply_nested_record_and_a_huge_kind_are_refused_with_a_short_detail() -> None:
    """A 1 kB record nested 1,000 deep (msgspec's RecursionError) and a 1 MiB `kind` are
    refused, the detail cut to 300 characters, on the state topic and on the registry."""
    deep = b"\x83\xa1v\x01\xa4kind\xa5claim\xa1x" + b"\x91" * 1000 + b"\xc0"
    huge = msgspec.msgpack.encode({"v": 1, "kind": "K" * 2**20})
    for decode in (decode_record, registry.decode_record):
        for value in (deep, huge):
            refused = decode(value)
            assert not hasattr(refused, "kind"), refused
            assert len(refused.detail) <= 300  # type: ignore[union-attr]


def test_a_claim_or_commit_beyond_the_epoch_and_offset_bounds_is_refused() -> None:
    """A claim of epoch 2**64 - 1 (no epoch left above it) and a commit up to offset 2**64 - 1
    are refused at decoding; the bounds themselves still decode."""
    for epoch, refused in ((MAX_EPOCH, False), (MAX_EPOCH + 1, True), (2**64 - 1, True)):
        value = msgspec.msgpack.encode(
            {"v": 1, "kind": "claim", "source": "t:0", "epoch": epoch, "member": "r"}
        )
        assert isinstance(decode_record(value), Rejected) is refused
    _, value = encode_commit(_source(0), 1, "r0", 0, 2**63 - 1, [])[-1]
    assert not isinstance(decode_record(value), Rejected)
    commit = msgspec.msgpack.decode(value)
    commit["to_offset"] = 2**64 - 1
    assert isinstance(decode_record(msgspec.msgpack.encode(commit)), Rejected)


def test_a_commit_for_a_source_nobody_claimed_is_stale() -> None:
    """Epoch 0 is no claim: a commit under it is refused as stale and counts nothing."""
    fold = FleetFold({"m": _window()})
    outcomes = _apply_all(fold, _commit(0, 0, 10))
    assert outcomes[-1].result is CommitResult.STALE_EPOCH  # type: ignore[attr-defined]
    assert int(fold.windows["m"].total.sum()) == 0 and fold.head(_source(0)).next is None


def _declared_fold() -> FleetFold:
    """A fold as a replica declares it: the model's feature count, no ring until a commit."""
    fold = FleetFold()
    fold.declare("m", EventTimeWindow((F, 1), BUCKET, LENGTH, LATENESS))
    fold.apply(encode_claim(_source(0), 1, "r0")[1])
    return fold


def _one_cell(width: int, cell: int) -> ModelIncrement:
    def one(value: int) -> bytes:
        return np.asarray([value], dtype="<i8").tobytes()

    return ModelIncrement("m", F, width, 1000.0, one(100), one(cell), one(1), "r")


def test_a_small_record_claiming_a_huge_width_is_refused_before_any_ring_is_made() -> None:
    """A 300-byte commit whose matrix claims 10^8 columns is refused (shape_mismatch), not
    allocated: the fold's memory stays put and the chain does not move."""
    resource = pytest.importorskip("resource")
    fold = _declared_fold()
    records = encode_commit(_source(0), 1, "r0", 0, 5, [_one_cell(10**8, 10**8 + 1)])
    assert sum(len(value) for _, value in records) < 1_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = [fold.apply(value) for _, value in records][-1]
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert outcome.rejected is not None and outcome.rejected.reason is R.SHAPE_MISMATCH
    assert fold.ring("m", "r") is None and fold.head(_source(0)).next is None
    assert grown_kib < 50 * 1024
    body = SnapshotBody([], [_one_cell(10**8, 3)], [], {"m": 1000.0})
    refused = fold.restore(body)
    assert refused is not None and refused.reason is R.SHAPE_MISMATCH


def test_the_widest_layout_there_can_be_still_folds() -> None:
    """MAX_WIDTH is what a numeric feature with MAX_EDGES edges needs, and such a commit folds."""
    edges = np.linspace(0.0, 1.0, MAX_EDGES)
    assert numeric_slot_count(edges) + 2 == MAX_WIDTH
    assert MAX_TOP_K + 2 + 2 <= MAX_WIDTH
    fold = _declared_fold()
    _, value = encode_commit(_source(0), 1, "r0", 0, 5, [_one_cell(MAX_WIDTH, MAX_WIDTH - 1)])[-1]
    assert fold.apply(value).result is CommitResult.ACCEPTED
    ring = fold.ring("m", "r")
    assert ring is not None and ring.total.shape == (F, MAX_WIDTH) and int(ring.total.sum()) == 1


# -- claim and commit rules ----------------------------------------------------------


def test_claims_need_a_higher_epoch_and_start_at_the_chain_head() -> None:
    """A claim is accepted iff its epoch is above the partition's; its start is next[p]."""
    fold = FleetFold({"m": _window()})
    first = fold.apply(encode_claim(_source(0), 1, "a")[1])
    assert (first.result, first.start) == (ClaimResult.ACCEPTED, None)
    _apply_all(fold, _commit(1, 0, 10))
    late = fold.apply(encode_claim(_source(0), 1, "b")[1])
    assert late.result is ClaimResult.STALE_EPOCH
    second = fold.apply(encode_claim(_source(0), 2, "b")[1])
    assert (second.result, second.start) == (ClaimResult.ACCEPTED, 10)
    assert fold.claims == {ClaimResult.ACCEPTED: 2, ClaimResult.STALE_EPOCH: 1}


def test_zombie_and_gap_commits_are_rejected_and_counted() -> None:
    """A commit of an old epoch is stale_epoch, one not starting at next[p] a gap: not counted."""
    fold = FleetFold({"m": _window()})
    fold.apply(encode_claim(_source(0), 1, "a")[1])
    _apply_all(fold, _commit(1, 0, 10))
    fold.apply(encode_claim(_source(0), 2, "b")[1])
    zombie = _apply_all(fold, _commit(1, 10, 20))[-1]
    gap = _apply_all(fold, _commit(2, 12, 20))[-1]
    ok = _apply_all(fold, _commit(2, 10, 20))[-1]
    assert [o.result for o in (zombie, gap, ok)] == [  # type: ignore[attr-defined]
        CommitResult.STALE_EPOCH,
        CommitResult.GAP,
        CommitResult.ACCEPTED,
    ]
    assert fold.head(_source(0)).next == 20
    assert fold.windows["m"].current().sum() == 20 * F


# -- random schedules ------------------------------------------------------------------

ACTIONS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 99), st.integers(0, P - 1), st.integers(1, 25)),
    min_size=1,
    max_size=90,
)


class _Sim:
    """Replicas running the contributor rules against one state log (per-partition order)."""

    def __init__(self) -> None:
        self.log: list[tuple[int, bytes]] = []
        self.observer = FleetFold({"m": _window()})
        self.accepted_claims: dict[tuple[str, str, int], int | None] = {}
        self.chain: dict[int, list[tuple[int, int]]] = {p: [] for p in range(P)}
        self.names = [f"r{i}" for i in range(4)]
        self.contrib = {n: Contributor(n, chunk_bytes=96) for n in self.names}
        self.pos: dict[tuple[str, int], int] = {}
        self.pending: dict[tuple[str, int], int] = {}  # claims sent, not yet settled
        self.unsent: dict[tuple[str, int], int] = {}  # claims decided, not yet appended
        self.state = dict.fromkeys(self.names, "up")  # up | dead | paused
        self.owner: dict[int, str | None] = dict.fromkeys(range(P))

    def append(self, p: int, values: list[bytes]) -> None:
        for value in values:
            self.log.append((p, value))
            out = self.observer.apply(value)
            if out.result is ClaimResult.ACCEPTED:
                self.accepted_claims[(out.source, out.member, out.epoch)] = out.start
            if out.kind == "commit" and out.result is CommitResult.ACCEPTED:
                self.chain[p].append((out.from_offset, out.to_offset))

    def claim(self, name: str, p: int, race: bool) -> None:
        epoch = self.observer.head(_source(p)).epoch + 1
        self.pending[(name, p)] = epoch
        if race:
            self.unsent[(name, p)] = epoch
        else:
            self.append(p, [encode_claim(_source(p), epoch, name)[1]])

    def settle(self, name: str) -> None:
        for (who, p), epoch in list(self.pending.items()):
            if who != name:
                continue
            if self.unsent.pop((name, p), None) is not None:
                self.append(p, [encode_claim(_source(p), epoch, name)[1]])
            key = (_source(p), name, epoch)
            del self.pending[(name, p)]
            if key in self.accepted_claims:
                start = self.accepted_claims[key]
                self.contrib[name].own(_source(p), epoch, start)
                self.pos[(name, p)] = 0 if start is None else start
            elif self.owner[p] == name:
                self.claim(name, p, race=False)

    def rebalance(self, choice: int) -> None:
        live = [n for n in self.names if self.state[n] == "up"]
        if not live:
            return
        for p in range(P):
            new = live[(choice + p * 7) % len(live)]
            old = self.owner[p]
            if old == new:
                continue
            if old is not None and self.state[old] == "up":
                self.append(p, [v for _, v in self.contrib[old].commit(_source(p))])
                self.contrib[old].drop(_source(p))
            if old is not None:
                self.pending.pop((old, p), None)
            self.owner[p] = new
            self.claim(new, p, race=choice % 2 == 0)

    def die(self, name: str, how: str, choice: int) -> None:
        self.state[name] = how
        if how == "dead":
            self.contrib[name] = Contributor(name, chunk_bytes=96)
        for p in range(P):
            if self.owner[p] == name:
                self.owner[p] = None
        self.rebalance(choice)

    def step(self, who: int, act: int, p: int, k: int) -> None:
        name = self.names[who]
        if self.state[name] == "dead":
            if act < 30:
                self.state[name] = "up"
                self.contrib[name] = Contributor(name, chunk_bytes=96)
                self.rebalance(act + k)
            return
        if self.state[name] == "paused":
            if act < 30:
                self.state[name] = "up"  # a zombie: keeps what it thinks it owns
            return
        self.settle(name)
        owned = [q for q in range(P) if _source(q) in self.contrib[name].owned]
        if act < 45 and owned:
            q = owned[p % len(owned)]
            lo = self.pos[(name, q)]
            _count(self.contrib[name], q, lo, lo + k)
            self.pos[(name, q)] = lo + k
        elif act < 75 and owned:
            q = owned[p % len(owned)]
            self.append(q, [v for _, v in self.contrib[name].commit(_source(q))])
        elif act < 82:
            self.die(name, "dead", act + k)
        elif act < 88:
            self.die(name, "paused", act + k)
        elif act < 93:
            self.rebalance(act + k)

    def quiesce(self) -> None:
        for name in self.names:
            self.state[name] = "up"
        self.rebalance(0)
        for _ in range(6):
            for name in self.names:
                self.settle(name)
        for p in range(P):
            owner = self.owner[p]
            assert owner is not None
            self.append(p, [v for _, v in self.contrib[owner].commit(_source(p))])


@settings(max_examples=60, deadline=None)
@given(ACTIONS)
def test_random_schedules_keep_one_contiguous_chain_and_exact_counts(
    actions: list[tuple[int, int, int, int]],
) -> None:
    """Crashes, zombies, racing claims: chains stay contiguous, the window equals the oracle."""
    sim = _Sim()
    sim.rebalance(1)
    for action in actions:
        sim.step(*action)
    sim.quiesce()
    oracle = _window()
    for p in range(P):
        end: int | None = None
        for lo, hi in sim.chain[p]:
            assert end is None or lo == end, (p, sim.chain[p])
            end = hi
        owner = sim.owner[p]
        assert owner is not None
        head = sim.observer.head(_source(p)).next
        assert head == (None if end is None else sim.pos[(owner, p)])  # owner never fenced
        for lo, hi in sim.chain[p]:
            if hi > lo:
                slots, times = _events(p, lo, hi)
                oracle.add(slots, times)
    got = sim.observer.windows["m"]
    assert got.watermark == oracle.watermark
    assert _held(got) == _held(oracle)
    assert got.current().tolist() == oracle.current().tolist()
    # another reader interleaves the partitions differently: the same state
    other = FleetFold({"m": _window()})
    for p in reversed(range(P)):
        for q, value in sim.log:
            if q == p:
                other.apply(value)
    assert _held(other.windows["m"]) == _held(got)
    assert {s: (h.epoch, h.next) for s, h in other.heads.items()} == {
        s: (h.epoch, h.next) for s, h in sim.observer.heads.items()
    }
    # a snapshot taken halfway, restored, then the rest folded: the same state again
    half = len(sim.log) // 2
    first = FleetFold({"m": _window()})
    for _, value in sim.log[:half]:
        first.apply(value)
    records = encode_snapshot(first.snapshot_body(), {0: half}, "r0", 0.0, chunk_bytes=128)
    reader = FleetFold({"m": _window()}, decode_snapshots=True)
    outcome = _apply_all(reader, [v for _, v in records])[-1]
    assert outcome.snapshot is not None  # type: ignore[attr-defined]
    restored = FleetFold({"m": _window()})
    assert restored.restore(outcome.snapshot[1]) is None  # type: ignore[attr-defined]
    for _, value in sim.log[half:]:
        restored.apply(value)
    assert _held(restored.windows["m"]) == _held(got)
    assert restored.windows["m"].current().tolist() == got.current().tolist()


def test_claim_record_round_trips() -> None:
    """A claim encodes to its key and decodes to the same record."""
    key, value = encode_claim("events:3", 7, "pod-a")
    assert key == b"events:3"
    assert decode_record(value) == ClaimRecord(RECORD_VERSION, "events:3", 7, "pod-a")


@pytest.mark.slow
def test_a_thousand_seeded_schedules_hold_the_invariants() -> None:
    """1,000 seeded random schedules (the protocol sketch's sweep) all keep the invariants."""
    import random

    check = test_random_schedules_keep_one_contiguous_chain_and_exact_counts.hypothesis.inner_test  # type: ignore[attr-defined]
    for seed in range(1_000):
        rnd = random.Random(seed)
        check(
            [
                (rnd.randint(0, 3), rnd.randint(0, 99), rnd.randint(0, P - 1), rnd.randint(1, 25))
                for _ in range(90)
            ]
        )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(900.0, 1300.0), max_size=12),
    st.lists(st.floats(900.0, 1400.0), min_size=1, max_size=30),
    st.floats(1000.0, 1400.0),
)
def test_admit_against_equals_admit_and_changes_nothing(
    before: list[float], times: list[float], now: float
) -> None:
    """The contributor's admission equals EventTimeWindow.admit, and leaves the window as it was."""
    window = EventTimeWindow((F, W), BUCKET, LENGTH, LATENESS, 30.0, clock=lambda: now)
    twin = EventTimeWindow((F, W), BUCKET, LENGTH, LATENESS, 30.0, clock=lambda: now)
    if before:
        slots = np.zeros((F, len(before)), dtype=np.int64)
        window.add(slots, np.asarray(before))
        twin.add(slots, np.asarray(before))
    state = {k: v.copy() for k, v in window.state().items()}
    got = admit_against(window, np.asarray(times), now)
    want = twin.admit(np.asarray(times))
    assert got.accepted.tolist() == want.accepted.tolist()
    assert got.outside.tolist() == want.outside.tolist()
    assert got.early.tolist() == want.early.tolist()
    assert (got.too_late, got.too_early) == (want.too_late, want.too_early)
    after = window.state()
    assert all(np.array_equal(state[k], after[k], equal_nan=True) for k in state)


def test_tap_counts_into_the_owned_partition_only() -> None:
    """A runtime tap sends admitted counts to the contributor under its current partition."""
    contributor = Contributor("r0")
    contributor.own(_source(1), 3, 40)
    tap = ContributionTap("m", _window(), contributor)
    slots, times = _events(1, 40, 60)
    tap.source = _source(1)
    result = tap.admit(times)
    assert result.accepted.all()
    buckets = np.floor(times / BUCKET).astype(np.int64)
    for bucket, counts in histograms_by_bucket(slots, buckets, W):
        tap.add_counts(bucket, counts)
    tap.source = _source(2)  # not owned: ignored
    tap.add_counts(int(buckets[0]), np.ones((F, W), dtype=np.int64))
    contributor.consumed(_source(1), 60)
    fold = FleetFold({"m": _window()})
    fold.apply(encode_claim(_source(1), 3, "r0")[1])
    for _, value in contributor.commit(_source(1)):
        outcome = fold.apply(value)
    assert (outcome.result, outcome.from_offset, outcome.to_offset) == (
        CommitResult.ACCEPTED,
        40,
        60,
    )
    oracle = _window()
    oracle.add(slots, times)
    assert _held(fold.windows["m"]) == _held(oracle)
    assert fold.windows["m"].watermark == float(times.max())


def test_a_claim_of_a_source_outside_the_group_s_topics_takes_no_leadership() -> None:
    """A rogue claim of "!:0" (sorted first, of no topic of the group) leaves the owner of the
    lowest partition the leader, which without the topics it would not be."""
    node = FleetNode(
        cast(StateLog, None),
        {},
        member="r1",
        publish_interval=1.0,
        snapshot_interval=60.0,
        metrics=FleetMetrics(CollectorRegistry()),
        logger=structlog.get_logger(),
        topics=frozenset({"t"}),
    )
    node.fold.apply(encode_claim("t:0", 1, "r1")[1])
    node.contributor.own("t:0", 1, 0)
    assert node._leads()
    node.fold.apply(encode_claim("!:0", 1, "ghost")[1])
    node.fold.apply(encode_claim("t:x", 1, "ghost")[1])
    assert node._leads()
    node.topics = None
    assert not node._leads()


def test_state_batches_the_reader_skipped_count_as_undecodable_records_once() -> None:
    """fold_metrics adds the reader's skipped batches to the fold's undecodable refusals in
    driftmon_state_records_rejected_total, each once, beside the fold's own."""

    class Reader:
        def __init__(self) -> None:
            self.skipped = [2, 0, 1]

        def skipped_batches(self) -> int:
            return self.skipped.pop(0)

    registry = CollectorRegistry()
    node = FleetNode(
        cast(StateLog, Reader()),
        {},
        member="r1",
        publish_interval=1.0,
        snapshot_interval=60.0,
        metrics=FleetMetrics(registry),
        logger=structlog.get_logger(),
    )
    node.fold.apply(b"\x00not a record")
    seen = []
    for _ in range(3):
        node.fold_metrics()
        labels = {"reason": "undecodable"}
        seen.append(registry.get_sample_value("driftmon_state_records_rejected_total", labels))
    assert seen == [3.0, 3.0, 4.0]
    assert node.fold.rejected == {StateRejectReason.UNDECODABLE: 1}  # the fold's own


def test_a_watermark_beyond_the_clock_s_future_limit_is_refused() -> None:
    """With a clock, a commit whose watermark is more than max_future_seconds + 300 s ahead is
    refused and moves nothing; one at the limit folds."""
    window = EventTimeWindow((F, W), BUCKET, LENGTH, LATENESS, max_future_seconds=10.0)
    fold = FleetFold({"m": window}, clock=lambda: 1000.0)
    fold.apply(encode_claim(_source(0), 1, "r0")[1])
    limit = 1000.0 + 10.0 + MAX_CLOCK_SKEW_S

    def commit(lo: int, watermark: float) -> FoldOutcome:
        counts = np.zeros((F, W), dtype=np.int64)
        counts[0, 1] = 1
        bucket = int(window.ring.bucket_of(np.asarray([watermark]))[0])
        increment = model_increment("m", (F, W), watermark, {bucket: counts})
        _, value = encode_commit(_source(0), 1, "r0", lo, lo + 1, [increment])[-1]
        return fold.apply(value)

    refused = commit(0, limit + 1.0)
    assert refused.rejected is not None and refused.rejected.reason is R.INVALID_RECORD
    assert "beyond this clock's limit" in refused.rejected.detail
    assert fold.head(_source(0)).next is None and "m" not in fold.marks
    assert commit(0, limit).result is CommitResult.ACCEPTED


def _ring_increment(reference_id: str, rows: int, width: int) -> ModelIncrement:
    """One count in a ring of `rows` rows (names r0, r1, ...) and `width` columns."""

    def one(value: int) -> bytes:
        return np.asarray([value], dtype="<i8").tobytes()

    laid = [Row(f"r{i}", "d", width - 2) for i in range(rows)]
    return ModelIncrement("m", rows, width, 1000.0, one(100), one(0), one(1), reference_id, laid)


def test_rings_beyond_the_model_s_cell_budget_are_refused_like_a_seventh() -> None:
    """Six references of 2 x 2 + 100 rows at the widest layout (642,000 cells a bucket) get no
    ring beyond the 2-feature model's budget (24,696); six of the configured rows all fold."""
    budget = RING_CELLS_PER_FEATURE * F
    hostile = _declared_fold()
    for i in range(6):
        increment = _ring_increment(f"h{i}", 2 * F + EXTRA_ROWS, MAX_WIDTH)
        _, value = encode_commit(_source(0), 1, "r0", i, i + 1, [increment])[-1]
        assert hostile.apply(value).result is CommitResult.ACCEPTED
    held = sum(ring.total.size for ring in hostile.rings["m"].values())
    assert held <= budget and hostile.rejected[R.TOO_MANY_REFERENCES] == 6
    legit = _declared_fold()
    for i in range(6):
        _, value = encode_commit(
            _source(0), 1, "r0", i, i + 1, [_ring_increment(f"l{i}", F, MAX_WIDTH)]
        )[-1]
        assert legit.apply(value).result is CommitResult.ACCEPTED
    assert len(legit.rings["m"]) == 6 and not legit.rejected


def _hold_node(runtimes: dict[str, Any]) -> FleetNode:
    """A node owning source t:0 (claim epoch 1), over stand-in runtimes."""
    node = FleetNode(
        cast(StateLog, None),
        runtimes,
        member="r1",
        publish_interval=1.0,
        snapshot_interval=60.0,
        metrics=FleetMetrics(CollectorRegistry()),
        logger=structlog.get_logger(),
    )
    node.assigned = {("t", 0)}
    node.contributor.own("t:0", 1, 0)
    return node


def _warm_runtime(ready: bool, reference_id: str = "") -> Any:
    return SimpleNamespace(
        mode=ReferenceMode.WARMUP, ready=ready, reference_id=reference_id, name="m"
    )


def test_a_held_source_is_read_again_once_its_models_adopted_skipping_what_each_was_given() -> None:
    """Held t:0 (model a counted with its own fit from offset 300): nothing happens while a is
    on its own fit; once a has the registry's reference, t:0 is dropped and unclaimed, a skips
    its warm-up (before 300) and b, still warming, what it buffered (before 450)."""
    a, b = _warm_runtime(True, "own"), _warm_runtime(False)
    node = _hold_node({"a": a, "b": b})
    node._held = {"t:0": {"a"}}
    node._fit_from = {("a", "t:0"): 300}
    node._seen = {("a", "t:0"): 900, ("b", "t:0"): 450}
    node.registry_active = {"a": "registry"}
    node._release()
    assert node._held and "t:0" in node.contributor.owned and not node.unclaimed
    a.reference_id = "registry"
    node._release()
    assert not node._held and "t:0" not in node.contributor.owned
    assert node.unclaimed == {("t", 0)}
    assert node._skip == {("a", "t:0"): 300, ("b", "t:0"): 450}


def test_the_read_again_gives_a_model_only_what_it_was_not_given() -> None:
    """Offsets 440, 450, 460 of t:0 for a model that skips before 450: 440 is accepted without
    being counted again, the rest pass, and the skip ends there; a stale partition is left
    alone."""
    node = _hold_node({"b": _warm_runtime(False)})
    node._skip = {("b", "t:0"): 450}
    messages = [RawMessage("t", 0, offset, 1, b"{}") for offset in (440, 450, 460)]
    columns = ModelColumns(
        model="b",
        times=np.asarray([1.0, 2.0, 3.0]),
        numeric=np.asarray([[10.0, 20.0, 30.0]]),
        categorical=(),
        model_version="",
        sources=np.zeros(3, dtype=np.int32),
        messages=np.arange(3, dtype=np.int32),
    )
    account = BatchAccount()
    stale = node._without_rereads(
        "b", columns, [("t", 0)], account, messages, frozenset({("t", 0)})
    )
    assert stale is columns and node._skip
    kept = node._without_rereads("b", columns, [("t", 0)], account, messages, frozenset())
    assert kept.numeric.tolist() == [[20.0, 30.0]] and kept.messages.tolist() == [1, 2]
    assert account.events_accepted == {"b": 1} and not node._skip


class _RegistryList:
    """The registry topic as a list of records (`fleet_node.RegistryWriter`)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.opened = 0

    def __call__(self) -> _RegistryList:
        self.opened += 1
        return self

    def ensure_topic(self) -> bool:
        return True

    def read_to_end(self, table: registry.RegistryTable) -> list[Any]:
        for _, value in self.records:
            table.apply(value)
        return []

    def publish(self, records: Any) -> None:
        self.records.extend(records)

    def close(self) -> None:
        pass


def test_a_warm_up_profile_too_large_for_the_registry_is_logged_once_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The leader's warm-up profile beyond the registry's bound is an error line, once, and
    the loop goes on (raised, it stopped the daemon at every restart); within it, it is
    published with its activation."""
    specs = [FeatureSpec("x", FeatureKind.NUMERIC)]
    profile = fit_profile("m", specs, {"x": np.random.default_rng(3).normal(size=500)}, {})
    runtime = SimpleNamespace(mode=ReferenceMode.WARMUP, profile=profile, extension=None)
    size = len(profile_to_json(profile).encode())

    def node_with(writer: _RegistryList) -> FleetNode:
        node = _hold_node({"m": runtime})
        node._registry_writer = writer
        node.fold.apply(encode_claim("t:0", 1, "r1")[1])
        return node

    monkeypatch.setattr(registry, "MAX_PROFILE_BYTES", size - 1)
    writer = _RegistryList()
    node = node_with(writer)
    with structlog.testing.capture_logs() as logs:
        node._publish_warmups()
        node._publish_warmups()
    assert writer.records == [] and writer.opened == 1
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "fleet warm-up reference cannot be registered; the replicas keep counting with their "
        "own fits"
    ]
    monkeypatch.setattr(registry, "MAX_PROFILE_BYTES", size)
    writer = _RegistryList()
    node_with(writer)._publish_warmups()
    table = registry.RegistryTable()
    writer.read_to_end(table)
    assert table.activations["m"].reference_id == profile.reference_id
