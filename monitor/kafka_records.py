"""Record batches -> `RawMessage`, without kafka-python's per-record objects (Kafka adapter).

kafka-python 3.0.12 turns every record of a fetch into a `DefaultRecord` (seven varint calls
and an object), reads it back through eight properties, builds a 13-field `ConsumerRecord`,
and `KafkaSource` then copies that into a `RawMessage`: 6-10 µs per record, about a fifth of
the loop's CPU per event at 200 + 20 features, spent on the core the loop shares with
kafka-python's network thread. `LeanPartitionRecords` takes the place of the fetcher's
`PartitionRecords` in one consumer (`install`) and reads each v2 record batch's records
straight from its buffer into `RawMessage` tuples (about 3 µs a record,
`python -m bench.record_unpack`).

Contract, pinned against kafka-python's own class (tests/unit/test_kafka_records.py):

- It yields, for the same fetch and fetch offset, the records kafka-python yields, in the
  same order, each as the `RawMessage` `KafkaSource` made of it: topic, partition, offset,
  timestamp (None when negative; the batch's max timestamp for LOG_APPEND_TIME), value and
  key (None for null), headers as a tuple of (str, bytes | None).
- Everything else is kafka-python's, unchanged: batch CRCs (`check_crcs`), records before the
  fetch offset skipped, aborted transactions and control batches skipped under
  READ_COMMITTED, the next fetch offset and leader epoch, the records and bytes read for the
  fetch metrics, and the same exceptions for a malformed batch (`CorruptRecordError`, the
  records before it returned first). Legacy (magic 0 / 1) batches go through kafka-python's
  record objects.
- `install` replaces the class only on a kafka-python release it was checked against
  (`CHECKED_VERSIONS`) and a consumer without deserializers; otherwise the consumer keeps
  kafka-python's class and `install` returns False (records are then `ConsumerRecord`s, which
  `KafkaSource` converts as before).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

import kafka
from kafka import errors
from kafka.consumer.fetcher import Fetcher
from kafka.protocol.consumer import IsolationLevel
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.util import decode_varint

from monitor.model import RawMessage

__all__ = ["CHECKED_VERSIONS", "LeanPartitionRecords", "install"]

CHECKED_VERSIONS = frozenset({"3.0.12"})
"""kafka-python releases whose `Fetcher.PartitionRecords` this class was compared with."""

log = logging.getLogger(__name__)
_LOG_APPEND_TIME = DefaultRecordBatch.LOG_APPEND_TIME
_READ_COMMITTED = IsolationLevel.READ_COMMITTED


def install(consumer: Any) -> bool:
    """Make `consumer`'s fetcher unpack records with `LeanPartitionRecords`; True if it did.

    False (nothing changed) on a kafka-python release not in `CHECKED_VERSIONS`, when the
    consumer has a key or value deserializer, or when its fetcher is not shaped as expected.
    """
    if kafka.__version__ not in CHECKED_VERSIONS:
        _say_unchecked(kafka.__version__)
        return False
    fetcher = getattr(consumer, "_fetcher", None)
    config = getattr(fetcher, "config", None)
    if not isinstance(fetcher, Fetcher) or not isinstance(config, dict):
        return False
    if config.get("key_deserializer") is not None or config.get("value_deserializer"):
        return False
    fetcher.PartitionRecords = LeanPartitionRecords
    return True


@functools.cache
def _say_unchecked(version: str) -> None:
    """One log line per process and release: kafka-python unpacks its own records."""
    log.info(
        "kafka-python %s is not a release driftmon's record unpacking was checked against "
        "(%s): kafka-python unpacks the records itself, at about twice the CPU per record",
        version,
        ", ".join(sorted(CHECKED_VERSIONS)),
    )


class LeanPartitionRecords(Fetcher.PartitionRecords):  # type: ignore[misc]
    """kafka-python's `PartitionRecords` that yields `RawMessage`s (module docstring)."""

    def _unpack_records(
        self, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any
    ) -> Iterator[Any]:
        """kafka-python 3.0.12's `_unpack_records`, with v2 records read by `_read_batch`."""
        try:
            batch = records.next_batch()
            last_batch = None
            while batch is not None:
                last_batch = batch
                if self.check_crcs and not batch.validate_crc():
                    raise errors.CorruptRecordError(
                        f"Record batch for partition {self.topic_partition} at offset "
                        f"{batch.base_offset} failed crc check"
                    )
                if batch.magic == 2:
                    self.leader_epoch = batch.leader_epoch
                    if self._skips_transaction_batch(batch) or batch.is_control_batch:
                        self.next_fetch_offset = batch.next_offset
                        batch = records.next_batch()
                        continue
                    yield from self._read_batch(tp.topic, tp.partition, batch)
                else:
                    yield from self._read_legacy(tp.topic, tp.partition, batch)
                batch = records.next_batch()
            # A v2 batch keeps its last offset even when compaction removed its last record:
            # fetch from after it, as kafka-python does.
            if last_batch is not None and last_batch.magic == 2:
                self.next_fetch_offset = last_batch.next_offset
            self.drain()
        except StopIteration as exc:  # a generator must not leak one (PEP 479)
            raise RuntimeError("StopIteration raised unpacking messageset") from exc

    def _skips_transaction_batch(self, batch: Any) -> bool:
        """kafka-python's READ_COMMITTED handling of one v2 batch: True if it is aborted.

        Also keeps the aborted producer set up to date (an abort marker removes its producer).
        """
        if self.isolation_level != _READ_COMMITTED or not batch.has_producer_id():
            return False
        self._consume_aborted_transactions_up_to(batch.last_offset)
        producer_id = batch.producer_id
        if self._contains_abort_marker(batch):
            self.aborted_producer_ids.discard(producer_id)
            return False
        return bool(self._is_batch_aborted(batch))

    def _read_batch(self, topic: str, partition: int, batch: Any) -> Iterator[RawMessage]:
        """The records of one v2 data batch, read from its (decompressed) buffer.

        Layout per record: length, attributes, timestamp delta, offset delta, key length, key,
        value length, value, header count, headers (varints; lengths of -1 are null).
        """
        iter(batch)  # decompresses the batch's buffer
        buffer = memoryview(batch._buffer)  # slices copy once, not twice (bytearray, bytes)
        pos = batch._pos
        base_offset = batch.base_offset
        append_time = batch.timestamp_type == _LOG_APPEND_TIME
        append_timestamp = batch.max_timestamp
        first_timestamp = batch.first_timestamp
        for _ in range(batch._num_records):
            try:
                length, pos = decode_varint(buffer, pos)
                start = pos
                _attributes, pos = decode_varint(buffer, pos)
                timestamp_delta, pos = decode_varint(buffer, pos)
                offset_delta, pos = decode_varint(buffer, pos)
                key_length, pos = decode_varint(buffer, pos)
                key = None
                if key_length >= 0:
                    key = bytes(buffer[pos : pos + key_length])
                    pos += key_length
                value_length, pos = decode_varint(buffer, pos)
                value = None
                if value_length >= 0:
                    value = bytes(buffer[pos : pos + value_length])
                    pos += value_length
                header_count, pos = decode_varint(buffer, pos)
                headers: tuple[tuple[str, bytes | None], ...] = ()
                if header_count:
                    headers, pos = _read_headers(buffer, pos, header_count)
            except (ValueError, IndexError) as exc:
                raise errors.CorruptRecordError(f"Found invalid record structure: {exc!r}") from exc
            if pos - start != length:
                raise errors.CorruptRecordError(
                    f"Invalid record size: expected to read {length} bytes in record "
                    f"payload, but instead read {pos - start}"
                )
            offset = base_offset + offset_delta
            timestamp = append_timestamp if append_time else first_timestamp + timestamp_delta
            self.records_read += 1
            self.bytes_read += length
            self.next_fetch_offset = offset + 1
            yield RawMessage(
                topic,
                partition,
                offset,
                timestamp if timestamp >= 0 else None,
                value,  # type: ignore[arg-type]  # None for a tombstone
                key,
                headers,  # type: ignore[arg-type]  # a null header value stays None
            )
        if pos != len(buffer):
            raise errors.CorruptRecordError(
                f"{len(buffer) - pos} unconsumed bytes after all records consumed"
            )

    def _read_legacy(self, topic: str, partition: int, batch: Any) -> Iterator[RawMessage]:
        """A magic 0 / 1 batch through kafka-python's own record objects."""
        for record in batch:
            if self.check_crcs and not record.validate_crc():
                raise errors.CorruptRecordError(
                    f"Record for partition {self.topic_partition} at offset "
                    f"{record.offset} failed crc check"
                )
            self.records_read += 1
            self.bytes_read += record.size_in_bytes
            self.next_fetch_offset = record.offset + 1
            timestamp = record.timestamp
            yield RawMessage(
                topic,
                partition,
                record.offset,
                timestamp if timestamp is not None and timestamp >= 0 else None,
                record.value,
                record.key,
                tuple(record.headers) if record.headers else (),
            )


def _read_headers(
    buffer: memoryview, pos: int, count: int
) -> tuple[tuple[tuple[str, bytes | None], ...], int]:
    """`count` record headers from `pos`: (key text, value bytes or None), and the end."""
    if count < 0:
        raise errors.CorruptRecordError(f"Found invalid number of record headers {count}")
    headers = []
    for _ in range(count):
        key_length, pos = decode_varint(buffer, pos)
        if key_length < 0:
            raise errors.CorruptRecordError(f"Invalid negative header key size {key_length}")
        key = str(buffer[pos : pos + key_length], "utf-8")
        value, pos = _nullable_bytes(buffer, pos + key_length)
        headers.append((key, value))
    return tuple(headers), pos


def _nullable_bytes(buffer: memoryview, pos: int) -> tuple[bytes | None, int]:
    """A varint length at `pos`, then that many bytes (None for a negative length); and the
    end. (`_read_batch` reads a record's key and value the same way, inline for speed.)"""
    length, pos = decode_varint(buffer, pos)
    if length < 0:
        return None, pos
    return bytes(buffer[pos : pos + length]), pos + length
