"""Kafka message bytes -> per-model numpy columns, one batch at a time (pure core).

`BatchDecoder.decode` turns a batch of `RawMessage` into a `DecodedBatch`: for every configured
model, one float64 matrix of numeric features, one object array per categorical feature, the
event times and the (topic, partition) each event came from, plus the pipeline counters.

Event contract (docs/architecture.md; field names come from `EventFields`):

- A message value is one JSON object (one event) or a JSON array of objects (several events).
  A value longer than `max_message_bytes` is one `too_large` record and is never parsed.
  Invalid JSON or invalid UTF-8 is one `invalid_json` record. A top-level scalar, or an array
  element that is not an object, is one `not_an_object` record each; the other elements of the
  array are still used. An empty array holds no record.
- JSON is parsed by msgspec, which follows RFC 8259 strictly: the non-standard literals `NaN`,
  `Infinity` and `-Infinity` (which Python's `json.dumps` emits by default) make the whole
  message `invalid_json`; producers must send `null` for a missing value. A number literal too
  large for a float (`1e999`) is valid JSON: it is decoded as +-inf and so marked invalid. An
  integer literal of more than 4300 digits (Python's int-parsing limit) in a field the decoder
  reads, and nesting deeper than msgspec's recursion limit, are `invalid_json`; unknown keys are
  skipped unread (but the whole value must still be valid JSON and valid UTF-8). For a
  duplicate key the last value wins.
- Checks on each record, in this order (the first failing check names the reason):
  1. model: the value of `model_field` must be a string naming a configured model (absent or
     null -> `default_model`); when that model has `topics`, the message topic must be one of
     them; otherwise `unknown_model`.
  2. features: the value at `features_path` (a dotted path; `""` = the record itself) must be
     a JSON object; otherwise `not_an_object`.
  3. event time: a number (not a bool) is epoch seconds; a string must be RFC 3339
     (`parse_rfc3339`); a valid time t satisfies 0 < t < `TS_MAX_SECONDS` (epoch milliseconds
     are rejected, never guessed). When the field is absent or null and `timestamp_field` is
     None or `timestamp_fallback_to_kafka` is set, the Kafka record timestamp is used; it must
     obey the same range. Anything else is `bad_timestamp`.
- Features: unknown names are ignored and create no state. A configured name that is absent
  or null is missing. Numeric columns hold float64: NaN = missing, +inf = invalid (a string,
  even a numeric-looking one such as "1.5", a bool, an object, an array, +-inf, or an integer
  beyond the float range). Categorical columns hold the string: None = missing,
  `INVALID_CATEGORY` for numbers, objects, arrays and strings starting with NUL; true/false
  become "true"/"false".
- `model_version`: the last non-empty string (or integer, as decimal text) among the accepted
  records of a model in the batch, cut to `MAX_VERSION_CHARS`; "" if none.

Every message is accounted for: `consumed[topic]` grows by one per message, and every record
in it is either accepted (counted in `accepted[topic]` and present in exactly one
`ModelColumns`) or counted once in `rejected`. `decode` never raises on any input.

The work is per batch, not per event per feature. msgspec parses each message straight into a
Struct built from the configuration (numeric features typed `float | None`, categorical ones
`str | None`, unknown keys skipped unread), so a clean batch needs no per-value type check.
The envelope fields of all records are then gathered with C-level `map(attrgetter(...))`
passes, checked with one `set(map(type, ...))` pass each and turned into numpy arrays. Python
code runs per message or per value only where a batch holds something odd: a message that is
not clean (it goes through looser decoders one by one), a rejected record, a string timestamp,
a column with a wrong-typed value. `bench/bench_decode.py` measures the whole path.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from monitor.errors import ConfigError, RejectReason
from monitor.model import RawMessage

__all__ = [
    "INVALID_CATEGORY",
    "MAX_VERSION_CHARS",
    "TS_MAX_SECONDS",
    "BatchDecoder",
    "DecodedBatch",
    "EventFields",
    "ModelColumns",
    "ModelSchema",
    "categorical_column",
    "epoch_seconds",
    "numeric_column",
    "parse_rfc3339",
]

INVALID_CATEGORY: Final = "\x00invalid"
"""Categorical marker for a value of the wrong type (no accepted category starts with NUL)."""

TS_MAX_SECONDS: Final = 1.6e10
"""Exclusive upper bound of a valid event time in epoch seconds (about year 2477).

Valid event times satisfy 0 < t < TS_MAX_SECONDS. A number above 1e11 is almost surely epoch
milliseconds; it is rejected rather than guessed (it is above this bound anyway)."""

MAX_VERSION_CHARS: Final = 128
"""`model_version` values are cut to this many characters (they end up in a metric label)."""

_CHUNK_MESSAGES: Final = 1024
"""Messages decoded together. A chunk's Python objects (about 1 MB at 20 features) stay in the
CPU caches and their memory is reused by the next chunk: on a 10,000-message batch this
measured 1.3x faster than one pass on a quiet machine, and up to 2x with other processes busy."""
_KAFKA_MS_MAX: Final = TS_MAX_SECONDS * 1000.0
_DETAIL_CHARS: Final = 200
_PREVIEW_CHARS: Final = 48
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,32})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_PARSE_ERRORS: Final = (msgspec.DecodeError, ValueError, RecursionError)
"""What msgspec raises on bad input: DecodeError (ValidationError included), UnicodeDecodeError
(a ValueError) for invalid UTF-8 inside a string it decodes, RecursionError when too deep."""
_NUMBER_TYPES: Final = frozenset({float, int, type(None)})
_STRING_TYPES: Final = frozenset({str, type(None)})

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int32]
Describe = Callable[..., str]


@dataclass(frozen=True, slots=True)
class EventFields:
    """Where the decoder finds each part of an event (docs/architecture.md, `event:` config).

    `timestamp_field=None` always uses the Kafka record timestamp. When the field is absent or
    null, `timestamp_fallback_to_kafka` uses the Kafka timestamp instead of `bad_timestamp`.
    `features_path` is a dotted path to the features object; `""` means the features are the
    record's own top-level keys (the timestamp, model and version fields are then reserved).
    `model_version_field=""` reads no version (`ModelColumns.model_version` stays "").
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
    """The accepted events of one model in one batch, as columns (N events, batch order).

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
    """Everything one batch produced (see the module docstring for the counting contract).

    `models` holds only the models with at least one accepted event, in configuration order.
    `samples` holds (topic, reason, detail) for the first rejects in message order, detail
    <= 200 characters: the message position, a short reason text and, for unparseable values,
    an escaped preview of at most 48 bytes. `rejected_messages` holds each message with at
    least one rejected record once, in message order. `partitions` lists the (topic, partition)
    of every message in the batch, in order of first appearance.
    """

    models: dict[str, ModelColumns]
    consumed: dict[str, int]
    rejected: dict[tuple[str, RejectReason], int]
    accepted: dict[str, int]
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
    space as separator and up to 32 fractional digits (kept to microseconds). Returns None for
    anything else, including naive times, date-only strings, ISO week dates, the leap second
    `:60` and impossible dates.
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
    """The event time carried by one decoded JSON value, or None if it is not a valid time.

    A number (not a bool) is epoch seconds; a string is RFC 3339. The result satisfies
    0 < t < TS_MAX_SECONDS (no NaN, no infinity, no epoch milliseconds).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # int vs float comparison is exact in Python, so a huge int never reaches float().
        return float(value) if 0 < value < TS_MAX_SECONDS else None
    if isinstance(value, str):
        seconds = parse_rfc3339(value)
        return seconds if seconds is not None and 0 < seconds < TS_MAX_SECONDS else None
    return None


class _Layout:
    """The msgspec record types built from the configuration, and how to read their fields.

    A record decodes into an `Envelope` Struct whose attributes are short generated names
    (`m` model, `v` version, `t` time, `f` features object, `x<i>` configured features) renamed
    to the configured JSON keys. Two variants share these attribute names:

    - strict: a numeric feature is typed `float | None` and a categorical one `str | None`
      (`Any` if two models give one name both kinds); the features object is
      `Features | None`. msgspec checks the types while parsing (an int becomes a float), so
      columns of strict records need no type check.
    - loose: every field is `Any` except the features object. A message the strict type
      refuses (a wrong feature type, an out-of-range float literal) is decoded again with it,
      and the columns then classify the values one by one.

    msgspec skips unknown keys without creating anything, so unexpected feature names cost
    nothing and grow nothing.
    """

    __slots__ = ("attrs", "features_depth", "loose_type", "strict_attrs", "strict_type")

    def __init__(self, fields: EventFields, keys: tuple[str, ...], kinds: dict[str, Any]) -> None:
        self.attrs = {name: f"x{i}" for i, name in enumerate(kinds)}
        self.strict_attrs = frozenset(
            self.attrs[name] for name, kind in kinds.items() if kind is not Any
        )
        self.features_depth = len(keys)
        self.strict_type = self._envelope(fields, keys, kinds, "Strict")
        self.loose_type = self._envelope(fields, keys, dict.fromkeys(kinds, Any), "Loose")

    def _envelope(
        self, fields: EventFields, keys: tuple[str, ...], kinds: dict[str, Any], prefix: str
    ) -> type[msgspec.Struct]:
        """The Envelope Struct type whose feature fields have the given types."""
        feature_fields = [(self.attrs[name], kind | None, None) for name, kind in kinds.items()]
        feature_rename = {attr: name for name, attr in self.attrs.items()}
        head: list[tuple[str, Any, Any]] = [("m", Any, None)]
        head_rename = {"m": fields.model_field}
        if fields.model_version_field:
            head.append(("v", Any, None))
            head_rename["v"] = fields.model_version_field
        if fields.timestamp_field is not None:
            head.append(("t", Any, None))
            head_rename["t"] = fields.timestamp_field
        if not keys:
            return msgspec.defstruct(
                f"{prefix}Envelope",
                head + feature_fields,
                rename=head_rename | feature_rename,
                gc=False,
            )
        inner: Any = msgspec.defstruct(
            f"{prefix}Features", feature_fields, rename=feature_rename, gc=False
        )
        for depth in range(len(keys) - 1, 0, -1):
            inner = msgspec.defstruct(
                f"{prefix}Path{depth}",
                [("f", inner | None, None)],
                rename={"f": keys[depth]},
                gc=False,
            )
        return msgspec.defstruct(
            f"{prefix}Envelope",
            [*head, ("f", inner | None, None)],
            rename=head_rename | {"f": keys[0]},
            gc=False,
        )

    def features(self, records: list[Any]) -> list[Any]:
        """The features object of each record (None when absent, null or not an object)."""
        if self.features_depth == 0:
            return records
        features: list[Any] = list(map(_FEATURES, records))
        for _ in range(self.features_depth - 1):
            features = [None if f is None else f.f for f in features]
        return features


_MODEL: Final = attrgetter("m")
_VERSION: Final = attrgetter("v")
_TIME: Final = attrgetter("t")
_FEATURES: Final = attrgetter("f")


class BatchDecoder:
    """Decodes batches of Kafka messages into per-model columns (see the module docstring).

    The decoder's state is fixed at construction (configuration, the record types and three
    msgspec decoders); `decode` keeps everything else in locals, so no input grows it.
    """

    __slots__ = (
        "_codes",
        "_columns",
        "_fields",
        "_generic",
        "_layout",
        "_loose",
        "_max_dead_letters",
        "_max_samples",
        "_schemas",
        "_strict",
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
        keys = tuple(fields.features_path.split(".")) if fields.features_path else ()
        if any(not key for key in keys):
            raise ConfigError(f"event.features_path {fields.features_path!r} has an empty part")
        reserved = [fields.model_field]
        if fields.model_version_field:
            reserved.append(fields.model_version_field)
        if fields.timestamp_field is not None:
            reserved.append(fields.timestamp_field)
        if keys:
            reserved.append(keys[0])
        if len(set(reserved)) != len(reserved):
            raise ConfigError(
                "event: timestamp_field, model_field, model_version_field and the first part "
                f"of features_path must differ, got {reserved}"
            )
        codes: dict[str, int] = {}
        kinds: dict[str, Any] = {}
        for code, schema in enumerate(models):
            if schema.name in codes:
                raise ConfigError(f"models: model {schema.name!r} is configured twice")
            names = schema.numeric + schema.categorical
            if len(set(names)) != len(names):
                raise ConfigError(f"models.{schema.name}.features: a feature name is repeated")
            clash = sorted(set(reserved).intersection(names))
            if not keys and clash:
                raise ConfigError(
                    f"models.{schema.name}.features: {clash} clash with the event fields "
                    "while event.features_path is ''"
                )
            codes[schema.name] = code
            for name, kind in chain(
                zip(schema.numeric, repeat(float)), zip(schema.categorical, repeat(str))
            ):
                kinds[name] = kind if kinds.get(name, kind) is kind else Any
        if fields.default_model is not None and fields.default_model not in codes:
            raise ConfigError(f"event.default_model {fields.default_model!r} is not a model")
        layout = _Layout(fields, keys, kinds)
        self._fields = fields
        self._schemas = tuple(models)
        self._codes = codes
        self._layout = layout
        self._columns = tuple(
            (
                tuple(layout.attrs[name] for name in schema.numeric),
                tuple(layout.attrs[name] for name in schema.categorical),
            )
            for schema in models
        )
        self._max_samples = max_samples
        self._max_dead_letters = max_dead_letters
        strict, loose = layout.strict_type, layout.loose_type
        self._strict: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            strict | list[strict]  # type: ignore[valid-type]
        )
        self._loose: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            loose | list[loose],  # type: ignore[valid-type]
            float_hook=float,
        )
        self._generic: msgspec.json.Decoder[Any] = msgspec.json.Decoder(float_hook=float)

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
        if not messages:
            return DecodedBatch({}, {}, {}, {}, [], [], [])
        topics, message_partitions, _, timestamps_ms, values = zip(*messages, strict=True)
        topic_names = list(dict.fromkeys(topics))
        topic_codes = _codes_of(topics, {t: i for i, t in enumerate(topic_names)})
        if len(topic_names) == 1:
            partition_keys: Sequence[Any] = message_partitions
            partitions = [(topics[0], p) for p in dict.fromkeys(message_partitions)]
        else:
            partition_keys = list(zip(topics, message_partitions, strict=True))
            partitions = list(dict.fromkeys(partition_keys))
        partition_codes = _codes_of(
            partition_keys, {key: i for i, key in enumerate(dict.fromkeys(partition_keys))}
        )
        kafka_ts = _kafka_seconds(timestamps_ms)

        state = _BatchState(topic_names, topic_codes, kafka_ts, len(self._schemas))
        for start in range(0, len(values), _CHUNK_MESSAGES):
            self._decode_chunk(values[start : start + _CHUNK_MESSAGES], start, state)

        models: dict[str, ModelColumns] = {}
        for code, schema in enumerate(self._schemas):
            if state.parts[code]:
                models[schema.name] = _join_parts(schema.name, state.parts[code], partition_codes)
        counts, samples, dead = state.rejects.finish(
            messages, self._max_samples, self._max_dead_letters
        )
        return DecodedBatch(
            models=models,
            consumed=dict(Counter(topics)),
            rejected=counts,
            accepted={topic_names[c]: k for c, k in enumerate(state.accepted.tolist()) if k},
            samples=samples,
            rejected_messages=dead,
            partitions=partitions,
        )

    def _decode_chunk(self, values: Sequence[Any], offset: int, state: _BatchState) -> None:
        """Decode messages `offset ..` of the batch into `state` (parts, counts, rejects)."""
        rejects = state.rejects
        records, record_msg = self._records(values, offset, rejects)
        if not records:
            return
        checked = set(map(type, records)) <= {self._layout.strict_type}
        n = len(records)
        record_topic = state.topic_codes[record_msg]
        model_code = self._model_codes(records, state.topic_names, record_topic)
        features = self._layout.features(records)
        times = self._times(records, state.kafka_ts[record_msg])
        ok = model_code >= 0
        if type(None) in set(map(type, features)):
            ok &= np.array([f is not None for f in features], dtype=np.bool_)
        ok &= ~np.isnan(times)
        if not ok.all():
            for i in np.flatnonzero(~ok).tolist():
                self._reject_record(
                    rejects,
                    int(record_msg[i]),
                    records[i],
                    state.topic_names[record_topic[i]],
                    model_ok=bool(model_code[i] >= 0),
                    features_ok=features[i] is not None,
                )
        state.accepted += np.bincount(record_topic[ok], minlength=len(state.topic_names))

        for code in range(len(self._schemas)):
            selected = ok & (model_code == code) if len(self._schemas) > 1 else ok
            count = int(np.count_nonzero(selected))
            if count == 0:
                continue
            if count == n:
                rows: Sequence[int] = range(n)
                group, group_times, group_msg = features, times, record_msg
            else:
                rows = np.flatnonzero(selected).tolist()
                group = list(map(features.__getitem__, rows))
                group_times, group_msg = times[rows], record_msg[rows]
            numeric_attrs, categorical_attrs = self._columns[code]
            checked_numeric = checked and self._layout.strict_attrs.issuperset(numeric_attrs)
            state.parts[code].append(
                _Part(
                    times=group_times,
                    numeric=_numeric_matrix(group, numeric_attrs, checked=checked_numeric),
                    categorical=tuple(
                        categorical_column(list(map(attrgetter(attr), group)))
                        for attr in categorical_attrs
                    ),
                    model_version=(
                        _last_version(records, rows) if self._fields.model_version_field else ""
                    ),
                    messages=group_msg,
                )
            )

    def _records(
        self, values: Sequence[Any], offset: int, rejects: _Rejects
    ) -> tuple[list[Any], IntArray]:
        """The records of a chunk (Envelope Structs) and the batch message index of each.

        Runs of clean messages go through one `map(strict.decode, ...)` each; a message that
        is not bytes, too large or not UTF-8 (found up front), or that the strict decoder
        refuses, is handled alone by `_message_records` and the run resumes after it.
        """
        max_bytes = self._fields.max_message_bytes
        if (
            set(map(type, values)) <= {bytes}
            and max(map(len, values)) <= max_bytes
            and (all(map(bytes.isascii, values)) or all(map(_is_utf8, values)))
        ):
            odd: list[int] = []
        else:
            odd = [
                i
                for i, v in enumerate(values)
                if type(v) is not bytes or len(v) > max_bytes or not _is_utf8(v)
            ]
        decode = self._strict.decode
        parsed: list[Any] = []  # per message: a Struct, a list of Structs, or a tuple (alone)
        for stop in [*odd, len(values)]:
            while len(parsed) < stop:
                try:
                    parsed.extend(map(decode, values[len(parsed) : stop]))
                except _PARSE_ERRORS:  # extend kept the messages before the failing one
                    index = len(parsed)
                    parsed.append(self._message_records(offset + index, values[index], rejects))
            if stop < len(values):
                parsed.append(self._message_records(offset + stop, values[stop], rejects))
        record_type = self._layout.strict_type
        if set(map(type, parsed)) <= {record_type}:
            return parsed, np.arange(offset, offset + len(parsed), dtype=np.int32)
        return _flatten(parsed, record_type, offset)

    def _message_records(self, index: int, value: Any, rejects: _Rejects) -> tuple[Any, ...]:
        """The records of one message, handled alone; rejects what cannot be a record."""
        if not isinstance(value, bytes | bytearray | memoryview):
            rejects.add(index, RejectReason.INVALID_JSON, _not_bytes_detail, value)
            return ()
        if len(value) > self._fields.max_message_bytes:
            max_bytes = self._fields.max_message_bytes
            rejects.add(index, RejectReason.TOO_LARGE, _too_large_detail, value, max_bytes)
            return ()
        if not _is_utf8(value):
            rejects.add(index, RejectReason.INVALID_JSON, _not_utf8_detail, value)
            return ()
        try:
            try:
                parsed = self._strict.decode(value)
            except msgspec.ValidationError:
                try:  # a wrong feature type, or a float literal out of range (1e999 -> inf)
                    parsed = self._loose.decode(value)
                except msgspec.ValidationError:  # not an object where one is needed
                    return self._generic_records(index, self._generic.decode(value), rejects)
        except _PARSE_ERRORS as exc:
            rejects.add(index, RejectReason.INVALID_JSON, _invalid_json_detail, exc, value)
            return ()
        return tuple(parsed) if type(parsed) is list else (parsed,)

    def _generic_records(self, index: int, parsed: Any, rejects: _Rejects) -> tuple[Any, ...]:
        """Records of a message that the typed decoders refused, from its generic JSON value."""
        if type(parsed) is dict:
            elements: list[Any] = [parsed]
        elif type(parsed) is list:
            elements = parsed
        else:
            rejects.add(index, RejectReason.NOT_AN_OBJECT, "top-level {}".format, _kind(parsed))
            return ()
        records: list[Any] = []
        for position, element in enumerate(elements):
            record = self._to_record(element) if type(element) is dict else None
            if record is None:
                rejects.add(
                    index,
                    RejectReason.NOT_AN_OBJECT,
                    "array element {} is {}".format,
                    position,
                    _kind(element),
                )
            else:
                records.append(record)
        return tuple(records)

    def _to_record(self, element: dict[str, Any]) -> Any:
        """An Envelope from a generic JSON object; a non-object features value becomes None."""
        record_type = self._layout.loose_type
        try:
            return msgspec.convert(element, record_type)
        except msgspec.ValidationError:
            pass
        keys = self._fields.features_path.split(".")
        stripped = {k: v for k, v in element.items() if k != keys[0]}
        try:
            return msgspec.convert(stripped, record_type)
        except msgspec.ValidationError:  # pragma: no cover - every other field is Any
            return None

    def _model_codes(
        self, records: list[Any], topic_names: list[str], record_topic: IntArray
    ) -> IntArray:
        """int32 [n]: the model index of each record, -1 for `unknown_model`."""
        names: list[Any] = list(map(_MODEL, records))
        if not set(map(type, names)) <= {str}:
            default = self._fields.default_model
            names = [v if type(v) is str else default if v is None else None for v in names]
        lookup = {name: self._codes.get(name, -1) for name in set(names)}
        if len(lookup) == 1:
            codes = np.full(len(names), next(iter(lookup.values())), dtype=np.int32)
        else:
            codes = _codes_of(names, lookup)
        for code in lookup.values():
            allowed = self._schemas[code].topics if code >= 0 else None
            if allowed is not None:
                allowed_codes = [c for c, topic in enumerate(topic_names) if topic in allowed]
                codes[(codes == code) & ~np.isin(record_topic, allowed_codes)] = -1
        return codes

    def _times(self, records: list[Any], kafka_ts: FloatArray) -> FloatArray:
        """float64 [n]: the event time of each record, NaN for `bad_timestamp`."""
        fields = self._fields
        if fields.timestamp_field is None:
            return kafka_ts
        raw: list[Any] = list(map(_TIME, records))
        times: FloatArray | None = None
        if set(map(type, raw)) <= _NUMBER_TYPES:
            try:  # null becomes NaN; an int beyond the float range raises
                times = np.array(raw, dtype=np.float64)
            except OverflowError:
                times = None
        if times is None:  # absent/null -> NaN, invalid -> -1 (refused by the range check)
            times = np.array([_time_or_marker(v) for v in raw], dtype=np.float64)
        if fields.timestamp_fallback_to_kafka:
            absent = np.isnan(times)
            if absent.any():
                times[absent] = kafka_ts[absent]
        times[~((times > 0.0) & (times < TS_MAX_SECONDS))] = math.nan
        return times

    def _reject_record(
        self,
        rejects: _Rejects,
        message: int,
        record: Any,
        topic: str,
        *,
        model_ok: bool,
        features_ok: bool,
    ) -> None:
        """Record the reason of the first failing check of one record that was not accepted."""
        fields = self._fields
        if not model_ok:
            rejects.add(message, RejectReason.UNKNOWN_MODEL, _unknown_model_detail, record.m, topic)
        elif not features_ok:
            rejects.add(
                message,
                RejectReason.NOT_AN_OBJECT,
                "features at {!r} absent, null or not an object".format,
                fields.features_path,
            )
        else:
            raw = record.t if fields.timestamp_field is not None else None
            rejects.add(
                message, RejectReason.BAD_TIMESTAMP, _timestamp_detail, raw, fields.timestamp_field
            )


@dataclass(slots=True)
class _Part:
    """One chunk's columns of one model; `messages` holds each event's batch message index."""

    times: FloatArray
    numeric: FloatArray
    categorical: tuple[ObjectArray, ...]
    model_version: str
    messages: IntArray


class _BatchState:
    """What the chunks of one batch share and accumulate."""

    __slots__ = ("accepted", "kafka_ts", "parts", "rejects", "topic_codes", "topic_names")

    def __init__(
        self, topic_names: list[str], topic_codes: IntArray, kafka_ts: FloatArray, models: int
    ) -> None:
        self.topic_names = topic_names
        self.topic_codes = topic_codes
        self.kafka_ts = kafka_ts
        self.rejects = _Rejects()
        self.accepted = np.zeros(len(topic_names), dtype=np.int64)
        self.parts: list[list[_Part]] = [[] for _ in range(models)]


def _join_parts(model: str, parts: list[_Part], partition_codes: IntArray) -> ModelColumns:
    """One model's columns for the whole batch from its per-chunk parts, in batch order."""
    if len(parts) == 1:
        (part,) = parts
        return ModelColumns(
            model=model,
            times=part.times,
            numeric=part.numeric,
            categorical=part.categorical,
            model_version=part.model_version,
            sources=partition_codes[part.messages],
        )
    versions = [p.model_version for p in parts if p.model_version]
    return ModelColumns(
        model=model,
        times=np.concatenate([p.times for p in parts]),
        numeric=np.concatenate([p.numeric for p in parts], axis=1),
        categorical=tuple(
            np.concatenate(columns) for columns in zip(*(p.categorical for p in parts), strict=True)
        ),
        model_version=versions[-1] if versions else "",
        sources=partition_codes[np.concatenate([p.messages for p in parts])],
    )


class _Rejects:
    """The rejected records of one batch: (message index, reason, describe, args) each.

    The detail text is built by `describe(*args)` only for the records that become samples.
    """

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[tuple[int, RejectReason, Describe, tuple[object, ...]]] = []

    def add(self, message: int, reason: RejectReason, describe: Describe, *args: object) -> None:
        """Count one rejected record of message number `message`."""
        self.entries.append((message, reason, describe, args))

    def finish(
        self, messages: Sequence[RawMessage], max_samples: int, max_dead_letters: int
    ) -> tuple[
        dict[tuple[str, RejectReason], int], list[tuple[str, RejectReason, str]], list[RawMessage]
    ]:
        """Counts per (topic, reason), the first samples and the dead letters, in message order."""
        entries = sorted(self.entries, key=itemgetter(0))
        counts: dict[tuple[str, RejectReason], int] = {}
        for message, reason, _, _ in entries:
            key = (messages[message].topic, reason)
            counts[key] = counts.get(key, 0) + 1
        samples: list[tuple[str, RejectReason, str]] = []
        for message, reason, describe, args in entries[:max_samples]:
            raw = messages[message]
            text = f"partition={raw.partition} offset={raw.offset}: {describe(*args)}"
            samples.append((raw.topic, reason, _clip(text)))
        dead: list[RawMessage] = []
        last = -1
        for message, _, _, _ in entries:
            if len(dead) >= max_dead_letters:
                break
            if message != last:
                dead.append(messages[message])
                last = message
        return counts, samples, dead


def _flatten(parsed: list[Any], record_type: type, offset: int) -> tuple[list[Any], IntArray]:
    """Records and the batch message index of each, from the per-message results of
    `_records`: a strict Struct (one record), a list of them, or a tuple (from the slow path).
    """
    records: list[Any] = []
    owners: list[int] = []
    for index, value in enumerate(parsed, offset):
        if type(value) is record_type:
            records.append(value)
            owners.append(index)
        else:
            records.extend(value)
            owners.extend(repeat(index, len(value)))
    return records, np.array(owners, dtype=np.int32)


def _last_version(records: list[Any], rows: Sequence[int]) -> str:
    """Last non-empty string/int `model_version` among `rows`, cut; "" if none."""
    for version in filter(None, map(_VERSION, map(records.__getitem__, reversed(rows)))):
        if type(version) is str:
            return version[:MAX_VERSION_CHARS]
        if type(version) is int and abs(version) < 10**MAX_VERSION_CHARS:
            return str(version)
    return ""


def _codes_of(keys: Iterable[Any], lookup: dict[Any, int]) -> IntArray:
    """int32 array of `lookup[key]` for each key."""
    keys = list(keys)
    return np.fromiter(map(lookup.__getitem__, keys), dtype=np.int32, count=len(keys))


def _kafka_seconds(timestamps_ms: Sequence[Any]) -> FloatArray:
    """float64 [n]: Kafka record timestamps in seconds, NaN when absent or out of range."""
    millis: FloatArray | None = None
    if set(map(type, timestamps_ms)) <= {int}:
        try:
            millis = np.array(timestamps_ms, dtype=np.float64)
        except OverflowError:
            millis = None
    if millis is None:
        millis = np.array(
            [
                float(v) if type(v) is int and 0 < v < _KAFKA_MS_MAX else math.nan
                for v in timestamps_ms
            ],
            dtype=np.float64,
        )
    millis[~((millis > 0.0) & (millis < _KAFKA_MS_MAX))] = math.nan
    return millis / 1000.0


def _time_or_marker(value: object) -> float:
    """Slow path of the event time: NaN when absent/null, -1 when invalid, else seconds."""
    if value is None:
        return math.nan
    seconds = epoch_seconds(value)
    return -1.0 if seconds is None else seconds


def _numeric_matrix(features: list[Any], attrs: tuple[str, ...], *, checked: bool) -> FloatArray:
    """float64 [len(attrs), len(features)] from feature Structs: NaN = missing, +inf = invalid.

    Fast path: every value is a float, an int or null (known when `checked`: msgspec validated
    the types while parsing), so one `attrgetter` pass and one `np.array` call build the
    matrix. Otherwise each column goes through `numeric_column`.
    """
    if len(attrs) >= 2 and features:
        rows = list(map(attrgetter(*attrs), features))
        if checked or set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES:
            try:
                matrix = np.array(rows, dtype=np.float64)
            except OverflowError:  # an int beyond the float range
                pass
            else:
                out: FloatArray = np.ascontiguousarray(matrix.T)
                out[out == -math.inf] = math.inf
                return out
    out = np.empty((len(attrs), len(features)), dtype=np.float64)
    for row, attr in enumerate(attrs):
        out[row] = numeric_column(list(map(attrgetter(attr), features)))
    return out


def numeric_column(values: list[Any]) -> FloatArray:
    """float64 [len(values)] from decoded JSON values: NaN = missing, +inf = invalid."""
    column: FloatArray | None = None
    if set(map(type, values)) <= _NUMBER_TYPES:
        try:
            column = np.array(values, dtype=np.float64)
        except OverflowError:
            column = None
    if column is None:
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


_JSON_KINDS: Final = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "bool",
    int: "number",
    float: "number",
    type(None): "null",
}


def _kind(value: object) -> str:
    """JSON name of a decoded value's type, for a log sample."""
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _is_utf8(value: bytes | bytearray | memoryview) -> bool:
    """Whether a message value is valid UTF-8 (msgspec does not check keys and values that
    the record type skips, so the whole value is checked first)."""
    if not isinstance(value, memoryview) and value.isascii():
        return True
    try:
        str(value, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _not_utf8_detail(value: bytes | bytearray | memoryview) -> str:
    """A value that is not UTF-8, with an escaped preview."""
    return f"not UTF-8; value={_preview(value)}"


def _not_bytes_detail(value: object) -> str:
    """A message whose value is not bytes (e.g. a tombstone)."""
    return f"value is {type(value).__name__}, not bytes"


def _too_large_detail(value: bytes | bytearray | memoryview, max_bytes: int) -> str:
    """Size of a message over the limit."""
    return f"{len(value)} bytes > max_message_bytes {max_bytes}; not parsed"


def _invalid_json_detail(error: Exception, value: bytes | bytearray | memoryview) -> str:
    """The parser's complaint and an escaped preview of the value."""
    return f"{error}; value={_preview(value)}"


def _unknown_model_detail(name: object, topic: str) -> str:
    """Which model name was refused on which topic."""
    return f"model {_short(name)} is not configured for topic {_short(topic)}"


def _timestamp_detail(raw: object, ts_field: str | None) -> str:
    """Why an event time was refused, for a log sample."""
    if raw is None:
        where = "no Kafka timestamp" if ts_field is None else f"{ts_field!r} absent or null"
        return f"{where}, or Kafka timestamp unusable"
    return f"{ts_field!r}={_short(raw)} is not epoch seconds in (0, 1.6e10) nor RFC 3339"


def _short(value: object) -> str:
    """A bounded, escaped rendering of a small JSON value for a log sample."""
    if isinstance(value, str | bytes):
        return repr(value[:_PREVIEW_CHARS]) + ("..." if len(value) > _PREVIEW_CHARS else "")
    if isinstance(value, dict | list):
        return f"<{_kind(value)} of {len(value)}>"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return "<huge number>"
    return repr(value)


def _preview(value: bytes | bytearray | memoryview) -> str:
    """First bytes of a message value, escaped, with its total length."""
    head = bytes(value[:_PREVIEW_CHARS])
    more = "..." if len(value) > _PREVIEW_CHARS else ""
    return f"{head!r}{more} ({len(value)} bytes)"


def _clip(text: str) -> str:
    """Cut a sample detail to 200 characters."""
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."
