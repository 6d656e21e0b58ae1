"""Exception hierarchy and the closed reason enums used as metric labels (stdlib only)."""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    """Why a whole record was rejected. Closed set: every value is a `reason` label value.

    NO_REFERENCE: the record's model has a file reference that could not be loaded (yet), so
    its events cannot be binned; they are counted here instead of silently dropped.
    OUTSIDE_WINDOW: within `window.allowed_lateness` but older than the current window's
    start, so never part of a current window (a rolling reference's lagging hours still
    count it).
    """

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    BAD_TIMESTAMP = "bad_timestamp"
    TOO_LATE = "too_late"
    TOO_EARLY = "too_early"
    TOO_LARGE = "too_large"
    UNKNOWN_MODEL = "unknown_model"
    NO_REFERENCE = "no_reference"
    OUTSIDE_WINDOW = "outside_window"


class RegistryRejectReason(StrEnum):
    """Why a reference-registry record was refused (closed set; the `reason` label).

    TOMBSTONE: a record with no value (compaction deletes); UNDECODABLE: not a registry
    record; UNKNOWN_VERSION: a record format this daemon does not know; INVALID_RECORD: a
    registry record with impossible fields; MISSING_CHUNK: a manifest whose chunks are not all
    there; HASH_MISMATCH: chunks or profile that do not match the manifest; INVALID_PROFILE:
    the assembled profile is not a valid reference; UNKNOWN_REFERENCE: an activation of an id
    the registry does not hold; MODEL_MISMATCH: an activation of another model's profile.
    """

    TOMBSTONE = "tombstone"
    UNDECODABLE = "undecodable"
    UNKNOWN_VERSION = "unknown_version"
    INVALID_RECORD = "invalid_record"
    MISSING_CHUNK = "missing_chunk"
    HASH_MISMATCH = "hash_mismatch"
    INVALID_PROFILE = "invalid_profile"
    UNKNOWN_REFERENCE = "unknown_reference"
    MODEL_MISMATCH = "model_mismatch"


class StateRejectReason(StrEnum):
    """Why a fleet state-topic record was refused (closed set; the `reason` label).

    UNDECODABLE: not a state record (garbage bytes, no value, a malformed record);
    UNKNOWN_VERSION: a record format this daemon does not know; INVALID_RECORD: impossible
    fields (a chunk index outside its total, sparse arrays that do not fit, a blob that does not
    inflate); MISSING_CHUNK: a manifest whose chunks are not all there; HASH_MISMATCH: chunks
    that do not match the manifest (a truncated chunk); SHAPE_MISMATCH: increments whose count
    matrix shape differs from the model's (another configuration or reference);
    TOO_MANY_REFERENCES: one model's increments binned with a reference beyond the bound of
    rings a model holds at once (`monitor.fleet.MAX_RINGS`; the rest of the commit counts).
    """

    UNDECODABLE = "undecodable"
    UNKNOWN_VERSION = "unknown_version"
    INVALID_RECORD = "invalid_record"
    MISSING_CHUNK = "missing_chunk"
    HASH_MISMATCH = "hash_mismatch"
    SHAPE_MISMATCH = "shape_mismatch"
    TOO_MANY_REFERENCES = "too_many_references"


class UnreadableReason(StrEnum):
    """Why a Kafka record batch of a source topic was skipped unread (closed set; the `reason`
    label of `driftmon_kafka_unreadable_batches_total`; `monitor.kafka_records`).

    CRC_MISMATCH: the batch's CRC does not match its bytes; TOO_LARGE: it would inflate beyond
    the bound of one poll (`kafka_records.MAX_INFLATED_BATCH_BYTES`) on its own; CORRUPT: its
    compression or records cannot be read (a malformed record, a broken stream, a codec no one
    knows); UNFRAMED: a fetch that cannot be cut into batches at all (read again from the last
    batch read, so counted at each try).
    """

    CRC_MISMATCH = "crc_mismatch"
    TOO_LARGE = "too_large"
    CORRUPT = "corrupt"
    UNFRAMED = "unframed"


class CommitResult(StrEnum):
    """What the fold did with a well-formed commit (the `result` label).

    ACCEPTED: epoch == epoch[p] and from == next[p]; STALE_EPOCH: epoch != epoch[p] (a zombie
    or a commit of a claim that lost); GAP: the right epoch but from != next[p].
    """

    ACCEPTED = "accepted"
    STALE_EPOCH = "stale_epoch"
    GAP = "gap"


class ClaimResult(StrEnum):
    """What the fold did with a claim: ACCEPTED iff epoch > epoch[p], else STALE_EPOCH."""

    ACCEPTED = "accepted"
    STALE_EPOCH = "stale_epoch"


class CheckpointResult(StrEnum):
    """Outcome of a checkpoint write or an offset commit (the `result` label).

    CORRUPT (checkpoints only): the checkpoint found at start could not be used (unreadable,
    another format version); it is set aside when the state directory allows, else ignored.
    """

    SUCCESS = "success"
    FAILURE = "failure"
    CORRUPT = "corrupt"


class ReloadResult(StrEnum):
    """Outcome of a configuration reload on SIGHUP (the `result` label).

    INVALID: the new file does not load or validate; RESTART_REQUIRED: it changes a setting
    that only a restart applies (README, Reloading the configuration). Either way the running
    configuration stays in force.
    """

    SUCCESS = "success"
    INVALID = "invalid"
    RESTART_REQUIRED = "restart_required"


class MonitorError(Exception):
    """Base class of every error driftmon raises on purpose."""


class ConfigError(MonitorError):
    """The configuration is invalid; the message names the offending key."""


class ReferenceDataError(MonitorError):
    """A reference sample or reference profile cannot be used (empty, all missing, corrupt...)."""


class SourceError(MonitorError):
    """The event source (Kafka) failed in a way the caller should see."""


class StateError(MonitorError):
    """A checkpoint is corrupt or incompatible with the running configuration."""
