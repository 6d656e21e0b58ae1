"""The reference registry's records and their fold into one table (pure; no Kafka here).

The registry is a compacted Kafka topic with one partition (one global order) that every
daemon folds from the beginning, like a global table. Three kinds of record, each a msgpack
map with a format version `v` (see docs/registry.md):

- `chunk`   key `profile:<reference_id>:<index>`: slice `index` of `total` of the
  zlib-compressed profile JSON (the `driftmon reference fit` output).
- `profile` key `profile:<reference_id>`: the manifest, written after its chunks. It names
  the model, the model version the profile was fitted for, the chunk count, the compressed
  size and the SHA-256 of the compressed bytes. A profile is registered when its manifest
  arrives and every chunk is there, the digest matches, the JSON parses as a valid profile
  and its content hash equals `reference_id`.
- `activation` key `activation:<model>`: the model's active `reference_id`, when, by whom,
  why and the cause (operator, rollback, model_version, warmup); `previous` is the rollback
  stack (the activations before this one, newest first, at most 20) and `log` the last 20
  activation events, so a compacted topic (one record per key) keeps the history.
- `prewarm` key `prewarm:<model>`: the registered profiles (at most `MAX_SHADOWS`) a
  daemon should count a shadow window for, so that activating one of them is gapless
  (`driftmon reference push --prewarm`). The newest record per model replaces the last.

Any other input (garbage bytes, an unknown version, a digest mismatch, a missing chunk, an
activation of an unknown id) is refused with a reason from `RegistryRejectReason` and
leaves the table unchanged: `RegistryTable.apply` never raises.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from monitor.errors import ReferenceDataError, RegistryRejectReason
from monitor.pending_chunks import PendingChunks
from monitor.reference import (
    MAX_PROFILE_BYTES,
    ReferenceProfile,
    profile_from_json,
    profile_to_json,
)

RECORD_VERSION = 1
#: Entries kept in an activation's rollback stack and log.
HISTORY_LENGTH = 20
#: The longest `reason` and `by` of an activation a record may carry (what `driftmon reference
#: activate --reason` accepts; an activation with a 1.5 MiB reason was logged whole before).
MAX_REASON_CHARS = 1000
MAX_BY_CHARS = 256
Reason = Annotated[str, msgspec.Meta(max_length=MAX_REASON_CHARS)]
By = Annotated[str, msgspec.Meta(max_length=MAX_BY_CHARS)]
CauseText = Annotated[str, msgspec.Meta(max_length=64)]
#: Default bytes of compressed profile per chunk record (well under Kafka's 1 MB default).
DEFAULT_CHUNK_BYTES = 512 * 1024
#: Bytes of chunks held while waiting for their manifest; beyond it the oldest are dropped
#: (two compressed profiles of the largest size in flight at once).
MAX_PENDING_BYTES = 2 * MAX_PROFILE_BYTES
#: Shadow windows a model keeps at most (prewarmed or followed profiles).
MAX_SHADOWS = 2

Cause = Literal["operator", "rollback", "model_version", "warmup"]
CAUSES: tuple[str, ...] = ("operator", "rollback", "model_version", "warmup")


class _Envelope(msgspec.Struct, forbid_unknown_fields=False):
    v: int
    kind: str


class ChunkRecord(msgspec.Struct, tag="chunk", tag_field="kind", forbid_unknown_fields=True):
    """One slice of a compressed profile."""

    v: int
    reference_id: str
    index: int
    total: int
    data: bytes


class ProfileManifest(msgspec.Struct, tag="profile", tag_field="kind", forbid_unknown_fields=True):
    """The closing record of a profile: what to assemble and how to check it."""

    v: int
    reference_id: str
    model: str
    model_version: str
    created_at: str
    features: int
    events: int
    chunks: int
    size: int
    sha256: str
    pushed_at: float
    pushed_by: str


class ActivationEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One activation event as kept in a history list."""

    reference_id: str
    at: float
    by: By
    reason: Reason
    cause: CauseText


class ActivationRecord(
    msgspec.Struct, tag="activation", tag_field="kind", forbid_unknown_fields=True
):
    """Which reference a model compares against, from when, and the history before it."""

    v: int
    model: str
    reference_id: str
    at: float
    by: By
    reason: Reason
    cause: CauseText
    previous: Annotated[list[ActivationEntry], msgspec.Meta(max_length=5 * HISTORY_LENGTH)] = []
    log: Annotated[list[ActivationEntry], msgspec.Meta(max_length=5 * HISTORY_LENGTH)] = []

    @property
    def entry(self) -> ActivationEntry:
        """This activation as a history entry."""
        return ActivationEntry(self.reference_id, self.at, self.by, self.reason, self.cause)


class PrewarmRecord(msgspec.Struct, tag="prewarm", tag_field="kind", forbid_unknown_fields=True):
    """The profiles of a model that daemons should pre-warm a shadow window for."""

    v: int
    model: str
    reference_ids: Annotated[list[str], msgspec.Meta(max_length=8 * MAX_SHADOWS)]
    at: float
    by: By


Record = ChunkRecord | ProfileManifest | ActivationRecord | PrewarmRecord

_ENVELOPE = msgspec.msgpack.Decoder(_Envelope)
_RECORD = msgspec.msgpack.Decoder(Record)
_ENCODER = msgspec.msgpack.Encoder()

#: The longest `Rejected.detail`.
MAX_DETAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the table refused, and why (a closed reason; `detail` is for the log)."""

    reason: RegistryRejectReason
    detail: str

    def __post_init__(self) -> None:
        """Cut `detail` to MAX_DETAIL_CHARS: it may quote a hostile record (msgspec's error
        for a 1 MiB `kind` quotes all of it)."""
        if len(self.detail) > MAX_DETAIL_CHARS:
            object.__setattr__(self, "detail", self.detail[: MAX_DETAIL_CHARS - 3] + "...")


def decode_record(value: bytes | None) -> Record | Rejected:
    """Parse one registry record value; never raises (any defect is a `Rejected`)."""
    if value is None:
        return Rejected(RegistryRejectReason.TOMBSTONE, "tombstone")
    try:
        envelope = _ENVELOPE.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        return Rejected(RegistryRejectReason.UNDECODABLE, f"not a registry record: {exc}")
    if envelope.v != RECORD_VERSION:
        return Rejected(
            RegistryRejectReason.UNKNOWN_VERSION, f"record version {envelope.v} is not supported"
        )
    try:
        record = _RECORD.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        return Rejected(RegistryRejectReason.UNDECODABLE, f"malformed {envelope.kind!r}: {exc}")
    return record


def profile_key(reference_id: str) -> bytes:
    """The record key of a profile's manifest."""
    return f"profile:{reference_id}".encode()


def activation_key(model: str) -> bytes:
    """The record key of a model's activation."""
    return f"activation:{model}".encode()


def encode_profile(
    profile: ReferenceProfile,
    *,
    pushed_at: float,
    pushed_by: str,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> list[tuple[bytes, bytes]]:
    """The (key, value) records that register `profile`: its chunks, then its manifest.

    Raises ReferenceDataError for a profile whose JSON is larger than `MAX_PROFILE_BYTES`:
    every reader of the registry would refuse it."""
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    text = profile_to_json(profile).encode()
    if len(text) > MAX_PROFILE_BYTES:
        raise ReferenceDataError(
            f"profile {profile.reference_id} is {len(text)} bytes of JSON, more than the "
            f"{MAX_PROFILE_BYTES} a registry profile may have"
        )
    blob = zlib.compress(text, 6)
    del text
    pieces = [blob[i : i + chunk_bytes] for i in range(0, len(blob), chunk_bytes)] or [b""]
    records = [
        (
            f"profile:{profile.reference_id}:{index}".encode(),
            _ENCODER.encode(
                ChunkRecord(RECORD_VERSION, profile.reference_id, index, len(pieces), piece)
            ),
        )
        for index, piece in enumerate(pieces)
    ]
    manifest = ProfileManifest(
        v=RECORD_VERSION,
        reference_id=profile.reference_id,
        model=profile.model,
        model_version=profile.model_version,
        created_at=profile.created_at,
        features=len(profile.features),
        events=profile.events,
        chunks=len(pieces),
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        pushed_at=pushed_at,
        pushed_by=pushed_by,
    )
    records.append((profile_key(profile.reference_id), _ENCODER.encode(manifest)))
    return records


def encode_activation(record: ActivationRecord) -> tuple[bytes, bytes]:
    """The (key, value) of an activation record."""
    return activation_key(record.model), _ENCODER.encode(record)


def prewarm_key(model: str) -> bytes:
    """The record key of a model's pre-warm list."""
    return f"prewarm:{model}".encode()


def encode_prewarm(record: PrewarmRecord) -> tuple[bytes, bytes]:
    """The (key, value) of a pre-warm record."""
    return prewarm_key(record.model), _ENCODER.encode(record)


def prewarm(
    table: RegistryTable, model: str, reference_id: str, *, at: float, by: str
) -> PrewarmRecord:
    """The pre-warm record that adds `reference_id` to `model`'s list (newest first, at most
    `MAX_SHADOWS`; ids no longer registered or already active are dropped)."""
    current = table.prewarm.get(model)
    active = table.activations.get(model)
    keep = [
        rid
        for rid in (current.reference_ids if current is not None else [])
        if rid != reference_id
        and rid in table.profiles
        and (active is None or rid != active.reference_id)
    ]
    return PrewarmRecord(RECORD_VERSION, model, [reference_id, *keep][:MAX_SHADOWS], at, by)


@dataclass(frozen=True, slots=True)
class RegisteredProfile:
    """A profile the registry holds, with what its manifest said about the push."""

    profile: ReferenceProfile
    manifest: ProfileManifest


class RegistryTable:
    """The registry folded into a table: profiles by id, the active activation per model.

    `apply(value)` folds one record in log order and returns None (accepted) or the
    `Rejected` that says why the table did not change. Refusals are counted in `rejected`.
    """

    def __init__(
        self,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_profile_bytes: int = MAX_PROFILE_BYTES,
    ) -> None:
        self.profiles: dict[str, RegisteredProfile] = {}
        self.activations: dict[str, ActivationRecord] = {}
        self.prewarm: dict[str, PrewarmRecord] = {}
        self.rejected: Counter[RegistryRejectReason] = Counter()
        self.records = 0
        self._pending = PendingChunks(max_pending_bytes)
        self._max_profile_bytes = max_profile_bytes

    def apply(self, value: bytes | None) -> Rejected | None:
        """Fold one record value (see the class docstring); never raises."""
        self.records += 1
        record = decode_record(value)
        if isinstance(record, ChunkRecord):
            outcome = self._chunk(record)
        elif isinstance(record, ProfileManifest):
            outcome = self._manifest(record)
        elif isinstance(record, ActivationRecord):
            outcome = self._activation(record)
        elif isinstance(record, PrewarmRecord):
            outcome = self._prewarm(record)
        else:
            outcome = record
        if outcome is not None:
            self.rejected[outcome.reason] += 1
        return outcome

    def _chunk(self, record: ChunkRecord) -> Rejected | None:
        if not 0 <= record.index < record.total:
            return Rejected(
                RegistryRejectReason.INVALID_RECORD,
                f"chunk {record.index} of {record.total} for {record.reference_id}",
            )
        self._pending.add(record.reference_id, record.index, record.total, record.data)
        return None

    def _manifest(self, manifest: ProfileManifest) -> Rejected | None:
        pending = self._pending.pop(manifest.reference_id)
        if (
            pending is None
            or pending.total != manifest.chunks
            or len(pending.pieces) != manifest.chunks
        ):
            have = 0 if pending is None else len(pending.pieces)
            return Rejected(
                RegistryRejectReason.MISSING_CHUNK,
                f"profile {manifest.reference_id}: {have} of {manifest.chunks} chunks present",
            )
        blob = b"".join(pending.pieces[i] for i in range(manifest.chunks))
        if len(blob) != manifest.size or hashlib.sha256(blob).hexdigest() != manifest.sha256:
            return Rejected(
                RegistryRejectReason.HASH_MISMATCH,
                f"profile {manifest.reference_id}: chunks do not match the manifest digest",
            )
        try:
            inflater = zlib.decompressobj()
            text = inflater.decompress(blob, self._max_profile_bytes)
            if inflater.unconsumed_tail or not inflater.eof:
                raise ReferenceDataError("compressed profile is truncated or too large")
            profile = profile_from_json(text)
        except (zlib.error, ReferenceDataError) as exc:
            return Rejected(
                RegistryRejectReason.INVALID_PROFILE, f"profile {manifest.reference_id}: {exc}"
            )
        if profile.reference_id != manifest.reference_id or profile.model != manifest.model:
            return Rejected(
                RegistryRejectReason.HASH_MISMATCH,
                f"manifest says {manifest.reference_id} for model {manifest.model!r}, the "
                f"profile is {profile.reference_id} for {profile.model!r}",
            )
        self.profiles[profile.reference_id] = RegisteredProfile(profile, manifest)
        return None

    def _refused_for(self, what: str, reference_id: str, model: str) -> Rejected | None:
        """Why `reference_id` cannot serve `model` in a `what` record (not registered, or
        registered for another model), or None when it can."""
        registered = self.profiles.get(reference_id)
        if registered is None:
            return Rejected(
                RegistryRejectReason.UNKNOWN_REFERENCE,
                f"{what} of unknown reference {reference_id} for {model!r}",
            )
        if registered.profile.model not in ("", model):
            return Rejected(
                RegistryRejectReason.MODEL_MISMATCH,
                f"reference {reference_id} is for model {registered.profile.model!r}, "
                f"not {model!r}",
            )
        return None

    def _activation(self, record: ActivationRecord) -> Rejected | None:
        refused = self._refused_for("activation", record.reference_id, record.model)
        if refused is not None:
            return refused
        if record.cause not in CAUSES:
            return Rejected(
                RegistryRejectReason.INVALID_RECORD, f"unknown activation cause {record.cause!r}"
            )
        self.activations[record.model] = record
        return None

    def _prewarm(self, record: PrewarmRecord) -> Rejected | None:
        if len(record.reference_ids) > MAX_SHADOWS:
            return Rejected(
                RegistryRejectReason.INVALID_RECORD,
                f"pre-warm of {len(record.reference_ids)} profiles (at most {MAX_SHADOWS})",
            )
        for reference_id in record.reference_ids:
            refused = self._refused_for("pre-warm", reference_id, record.model)
            if refused is not None:
                return refused
        self.prewarm[record.model] = record
        return None

    # -- queries -------------------------------------------------------------------

    def active(self, model: str) -> RegisteredProfile | None:
        """The profile active for `model`, if any."""
        activation = self.activations.get(model)
        return None if activation is None else self.profiles.get(activation.reference_id)

    def for_model(self, model: str | None = None) -> Iterator[RegisteredProfile]:
        """Registered profiles (of `model` when given), oldest push first."""
        ordered = sorted(self.profiles.values(), key=lambda r: r.manifest.pushed_at)
        for registered in ordered:
            if model is None or registered.profile.model == model:
                yield registered

    def find(self, prefix: str) -> RegisteredProfile:
        """The one profile whose id is `prefix` or starts with it; KeyError names the problem."""
        matches = [r for rid, r in self.profiles.items() if rid == prefix]
        if not matches:
            matches = [
                r
                for rid, r in self.profiles.items()
                if rid.startswith(prefix) or rid.removeprefix("sha256:").startswith(prefix)
            ]
        if len(matches) != 1:
            problem = "no registered reference" if not matches else "more than one reference"
            raise KeyError(f"{problem} matches {prefix!r}")
        return matches[0]


def activate(
    table: RegistryTable,
    model: str,
    reference_id: str,
    *,
    at: float,
    by: str,
    reason: str,
    cause: Cause = "operator",
) -> ActivationRecord:
    """The activation record that makes `reference_id` active for `model` (not yet applied).

    The current activation, if any, goes on top of the rollback stack and the log.
    """
    current = table.activations.get(model)
    previous: Sequence[ActivationEntry] = ()
    log: Sequence[ActivationEntry] = ()
    if current is not None:
        previous = [current.entry, *current.previous][:HISTORY_LENGTH]
        log = [current.entry, *current.log][:HISTORY_LENGTH]
    return ActivationRecord(
        v=RECORD_VERSION,
        model=model,
        reference_id=reference_id,
        at=at,
        by=by,
        reason=reason,
        cause=cause,
        previous=list(previous),
        log=list(log),
    )


def rollback(
    table: RegistryTable, model: str, *, at: float, by: str, reason: str
) -> ActivationRecord:
    """The activation that returns `model` one step back; KeyError when there is no step.

    Back one step each time: the rolled-back activation leaves the rollback stack (it stays
    in the log), so a second rollback goes one further back, not forth again.
    """
    current = table.activations.get(model)
    if current is None:
        raise KeyError(f"model {model!r} has no active reference in the registry")
    if not current.previous:
        raise KeyError(f"model {model!r} has no earlier activation to roll back to")
    target, *rest = current.previous
    return ActivationRecord(
        v=RECORD_VERSION,
        model=model,
        reference_id=target.reference_id,
        at=at,
        by=by,
        reason=reason,
        cause="rollback",
        previous=list(rest),
        log=[current.entry, *current.log][:HISTORY_LENGTH],
    )


def warmup_records(
    table: RegistryTable,
    profile: ReferenceProfile,
    *,
    at: float,
    by: str,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> list[tuple[bytes, bytes]]:
    """The records that publish a warm-up `profile` and activate it with cause `warmup`.

    First writer wins as far as `table` knows: empty when the model already has an active
    reference in it (the caller folds the registry to its end first). Two writers racing
    past that check both publish; the later activation then stands, as for operators.
    """
    if profile.model in table.activations:
        return []
    records = []
    if profile.reference_id not in table.profiles:
        records = encode_profile(profile, pushed_at=at, pushed_by=by, chunk_bytes=chunk_bytes)
    activation = ActivationRecord(
        v=RECORD_VERSION,
        model=profile.model,
        reference_id=profile.reference_id,
        at=at,
        by=by,
        reason="warm-up",
        cause="warmup",
    )
    return [*records, encode_activation(activation)]


def extension_records(
    table: RegistryTable,
    profile: ReferenceProfile,
    parent: str,
    *,
    at: float,
    by: str,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> list[tuple[bytes, bytes]]:
    """The records that publish a fleet's `profile` extending the model's active reference
    `parent` with features warmed up since, and activate it with cause `warmup` (the
    activation before it on the rollback stack, as an operator's would be).

    Empty unless `parent` is still the model's active reference in `table` (the caller folds
    the registry to its end first): an operator's activation in between wins, and so does
    another replica's extension.
    """
    active = table.activations.get(profile.model)
    if active is None or active.reference_id != parent:
        return []
    records = []
    if profile.reference_id not in table.profiles:
        records = encode_profile(profile, pushed_at=at, pushed_by=by, chunk_bytes=chunk_bytes)
    refitted = ", ".join(_refitted(table, parent, profile))
    activation = activate(
        table,
        profile.model,
        profile.reference_id,
        at=at,
        by=by,
        reason=f"warm-up of new or changed features: {refitted}"[:200],
        cause="warmup",
    )
    return [*records, encode_activation(activation)]


def _refitted(table: RegistryTable, parent: str, profile: ReferenceProfile) -> list[str]:
    """The features of `profile` that `parent` lacks or has of another kind."""
    registered = table.profiles.get(parent)
    kinds = {} if registered is None else {f.name: f.kind for f in registered.profile.features}
    return [f.name for f in profile.features if kinds.get(f.name) is not f.kind]
