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
  key (None for null), headers as (str, bytes | None) pairs: kept in their wire form
  (`PackedHeaders`, equal to kafka-python's tuple of them) and decoded only when a dead
  letter needs them (a tuple per header made a 2 KB gzip batch of a million empty headers
  take 71 MiB to read; 7 MiB now).
- Everything else is kafka-python's, unchanged: batch CRCs (`check_crcs`), records before the
  fetch offset skipped, aborted transactions and control batches skipped under
  READ_COMMITTED, the next fetch offset and leader epoch, the records and bytes read for the
  fetch metrics. Legacy (magic 0 / 1) batches go through kafka-python's record objects,
  a compressed one inflated here first, within the bound below.
- Except for what kafka-python cannot read. kafka-python raises `CorruptRecordError` (or a
  decompression error) for a batch whose CRC does not match or whose records are malformed,
  after the records before it, and then never drains that fetch: every later `poll()` spins
  on it without returning (measured: one record whose header key is not UTF-8 hung the
  daemon at 100 % CPU for good, and a restart reads the same record again). Here a header
  key that is not UTF-8 is read with U+FFFD in place of its bad bytes (the record is kept:
  headers only travel with dead letters), and a batch that cannot be read is skipped from
  the point where it broke: the records before it are returned, the fetch goes on at the
  batch's next offset, and a rate-limited warning (`_UNREADABLE_LOG`, 10 a minute) names the
  partition, the offsets and the kind of defect, never the bytes. A fetch that cannot even be
  cut into batches ends at the last batch read and is fetched again from there (a warning,
  no spin). A record whose offset lies outside its batch's header range, which kafka-python
  returns and then fetches the records after it again, ends its batch the same way; the next
  fetch offset never moves back, and a skipped batch is passed even when its header ends
  before it starts.
- A compressed batch is inflated here, as kafka-python's codecs would inflate it (gzip by
  zlib, as `gzip.GzipFile` would: members, zero padding, CRC and size checks; snappy, raw or
  in xerial blocks, by cramjam, sized from each block's length header before it is
  inflated; an lz4 frame by python-lz4 and zstd frames by zstandard, both read to the bound and
  no further), to at most `MAX_INFLATED_BATCH_BYTES` (64 MiB); beyond, it is skipped
  the same way (kafka-python inflates any batch whole: a 300 KB batch took 640 MiB of RSS;
  now 160 MiB). The bound holds for what one call of the fetcher's `fetched_records` (one
  `poll()`'s records) inflates over all partitions together (`InflateBudget`, shared by the
  consumer's fetches since `install`): a batch that would take it beyond ends its fetch,
  unread, and the next fetch of that partition starts with it (a 735 KB fetch of twelve
  60 MiB batches of zeros took 825 MiB; now 164 MiB; and a poll over P partitions of such
  batches no longer holds P times the bound). What the consumer's owner still holds of
  earlier polls counts against the bound too (`InflateBudget.held`; a decode worker's
  batches in flight). Inflating gzip this way is also cheaper: 33
  against 42 µs per 200 + 20 record of 64 KiB gzip batches.
- Every batch skipped unread is counted per topic and `UnreadableReason` in the consumer's
  `LeanRecords.unreadable` (`driftmon_kafka_unreadable_batches_total`), beside the warning.
- `install` replaces the class only on a kafka-python release it was checked against
  (`CHECKED_VERSIONS`) and a consumer without deserializers, and returns the consumer's
  `LeanRecords`; otherwise the consumer keeps kafka-python's class and `install` returns None
  (records are then `ConsumerRecord`s, which `KafkaSource` converts as before).
"""

from __future__ import annotations

import functools
import logging
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cramjam
import kafka
import lz4.frame
import zstandard
from kafka import errors
from kafka.consumer.fetcher import Fetcher
from kafka.protocol.consumer import IsolationLevel
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.legacy_records import LegacyRecord
from kafka.record.util import decode_varint

from monitor.errors import UnreadableReason
from monitor.model import RawMessage
from monitor.ratelimit import RateLimitedSampler

__all__ = [
    "CHECKED_VERSIONS",
    "MAX_INFLATED_BATCH_BYTES",
    "InflateBudget",
    "LeanPartitionRecords",
    "LeanRecords",
    "PackedHeaders",
    "install",
]

CHECKED_VERSIONS = frozenset({"3.0.12"})
"""kafka-python releases whose `Fetcher.PartitionRecords` this class was compared with."""

log = logging.getLogger(__name__)
_UNREADABLE_LOG = RateLimitedSampler(10)
"""At most 10 warnings a minute about unreadable batches (a hostile producer may send many)."""
_LOG_APPEND_TIME = DefaultRecordBatch.LOG_APPEND_TIME
_READ_COMMITTED = IsolationLevel.READ_COMMITTED


MAX_INFLATED_BATCH_BYTES = 64 * 1024 * 1024
"""The most bytes compressed record batches may inflate to in one `poll()` of a consumer
(kafka-python inflates any: a 300 KB batch of zeros took 640 MiB); a batch beyond it alone is
skipped as unreadable, one beyond it with the others (or with what the owner holds,
`InflateBudget.held`) waits for the next poll."""


class InflateBudget:
    """What compressed batches may still inflate to before the fetcher's next
    `fetched_records` call.

    One per consumer (`install`), shared by every partition's fetch, renewed at each call to
    `MAX_INFLATED_BATCH_BYTES` less `held`: the records one call returns (and the batch a
    partly read fetch keeps for the next call) hold at most the bound of inflated bytes,
    however many partitions the call drains, together with what the consumer's owner still
    holds of earlier polls (`held`, bytes it set before polling: a decode worker's batches in
    flight). A batch that does not fit only because of `held` waits in its fetch and sets
    `held_back` (sticky until the owner clears it): the owner should release what it holds
    before the next poll, which then judges the batch against the whole bound.
    """

    __slots__ = ("held", "held_back", "left")

    def __init__(self) -> None:
        self.held = 0
        self.held_back = False
        self.left = MAX_INFLATED_BATCH_BYTES

    @property
    def whole(self) -> int:
        """What one call may inflate: the bound less what the owner holds."""
        return max(0, MAX_INFLATED_BATCH_BYTES - self.held)

    def renew(self) -> None:
        """The whole bound again, less `held` (a new `fetched_records` call)."""
        self.left = self.whole

    @property
    def spent_any(self) -> bool:
        """True once something was inflated since the last renewal."""
        return self.left < self.whole


class _Defect(errors.CorruptRecordError):  # type: ignore[misc]
    """A record batch this module refuses; `cause` is what the warning says of it, `reason`
    what the metric counts."""

    def __init__(self, cause: str, reason: UnreadableReason = UnreadableReason.CORRUPT) -> None:
        super().__init__(cause)
        self.cause = cause
        self.reason = reason


@dataclass(slots=True)
class LeanRecords:
    """What `install` gave one consumer: the inflate budget its fetches share, and the batches
    they skipped unread, per (topic, reason), until `take_unreadable` hands them out."""

    budget: InflateBudget = field(default_factory=InflateBudget)
    unreadable: Counter[tuple[str, UnreadableReason]] = field(default_factory=Counter)

    def take_unreadable(self) -> dict[tuple[str, UnreadableReason], int]:
        """The skipped batches counted since the last call (then none). The counter is
        cleared in place: the consumer's record class counts into this very object."""
        counted = dict(self.unreadable)
        self.unreadable.clear()
        return counted


class _BudgetSpentError(Exception):
    """A compressed batch that fits the bound alone but not after what this poll already
    inflated: its fetch ends before it, and the partition's next fetch starts with it."""


def install(consumer: Any) -> LeanRecords | None:
    """Make `consumer`'s fetcher unpack records with `LeanPartitionRecords`; its `LeanRecords`
    if it did.

    None (nothing changed) on a kafka-python release not in `CHECKED_VERSIONS`, when the
    consumer has a key or value deserializer, or when its fetcher is not shaped as expected.
    """
    if kafka.__version__ not in CHECKED_VERSIONS:
        _say_unchecked(kafka.__version__)
        return None
    fetcher = getattr(consumer, "_fetcher", None)
    config = getattr(fetcher, "config", None)
    if not isinstance(fetcher, Fetcher) or not isinstance(config, dict):
        return None
    if config.get("key_deserializer") is not None or config.get("value_deserializer") is not None:
        return None
    lean = LeanRecords()
    fetched_records = fetcher.fetched_records

    def fetched_records_within_budget(*args: Any, **kwargs: Any) -> Any:
        """kafka-python's `fetched_records`, with the inflate budget renewed first."""
        lean.budget.renew()
        return fetched_records(*args, **kwargs)

    fetcher.PartitionRecords = type(
        "LeanPartitionRecords",
        (LeanPartitionRecords,),
        {"budget": lean.budget, "unreadable": lean.unreadable},
    )
    fetcher.fetched_records = fetched_records_within_budget
    return lean


def _say_unreadable(
    topic: str, partition: int, first: int, end: int | None, exc: Exception
) -> None:
    """A rate-limited warning about records that could not be read: where, never what (an
    exception's text may quote the record's bytes)."""
    if not _UNREADABLE_LOG.allow():
        return
    cause = exc.cause if isinstance(exc, _Defect) else type(exc).__name__
    if end is None:
        log.warning(
            "kafka: the fetch of %s:%d from offset %d cannot be framed into record batches "
            "(%s); it is read again from there",
            topic,
            partition,
            first,
            cause,
        )
    else:
        log.warning(
            "kafka: an unreadable record batch of %s:%d at offset %d (%s): what it holds from "
            "there is not counted; reading on at offset %d",
            topic,
            partition,
            first,
            cause,
            end,
        )


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

    next_fetch_offset: int
    fetch_offset: int
    budget: InflateBudget | None = None
    """The consumer's budget (set by `install`); None: each fetch has a budget of its own."""
    unreadable: Counter[tuple[str, UnreadableReason]] | None = None
    """The consumer's count of skipped batches (set by `install`); None: not counted."""
    _fetch_budget: InflateBudget

    def _unpack_records(
        self, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any
    ) -> Iterator[Any]:
        """kafka-python 3.0.12's `_unpack_records`, with v2 records read by `_read_batch` and
        a batch that cannot be read skipped (`_skip`), never raised: kafka-python re-polls a
        fetch whose unpacking raised in a busy loop that never returns (one record with a
        header key that is not UTF-8 hung the daemon's poll for good)."""
        last_batch = None
        self._fetch_budget = self.budget if self.budget is not None else InflateBudget()
        try:
            batch = records.next_batch()
            while batch is not None:
                try:
                    yield from self._batch_records(tp, batch)
                except _BudgetSpentError:
                    break  # the next fetch starts with this batch
                except Exception as exc:  # anything a corrupt batch raises
                    self._skip(batch, exc)
                last_batch = batch
                batch = records.next_batch()
        except Exception as exc:  # the fetch's framing: refetched from the last batch read
            self._count(UnreadableReason.UNFRAMED)
            _say_unreadable(str(tp.topic), int(tp.partition), self.next_fetch_offset, None, exc)
        # A v2 batch keeps its last offset even when compaction removed its last record:
        # fetch from after it, as kafka-python does; never back (a header whose last offset
        # lies before records already returned would have them returned again, forever).
        if last_batch is not None and last_batch.magic == 2:
            self.next_fetch_offset = max(self.next_fetch_offset, last_batch.next_offset)
        self.drain()

    def _batch_records(self, tp: Any, batch: Any) -> Iterator[RawMessage]:
        """The records of one batch, as kafka-python would return them (CorruptRecordError
        for a CRC that does not match)."""
        if self.check_crcs and not batch.validate_crc():
            raise _Defect("CRC mismatch", UnreadableReason.CRC_MISMATCH)
        if batch.magic != 2:
            yield from self._read_legacy(tp.topic, tp.partition, batch)
            return
        self.leader_epoch = batch.leader_epoch
        if self._skips_transaction_batch(batch) or batch.is_control_batch:
            self.next_fetch_offset = batch.next_offset
            return
        yield from self._read_batch(tp.topic, tp.partition, batch)

    def _skip(self, batch: Any, exc: Exception) -> None:
        """Go on after a batch that could not be read (what it yielded before stays): the
        next fetch offset moves past it, one rate-limited warning names the offsets."""
        first = max(self.next_fetch_offset, self.fetch_offset)
        try:  # past the batch, even when its header puts its end before its start
            end = batch.base_offset + 1
            if batch.magic == 2:
                end = max(end, batch.next_offset)
        except Exception:  # a header too broken to read: stay where we are
            end = first
        self.next_fetch_offset = max(first, int(end))
        topic, partition = self.topic_partition.topic, self.topic_partition.partition
        self._count(exc.reason if isinstance(exc, _Defect) else UnreadableReason.CORRUPT)
        _say_unreadable(topic, partition, first, self.next_fetch_offset, exc)

    def _count(self, reason: UnreadableReason) -> None:
        """One batch (or fetch) of this partition's topic skipped unread, for the metric."""
        if self.unreadable is not None:
            self.unreadable[str(self.topic_partition.topic), reason] += 1

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
        value length, value, header count, headers (varints; lengths of -1 are null). A record
        whose offset lies outside its batch's header range ends the batch as unreadable
        (kafka-python returns it, and its next fetch offset, taken from the header, then lies
        behind that record: the records after would come again); brokers that assign offsets
        never write one.
        """
        codec = batch.compression_type
        if codec in _INFLATE and not batch._decompressed:
            inflated = self._inflate(codec, memoryview(batch._buffer)[batch._pos :])
            batch._buffer, batch._pos, batch._decompressed = inflated, 0, True
        iter(batch)  # kafka-python's own check: a codec it does not know raises here
        buffer = memoryview(batch._buffer)  # slices copy once, not twice (bytearray, bytes)
        pos = batch._pos
        base_offset = batch.base_offset
        last_delta = batch.last_offset_delta
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
                headers: PackedHeaders | tuple[()] = ()
                if header_count:
                    end = _headers_end(buffer, pos, header_count)
                    headers, pos = PackedHeaders(bytes(buffer[pos:end]), header_count), end
            except (ValueError, IndexError) as exc:
                raise errors.CorruptRecordError(f"Found invalid record structure: {exc!r}") from exc
            if pos - start != length:
                raise errors.CorruptRecordError(
                    f"Invalid record size: expected to read {length} bytes in record "
                    f"payload, but instead read {pos - start}"
                )
            if not 0 <= offset_delta <= last_delta:  # kafka-python returns it (docstring)
                raise _Defect("a record offset outside its batch")
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
                headers,
            )
        if pos != len(buffer):
            raise errors.CorruptRecordError(
                f"{len(buffer) - pos} unconsumed bytes after all records consumed"
            )

    def _inflate(self, codec: int, data: memoryview) -> bytearray:
        """`data` inflated by `codec` within what is left of the budget; `_BudgetSpentError`
        when it would fit the bound alone (or without what the owner holds), a `_Defect`
        (too_large) when it would not."""
        budget = self._fetch_budget
        inflated = _INFLATE[codec](data, budget.left)
        if inflated is None and budget.spent_any:
            raise _BudgetSpentError  # the next fetch starts with it, with the whole bound
        if inflated is None and budget.held:
            budget.held_back = True  # the owner releases what it holds, then polls again
            raise _BudgetSpentError
        if inflated is None:
            raise _Defect(
                f"inflates beyond {MAX_INFLATED_BATCH_BYTES // 2**20} MiB",
                UnreadableReason.TOO_LARGE,
            )
        budget.left -= len(inflated)
        return inflated

    def _read_legacy(self, topic: str, partition: int, batch: Any) -> Iterator[RawMessage]:
        """A magic 0 / 1 batch through kafka-python's own record objects; a compressed one
        (gzip, snappy; lz4 from magic 1) inflated here first, within the budget, where
        kafka-python would inflate it whole (magic 0 lz4, Kafka 0.8's framing, is left to
        kafka-python, which reads it only with `xxhash` installed)."""
        codec = batch.compression_type
        ours = codec in _LEGACY_INFLATE and (codec != _LZ4 or batch.magic == 1)
        records: Iterable[Any] = batch
        if ours and not batch._decompressed:
            key_offset = batch.KEY_OFFSET_V1 if batch.magic == 1 else batch.KEY_OFFSET_V0
            _, wrapped = batch._read_key_value(key_offset)  # the wrapper's value, as kafka-python
            if wrapped is None:
                raise errors.CorruptRecordError("Value of compressed message is None")
            inflated = self._inflate(codec, memoryview(wrapped))
            batch._buffer, batch._decompressed = memoryview(inflated), True
            records = _legacy_inner_records(batch)
        for record in records:
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


class PackedHeaders:
    """A record's headers in their wire form, decoded only when iterated.

    `raw` holds `count` headers, each a zigzag varint key length, the key (UTF-8; bad bytes
    read as U+FFFD), a zigzag varint value length (-1: a null value) and the value, as Kafka
    writes them into a v2 record; `LeanPartitionRecords` has checked that they frame
    (`_headers_end`). A record's headers only travel with a dead letter, so reading
    a record allocates one bytes object for all of them instead of a tuple per header (an
    empty header is 2 bytes on the wire and about 70 as Python objects: a 2 KB gzip batch of
    one record with a million of them took 71 MiB to read before). Equal to the tuple of its
    pairs.
    """

    __slots__ = ("count", "raw")

    def __init__(self, raw: bytes, count: int) -> None:
        self.raw = raw
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[str, bytes | None]]:
        view = memoryview(self.raw)
        pos = 0
        for _ in range(self.count):
            key_length, pos = decode_varint(view, pos)
            key = str(view[pos : pos + key_length], "utf-8", "replace")
            value_length, pos = decode_varint(view, pos + key_length)
            if value_length < 0:
                yield key, None
            else:
                yield key, bytes(view[pos : pos + value_length])
                pos += value_length

    def __contains__(self, item: object) -> bool:
        return any(pair == item for pair in self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedHeaders | tuple | list):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"PackedHeaders({self.count} headers, {len(self.raw)} bytes)"


def _headers_end(buffer: memoryview, pos: int, count: int) -> int:
    """Where `count` record headers from `pos` end, walked as kafka-python reads them (the
    same `CorruptRecordError`s) without making an object of any (`PackedHeaders` decodes them
    when a dead letter needs them). A header that runs past the buffer ends past it: the
    record's length check then refuses the record, as kafka-python's does."""
    if count < 0:
        raise errors.CorruptRecordError(f"Found invalid number of record headers {count}")
    for _ in range(count):
        key_length, pos = decode_varint(buffer, pos)
        if key_length < 0:
            raise errors.CorruptRecordError(f"Invalid negative header key size {key_length}")
        value_length, pos = decode_varint(buffer, pos + key_length)
        if value_length > 0:
            pos += value_length
    return pos


def _gunzip(compressed: memoryview, limit: int) -> bytearray | None:
    """What kafka-python's gzip decoding (`gzip.GzipFile.read`) gives, or None when that is
    more than `limit` bytes (never inflated further). Members follow each other, zero bytes
    between them are padding; each member's CRC and size are checked (zlib's gzip mode); a
    stream that ends inside a member is a `_Defect`."""
    out = bytearray()
    data: bytes | memoryview = compressed
    while len(data):
        inflater = zlib.decompressobj(wbits=31)
        out += inflater.decompress(data, limit + 1 - len(out))
        if len(out) > limit:
            return None
        if not inflater.eof:
            raise _Defect("gzip stream ends inside a member")
        data = inflater.unused_data.lstrip(b"\x00")
    return out


def _unsnappy(compressed: memoryview, limit: int) -> bytearray | None:
    """What kafka-python's `snappy_decode` gives (one raw snappy block, or xerial framing: a
    16-byte header, then blocks of a big-endian int32 size and a raw block), or None when that
    is more than `limit` bytes. Every block's inflated size is read from its header first, so
    nothing is inflated beyond the bound; the blocks are inflated into one buffer of their
    total size. The framing is walked twice rather than kept (a 1 MiB batch of 5-byte blocks
    would otherwise hold 200,000 views)."""
    total = 0
    for block in _snappy_blocks(compressed):
        total += int(cramjam.snappy.decompress_raw_len(block))
        if total > limit:
            return None
    out = bytearray(total)
    at = 0
    for block in _snappy_blocks(compressed):
        size = int(cramjam.snappy.decompress_raw_len(block))
        if cramjam.snappy.decompress_raw_into(block, memoryview(out)[at : at + size]) != size:
            raise _Defect("snappy block shorter than its header says")
        at += size
    return out


def _snappy_blocks(compressed: memoryview) -> Iterator[memoryview]:
    """The raw snappy blocks of a kafka snappy payload: itself, or its xerial blocks (a block
    whose size runs past the payload is what is left of it, as kafka-python slices it)."""
    if not (len(compressed) > 16 and compressed[:8] == _XERIAL_MAGIC):
        yield compressed
        return
    pos = 16
    while pos < len(compressed):
        (size,) = struct.unpack_from(">i", compressed, pos)
        if size < 0:
            raise _Defect("snappy block of a negative size")
        yield compressed[pos + 4 : pos + 4 + size]
        pos += 4 + size


def _unlz4(compressed: memoryview, limit: int) -> bytearray | None:
    """What kafka-python's `lz4_decode` gives (the first LZ4 frame; bytes after it are not
    read), or None when that is more than `limit` bytes; inflated in chunks of at most 1 MiB
    up to the bound and no further (one `max_length` of the whole bound allocated it on every
    batch: 21 against 4.4 µs for a 16 KiB batch). A stream that ends inside the frame is a
    `_Defect`."""
    inflater = lz4.frame.LZ4FrameDecompressor()
    out = bytearray()
    data: bytes | memoryview = compressed
    while True:
        out += inflater.decompress(data, max_length=min(_INFLATE_CHUNK, limit + 1 - len(out)))
        if len(out) > limit:
            return None
        if inflater.eof:
            return out
        if inflater.needs_input:
            raise _Defect("lz4 stream ends inside a frame")
        data = b""  # more output is waiting for the next call


def _unzstd(compressed: memoryview, limit: int) -> bytearray | None:
    """What kafka-python's `zstd_decode` gives (frames read across), or None when that is more
    than `limit` bytes; read in chunks of at most 1 MiB up to the bound and no further."""
    out = bytearray()
    reader = zstandard.ZstdDecompressor().stream_reader(compressed, read_across_frames=True)
    while len(out) <= limit:
        chunk = reader.read(min(_INFLATE_CHUNK, limit + 1 - len(out)))
        if not chunk:
            return out
        out += chunk
    return None


_XERIAL_MAGIC = struct.pack(">b6sB", -126, b"SNAPPY", 0)
"""The start of a xerial snappy stream's 16-byte header; its version and compatible-version
fields that follow are ignored, as kafka-python ignores them (some producers, Redpanda's
among them, write them little-endian: kafka-python issue 2414)."""
_INFLATE_CHUNK = 1 << 20
"""lz4 and zstd are inflated this many bytes at a time (their output buffer is allocated at the
size asked for)."""
_INFLATE: dict[int, Callable[[memoryview, int], bytearray | None]] = {
    DefaultRecordBatch.CODEC_GZIP: _gunzip,
    DefaultRecordBatch.CODEC_SNAPPY: _unsnappy,
    DefaultRecordBatch.CODEC_LZ4: _unlz4,
    DefaultRecordBatch.CODEC_ZSTD: _unzstd,
}
"""Codec id -> bounded inflater (`_read_batch`); each gives kafka-python's bytes or None."""
_LZ4 = DefaultRecordBatch.CODEC_LZ4
_LEGACY_INFLATE = frozenset(
    (DefaultRecordBatch.CODEC_GZIP, DefaultRecordBatch.CODEC_SNAPPY, DefaultRecordBatch.CODEC_LZ4)
)
"""The codecs of magic 0 / 1 message sets (their ids are the v2 ones; zstd came with v2)."""


def _legacy_inner_records(batch: Any) -> Iterator[Any]:
    """The records of a compressed magic 0 / 1 set whose `_buffer` holds its inflated inner
    messages, as kafka-python 3.0.12's `LegacyRecordBatch.__iter__` gives them (offsets made
    absolute from the last inner offset for magic 1, the wrapper's timestamp under
    log-append time, the same `LegacyRecord` objects), but walked twice instead of listed:
    kafka-python keeps one header tuple per inner message before it yields the first (a
    64 MiB set of empty messages is 1.9 million of them, about 500 MiB), here nothing is
    kept. A set whose messages cannot all be framed raises before anything is yielded, as
    kafka-python's does; an inner length below zero too (kafka-python walks back by it)."""
    buffer = batch._buffer
    header = batch.HEADER_STRUCT_V1 if batch.magic == 1 else batch.HEADER_STRUCT_V0
    key_offset = batch.KEY_OFFSET_V1 if batch.magic == 1 else batch.KEY_OFFSET_V0
    overhead = batch.LOG_OVERHEAD
    end = len(buffer)
    pos = 0
    last = None
    while pos < end:  # the first walk: every header readable, and the last inner offset
        fields = header.unpack_from(buffer, pos)
        if fields[1] < 0:  # kafka-python steps back by it (and loops for good at -12)
            raise errors.CorruptRecordError(f"inner message of negative length at {pos}")
        last = fields[0]
        pos += overhead + fields[1]
    if last is None:
        if batch.magic > 0:  # kafka-python: the last of no headers, an IndexError
            raise errors.CorruptRecordError("compressed message set without messages")
        return
    base = batch._offset - last if batch.magic > 0 else -1
    timestamp_type = batch.timestamp_type
    append_time = timestamp_type == batch.LOG_APPEND_TIME
    pos = 0
    while pos < end:
        fields = header.unpack_from(buffer, pos)
        offset, length, crc, attributes = fields[0], fields[1], fields[2], fields[4]
        timestamp = fields[5] if batch.magic == 1 else None
        if attributes & batch.CODEC_MASK:
            raise errors.CorruptRecordError(f"message set at offset {offset} is double-compressed")
        if append_time:
            timestamp = batch._timestamp
        if base >= 0:
            offset += base
        key, value = batch._read_key_value(pos + key_offset)
        yield LegacyRecord(
            batch.magic,
            offset,
            timestamp,
            timestamp_type,
            key,
            value,
            crc,
            batch._crc_bytes(pos, length),
        )
        pos += overhead + length
