"""The fleet's state-topic records and their codec (pure: msgspec, numpy, zlib; no Kafka).

`state.backend: kafka` (docs/fleet.md) makes one Kafka topic the replicated log every
replica folds into the same global state. Each record value is a msgpack map with a format
version `v` and a `kind`:

- `claim`    key `<topic>:<partition>`: a replica (`member`) claims a source partition with
  `epoch`.
- `commit`   key `<topic>:<partition>`: the count increments of the source partition's
  events in the offsets `[from_offset, to_offset)`, under the committer's `epoch`. The
  increments are the blob `zlib(msgpack(Increments))`; a blob of at most `chunk_bytes` rides
  inline (`chunks == 0`), a larger one is cut into `chunk` records written first, and the
  commit is their closing manifest (`chunks`, `size`, `sha256` of the blob).
- `chunk`    same key as its manifest: slice `index` of `total` of the blob `blob_id`.
- `sample`   key `<topic>:<partition>`: where one model's warm-up sample ended on the source
  partition (`until`, the offset after its last record), written by the owner (`epoch`)
  when the model's warm-up completed; whoever later reads the partition from a chain head
  before `until` leaves that model's records before it out (they are the warm-up's, which
  no window counts).
- `snapshot` key `snapshot`: the whole folded state (chain heads and every model's ring, in
  the same sparse form as increments) with the state-topic positions it covers; its blob is
  inline or chunked exactly like a commit's.

Increments are sparse: per model, the parallel int64 arrays `buckets`, `cells` (flat index
`feature * width + bin` into the model's count matrix of shape `(features, width)`) and
`counts`, stored as little-endian bytes, plus the largest event time they contain
(`watermark`) and the `reference_id` whose edges binned them (a replica counts its events
once per reference it bins with: its active one and each pre-warm shadow), and the `rows`
of the matrix: per row the feature's name, the digest of its bins and its value slots
(`monitor.schema_change.Row`), so that the counts of a feature can be found by name in a
ring of another layout of the model (`ring_key`). `decode_record` never raises: any defect
is a `Rejected` with a reason from the closed `StateRejectReason`.
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

import msgspec
import numpy as np
import numpy.typing as npt

from monitor.errors import StateRejectReason
from monitor.schema_change import Row

RECORD_VERSION = 1
#: Bytes of compressed blob per record (well under Kafka's 1 MB default message limit).
DEFAULT_CHUNK_BYTES = 512 * 1024
#: Largest blob accepted after decompression (a zip bomb is refused, not inflated).
MAX_BLOB_BYTES = 1024 * 1024 * 1024
#: A blob inflates to at most this many times its compressed size (plus 64 KiB): the ones
#: driftmon writes inflate 8-12x (commits, snapshots of rings) and about 21x (a snapshot of
#: chain heads only); zlib reaches about 1,030x on zeros, so one 1 MiB record could make
#: every replica that folds it allocate 1 GiB, now at most 128 MiB.
MAX_INFLATE_RATIO = 128
#: The record key of snapshots.
SNAPSHOT_KEY = b"snapshot"

IntArray = npt.NDArray[np.int64]
#: The largest claim epoch a record may carry (a claim of 2**64 - 1 left no epoch above it to
#: claim with: every replica assigned that partition crashed encoding the next claim).
MAX_EPOCH = 2**53
#: The largest offset a record may carry (Kafka offsets are int64).
MAX_OFFSET = 2**63 - 1
#: The largest count of one cell in one increment (the fold's rings count in int32).
MAX_CELL_COUNT = 2**31 - 1
Epoch = Annotated[int, msgspec.Meta(ge=0, le=MAX_EPOCH)]
Offset = Annotated[int, msgspec.Meta(ge=0, le=MAX_OFFSET)]
#: The most model increments (one per model and reference id: rings) in one blob.
MAX_BLOB_INCREMENTS = 65_536
#: The most matrix rows over all the increments of one blob (a legit one carries each ring's
#: features once: 1,000,000 is 450 rings of 2,200 features). A row is a few bytes of msgpack
#: and about 170 as Python objects: an 8 KiB zlib blob of 2,000,000 empty rows took 161 MiB
#: to decode before this bound (and a 1 MiB one would have taken some 20 GiB).
MAX_BLOB_ROWS = 1_000_000
#: The most chain heads (source partitions) in one snapshot.
MAX_SNAPSHOT_HEADS = 100_000
#: The most chunks read but not yet closed that one snapshot carries.
MAX_SNAPSHOT_PENDING = 65_536
#: The most warm-up sample ends one chain head of a snapshot may carry when decoded (the fold
#: keeps at most 64 a partition and drops the rest).
MAX_DECODED_SAMPLES = 256


class ModelIncrement(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One model's sparse counts: `counts[i]` events in bucket `buckets[i]`, cell `cells[i]`,
    binned in the edges of the reference `reference_id` ("" in records written before
    references were carried: they fold into the model's ring of reference "")."""

    model: str
    features: int
    width: int
    watermark: float
    buckets: bytes
    cells: bytes
    counts: bytes
    reference_id: str = ""
    rows: list[Row] = []
    """The matrix's rows (feature name, bins digest, value slots); empty in records written
    before rows were carried (their rows are the model's configured features, by position)."""


class Increments(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The payload of a commit: every model's increments of one offset range."""

    models: Annotated[list[ModelIncrement], msgspec.Meta(max_length=MAX_BLOB_INCREMENTS)]


class ChainHead(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What the fold knows of one source partition: its epoch, owner and chain head, and the
    warm-up samples that end beyond the head (model -> offset after the sample; not written
    when there is none, so a replica of an older version reads the snapshot)."""

    source: str
    epoch: Epoch
    member: str
    next: Offset | None
    samples: Annotated[dict[str, Offset], msgspec.Meta(max_length=MAX_DECODED_SAMPLES)] = {}


class _Envelope(msgspec.Struct, forbid_unknown_fields=False):
    v: int
    kind: str


class ClaimRecord(msgspec.Struct, tag="claim", tag_field="kind", forbid_unknown_fields=True):
    """A replica claims a source partition: accepted iff `epoch` > the partition's epoch."""

    v: int
    source: str
    epoch: Epoch
    member: str


class CommitRecord(msgspec.Struct, tag="commit", tag_field="kind", forbid_unknown_fields=True):
    """Increments of `[from_offset, to_offset)`; the blob inline (`chunks == 0`) or chunked."""

    v: int
    source: str
    epoch: Epoch
    member: str
    from_offset: Offset
    to_offset: Offset
    blob_id: str
    chunks: int
    size: int
    sha256: str
    inline: bytes = b""


class ChunkRecord(msgspec.Struct, tag="chunk", tag_field="kind", forbid_unknown_fields=True):
    """Slice `index` of `total` of a commit's or snapshot's blob."""

    v: int
    blob_id: str
    index: int
    total: int
    data: bytes


class SampleRecord(msgspec.Struct, tag="sample", tag_field="kind", forbid_unknown_fields=True):
    """Where `model`'s warm-up sample ended on `source`: the offset after its last record."""

    v: int
    source: str
    epoch: Epoch
    member: str
    model: str
    until: Offset


class SnapshotRecord(msgspec.Struct, tag="snapshot", tag_field="kind", forbid_unknown_fields=True):
    """The fold's whole state after the state-topic `positions` (partition -> next offset)."""

    v: int
    member: str
    at: float
    positions: dict[int, Offset]
    blob_id: str
    chunks: int
    size: int
    sha256: str
    inline: bytes = b""


class SnapshotBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The payload of a snapshot: chain heads, every model's held ring counts (one entry per
    model and reference id), the chunks read but not yet closed by their manifest (a
    manifest after the snapshot's position still finds them) and each model's global
    watermark (`marks`; it may be ahead of every held ring's after a ring was dropped)."""

    heads: Annotated[list[ChainHead], msgspec.Meta(max_length=MAX_SNAPSHOT_HEADS)]
    models: Annotated[list[ModelIncrement], msgspec.Meta(max_length=MAX_BLOB_INCREMENTS)]
    pending: Annotated[list[ChunkRecord], msgspec.Meta(max_length=MAX_SNAPSHOT_PENDING)] = []
    marks: Annotated[dict[str, float], msgspec.Meta(max_length=MAX_BLOB_INCREMENTS)] = {}


class _RowsOf(msgspec.Struct, frozen=True):
    """An increment's `rows` left as msgpack (its other fields are skipped, not decoded)."""

    rows: msgspec.Raw = msgspec.Raw(b"")


class _RowsOfBlob(msgspec.Struct, frozen=True):
    """The increments of a commit or snapshot blob, only as far as their rows
    (`_count_rows`)."""

    models: Annotated[list[_RowsOf], msgspec.Meta(max_length=MAX_BLOB_INCREMENTS)] = []


Record = ClaimRecord | CommitRecord | ChunkRecord | SampleRecord | SnapshotRecord
Manifest = CommitRecord | SnapshotRecord

_ENVELOPE = msgspec.msgpack.Decoder(_Envelope)
_RECORD = msgspec.msgpack.Decoder(Record)
_INCREMENTS = msgspec.msgpack.Decoder(Increments)
_SNAPSHOT = msgspec.msgpack.Decoder(SnapshotBody)
_ROWS_OF_BLOB = msgspec.msgpack.Decoder(_RowsOfBlob)
_ENCODER = msgspec.msgpack.Encoder()

#: The longest `Rejected.detail`.
MAX_DETAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the fold refused, and why (a closed reason; `detail` is for the log)."""

    reason: StateRejectReason
    detail: str

    def __post_init__(self) -> None:
        """Cut `detail` to MAX_DETAIL_CHARS: it may quote a hostile record (msgspec's error
        for a 1 MiB `kind` quotes all of it)."""
        if len(self.detail) > MAX_DETAIL_CHARS:
            object.__setattr__(self, "detail", self.detail[: MAX_DETAIL_CHARS - 3] + "...")


def source_key(topic: str, partition: int) -> str:
    """The record key (as text) of every claim and commit about one source partition."""
    return f"{topic}:{partition}"


def decode_record(value: bytes | None) -> Record | Rejected:
    """Parse one state-topic record value; never raises (any defect is a `Rejected`)."""
    if value is None:
        return Rejected(StateRejectReason.UNDECODABLE, "record without a value")
    try:
        envelope = _ENVELOPE.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        return Rejected(StateRejectReason.UNDECODABLE, f"not a state record: {exc}")
    if envelope.v != RECORD_VERSION:
        return Rejected(
            StateRejectReason.UNKNOWN_VERSION, f"record version {envelope.v} is not supported"
        )
    try:
        return _RECORD.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        return Rejected(StateRejectReason.UNDECODABLE, f"malformed {envelope.kind!r}: {exc}")


def _i64(data: bytes) -> IntArray | None:
    """Little-endian int64 bytes as an array (None when the length is not a multiple of 8)."""
    if len(data) % 8:
        return None
    return np.frombuffer(data, dtype="<i8").astype(np.int64, copy=False)


def sparse_arrays(increment: ModelIncrement) -> tuple[IntArray, IntArray, IntArray] | Rejected:
    """The (buckets, cells, counts) of an increment, checked: equal lengths, cells in range,
    counts > 0, shape positive. A defect is a `Rejected` (INVALID_RECORD)."""
    arrays = [_i64(increment.buckets), _i64(increment.cells), _i64(increment.counts)]
    buckets, cells, counts = arrays
    bad = ""
    if buckets is None or cells is None or counts is None:
        bad = "array bytes are not int64"
    elif not buckets.size == cells.size == counts.size:
        bad = "arrays of different lengths"
    elif increment.features < 1 or increment.width < 1:
        bad = f"shape ({increment.features}, {increment.width})"
    elif cells.size and (
        int(cells.min()) < 0 or int(cells.max()) >= increment.features * increment.width
    ):
        bad = "cell index out of range"
    elif counts.size and int(counts.min()) < 1:
        bad = "count below 1"
    elif counts.size and int(counts.max()) > MAX_CELL_COUNT:
        bad = f"count above {MAX_CELL_COUNT}"
    elif not np.isfinite(increment.watermark):
        bad = "watermark is not finite"
    if bad or buckets is None or cells is None or counts is None:
        return Rejected(StateRejectReason.INVALID_RECORD, f"model {increment.model!r}: {bad}")
    return buckets, cells, counts


#: Reference ids with this prefix name a rolling reference's lagging ring (hourly buckets over
#: lag + length, `monitor.window.LaggingReference`): folded with the model's lagging template.
LAGGING_PREFIX = "lag:"


def model_increment(
    model: str,
    shape: tuple[int, int],
    watermark: float,
    by_bucket: Mapping[int, npt.NDArray[np.integer]],
    reference_id: str = "",
    rows: Sequence[Row] = (),
) -> ModelIncrement:
    """Dense count matrices per bucket as one sparse increment (only the nonzero cells),
    binned in the edges of `reference_id`, one row per item of `rows`."""
    buckets: list[IntArray] = []
    cells: list[IntArray] = []
    counts: list[IntArray] = []
    for bucket in sorted(by_bucket):
        flat = np.asarray(by_bucket[bucket], dtype=np.int64).ravel()
        nonzero = np.flatnonzero(flat)
        buckets.append(np.full(nonzero.size, bucket, dtype=np.int64))
        cells.append(nonzero.astype(np.int64))
        counts.append(flat[nonzero])

    def join(parts: list[IntArray]) -> bytes:
        return (np.concatenate(parts) if parts else np.zeros(0, np.int64)).astype("<i8").tobytes()

    return ModelIncrement(
        model,
        shape[0],
        shape[1],
        float(watermark),
        join(buckets),
        join(cells),
        join(counts),
        reference_id,
        [Row(*row) for row in rows],
    )


def ring_key(reference_id: str, rows: Sequence[Row]) -> str:
    """The fold's ring name for counts binned with `reference_id`'s edges in a layout of
    `rows`: `<reference id>@<16 hex digits of the rows' SHA-256>`. A model whose features
    change (a new configuration) counts into a ring of its own instead of one of another
    shape, and the rings of the same reference share their features' counts by name
    (`monitor.fleet.carried_window`)."""
    digest = hashlib.sha256()
    for name, bins, slots in rows:
        digest.update(f"{name}\x00{bins}\x00{slots}\x00".encode("utf-8", "surrogatepass"))
    return f"{reference_id}@{digest.hexdigest()[:16]}"


def ring_reference(key: str) -> str:
    """The reference id of a ring name (`ring_key`; a name without rows is the id itself)."""
    return key.rpartition("@")[0] if "@" in key else key


def _blob_records(blob: bytes, chunk_bytes: int) -> tuple[str, int, bytes, list[bytes]]:
    """(blob_id, chunks, inline, chunk record values) for one compressed blob."""
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    blob_id = uuid.uuid4().hex
    if len(blob) <= chunk_bytes:
        return blob_id, 0, blob, []
    pieces = [blob[i : i + chunk_bytes] for i in range(0, len(blob), chunk_bytes)]
    chunks = [
        _ENCODER.encode(ChunkRecord(RECORD_VERSION, blob_id, i, len(pieces), piece))
        for i, piece in enumerate(pieces)
    ]
    return blob_id, len(pieces), b"", chunks


def encode_claim(source: str, epoch: int, member: str) -> tuple[bytes, bytes]:
    """The (key, value) of a claim."""
    return source.encode(), _ENCODER.encode(ClaimRecord(RECORD_VERSION, source, epoch, member))


def encode_sample(
    source: str, epoch: int, member: str, model: str, until: int
) -> tuple[bytes, bytes]:
    """The (key, value) of a warm-up sample's end on a source partition."""
    record = SampleRecord(RECORD_VERSION, source, epoch, member, model, until)
    return source.encode(), _ENCODER.encode(record)


def encode_commit(
    source: str,
    epoch: int,
    member: str,
    from_offset: int,
    to_offset: int,
    increments: list[ModelIncrement],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> list[tuple[bytes, bytes]]:
    """The (key, value) records of one commit: its chunks (if any), then the commit."""
    blob = zlib.compress(_ENCODER.encode(Increments(increments)), 1)
    blob_id, n_chunks, inline, chunks = _blob_records(blob, chunk_bytes)
    key = source.encode()
    commit = CommitRecord(
        RECORD_VERSION,
        source,
        epoch,
        member,
        from_offset,
        to_offset,
        blob_id,
        n_chunks,
        len(blob),
        hashlib.sha256(blob).hexdigest(),
        inline,
    )
    return [(key, value) for value in chunks] + [(key, _ENCODER.encode(commit))]


def encode_snapshot(
    body: SnapshotBody,
    positions: dict[int, int],
    member: str,
    at: float,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> list[tuple[bytes, bytes]]:
    """The (key, value) records of one snapshot: its chunks (if any), then the snapshot."""
    blob = zlib.compress(_ENCODER.encode(body), 1)
    blob_id, n_chunks, inline, chunks = _blob_records(blob, chunk_bytes)
    record = SnapshotRecord(
        RECORD_VERSION,
        member,
        at,
        dict(positions),
        blob_id,
        n_chunks,
        len(blob),
        hashlib.sha256(blob).hexdigest(),
        inline,
    )
    return [(SNAPSHOT_KEY, value) for value in chunks] + [(SNAPSHOT_KEY, _ENCODER.encode(record))]


def inflate(blob: bytes, manifest: Manifest) -> bytes | Rejected:
    """Check a blob against its manifest (size, SHA-256) and decompress it, to at most
    MAX_INFLATE_RATIO times its size and MAX_BLOB_BYTES."""
    if len(blob) != manifest.size or hashlib.sha256(blob).hexdigest() != manifest.sha256:
        return Rejected(
            StateRejectReason.HASH_MISMATCH, f"blob {manifest.blob_id} does not match its digest"
        )
    limit = min(MAX_BLOB_BYTES, MAX_INFLATE_RATIO * len(blob) + 65_536)
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(blob, limit)
        if inflater.unconsumed_tail:
            raise zlib.error(f"inflates beyond {limit} bytes ({MAX_INFLATE_RATIO}x its size)")
        if not inflater.eof:
            raise zlib.error("truncated")
    except zlib.error as exc:
        return Rejected(StateRejectReason.INVALID_RECORD, f"blob {manifest.blob_id}: {exc}")
    return raw


def decode_increments(raw: bytes) -> Increments | Rejected:
    """Parse an inflated commit blob (refused with more than MAX_BLOB_ROWS rows in all)."""
    try:
        _count_rows(raw)
        return _INCREMENTS.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        return Rejected(StateRejectReason.INVALID_RECORD, f"increments: {exc}")


def decode_snapshot(raw: bytes) -> SnapshotBody | Rejected:
    """Parse an inflated snapshot blob (refused with more than MAX_BLOB_ROWS rows in all)."""
    try:
        _count_rows(raw)
        return _SNAPSHOT.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        return Rejected(StateRejectReason.INVALID_RECORD, f"snapshot: {exc}")


def _count_rows(raw: bytes) -> int:
    """The rows of every increment of a blob, counted from their msgpack array headers in
    one pass that makes no object of any row (msgspec skips the other fields); a
    `msgspec.ValidationError` beyond MAX_BLOB_ROWS, before the blob is decoded."""
    total = sum(_array_length(increment.rows) for increment in _ROWS_OF_BLOB.decode(raw).models)
    if total > MAX_BLOB_ROWS:
        raise msgspec.ValidationError(f"{total} rows in one blob (at most {MAX_BLOB_ROWS})")
    return total


def _array_length(raw: msgspec.Raw) -> int:
    """The length of the msgpack array `raw` holds (0 for anything else: the full decode
    refuses a `rows` that is not an array)."""
    data = memoryview(raw)
    if not data:
        return 0
    head = data[0]
    if 0x90 <= head <= 0x9F:  # fixarray
        return head & 0x0F
    if head == 0xDC and len(data) >= 3:  # array 16
        return int.from_bytes(data[1:3], "big")
    if head == 0xDD and len(data) >= 5:  # array 32
        return int.from_bytes(data[1:5], "big")
    return 0
