"""Warm-up sample ends on the state topic (`sample` records, docs/fleet.md "Warm-up").

A replica whose warm-up completes writes, per owned source partition, the offset after its
sample; the fold keeps it on the partition's head while the chain head lags it, and whoever
claims the partition from such a head skips that model's sample on the read (a rebalance or
a crash during the warm-up hold otherwise let the next owner count the sample).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import numpy as np
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor.account import BatchAccount
from monitor.decode import ModelColumns
from monitor.errors import SourceError, StateRejectReason
from monitor.fleet import MAX_SAMPLES_PER_SOURCE, FleetFold
from monitor.fleet_node import FleetNode
from monitor.fleet_records import (
    SampleRecord,
    SnapshotBody,
    decode_record,
    encode_claim,
    encode_sample,
)
from monitor.metrics import FleetMetrics
from monitor.model import RawMessage, ReferenceMode
from monitor.state_log import StateLog, StateRecord
from tests.unit.test_fleet import _apply_all, _commit, _source, _window

SOURCE = _source(0)


def _claimed_fold(head: int) -> FleetFold:
    """A fold where member a claimed events:0 (epoch 1) and committed [0, head)."""
    fold = FleetFold({"m": _window()})
    fold.apply(encode_claim(SOURCE, 1, "a")[1])
    _apply_all(fold, _commit(1, 0, head))
    return fold


def test_a_sample_end_beyond_the_head_stays_until_a_commit_reaches_it() -> None:
    """Kept across a claim by another member (whose read starts behind it), dropped once the
    chain head reaches it; one behind the head is not kept at all."""
    fold = _claimed_fold(100)
    assert fold.apply(encode_sample(SOURCE, 1, "a", "m", 300)[1]).kind == "sample"
    fold.apply(encode_sample(SOURCE, 1, "a", "old", 60)[1])
    assert fold.head(SOURCE).samples == {"m": 300}
    claim = fold.apply(encode_claim(SOURCE, 2, "b")[1])
    assert claim.start == 100 and fold.head(SOURCE).samples_beyond(claim.start) == {"m": 300}
    _apply_all(fold, _commit(2, 100, 299))
    assert fold.head(SOURCE).samples == {"m": 300}
    _apply_all(fold, _commit(2, 299, 300))
    assert fold.head(SOURCE).samples == {} and not fold.rejected


def test_a_sample_end_of_a_former_owner_is_ignored_and_a_malformed_one_refused() -> None:
    """An older epoch's or an unclaimed source's sample changes nothing and is no defect; a
    sample without a model or with a name beyond the model-name limit is refused."""
    fold = _claimed_fold(10)
    fold.apply(encode_claim(SOURCE, 2, "b")[1])
    fold.apply(encode_sample(SOURCE, 1, "a", "m", 300)[1])
    fold.apply(encode_sample(_source(1), 1, "a", "m", 300)[1])
    assert fold.head(SOURCE).samples == {} and _source(1) not in fold.heads
    assert not fold.rejected
    for model in ("", "m" * 65):
        assert fold.apply(encode_sample(SOURCE, 2, "b", model, 300)[1]).kind == "rejected"
    assert fold.rejected == {StateRejectReason.INVALID_RECORD: 2}


def test_a_head_keeps_a_bounded_number_of_sample_ends() -> None:
    """A writer naming ever more models cannot grow a head beyond MAX_SAMPLES_PER_SOURCE;
    a model already kept is still moved on."""
    fold = _claimed_fold(10)
    for i in range(MAX_SAMPLES_PER_SOURCE + 6):
        fold.apply(encode_sample(SOURCE, 1, "a", f"m{i}", 100 + i)[1])
    fold.apply(encode_sample(SOURCE, 1, "a", "m0", 500)[1])
    samples = fold.head(SOURCE).samples
    assert len(samples) == MAX_SAMPLES_PER_SOURCE and samples["m0"] == 500


def test_sample_ends_survive_a_snapshot_and_an_older_snapshot_still_loads() -> None:
    """Through the snapshot codec and `restore`; a head written before sample ends existed
    (no `samples` field) restores without any, a head without any is written without the
    field (a replica of the older version reads that snapshot), and a snapshot's head keeps
    no more than a `sample` record would have left (names, count)."""
    assert b"samples" not in msgspec.msgpack.encode(_claimed_fold(100).snapshot_body())
    fold = _claimed_fold(100)
    fold.apply(encode_sample(SOURCE, 1, "a", "m", 300)[1])
    raw = msgspec.msgpack.encode(fold.snapshot_body())
    restored = FleetFold({"m": _window()})
    assert restored.restore(msgspec.msgpack.decode(raw, type=SnapshotBody)) is None
    assert restored.head(SOURCE).samples == {"m": 300} and restored.head(SOURCE).next == 100
    older = msgspec.msgpack.decode(raw)
    for head in older["heads"]:
        del head["samples"]
    body = msgspec.msgpack.decode(msgspec.msgpack.encode(older), type=SnapshotBody)
    again = FleetFold({"m": _window()})
    assert again.restore(body) is None and again.head(SOURCE).samples == {}
    hostile = msgspec.msgpack.decode(raw)
    hostile["heads"][0]["samples"] = {"x" * 65: 500, **{f"m{i}": 500 for i in range(70)}}
    body = msgspec.msgpack.decode(msgspec.msgpack.encode(hostile), type=SnapshotBody)
    assert again.restore(body) is None
    kept = again.head(SOURCE).samples
    assert len(kept) == MAX_SAMPLES_PER_SOURCE and all(len(m) <= 64 for m in kept)


class _Topic:
    """The state topic as one list of records, read in order (`StateLog`'s calls)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.read = 0

    def publish(self, records: list[tuple[bytes, bytes]], partition: int | None = None) -> None:
        self.records.extend(records)

    def read_to_end(self, handle: Callable[[StateRecord], None]) -> int:
        start, self.read = self.read, len(self.records)
        for offset in range(start, self.read):
            key, value = self.records[offset]
            handle(StateRecord(0, offset, key, value))
        return self.read - start


class _Warming:
    """A `warmup` model's runtime: ready once `need` of its events were given to it."""

    mode = ReferenceMode.WARMUP
    name = "m"
    reference_id = ""
    tap = None

    def __init__(self, need: int) -> None:
        self.done, self.need = 0, need

    @property
    def ready(self) -> bool:
        return self.done >= self.need

    @property
    def warmup_progress(self) -> tuple[int, int]:
        return self.done, self.need

    def ingest(self, columns: ModelColumns, account: BatchAccount, messages: Any) -> None:
        if not self.ready:
            self.reference_id = "own"
        self.done += len(columns)


def _node(runtime: Any, topic: _Topic) -> FleetNode:
    """A node owning events:0 and events:1 with claim epoch 1."""
    node = FleetNode(
        cast(StateLog, topic),
        {"m": runtime},
        member="r1",
        publish_interval=1.0,
        snapshot_interval=60.0,
        metrics=FleetMetrics(CollectorRegistry()),
        logger=structlog.get_logger(),
    )
    for p in (0, 1):
        node.assigned.add(("events", p))
        node.contributor.own(_source(p), 1, 0)
    return node


def _batch(rows: list[tuple[int, int]]) -> tuple[ModelColumns, list[RawMessage]]:
    """Columns of model m for (partition, offset) rows, and their messages."""
    messages = [RawMessage("events", p, offset, 1, b"{}") for p, offset in rows]
    columns = ModelColumns(
        model="m",
        times=np.arange(len(rows), dtype=np.float64),
        numeric=np.zeros((1, len(rows))),
        categorical=(),
        model_version="",
        sources=np.asarray([p for p, _ in rows], dtype=np.int32),
        messages=np.arange(len(rows), dtype=np.int32),
    )
    return columns, messages


def test_a_replica_writes_where_its_warm_up_sample_ended_on_each_source_once_complete() -> None:
    """A 5-event warm-up over two batches: nothing is written while it fills; when it
    completes, events:0's sample ends after offset 2 (its offset 3 came after the fifth
    event) and events:1's after offset 1, both under the replica's claim epoch."""
    topic = _Topic()
    runtime = _Warming(5)
    node = _node(runtime, topic)
    partitions = [("events", 0), ("events", 1)]
    for rows in ([(0, 0), (0, 1), (0, 2), (1, 0)], [(1, 1), (0, 3), (1, 2)]):
        columns, messages = _batch(rows)
        assert not topic.records
        node._ingest_untapped(cast(Any, runtime), columns, partitions, BatchAccount(), messages)
    samples = [decode_record(value) for _, value in topic.records]
    assert all(isinstance(s, SampleRecord) for s in samples)
    ends = {(s.source, s.model, s.epoch, s.member): s.until for s in samples}  # type: ignore[union-attr]
    assert ends == {(_source(0), "m", 1, "r1"): 3, (_source(1), "m", 1, "r1"): 2}
    assert [key for key, _ in topic.records] == [_source(0).encode(), _source(1).encode()]
    assert node._held == {_source(0): {"m"}, _source(1): {"m"}}  # then held, as before


def test_a_claim_from_a_head_behind_a_sample_end_skips_that_sample() -> None:
    """Member a counted events:0 up to 100 and its warm-up sample ended at 300: the next
    claimant starts at 100 and skips model m's records before 300; from 300 on, or with a
    larger skip of its own read again, nothing changes."""
    topic = _Topic()
    topic.publish([encode_claim(SOURCE, 1, "a")])
    topic.publish([(SOURCE.encode(), value) for value in _commit(1, 0, 100)])
    topic.publish([encode_sample(SOURCE, 1, "a", "m", 300)])
    node = _node(SimpleNamespace(mode=ReferenceMode.WARMUP, ready=True, name="m"), topic)
    node.contributor.drop(SOURCE)
    assert node.claim(frozenset({("events", 0)})) == {("events", 0): 100}
    assert node._skip == {("m", SOURCE): 300}
    node._skip = {}
    node._skip_samples(SOURCE, 300)
    assert node._skip == {}
    node._skip = {("m", SOURCE): 350}
    node._skip_samples(SOURCE, None)
    assert node._skip == {("m", SOURCE): 350}


_STEP = st.one_of(
    st.tuples(st.just("claim"), st.integers(0, 3)),
    st.tuples(st.just("commit"), st.integers(1, 40)),
    st.tuples(st.just("sample"), st.sampled_from(["m", "n"]), st.integers(-5, 60), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, max_size=40))
def test_random_schedules_keep_exactly_the_sample_ends_beyond_the_head(steps: list[Any]) -> None:
    """Claims (some stale), contiguous commits and sample ends (some of a former epoch) in
    any order: after every record the head holds, per model, the largest end written under
    its current epoch beyond the chain head that no commit has reached since; a snapshot
    restores the heads exactly."""
    fold = FleetFold({"m": _window()})
    epoch, head = 0, None
    want: dict[str, int] = {}
    for step in steps:
        if step[0] == "claim":
            claimed = epoch + step[1]
            fold.apply(encode_claim(SOURCE, claimed, "a")[1])
            epoch = max(epoch, claimed)
        elif step[0] == "commit" and epoch:
            start = head or 0
            _apply_all(fold, _commit(epoch, start, start + step[1]))
            head = start + step[1]
            want = {m: u for m, u in want.items() if u > head}
        elif step[0] == "sample" and epoch:
            _, model, delta, stale = step
            until = max(0, (head or 0) + delta)
            fold.apply(encode_sample(SOURCE, epoch - stale, "a", model, until)[1])
            if not stale and (head is None or until > head):
                want[model] = max(want.get(model, 0), until)
        assert fold.head(SOURCE).samples == want
        assert fold.head(SOURCE).next == head
    restored = FleetFold({"m": _window()})
    assert restored.restore(fold.snapshot_body()) is None
    assert restored.heads == fold.heads


class _FlakyTopic(_Topic):
    """A state topic whose next `failures` publishes fail (a broker that is away)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def publish(self, records: list[tuple[bytes, bytes]], partition: int | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise SourceError("state topic unavailable")
        super().publish(records, partition)

    def poll(self, timeout_s: float = 0.0, max_records: int = 5000) -> list[StateRecord]:
        return []

    def lag(self) -> int:
        return 0

    def skipped_batches(self) -> int:
        return 0


def _completed_warm_up(topic: _Topic) -> FleetNode:
    """The 5-event warm-up of the test above, completed on a node over `topic`."""
    runtime = _Warming(5)
    node = _node(runtime, topic)
    partitions = [("events", 0), ("events", 1)]
    for rows in ([(0, 0), (0, 1), (0, 2), (1, 0)], [(1, 1), (0, 3), (1, 2)]):
        columns, messages = _batch(rows)
        node._ingest_untapped(cast(Any, runtime), columns, partitions, BatchAccount(), messages)
    node._attach = lambda: None  # type: ignore[method-assign]  # no windows for this runtime
    return node


def _sample_ends(topic: _Topic) -> list[tuple[str, str, int, int]]:
    samples = [decode_record(value) for _, value in topic.records]
    assert all(isinstance(s, SampleRecord) for s in samples)
    return [(s.source, s.model, s.epoch, s.until) for s in cast(list[SampleRecord], samples)]


def test_sample_ends_whose_write_failed_are_written_on_a_later_turn_once() -> None:
    """The write fails when the warm-up completes and on the next turn (which goes on with
    the rest of its work); the turn after writes both ends under the claim epoch, and later
    turns write nothing more."""
    topic = _FlakyTopic(failures=2)
    node = _completed_warm_up(topic)
    assert topic.records == [] and topic.failures == 1
    node.step()
    assert topic.records == [] and topic.failures == 0
    assert node.error == "" and node._next_publish > 0  # the rest of the turn ran
    node.step()
    node.step()
    assert _sample_ends(topic) == [(_source(0), "m", 1, 3), (_source(1), "m", 1, 2)]


def test_a_revocation_writes_the_unwritten_sample_ends_before_the_source_goes() -> None:
    """A failed write, then events:0 is revoked: its sample end (and events:1's) is written
    before the replica lets it go; a source revoked while the broker is still away loses its
    unwritten end (the next owner has the documented gap), the others keep theirs."""
    topic = _FlakyTopic(failures=1)
    node = _completed_warm_up(topic)
    node.on_revoke(frozenset({("events", 0)}))
    assert _sample_ends(topic) == [(_source(0), "m", 1, 3), (_source(1), "m", 1, 2)]
    topic = _FlakyTopic(failures=2)
    node = _completed_warm_up(topic)
    node.on_revoke(frozenset({("events", 0)}))
    assert node._unwritten_samples == {"m": {_source(1): 2}}
    node.step()
    assert _sample_ends(topic) == [(_source(1), "m", 1, 2)]
