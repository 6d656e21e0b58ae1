"""monitor.pending_chunks: chunks waiting for their manifest, within bytes and blobs."""

from __future__ import annotations

import msgspec

from monitor.pending_chunks import MIN_CHUNK_COST, PendingChunks
from monitor.registry import RECORD_VERSION, ChunkRecord, RegistryTable


def test_one_blob_over_the_byte_bound_is_dropped_too() -> None:
    """320 chunks of one blob under a bound of 10 chunks: the blob is forgotten once over."""
    store = PendingChunks(max_bytes=10 * 1024)
    for index in range(320):
        store.add("big", index, 320, b"x" * 1024)
        assert store.nbytes <= 10 * 1024
    assert len(store) <= 1 and store.pop("big") is not None  # the last 9 chunks, refused later


def test_empty_chunks_count_and_the_oldest_blobs_go_first() -> None:
    """Empty chunks cost MIN_CHUNK_COST each; the blob count is bounded; newest kept."""
    store = PendingChunks(max_bytes=100 * MIN_CHUNK_COST, max_blobs=1_000)
    for i in range(16_000):
        store.add(f"id{i}", 0, 2, b"")
    assert len(store) == 100 and store.nbytes == 100 * MIN_CHUNK_COST
    assert [blob for blob, _ in store.items()] == [f"id{i}" for i in range(15_900, 16_000)]
    few = PendingChunks(max_bytes=1 << 30, max_blobs=3)
    for i in range(10):
        few.add(f"id{i}", 0, 2, b"abc")
    assert [blob for blob, _ in few.items()] == ["id7", "id8", "id9"]


def test_a_resent_chunk_and_a_restarted_blob_keep_the_byte_count_exact() -> None:
    """The same index twice counts once; another total starts the blob over; pop frees it."""
    store = PendingChunks(max_bytes=1 << 20)
    store.add("a", 0, 2, b"x" * 1000)
    store.add("a", 0, 2, b"x" * 2000)
    store.add("a", 1, 2, b"x" * 500)
    assert store.nbytes == 2000 + 500
    store.add("a", 0, 3, b"x" * 700)
    assert store.nbytes == 700
    pending = store.pop("a")
    assert pending is not None and pending.total == 3 and pending.pieces == {0: b"x" * 700}
    assert store.nbytes == 0 and len(store) == 0


def test_the_registry_folds_a_flood_of_unclosed_chunks_within_its_bound() -> None:
    """16,000 chunk records of distinct ids that no manifest closes: the table keeps at most
    its bound of blobs and bytes."""
    table = RegistryTable(max_pending_bytes=1 << 20)
    for i in range(16_000):
        value = msgspec.msgpack.encode(ChunkRecord(RECORD_VERSION, f"sha256:{i:064x}", 0, 2, b""))
        assert table.apply(value) is None
    assert len(table._pending) <= 1024 and table._pending.nbytes <= 1 << 20
