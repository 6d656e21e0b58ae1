"""monitor.kafka_records against kafka-python's own PartitionRecords, record by record."""

from __future__ import annotations

import collections
import contextlib
import gzip
import logging
import random
import re
import struct
import tracemalloc
import zlib
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import cramjam
import kafka
import lz4.frame
import pytest
from kafka import KafkaConsumer
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.protocol.consumer import IsolationLevel
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import calc_crc32c
from kafka.serializer import Deserializer
from kafka.structs import TopicPartition

from monitor import kafka_records
from monitor.errors import UnreadableReason
from monitor.kafka_records import LeanPartitionRecords
from monitor.ratelimit import RateLimitedSampler
from monitor.source import raw_message
from tests.support.record_headers import zigzag_varint

TP = TopicPartition("events", 3)
GZIP = DefaultRecordBatch.CODEC_GZIP
SNAPPY = DefaultRecordBatch.CODEC_SNAPPY
LZ4 = DefaultRecordBatch.CODEC_LZ4
ZSTD = DefaultRecordBatch.CODEC_ZSTD
CODECS = {"gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}
Record = tuple[int, int | None, bytes | None, bytes | None, list[tuple[str, bytes | None]]]


@pytest.fixture(autouse=True)
def fresh_warning_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with the whole rate limit of warnings (ten a minute, module-wide)."""
    monkeypatch.setattr(kafka_records, "_UNREADABLE_LOG", RateLimitedSampler(10))


def v2_batch(
    base_offset: int,
    records: Sequence[Record],
    *,
    compression: int = 0,
    transactional: bool = False,
    producer_id: int = -1,
) -> bytearray:
    """A v2 record batch of (offset delta, timestamp, key, value, headers) records."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=int(transactional),
        producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=0 if producer_id >= 0 else -1,
        batch_size=1 << 30,
    )
    for delta, timestamp, key, value, headers in records:
        builder.append(delta, timestamp=timestamp, key=key, value=value, headers=headers)
    batch = bytearray(builder.build())
    batch[0:8] = struct.pack(">q", base_offset)
    return batch


def rewrite(batch: bytearray, **fields: int) -> bytearray:
    """`batch` with some header fields changed (attributes, last_offset_delta, ...), CRC fixed."""
    names = [
        *("base_offset", "length", "leader_epoch", "magic", "crc", "attributes"),
        *("last_offset_delta", "first_timestamp", "max_timestamp", "producer_id"),
        *("producer_epoch", "base_sequence", "records_count"),
    ]
    header = dict(zip(names, DefaultRecordBatch.HEADER_STRUCT.unpack_from(batch), strict=True))
    header.update(fields)
    out = bytearray(batch)
    DefaultRecordBatch.HEADER_STRUCT.pack_into(out, 0, *header.values())
    crc = calc_crc32c(memoryview(out)[DefaultRecordBatch.ATTRIBUTES_OFFSET :])
    struct.pack_into(">I", out, DefaultRecordBatch.CRC_OFFSET, crc)
    return out


def legacy_batch(magic: int, offset: int, value: bytes, key: bytes | None = None) -> bytearray:
    """A magic 0 or 1 message set of one record at `offset`."""
    builder = LegacyRecordBatchBuilder(magic=magic, compression_type=0, batch_size=1 << 20)
    builder.append(0, timestamp=1_700_000_000_000 if magic else None, key=key, value=value)
    batch = bytearray(builder.build())
    batch[0:8] = struct.pack(">q", offset)
    return batch


def outcome(
    cls: Any, data: bytes, fetch_offset: int = 0, sizes: Sequence[int | None] = (None,), **kw: Any
) -> tuple[Any, ...]:
    """Everything a fetcher sees of one fetch: records (as RawMessage), the exception that
    ended it, the next fetch offset, the leader epoch, the records / bytes read, and whether
    the fetch is left undrained (kafka-python's fetcher then loops on it without end)."""
    part = cls(fetch_offset, TP, MemoryRecords(data), **kw)
    records: list[Any] = []
    error = None
    turn = 0
    while part:
        try:
            taken = part.take(sizes[turn % len(sizes)])
        except Exception as exc:  # the exception is part of the outcome
            # the nested exception's text differs (bytearray vs memoryview): not compared
            error = (type(exc), re.sub(r"structure: .*", "structure: ...", str(exc)))
            break
        turn += 1
        if not taken:
            break
        records += taken
    if not issubclass(cls, LeanPartitionRecords):
        records = [raw_message(record) for record in records]
    return (
        records,
        error,
        part.next_fetch_offset,
        part.leader_epoch,
        part.records_read,
        part.bytes_read,
        bool(part),  # still to be taken from: kafka-python polls it again
    )


def assert_same(data: bytes, **kw: Any) -> list[Any]:
    """The lean class and kafka-python's give the same outcome; returns the records."""
    stock = outcome(Fetcher.PartitionRecords, data, **kw)
    assert outcome(LeanPartitionRecords, data, **kw) == stock
    records: list[Any] = stock[0]
    return records


def plain_records(n: int, start_ts: int = 1_700_000_000_000) -> list[Record]:
    """`n` records with values of growing size, no keys or headers."""
    return [(i, start_ts + 7 * i, None, b'{"x": %d}' % i * (1 + i % 40), []) for i in range(n)]


ODD_RECORDS: list[Record] = [
    (0, -1, None, b"no timestamp", []),
    (1, 1_700_000_000_000, b"key", None, []),
    (2, 1_699_999_999_000, b"", b"", [("h", b"v"), ("empty", b""), ("null", None)]),
    (3, 1_700_000_000_500, b"k" * 300, b"v" * 70_000, [("\u00e9t\u00e9", b"\x00\xff")]),
]


@pytest.mark.parametrize(
    ("name", "data", "fetch_offset"),
    [
        ("one batch", v2_batch(0, plain_records(50)), 0),
        (
            "batches back to back",
            v2_batch(0, plain_records(20)) + v2_batch(20, plain_records(30)),
            0,
        ),
        ("keys, nulls, headers, no timestamp", v2_batch(100, ODD_RECORDS), 100),
        ("gzip", v2_batch(5, plain_records(40), compression=GZIP) + v2_batch(45, ODD_RECORDS), 5),
        ("fetch offset inside a batch", v2_batch(0, plain_records(30)), 17),
        ("gzip, fetch offset inside a batch", v2_batch(0, plain_records(30), compression=GZIP), 11),
        (
            "compacted: offset gaps",
            v2_batch(0, [(d, 1_700_000_000_000, None, b"v", []) for d in (0, 4, 9)]),
            0,
        ),
        (
            "compacted: last record gone",
            rewrite(v2_batch(0, plain_records(5)), last_offset_delta=9),
            0,
        ),
        ("log append time", rewrite(v2_batch(0, plain_records(8)), attributes=0x08), 0),
        ("leader epoch", rewrite(v2_batch(0, plain_records(3)), leader_epoch=7), 0),
        ("empty batch", rewrite(v2_batch(0, plain_records(1))[:61], length=49, records_count=0), 0),
        *(
            (f"{codec}, fetch offset inside", v2_batch(0, plain_records(30), compression=c), 11)
            for codec, c in CODECS.items()
            if c != GZIP
        ),
        ("snappy, many xerial blocks", v2_batch(0, plain_records(900), compression=SNAPPY), 0),
        ("legacy magic 0 and 1", legacy_batch(0, 0, b"m0", b"k") + legacy_batch(1, 1, b"m1"), 0),
        ("legacy then v2", legacy_batch(1, 0, b"m1") + v2_batch(1, plain_records(4)), 0),
        (
            "a partial batch at the end",
            v2_batch(0, plain_records(6)) + v2_batch(6, plain_records(6))[:90],
            0,
        ),
    ],
)
def test_records_match_kafka_python_for_every_batch_shape(
    name: str, data: bytes, fetch_offset: int
) -> None:
    """Each batch shape gives kafka-python's records, positions and counts in any take size."""
    for sizes in ((None,), (1,), (3, 1, 7)):
        records = assert_same(bytes(data), fetch_offset=fetch_offset, sizes=sizes)
        assert records or name == "empty batch", name


def test_timestamps_and_headers_come_through_as_kafka_source_maps_them() -> None:
    """A -1 timestamp is None, a null header value stays None, keys and values are bytes."""
    records = assert_same(bytes(v2_batch(100, ODD_RECORDS)), fetch_offset=100)
    assert [r.offset for r in records] == [100, 101, 102, 103]
    assert records[0].timestamp_ms is None and records[1].value is None
    assert records[2].headers == (("h", b"v"), ("empty", b""), ("null", None))
    assert (
        records[3].headers == (("\u00e9t\u00e9", b"\x00\xff"),) and len(records[3].value) == 70_000
    )


def control_batch(base_offset: int, producer_id: int, *, abort: bool) -> bytearray:
    """A transaction marker: one control record whose key says abort (0) or commit (1)."""
    key = struct.pack(">hh", 0, 0 if abort else 1)
    batch = v2_batch(
        base_offset,
        [(0, 1_700_000_000_000, key, b"\x00\x00\x00\x00\x00\x00", [])],
        transactional=True,
        producer_id=producer_id,
    )
    return rewrite(batch, attributes=0x10 | 0x20)


def test_read_committed_skips_aborted_transactions_and_markers_as_kafka_python_does() -> None:
    """Aborted and control batches are skipped, committed ones kept, positions as kafka-python's."""
    data = bytes(
        v2_batch(0, plain_records(3), transactional=True, producer_id=7)
        + control_batch(3, 7, abort=True)
        + v2_batch(4, plain_records(2), transactional=True, producer_id=8)
        + control_batch(6, 8, abort=False)
        + v2_batch(7, plain_records(2))
        + v2_batch(9, plain_records(2), transactional=True, producer_id=7)
        + control_batch(11, 7, abort=False)
    )
    aborted = [SimpleNamespace(producer_id=7, first_offset=0)]
    committed = assert_same(
        data, isolation_level=IsolationLevel.READ_COMMITTED, aborted_transactions=aborted
    )
    assert [r.offset for r in committed] == [4, 5, 7, 8, 9, 10]  # 7's next transaction counts
    uncommitted = assert_same(data, aborted_transactions=aborted)
    assert [r.offset for r in uncommitted] == [0, 1, 2, 4, 5, 7, 8, 9, 10]


def test_a_batch_whose_crc_fails_is_skipped_with_one_warning_and_the_fetch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A CRC mismatch skips that batch (kafka-python raises), logs where, and reads on."""
    bad = v2_batch(10, plain_records(4))
    bad[-3] ^= 0x01
    data = bytes(v2_batch(0, plain_records(10)) + bad + v2_batch(14, plain_records(4)))
    with caplog.at_level(logging.WARNING, logger="monitor.kafka_records"):
        records, error, next_offset, *_ = outcome(LeanPartitionRecords, data)
    assert [r.offset for r in records] == [*range(10), 14, 15, 16, 17]
    assert error is None and next_offset == 18
    said = [r.getMessage() for r in caplog.records]
    assert (
        len(said) == 1
        and "events:3 at offset 10 (CRC mismatch)" in said[0]
        and "reading on at offset 14" in said[0]
    )
    stock = outcome(Fetcher.PartitionRecords, data)
    assert len(stock[0]) == 10 and stock[1] is not None and stock[1][0] is CorruptRecordError
    assert len(assert_same(data, check_crcs=False)) == 18


@pytest.mark.parametrize("codec", CODECS)
def test_a_batch_that_does_not_decompress_is_skipped_and_the_next_one_read(codec: str) -> None:
    """A compressed batch with a valid CRC over a broken payload is skipped, not the fetch."""
    broken = v2_batch(5, plain_records(5), compression=CODECS[codec])
    broken[66:80] = b"\xff" * 14  # inside the compressed records
    data = bytes(v2_batch(0, plain_records(5)) + rewrite(broken) + v2_batch(10, plain_records(3)))
    records, error, next_offset, *_ = outcome(LeanPartitionRecords, data)
    assert [r.offset for r in records] == [0, 1, 2, 3, 4, 10, 11, 12]
    assert error is None and next_offset == 13


def recompressed(batch: bytearray, codec: int, payload: bytes) -> bytearray:
    """`batch` (uncompressed) with its records replaced by `payload`, compressed by `codec`."""
    out = bytearray(batch[:61]) + payload
    return rewrite(out, length=len(out) - 12, attributes=codec)


def test_raw_snappy_and_an_lz4_frame_with_bytes_after_it_read_as_kafka_python_reads_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One raw snappy block (no xerial framing) gives the batch's records; so does an lz4
    frame followed by other bytes (kafka-python reads the first frame only); a cut frame is
    skipped."""
    plain = v2_batch(0, plain_records(12))
    records = bytes(plain[61:])
    raw_snappy = recompressed(plain, SNAPPY, bytes(cramjam.snappy.compress_raw(records)))
    assert [r.offset for r in assert_same(bytes(raw_snappy))] == list(range(12))
    trailed = recompressed(plain, LZ4, lz4.frame.compress(records) + b"more bytes")
    assert assert_same(bytes(trailed)) == assert_same(bytes(plain))
    cut = recompressed(plain, LZ4, lz4.frame.compress(records)[:-9])  # ends inside its frame
    with caplog.at_level(logging.WARNING, logger="monitor.kafka_records"):
        got, error, next_offset, *_ = outcome(LeanPartitionRecords, bytes(cut))
    assert got == [] and error is None and next_offset == 12  # skipped
    assert "(lz4 stream ends inside a frame)" in caplog.records[0].getMessage()


@pytest.mark.parametrize("codec", CODECS)
def test_a_compressed_batch_that_inflates_beyond_the_bound_is_skipped_uninflated(
    codec: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small compressed batch of a huge value is skipped at the bound (kafka-python
    inflates it whole)."""
    monkeypatch.setattr(kafka_records, "MAX_INFLATED_BATCH_BYTES", 1 << 20)
    c = CODECS[codec]
    bomb = v2_batch(1, [(0, 1_700_000_000_000, None, bytes(2 << 20), [])], compression=c)
    fits = v2_batch(2, [(0, 1_700_000_000_000, None, bytes(1 << 19), [])], compression=c)
    assert len(bomb) < 200_000
    data = bytes(v2_batch(0, plain_records(1)) + bomb + fits)
    with caplog.at_level(logging.WARNING, logger="monitor.kafka_records"):
        records, error, next_offset, *_ = outcome(LeanPartitionRecords, data)
    assert [r.offset for r in records] == [0, 2] and error is None and next_offset == 3
    assert len(records[1].value) == 1 << 19
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "at offset 1 (inflates beyond 1 MiB)" in said[0]
    stock = outcome(Fetcher.PartitionRecords, data)
    assert len(stock[0][1].value) == 2 << 20  # kafka-python inflated all of it


def gzip_members(batch: bytearray, cut: int, padding: bytes) -> bytearray:
    """`batch` (uncompressed) with its records gzipped as two members split at byte `cut`
    of the records, `padding` between them."""
    records = bytes(batch[61:])
    payload = gzip.compress(records[:cut]) + padding + gzip.compress(records[cut:])
    out = bytearray(batch[:61]) + payload
    return rewrite(out, length=len(out) - 12, attributes=GZIP)


def test_gzip_members_and_zero_padding_inflate_as_kafka_python_inflates_them() -> None:
    """Two gzip members, with or without zero bytes between them, give kafka-python's records."""
    plain = v2_batch(0, plain_records(12))
    for padding in (b"", b"\x00" * 7):
        data = bytes(gzip_members(plain, 100, padding) + v2_batch(12, plain_records(2)))
        assert [r.offset for r in assert_same(data)] == list(range(14))
    truncated = gzip_members(plain, 100, b"")[:-5]
    data = bytes(rewrite(truncated, length=len(truncated) - 12) + v2_batch(12, plain_records(2)))
    records, error, next_offset, *_ = outcome(LeanPartitionRecords, data)
    assert [r.offset for r in records] == [12, 13] and error is None and next_offset == 14
    assert outcome(Fetcher.PartitionRecords, data)[1] is not None


@pytest.mark.parametrize("codec", CODECS)
def test_a_fetch_inflates_at_most_the_bound_and_the_next_fetch_goes_on(
    codec: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compressed batches that fit the bound alone but not together end the fetch unread,
    unskipped."""
    monkeypatch.setattr(kafka_records, "MAX_INFLATED_BATCH_BYTES", 1 << 20)
    batches = [
        v2_batch(i, [(0, 1_700_000_000_000, None, bytes(600 << 10), [])], compression=CODECS[codec])
        for i in range(3)
    ]
    data = bytes(b"".join(batches))
    assert len(data) < 200_000
    seen: list[int] = []
    offset = 0
    with caplog.at_level(logging.WARNING, logger="monitor.kafka_records"):
        for _ in range(3):  # each fetch starts where the last one stopped
            start = sum(len(b) for b in batches[:offset])
            records, error, offset, *rest = outcome(
                LeanPartitionRecords, data[start:], fetch_offset=offset
            )
            assert error is None and not rest[-1] and len(records) == 1  # one 600 KiB batch each
            seen += [r.offset for r in records]
    assert seen == [0, 1, 2] and offset == 3 and caplog.records == []


def test_a_xerial_header_with_little_endian_versions_reads_as_kafka_python_reads_it() -> None:
    """Snappy batches whose xerial version fields are little-endian (Redpanda writes them so,
    kafka-python issue 2414) are read, not skipped: v2 and magic 1."""
    batch = v2_batch(0, plain_records(40), compression=SNAPPY)
    assert batch[61:69] == b"\x82SNAPPY\x00"
    batch[69:77] = struct.pack("<ii", 1, 1)
    legacy = compressed_legacy_batch(1, 40, [b"a", b"b"], SNAPPY)
    at = bytes(legacy).index(b"\x82SNAPPY\x00") + 8
    legacy[at : at + 8] = struct.pack("<ii", 1, 1)
    legacy = with_wrapper_key(legacy, 1, b"")  # the CRC written again
    records = assert_same(bytes(rewrite(batch) + legacy))
    assert [r.offset for r in records] == list(range(42))


def compressed_legacy_batch(
    magic: int, offset: int, values: Sequence[bytes], codec: int, key: bytes | None = b"k"
) -> bytearray:
    """A magic 0 or 1 message set of `values` compressed by `codec`, its first at `offset`."""
    builder = LegacyRecordBatchBuilder(magic=magic, compression_type=codec, batch_size=64 << 20)
    for i, value in enumerate(values):
        timestamp = 1_700_000_000_000 + i if magic else None
        inner = i if magic else offset + i  # magic 1: relative to the wrapper; 0: absolute
        builder.append(inner, timestamp=timestamp, key=key, value=value)
    batch = bytearray(builder.build())
    last = offset + len(values) - 1  # the wrapper carries the last inner offset
    batch[0:8] = struct.pack(">q", last)
    return batch


def with_wrapper_key(batch: bytearray, magic: int, key: bytes) -> bytearray:
    """A legacy compressed set whose wrapper message carries `key` (producers write none;
    readers skip it): the same value, the size and CRC written again."""
    head = 8 + 4 + 4 + 1 + 1 + (8 if magic else 0)  # offset, size, crc, magic, attrs, ts
    (key_size,) = struct.unpack_from(">i", batch, head)
    assert key_size == -1
    value_part = batch[head + 4 :]  # value length and value
    body = batch[16:head] + struct.pack(">i", len(key)) + key + value_part
    out = bytearray(batch[:8]) + struct.pack(">i", 4 + len(body))
    return out + struct.pack(">I", zlib.crc32(body)) + body


@pytest.mark.parametrize(
    ("magic", "codec"), [(0, GZIP), (0, SNAPPY), (1, GZIP), (1, SNAPPY), (1, LZ4)]
)
def test_compressed_legacy_message_sets_give_kafka_pythons_records(magic: int, codec: int) -> None:
    """Magic 0 / 1 message sets inflated here read as kafka-python reads them, fetch offset
    inside a set included."""
    values = [b'{"x": %d}' % i * (1 + i % 9) for i in range(30)]
    data = bytes(
        compressed_legacy_batch(magic, 0, values, codec)
        + with_wrapper_key(
            compressed_legacy_batch(magic, 30, values[:5], codec, key=None), magic, b"wk"
        )
    )
    for fetch_offset in (0, 12, 31):
        for sizes in ((None,), (1, 7)):
            records = assert_same(data, fetch_offset=fetch_offset, sizes=sizes)
            assert [r.offset for r in records] == list(range(fetch_offset, 35))


def legacy_inner(batch: bytearray, magic: int) -> bytes:
    """The inner messages of a gzip-compressed legacy set (`compressed_legacy_batch`)."""
    head = 8 + 4 + 4 + 1 + 1 + (8 if magic else 0)
    assert struct.unpack_from(">i", batch, head)[0] == -1  # no wrapper key
    (size,) = struct.unpack_from(">i", batch, head + 4)
    return gzip.decompress(bytes(batch[head + 8 : head + 8 + size]))


def gzip_rewrapped(
    batch: bytearray, magic: int, inner: bytes, attributes: int = 0, timestamp: int | None = None
) -> bytearray:
    """`batch` (a gzip legacy set) holding `inner` instead, its wrapper attributes or-ed
    with `attributes` and (magic 1) its timestamp set; length and CRC written again."""
    head = 8 + 4 + 4 + 1 + 1 + (8 if magic else 0)
    value = gzip.compress(inner)
    body = bytearray(batch[16:head]) + struct.pack(">ii", -1, len(value)) + value
    body[1] |= attributes  # magic, then attributes
    if timestamp is not None:
        struct.pack_into(">q", body, 2, timestamp)
    out = bytearray(batch[:8]) + struct.pack(">i", 4 + len(body))
    return out + struct.pack(">I", zlib.crc32(body)) + body


def test_legacy_sets_under_log_append_time_and_with_a_negative_inner_length() -> None:
    """Log-append time on the wrapper gives every record its timestamp, as kafka-python does;
    an inner length of -12 (kafka-python walks on the same spot for good) skips the set."""
    values = [b"v%d" % i for i in range(6)]
    plain = compressed_legacy_batch(1, 0, values, GZIP)
    appended = gzip_rewrapped(plain, 1, legacy_inner(plain, 1), 0x08, 1_800_000_000_000)
    records = assert_same(bytes(appended))
    assert {r.timestamp_ms for r in records} == {1_800_000_000_000}  # the wrapper's
    inner = bytearray(legacy_inner(plain, 1))
    second = 12 + struct.unpack_from(">i", inner, 8)[0]  # where the second message starts
    struct.pack_into(">i", inner, second + 8, -12)
    looping = gzip_rewrapped(plain, 1, bytes(inner))
    after = compressed_legacy_batch(1, 6, [b"after"], GZIP)
    records, error, next_offset, *_ = outcome(LeanPartitionRecords, bytes(looping + after))
    assert [r.value for r in records] == [b"after"] and error is None and next_offset == 7


def test_a_compressed_legacy_set_of_many_messages_is_not_listed_whole() -> None:
    """100,000 empty inner messages: kafka-python lists a header per message before the first
    record (about 20 MiB more at the peak); read here, 5,000 at a time, the set holds none."""
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=GZIP, batch_size=1 << 30)
    for i in range(100_000):
        builder.append(i, timestamp=1_700_000_000_000, key=None, value=b"")
    data = bytes(builder.build())

    def peak_mib(cls: Any) -> float:
        part = cls(0, TP, MemoryRecords(data))
        tracemalloc.start()
        try:
            taken = 0
            while part and (records := part.take(5_000)):
                taken += len(records)
            assert taken == 100_000
            return tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()

    stock, lean = peak_mib(Fetcher.PartitionRecords), peak_mib(LeanPartitionRecords)
    # the inflated set is 3.2 MiB (inflated in 1 MiB steps here); the list some 20 MiB more
    assert lean < stock / 2 and stock - lean > 100_000 * 100 / 2**20, (stock, lean)


@pytest.mark.parametrize(("magic", "codec"), [(0, GZIP), (1, SNAPPY), (1, LZ4)])
def test_a_compressed_legacy_message_set_inflates_within_the_bound(
    magic: int, codec: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small legacy set inflating beyond the bound is skipped as too large (kafka-python
    inflates it whole); two that fit alone but not together come one a fetch."""
    monkeypatch.setattr(kafka_records, "MAX_INFLATED_BATCH_BYTES", 1 << 20)
    bomb = compressed_legacy_batch(magic, 0, [bytes(2 << 20)], codec)
    assert len(bomb) < 200_000
    unreadable: collections.Counter[tuple[str, UnreadableReason]] = collections.Counter()
    counting = type("Counting", (LeanPartitionRecords,), {"unreadable": unreadable})
    data = bytes(bomb + compressed_legacy_batch(magic, 1, [b"after"], codec))
    records, error, next_offset, *_ = outcome(counting, data)
    assert [(r.offset, r.value) for r in records] == [(1, b"after")] and error is None
    assert next_offset == 2 and unreadable == {("events", UnreadableReason.TOO_LARGE): 1}
    halves = [compressed_legacy_batch(magic, i, [bytes(600 << 10)], codec) for i in range(2)]
    records, error, next_offset, *_ = outcome(LeanPartitionRecords, bytes(b"".join(halves)))
    assert [r.offset for r in records] == [0] and error is None and next_offset == 1


def test_a_poll_inflates_at_most_the_bound_over_all_its_partitions(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fetches sharing a consumer's budget: the second partition's batch waits for the next
    poll, unread and unskipped (a budget per fetch let each partition inflate the bound)."""
    monkeypatch.setattr(kafka_records, "MAX_INFLATED_BATCH_BYTES", 1 << 20)
    budget = kafka_records.InflateBudget()
    shared = type("Shared", (LeanPartitionRecords,), {"budget": budget})
    big: list[Record] = [(0, 1_700_000_000_000, None, bytes(600 << 10), [])]
    data = bytes(v2_batch(5, big, compression=GZIP))
    first, second = (shared(5, TopicPartition("events", p), MemoryRecords(data)) for p in (0, 1))
    with caplog.at_level(logging.WARNING, logger="monitor.kafka_records"):
        assert [r.offset for r in first.take(100)] == [5]
        assert second.take(100) == [] and not second  # drained: refetched from offset 5
        assert second.next_fetch_offset == 5 and second.bytes_read == 0  # not rotated back
        budget.renew()  # the next poll
        again = shared(5, TopicPartition("events", 1), MemoryRecords(data))
        assert [(r.partition, r.offset) for r in again.take(100)] == [(1, 5)]
    assert caplog.records == []
    assert 0 < budget.left <= (1 << 20) - (600 << 10)  # the value and its record's framing


def test_what_the_owner_holds_counts_against_the_bound_and_a_held_back_batch_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With `held` bytes, a batch that fits the bound only without them waits unread and
    unskipped (`held_back`), as does one beyond the bound alone, judged once nothing is held."""
    monkeypatch.setattr(kafka_records, "MAX_INFLATED_BATCH_BYTES", 1 << 20)
    budget = kafka_records.InflateBudget()
    unreadable: collections.Counter[tuple[str, UnreadableReason]] = collections.Counter()
    shared = type("Held", (LeanPartitionRecords,), {"budget": budget, "unreadable": unreadable})
    for size, readable in ((600 << 10, True), (2 << 20, False)):
        data = bytes(
            v2_batch(5, [(0, 1_700_000_000_000, None, bytes(size), [])], compression=GZIP)
            + v2_batch(6, plain_records(1))
        )
        budget.held, budget.held_back = 500 << 10, False
        budget.renew()
        held = shared(5, TP, MemoryRecords(data))
        assert held.take(100) == [] and held.next_fetch_offset == 5 and budget.held_back
        assert not unreadable
        budget.held = 0
        budget.renew()
        again = shared(5, TP, MemoryRecords(data))
        assert [r.offset for r in again.take(100)] == ([5, 6] if readable else [6])
        assert sum(unreadable.values()) == (0 if readable else 1)


def test_every_skipped_batch_is_counted_per_topic_and_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CRC mismatch, a bomb, a broken stream and an unframeable tail: one count each, by
    the topic and the reason the metric exports."""
    monkeypatch.setattr(kafka_records, "MAX_INFLATED_BATCH_BYTES", 1 << 20)
    unreadable: collections.Counter[tuple[str, UnreadableReason]] = collections.Counter()
    counting = type("Counting", (LeanPartitionRecords,), {"unreadable": unreadable})
    bad_crc = v2_batch(1, plain_records(2))
    bad_crc[-3] ^= 0x01
    bomb = v2_batch(3, [(0, 1_700_000_000_000, None, bytes(2 << 20), [])], compression=ZSTD)
    broken = v2_batch(4, plain_records(2), compression=LZ4)
    broken[66:80] = b"\xff" * 14
    unframeable = v2_batch(6, plain_records(1))
    unframeable[8:12] = struct.pack(">i", 5)  # shorter than any batch
    data = v2_batch(0, plain_records(1)) + bad_crc + bomb + rewrite(broken) + unframeable
    part = counting(0, TP, MemoryRecords(bytes(data)))
    assert [r.offset for r in part.take(100)] == [0] and not part
    assert unreadable == {
        ("events", UnreadableReason.CRC_MISMATCH): 1,
        ("events", UnreadableReason.TOO_LARGE): 1,
        ("events", UnreadableReason.CORRUPT): 1,
        ("events", UnreadableReason.UNFRAMED): 1,
    }
    assert part.next_fetch_offset == 6  # the unframeable rest is fetched again from there
    lean = kafka_records.LeanRecords(unreadable=unreadable)
    assert sum(lean.take_unreadable().values()) == 4 and lean.take_unreadable() == {}


def test_warnings_about_unreadable_batches_are_rate_limited(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thirty broken batches in a row give at most ten warnings a minute."""
    batches = []
    for i in range(30):
        bad = v2_batch(i, plain_records(1))
        bad[-3] ^= 0x01
        batches.append(bad)
    with caplog.at_level(logging.WARNING, logger="monitor.kafka_records"):
        records, error, next_offset, *_ = outcome(LeanPartitionRecords, b"".join(batches))
    assert records == [] and error is None and next_offset == 30
    assert len(caplog.records) == 10


def test_a_header_key_that_is_not_utf8_keeps_its_record() -> None:
    """A header key that is not UTF-8 is read with U+FFFD (kafka-python refuses the fetch)."""

    class NotUtf8(str):
        def encode(self, *args: Any, **kwargs: Any) -> bytes:
            return b"\xff\xfe"

    batch = v2_batch(0, [(0, 1_700_000_000_000, None, b"{}", [(NotUtf8("k"), b"v")])])
    data = bytes(batch + v2_batch(1, plain_records(2)))
    records, error, next_offset, *_ = outcome(LeanPartitionRecords, data)
    assert [r.offset for r in records] == [0, 1, 2] and error is None and next_offset == 3
    assert records[0].headers == (("\ufffd\ufffd", b"v"),)
    assert outcome(Fetcher.PartitionRecords, data)[1][0] is CorruptRecordError


def test_many_headers_read_as_kafka_python_reads_them() -> None:
    """Records of 0 to 300 headers (null values, multi-byte lengths) give kafka-python's
    records, over gzip too, in any take size."""
    rng = random.Random(5)
    records: list[Record] = [
        (
            i,
            1_700_000_000_000 + i,
            None,
            b"{}",
            [
                (f"h{j}" * rng.randrange(1, 40), None if rng.random() < 0.2 else bytes(j % 200))
                for j in range(n)
            ],
        )
        for i, n in enumerate([0, 1, 2, 63, 64, 300, 5])
    ]
    for compression in (0, GZIP):
        data = bytes(v2_batch(0, records, compression=compression))
        for sizes in ((None,), (1,), (3, 2)):
            got = assert_same(data, sizes=sizes)
            assert [len(r.headers) for r in got] == [0, 1, 2, 63, 64, 300, 5]


def test_a_record_of_a_million_headers_is_read_without_an_object_per_header() -> None:
    """A 2 KB gzip batch of one record with a million empty headers (2 MB inflated) is read in
    a few MiB, not the ~70 MiB a tuple per header took; its headers still read back."""
    n = 1_000_000
    body = b"".join(zigzag_varint(v) for v in (0, 0, 0, -1, 2)) + b"{}" + zigzag_varint(n)
    body += (zigzag_varint(0) + zigzag_varint(-1)) * n
    plain = v2_batch(0, [(0, 1_700_000_000_000, None, b"{}", [])])
    data = bytes(recompressed(plain, GZIP, gzip.compress(zigzag_varint(len(body)) + body)))
    assert len(data) < 4_000
    part = LeanPartitionRecords(0, TP, MemoryRecords(data))
    tracemalloc.start()
    try:
        [record] = part.take(None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 2**20, peak / 2**20
    assert record.value == b"{}" and len(record.headers) == n
    assert next(iter(record.headers)) == ("", None)


def records_outside_their_batch(data: bytes) -> bool:
    """True if kafka-python reads a record whose offset lies outside its v2 batch's header
    range (base offset to last offset) from `data`."""
    records = MemoryRecords(data)
    with contextlib.suppress(Exception):  # kafka-python's own errors end the search
        batch = records.next_batch()
        while batch is not None:
            if batch.magic == 2:
                with contextlib.suppress(Exception):
                    for record in batch:
                        if not batch.base_offset <= record.offset <= batch.last_offset:
                            return True
            batch = records.next_batch()
    return False


def test_a_record_outside_its_batch_ends_the_batch_and_nothing_comes_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A record whose offset delta points past its batch header: kafka-python returns it and
    then fetches from the header's end, behind it (the records after come again); here the
    batch ends there as unreadable and the next fetch offset never moves back."""
    beyond = rewrite(v2_batch(10, plain_records(6)), last_offset_delta=2)  # records 10..15
    data = bytes(v2_batch(0, plain_records(10)) + beyond)
    stock = outcome(Fetcher.PartitionRecords, data)
    assert [r.offset for r in stock[0]][-3:] == [13, 14, 15] and stock[2] == 13  # back to 13
    with caplog.at_level(logging.WARNING, logger="monitor.kafka_records"):
        records, error, next_offset, *rest = outcome(LeanPartitionRecords, data)
    assert [r.offset for r in records] == list(range(13)) and error is None and not rest[-1]
    assert next_offset == 13
    assert "(a record offset outside its batch)" in caplog.records[0].getMessage()
    behind = rewrite(v2_batch(20, plain_records(2)), last_offset_delta=-5)  # ends before it starts
    records, error, next_offset, *_ = outcome(LeanPartitionRecords, bytes(behind), 20)
    assert records == [] and error is None and next_offset == 21  # past it, not stuck at 20


def mangled_outcomes(
    clean: bytes, rng: random.Random, start: int
) -> tuple[bytes, tuple[Any, ...], tuple[Any, ...]]:
    """`clean` with one to three random bytes from `start` on replaced (and one time in five
    cut short), and its outcome with kafka-python's class and the lean one, CRC checks off."""
    data = bytearray(clean)
    for _ in range(rng.randint(1, 3)):
        data[rng.randrange(start, len(data))] = rng.randrange(256)
    if rng.random() < 0.2:
        data = data[: rng.randrange(start, len(data))]
    stock = outcome(Fetcher.PartitionRecords, bytes(data), check_crcs=False)
    lean = outcome(LeanPartitionRecords, bytes(data), check_crcs=False)
    return bytes(data), stock, lean


def test_mangled_fetches_give_kafka_pythons_records_and_never_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Random byte flips and cuts (CRC checks off): kafka-python's records up to where it
    raises, then the batches after the broken one; never an exception."""
    clean = bytes(
        v2_batch(0, plain_records(6))
        + v2_batch(6, ODD_RECORDS[:3])
        + v2_batch(9, plain_records(3), compression=GZIP)
        + v2_batch(12, plain_records(3), compression=SNAPPY)
        + v2_batch(15, plain_records(3), compression=LZ4)
        + v2_batch(18, plain_records(3), compression=ZSTD)
    )
    rng = random.Random(20261205)
    broken = outside = 0
    caplog.set_level(logging.ERROR, logger="monitor.kafka_records")  # 600 warnings, unread
    for _ in range(600):
        data, stock, lean = mangled_outcomes(clean, rng, 61)
        misplaced = records_outside_their_batch(data)
        if stock[1] is None and not misplaced:
            assert lean == stock
            continue
        assert lean[1] is None and not lean[-1]  # never raises, always drained
        if misplaced:  # kafka-python returned a record its batch does not hold
            outside += 1
            continue
        broken += 1
        assert lean[0][: len(stock[0])] == stock[0]
        assert stock[-1]  # kafka-python would spin on it; this one is done
    assert broken > 100  # the flips did reach the record parser
    assert outside > 0  # and made kafka-python return records outside their batch


def test_mangled_compressed_legacy_sets_give_kafka_pythons_records_and_never_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Byte flips and cuts in compressed magic 0 / 1 sets (CRC checks off): kafka-python's
    records where it reads them, else those before the broken set; never an exception."""
    values = [b'{"x": %d}' % i * (1 + i % 5) for i in range(8)]
    clean = bytes(
        compressed_legacy_batch(1, 0, values, GZIP)
        + compressed_legacy_batch(0, 8, values, SNAPPY)
        + compressed_legacy_batch(1, 16, values, LZ4)
    )
    rng = random.Random(20261205)
    broken = 0
    caplog.set_level(logging.ERROR, logger="monitor.kafka_records")
    for _ in range(300):
        _, stock, lean = mangled_outcomes(clean, rng, 12)
        if stock[1] is None:
            assert lean == stock
            continue
        broken += 1
        assert lean[1] is None and not lean[-1]  # never raises, always drained
        assert lean[0][: len(stock[0])] == stock[0]
    assert broken > 50


class _Bytes(Deserializer):  # type: ignore[misc]
    """A value deserializer that returns the bytes it gets."""

    def deserialize(self, topic: str, headers: Any, data: bytes) -> bytes:
        """`data` as is."""
        return data


def test_install_replaces_the_class_only_where_it_was_checked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A plain consumer gets the lean class; a deserializer or other release keeps the stock one."""
    consumers = [
        KafkaConsumer(bootstrap_servers="127.0.0.1:1", api_version=(2, 5, 0), **extra)
        for extra in ({}, {"value_deserializer": _Bytes()}, {})
    ]
    try:
        plain, deserializing, other_release = consumers
        lean = kafka_records.install(plain)
        assert lean is not None
        lean_class = plain._fetcher.PartitionRecords
        assert issubclass(lean_class, LeanPartitionRecords)
        assert lean_class.budget is lean.budget and lean_class.unreadable is lean.unreadable
        lean.budget.left = 0
        assert plain._fetcher.fetched_records() == ({}, False)  # nothing fetched yet
        assert lean.budget.left == kafka_records.MAX_INFLATED_BATCH_BYTES  # renewed
        assert not kafka_records.install(deserializing)
        assert not kafka_records.install(object())
        monkeypatch.setattr(kafka, "__version__", "3.1.0")
        kafka_records._say_unchecked.cache_clear()
        with caplog.at_level(logging.INFO, logger="monitor.kafka_records"):
            assert not kafka_records.install(other_release)
            assert not kafka_records.install(other_release)
        said = [r.getMessage() for r in caplog.records if "3.1.0" in r.getMessage()]
        assert len(said) == 1 and "unpacks the records itself" in said[0]  # once, not per call
        for consumer in (deserializing, other_release):
            assert consumer._fetcher.PartitionRecords is Fetcher.PartitionRecords
    finally:
        for consumer in consumers:
            consumer.close()
