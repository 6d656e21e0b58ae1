"""State-topic blobs that would decode into far more objects than bytes are refused unread.

A row of an increment is a few bytes of msgpack and about 170 bytes as Python objects, so a
small zlib blob of many empty rows (or of many increments, chain heads, pending chunks or
sample ends) could take every replica that folds it beyond its memory, at each restart.
`monitor.fleet_records` bounds each list where msgspec checks the length before decoding a
single element, and the rows of all increments of a blob together in one pass that makes
no row.
"""

from __future__ import annotations

import hashlib
import tracemalloc
import zlib

import msgspec
import pytest

from monitor import fleet_records
from monitor.errors import StateRejectReason
from monitor.fleet import FleetFold
from monitor.fleet_records import (
    MAX_BLOB_INCREMENTS,
    MAX_BLOB_ROWS,
    MAX_DECODED_SAMPLES,
    MAX_INFLATE_RATIO,
    MAX_SNAPSHOT_HEADS,
    MAX_SNAPSHOT_PENDING,
    ChainHead,
    ChunkRecord,
    Increments,
    Rejected,
    SnapshotBody,
    SnapshotRecord,
    decode_increments,
    decode_record,
    decode_snapshot,
    encode_claim,
    encode_commit,
    encode_snapshot,
    inflate,
)
from tests.unit.test_fleet import _source, _window

EMPTY_ROW = b"\x93\xa0\xa0\x00"  # ["", "", 0]


def _array(n: int, element: bytes) -> msgspec.Raw:
    """A msgpack array of `n` copies of the encoded `element` (array 32 header)."""
    return msgspec.Raw(b"\xdd" + n.to_bytes(4, "big") + element * n)


def _increment(rows: msgspec.Raw | list[object]) -> dict[str, object]:
    return {
        "model": "m",
        "features": 2,
        "width": 5,
        "watermark": 1000.0,
        "buckets": b"",
        "cells": b"",
        "counts": b"",
        "rows": rows,
    }


def _commit_of(raw_increments: bytes) -> bytes:
    """A commit of events:0 (epoch 1, offsets [0, 5)) whose blob is `raw_increments`."""
    _, value = encode_commit(_source(0), 1, "r0", 0, 5, [])[-1]
    commit = msgspec.msgpack.decode(value)
    blob = zlib.compress(raw_increments, 9)
    commit |= {"inline": blob, "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    return msgspec.msgpack.encode(commit)


def test_a_blob_of_a_million_empty_rows_is_refused_without_decoding_them() -> None:
    """Increments of MAX_BLOB_ROWS + 1 empty rows (4 MiB of msgpack; 8 KiB as zlib, which
    the inflate ratio refuses first in a commit) are refused (invalid_record) within a few
    MiB, no object made per row."""
    raw = msgspec.msgpack.encode({"models": [_increment(_array(MAX_BLOB_ROWS + 1, EMPTY_ROW))]})
    tracemalloc.start()
    try:
        refused = decode_increments(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(refused, Rejected)
    assert refused.reason is StateRejectReason.INVALID_RECORD
    assert f"{MAX_BLOB_ROWS + 1} rows in one blob" in refused.detail
    assert peak < 2 * len(raw) + 2**20, peak  # a copy of the blob at most, no object per row


def test_the_rows_of_all_increments_of_a_blob_count_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a bound of 10 rows: two increments of 5 rows decode, one more row anywhere is
    refused, in a commit and in a snapshot alike."""
    monkeypatch.setattr(fleet_records, "MAX_BLOB_ROWS", 10)
    row = ["f", "d", 3]
    for extra in (0, 1):
        models = [_increment([row] * 5), _increment([row] * (5 + extra))]
        commit = decode_increments(msgspec.msgpack.encode({"models": models}))
        snapshot = decode_snapshot(msgspec.msgpack.encode({"heads": [], "models": models}))
        if extra:
            assert isinstance(commit, Rejected) and isinstance(snapshot, Rejected)
            assert "11 rows in one blob (at most 10)" in commit.detail
        else:
            assert isinstance(commit, Increments) and isinstance(snapshot, SnapshotBody)
            assert [len(m.rows) for m in commit.models] == [5, 5]


def _encoded(item: object) -> bytes:
    return msgspec.msgpack.encode(item)


@pytest.mark.parametrize(
    ("field", "bound", "element"),
    [
        ("models", MAX_BLOB_INCREMENTS, _encoded(_increment([]))),
        ("heads", MAX_SNAPSHOT_HEADS, _encoded(ChainHead("t:0", 1, "r", None))),
        ("pending", MAX_SNAPSHOT_PENDING, _encoded(ChunkRecord(1, "b", 0, 2, b""))),
    ],
)
def test_a_snapshot_list_beyond_its_bound_is_refused_and_at_it_decodes(
    field: str, bound: int, element: bytes
) -> None:
    """A snapshot with one increment, head or pending chunk beyond its bound is refused
    before any is decoded; at the bound it decodes."""
    for n, refused in ((bound, False), (bound + 1, True)):
        body = {"heads": [], "models": [], field: _array(n, element)}
        decoded = decode_snapshot(msgspec.msgpack.encode(body))
        assert isinstance(decoded, Rejected) is refused, (field, n)
        if refused:
            assert f"length <= {bound}" in decoded.detail  # type: ignore[union-attr]


def test_a_chain_head_with_too_many_sample_ends_refuses_its_snapshot() -> None:
    """Up to MAX_DECODED_SAMPLES sample ends on a head decode (the fold keeps 64); one more
    refuses the snapshot, which the replica then does without (it folds the topic)."""
    for n, refused in ((MAX_DECODED_SAMPLES, False), (MAX_DECODED_SAMPLES + 1, True)):
        head = {"source": "t:0", "epoch": 1, "member": "r", "next": None}
        head["samples"] = {f"m{i}": 5 for i in range(n)}
        decoded = decode_snapshot(msgspec.msgpack.encode({"heads": [head], "models": []}))
        assert isinstance(decoded, Rejected) is refused


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65_535, 65_536])
def test_row_counts_are_read_from_each_msgpack_array_header(n: int) -> None:
    """fixarray, array 16 and array 32 headers give their lengths; a non-array counts 0."""
    raw = msgspec.Raw(msgspec.msgpack.encode([0] * n))
    assert fleet_records._array_length(raw) == n
    assert fleet_records._array_length(msgspec.Raw(msgspec.msgpack.encode("rows"))) == 0


def test_a_blob_that_inflates_beyond_its_ratio_is_refused_unread() -> None:
    """A commit of 100 KiB of zlib zeros (100 MiB inflated, 1,000x) is refused after at most
    128 times its size was inflated; a blob within the ratio (a snapshot of chain heads
    only, the most compressible kind driftmon writes) folds."""
    value = _commit_of(bytes(100 * 2**20))
    assert len(value) < 120_000
    fold = FleetFold({"m": _window()})
    fold.apply(encode_claim(_source(0), 1, "r0")[1])
    tracemalloc.start()
    try:
        outcome = fold.apply(value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcome.rejected is not None
    assert outcome.rejected.reason is StateRejectReason.INVALID_RECORD
    assert "x its size" in outcome.rejected.detail
    assert peak < 3 * MAX_INFLATE_RATIO * len(value) < 2**27, peak  # not the 100 MiB
    heads = [ChainHead(f"events:{i}", 5, "replica-a", 123_456) for i in range(50_000)]
    body = SnapshotBody(heads, [])
    [(_, manifest)] = encode_snapshot(body, {0: 10}, "replica-a", 1.0, chunk_bytes=2**22)
    record = decode_record(manifest)
    assert isinstance(record, SnapshotRecord)
    raw = inflate(record.inline, record)
    assert not isinstance(raw, Rejected) and len(raw) > 15 * len(record.inline)
    assert decode_snapshot(raw) == body
