"""Kafka clients of driftmon's own log topics: the reference registry and the fleet's state.

Both are read from the beginning by an unassigned consumer (no group, no offset commits)
and written one acknowledged record at a time, so each record is its own batch and the end
offset a reader waits for is exact even on brokers that misreport it for multi-record
batches. Every function raises ConfigError (bad client settings) or SourceError (cluster
unreachable, topic refused) with a message that names the topic (`what`).

With `monitor.source`, `monitor.registry_log`, `monitor.state_log` and
`monitor.kafka_records`, the only modules that import `kafka`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaConfigurationError, KafkaError, TopicAlreadyExistsError

from monitor import kafka_records
from monitor.errors import ConfigError, SourceError

#: Largest record a log producer sends (a registry or state chunk is well below it).
MAX_REQUEST_BYTES = 2 * 1024 * 1024
#: What a kafka-python call raises when the cluster cannot serve it.
KAFKA_ERRORS = (KafkaError, OSError)


def only_args(kwargs: Mapping[str, Any], cls: Any) -> dict[str, Any]:
    """The keyword arguments of `kwargs` that the kafka-python client `cls` accepts."""
    allowed = frozenset(cls.DEFAULT_CONFIG)
    return {k: v for k, v in kwargs.items() if k in allowed}


def ensure_topic(
    client_kwargs: Mapping[str, Any],
    topic: str,
    partitions: int,
    config: Mapping[str, str],
    timeout_s: float,
    what: str,
) -> bool:
    """Create `topic` (`partitions`, replication 1, `config`) unless it exists; True if created.

    An existing topic is looked up first (`Describe`), so a principal that may use the topic
    but not create topics (the operator and the daemon roles, docs/security.md) can use it.
    """
    kwargs = only_args(client_kwargs, KafkaAdminClient)
    kwargs.setdefault("bootstrap_timeout_ms", int(timeout_s * 1000))
    admin = _client(KafkaAdminClient, kwargs, what)
    try:
        if topic in admin.list_topics():
            return False
        admin.create_topics(
            [NewTopic(topic, partitions, 1, topic_configs=dict(config))], wait_for_metadata=True
        )
    except TopicAlreadyExistsError:
        return False
    except KAFKA_ERRORS as exc:
        raise SourceError(f"cannot create {what}: {exc}") from exc
    finally:
        admin.close()
    return True


def log_producer(client_kwargs: Mapping[str, Any], timeout_s: float, what: str) -> Any:
    """A producer that waits for every replica's acknowledgement and never lingers."""
    kwargs = only_args(client_kwargs, KafkaProducer)
    kwargs.update(
        acks="all",
        max_request_size=MAX_REQUEST_BYTES,
        linger_ms=0,
        max_block_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
    )
    return _client(KafkaProducer, kwargs, what)


def log_consumer(
    client_kwargs: Mapping[str, Any], timeout_s: float, what: str, fetch_records: int = 4
) -> tuple[Any, kafka_records.LeanRecords | None]:
    """An unassigned reader (no group, no commits, from the earliest offset) whose fetches
    hold `fetch_records` records of the largest size, and its `LeanRecords` (None where
    `monitor.kafka_records` does not apply). Its records have kafka-python's `offset`, `key`
    and `value`; they are `RawMessage`s where `monitor.kafka_records` applies, which also
    skips a batch kafka-python would spin on and counts it in `LeanRecords.unreadable`."""
    kwargs = only_args(client_kwargs, KafkaConsumer)
    kwargs.update(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        bootstrap_timeout_ms=int(timeout_s * 1000),
        max_partition_fetch_bytes=MAX_REQUEST_BYTES * 2,
        fetch_max_bytes=MAX_REQUEST_BYTES * fetch_records,
    )
    consumer = _client(KafkaConsumer, kwargs, what)
    # a batch kafka-python cannot read must not hang the reader
    return consumer, kafka_records.install(consumer)


def _client(client_class: Any, kwargs: Mapping[str, Any], what: str) -> Any:
    """`client_class(**kwargs)`; ConfigError for a bad setting, SourceError when Kafka cannot
    be reached (`what` names the topic's use in the message)."""
    try:
        return client_class(**kwargs)
    except KafkaConfigurationError as exc:
        raise ConfigError(f"kafka: {exc}") from exc
    except KAFKA_ERRORS as exc:
        raise SourceError(f"cannot reach Kafka for {what}: {exc}") from exc
