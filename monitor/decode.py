"""Kafka message bytes -> per-model numpy columns, one batch at a time (layer 1, pure core).

`BatchDecoder.decode` turns a batch of `RawMessage` into a `DecodedBatch`: for every configured
model, one float64 matrix of numeric features, one object array per categorical feature, the
event times and the (topic, partition) each event came from, plus the pipeline counters.

Event contract (DESIGN.md section 3, field names from `EventFields`):

- A message value is one JSON object (one event) or a JSON array of objects (several events).
  A value longer than `max_message_bytes` is one `too_large` record and is never parsed.
  Invalid JSON or invalid UTF-8 is one `invalid_json` record. A top-level scalar, or an array
  element that is not an object, is one `not_an_object` record each; the other elements of the
  array are still used. An empty array holds no record.
- JSON is parsed by msgspec, which follows RFC 8259 strictly: the non-standard literals `NaN`,
  `Infinity` and `-Infinity` (which Python's `json.dumps` emits by default) make the whole
  message `invalid_json`; producers must send `null` for a missing value. A number literal too
  large for a float (`1e999`) is valid JSON: it is decoded as +-inf and marked invalid. An
  integer literal of more than 4300 digits (Python's int-parsing limit) and nesting deeper than
  msgspec's recursion limit are `invalid_json`. For a duplicate key the last value wins.
- Checks on each record, in this order (the first failing check is the record's reason):
  1. model: the value of `model_field` must be a string naming a configured model (absent or
     null -> `default_model`); when that model has `topics`, the message topic must be one of
     them; otherwise `unknown_model`.
  2. features: the object at `features_path` (a dotted path; `""` = the record itself) must be
     a JSON object; otherwise `not_an_object`.
  3. timestamp: see `event_time` below; otherwise `bad_timestamp`.
- Features: unknown names are ignored and create no state; a configured name that is absent,
  null counts as missing. Numeric columns hold the value as float64; NaN = missing, +inf =
  invalid (a string, even a numeric-looking one such as "1.5", a bool, an object, an array,
  +-inf, or an integer beyond the float range). Categorical columns hold the string; None =
  missing; `INVALID_CATEGORY` for numbers, objects, arrays and strings starting with NUL;
  true/false become "true"/"false".
- `model_version`: the last non-empty string (or integer, as decimal text) seen in the batch
  among the accepted records of a model, cut to 128 characters; "" if none.

Every message is accounted for: `consumed[topic]` grows by one per message, and every record
in it is either accepted (counted in `accepted[topic]` and present in exactly one
`ModelColumns`) or counted once in `rejected`. `decode` never raises on any input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from operator import itemgetter
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from monitor.errors import ConfigError, RejectReason
from monitor.model import RawMessage

__all__ = [
    "INVALID_CATEGORY",
    "TS_MAX_SECONDS",
    "BatchDecoder",
    "DecodedBatch",
    "EventFields",
    "ModelColumns",
    "ModelSchema",
    "epoch_seconds",
    "parse_rfc3339",
]

INVALID_CATEGORY: Final = "\x00invalid"
"""Categorical marker for a value of the wrong type (no real category can start with NUL)."""

TS_MAX_SECONDS: Final = 1.6e10
"""Exclusive upper bound of a valid event time in epoch seconds (about year 2477).

Valid event times are 0 < t < TS_MAX_SECONDS. A number above 1e11 is almost surely epoch
milliseconds; it is rejected rather than guessed (it is above this bound anyway)."""

MAX_VERSION_CHARS: Final = 128
"""`model_version` values are cut to this many characters (they end up in a metric label)."""

_DETAIL_CHARS: Final = 200
_PREVIEW_CHARS: Final = 48

_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,32})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)

_KAFKA_MS_MAX: Final = TS_MAX_SECONDS * 1000.0
_ABSENT: Final = object()
_NUMERIC_TYPES: Final = frozenset({float, int, type(None)})
_STRING_TYPES: Final = frozenset({str, type(None)})

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class EventFields:
    """Where the decoder finds each part of an event (DESIGN.md section 3 `event:` config).

    `timestamp_field=None` always uses the Kafka record timestamp. When the field is absent or
    null, `timestamp_fallback_to_kafka` uses the Kafka timestamp instead of `bad_timestamp`.
    `features_path` is a dotted path to the features object; `""` means the features are the
    record's own top-level keys (the timestamp, model and version fields are then reserved).
    """

    timestamp_field: str | None = "ts"
    timestamp_fallback_to_kafka: bool = False
    model_field: str = "model"
    model_version_field: str = "model_version"
    features_path: str = "features"
    default_model: str | None = None
    max_message_bytes: int = 1_048_576


@dataclass(frozen=True, slots=True)
class ModelSchema:
    """One model's configured features, in column order, and the topics it may come from.

    `topics=None` accepts the model's records from any topic; otherwise a record of this model
    from another topic is `unknown_model`.
    """

    name: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    topics: frozenset[str] | None = None


@dataclass(slots=True)
class ModelColumns:
    """The accepted events of one model in one batch, as columns (N events).

    - `times`: float64 [N], event time in epoch seconds.
    - `numeric`: float64 [len(schema.numeric), N]; NaN = missing, +inf = invalid.
    - `categorical`: one object array [N] per categorical feature: the string value, None =
      missing, `INVALID_CATEGORY` = invalid.
    - `model_version`: last non-empty version seen for this model in the batch ("" if none).
    - `sources`: int32 [N], index into `DecodedBatch.partitions` of each event's message.
    """

    model: str
    times: FloatArray
    numeric: FloatArray
    categorical: tuple[ObjectArray, ...]
    model_version: str
    sources: IntArray

    def __len__(self) -> int:
        """Number of events."""
        return int(self.times.shape[0])


@dataclass(slots=True)
class DecodedBatch:
    """Everything one batch produced: columns per model (models with no event are left out),
    counters per topic, a bounded sample of rejects for the log, and the messages to copy to a
    dead-letter topic.

    `samples` holds (topic, reason, detail) with detail <= 200 characters: message position,
    a short reason text and at most a 48-byte escaped preview of an unparseable value.
    `rejected_messages` holds each message with at least one rejected record once, in order.
    """

    models: dict[str, ModelColumns]
    consumed: dict[str, int]
    rejected: dict[tuple[str, RejectReason], int]
    accepted: dict[str, int]
    last_record_ts: dict[str, float]
    samples: list[tuple[str, RejectReason, str]]
    rejected_messages: list[RawMessage]
    partitions: list[tuple[str, int]]

    @property
    def total_accepted(self) -> int:
        """Accepted records over all topics."""
        return sum(self.accepted.values())

    @property
    def total_rejected(self) -> int:
        """Rejected records over all topics and reasons."""
        return sum(self.rejected.values())


def parse_rfc3339(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 date-time (`2026-11-26T10:00:00.25Z`, `...+05:30`).

    Requires a full date, a full time and an offset (`Z`/`z` or `+hh:mm`); accepts `t` or a
    space as separator and any number of fractional digits (kept to microseconds). Returns None
    for anything else, including naive times, date-only strings, ISO week dates and the leap
    second `:60`.
    """
    if len(text) > 64 or _RFC3339.fullmatch(text) is None:
        return None
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    if text[10] != "T":
        text = text[:10] + "T" + text[11:]
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError):
        return None


def epoch_seconds(value: object) -> float | None:
    """The event time carried by a JSON value, or None if it is not a valid time.

    A number (not a bool) is epoch seconds; a string is RFC 3339. The result must satisfy
    0 < t < TS_MAX_SECONDS (no NaN, no infinity, no epoch milliseconds).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # int vs float comparison is exact in Python, so huge ints never reach float().
        return float(value) if 0 < value < TS_MAX_SECONDS else None
    if isinstance(value, str):
        seconds = parse_rfc3339(value)
        return seconds if seconds is not None and 0 < seconds < TS_MAX_SECONDS else None
    return None


class _Group:
    """The accepted records of one model while a batch is being decoded."""

    __slots__ = ("features", "sources", "times", "version")

    def __init__(self) -> None:
        self.features: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.sources: list[int] = []
        self.version: str = ""


class _Route:
    """Model lookup result: the group index and the topics the model may come from."""

    __slots__ = ("index", "topics")

    def __init__(self, index: int, topics: frozenset[str] | None) -> None:
        self.index = index
        self.topics = topics


class BatchDecoder:
    """Decodes batches of Kafka messages into per-model columns (see the module docstring).

    The decoder's state is fixed at construction (configuration and the two msgspec decoders);
    `decode` keeps everything else in locals, so no input can grow the decoder.
    """

    __slots__ = (
        "_decoder",
        "_fallback_decoder",
        "_feature_keys",
        "_fields",
        "_max_dead_letters",
        "_max_samples",
        "_routes",
        "_schemas",
    )

    def __init__(
        self,
        fields: EventFields,
        models: Sequence[ModelSchema],
        *,
        max_samples: int = 20,
        max_dead_letters: int = 1000,
    ) -> None:
        """Validate the configuration; raise `ConfigError` naming the offending setting."""
        if fields.max_message_bytes <= 0:
            raise ConfigError("event.max_message_bytes must be positive")
        if max_samples < 0 or max_dead_letters < 0:
            raise ConfigError("max_samples and max_dead_letters must not be negative")
        feature_keys = tuple(fields.features_path.split(".")) if fields.features_path else ()
        if any(not key for key in feature_keys):
            raise ConfigError(f"event.features_path {fields.features_path!r} has an empty part")
        reserved = {fields.model_field, fields.model_version_field}
        if fields.timestamp_field is not None:
            reserved.add(fields.timestamp_field)
        routes: dict[str, _Route] = {}
        for index, schema in enumerate(models):
            if schema.name in routes:
                raise ConfigError(f"models: model {schema.name!r} is configured twice")
            names = schema.numeric + schema.categorical
            if len(set(names)) != len(names):
                raise ConfigError(f"models.{schema.name}.features: a feature name is repeated")
            if not feature_keys and reserved.intersection(names):
                raise ConfigError(
                    f"models.{schema.name}.features: {sorted(reserved.intersection(names))} "
                    "clash with the event fields while event.features_path is ''"
                )
            routes[schema.name] = _Route(index, schema.topics)
        if fields.default_model is not None and fields.default_model not in routes:
            raise ConfigError(f"event.default_model {fields.default_model!r} is not a model")
        self._fields = fields
        self._schemas = tuple(models)
        self._routes = routes
        self._feature_keys = feature_keys
        self._max_samples = max_samples
        self._max_dead_letters = max_dead_letters
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
        self._fallback_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(float_hook=float)

    @property
    def fields(self) -> EventFields:
        """The event field configuration."""
        return self._fields

    @property
    def schemas(self) -> tuple[ModelSchema, ...]:
        """The configured models, in order."""
        return self._schemas

    def decode(self, messages: Sequence[RawMessage]) -> DecodedBatch:
        """Decode one batch. Never raises; every message and record is accounted for."""
        fields = self._fields
        max_bytes = fields.max_message_bytes
        ts_field = fields.timestamp_field
        kafka_fallback = ts_field is None or fields.timestamp_fallback_to_kafka
        model_field = fields.model_field
        version_field = fields.model_version_field
        default_model = fields.default_model
        feature_keys = self._feature_keys
        single_key = feature_keys[0] if len(feature_keys) == 1 else None
        routes = self._routes
        decode_json = self._decoder.decode

        groups = [_Group() for _ in self._schemas]
        consumed: dict[str, int] = {}
        accepted: dict[str, int] = {}
        last_ts: dict[str, float] = {}
        partition_index: dict[tuple[str, int], int] = {}
        sink = _RejectSink(self._max_samples, self._max_dead_letters)

        for message in messages:
            topic = message.topic
            consumed[topic] = consumed.get(topic, 0) + 1
            kafka_ms = message.timestamp_ms
            kafka_ts: float | None = None
            if type(kafka_ms) is int and 0 < kafka_ms < _KAFKA_MS_MAX:
                kafka_ts = kafka_ms / 1000.0
                if kafka_ts > last_ts.get(topic, -1.0):
                    last_ts[topic] = kafka_ts

            value = message.value
            if not isinstance(value, bytes | bytearray | memoryview):
                sink.add(
                    message,
                    RejectReason.INVALID_JSON,
                    "value is not bytes but {}".format,
                    _kind(value),
                )
                continue
            if len(value) > max_bytes:
                sink.add(
                    message,
                    RejectReason.TOO_LARGE,
                    "{} bytes > max_message_bytes {}".format,
                    len(value),
                    max_bytes,
                )
                continue
            try:
                try:
                    parsed = decode_json(value)
                except msgspec.ValidationError:
                    # A float literal out of range (1e999): parse again keeping it as +-inf.
                    parsed = self._fallback_decoder.decode(value)
            except (msgspec.DecodeError, RecursionError) as exc:
                sink.add(message, RejectReason.INVALID_JSON, _invalid_json_detail, exc, value)
                continue

            if type(parsed) is dict:
                records: list[Any] = [parsed]
            elif type(parsed) is list:
                records = parsed
            else:
                sink.add(message, RejectReason.NOT_AN_OBJECT, "top-level {}".format, _kind(parsed))
                continue

            key = (topic, message.partition)
            source = partition_index.get(key)
            if source is None:
                source = partition_index[key] = len(partition_index)
            n_accepted = 0
            for position, record in enumerate(records):
                if type(record) is not dict:
                    sink.add(
                        message,
                        RejectReason.NOT_AN_OBJECT,
                        "array element {} is {}".format,
                        position,
                        _kind(record),
                    )
                    continue

                name = record.get(model_field)
                if name is None:
                    name = default_model
                route = routes.get(name) if type(name) is str else None
                if route is None or (route.topics is not None and topic not in route.topics):
                    sink.add(
                        message,
                        RejectReason.UNKNOWN_MODEL,
                        _unknown_model_detail,
                        name,
                        topic,
                    )
                    continue

                if single_key is not None:
                    features = record.get(single_key)
                elif not feature_keys:
                    features = record
                else:
                    features = _walk(record, feature_keys)
                if type(features) is not dict:
                    sink.add(
                        message,
                        RejectReason.NOT_AN_OBJECT,
                        "features at {!r} is {}".format,
                        fields.features_path,
                        _kind(features),
                    )
                    continue

                raw_ts = record.get(ts_field, _ABSENT) if ts_field is not None else _ABSENT
                if type(raw_ts) is float and 0.0 < raw_ts < TS_MAX_SECONDS:
                    event_ts: float | None = raw_ts
                elif (raw_ts is _ABSENT or raw_ts is None) and kafka_fallback:
                    event_ts = kafka_ts
                else:
                    event_ts = epoch_seconds(raw_ts)
                if event_ts is None:
                    sink.add(
                        message,
                        RejectReason.BAD_TIMESTAMP,
                        _timestamp_detail,
                        raw_ts,
                        ts_field,
                        kafka_ms,
                    )
                    continue

                group = groups[route.index]
                group.features.append(features)
                group.times.append(event_ts)
                group.sources.append(source)
                version = record.get(version_field)
                if version:
                    if type(version) is str:
                        group.version = version[:MAX_VERSION_CHARS]
                    elif type(version) is int:
                        group.version = _int_text(version)
                n_accepted += 1
            if n_accepted:
                accepted[topic] = accepted.get(topic, 0) + n_accepted

        models: dict[str, ModelColumns] = {}
        for schema, group in zip(self._schemas, groups, strict=True):
            if group.times:
                models[schema.name] = _columns(schema, group)
        return DecodedBatch(
            models=models,
            consumed=consumed,
            rejected=sink.counts,
            accepted=accepted,
            last_record_ts=last_ts,
            samples=sink.samples,
            rejected_messages=sink.dead_letters,
            partitions=list(partition_index),
        )


class _RejectSink:
    """Counts rejects and keeps bounded samples and dead letters for one batch."""

    __slots__ = ("counts", "dead_letters", "max_dead_letters", "max_samples", "samples")

    def __init__(self, max_samples: int, max_dead_letters: int) -> None:
        self.counts: dict[tuple[str, RejectReason], int] = {}
        self.samples: list[tuple[str, RejectReason, str]] = []
        self.dead_letters: list[RawMessage] = []
        self.max_samples = max_samples
        self.max_dead_letters = max_dead_letters

    def add(
        self,
        message: RawMessage,
        reason: RejectReason,
        describe: Callable[..., str],
        *args: object,
    ) -> None:
        """Count one rejected record; `describe(*args)` is only called while samples are kept."""
        key = (message.topic, reason)
        self.counts[key] = self.counts.get(key, 0) + 1
        if len(self.samples) < self.max_samples:
            text = f"partition={message.partition} offset={message.offset}: {describe(*args)}"
            self.samples.append((message.topic, reason, _clip(text)))
        dead = self.dead_letters
        if len(dead) < self.max_dead_letters and not (dead and dead[-1] is message):
            dead.append(message)


def _columns(schema: ModelSchema, group: _Group) -> ModelColumns:
    """Build one model's columns from its accepted feature objects."""
    features = group.features
    return ModelColumns(
        model=schema.name,
        times=np.array(group.times, dtype=np.float64),
        numeric=numeric_matrix(features, schema.numeric),
        categorical=tuple(
            categorical_column([f.get(name) for f in features]) for name in schema.categorical
        ),
        model_version=group.version,
        sources=np.array(group.sources, dtype=np.int32),
    )


def numeric_matrix(features: Sequence[dict[str, Any]], names: Sequence[str]) -> FloatArray:
    """float64 [len(names), len(features)]: NaN = missing, +inf = invalid (see module doc).

    Fast path: every object has every name and every value is a float, an int or null, so one
    `itemgetter` pass and one `np.array` call build the matrix. Otherwise each column is built
    on its own (`numeric_column`).
    """
    n = len(features)
    out: FloatArray
    if len(names) >= 2 and n:
        try:
            rows = list(map(itemgetter(*names), features))
        except KeyError:
            rows = None
        if rows is not None and set(map(type, chain.from_iterable(rows))) <= _NUMERIC_TYPES:
            try:
                matrix = np.array(rows, dtype=np.float64)
            except OverflowError:  # an int beyond the float range
                pass
            else:
                out = np.ascontiguousarray(matrix.T)
                out[out == -math.inf] = math.inf
                return out
    out = np.empty((len(names), n), dtype=np.float64)
    for row, name in enumerate(names):
        out[row] = numeric_column([f.get(name) for f in features])
    return out


def numeric_column(values: list[Any]) -> FloatArray:
    """float64 [len(values)] from decoded JSON values: NaN = missing, +inf = invalid."""
    column: FloatArray
    if set(map(type, values)) <= _NUMERIC_TYPES:
        try:
            column = np.array(values, dtype=np.float64)
        except OverflowError:
            column = np.array([_numeric_value(v) for v in values], dtype=np.float64)
    else:
        column = np.array([_numeric_value(v) for v in values], dtype=np.float64)
    column[column == -math.inf] = math.inf
    return column


def _numeric_value(value: object) -> float:
    """One decoded JSON value as a numeric feature value (slow path of `numeric_column`)."""
    if isinstance(value, bool):
        return math.inf
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf
    return math.nan if value is None else math.inf


def categorical_column(values: list[Any]) -> ObjectArray:
    """object [len(values)]: the string, None = missing, INVALID_CATEGORY = wrong type.

    Fast path: all values are strings or null and none starts with NUL (checked on the
    distinct values only).
    """
    column: ObjectArray = np.empty(len(values), dtype=object)
    if set(map(type, values)) <= _STRING_TYPES and not any(
        v is not None and v.startswith("\x00") for v in set(values)
    ):
        column[:] = values
    else:
        column[:] = [_category_value(v) for v in values]
    return column


def _category_value(value: object) -> str | None:
    """One decoded JSON value as a categorical feature value (slow path)."""
    if isinstance(value, str):
        return INVALID_CATEGORY if value.startswith("\x00") else value
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return INVALID_CATEGORY


def _walk(record: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """Follow a dotted features path; None when a step is missing or not an object."""
    node: Any = record
    for key in keys:
        if type(node) is not dict:
            return None
        node = node.get(key)
    return node


def _int_text(value: int) -> str:
    """Decimal text of an integer version, cut to MAX_VERSION_CHARS (safe for huge ints)."""
    if abs(value) >= 10**MAX_VERSION_CHARS:
        return ""
    return str(value)


def _kind(value: object) -> str:
    """JSON-ish name of a decoded value's type, for a log sample."""
    return "absent" if value is None else type(value).__name__


def _invalid_json_detail(error: Exception, value: bytes | bytearray | memoryview) -> str:
    """The parser's complaint and an escaped preview of the value."""
    return f"{error}; value={_preview(value)}"


def _unknown_model_detail(name: object, topic: str) -> str:
    """Which model name was refused on which topic."""
    return f"model {_short(name)} is not configured for topic {_short(topic)}"


def _timestamp_detail(raw: object, ts_field: str | None, kafka_ms: object) -> str:
    """Why an event time was refused, for a log sample."""
    if raw is _ABSENT or raw is None:
        field = ts_field if ts_field is not None else "<kafka>"
        return f"{field!r} absent; kafka timestamp_ms={_short(kafka_ms)}"
    return f"{ts_field!r}={_short(raw)} is not epoch seconds in (0, 1.6e10) nor RFC 3339"


def _short(value: object) -> str:
    """A bounded, escaped rendering of a small JSON value for a log sample."""
    if isinstance(value, str | bytes):
        return repr(value[:_PREVIEW_CHARS]) + ("..." if len(value) > _PREVIEW_CHARS else "")
    if isinstance(value, dict | list):
        return f"<{type(value).__name__} of {len(value)}>"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return "<huge int>"
    return repr(value)


def _preview(value: bytes | bytearray | memoryview) -> str:
    """First bytes of a message value, escaped, with its total length."""
    head = bytes(value[:_PREVIEW_CHARS])
    more = "..." if len(value) > _PREVIEW_CHARS else ""
    return f"{head!r}{more} ({len(value)} bytes)"


def _clip(text: str) -> str:
    """Cut a sample detail to 200 characters."""
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."
