"""The Kafka adapter: the only module that imports `kafka`.

`KafkaSource` turns a kafka-python `KafkaConsumer` into the small `RecordSource` protocol the
daemon loop uses. Contract:

- Records come out as `RawMessage` (raw value bytes, no Kafka types), grouped by
  (topic, partition) in sorted order, offsets ascending inside a partition. Where it applies
  (`monitor.kafka_records.install`), kafka-python's fetcher reads them from the record
  batches as `RawMessage`s directly, without its per-record objects.
- A broker outage never raises out of `poll()`: it returns `[]`, `is_connected()` turns
  False, and the source reconnects on later polls (kafka-python reconnects an existing
  consumer by itself; a consumer that could not be built is rebuilt with exponential
  backoff). Only configuration errors (`ConfigError`) and exceptions raised by the daemon's
  own `on_assign` / `on_revoke` callbacks propagate.
- Offsets are the daemon's business: auto-commit is off, `on_assign` returns the checkpointed
  offset (the next offset to read) of each newly assigned partition and the source seeks
  there before any fetch; partitions it leaves out start at the group's committed offset,
  else `auto_offset_reset`. `commit()` stores offsets in Kafka only for lag tooling.

Threading: a `KafkaSource` belongs to one thread. kafka-python runs rebalance listeners on
its IO thread while the owning thread is blocked inside `poll()` or `close()`, so
`on_assign` / `on_revoke` never run concurrently with the owner's own code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConfigurationError, KafkaError, MessageSizeTooLargeError
from kafka.structs import OffsetAndMetadata, TopicPartition

from monitor import kafka_records
from monitor.errors import ConfigError, SourceError, UnreadableReason
from monitor.group_join import guard_group_join
from monitor.model import RawMessage
from monitor.ratelimit import RateLimitedSampler
from monitor.tlsprobe import tls_problem

log = logging.getLogger(__name__)

TP = tuple[str, int]
"""A (topic, partition) pair: the only partition identity that leaves this module."""

AssignCallback = Callable[[frozenset[TP]], Mapping[TP, int]]
RevokeCallback = Callable[[frozenset[TP]], None]

try:
    import crc32c as _crc32c  # noqa: F401  (kafka-python picks it up for record CRC checks)

    HAVE_CRC32C = True
except ImportError:  # pragma: no cover - crc32c is a hard dependency
    HAVE_CRC32C = False

_CONSUMER_KEYS = frozenset(KafkaConsumer.DEFAULT_CONFIG)
_PRODUCER_KEYS = frozenset(KafkaProducer.DEFAULT_CONFIG)
# Keys this module owns: raw bytes out, offsets managed by the daemon.
_FORCED_CONSUMER_KWARGS: dict[str, Any] = {
    "enable_auto_commit": False,
    "value_deserializer": None,
    "key_deserializer": None,
}
_TRANSIENT_ERRORS = (KafkaError, OSError)
_MAX_POLL_FAILURES = 5


class RecordSource(Protocol):
    """What the daemon loop needs from an event source. Offsets are "next offset to read"."""

    def poll(self, timeout_s: float, max_records: int, held_bytes: int = 0) -> list[RawMessage]:
        """Up to `max_records` records, waiting at most about `timeout_s`; [] on outage.
        `held_bytes`: what the caller still holds of earlier polls, counted against the
        bound of what compressed batches may inflate to in this one (`held_back`)."""
        ...

    def held_back(self) -> bool:
        """Whether the last poll left a compressed batch unread only because of its
        `held_bytes`: the caller should release what it holds before polling again."""
        ...

    def commit(self, offsets: Mapping[TP, int]) -> None:
        """Store the next offset to read per partition; raises SourceError on failure."""
        ...

    def assignment(self) -> frozenset[TP]:
        """The partitions currently assigned to this consumer (empty while not joined)."""
        ...

    def lag(self) -> dict[TP, int]:
        """Best effort records-behind per assigned partition; may be empty or partial."""
        ...

    def unreadable_batches(self) -> dict[tuple[str, UnreadableReason], int]:
        """Record batches skipped unread since the last call, per (topic, reason)."""
        ...

    def is_connected(self) -> bool:
        """Whether the last talk with the cluster succeeded."""
        ...

    def close(self) -> None:
        """Leave the group and release sockets and threads; idempotent."""
        ...


def crc32c_available() -> bool:
    """True if the `crc32c` C extension is importable (kafka-python is ~10x slower without)."""
    return HAVE_CRC32C


def _check_crc32c() -> None:
    if not HAVE_CRC32C:
        log.warning(
            "the crc32c package is not installed: kafka-python falls back to a pure-Python "
            "CRC and consumes about 10x slower (pip install crc32c)"
        )


def raw_message(record: Any) -> RawMessage:
    """A kafka-python `ConsumerRecord` as a `RawMessage` (a negative timestamp is None)."""
    ts = record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None
    headers = tuple(record.headers) if record.headers else ()
    return RawMessage(
        record.topic, record.partition, record.offset, ts, record.value, record.key, headers
    )


def _check_keys(kwargs: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ConfigError(f"unknown Kafka {what} option(s): {', '.join(unknown)}")


def producer_kwargs(consumer_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of consumer kwargs a `KafkaProducer` accepts (connection, TLS, SASL, ...).

    Consumer-only keys (group_id, deserializers, fetch and session settings) are dropped.
    """
    return {k: v for k, v in consumer_kwargs.items() if k in _PRODUCER_KEYS}


def _build(cls: Any, kwargs: Mapping[str, Any]) -> Any:
    """Construct a kafka-python client; on failure, stop the IO thread it already started.

    kafka-python 3.0.12 starts its network thread before bootstrapping and leaks it when the
    bootstrap fails, so a reconnect loop against a dead broker would pile up threads.
    """
    client = cls.__new__(cls)
    try:
        client.__init__(**kwargs)
    except BaseException:
        inner = getattr(client, "_client", None)
        net = getattr(client, "_net", None)
        try:
            if inner is not None:
                inner.close()
        finally:
            if net is not None:
                net.stop()
        raise
    return client


def _cluster_connected(consumer: Any) -> bool:
    """True if the consumer holds at least one live broker connection.

    kafka-python's `poll()` returns {} silently while the broker is gone, and
    `bootstrap_connected()` only describes the first bootstrap, so this reads the connection
    table of the client's connection manager (kafka-python 3.x internals; pinned by the
    integration test). If those internals move, assume connected rather than lie the other way.
    """
    try:
        conns = consumer._client._manager._conns
        return any(conn.connected for conn in list(conns.values()))
    except AttributeError:
        return True


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards rebalances to the daemon's callbacks and seeks to its checkpointed offsets."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._source._handle_revoke(frozenset((tp.topic, tp.partition) for tp in revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._source._handle_assign(frozenset((tp.topic, tp.partition) for tp in assigned))


class KafkaSource:
    """A `RecordSource` over a kafka-python group consumer subscribed to `topics`.

    `consumer_kwargs` are `KafkaConsumer` keyword arguments (from the config module).
    `enable_auto_commit`, `value_deserializer` and `key_deserializer` are overridden;
    `check_crcs` keeps kafka-python's default (on). `bootstrap_timeout_ms` defaults to
    `connect_timeout_s`, which bounds how long one (re)connect attempt blocks.
    Failed connects are retried by `poll()` after `backoff_initial_s`, doubling up to
    `backoff_max_s`.
    """

    def __init__(
        self,
        consumer_kwargs: Mapping[str, Any],
        topics: Sequence[str],
        on_assign: AssignCallback,
        on_revoke: RevokeCallback,
        *,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        if not topics:
            raise ConfigError("kafka.topics: at least one topic is required")
        _check_keys(consumer_kwargs, _CONSUMER_KEYS, "consumer")
        _check_crc32c()
        self._kwargs: dict[str, Any] = {
            "bootstrap_timeout_ms": int(connect_timeout_s * 1000),
            **consumer_kwargs,
            **_FORCED_CONSUMER_KWARGS,
        }
        self._topics = list(topics)
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._request_timeout_ms = int(request_timeout_s * 1000)
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = backoff_initial_s
        self._next_attempt = 0.0
        self._consumer: Any = None
        self._lean: kafka_records.LeanRecords | None = None
        self._unreadable: Counter[tuple[str, UnreadableReason]] = Counter()
        self._connected = False
        self._poll_failures = 0
        self._callback_error: BaseException | None = None
        self._closed = False

    # -- connection management -------------------------------------------------

    def connect(self) -> None:
        """Build the consumer and subscribe; raises SourceError if the cluster is unreachable.

        A no-op when already connected. ConfigError for options kafka-python rejects.
        """
        if self._closed:
            raise SourceError("the Kafka source is closed")
        if self._consumer is not None:
            return
        try:
            consumer = _build(KafkaConsumer, self._kwargs)
        except KafkaConfigurationError as exc:
            raise ConfigError(f"kafka: {exc}") from exc
        except _TRANSIENT_ERRORS as exc:
            self._connected = False
            reason = tls_problem(self._kwargs) or str(exc)
            raise SourceError(f"cannot reach Kafka at {self._bootstrap()}: {reason}") from exc
        self._consumer = consumer
        guard_group_join(consumer)
        self._lean = kafka_records.install(consumer) or None
        try:
            consumer.subscribe(self._topics, listener=_Listener(self))
        except BaseException:
            self._drop_consumer()
            raise
        self._connected = True
        self._poll_failures = 0
        self._backoff_s = self._backoff_initial_s
        log.info("kafka consumer connected to %s, topics %s", self._bootstrap(), self._topics)

    @property
    def lean_records(self) -> bool:
        """Whether the consumer's records are unpacked by `monitor.kafka_records`."""
        return self._lean is not None

    def held_back(self) -> bool:
        """Whether the last poll left a compressed batch unread only because of its
        `held_bytes` (`kafka_records.InflateBudget`); False when the module is not installed."""
        return self._lean is not None and self._lean.budget.held_back

    def unreadable_batches(self) -> dict[tuple[str, UnreadableReason], int]:
        """Record batches `monitor.kafka_records` skipped unread since the last call, per
        (topic, reason); always empty when it is not installed (kafka-python then raises)."""
        if not self._unreadable:  # the usual case, once per poll
            return {}
        counted, self._unreadable = dict(self._unreadable), Counter()
        return counted

    def _bootstrap(self) -> str:
        return str(self._kwargs.get("bootstrap_servers", "localhost:9092"))

    def _try_connect(self) -> bool:
        """One connect attempt if the backoff allows; schedules the next attempt on failure."""
        now = time.monotonic()
        if now < self._next_attempt:
            return False
        try:
            self.connect()
        except SourceError as exc:
            self._next_attempt = time.monotonic() + self._backoff_s
            log.warning("kafka connect failed (retry in %.1fs): %s", self._backoff_s, exc)
            self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
            return False
        return True

    def _drop_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._connected = False
        if consumer is not None:
            try:
                consumer.close(autocommit=False, timeout_ms=self._request_timeout_ms)
            except Exception as exc:  # closing a broken consumer must not fail the caller
                log.warning("error while closing the kafka consumer: %s", exc)

    # -- rebalance callbacks (run on kafka-python's IO thread, caller blocked in poll) --

    def _handle_assign(self, assigned: frozenset[TP]) -> None:
        try:
            offsets = self._on_assign(assigned)
            for (topic, partition), offset in offsets.items():
                if (topic, partition) in assigned:
                    self._consumer_for_callback().seek(TopicPartition(topic, partition), offset)
        except BaseException as exc:
            self._callback_error = exc
            raise
        log.info("kafka partitions assigned: %s", sorted(assigned))

    def _handle_revoke(self, revoked: frozenset[TP]) -> None:
        try:
            self._on_revoke(revoked)
        except BaseException as exc:
            self._callback_error = exc
            raise
        log.info("kafka partitions revoked: %s", sorted(revoked))

    def _consumer_for_callback(self) -> Any:
        if self._consumer is None:  # listeners only fire inside poll()/close() of a consumer
            raise SourceError("rebalance callback without a consumer")
        return self._consumer

    def _raise_callback_error(self) -> None:
        exc, self._callback_error = self._callback_error, None
        if exc is not None:
            raise exc

    # -- RecordSource ----------------------------------------------------------

    def poll(self, timeout_s: float, max_records: int, held_bytes: int = 0) -> list[RawMessage]:
        """Up to `max_records` records within about `timeout_s`; [] while the broker is away.
        Compressed batches inflate to at most `kafka_records.MAX_INFLATED_BATCH_BYTES` less
        `held_bytes` in one poll (`held_back`).

        Blocks for the timeout even when disconnected, so a caller's loop does not spin.
        """
        if self._closed:
            raise SourceError("the Kafka source is closed")
        deadline = time.monotonic() + timeout_s
        if self._consumer is None and not self._try_connect():
            time.sleep(max(0.0, min(deadline, self._next_attempt) - time.monotonic()))
            return []
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        if self._lean is not None:
            self._lean.budget.held = held_bytes
            self._lean.budget.held_back = False
        try:
            batches = self._consumer.poll(timeout_ms=remaining_ms, max_records=max_records)
        except _TRANSIENT_ERRORS as exc:
            self._raise_callback_error()
            self._poll_failures += 1
            self._connected = False
            log.warning("kafka poll failed (%d in a row): %s", self._poll_failures, exc)
            if self._poll_failures >= _MAX_POLL_FAILURES:
                log.warning("rebuilding the kafka consumer after repeated poll failures")
                self._drop_consumer()
            return []
        self._raise_callback_error()
        self._poll_failures = 0
        self._connected = _cluster_connected(self._consumer)
        if self._lean is not None and self._lean.unreadable:
            self._unreadable.update(self._lean.take_unreadable())
        out: list[RawMessage] = []
        for tp in sorted(batches):
            records = batches[tp]
            if self._lean is not None:  # already RawMessage (monitor.kafka_records)
                out.extend(records)
                continue
            out.extend(raw_message(record) for record in records)
        return out

    def commit(self, offsets: Mapping[TP, int]) -> None:
        """Commit `offsets` (next offset to read) to the group; SourceError on any failure."""
        if not offsets:
            return
        if self._consumer is None:
            raise SourceError("cannot commit offsets: not connected to Kafka")
        payload = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in offsets.items()
        }
        try:
            self._consumer.commit(payload, timeout_ms=self._request_timeout_ms)
        except _TRANSIENT_ERRORS as exc:
            raise SourceError(f"offset commit failed: {exc}") from exc

    def assignment(self) -> frozenset[TP]:
        """The partitions currently assigned (empty while disconnected or not yet joined)."""
        if self._consumer is None:
            return frozenset()
        return frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def lag(self) -> dict[TP, int]:
        """highwater - position per assigned partition with both known, never negative.

        The highwater is the one the last fetch response carried (no extra request), so a
        partition not fetched yet is left out. It deliberately avoids `end_offsets()` /
        ListOffsets, which tansu answers wrongly when the last batch holds more than one
        record (docs/architecture.md, Test components); tansu's fetch highwater is right in
        that case (pinned by the integration test), but other brokers' quirks may still make
        this approximate.
        """
        if self._consumer is None:
            return {}
        out: dict[TP, int] = {}
        for tp in self._consumer.assignment():
            try:
                high = self._consumer.highwater(tp)
                pos = self._consumer.position(tp, timeout_ms=0)
            except _TRANSIENT_ERRORS:
                continue
            if high is not None and pos is not None:
                out[(tp.topic, tp.partition)] = max(0, high - pos)
        return out

    def seek(self, tp: TP, offset: int) -> None:
        """Read an assigned partition from `offset` next (a fleet replica going back to its
        chain head, docs/fleet.md); a no-op when the partition is not assigned."""
        if self._consumer is None:
            return
        part = TopicPartition(*tp)
        if part in self._consumer.assignment():
            self._consumer.seek(part, offset)

    def is_connected(self) -> bool:
        """Whether the last connect/poll reached the cluster (a live broker connection)."""
        return self._consumer is not None and self._connected

    def close(self) -> None:
        """Leave the group (on_revoke runs) and stop the consumer; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._drop_consumer()


class KafkaSink:
    """A small producer for the dead-letter topic and `driftmon simulate`.

    Built lazily on first `send()`, so a broker outage at start does not fail the caller.
    `send()` raises SourceError if the record cannot be queued. A record-level refusal (larger
    than the producer's `max_request_size`, a bad argument) fails that record only. A cluster
    failure (no broker within `max_block_ms`, default `max_block_s`) also makes every
    `send()` fail at once for a backoff period (doubling from `backoff_initial_s` up to
    `backoff_max_s`), so a dead broker costs the caller one timeout per period, not one per
    record. Delivery failures after queueing are counted in `failed`, reported to the
    record's `on_error` and logged at most 10 times a minute.
    """

    def __init__(
        self,
        producer_kwargs: Mapping[str, Any],
        *,
        max_block_s: float = 5.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
    ) -> None:
        _check_keys(producer_kwargs, _PRODUCER_KEYS, "producer")
        self._kwargs: dict[str, Any] = {
            "max_block_ms": int(max_block_s * 1000),
            "bootstrap_timeout_ms": int(max_block_s * 1000),
            **producer_kwargs,
        }
        self._producer: Any = None
        self._log_failures = RateLimitedSampler(10)
        self._log_lock = threading.Lock()
        self._dropping = False
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = backoff_initial_s
        self._retry_at = 0.0
        self.failed = 0

    def _get(self) -> Any:
        if self._producer is None:
            self._producer = _build(KafkaProducer, self._kwargs)
        return self._producer

    def _on_error(
        self, on_error: Callable[[BaseException], None] | None, exc: BaseException
    ) -> None:
        """A queued record was not delivered (runs on the producer's IO thread)."""
        self.failed += 1
        if on_error is not None:
            on_error(exc)
        if self._dropping:  # `close` dropped the queue and said so once
            return
        with self._log_lock:
            allowed = self._log_failures.allow()
        if allowed:
            log.warning("kafka delivery failed: %s", type(exc).__name__)

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Queue one record for `topic` with `key` and `headers`; SourceError if it cannot be
        queued. `on_error` hears of a queued record that is not delivered (IO thread)."""
        if time.monotonic() < self._retry_at:
            raise SourceError(f"cannot send to {topic}: producer unavailable (backing off)")
        try:
            future = self._get().send(
                topic, value=value, key=key, headers=list(headers) if headers else None
            )
        except KafkaConfigurationError as exc:
            raise ConfigError(f"kafka: {exc}") from exc
        except (MessageSizeTooLargeError, AssertionError, TypeError, ValueError) as exc:
            raise SourceError(f"cannot send to {topic}: {exc}") from exc
        except _TRANSIENT_ERRORS as exc:
            self._retry_at = time.monotonic() + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
            raise SourceError(f"cannot send to {topic}: {exc}") from exc
        self._backoff_s = self._backoff_initial_s
        future.add_errback(partial(self._on_error, on_error))

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every queued record is delivered or failed; SourceError on timeout."""
        if self._producer is None:
            return
        try:
            self._producer.flush(timeout=timeout_s)
        except _TRANSIENT_ERRORS as exc:
            raise SourceError(f"flush failed: {exc}") from exc

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what is queued (up to `timeout_s`) and close; idempotent; never raises for
        an unreachable broker: what is still queued then is dropped with a warning.

        kafka-python 3.0.12's `close` raises when its flush times out and leaves its sender
        thread running (a Ctrl-C that stopped the broker first ended `make demo` with a
        traceback); the sender is then stopped without sending.
        """
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=timeout_s)
        except _TRANSIENT_ERRORS as exc:
            log.warning(
                "kafka producer closed with records still queued after %.1f s (dropped): %s",
                timeout_s,
                exc,
            )
            self._dropping = True
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()


def ensure_topic(
    client_kwargs: Mapping[str, Any], name: str, *, partitions: int = 1, timeout_s: float = 10.0
) -> bool:
    """Create `name` with `partitions` partitions unless it exists; True if it was created.

    Waits until the topic's metadata is visible. Raises SourceError if the broker cannot be
    reached or refuses the topic.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError

    admin_keys = frozenset(KafkaAdminClient.DEFAULT_CONFIG)
    kwargs = {k: v for k, v in client_kwargs.items() if k in admin_keys}
    kwargs.setdefault("bootstrap_timeout_ms", int(timeout_s * 1000))
    try:
        admin = KafkaAdminClient(**kwargs)
    except _TRANSIENT_ERRORS as exc:
        raise SourceError(f"cannot reach Kafka to create topic {name!r}: {exc}") from exc
    try:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
    except TopicAlreadyExistsError:
        return False
    except _TRANSIENT_ERRORS as exc:
        raise SourceError(f"cannot create topic {name!r}: {exc}") from exc
    finally:
        admin.close()
    return True
