"""The reference registry's Kafka topic: create it, append records, fold it from the start.

The registry topic has one partition (one global order: a profile's chunks precede its
manifest, an activation follows the profile it names) and `cleanup.policy=compact` (one
record per key survives; keys are per chunk, per profile and per model, and activation
records carry their own history). Records are produced one at a time and acknowledged
before the next, so each is its own record batch: the end offset a reader waits for is
exact even on brokers that misreport it for multi-record batches.

With `monitor.source`, `monitor.state_log` and `monitor.kafka_log`, the only modules that
import `kafka`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kafka.structs import TopicPartition

from monitor.errors import RegistryRejectReason, SourceError, UnreadableReason
from monitor.kafka_log import KAFKA_ERRORS as _ERRORS
from monitor.kafka_log import ensure_topic, log_consumer, log_producer
from monitor.kafka_records import LeanRecords
from monitor.registry import RegistryTable, Rejected

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "driftmon.references"
#: Topic configuration the registry is created with (documented in docs/registry.md).
TOPIC_CONFIG: dict[str, str] = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": "3600000",
    "max.message.bytes": str(2 * 1024 * 1024),
}


class RegistryLog:
    """The registry topic of one cluster, read and written with the daemon's Kafka settings.

    `client_kwargs` are kafka-python connection/security keyword arguments
    (`KafkaSettings.client_kwargs()`). Every method raises SourceError (cluster unreachable,
    topic refused) or ConfigError (bad client settings) with a readable message.
    """

    def __init__(
        self, client_kwargs: Mapping[str, Any], topic: str = DEFAULT_TOPIC, timeout_s: float = 10.0
    ) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._kwargs = dict(client_kwargs)
        self._partition = TopicPartition(topic, 0)
        self._consumer: Any = None
        self._lean: LeanRecords | None = None
        self._what = f"the registry {topic!r}"

    # -- admin -------------------------------------------------------------------

    def ensure_topic(self) -> bool:
        """Create the topic (1 partition, compacted) unless it exists; True if created.

        An existing topic is looked up first, so a principal that may write the registry but
        not create topics (the operator role, docs/security.md) can use it.
        """
        return ensure_topic(
            self._kwargs, self.topic, 1, TOPIC_CONFIG, self.timeout_s, self._what + " topic"
        )

    # -- write -------------------------------------------------------------------

    def publish(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Append `records` in order, each acknowledged before the next."""
        producer = log_producer(self._kwargs, self.timeout_s, self._what)
        try:
            for key, value in records:
                producer.send(self.topic, key=key, value=value).get(timeout=self.timeout_s)
        except _ERRORS as exc:
            raise SourceError(f"cannot write to the registry {self.topic!r}: {exc}") from exc
        finally:
            producer.close(timeout=self.timeout_s)

    # -- read --------------------------------------------------------------------

    def _get_consumer(self) -> Any:
        if self._consumer is None:
            consumer, self._lean = log_consumer(self._kwargs, self.timeout_s, self._what)
            consumer.assign([self._partition])
            consumer.seek_to_beginning(self._partition)
            self._consumer = consumer
        return self._consumer

    def end_offset(self) -> int:
        """The registry's current end offset (the next offset to be written)."""
        consumer = self._get_consumer()
        try:
            ends = consumer.end_offsets([self._partition])
        except _ERRORS as exc:
            raise SourceError(f"cannot read the registry {self.topic!r}: {exc}") from exc
        return int(ends.get(self._partition, 0))

    def position(self) -> int:
        """The next offset this reader will fold."""
        return int(self._get_consumer().position(self._partition))

    def poll_into(self, table: RegistryTable, timeout_s: float = 0.0) -> list[Rejected]:
        """Fold whatever records are available (waiting up to `timeout_s`); the refusals."""
        consumer = self._get_consumer()
        try:
            batches = consumer.poll(timeout_ms=int(timeout_s * 1000))
        except _ERRORS as exc:
            raise SourceError(f"cannot read the registry {self.topic!r}: {exc}") from exc
        refused: list[Rejected] = []
        for records in batches.values():
            for record in records:
                outcome = table.apply(record.value)
                if outcome is not None:
                    refused.append(outcome)
        if self._lean is not None and self._lean.unreadable:
            for (_, why), n in self._lean.take_unreadable().items():
                refused += [Rejected(RegistryRejectReason.UNDECODABLE, _skipped(why))] * n
        return refused

    def read_to_end(self, table: RegistryTable) -> list[Rejected]:
        """Fold every record up to the current end of the topic; SourceError on timeout."""
        end = self.end_offset()
        refused: list[Rejected] = []
        deadline = time.monotonic() + self.timeout_s
        while self.position() < end:
            if time.monotonic() > deadline:
                raise SourceError(
                    f"timed out reading the registry {self.topic!r} "
                    f"(at offset {self.position()} of {end})"
                )
            refused += self.poll_into(table, timeout_s=0.5)
        return refused

    def close(self) -> None:
        """Release the reader's sockets and thread; idempotent."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()


def _skipped(reason: UnreadableReason) -> str:
    """The refusal detail of a record batch `monitor.kafka_records` skipped unread (its
    warning names the offsets)."""
    return f"a record batch skipped unread ({reason}; the kafka_records warning has the offsets)"
