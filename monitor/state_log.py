"""The fleet's state topic on Kafka: create it, append records, read it (to its end, or tail).

The state topic (`state.topic`, default `driftmon.state`; docs/fleet.md) is created when
missing with `PARTITIONS` partitions and time retention `RETENTION_MS` (7 days: longer
than any window + lateness + lag + 1 h of the defaults; compaction is not needed). Claims
and commits are keyed by their source partition, so all records about one source partition
are in one state partition, in order.

Records are produced one at a time, each acknowledged before the next, so each is its own
record batch: end offsets are then exact even on brokers that misreport them for
multi-record batches (tansu), and the reader's lag (`end - position`) is exact too.
The reader is a group-less consumer assigned every partition of the topic.

With `monitor.source`, `monitor.registry_log` and `monitor.kafka_log`, the only modules that
import `kafka`.
Every method raises SourceError (cluster unreachable, topic refused, timeout) or ConfigError
(bad client settings) with a readable message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka.structs import TopicPartition

from monitor.errors import SourceError
from monitor.kafka_log import KAFKA_ERRORS as _ERRORS
from monitor.kafka_log import MAX_REQUEST_BYTES, ensure_topic, log_consumer, log_producer
from monitor.kafka_records import LeanRecords

DEFAULT_TOPIC = "driftmon.state"
#: Partitions the state topic is created with (its key spreads the source partitions).
PARTITIONS = 6
#: Time retention the state topic is created with (7 days).
RETENTION_MS = 7 * 24 * 3600 * 1000
#: The state partition snapshots are written to (a cold start scans only this one).
SNAPSHOT_PARTITION = 0
TOPIC_CONFIG: dict[str, str] = {
    "cleanup.policy": "delete",
    "retention.ms": str(RETENTION_MS),
    "max.message.bytes": str(MAX_REQUEST_BYTES),
}


@dataclass(frozen=True, slots=True)
class StateRecord:
    """One record read from the state topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class StateLog:
    """The state topic of one cluster, written and read with the daemon's Kafka settings.

    `client_kwargs` are kafka-python connection/security keyword arguments
    (`KafkaSettings.client_kwargs()`). Not thread-safe: one owner thread (the daemon's loop;
    rebalance callbacks run while that thread is blocked in the source's poll).
    """

    def __init__(
        self, client_kwargs: Mapping[str, Any], topic: str = DEFAULT_TOPIC, timeout_s: float = 10.0
    ) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._kwargs = dict(client_kwargs)
        self._consumer: Any = None
        self._lean: LeanRecords | None = None
        self._scan_skipped = 0
        """Record batches `scan` skipped unread, not yet handed out by `skipped_batches`."""
        self._producer: Any = None
        self._partitions: list[TopicPartition] = []
        self.bytes_published = 0
        self._what = f"the state topic {topic!r}"

    def _fail(self, what: str, exc: BaseException) -> SourceError:
        return SourceError(f"{what} the state topic {self.topic!r}: {exc}")

    # -- admin -------------------------------------------------------------------

    def ensure_topic(self, partitions: int = PARTITIONS) -> bool:
        """Create the topic unless it exists; True if created.

        An existing topic is looked up first, so a replica whose principal may read and write
        the state topic but not create topics can use it (docs/security.md).
        """
        return ensure_topic(
            self._kwargs, self.topic, partitions, TOPIC_CONFIG, self.timeout_s, self._what
        )

    # -- write -------------------------------------------------------------------

    def _get_producer(self) -> Any:
        if self._producer is None:
            self._producer = log_producer(self._kwargs, self.timeout_s, self._what)
        return self._producer

    def publish(self, records: Sequence[tuple[bytes, bytes]], partition: int | None = None) -> None:
        """Append `records` in order, each acknowledged before the next (own batch each), to
        the key's partition or to `partition` (snapshots go to SNAPSHOT_PARTITION)."""
        producer = self._get_producer()
        try:
            for key, value in records:
                future = producer.send(self.topic, key=key, value=value, partition=partition)
                future.get(timeout=self.timeout_s)
                self.bytes_published += len(key) + len(value)
        except _ERRORS as exc:
            raise self._fail("cannot write to", exc) from exc

    # -- read --------------------------------------------------------------------

    def _get_consumer(self) -> Any:
        if self._consumer is None:
            consumer, self._lean = log_consumer(
                self._kwargs, self.timeout_s, self._what, fetch_records=8
            )
            try:
                found = consumer.partitions_for_topic(self.topic)
            except _ERRORS as exc:
                consumer.close()
                raise self._fail("cannot reach Kafka for", exc) from exc
            if not found:
                consumer.close()
                raise SourceError(f"the state topic {self.topic!r} does not exist")
            self._partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
            consumer.assign(self._partitions)
            consumer.seek_to_beginning(*self._partitions)
            self._consumer = consumer
        return self._consumer

    def partitions(self) -> list[int]:
        """The state topic's partition numbers."""
        self._get_consumer()
        return [tp.partition for tp in self._partitions]

    def seek(self, positions: Mapping[int, int]) -> None:
        """Read each named partition from the given offset next."""
        consumer = self._get_consumer()
        for partition, offset in positions.items():
            consumer.seek(TopicPartition(self.topic, partition), offset)

    def end_offsets(self) -> dict[int, int]:
        """Each partition's end offset (the next offset to be written)."""
        consumer = self._get_consumer()
        try:
            ends = consumer.end_offsets(self._partitions)
        except _ERRORS as exc:
            raise self._fail("cannot read", exc) from exc
        return {tp.partition: int(end) for tp, end in ends.items()}

    def positions(self) -> dict[int, int]:
        """The next offset this reader returns, per partition."""
        consumer = self._get_consumer()
        try:
            return {
                tp.partition: int(consumer.position(tp, timeout_ms=int(self.timeout_s * 1000)))
                for tp in self._partitions
            }
        except _ERRORS as exc:
            raise self._fail("cannot read", exc) from exc

    def lag(self) -> int:
        """Records written but not yet read, summed over the partitions."""
        ends, positions = self.end_offsets(), self.positions()
        return sum(max(0, end - positions.get(p, 0)) for p, end in ends.items())

    def poll(self, timeout_s: float = 0.0, max_records: int = 5000) -> list[StateRecord]:
        """Whatever records are available (waiting up to `timeout_s`), per partition in order."""
        consumer = self._get_consumer()
        try:
            batches = consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except _ERRORS as exc:
            raise self._fail("cannot read", exc) from exc
        return [
            StateRecord(tp.partition, r.offset, r.key, r.value)
            for tp in sorted(batches, key=lambda tp: tp.partition)
            for r in batches[tp]
        ]

    def skipped_batches(self) -> int:
        """Record batches the reader skipped unread since the last call (`monitor.
        kafka_records`: each also logged with its offsets), `scan`'s included."""
        skipped, self._scan_skipped = self._scan_skipped, 0
        if self._lean is not None and self._lean.unreadable:
            skipped += sum(self._lean.take_unreadable().values())
        return skipped

    def read_to_end(
        self, handle: Callable[[StateRecord], None], timeout_s: float | None = None
    ) -> int:
        """Hand every record up to the current end of every partition to `handle`, in order
        per partition; the number handled. SourceError on timeout."""
        ends = self.end_offsets()
        handled = 0
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while any(self.positions().get(p, 0) < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise SourceError(f"timed out reading the state topic {self.topic!r} to its end")
            for record in self.poll(timeout_s=0.2):
                handle(record)
                handled += 1
        return handled

    def scan(self, partition: int, start: int, handle: Callable[[StateRecord], None]) -> int:
        """Hand every record of one partition from `start` up to its current end to `handle`
        (a reader of its own; the main reader's positions do not move); the count."""
        part = TopicPartition(self.topic, partition)
        handled = 0
        consumer, lean = log_consumer(self._kwargs, self.timeout_s, self._what)
        try:
            consumer.assign([part])
            end = int(consumer.end_offsets([part]).get(part, 0))
            consumer.seek(part, start)
            deadline = time.monotonic() + self.timeout_s * 6
            while consumer.position(part) < end:
                if time.monotonic() > deadline:
                    raise SourceError(f"timed out scanning the state topic {self.topic!r}")
                for records in consumer.poll(timeout_ms=200, max_records=5000).values():
                    for r in records:
                        if r.offset < end:
                            handle(StateRecord(partition, r.offset, r.key, r.value))
                            handled += 1
        except _ERRORS as exc:
            raise self._fail("cannot read", exc) from exc
        finally:
            if lean is not None:
                self._scan_skipped += sum(lean.take_unreadable().values())
            consumer.close()
        return handled

    def close(self) -> None:
        """Release the reader and writer; idempotent."""
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        if consumer is not None:
            consumer.close()
        if producer is not None:
            producer.close(timeout=self.timeout_s)
