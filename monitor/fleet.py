"""The fleet's deterministic fold: state-topic records -> chain heads and global rings (pure).

Every replica folds the state topic (docs/fleet.md) with the same rules, so replicas that
have read the same records hold the same state. Per source partition p the fold keeps
`epoch[p]` (0 before any claim), the owner that claimed it, and `next[p]` (the offset after
the last accepted commit; None before the first one):

- claim(p, epoch, member): accepted iff `epoch > epoch[p]`; then `epoch[p] = epoch` and
  the claimant starts reading p at `next[p]` as of this position in the log (the source's
  reset position when None). The start is read from the log, never declared.
- commit(p, epoch, from, to, increments): accepted iff `epoch == epoch[p]` (else
  `stale_epoch`: a zombie, or the commit of a claim that lost) and `from == next[p]` (else
  `gap`; any `from` is accepted as the first link of a chain); then `next[p] = to` and the
  increments are added to the model's global window. So the accepted commits of p form one
  contiguous chain of offset ranges: no event outside it counts, none inside it twice.

References: each model increment carries the `reference_id` whose edges binned it, and the
fold keeps per model one ring per reference id. A ring is made by the first increment binned
with its reference (data-driven: never from a registry or file view, which differ between
replicas in time) and dropped once it holds no bucket; a model holds at most `MAX_RINGS`.
A reference id `LAGGING_PREFIX + id` names a rolling reference's lagging ring: hourly buckets
over lag + length + 1 and no lateness (the model's lagging template, `declare`), with the
same rules applied in its own bucket width.

Adding increments: the model's global watermark `marks[model]` (the largest event time of
any accepted increment of the model, whatever its reference) first moves to the increment's
watermark, and every ring of the model advances to it; then each bucket's counts are added to
the increment's ring when the window still holds that bucket (length + lateness behind the
mark) and dropped otherwise (`late_counts`), exactly as a single window fed the same events
would drop them as too late. The mark only grows, so a bucket held at the end was held at
every earlier fold step; counts add commutatively per ring; and a ring dropped empty equals
the empty ring a later increment makes. So the final rings do not depend on how the records
of different state partitions interleave. The one exception is the bound: whether a ring
beyond MAX_RINGS is refused depends on which rings are still held at that point of the log
(replicas may differ then); every refusal is counted (`too_many_references`).
Rows: an increment that carries its matrix's `rows` (feature name, bins digest, value slots)
is checked against them and its ring's, not against this replica's configured feature
count (only a bound against hostile records: `EXTRA_ROWS`), so replicas configured
differently (a rolling update that adds a feature) decide alike; its
ring (named `ring_key(reference id, rows)` by the contributors) keeps the rows, and
`carried_window` lays the counts of a ring of another layout out in the rows of another by
feature name. An increment without rows (written before rows were carried) must have the
configured feature count.
A commit whose blob is incomplete, corrupt or does not fit a model's matrix shape is refused
as a whole (its chain does not advance); increments of a model this replica has no window
for are skipped (`skipped_models`). `FleetFold.apply` never raises.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from monitor.errors import ClaimResult, CommitResult, StateRejectReason
from monitor.fleet_records import (
    LAGGING_PREFIX,
    RECORD_VERSION,
    ChainHead,
    ChunkRecord,
    ClaimRecord,
    CommitRecord,
    IntArray,
    Manifest,
    ModelIncrement,
    Rejected,
    SampleRecord,
    SnapshotBody,
    SnapshotRecord,
    decode_increments,
    decode_record,
    decode_snapshot,
    inflate,
    model_increment,
    sparse_arrays,
)
from monitor.pending_chunks import PendingChunks
from monitor.reference import MAX_EDGES, MAX_TOP_K
from monitor.schema_change import Row, carry_counts
from monitor.window import EMPTY_BUCKET, EventTimeWindow

#: Bytes of chunks held while waiting for their manifest; beyond it the oldest are dropped.
MAX_PENDING_BYTES = 256 * 1024 * 1024
#: Rings (reference ids with held counts) one model keeps at once: a replica bins with its
#: active reference and at most two pre-warm shadows, and during an activation the old and
#: the new active reference overlap; a change of the model's features adds a ring per
#: reference for one window length (`ring_key`). Increments binned with a further one are
#: refused.
MAX_RINGS = 6
#: Seconds a commit's watermark may be ahead of the folding replica's clock beyond the model's
#: `max_future_seconds` (clock skew between replicas). A watermark further ahead is refused:
#: accepted, one record moved the model's mark to the year 2999, dropped every ring and sent
#: every later count to `late_counts`, for good (the mark only grows).
MAX_CLOCK_SKEW_S = 300.0
#: Rows an increment with rows may have, beyond twice the configured features: a rolling
#: update may add features; a record claiming millions of rows is refused.
EXTRA_ROWS = 100
#: Widest count matrix any layout has (monitor.histogram): a numeric feature's value slots are
#: its edges + 2, a categorical one's its top-K + OTHER + UNSEEN, then MISSING and INVALID.
#: A wider increment is refused before any ring is made for it: the first increment of a
#: reference decides its ring's width, and a 300-byte record claiming a width of 10^8 would
#: otherwise allocate tens of GiB (a crash on every replica at every restart).
MAX_WIDTH = max(MAX_EDGES + 2, MAX_TOP_K + 2) + 2
#: The cells (features x width, per bucket) all of a model's rings may hold together, per
#: configured feature: MAX_RINGS rings of twice the configured features at the widest layout.
#: A ring that would go beyond is refused like a seventh (`too_many_references`): small
#: commits naming six references of 2 x configured + EXTRA_ROWS rows at MAX_WIDTH made a
#: 2-feature model's rings 157 MiB (a 1-day window: 3.5 GiB) on every replica.
RING_CELLS_PER_FEATURE = 2 * MAX_RINGS * MAX_WIDTH
#: Warm-up samples a source partition's head keeps (`sample` records; one per warm-up model).
MAX_SAMPLES_PER_SOURCE = 64
#: The longest model name a `sample` record may carry (config.MODEL_NAME_PATTERN).
MAX_MODEL_NAME_CHARS = 64


@dataclass(slots=True)
class Head:
    """The fold's view of one source partition; `samples`: model -> the offset after its
    warm-up sample on the partition, for samples that end beyond `next` (`sample` records)."""

    epoch: int = 0
    member: str = ""
    next: int | None = None
    samples: dict[str, int] = field(default_factory=dict)

    def samples_beyond(self, offset: int | None) -> dict[str, int]:
        """The samples that end beyond `offset` (all of them for None)."""
        return {m: u for m, u in self.samples.items() if offset is None or u > offset}


@dataclass(frozen=True, slots=True)
class FoldOutcome:
    """What one record did. `kind`: claim, commit, chunk, sample, snapshot or rejected.

    For a claim or commit, `result` says accepted or why not; an accepted claim's `start` is
    where its claimant reads from (None: the reset position). A snapshot's `snapshot` holds
    its manifest and body when the fold was asked to decode snapshots. A `sample` outcome
    (a warm-up sample's end) changes nothing the caller acts on.
    """

    kind: str
    source: str = ""
    result: ClaimResult | CommitResult | None = None
    rejected: Rejected | None = None
    epoch: int = 0
    member: str = ""
    start: int | None = None
    from_offset: int = 0
    to_offset: int = 0
    snapshot: tuple[SnapshotRecord, SnapshotBody] | None = None
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class _Checked:
    """One model's validated increments, ready to add."""

    increment: ModelIncrement
    buckets: IntArray
    cells: IntArray
    counts: IntArray


def _kept_samples(samples: dict[str, int]) -> dict[str, int]:
    """A snapshot head's sample ends as a `sample` record would have left them: model names
    within MAX_MODEL_NAME_CHARS, at most MAX_SAMPLES_PER_SOURCE of them."""
    named = [(m, u) for m, u in samples.items() if 0 < len(m) <= MAX_MODEL_NAME_CHARS]
    return dict(named[:MAX_SAMPLES_PER_SOURCE])


def window_like(template: EventTimeWindow, shape: tuple[int, int]) -> EventTimeWindow:
    """An empty window of `shape` with `template`'s bucket width, length and lateness."""
    width = template.bucket_seconds
    return EventTimeWindow(
        shape,
        width,
        template.n_buckets * width,
        template.lateness_buckets * width,
        template.max_future_seconds,
    )


def holds_any(window: EventTimeWindow) -> bool:
    """Whether the window's ring holds at least one bucket."""
    return bool(np.any(window.ring.bucket_ids != EMPTY_BUCKET))


def _wrong_shape(shape: tuple[int, int], has_rows: bool, configured: int) -> str:
    """Why an increment's matrix shape cannot be folded ("" when it can): wider than any
    layout; without rows, another feature count than the configured one; with rows, more
    than twice the configured features + `EXTRA_ROWS`."""
    features, width = shape
    if width > MAX_WIDTH:
        return f"increments {width} wide, no layout is wider than {MAX_WIDTH}"
    if not has_rows and features != configured:
        return f"increments of {features} features without rows, {configured} configured"
    if features > 2 * configured + EXTRA_ROWS:
        return f"increments of {features} rows, {configured} features configured"
    return ""


def carried_window(
    ring: EventTimeWindow,
    rows: Sequence[Row],
    others: Sequence[tuple[EventTimeWindow, Sequence[Row]]],
) -> EventTimeWindow:
    """A copy of `ring` (laid out in `rows`) plus, for every feature of `rows` that an other
    ring has with the same bins digest, that ring's counts of it (`schema_change.carry_counts`):
    the window of a model whose features changed, its unchanged features counted in every
    layout they were counted in. The rings of one model share its watermark, and the events of
    one source partition range are counted in one layout only, so the sum counts none twice.
    Another ring's row that claims the same name and bins digest but other value slots, or
    more slots than its ring is wide (a bad record), is not carried: this never raises."""
    out = window_like(ring, ring.total.shape)
    out.merge(ring)
    width = int(ring.total.shape[1])
    slots = {(row.name, row.digest): row.slots for row in rows}
    for other, other_rows in others:
        other_width = int(other.total.shape[1])
        agreeing = [  # rows from the state topic: one that disagrees is carried by no one
            row
            if slots.get((row.name, row.digest)) == row.slots and row.slots <= other_width - 2
            else row._replace(digest="")
            for row in other_rows
        ]
        laid = carry_counts(other.ring.counts, agreeing, rows, width)
        out.add_buckets(other.watermark, other.ring.bucket_ids, laid)
    return out


class FleetFold:
    """Chain heads per source partition and, per model, one global ring per reference id
    (module docstring).

    A model is folded once it is declared (`declare`, with a template window: its feature
    count and window parameters) or attached (`attach`: the caller's window becomes one of its
    rings). Rings are made by the first increment binned with their reference id and dropped
    once they hold no bucket; `rings[model][reference_id]` are the rings, `marks[model]` the
    model's global watermark. Counters: `claims`, `commits` by result, `rejected` by reason,
    `late_counts` (counts of buckets no longer held), `skipped_models`, `refused_counts`
    (counts of increments beyond MAX_RINGS). With a `clock`, increments whose watermark is
    more than the template's `max_future_seconds` + MAX_CLOCK_SKEW_S ahead of it are refused.
    """

    def __init__(
        self,
        windows: dict[str, EventTimeWindow] | None = None,
        *,
        decode_snapshots: bool = False,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_rings: int = MAX_RINGS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.clock = clock
        self.rings: dict[str, dict[str, EventTimeWindow]] = {}
        self.ring_rows: dict[tuple[str, str], tuple[Row, ...]] = {}
        """The rows of each (model, ring name) made by increments that carried rows."""
        self.marks: dict[str, float] = {}
        self._templates: dict[str, EventTimeWindow] = {}
        self._lagging: dict[str, EventTimeWindow] = {}
        self.max_rings = max_rings
        self.heads: dict[str, Head] = {}
        self.claims: Counter[ClaimResult] = Counter()
        self.commits: Counter[CommitResult] = Counter()
        self.rejected: Counter[StateRejectReason] = Counter()
        self.late_counts = 0
        self.skipped_models = 0
        self.refused_counts = 0
        self.records = 0
        self.decode_snapshots = decode_snapshots
        self._pending = PendingChunks(max_pending_bytes)
        for model, window in (windows or {}).items():
            self.attach(model, window)

    @property
    def windows(self) -> dict[str, EventTimeWindow]:
        """Each model's ring of reference id "" (records without a reference id); an empty
        window shaped like the model's template when none is held (the same thing)."""
        return {
            model: self.rings.get(model, {}).get("") or window_like(template, template.total.shape)
            for model, template in self._templates.items()
        }

    def declare(
        self, model: str, template: EventTimeWindow, lagging: EventTimeWindow | None = None
    ) -> None:
        """Fold `model`'s increments from now on, into rings with `template`'s feature count,
        bucket width, length and lateness (its own counts are not used); reference ids of
        `LAGGING_PREFIX` into rings shaped like `lagging` (hourly buckets, lag + length + 1
        of them, no lateness), refused as `shape_mismatch` when the model has none."""
        self._templates[model] = template
        if lagging is not None:
            self._lagging[model] = lagging
        self.rings.setdefault(model, {})

    def template(self, model: str, reference_id: str) -> EventTimeWindow | None:
        """The template of `model`'s ring of `reference_id` (None: not folded)."""
        if reference_id.startswith(LAGGING_PREFIX):
            return self._lagging.get(model)
        return self._templates.get(model)

    def attach(self, model: str, window: EventTimeWindow, reference_id: str = "") -> None:
        """Declare `model` (`window` as its template) and fold the increments of
        `reference_id` into `window` itself."""
        self.declare(model, window)
        self.rings[model][reference_id] = window

    def ring(self, model: str, reference_id: str) -> EventTimeWindow | None:
        """The global ring of `model` binned with `reference_id` (None: no increment binned
        with it is held)."""
        return self.rings.get(model, {}).get(reference_id)

    def rows_of(self, model: str, reference_id: str) -> tuple[Row, ...]:
        """The rows of a ring (() for a ring made by increments without rows, or none)."""
        return self.ring_rows.get((model, reference_id), ())

    def head(self, source: str) -> Head:
        """The fold's view of a source partition (a fresh Head if never seen)."""
        return self.heads.get(source) or Head()

    # -- records -------------------------------------------------------------------

    def apply(self, value: bytes | None) -> FoldOutcome:
        """Fold one record value in log order; never raises."""
        self.records += 1
        record = decode_record(value)
        if isinstance(record, ClaimRecord):
            outcome = self._claim(record)
        elif isinstance(record, CommitRecord):
            outcome = self._commit(record)
        elif isinstance(record, ChunkRecord):
            outcome = self._chunk(record)
        elif isinstance(record, SampleRecord):
            outcome = self._sample(record)
        elif isinstance(record, SnapshotRecord):
            outcome = self._snapshot(record)
        else:
            outcome = FoldOutcome("rejected", rejected=record)
        if outcome.rejected is not None:
            self.rejected[outcome.rejected.reason] += 1
        return outcome

    def _claim(self, record: ClaimRecord) -> FoldOutcome:
        if record.epoch < 1 or not record.source:
            bad = Rejected(StateRejectReason.INVALID_RECORD, f"claim epoch {record.epoch}")
            return FoldOutcome("rejected", record.source, rejected=bad)
        head = self.heads.setdefault(record.source, Head())
        if record.epoch <= head.epoch:
            self.claims[ClaimResult.STALE_EPOCH] += 1
            return FoldOutcome(
                "claim", record.source, ClaimResult.STALE_EPOCH, None, record.epoch, record.member
            )
        head.epoch, head.member = record.epoch, record.member
        self.claims[ClaimResult.ACCEPTED] += 1
        return FoldOutcome(
            "claim",
            record.source,
            ClaimResult.ACCEPTED,
            None,
            record.epoch,
            record.member,
            start=head.next,
        )

    def _commit(self, record: CommitRecord) -> FoldOutcome:
        def outcome(result: CommitResult | None, rejected: Rejected | None = None) -> FoldOutcome:
            return FoldOutcome(
                "commit" if rejected is None else "rejected",
                record.source,
                result,
                rejected,
                record.epoch,
                record.member,
                from_offset=record.from_offset,
                to_offset=record.to_offset,
            )

        blob = self._assemble(record)
        if not 0 <= record.from_offset <= record.to_offset:
            bad = f"offsets [{record.from_offset}, {record.to_offset})"
            return outcome(None, Rejected(StateRejectReason.INVALID_RECORD, bad))
        head = self.heads.get(record.source) or Head()
        if record.epoch != head.epoch or head.epoch < 1:  # 0: nobody has claimed the source
            self.commits[CommitResult.STALE_EPOCH] += 1
            return outcome(CommitResult.STALE_EPOCH)
        if head.next is not None and record.from_offset != head.next:
            self.commits[CommitResult.GAP] += 1
            return outcome(CommitResult.GAP)
        if isinstance(blob, Rejected):
            return outcome(None, blob)
        raw = inflate(blob, record)
        increments = decode_increments(raw) if isinstance(raw, bytes) else raw
        if isinstance(increments, Rejected):
            return outcome(None, increments)
        checked = self._check(increments.models)
        if isinstance(checked, Rejected):
            return outcome(None, checked)
        for item in checked:
            self._add(item)
        samples = head.samples_beyond(record.to_offset)  # a head at or past a sample's end
        self.heads[record.source] = Head(head.epoch, head.member, record.to_offset, samples)
        self.commits[CommitResult.ACCEPTED] += 1
        return outcome(CommitResult.ACCEPTED)

    def _sample(self, record: SampleRecord) -> FoldOutcome:
        """A warm-up sample's end, kept on the source's head while it lies beyond the chain
        head. Only the current owner's is kept (an older epoch's is stale: ignored), at most
        MAX_SAMPLES_PER_SOURCE models per source (later ones are dropped: a hostile writer
        cannot grow a head without bound)."""
        if not record.source or not record.model or len(record.model) > MAX_MODEL_NAME_CHARS:
            bad = Rejected(StateRejectReason.INVALID_RECORD, "sample without a source or model")
            return FoldOutcome("rejected", record.source, rejected=bad)
        head = self.heads.get(record.source)
        if head is None or record.epoch != head.epoch or head.epoch < 1:
            return FoldOutcome("sample", record.source, epoch=record.epoch, member=record.member)
        beyond = head.next is None or record.until > head.next
        room = record.model in head.samples or len(head.samples) < MAX_SAMPLES_PER_SOURCE
        if beyond and room:
            head.samples[record.model] = max(head.samples.get(record.model, 0), record.until)
        return FoldOutcome("sample", record.source, epoch=record.epoch, member=record.member)

    def _chunk(self, record: ChunkRecord) -> FoldOutcome:
        if not 0 <= record.index < record.total:
            bad = f"chunk {record.index} of {record.total} for {record.blob_id}"
            return FoldOutcome("rejected", rejected=Rejected(StateRejectReason.INVALID_RECORD, bad))
        self._pending.add(record.blob_id, record.index, record.total, record.data)
        return FoldOutcome("chunk")

    def _assemble(self, manifest: Manifest) -> bytes | Rejected:
        """The blob a manifest closes: inline, or its chunks (taken out of the pending set)."""
        if manifest.chunks == 0:
            return manifest.inline
        pending = self._pending.pop(manifest.blob_id)
        if pending is None or pending.total != manifest.chunks:
            have = 0 if pending is None else len(pending.pieces)
            return Rejected(
                StateRejectReason.MISSING_CHUNK,
                f"blob {manifest.blob_id}: {have} of {manifest.chunks} chunks present",
            )
        if len(pending.pieces) != manifest.chunks:
            return Rejected(
                StateRejectReason.MISSING_CHUNK,
                f"blob {manifest.blob_id}: {len(pending.pieces)} of {manifest.chunks} chunks",
            )
        return b"".join(pending.pieces[i] for i in range(manifest.chunks))

    def _snapshot(self, record: SnapshotRecord) -> FoldOutcome:
        blob = self._assemble(record)
        if not self.decode_snapshots and not isinstance(blob, Rejected):
            return FoldOutcome("snapshot", member=record.member, at=record.at)
        raw = blob if isinstance(blob, Rejected) else inflate(blob, record)
        body = decode_snapshot(raw) if isinstance(raw, bytes) else raw
        if isinstance(body, Rejected):
            return FoldOutcome("rejected", rejected=body)
        return FoldOutcome("snapshot", member=record.member, snapshot=(record, body), at=record.at)

    # -- increments ----------------------------------------------------------------

    def _check(self, increments: list[ModelIncrement]) -> list[_Checked] | Rejected:
        """Validate every model's increments before any is added (a commit is atomic)."""
        checked: list[_Checked] = []
        shapes: dict[tuple[str, str], tuple[tuple[int, int], tuple[Row, ...]]] = {}
        for increment in increments:
            arrays = sparse_arrays(increment)
            if isinstance(arrays, Rejected):
                return arrays
            if increment.model not in self._templates:
                self.skipped_models += 1
                continue
            template = self.template(increment.model, increment.reference_id)
            if template is None:
                return Rejected(
                    StateRejectReason.SHAPE_MISMATCH,
                    f"model {increment.model!r}: a lagging ring "
                    f"{increment.reference_id!r} but no rolling reference",
                )
            shape = (increment.features, increment.width)
            rows = tuple(increment.rows)
            configured = template.total.shape[0]
            if rows and len(rows) != increment.features:
                return Rejected(
                    StateRejectReason.INVALID_RECORD,
                    f"model {increment.model!r}: {len(rows)} rows for {increment.features}",
                )
            if rows and not all(1 <= row.slots <= increment.width - 2 for row in rows):
                return Rejected(
                    StateRejectReason.INVALID_RECORD,
                    f"model {increment.model!r}: a row's value slots do not fit the width",
                )
            wrong = _wrong_shape(shape, bool(rows), configured)
            if wrong:
                return Rejected(
                    StateRejectReason.SHAPE_MISMATCH, f"model {increment.model!r}: {wrong}"
                )
            key = (increment.model, increment.reference_id)
            ring = self.ring(*key)
            expected = (
                (ring.total.shape, self.rows_of(*key)) if ring is not None else shapes.get(key)
            )
            if expected not in (None, (shape, rows)):
                return Rejected(
                    StateRejectReason.SHAPE_MISMATCH,
                    f"model {increment.model!r} reference {increment.reference_id!r}: "
                    f"increments of shape {shape}, ring {expected[0] if expected else '-'}"
                    + (" (other rows)" if expected and expected[0] == shape else ""),
                )
            ahead = self._ahead(increment.watermark, template)
            if ahead:
                return Rejected(
                    StateRejectReason.INVALID_RECORD, f"model {increment.model!r}: {ahead}"
                )
            buckets, cells, counts = arrays
            mark = int(template.ring.bucket_of(np.asarray([increment.watermark]))[0])
            if buckets.size and int(buckets.max()) > mark:
                return Rejected(
                    StateRejectReason.INVALID_RECORD,
                    f"model {increment.model!r}: a bucket after its watermark's",
                )
            shapes[key] = (shape, rows)
            checked.append(_Checked(increment, buckets, cells, counts))
        return checked

    def _ahead(self, watermark: float, template: EventTimeWindow) -> str:
        """Why `watermark` is too far ahead of `clock` ("" when it is not, or no clock)."""
        if self.clock is None or not math.isfinite(template.max_future_seconds):
            return ""
        limit = self.clock() + template.max_future_seconds + MAX_CLOCK_SKEW_S
        if watermark <= limit:
            return ""
        return f"watermark {watermark:.0f} is {watermark - limit:.0f} s beyond this clock's limit"

    def _advance(self, model: str, watermark: float) -> None:
        """Move the model's watermark (and every ring of it) to max(mark, watermark); drop
        the rings that hold no bucket any more (they are empty: dropping one is the same as
        keeping it, since a later increment makes an equal empty ring)."""
        old = self.marks.get(model)
        mark = watermark if old is None else max(old, watermark)
        if mark == old:
            return
        self.marks[model] = mark
        rings = self.rings.setdefault(model, {})
        for reference_id, window in list(rings.items()):
            heads = window.ring.bucket_of(np.asarray([mark if old is None else old, mark]))
            moved = old is None or int(heads[0]) != int(heads[1])
            window.advance(mark)
            if moved and not holds_any(window):  # buckets only leave when its head moves
                del rings[reference_id]
                self.ring_rows.pop((model, reference_id), None)

    def _add(self, item: _Checked) -> None:
        """Add one model's increments to the ring of their reference, bucket by bucket (one
        bincount per bucket over its contiguous run of cells; float64 weights are exact for
        any count below 2**53). Buckets behind the model's window are late; a ring beyond
        `max_rings`, or one that would take the model's rings beyond RING_CELLS_PER_FEATURE
        cells per configured feature, is refused (TOO_MANY_REFERENCES)."""
        increment = item.increment
        model, reference_id = increment.model, increment.reference_id
        self._advance(model, increment.watermark)
        template = self.template(model, reference_id)
        assert template is not None  # _check refused increments without one
        head = int(template.ring.bucket_of(np.asarray([self.marks[model]]))[0])
        oldest = head - template.n_buckets + 1 - template.lateness_buckets
        buckets, cells, counts = item.buckets, item.cells, item.counts
        late = buckets < oldest
        if bool(late.any()):
            self.late_counts += int(counts[late].sum())
            buckets, cells, counts = buckets[~late], cells[~late], counts[~late]
        if not buckets.size:
            return
        rings = self.rings[model]
        window = rings.get(reference_id)
        if window is None:
            held = sum(ring.total.size for ring in rings.values())
            budget = RING_CELLS_PER_FEATURE * self._templates[model].total.shape[0]
            if len(rings) >= self.max_rings or held + increment.features * increment.width > budget:
                self.rejected[StateRejectReason.TOO_MANY_REFERENCES] += 1
                self.refused_counts += int(counts.sum())
                return
            window = rings[reference_id] = window_like(
                template, (increment.features, increment.width)
            )
            if increment.rows:
                self.ring_rows[(model, reference_id)] = tuple(increment.rows)
        window.advance(self.marks[model])
        size = window.total.size
        if buckets.size > 1 and bool(np.any(buckets[1:] < buckets[:-1])):
            order = np.argsort(buckets, kind="stable")
            buckets, cells, counts = buckets[order], cells[order], counts[order]
        starts = [0, *(np.flatnonzero(np.diff(buckets)) + 1).tolist()]
        ends = [*starts[1:], int(buckets.size)]
        for lo, hi in zip(starts, ends, strict=True):
            dense = np.bincount(cells[lo:hi], weights=counts[lo:hi], minlength=size)
            window.add_counts(int(buckets[lo]), dense.astype(np.int64).reshape(window.total.shape))

    # -- snapshots -----------------------------------------------------------------

    def snapshot_body(self) -> SnapshotBody:
        """The whole folded state: every chain head, every ring's held buckets, the marks."""
        heads = [
            ChainHead(
                source, head.epoch, head.member, head.next, dict(sorted(head.samples.items()))
            )
            for source, head in sorted(self.heads.items())
        ]
        models: list[ModelIncrement] = []
        for name, rings in sorted(self.rings.items()):
            for reference_id, window in sorted(rings.items()):
                if window.watermark is None:
                    continue
                ring = window.ring
                held = {
                    int(bucket): ring.counts[slot]
                    for slot, bucket in enumerate(ring.bucket_ids.tolist())
                    if bucket != EMPTY_BUCKET
                }
                models.append(
                    model_increment(
                        name,
                        window.total.shape,
                        window.watermark,
                        held,
                        reference_id,
                        self.rows_of(name, reference_id),
                    )
                )
        pending = [
            ChunkRecord(RECORD_VERSION, blob_id, index, item.total, data)
            for blob_id, item in self._pending.items()
            for index, data in sorted(item.pieces.items())
        ]
        return SnapshotBody(heads, models, pending, dict(sorted(self.marks.items())))

    def restore(self, body: SnapshotBody) -> Rejected | None:
        """Replace the whole state by a snapshot's (nothing changes when it does not fit)."""
        rings, marks, rows = self.rings, self.marks, self.ring_rows
        self.rings = {model: {} for model in self._templates}
        self.marks = {}
        self.ring_rows = {}
        checked = self._check(body.models)
        if isinstance(checked, Rejected):
            self.rings, self.marks, self.ring_rows = rings, marks, rows
            self.rejected[checked.reason] += 1
            return checked
        for model, mark in body.marks.items():
            if model in self._templates and np.isfinite(mark):
                self.marks[model] = float(mark)
        for item in checked:
            self._add(item)
        self.heads = {
            h.source: Head(h.epoch, h.member, h.next, _kept_samples(h.samples)) for h in body.heads
        }
        self._pending.clear()
        for chunk in body.pending:
            self._chunk(chunk)
        return None
