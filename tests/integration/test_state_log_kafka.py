"""The fleet's state topic on the real broker (tansu): StateLog with the fold, without daemons."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from kafka import KafkaProducer

from monitor import kafka_records
from monitor.errors import ClaimResult, CommitResult, StateRejectReason
from monitor.fleet import FleetFold
from monitor.fleet_records import encode_claim, encode_commit, model_increment
from monitor.state_log import PARTITIONS, StateLog, StateRecord
from monitor.window import EventTimeWindow
from tests.support.broker import TansuBroker

SHAPE = (40, 130)


def _window() -> EventTimeWindow:
    return EventTimeWindow(SHAPE, 60.0, 3600.0, 60.0)


def test_claims_and_a_chunked_commit_fold_identically_on_two_readers(broker: TansuBroker) -> None:
    """A claim, a commit larger than one chunk and garbage, read back by two fresh readers."""
    topic = f"state-{uuid.uuid4().hex[:10]}"
    writer = StateLog({"bootstrap_servers": broker.bootstrap}, topic)
    readers = [StateLog({"bootstrap_servers": broker.bootstrap}, topic) for _ in range(2)]
    try:
        assert writer.ensure_topic()
        assert not writer.ensure_topic()
        assert writer.partitions() == list(range(PARTITIONS))
        rng = np.random.default_rng(3)
        dense = {b: rng.integers(0, 50, SHAPE) for b in range(1000, 1060)}
        increment = model_increment("m", SHAPE, 1060 * 60.0 - 1, dense)
        commit = encode_commit("events:0", 1, "a", 0, 500, [increment], chunk_bytes=64 * 1024)
        assert len(commit) > 3, "the commit must need several chunks"
        writer.publish([encode_claim("events:0", 1, "a")])
        writer.publish([(b"events:0", b"\x00not a record")])
        writer.publish(commit)
        writer.publish([encode_claim("events:0", 1, "b")])
        folds = []
        for reader in readers:
            fold = FleetFold({"m": _window()})
            seen: list[StateRecord] = []

            def handle(
                record: StateRecord, fold: FleetFold = fold, seen: list[StateRecord] = seen
            ) -> None:
                seen.append(record)
                fold.apply(record.value)

            assert reader.read_to_end(handle) == len(commit) + 3
            assert reader.lag() == 0
            assert len({r.partition for r in seen}) == 1, "one key, one state partition"
            folds.append(fold)
        for fold in folds:
            assert fold.claims == {ClaimResult.ACCEPTED: 1, ClaimResult.STALE_EPOCH: 1}
            assert fold.commits == {CommitResult.ACCEPTED: 1}
            assert fold.rejected == {StateRejectReason.UNDECODABLE: 1}
            assert fold.head("events:0").next == 500
        want = np.sum(list(dense.values()), axis=0)
        assert folds[0].windows["m"].current().tolist() == want.tolist()
        assert folds[1].windows["m"].current().tolist() == want.tolist()
        assert writer.bytes_published > 64 * 1024
    finally:
        writer.close()
        for reader in readers:
            reader.close()


def test_a_state_batch_skipped_unread_is_counted_once(
    broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzip batch beyond the inflate bound between two claims: both claims are read, and
    the reader reports one skipped batch, once; and once more after a `scan` over it."""
    monkeypatch.setattr(kafka_records, "MAX_INFLATED_BATCH_BYTES", 1 << 20)
    topic = f"state-{uuid.uuid4().hex[:10]}"
    writer = StateLog({"bootstrap_servers": broker.bootstrap}, topic)
    reader = StateLog({"bootstrap_servers": broker.bootstrap}, topic)
    try:
        writer.ensure_topic()
        key, claim = encode_claim("events:0", 1, "a")
        writer.publish([(key, claim)])
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap, compression_type="gzip", max_request_size=4 << 20
        )
        try:
            producer.send(topic, key=key, value=bytes(2 << 20))  # the key's partition
            producer.flush()
        finally:
            producer.close()
        writer.publish([encode_claim("events:0", 2, "b")])
        seen: list[StateRecord] = []
        assert reader.read_to_end(seen.append) == 2
        assert [r.offset for r in seen] == [0, 2]
        assert reader.skipped_batches() == 1 and reader.skipped_batches() == 0
        scanned: list[StateRecord] = []
        assert reader.scan(seen[0].partition, 0, scanned.append) == 2  # a reader of its own
        assert reader.skipped_batches() == 1 and reader.skipped_batches() == 0
    finally:
        writer.close()
        reader.close()
