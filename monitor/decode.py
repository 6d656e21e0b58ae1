"""Kafka message bytes -> per-model numpy columns, one batch at a time (pure core).

`BatchDecoder.decode` turns a batch of `RawMessage` into a `DecodedBatch`: for every configured
model, one float64 matrix of numeric features, one object array per categorical feature, the
event times and the (topic, partition) each event came from, plus the pipeline counters.

Event contract (docs/architecture.md; field names come from `EventFields`):

- A message value is one JSON object (one event) or a JSON array of objects (several events).
  A value longer than `max_message_bytes` is one `too_large` record and is never parsed.
  An array of more than `max_array_elements` elements keeps its first `max_array_elements`
  elements; each further element is one `too_large` record, counted but never decoded.
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
- Features: unknown names are ignored: no column, no metric, no state beyond the decoder's
  bounded layouts (`_Layout`). A configured name that is absent
  or null is missing. Numeric columns hold float64: NaN = missing, +inf = invalid (a string,
  even a numeric-looking one such as "1.5", a bool, an object, an array, +-inf, or an integer
  beyond the float range). Categorical columns hold the string: None = missing,
  `INVALID_CATEGORY` for numbers, objects, arrays, strings starting with NUL and strings
  longer than `MAX_CATEGORY_CHARS` (a category is a bin label; a longer string is an id or a
  payload, and a warm-up buffer of them is unbounded); true/false become "true"/"false".
- `model_version`: the last non-empty string (or integer, as decimal text) among the accepted
  records of a model in the batch, cut to `MAX_VERSION_CHARS`; "" if none.

Every message is accounted for in the batch's `BatchAccount` (`monitor.account`):
`consumed[topic]` grows by one per message, and every record in it is either accepted
(counted in `decoded[topic]` and present in exactly one `ModelColumns`) or counted once in
`rejected`; each message with a rejected record is marked once for the dead-letter topic.
`decode` never raises on any input.

Memory is bounded per batch, whatever the input (README "Memory budget"): the records a
message can yield are bounded before it is parsed (a value starting with `{` is at most one
record; any other holds at most `max_array_elements` and at most one record per `{` byte), an
array that may exceed the cap is counted with a lean `list[msgspec.Raw]` pass before any
record is built, messages are parsed in chunks of at most `_CHUNK_VALUES` decoded field slots
(records x fields), and `slices` hands the batch out in slices of at most `_SLICE_VALUES`
column values, so the caller can apply one slice before the next is decoded. Rejections are
counted with numpy per chunk, never stored per record.

Log samples hold no payload content: positions, lengths and JSON types only (a model name or
a timestamp is described by its type and length). `payload_preview=True` adds an escaped
preview of at most 48 bytes and the refused values, cut to 48 characters.

The work is per batch, not per event per feature. msgspec parses each message straight into a
Struct built from the configuration (numeric features typed `float | None`, categorical ones
`str | None`, unknown keys skipped unread; its fields laid out in the key order the producer
sends, `_Layout`), so a clean batch needs no per-value type check.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt
from msgspec.structs import astuple

from monitor.account import BatchAccount
from monitor.errors import ConfigError, RejectReason
from monitor.model import MAX_CATEGORY_CHARS, RawMessage

__all__ = [
    "INVALID_CATEGORY",
    "MAX_CATEGORY_CHARS",
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
_CHUNK_VALUES: Final = 1 << 19
"""Upper bound of records x (fields + 4) parsed into Python objects at once (about 20,000
records at 22 features, ~10 MB of Structs; 238 records at 2,200 features)."""
_SLICE_VALUES: Final = 1 << 21
"""Upper bound of records x (fields + 4) in the columns of one slice (about 80,000 records at
22 features, ~20 MB of columns; 950 records at 2,200 features)."""
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
_Span = slice | tuple[int, ...] | None
"""Where a model's columns sit among the fields of a features Struct (`_field_index`)."""


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
    max_array_elements: int = 10_000


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
    - `messages`: int32 [N], index into the decoded batch's messages of each event's message.
    """

    model: str
    times: FloatArray
    numeric: FloatArray
    categorical: tuple[ObjectArray, ...]
    model_version: str
    sources: IntArray
    messages: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def __len__(self) -> int:
        """Number of events."""
        return int(self.times.shape[0])

    def select(self, keep: npt.NDArray[np.bool_]) -> ModelColumns:
        """The events where `keep` (bool [N]) is true, in order."""
        return ModelColumns(
            model=self.model,
            times=self.times[keep],
            numeric=self.numeric[:, keep],
            categorical=tuple(c[keep] for c in self.categorical),
            model_version=self.model_version,
            sources=self.sources[keep],
            messages=self.messages[keep] if self.messages.size else self.messages,
        )

    def offsets(self, messages: Sequence[RawMessage]) -> npt.NDArray[np.int64]:
        """int64 [N]: the Kafka offset of each event's message (`messages` as indexed by
        `self.messages`)."""
        return np.fromiter(
            (messages[i].offset for i in self.messages.tolist()), np.int64, len(self)
        )


@dataclass(slots=True)
class DecodedBatch:
    """The columns of one slice of a batch, and the batch's account (see the module docstring).

    `models` holds only the models with at least one accepted event in the slice, in
    configuration order. `partitions` lists the (topic, partition) of every message in the
    batch, in order of first appearance. `account` is shared by every slice of one batch; the
    properties below read it (the counts of the slices decoded so far). `samples` are
    (topic, reason, detail) for the first rejects in message order, detail <= 200 characters
    starting with the message position. `rejected_messages` holds each message with at least
    one rejected record once.
    """

    models: dict[str, ModelColumns]
    partitions: list[tuple[str, int]]
    account: BatchAccount

    @property
    def consumed(self) -> dict[str, int]:
        """Messages per topic."""
        return self.account.consumed

    @property
    def accepted(self) -> dict[str, int]:
        """Records per topic that passed decoding."""
        return self.account.decoded

    @property
    def rejected(self) -> dict[tuple[str, RejectReason], int]:
        """Rejected records per (topic, reason)."""
        return self.account.rejected

    @property
    def samples(self) -> list[tuple[str, RejectReason, str]]:
        """(topic, reason, "partition=P offset=O: detail") of the sampled rejects."""
        return [
            (s.topic, s.reason, _clip(f"partition={s.partition} offset={s.offset}: {s.detail}"))
            for s in self.account.samples
        ]

    @property
    def rejected_messages(self) -> list[RawMessage]:
        """Each message with a rejected record, once."""
        return [message for message, _ in self.account.dead_letters.values()]

    @property
    def total_accepted(self) -> int:
        """Accepted records over all topics."""
        return self.account.total_decoded

    @property
    def total_rejected(self) -> int:
        """Rejected records over all topics and reasons."""
        return self.account.total_rejected


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


_ORDER_SAMPLES: Final = 16
"""Messages of a batch looked at for the first JSON object whose key order lays out the
record types (`BatchDecoder._follow_key_order`)."""
_ORDER_CHECK_EVERY: Final = 8
"""The key order is looked at in every 8th batch, and in the batch after any change of the
layout (the look costs about 1.6 parses of one message: 776 us at 2,200 features, 3 % of a
94-event batch if done every time)."""
_LAYOUTS_KEPT: Final = 4
"""Layouts kept for the key orders seen last (producers alternating between a few orders)."""
_UNKNOWN_FIELDS: Final = 1024
_UNKNOWN_FIELDS_PER_FEATURE: Final = 10
"""Unconfigured keys of the features object taken into a layout as `msgspec.Raw` fields: at
most 1024 + 10 per configured feature (a scan of the fields for each key left out)."""
_UNKNOWN_FROM_FEATURES: Final = 64
"""Below this many configured features a scan of the fields costs less than a Raw field, so
unconfigured keys are left out of the layout (220-key events with 22 configured: 27 us per
event with them, 22 without)."""
_KEYED: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _key_order(value: bytes, keys: tuple[str, ...]) -> dict[str, msgspec.Raw] | None:
    """The object at path `keys` of one JSON message, its keys in the order they come
    (None when the message is no such object)."""
    try:
        holder = _KEYED.decode(value)
        for key in keys:
            raw = holder.get(key)
            if raw is None:
                return None
            holder = _KEYED.decode(raw)
    except _PARSE_ERRORS:
        return None
    return holder if type(holder) is dict else None


@dataclass(slots=True)
class _Decoders:
    """The record types of one layout, their msgspec decoders and where the columns sit."""

    layout: _Layout
    strict: msgspec.json.Decoder[Any]
    loose: msgspec.json.Decoder[Any]
    spans: tuple[_Span, ...]
    """Per model, where its numeric features sit among the holder's fields (`_field_index`)."""
    categorical_spans: tuple[_Span, ...]
    chunk_records: int
    digest: int | None = None
    """hash() of the key order the layout follows (two orders with one hash share a layout:
    only the speed of one of them suffers)."""


class _Layout:
    """The msgspec record types built from the configuration, and how to read their fields.

    A record decodes into an `Envelope` Struct whose attributes are short generated names
    (`m` model, `v` version, `t` time, `f` features object, `x<i>` configured features, `u<j>`
    unconfigured keys) renamed to the JSON keys. Two variants share these attribute names:

    - strict: a numeric feature is typed `float | None` and a categorical one `str | None`
      (any JSON scalar if two models give one name both kinds); the model, version and time
      fields take any JSON scalar; the features object is `Features | None`. msgspec checks
      the types while parsing (an int becomes a float), so columns of strict records need no
      type check, and no strict record holds an array or object built from the message.
    - loose: every field is `Any` except the features object. A message the strict type
      refuses (a wrong feature type, an out-of-range float literal, an array or object where
      a scalar belongs) is decoded again with it, the arrays and objects in its `Any` fields
      are replaced by one shared empty list or dict (`shed_containers`: a 1 MiB message of
      340,000 `[]` held 22 MB until its chunk was done, 465 MiB for a 16 MiB fetch), and the
      columns then classify the values one by one.

    Key order. msgspec finds the field of each key by comparing it with the fields from the
    one after the last match onwards, so a features object whose keys come in the Struct's
    field order costs one comparison a key, while keys in another order, and keys that are
    no field at all, cost a scan of the fields each: 56x slower at 2,200 features in reverse
    order, 8x with 220 of 2,200 keys configured (`bench/key_order.py`). `order` (the
    keys of the object that holds the features, in the order a producer sends them) lays the
    fields out in that order: configured names in `order` first, in its order, with its
    other keys (at most `unknown_cap`) as `msgspec.Raw` fields `u<j>` where they come (read
    by no column; a Raw costs less than a scan), then the configured names it lacks. The
    decoded values do not depend on the layout; only the speed does.
    """

    __slots__ = (
        "_feature_fields",
        "attrs",
        "features_depth",
        "fields_per_record",
        "loose_type",
        "order",
        "positions",
        "strict_attrs",
        "strict_type",
    )

    def __init__(
        self,
        fields: EventFields,
        keys: tuple[str, ...],
        kinds: dict[str, Any],
        order: tuple[str, ...] = (),
        unknown_cap: int = 0,
    ) -> None:
        self.attrs = _feature_attrs(kinds)
        self._feature_fields = tuple(self.attrs.values())
        self.strict_attrs = frozenset(
            self.attrs[name] for name, kind in kinds.items() if kind is not Any
        )
        self.features_depth = len(keys)
        self.order = order
        head = _head(fields)
        holder = _in_order(_holder_keys(fields, keys, kinds), order, unknown_cap)
        self.positions = {attr: i for i, (attr, _) in enumerate(holder)}
        self.fields_per_record = len(holder) + (0 if not keys else len(head) + len(keys))
        self.strict_type = self._envelope(keys, head, holder, kinds, "Strict")
        self.loose_type = self._envelope(keys, head, holder, dict.fromkeys(kinds, Any), "Loose")

    def _envelope(
        self,
        keys: tuple[str, ...],
        head: list[tuple[str, str]],
        holder: list[tuple[str, str]],
        kinds: dict[str, Any],
        prefix: str,
    ) -> type[msgspec.Struct]:
        """The Envelope Struct type whose feature fields have the given types."""
        scalar = Any if prefix == "Loose" else _SCALAR
        types = {
            attr: scalar if kinds[name] is Any else kinds[name] | None
            for name, attr in self.attrs.items()
        }
        types |= {"m": scalar, "v": scalar, "t": scalar}
        holder_fields = [(attr, types.get(attr, msgspec.Raw), None) for attr, _ in holder]
        holder_rename = dict(holder)
        if not keys:
            return msgspec.defstruct(
                f"{prefix}Envelope", holder_fields, rename=holder_rename, gc=False
            )
        inner: Any = msgspec.defstruct(
            f"{prefix}Features", holder_fields, rename=holder_rename, gc=False
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
            [*((attr, types[attr], None) for attr, _ in head), ("f", inner | None, None)],
            rename=dict(head) | {"f": keys[0]},
            gc=False,
        )

    def shed_containers(self, records: Sequence[Any]) -> None:
        """Replace each array or object value of the loose records' `Any` fields (model,
        version, time, configured features) by the shared `_SHED_ARRAY` / `_SHED_OBJECT`:
        classified the same (an array is an array), with no memory held per record."""
        head = ("m", "v", "t")
        for record in records:
            _shed(record, head)
        for holder in self.features(list(records)):
            if holder is not None:
                _shed(holder, self._feature_fields)

    def features(self, records: list[Any]) -> list[Any]:
        """The features object of each record (None when absent, null or not an object)."""
        if self.features_depth == 0:
            return records
        features: list[Any] = list(map(_FEATURES, records))
        for _ in range(self.features_depth - 1):
            features = [None if f is None else f.f for f in features]
        return features


_SCALAR: Final = str | int | float | bool | None
"""Any JSON scalar: what the strict type takes where the column code classifies the value."""
_SHED_ARRAY: Final[list[Any]] = []
_SHED_OBJECT: Final[dict[str, Any]] = {}


def _shed(holder: Any, attrs: Sequence[str]) -> None:
    """Replace the non-empty list and dict values of `attrs` on `holder` (a Struct whose
    fields default to None) by the shared empty ones (`_Layout.shed_containers`)."""
    for attr in attrs:
        value = getattr(holder, attr, None)
        if type(value) is list and value:
            setattr(holder, attr, _SHED_ARRAY)
        elif type(value) is dict and value:
            setattr(holder, attr, _SHED_OBJECT)


def _feature_attrs(kinds: dict[str, Any]) -> dict[str, str]:
    """The Struct attribute of each configured feature: `x<i>`, i its configured position."""
    return {name: f"x{i}" for i, name in enumerate(kinds)}


def _head(fields: EventFields) -> list[tuple[str, str]]:
    """(attribute, JSON key) of the envelope fields read besides the features."""
    head = [("m", fields.model_field)]
    if fields.model_version_field:
        head.append(("v", fields.model_version_field))
    if fields.timestamp_field is not None:
        head.append(("t", fields.timestamp_field))
    return head


def _holder_keys(
    fields: EventFields, keys: tuple[str, ...], kinds: dict[str, Any]
) -> list[tuple[str, str]]:
    """(attribute, JSON key) of the object that holds the features, in the configured order
    (the envelope fields first when the features are the record's own keys)."""
    named = [(attr, name) for name, attr in _feature_attrs(kinds).items()]
    return named if keys else _head(fields) + named


def _in_order(
    named: list[tuple[str, str]], order: tuple[str, ...], unknown_cap: int
) -> list[tuple[str, str]]:
    """(attribute, JSON key) pairs laid out by `order` (see `_Layout`): the pairs whose key is
    in `order` in its order, its other keys as `u<j>` (at most `unknown_cap`), then the rest."""
    by_key = {key: (attr, key) for attr, key in named}
    laid: list[tuple[str, str]] = []
    unknown = 0
    for key in dict.fromkeys(order):
        pair = by_key.pop(key, None)
        if pair is not None:
            laid.append(pair)
        elif unknown < unknown_cap:
            laid.append((f"u{unknown}", key))
            unknown += 1
    laid.extend(pair for pair in named if pair[1] in by_key)
    return laid


_MODEL: Final = attrgetter("m")
_VERSION: Final = attrgetter("v")
_TIME: Final = attrgetter("t")
_FEATURES: Final = attrgetter("f")


class BatchDecoder:
    """Decodes batches of Kafka messages into per-model columns (see the module docstring).

    The decoder's state is the configuration and at most `_LAYOUTS_KEPT` layouts of the record
    types with their msgspec decoders, each of at most the configured features plus
    `_UNKNOWN_FIELDS` + `_UNKNOWN_FIELDS_PER_FEATURE` per feature fields (`_follow_key_order`);
    `decode` keeps everything else in locals, so no input grows it beyond that.
    """

    __slots__ = (
        "_attrs",
        "_codes",
        "_columns",
        "_current",
        "_fields",
        "_generic",
        "_keys",
        "_kinds",
        "_known_keys",
        "_last_unknown",
        "_layouts",
        "_max_samples",
        "_preview",
        "_schemas",
        "_slice_records",
        "_unchecked_batches",
        "_unknown_cap",
    )

    def __init__(
        self,
        fields: EventFields,
        models: Sequence[ModelSchema],
        *,
        max_samples: int = 20,
        payload_preview: bool = False,
    ) -> None:
        """Validate the configuration; raise `ConfigError` naming the offending setting.

        `max_samples` bounds the rejects kept for the log per batch; `payload_preview` lets
        their detail text show payload bytes and refused values (off: types and sizes only).
        """
        if fields.max_message_bytes <= 0:
            raise ConfigError("kafka.max_message_bytes must be positive")
        if fields.max_array_elements <= 0:
            raise ConfigError("event.max_array_elements must be positive")
        if max_samples < 0:
            raise ConfigError("max_samples must not be negative")
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
        self._fields = fields
        self._keys = keys
        self._kinds = kinds
        self._schemas = tuple(models)
        self._codes = codes
        self._attrs = _feature_attrs(kinds)
        self._columns = tuple(
            (
                tuple(self._attrs[name] for name in schema.numeric),
                tuple(self._attrs[name] for name in schema.categorical),
            )
            for schema in models
        )
        self._max_samples = max_samples
        self._preview = payload_preview
        self._slice_records = max(64, _SLICE_VALUES // (len(kinds) + 4))
        self._known_keys = frozenset(kinds) if keys else frozenset(kinds).union(reserved)
        self._last_unknown = 0
        self._unchecked_batches = 0
        self._layouts: dict[int, _Decoders] = {}
        self._unknown_cap = _UNKNOWN_FIELDS + _UNKNOWN_FIELDS_PER_FEATURE * len(kinds)
        self._current = self._decoders_for(())
        # a producer that sends the configured order needs no other layout
        self._current.digest = hash(tuple(key for _, key in _holder_keys(fields, keys, kinds)))
        self._generic: msgspec.json.Decoder[Any] = msgspec.json.Decoder(float_hook=float)

    def _decoders_for(self, order: tuple[str, ...]) -> _Decoders:
        """The record types and decoders laid out for the key order `order` (`_Layout`)."""
        layout = _Layout(self._fields, self._keys, self._kinds, order, self._unknown_cap)
        strict, loose = layout.strict_type, layout.loose_type
        return _Decoders(
            layout=layout,
            strict=msgspec.json.Decoder(strict | list[strict]),  # type: ignore[valid-type]
            loose=msgspec.json.Decoder(
                loose | list[loose],  # type: ignore[valid-type]
                float_hook=float,
            ),
            spans=tuple(_field_index(numeric, layout.positions) for numeric, _ in self._columns),
            categorical_spans=tuple(
                _field_index(categorical, layout.positions) for _, categorical in self._columns
            ),
            chunk_records=max(64, _CHUNK_VALUES // (layout.fields_per_record + 1)),
        )

    def _follow_key_order(self, values: Sequence[Any]) -> None:
        """Lay the record types out in the key order of the batch's first JSON object
        (`_Layout`), looked at in every `_ORDER_CHECK_EVERY`-th batch and in the one after a
        change. Its unconfigured keys count only when the sample looked at before had the same
        ones (names that change from message to message would rebuild the types for nothing)
        and the model is wide enough (`_UNKNOWN_FROM_FEATURES`). The last `_LAYOUTS_KEPT`
        layouts are kept, so producers that alternate between a few orders do not rebuild
        them; the state stays bounded whatever comes."""
        if self._unchecked_batches > 0:
            self._unchecked_batches -= 1
            return
        self._unchecked_batches = _ORDER_CHECK_EVERY - 1
        max_bytes = self._fields.max_message_bytes
        sample = next(
            (
                v
                for v in values[:_ORDER_SAMPLES]
                if type(v) is bytes and v[:1] == b"{" and len(v) <= max_bytes
            ),
            None,
        )
        order = None if sample is None else _key_order(sample, self._keys)
        if order is None:
            return
        extra = order.keys() - self._known_keys  # in C; the keys' hashes are cached
        unknown = hash(frozenset(extra)) if extra else 0
        take_unknown = (
            unknown == self._last_unknown
            and len(self._kinds) >= _UNKNOWN_FROM_FEATURES
            and len(extra) <= self._unknown_cap  # all or none: a scan covers the fields taken
        )
        self._last_unknown = unknown
        if extra and not take_unknown:
            keys = tuple(key for key in order if key not in extra)
        else:
            keys = tuple(order)
        digest = hash(keys)
        if digest == self._current.digest:
            return
        self._unchecked_batches = 0  # after a change, look at the next batch too
        decoders = self._layouts.pop(digest, None)
        if decoders is None:
            decoders = self._decoders_for(keys)
            decoders.digest = digest
        self._layouts[digest] = decoders
        while len(self._layouts) > _LAYOUTS_KEPT:
            del self._layouts[next(iter(self._layouts))]
        self._current = decoders

    @property
    def fields(self) -> EventFields:
        """The event field configuration."""
        return self._fields

    @property
    def schemas(self) -> tuple[ModelSchema, ...]:
        """The configured models, in order."""
        return self._schemas

    def decode(
        self, messages: Sequence[RawMessage], account: BatchAccount | None = None
    ) -> DecodedBatch:
        """Decode one batch as a single slice. Never raises; every message and record is
        accounted for in `account` (a new one when None)."""
        account = BatchAccount(self._max_samples) if account is None else account
        batches = list(self._slices(messages, account, None))
        if not batches:
            return DecodedBatch({}, [], account)
        (batch,) = batches
        return batch

    def slices(
        self, messages: Sequence[RawMessage], account: BatchAccount
    ) -> Iterator[DecodedBatch]:
        """Decode one batch slice by slice, each with at most `_SLICE_VALUES` column values.

        Every slice shares `account`; apply a slice's columns before asking for the next one
        and the columns of only one slice are alive at a time. Never raises.
        """
        return self._slices(messages, account, self._slice_records)

    def _slices(
        self, messages: Sequence[RawMessage], account: BatchAccount, slice_records: int | None
    ) -> Iterator[DecodedBatch]:
        """The slices of a batch (one slice when `slice_records` is None)."""
        if not messages:
            return
        topics, message_partitions, _, timestamps_ms, raw_values, *_ = zip(*messages, strict=True)
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
        for topic, n in Counter(topics).items():
            account.consume(topic, n)

        self._follow_key_order(raw_values)
        rejector = _Rejector(messages, account, self._preview)
        values, bounds = self._bound_records(list(raw_values), rejector)
        rejector.flush()
        chunks = _plan(bounds, len(values), _CHUNK_MESSAGES, self._current.chunk_records)
        for group in _group(chunks, bounds, slice_records):
            state = _BatchState(topic_names, topic_codes, kafka_ts, len(self._schemas), rejector)
            for start, stop in group:
                self._decode_chunk(values[start:stop], start, state)
                rejector.flush()
            models: dict[str, ModelColumns] = {}
            for code, schema in enumerate(self._schemas):
                if state.parts[code]:
                    models[schema.name] = _join_parts(
                        schema.name, state.parts[code], partition_codes
                    )
            for code, n in enumerate(state.accepted.tolist()):
                account.decode(topic_names[code], n)
            yield DecodedBatch(models=models, partitions=partitions, account=account)

    def _bound_records(
        self, values: list[Any], rejector: _Rejector
    ) -> tuple[list[Any], list[int] | None]:
        """The values to parse and an upper bound of the records each can yield (None: all 1).

        A bytes value starting with `{` is at most one record; so is a value that is not bytes
        or is too large (it is rejected whole). Any other value is at most one record per `{`
        byte, and an array of more than `max_array_elements` elements is cut to its first
        `max_array_elements` (`_cap_array`).
        """
        if set(map(type, values)) <= {bytes} and all(map(bytes.startswith, values, repeat(b"{"))):
            return values, None
        max_bytes = self._fields.max_message_bytes
        cap = self._fields.max_array_elements
        bounds: list[int] = []
        for index, raw in enumerate(values):
            value = bytes(raw) if isinstance(raw, bytearray | memoryview) else raw
            if type(value) is not bytes or len(value) > max_bytes or value.startswith(b"{"):
                bounds.append(1)
                continue
            if value.count(b",") >= cap:
                value = self._cap_array(index, value, rejector)
            values[index] = value
            bounds.append(min(cap, value.count(b"{")))
        return values, bounds

    def _cap_array(self, index: int, value: bytes, rejector: _Rejector) -> bytes:
        """`value` with its top-level array cut to `max_array_elements` elements.

        The elements are delimited by one `list[msgspec.Raw]` pass (a small view object per
        element, no records); each element past the cap is one `too_large` record. A value
        that is not a JSON array is returned unchanged (the normal path rejects it).
        """
        cap = self._fields.max_array_elements
        try:
            elements = _RAW_ARRAY.decode(value)
        except _PARSE_ERRORS:
            return value
        total = len(elements)
        if total <= cap:
            return value
        kept = b"[" + b",".join(elements[:cap]) + b"]"
        del elements
        rejector.message(
            index, RejectReason.TOO_LARGE, _array_cap_detail, total, cap, n=total - cap
        )
        return kept

    def _decode_chunk(self, values: Sequence[Any], offset: int, state: _BatchState) -> None:
        """Decode messages `offset ..` of the batch into `state` (parts, counts, rejects)."""
        rejector = state.rejector
        current = self._current  # one layout for the whole chunk
        records, record_msg = self._records(values, offset, rejector)
        if not records:
            return
        checked = set(map(type, records)) <= {current.layout.strict_type}
        n = len(records)
        record_topic = state.topic_codes[record_msg]
        model_code = self._model_codes(records, state.topic_names, record_topic)
        features = current.layout.features(records)
        times = self._times(records, state.kafka_ts[record_msg])
        ok = model_code >= 0
        has_features: npt.NDArray[np.bool_] | None = None
        if type(None) in set(map(type, features)):
            has_features = np.array([f is not None for f in features], dtype=np.bool_)
            ok &= has_features
        ok &= ~np.isnan(times)
        if not ok.all():
            self._reject_records(
                rejector, records, record_msg, record_topic, model_code, has_features, ok, state
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
            checked_numeric = checked and self._current.layout.strict_attrs.issuperset(
                numeric_attrs
            )
            state.parts[code].append(
                _Part(
                    times=group_times,
                    numeric=_numeric_matrix(
                        group,
                        numeric_attrs,
                        checked=checked_numeric,
                        span=self._current.spans[code],
                    ),
                    categorical=_categorical_columns(
                        group, categorical_attrs, current.categorical_spans[code]
                    ),
                    model_version=(
                        _last_version(records, rows) if self._fields.model_version_field else ""
                    ),
                    messages=group_msg,
                )
            )

    def _reject_records(
        self,
        rejector: _Rejector,
        records: list[Any],
        record_msg: IntArray,
        record_topic: IntArray,
        model_code: IntArray,
        has_features: npt.NDArray[np.bool_] | None,
        ok: npt.NDArray[np.bool_],
        state: _BatchState,
    ) -> None:
        """Count the records of a chunk that failed a check, by (topic, first failing check).

        Counting is per reason and topic with numpy; Python work per record happens only for
        the few records that become log samples, and per message for the dead letters.
        """
        bad = np.flatnonzero(~ok)
        no_model = model_code[bad] < 0
        no_features = (
            np.zeros(bad.size, dtype=np.bool_) if has_features is None else ~has_features[bad]
        )
        reasons = np.where(no_model, 0, np.where(no_features, 1, 2))
        for code, reason in enumerate(_RECORD_REASONS):
            topics = record_topic[bad[reasons == code]]
            if topics.size:
                counts = np.bincount(topics, minlength=len(state.topic_names))
                for topic in np.flatnonzero(counts).tolist():
                    rejector.count(state.topic_names[topic], reason, int(counts[topic]))
        messages, first = np.unique(record_msg[bad], return_index=True)
        for message, code in zip(messages.tolist(), reasons[first].tolist(), strict=True):
            rejector.dead(message, _RECORD_REASONS[code])
        fields = self._fields
        # the first bad record of each (message, reason): one sample each (`_Rejector`)
        _, offers = np.unique(record_msg[bad] * len(_RECORD_REASONS) + reasons, return_index=True)
        for position in np.sort(offers)[: self._max_samples].tolist():
            i = int(bad[position])
            message = int(record_msg[i])
            if not rejector.wants_sample(message):
                break
            record = records[i]
            code = int(reasons[position])
            if code == 0:
                topic = state.topic_names[record_topic[i]]
                rejector.sample(
                    message, RejectReason.UNKNOWN_MODEL, _unknown_model_detail, record.m, topic
                )
            elif code == 1:
                rejector.sample(
                    message, RejectReason.NOT_AN_OBJECT, _features_detail, fields.features_path
                )
            else:
                raw = record.t if fields.timestamp_field is not None else None
                rejector.sample(
                    message,
                    RejectReason.BAD_TIMESTAMP,
                    _timestamp_detail,
                    raw,
                    fields.timestamp_field,
                )

    def _records(
        self, values: Sequence[Any], offset: int, rejector: _Rejector
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
        decode = self._current.strict.decode
        parsed: list[Any] = []  # per message: a Struct, a list of Structs, or a tuple (alone)
        for stop in [*odd, len(values)]:
            while len(parsed) < stop:
                try:
                    parsed.extend(map(decode, values[len(parsed) : stop]))
                except _PARSE_ERRORS:  # extend kept the messages before the failing one
                    index = len(parsed)
                    parsed.append(self._message_records(offset + index, values[index], rejector))
            if stop < len(values):
                parsed.append(self._message_records(offset + stop, values[stop], rejector))
        record_type = self._current.layout.strict_type
        if set(map(type, parsed)) <= {record_type}:
            return parsed, np.arange(offset, offset + len(parsed), dtype=np.int32)
        return _flatten(parsed, record_type, offset)

    def _message_records(self, index: int, value: Any, rejector: _Rejector) -> tuple[Any, ...]:
        """The records of one message, handled alone; rejects what cannot be a record."""
        if not isinstance(value, bytes | bytearray | memoryview):
            rejector.message(index, RejectReason.INVALID_JSON, _not_bytes_detail, value)
            return ()
        if len(value) > self._fields.max_message_bytes:
            max_bytes = self._fields.max_message_bytes
            rejector.message(index, RejectReason.TOO_LARGE, _too_large_detail, value, max_bytes)
            return ()
        if not _is_utf8(value):
            rejector.message(index, RejectReason.INVALID_JSON, _not_utf8_detail, value)
            return ()
        try:
            try:
                parsed = self._current.strict.decode(value)
                return tuple(parsed) if type(parsed) is list else (parsed,)
            except msgspec.ValidationError:
                try:  # a wrong feature type, a float literal out of range (1e999 -> inf), ...
                    parsed = self._current.loose.decode(value)
                except msgspec.ValidationError:  # not an object where one is needed
                    records = self._generic_records(index, self._generic.decode(value), rejector)
                else:
                    records = tuple(parsed) if type(parsed) is list else (parsed,)
        except _PARSE_ERRORS as exc:
            rejector.message(index, RejectReason.INVALID_JSON, _invalid_json_detail, exc, value)
            return ()
        self._current.layout.shed_containers(records)
        return records

    def _generic_records(self, index: int, parsed: Any, rejector: _Rejector) -> tuple[Any, ...]:
        """Records of a message that the typed decoders refused, from its generic JSON value.

        Elements that are not objects are counted together: one count per message.
        """
        if type(parsed) is dict:
            elements: list[Any] = [parsed]
        elif type(parsed) is list:
            elements = parsed
        else:
            rejector.message(index, RejectReason.NOT_AN_OBJECT, _top_level_detail, _kind(parsed))
            return ()
        records: list[Any] = []
        bad = 0
        first_bad = (0, "")
        for position, element in enumerate(elements):
            record = self._to_record(element) if type(element) is dict else None
            if record is None:
                if not bad:
                    first_bad = (position, _kind(element))
                bad += 1
            else:
                records.append(record)
        if bad:
            rejector.message(
                index, RejectReason.NOT_AN_OBJECT, _element_detail, *first_bad, bad, n=bad
            )
        return tuple(records)

    def _to_record(self, element: dict[str, Any]) -> Any:
        """An Envelope from a generic JSON object; a non-object features value becomes None."""
        record_type = self._current.layout.loose_type
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


_RECORD_REASONS: Final = (
    RejectReason.UNKNOWN_MODEL,
    RejectReason.NOT_AN_OBJECT,
    RejectReason.BAD_TIMESTAMP,
)
"""The record checks in order; index = the code `_reject_records` gives each failed record."""
_RAW_ARRAY: Final = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass(slots=True)
class _Part:
    """One chunk's columns of one model; `messages` holds each event's batch message index."""

    times: FloatArray
    numeric: FloatArray
    categorical: tuple[ObjectArray, ...]
    model_version: str
    messages: IntArray


class _BatchState:
    """What the chunks of one slice share and accumulate."""

    __slots__ = ("accepted", "kafka_ts", "parts", "rejector", "topic_codes", "topic_names")

    def __init__(
        self,
        topic_names: list[str],
        topic_codes: IntArray,
        kafka_ts: FloatArray,
        models: int,
        rejector: _Rejector,
    ) -> None:
        self.topic_names = topic_names
        self.topic_codes = topic_codes
        self.kafka_ts = kafka_ts
        self.rejector = rejector
        self.accepted = np.zeros(len(topic_names), dtype=np.int64)
        self.parts: list[list[_Part]] = [[] for _ in range(models)]


def _join_parts(model: str, parts: list[_Part], partition_codes: IntArray) -> ModelColumns:
    """One model's columns for the whole slice from its per-chunk parts, in batch order."""
    if len(parts) == 1:
        (part,) = parts
        return ModelColumns(
            model=model,
            times=part.times,
            numeric=part.numeric,
            categorical=part.categorical,
            model_version=part.model_version,
            sources=partition_codes[part.messages],
            messages=part.messages,
        )
    versions = [p.model_version for p in parts if p.model_version]
    messages = np.concatenate([p.messages for p in parts])
    return ModelColumns(
        model=model,
        times=np.concatenate([p.times for p in parts]),
        numeric=np.concatenate([p.numeric for p in parts], axis=1),
        categorical=tuple(
            np.concatenate(columns) for columns in zip(*(p.categorical for p in parts), strict=True)
        ),
        model_version=versions[-1] if versions else "",
        sources=partition_codes[messages],
        messages=messages,
    )


class _Rejector:
    """Counts the rejections of one batch into its account, in message order.

    Counts go to the account at once. Dead letters (first reason per message) and sample
    candidates wait until `flush()` (after each chunk), which hands them over sorted by
    message, so both follow message order although a chunk finds whole-message rejects
    before record rejects. A candidate keeps its `describe(preview, *args)` call unmade: the
    text is built only for the samples kept. A message offers one sample per reason (one
    message of 20,000 array records took 14 of a batch's 20 samples, hiding other reasons).
    """

    __slots__ = ("account", "dead_letters", "messages", "offered", "pending", "preview")

    def __init__(
        self, messages: Sequence[RawMessage], account: BatchAccount, preview: bool
    ) -> None:
        self.messages = messages
        self.account = account
        self.preview = preview
        self.dead_letters: dict[int, RejectReason] = {}
        self.pending: list[tuple[int, RejectReason, Describe, tuple[object, ...]]] = []
        self.offered: set[tuple[int, RejectReason]] = set()

    def count(self, topic: str, reason: RejectReason, n: int) -> None:
        """Count `n` rejected records of `topic`."""
        self.account.reject(topic, reason, n)

    def dead(self, index: int, reason: RejectReason) -> None:
        """Mark message `index` for the dead-letter topic (its first reason is kept)."""
        self.dead_letters.setdefault(index, reason)

    def wants_sample(self, index: int) -> bool:
        """Whether a reject of message `index` could still become one of the first samples."""
        room = self.account.max_samples - len(self.account.samples)
        if len(self.pending) < room:
            return True
        return room > 0 and index < max(entry[0] for entry in self.pending)

    def sample(self, index: int, reason: RejectReason, describe: Describe, *args: object) -> None:
        """Offer one reject of message `index` as a log sample (once per reason)."""
        if (index, reason) not in self.offered and self.wants_sample(index):
            self.offered.add((index, reason))
            self.pending.append((index, reason, describe, args))

    def message(
        self,
        index: int,
        reason: RejectReason,
        describe: Describe,
        *args: object,
        n: int = 1,
    ) -> None:
        """Count `n` rejected records of message `index`: counts, dead letter, sample."""
        self.count(self.messages[index].topic, reason, n)
        self.dead(index, reason)
        self.sample(index, reason, describe, *args)

    def flush(self) -> None:
        """Hand the dead letters and the first samples found so far to the account."""
        for index in sorted(self.dead_letters):
            self.account.dead_letter(self.messages[index], self.dead_letters[index])
        self.dead_letters.clear()
        room = self.account.max_samples - len(self.account.samples)
        for index, reason, describe, args in sorted(self.pending, key=itemgetter(0))[:room]:
            detail = describe(self.preview, *args)
            self.account.sample(self.messages[index], reason, detail)
        self.pending.clear()


def _plan(
    bounds: list[int] | None, n: int, max_messages: int, max_records: int
) -> list[tuple[int, int]]:
    """Chunks (start, stop) of at most `max_messages` messages and, unless one message alone
    exceeds it, at most `max_records` bounded records."""
    if bounds is None:
        step = min(max_messages, max_records)
        return [(start, min(n, start + step)) for start in range(0, n, step)]
    chunks: list[tuple[int, int]] = []
    start = 0
    total = 0
    for index, bound in enumerate(bounds):
        if index > start and (index - start >= max_messages or total + bound > max_records):
            chunks.append((start, index))
            start, total = index, 0
        total += bound
    if start < n:
        chunks.append((start, n))
    return chunks


def _group(
    chunks: list[tuple[int, int]], bounds: list[int] | None, max_records: int | None
) -> list[list[tuple[int, int]]]:
    """Consecutive chunks grouped into slices of at most `max_records` bounded records
    (a chunk over the limit is a slice alone); one slice when `max_records` is None."""
    if max_records is None or not chunks:
        return [chunks] if chunks else []
    groups: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    total = 0
    for start, stop in chunks:
        size = stop - start if bounds is None else sum(bounds[start:stop])
        if current and total + size > max_records:
            groups.append(current)
            current, total = [], 0
        current.append((start, stop))
        total += size
    groups.append(current)
    return groups


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


def _field_index(attrs: tuple[str, ...], positions: dict[str, int]) -> _Span:
    """Where `attrs` (two or more) sit among the fields of the Struct that holds the features:
    one slice when they are consecutive, else their positions (None for fewer than two)."""
    if len(attrs) < 2:
        return None
    where = [positions[attr] for attr in attrs]
    if where == list(range(where[0], where[0] + len(where))):
        return slice(where[0], where[-1] + 1)
    return tuple(where)


def _numeric_matrix(
    features: list[Any], attrs: tuple[str, ...], *, checked: bool, span: _Span = None
) -> FloatArray:
    """float64 [len(attrs), len(features)] from feature Structs: NaN = missing, +inf = invalid.

    Fast path, when `checked` (msgspec validated every value as a float, an int or null while
    parsing): one `np.fromiter` over the chained rows (null -> NaN), with no list of rows in
    between (at 200 features 6 instead of 11 us per event). When not checked but every value
    is a float, an int or null: one `np.array` of the rows. The rows come from
    `_feature_rows`. Otherwise (or with an int beyond the float range) each column goes
    through `numeric_column`.
    """
    if len(attrs) >= 2 and features:
        matrix: FloatArray | None = None
        if checked:  # one pass, no list of rows: np.fromiter reads the values as they come
            with suppress(OverflowError):  # an int beyond the float range: column by column
                matrix = np.fromiter(
                    chain.from_iterable(_feature_rows(features, attrs, span)),
                    dtype=np.float64,
                    count=len(attrs) * len(features),
                ).reshape(len(features), len(attrs))
        else:
            rows = list(_feature_rows(features, attrs, span))
            if set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES:
                with suppress(OverflowError):
                    matrix = np.array(rows, dtype=np.float64)
        if matrix is not None:
            out: FloatArray = np.ascontiguousarray(matrix.T)
            out[out == -math.inf] = math.inf
            return out
    out = np.empty((len(attrs), len(features)), dtype=np.float64)
    for row, attr in enumerate(attrs):
        out[row] = numeric_column(list(map(attrgetter(attr), features)))
    return out


def _feature_rows(
    features: list[Any], attrs: tuple[str, ...], span: _Span
) -> Iterator[tuple[Any, ...]]:
    """The values of `attrs` (two or more) of each feature Struct, one tuple per Struct: a cut
    of `msgspec.structs.astuple` when the attributes are consecutive fields (`span`), else
    one `attrgetter` of every name."""
    if span is not None:
        return map(_getter(span), map(astuple, features))
    return map(attrgetter(*attrs), features)


def _getter(span: slice | tuple[int, ...]) -> itemgetter[Any]:
    """The items of a tuple at `span`, as one tuple."""
    return itemgetter(span) if type(span) is slice else itemgetter(*span)


def _categorical_columns(
    features: list[Any], attrs: tuple[str, ...], span: _Span
) -> tuple[ObjectArray, ...]:
    """One `categorical_column` per attribute of the feature Structs.

    When the attributes are consecutive fields (`span`), the columns come from one
    `astuple` pass, and when every value of the batch takes `categorical_column`'s fast path
    (checked once over all of them), from one object matrix built and transposed in C: the
    columns are its rows (at 200 categorical features, 94 events a chunk: 23 -> 10 us per
    event). Otherwise each column goes through `categorical_column`, transposed by `zip`.
    """
    if span is not None and len(attrs) >= 2 and features:
        rows = list(map(_getter(span), map(astuple, features)))
        if _clean_categories(chain.from_iterable(rows)):
            matrix: ObjectArray = np.empty((len(rows), len(attrs)), dtype=object)
            matrix[:] = rows
            return tuple(np.ascontiguousarray(matrix.T))
        return tuple(categorical_column(list(column)) for column in zip(*rows, strict=True))
    return tuple(categorical_column(list(map(attrgetter(attr), features))) for attr in attrs)


def _clean_categories(values: Iterable[Any]) -> bool:
    """Whether every value is a string or null, none longer than `MAX_CATEGORY_CHARS` and
    none starting with NUL (`categorical_column`'s fast path), checked on the distinct
    values only (a value of another type equals no string and not None, so one of its kind
    stays among them; an unhashable one is not a category either)."""
    try:
        distinct = set(values)
    except TypeError:
        return False
    if not set(map(type, distinct)) <= _STRING_TYPES:
        return False
    longest = max(map(len, filter(None, distinct)), default=0)
    return longest <= MAX_CATEGORY_CHARS and not _any_nul_prefixed(distinct)


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
    """object [len(values)]: the string, None = missing, INVALID_CATEGORY = wrong type, a
    string starting with NUL or longer than `MAX_CATEGORY_CHARS`.

    Fast path: all values are strings or null, none longer than `MAX_CATEGORY_CHARS` and none
    starting with NUL (checked on the distinct values only: no NUL anywhere in them joined,
    else none starting with it).
    """
    column: ObjectArray = np.empty(len(values), dtype=object)
    if _clean_categories(values):
        column[:] = values
    else:
        column[:] = [_category_value(v) for v in values]
    return column


def _any_nul_prefixed(distinct: set[str | None]) -> bool:
    """Whether a string of `distinct` starts with NUL (a join in C first: usually none has
    a NUL at all)."""
    strings = list(filter(None, distinct))  # not None (nor "", which cannot start with NUL)
    return "\x00" in "".join(strings) and any(s.startswith("\x00") for s in strings)


def _category_value(value: object) -> str | None:
    """One decoded JSON value as a categorical feature value (slow path)."""
    if isinstance(value, str):
        invalid = value.startswith("\x00") or len(value) > MAX_CATEGORY_CHARS
        return INVALID_CATEGORY if invalid else value
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


def _not_utf8_detail(preview: bool, value: bytes | bytearray | memoryview) -> str:
    """A value that is not UTF-8: its size (and a preview when allowed)."""
    return f"not UTF-8; {_size(preview, value)}"


def _not_bytes_detail(preview: bool, value: object) -> str:
    """A message whose value is not bytes (e.g. a tombstone)."""
    if value is None:
        return "value is null (a tombstone)"
    return f"value is {type(value).__name__}, not bytes"


def _too_large_detail(preview: bool, value: bytes | bytearray | memoryview, max_bytes: int) -> str:
    """Size of a message over the limit."""
    return f"{len(value)} bytes > kafka.max_message_bytes {max_bytes}; not parsed"


def _array_cap_detail(preview: bool, total: int, cap: int) -> str:
    """An array over the element cap."""
    return (
        f"array of {total} elements > event.max_array_elements {cap}; "
        f"the {total - cap} elements after the first {cap} are not read"
    )


def _invalid_json_detail(
    preview: bool, error: Exception, value: bytes | bytearray | memoryview
) -> str:
    """The parser's complaint (msgspec names a byte position, never content) and the size."""
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, UnicodeError):
        complaint = str(error)[:_PREVIEW_CHARS]
    else:
        complaint = type(error).__name__
    return f"{complaint}; {_size(preview, value)}"


def _top_level_detail(preview: bool, kind: str) -> str:
    """A message whose top level is not an object or array."""
    return f"top-level {kind}"


def _element_detail(preview: bool, position: int, kind: str, count: int) -> str:
    """The array elements that are not objects: the first one's position and type, and how many."""
    more = f" ({count} elements are not objects)" if count > 1 else ""
    return f"array element {position} is {kind}{more}"


def _features_detail(preview: bool, path: str) -> str:
    """A record whose features object is missing (the path is configuration, not content)."""
    return f"features at {path!r} absent, null or not an object"


def _unknown_model_detail(preview: bool, name: object, topic: str) -> str:
    """Which model name (type and length unless previews are on) was refused on which topic."""
    return f"model {_value(preview, name)} is not configured for topic {topic!r}"


def _timestamp_detail(preview: bool, raw: object, ts_field: str | None) -> str:
    """Why an event time was refused, for a log sample."""
    if raw is None:
        where = "no Kafka timestamp" if ts_field is None else f"{ts_field!r} absent or null"
        return f"{where}, or Kafka timestamp unusable"
    return f"{ts_field!r}={_value(preview, raw)} is not epoch seconds in (0, 1.6e10) nor RFC 3339"


def _value(preview: bool, value: object) -> str:
    """A refused JSON value: escaped and cut when previews are on, else its type and size."""
    if preview:
        return _short(value)
    if value is None:
        return "<absent or null>"
    if isinstance(value, str | list | dict):
        return f"<{_kind(value)} of length {len(value)}>"
    return f"<{_kind(value)}>"


def _size(preview: bool, value: bytes | bytearray | memoryview) -> str:
    """The size of a message value, with an escaped preview when allowed."""
    return f"value={_preview(value)}" if preview else f"{len(value)} bytes"


def _short(value: object) -> str:
    """A bounded, escaped rendering of a small JSON value (payload previews only)."""
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
