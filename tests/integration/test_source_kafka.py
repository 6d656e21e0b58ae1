"""KafkaSource / KafkaSink against a real tansu broker (tests/support/broker.py)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from kafka import KafkaProducer

from monitor import kafka_records
from monitor.errors import ConfigError, SourceError, UnreadableReason
from monitor.model import RawMessage
from monitor.source import TP, KafkaSink, KafkaSource, crc32c_available, producer_kwargs
from tests.support.broker import FAST_CONSUMER_KWARGS, TansuBroker, free_port


def consumer_kwargs(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """Consumer kwargs as the config module would produce them, with tansu-friendly timeouts."""
    return {
        "bootstrap_servers": bootstrap,
        "group_id": f"grp-{uuid.uuid4().hex[:8]}",
        "auto_offset_reset": "earliest",
        "reconnect_backoff_max_ms": 500,
        **FAST_CONSUMER_KWARGS,
        **extra,
    }


class Recorder:
    """Records rebalance callbacks and answers on_assign with fixed checkpoint offsets."""

    def __init__(self, checkpoint: Mapping[TP, int] | None = None) -> None:
        self.checkpoint = dict(checkpoint or {})
        self.assigned: list[frozenset[TP]] = []
        self.revoked: list[frozenset[TP]] = []

    def on_assign(self, partitions: frozenset[TP]) -> Mapping[TP, int]:
        self.assigned.append(partitions)
        return self.checkpoint

    def on_revoke(self, partitions: frozenset[TP]) -> None:
        self.revoked.append(partitions)


@pytest.fixture
def open_source() -> Iterator[Callable[..., tuple[KafkaSource, Recorder]]]:
    """Factory for KafkaSources that are all closed at teardown."""
    sources: list[KafkaSource] = []

    def make(
        kwargs: dict[str, Any], topics: list[str], recorder: Recorder | None = None, **opts: Any
    ) -> tuple[KafkaSource, Recorder]:
        rec = recorder or Recorder()
        src = KafkaSource(kwargs, topics, rec.on_assign, rec.on_revoke, **opts)
        sources.append(src)
        return src, rec

    yield make
    for s in sources:
        s.close()


def poll_until(
    source: KafkaSource, n: int, timeout_s: float = 20.0, max_records: int = 500
) -> list[RawMessage]:
    """Poll until at least `n` records arrived (fails on timeout), then once more for extras."""
    got: list[RawMessage] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} records within {timeout_s}s"
        got += source.poll(0.3, max_records)
    got += source.poll(0.3, max_records)
    return got


def wait_for(
    predicate: Callable[[], bool], source: KafkaSource, timeout_s: float
) -> list[RawMessage]:
    """Poll `source` until `predicate()` holds (fails on timeout); returns what was polled."""
    got: list[RawMessage] = []
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s}s"
        got += source.poll(0.3, 500)
    return got


def test_crc32c_extension_is_installed() -> None:
    """The crc32c C extension is importable, so record CRC checks run at native speed."""
    assert crc32c_available()


def test_poll_returns_every_record_with_its_coordinates(
    broker: TansuBroker, topic: str, open_source: Callable[..., tuple[KafkaSource, Recorder]]
) -> None:
    """All produced records come back once, in offset order, with topic/partition/value."""
    values = [f"value-{i}".encode() for i in range(25)]
    broker.produce(topic, values)
    src, rec = open_source(consumer_kwargs(broker.bootstrap), [topic])
    got = poll_until(src, len(values), max_records=7)
    assert [(m.topic, m.partition, m.offset) for m in got] == [(topic, 0, i) for i in range(25)]
    assert [m.value for m in got] == values
    assert all(m.timestamp_ms is not None and m.timestamp_ms > 0 for m in got)
    assert src.is_connected()
    assert src.assignment() == frozenset({(topic, 0)})
    assert rec.assigned == [frozenset({(topic, 0)})]


def test_lag_is_highwater_minus_position(
    broker: TansuBroker, topic: str, open_source: Callable[..., tuple[KafkaSource, Recorder]]
) -> None:
    """After reading 4 of 10 records the lag is 6, and 0 once everything is read."""
    broker.produce(topic, [b"x"] * 10)
    src, _ = open_source(consumer_kwargs(broker.bootstrap), [topic])
    first: list[RawMessage] = []
    deadline = time.monotonic() + 20.0
    while not first:
        assert time.monotonic() < deadline, "no record within 20s"
        first = src.poll(0.3, 4)
    assert [m.offset for m in first] == [0, 1, 2, 3]
    assert src.lag() == {(topic, 0): 6}
    poll_until(src, 6)
    assert src.lag() == {(topic, 0): 0}


def test_commit_then_new_member_resumes_at_committed_offset(
    broker: TansuBroker, topic: str, open_source: Callable[..., tuple[KafkaSource, Recorder]]
) -> None:
    """A new consumer in the same group starts exactly at the offset committed by the last."""
    broker.produce(topic, [f"m{i}".encode() for i in range(10)])
    kwargs = consumer_kwargs(broker.bootstrap)
    first, _ = open_source(kwargs, [topic])
    assert len(poll_until(first, 10)) == 10
    first.commit({(topic, 0): 6})
    first.close()
    second, _ = open_source(kwargs, [topic])
    got = poll_until(second, 4)
    assert [m.offset for m in got] == [6, 7, 8, 9]
    assert [m.value for m in got] == [b"m6", b"m7", b"m8", b"m9"]


def test_on_assign_seeks_each_partition_to_its_checkpoint(
    broker: TansuBroker,
    make_topic: Callable[[int], str],
    open_source: Callable[..., tuple[KafkaSource, Recorder]],
) -> None:
    """Each of 3 partitions resumes exactly at the offset on_assign returned for it."""
    name = make_topic(3)
    for p in range(3):
        broker.produce(name, [f"p{p}-{i}".encode() for i in range(10)], partition=p)
    checkpoint = {(name, 0): 3, (name, 1): 0, (name, 2): 9, ("other-topic", 0): 5}
    src, rec = open_source(consumer_kwargs(broker.bootstrap), [name], Recorder(checkpoint))
    got = poll_until(src, 7 + 10 + 1)
    by_partition = {p: [m.offset for m in got if m.partition == p] for p in range(3)}
    assert by_partition == {0: list(range(3, 10)), 1: list(range(10)), 2: [9]}
    assert all(m.value == f"p{m.partition}-{m.offset}".encode() for m in got)
    assert rec.assigned == [frozenset({(name, 0), (name, 1), (name, 2)})]
    src.close()
    assert rec.revoked[-1] == frozenset({(name, 0), (name, 1), (name, 2)})


def test_exception_in_on_assign_propagates_from_poll(
    broker: TansuBroker, topic: str, open_source: Callable[..., tuple[KafkaSource, Recorder]]
) -> None:
    """A failing checkpoint load in on_assign is raised by poll(), not swallowed as an outage."""

    class Broken(Recorder):
        def on_assign(self, partitions: frozenset[TP]) -> Mapping[TP, int]:
            raise RuntimeError("checkpoint unreadable")

    src, _ = open_source(consumer_kwargs(broker.bootstrap), [topic], Broken())
    deadline = time.monotonic() + 20.0
    with pytest.raises(RuntimeError, match="checkpoint unreadable"):
        while time.monotonic() < deadline:
            src.poll(0.3, 10)


def test_broker_outage_then_recovery_with_the_same_source(
    open_source: Callable[..., tuple[KafkaSource, Recorder]],
) -> None:
    """Stopping the broker gives [] polls and is_connected() False; restarting resumes flow."""
    with TansuBroker() as b:
        b.create_topic("events")
        b.produce("events", [b"before-0", b"before-1", b"before-2"])
        src, _ = open_source(consumer_kwargs(b.bootstrap), ["events"], request_timeout_s=1.0)
        assert [m.value for m in poll_until(src, 3)] == [b"before-0", b"before-1", b"before-2"]
        assert src.is_connected()

        b.stop()
        stopped_at = time.monotonic()
        assert wait_for(lambda: not src.is_connected(), src, 5.0) == []
        assert time.monotonic() - stopped_at < 5.0
        assert src.poll(0.3, 10) == []
        with pytest.raises(SourceError):
            src.commit({("events", 0): 3})

        b.start()  # memory storage: the topic and the group are gone
        b.create_topic("events")
        after = [f"after-{i}".encode() for i in range(6)]
        b.produce("events", after, partition=0)
        got: list[RawMessage] = []
        deadline = time.monotonic() + 30.0
        while not got or got[-1].value != after[-1]:
            assert time.monotonic() < deadline, f"{len(got)} records within 30 s"
            got += src.poll(0.3, 500)
        got += src.poll(0.3, 500)
        # Where partition 0 resumes is a race the test does not control: the consumer may
        # fetch at its old position 3 before the new log reaches it (tansu then answers
        # with no records instead of OFFSET_OUT_OF_RANGE, so no reset to 0 happens), and
        # its own metadata request may recreate the topic before create_topic does. Either
        # way the records from the resumed position on arrive, once each, in offset order.
        first = got[0].offset
        assert first in (0, 3)
        assert [(m.partition, m.offset, m.value) for m in got] == [
            (0, i, after[i]) for i in range(first, len(after))
        ]
        assert src.is_connected()


def test_source_started_while_broker_down_connects_later(
    open_source: Callable[..., tuple[KafkaSource, Recorder]],
) -> None:
    """With no broker, poll() returns [] without raising; once a broker appears, records flow."""
    port = free_port()
    src, _ = open_source(
        consumer_kwargs(f"127.0.0.1:{port}"),
        ["late"],
        connect_timeout_s=0.3,
        backoff_initial_s=0.2,
        backoff_max_s=0.5,
    )
    threads_before = threading.active_count()
    for _ in range(3):
        assert src.poll(0.2, 10) == []
        assert not src.is_connected()
    assert threading.active_count() <= threads_before  # failed connects leak no IO threads
    with TansuBroker(port=port) as b:
        b.create_topic("late")
        b.produce("late", [b"hello"])
        got = poll_until(src, 1, timeout_s=20.0)
        assert [(m.topic, m.offset, m.value) for m in got] == [("late", 0, b"hello")]
        assert src.is_connected()


def test_connect_and_commit_raise_source_error_without_broker() -> None:
    """connect() and commit() report an unreachable cluster as SourceError, quickly."""
    src = KafkaSource(
        consumer_kwargs(f"127.0.0.1:{free_port()}"),
        ["t"],
        lambda _: {},
        lambda _: None,
        connect_timeout_s=0.3,
    )
    started = time.monotonic()
    with pytest.raises(SourceError):
        src.connect()
    assert time.monotonic() - started < 3.0
    with pytest.raises(SourceError):
        src.commit({("t", 0): 1})
    assert not src.is_connected()
    assert src.assignment() == frozenset()
    assert src.lag() == {}
    src.close()


def test_unknown_consumer_option_is_a_config_error() -> None:
    """A misspelled consumer option fails at construction, naming the key."""
    with pytest.raises(ConfigError, match="sesion_timeout_ms"):
        KafkaSource({"sesion_timeout_ms": 1}, ["t"], lambda _: {}, lambda _: None)


def test_producer_kwargs_keep_connection_settings_only() -> None:
    """producer_kwargs drops consumer-only keys and keeps connection and security keys."""
    ckw = consumer_kwargs("127.0.0.1:1", security_protocol="SASL_SSL", sasl_mechanism="PLAIN")
    pkw = producer_kwargs(ckw)
    assert pkw == {
        "bootstrap_servers": "127.0.0.1:1",
        "reconnect_backoff_max_ms": 500,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
    }


def test_sink_sends_to_dead_letter_topic(
    broker: TansuBroker,
    make_topic: Callable[[int], str],
    open_source: Callable[..., tuple[KafkaSource, Recorder]],
) -> None:
    """Records sent through KafkaSink arrive on the dead-letter topic with their values."""
    dead_letter = make_topic(1)
    kwargs = consumer_kwargs(broker.bootstrap)
    sink = KafkaSink(producer_kwargs(kwargs))
    try:
        for i in range(3):
            sink.send(dead_letter, f"bad-{i}".encode(), key=b"k")
        sink.flush(timeout_s=10.0)
        assert sink.failed == 0
    finally:
        sink.close()
    src, _ = open_source(kwargs, [dead_letter])
    got = poll_until(src, 3)
    assert [m.value for m in got] == [b"bad-0", b"bad-1", b"bad-2"]


def test_sink_fails_fast_while_backing_off_from_a_dead_broker() -> None:
    """After one timed-out send, further sends fail at once instead of blocking again."""
    sink = KafkaSink({"bootstrap_servers": f"127.0.0.1:{free_port()}"}, max_block_s=0.3)
    try:
        with pytest.raises(SourceError):
            sink.send("dead-letter", b"x")
        started = time.monotonic()
        with pytest.raises(SourceError, match="backing off"):
            sink.send("dead-letter", b"y")
        assert time.monotonic() - started < 0.1
    finally:
        sink.close()


def test_sink_close_with_the_broker_gone_drops_the_queue_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Records queued for a broker that stopped: close() returns within its timeout, warns,
    and stops the producer's thread (kafka-python's close raised and left it running)."""
    with TansuBroker() as b:
        b.create_topic("dead-letter")
        sink = KafkaSink({"bootstrap_servers": b.bootstrap}, max_block_s=1.0)
        sink.send("dead-letter", b"delivered")
        sink.flush(timeout_s=10.0)
        b.stop()
        for i in range(3):
            sink.send("dead-letter", b"queued-%d" % i)
        sender = sink._producer._sender
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="monitor.source"):
            sink.close(timeout_s=0.5)
            assert time.monotonic() - started < 5.0
            sender.join(5.0)
        assert not sender.is_alive()
        said = [r.getMessage() for r in caplog.records if r.name == "monitor.source"]
        assert len(said) == 1 and "still queued" in said[0]  # not one line per dropped record
        assert sink.failed == 3
        sink.close()  # idempotent


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_lean_record_unpacking_gives_kafka_pythons_records(
    broker: TansuBroker,
    topic: str,
    open_source: Callable[..., tuple[KafkaSource, Recorder]],
    monkeypatch: pytest.MonkeyPatch,
    codec: str,
) -> None:
    """Keys, headers, tombstones and batches of every codec come out of the lean path as
    kafka-python's."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec)
    try:
        for i in range(40):
            key = f"k{i}".encode() if i % 3 == 0 or i % 7 == 6 else None
            value = None if i % 7 == 6 else b'{"x": %d}' % i * (1 + i % 5)
            headers = [("trace", b"t%d" % i), ("empty", b"")] if i % 4 == 0 else []
            producer.send(topic, key=key, value=value, headers=headers, partition=0)
            if i % 10 == 9:
                producer.flush()  # several batches
    finally:
        producer.close()
    lean, _ = open_source(consumer_kwargs(broker.bootstrap), [topic])
    lean_records = poll_until(lean, 40, max_records=9)
    assert lean.lean_records
    monkeypatch.setattr(kafka_records, "install", lambda consumer: False)
    stock, _ = open_source(consumer_kwargs(broker.bootstrap), [topic])
    stock_records = poll_until(stock, 40, max_records=9)
    assert not stock.lean_records
    assert lean_records == stock_records
    assert [m.offset for m in lean_records] == list(range(40))
    assert lean_records[0].key == b"k0" and lean_records[6].value is None
    assert lean_records[4].headers == (("trace", b"t4"), ("empty", b""))


class _NotUtf8(str):
    """A header key that a client writes as bytes that are not UTF-8."""

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return b"\xff\xfe"


def test_a_record_with_a_header_key_that_is_not_utf8_does_not_stop_the_partition(
    broker: TansuBroker, topic: str, open_source: Callable[..., tuple[KafkaSource, Recorder]]
) -> None:
    """The records after one whose header key is not UTF-8 still arrive (kafka-python spun)."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        for i in range(10):
            headers = [(_NotUtf8("k"), b"v")] if i == 4 else []
            producer.send(topic, value=b'{"i": %d}' % i, headers=headers, partition=0)
            producer.flush()  # one batch each
    finally:
        producer.close()
    src, _ = open_source(consumer_kwargs(broker.bootstrap), [topic])
    got: list[RawMessage] = []
    reader = threading.Thread(target=lambda: got.extend(poll_until(src, 10)), daemon=True)
    reader.start()
    reader.join(60.0)
    assert not reader.is_alive(), "poll() did not return"
    assert [m.offset for m in got] == list(range(10))
    assert got[4].headers == (("\ufffd\ufffd", b"v"),)


def test_a_poll_over_many_partitions_inflates_at_most_the_gzip_bound(
    broker: TansuBroker,
    make_topic: Callable[[int], str],
    open_source: Callable[..., tuple[KafkaSource, Recorder]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Gzip batches of 600 KiB on four partitions under a 1 MiB bound come one per poll, all
    of them, none skipped (a bound per fetch let a poll hold one per partition)."""
    monkeypatch.setattr(kafka_records, "MAX_INFLATED_BATCH_BYTES", 1 << 20)
    topic = make_topic(4)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip")
    try:
        for i in range(12):
            producer.send(topic, value=bytes(600 << 10), partition=i % 4)
            producer.flush()  # one batch each
    finally:
        producer.close()
    src, _ = open_source(consumer_kwargs(broker.bootstrap), [topic])
    polls: list[list[RawMessage]] = []
    deadline = time.monotonic() + 60.0
    while sum(map(len, polls)) < 12:
        assert time.monotonic() < deadline, f"{sum(map(len, polls))} of 12 records in 60 s"
        polls.append(src.poll(0.3, 500))
    assert src.lean_records
    assert max(len(batch) for batch in polls) == 1  # 2 x 600 KiB > 1 MiB
    got = sorted((m.partition, m.offset) for batch in polls for m in batch)
    assert got == [(p, o) for p in range(4) for o in range(3)]


def test_a_batch_that_fits_only_without_the_held_bytes_waits_for_a_poll_that_holds_none(
    broker: TansuBroker,
    topic: str,
    open_source: Callable[..., tuple[KafkaSource, Recorder]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 600 KiB gzip batch under a 1 MiB bound, polled while the caller holds 500 KiB:
    nothing comes (`held_back` says why) for as long as it holds them; then the record."""
    monkeypatch.setattr(kafka_records, "MAX_INFLATED_BATCH_BYTES", 1 << 20)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip")
    try:
        producer.send(topic, value=bytes(600 << 10), partition=0).get(timeout=30)
    finally:
        producer.close()
    src, _ = open_source(consumer_kwargs(broker.bootstrap), [topic])
    deadline = time.monotonic() + 30.0
    while not src.held_back():
        assert time.monotonic() < deadline, "the batch was never held back"
        assert src.poll(0.3, 500, 500 << 10) == []
    for _ in range(3):
        assert src.poll(0.3, 500, 500 << 10) == []
    got = poll_until(src, 1)
    assert [m.offset for m in got] == [0] and not src.held_back()
    assert src.unreadable_batches() == {}


def test_a_batch_skipped_unread_is_counted_by_the_source(
    broker: TansuBroker,
    topic: str,
    open_source: Callable[..., tuple[KafkaSource, Recorder]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gzip batch beyond the bound between two readable ones: both records arrive, and the
    source reports one too_large batch of its topic, once."""
    monkeypatch.setattr(kafka_records, "MAX_INFLATED_BATCH_BYTES", 1 << 20)
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, compression_type="gzip", max_request_size=4 << 20
    )
    try:
        for value in (b'{"i": 0}', bytes(2 << 20), b'{"i": 2}'):
            producer.send(topic, value=value, partition=0)
            producer.flush()  # one batch each
    finally:
        producer.close()
    src, _ = open_source(consumer_kwargs(broker.bootstrap), [topic])
    got = poll_until(src, 2)
    assert [m.offset for m in got] == [0, 2]
    assert src.unreadable_batches() == {(topic, UnreadableReason.TOO_LARGE): 1}
    assert src.unreadable_batches() == {}
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, compression_type="gzip", max_request_size=4 << 20
    )
    try:
        for value in (bytes(2 << 20), b'{"i": 4}'):  # a second one, counted as well
            producer.send(topic, value=value, partition=0)
            producer.flush()
    finally:
        producer.close()
    assert [m.offset for m in poll_until(src, 1)] == [4]
    assert src.unreadable_batches() == {(topic, UnreadableReason.TOO_LARGE): 1}
