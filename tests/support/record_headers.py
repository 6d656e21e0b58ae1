"""Kafka v2 record headers in their wire form, for tests of `PackedHeaders` and dead letters."""

from __future__ import annotations

from collections.abc import Sequence

from kafka.record.util import encode_varint

from monitor.kafka_records import PackedHeaders


def zigzag_varint(n: int) -> bytes:
    """`n` as Kafka writes an int into a v2 record (zigzag varint)."""
    out = bytearray()
    encode_varint(n, out.append)
    return bytes(out)


def pack_headers(headers: Sequence[tuple[bytes, bytes | None]]) -> PackedHeaders:
    """Headers as Kafka writes them into a v2 record (key and value bytes as given; a None
    value is a null one)."""
    raw = b"".join(
        zigzag_varint(len(key))
        + key
        + (zigzag_varint(-1) if value is None else zigzag_varint(len(value)) + value)
        for key, value in headers
    )
    return PackedHeaders(raw, len(headers))
