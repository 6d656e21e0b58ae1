"""Unit tests of monitor.decode: Kafka message bytes -> per-model columns, with every record
accounted for (accepted once, or rejected once with the right topic and reason)."""

from __future__ import annotations

import gc
import json
import math
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import decode as decode_module
from monitor.account import BatchAccount
from monitor.decode import (
    INVALID_CATEGORY,
    BatchDecoder,
    DecodedBatch,
    EventFields,
    ModelSchema,
    epoch_seconds,
    parse_rfc3339,
)
from monitor.errors import ConfigError, RejectReason
from monitor.model import RawMessage

TS = 1_764_180_000.25  # 2025-11-26T18:00:00.25Z
KAFKA_MS = 1_764_190_000_000
FRAUD = ModelSchema("fraud", ("amount", "age"), ("country",))
CHURN = ModelSchema("churn", ("tenure",), ("plan", "region"))


def msg(
    value: Any,
    *,
    topic: str = "features",
    partition: int = 0,
    offset: int = 0,
    kafka_ms: int | None = KAFKA_MS,
) -> RawMessage:
    """A RawMessage whose value is `value` as-is if bytes, else its compact JSON."""
    raw: Any = value if isinstance(value, bytes) or value is None else dumps(value)
    return RawMessage(topic, partition, offset, kafka_ms, raw)


def dumps(value: Any) -> bytes:
    """Strict JSON (no NaN/Infinity literals), as a conforming producer sends it."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


DEFAULT_FEATURES: Any = object()


def event(features: Any = DEFAULT_FEATURES, **head: Any) -> dict[str, Any]:
    """A fraud event; `head` overrides or adds top-level keys (value `...` removes one)."""
    if features is DEFAULT_FEATURES:
        features = {"amount": 12.5, "age": 40, "country": "GB"}
    record: dict[str, Any] = {
        "ts": TS,
        "model": "fraud",
        "model_version": "v7",
        "features": features,
    }
    record.update(head)
    return {k: v for k, v in record.items() if v is not ...}


def decoder(
    fields: EventFields | None = None, models: Sequence[ModelSchema] = (FRAUD,), **kw: Any
) -> BatchDecoder:
    """A decoder with the default event fields and the fraud model unless told otherwise."""
    return BatchDecoder(fields or EventFields(), models, **kw)


def records_in(batch: DecodedBatch) -> int:
    """Accepted plus rejected records of a batch."""
    return batch.total_accepted + batch.total_rejected


def only_reject(batch: DecodedBatch) -> tuple[str, RejectReason]:
    """The single (topic, reason) key of a batch that rejected exactly one record."""
    assert batch.total_rejected == 1, batch.rejected
    assert batch.total_accepted == 0
    (key,) = batch.rejected
    return key


# -- accepted events become columns ------------------------------------------------------


def test_valid_event_becomes_columns() -> None:
    """One valid object yields one event with its time, values, version and source."""
    batch = decoder().decode([msg(event(), partition=3, offset=41)])
    cols = batch.models["fraud"]
    assert len(cols) == 1
    np.testing.assert_array_equal(cols.times, [TS])
    assert cols.numeric.dtype == np.float64
    assert cols.numeric.shape == (2, 1)
    np.testing.assert_array_equal(cols.numeric, [[12.5], [40.0]])
    assert cols.categorical[0].dtype == object
    assert cols.categorical[0].tolist() == ["GB"]
    assert cols.model_version == "v7"
    assert cols.sources.dtype == np.int32
    assert batch.partitions[cols.sources[0]] == ("features", 3)
    assert batch.consumed == {"features": 1}
    assert batch.accepted == {"features": 1}
    assert batch.rejected == {}
    assert batch.samples == [] and batch.rejected_messages == []


def test_empty_batch() -> None:
    """An empty batch produces an empty result."""
    batch = decoder().decode([])
    assert batch.models == {} and batch.consumed == {} and records_in(batch) == 0


def test_columns_keep_batch_order_over_many_messages() -> None:
    """Events appear in message order; numeric rows are contiguous float64."""
    messages = [msg(event({"amount": float(i), "age": i, "country": f"c{i}"})) for i in range(50)]
    cols = decoder().decode(messages).models["fraud"]
    np.testing.assert_array_equal(cols.numeric[0], np.arange(50.0))
    assert cols.numeric.flags.c_contiguous
    assert cols.categorical[0].tolist() == [f"c{i}" for i in range(50)]


def test_array_message_holds_several_events() -> None:
    """A JSON array of objects is several events from one message."""
    batch = decoder().decode([msg([event(), event(), event()])])
    assert len(batch.models["fraud"]) == 3
    assert batch.consumed == {"features": 1}
    assert batch.accepted == {"features": 3}


def test_empty_array_holds_no_record() -> None:
    """An empty array is consumed but holds no record to accept or reject."""
    batch = decoder().decode([msg([])])
    assert batch.consumed == {"features": 1}
    assert records_in(batch) == 0
    assert batch.models == {}


def test_array_of_mixed_validity_uses_the_valid_elements() -> None:
    """Bad elements are rejected one by one; the valid ones in the same array are used."""
    elements = [
        event({"amount": 1.0}),
        3,
        "text",
        None,
        event(model="nope"),
        event(ts="yesterday"),
        event(features=[1, 2]),
        event({"amount": 2.0}),
    ]
    batch = decoder().decode([msg(elements, topic="t1")])
    cols = batch.models["fraud"]
    np.testing.assert_array_equal(cols.numeric[0], [1.0, 2.0])
    assert batch.accepted == {"t1": 2}
    assert batch.rejected == {
        ("t1", RejectReason.NOT_AN_OBJECT): 4,
        ("t1", RejectReason.UNKNOWN_MODEL): 1,
        ("t1", RejectReason.BAD_TIMESTAMP): 1,
    }
    assert batch.rejected_messages == [msg(elements, topic="t1")]


# -- reject reasons -------------------------------------------------------------------------

REJECTS = [
    pytest.param(b"{not json", RejectReason.INVALID_JSON, id="malformed"),
    pytest.param(b"", RejectReason.INVALID_JSON, id="empty"),
    pytest.param(b'{"ts": 1', RejectReason.INVALID_JSON, id="truncated"),
    pytest.param(b"\xff\xfe{}", RejectReason.INVALID_JSON, id="not-utf8"),
    pytest.param(b'{"a": "\xc3\x28"}', RejectReason.INVALID_JSON, id="bad-utf8-in-string"),
    pytest.param(b"{} {}", RejectReason.INVALID_JSON, id="trailing-data"),
    pytest.param(b'{"features": {"amount": NaN}}', RejectReason.INVALID_JSON, id="NaN-literal"),
    pytest.param(b'{"features": {"amount": Infinity}}', RejectReason.INVALID_JSON, id="Infinity"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, RejectReason.INVALID_JSON, id="too-deep"),
    pytest.param(
        b'{"model":"fraud","ts":1,"features":{"amount":1' + b"0" * 5000 + b"}}",
        RejectReason.INVALID_JSON,
        id="5000-digit-int",
    ),
    pytest.param(b'{"zzz": "\xc3\x28"}', RejectReason.INVALID_JSON, id="bad-utf8-in-unknown-field"),
    pytest.param(b'{"\xc3\x28": 1}', RejectReason.INVALID_JSON, id="bad-utf8-in-key"),
    pytest.param(None, RejectReason.INVALID_JSON, id="tombstone"),
    pytest.param(b"42", RejectReason.NOT_AN_OBJECT, id="top-level-number"),
    pytest.param(b'"str"', RejectReason.NOT_AN_OBJECT, id="top-level-string"),
    pytest.param(b"null", RejectReason.NOT_AN_OBJECT, id="top-level-null"),
    pytest.param(b"[1]", RejectReason.NOT_AN_OBJECT, id="array-of-scalar"),
    pytest.param(b"[[]]", RejectReason.NOT_AN_OBJECT, id="array-of-array"),
    pytest.param(dumps(event(features=...)), RejectReason.NOT_AN_OBJECT, id="no-features"),
    pytest.param(dumps(event(features=None)), RejectReason.NOT_AN_OBJECT, id="null-features"),
    pytest.param(dumps(event(features="a=1")), RejectReason.NOT_AN_OBJECT, id="string-features"),
    pytest.param(dumps(event(features=[{}])), RejectReason.NOT_AN_OBJECT, id="array-features"),
    pytest.param(dumps(event(model="other")), RejectReason.UNKNOWN_MODEL, id="other-model"),
    pytest.param(dumps(event(model=...)), RejectReason.UNKNOWN_MODEL, id="no-model"),
    pytest.param(dumps(event(model=7)), RejectReason.UNKNOWN_MODEL, id="numeric-model"),
    pytest.param(dumps(event(model=["fraud"])), RejectReason.UNKNOWN_MODEL, id="array-model"),
    pytest.param(dumps(event(model="FRAUD")), RejectReason.UNKNOWN_MODEL, id="case-differs"),
    pytest.param(dumps(event(ts=...)), RejectReason.BAD_TIMESTAMP, id="no-ts"),
    pytest.param(dumps(event(ts=None)), RejectReason.BAD_TIMESTAMP, id="null-ts"),
    pytest.param(dumps(event(ts=True)), RejectReason.BAD_TIMESTAMP, id="bool-ts"),
    pytest.param(dumps(event(ts={})), RejectReason.BAD_TIMESTAMP, id="object-ts"),
    pytest.param(
        b'{"ts":1e999,"model":"fraud","features":{}}', RejectReason.BAD_TIMESTAMP, id="inf-ts"
    ),
]


@pytest.mark.parametrize(("value", "reason"), REJECTS)
def test_each_reject_reason_counts_once_under_its_topic(
    value: bytes | None, reason: RejectReason
) -> None:
    """Each kind of unusable record is one reject with the right reason and topic."""
    message = msg(value, topic="orders", partition=2, offset=9)
    batch = decoder().decode([message])
    assert only_reject(batch) == ("orders", reason)
    assert batch.consumed == {"orders": 1}
    assert batch.models == {}
    assert batch.rejected_messages == [message]
    [(topic, sample_reason, detail)] = batch.samples
    assert (topic, sample_reason) == ("orders", reason)
    assert detail.startswith("partition=2 offset=9: ")
    assert len(detail) <= 200


def test_too_large_message_is_rejected() -> None:
    """A value above max_message_bytes is one too_large reject; a value at the limit is used."""
    value = dumps(event())
    exact = decoder(EventFields(max_message_bytes=len(value)))
    assert exact.decode([msg(value)]).accepted == {"features": 1}
    small = decoder(EventFields(max_message_bytes=len(value) - 1))
    batch = small.decode([msg(value, topic="big")])
    assert only_reject(batch) == ("big", RejectReason.TOO_LARGE)
    assert f"{len(value)} bytes" in batch.samples[0][2]


class _SpyDecoder:
    """Wraps a msgspec decoder and records the size of every value it is asked to parse."""

    def __init__(self, inner: msgspec.json.Decoder[Any], sizes: list[int]) -> None:
        self.inner = inner
        self.sizes = sizes

    def decode(self, value: bytes) -> Any:
        """Record the size, then parse."""
        self.sizes.append(len(value))
        return self.inner.decode(value)


def test_ten_megabyte_message_is_never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10 MB value is rejected as too_large without reaching any JSON parser."""
    dec = decoder()
    dec.decode([msg(event(), topic="a")])  # the layout of this key order, learned
    sizes: list[int] = []
    for slot in ("strict", "loose"):
        setattr(dec._current, slot, _SpyDecoder(getattr(dec._current, slot), sizes))
    dec._generic = _SpyDecoder(dec._generic, sizes)  # type: ignore[assignment]
    monkeypatch.setattr(decode_module, "_KEYED", _SpyDecoder(decode_module._KEYED, sizes))
    huge = b'{"features": {"amount": 1.0}, "pad": "' + b"x" * 10_000_000 + b'"}'
    batch = dec.decode([msg(huge, topic="a"), msg(event(), topic="a")])
    assert batch.rejected == {("a", RejectReason.TOO_LARGE): 1}
    assert batch.accepted == {"a": 1}
    assert sizes and max(sizes) < 1000
    assert len(batch.samples[0][2]) <= 200


def test_nan_and_infinity_literals_reject_the_whole_message() -> None:
    """msgspec parses strict RFC 8259 JSON: a NaN literal makes the message invalid_json."""
    body = b'[{"ts":1.0,"model":"fraud","features":{"amount":NaN}},{"ts":1.0}]'
    batch = decoder().decode([msg(body)])
    assert batch.rejected == {("features", RejectReason.INVALID_JSON): 1}
    assert batch.total_accepted == 0


def test_reject_checks_run_in_order_model_features_timestamp() -> None:
    """A record failing several checks is counted once, under the first failing check."""
    dec = decoder()
    all_bad = event(model="nope", features="x", ts="bad")
    assert only_reject(dec.decode([msg(all_bad)]))[1] is RejectReason.UNKNOWN_MODEL
    two_bad = event(features="x", ts="bad")
    assert only_reject(dec.decode([msg(two_bad)]))[1] is RejectReason.NOT_AN_OBJECT


def test_samples_are_bounded_escaped_and_short() -> None:
    """At most max_samples samples; with previews on they are escaped and never show a tail."""
    secret = b"\x01\x02not json " + b"." * 100 + b"password=hunter2"
    dec = decoder(max_samples=3, payload_preview=True)
    batch = dec.decode([msg(secret, offset=i) for i in range(10)])
    assert batch.rejected == {("features", RejectReason.INVALID_JSON): 10}
    assert len(batch.samples) == 3
    for _, _, detail in batch.samples:
        assert len(detail) <= 200
        assert "hunter2" not in detail
        assert "\\x01\\x02not json" in detail
        assert detail.isprintable()
    assert [d.split(":")[0] for _, _, d in batch.samples] == [
        f"partition=0 offset={i}" for i in range(3)
    ]


def test_one_message_offers_one_sample_per_reason() -> None:
    """An array message of 30 unknown-model records takes one sample, so the next messages'
    reasons are sampled too (it took 14 of 20 samples, hiding the others)."""
    flood = dumps([event(model="nope")] * 30)
    batch = decoder(max_samples=5).decode(
        [
            msg(flood, offset=0),
            msg(b"not json", offset=1),
            msg(dumps(event(features="x")), offset=2),
        ]
    )
    assert batch.rejected[("features", RejectReason.UNKNOWN_MODEL)] == 30
    assert [(d.split(":")[0], reason) for _, reason, d in batch.samples] == [
        ("partition=0 offset=0", RejectReason.UNKNOWN_MODEL),
        ("partition=0 offset=1", RejectReason.INVALID_JSON),
        ("partition=0 offset=2", RejectReason.NOT_AN_OBJECT),
    ]


def test_samples_hold_no_payload_content_by_default() -> None:
    """Without payload_preview a sample names sizes and JSON types, never bytes or values."""
    markers = ("123-45-6789", "alice.smith@example.com", "4111-1111-1111-1111")
    values = [
        b'{"features": {"ssn": "123-45-6789"} not json',
        dumps(event(model="alice.smith@example.com")),
        dumps(event(ts="john.doe 4111-1111-1111-1111")),
        b"\xff alice.smith@example.com",
        dumps([event(), "123-45-6789"]),
        dumps("123-45-6789"),
    ]
    batch = decoder().decode([msg(v, offset=i) for i, v in enumerate(values)])
    assert len(batch.samples) == len(values)
    text = " ".join(detail for _, _, detail in batch.samples)
    assert not [m for m in markers if m in text], text
    assert "<string of length 23>" in text and "bytes" in text
    preview = decoder(payload_preview=True).decode([msg(values[1])])
    assert "alice.smith@example.com" in preview.samples[0][2]


def test_long_unknown_model_name_is_cut_in_the_sample() -> None:
    """An unknown model name is shown escaped and cut (previews on), so the detail stays short."""
    batch = decoder(payload_preview=True).decode([msg(event(model="m\n" + "z" * 500))])
    detail = batch.samples[0][2]
    assert "'m\\nzzz" in detail and len(detail) <= 200


def test_dead_letters_hold_each_bad_message_once_without_a_cap() -> None:
    """A message with two bad records is one dead letter; every bad message is listed."""
    two_bad = msg([1, 2, event()], offset=0)
    others = [msg(b"x", offset=i) for i in range(1, 1_500)]
    batch = decoder().decode([two_bad, msg(event()), *others])
    assert batch.rejected == {
        ("features", RejectReason.NOT_AN_OBJECT): 2,
        ("features", RejectReason.INVALID_JSON): 1_499,
    }
    assert batch.rejected_messages == [two_bad, *others]
    reasons = [reason for _, reason in batch.account.dead_letters.values()]
    assert reasons[:2] == [RejectReason.NOT_AN_OBJECT, RejectReason.INVALID_JSON]


# -- missing and invalid feature values -------------------------------------------------


def test_null_and_absent_features_are_missing() -> None:
    """null and absent keys are NaN (numeric) and None (categorical)."""
    batch = decoder().decode(
        [msg(event({"amount": None, "country": None})), msg(event({"unexpected": 1}))]
    )
    cols = batch.models["fraud"]
    assert np.isnan(cols.numeric).all()
    assert cols.categorical[0].tolist() == [None, None]
    assert batch.total_accepted == 2


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'"1.5"', id="numeric-string"),
        pytest.param(b"true", id="true"),
        pytest.param(b"false", id="false"),
        pytest.param(b"{}", id="object"),
        pytest.param(b"[1.0]", id="array"),
        pytest.param(b"1e999", id="overflow"),
        pytest.param(b"-1e999", id="negative-overflow"),
        pytest.param(b"1" + b"0" * 400, id="huge-int"),
        pytest.param(b"-1" + b"0" * 400, id="huge-negative-int"),
    ],
)
def test_wrong_numeric_value_is_invalid_and_the_rest_is_kept(raw: bytes) -> None:
    """A numeric feature of the wrong type or out of range is +inf; other features survive."""
    body = b'{"ts":1.5,"model":"fraud","features":{"amount":' + raw + b',"age":3,"country":"GB"}}'
    batch = decoder().decode([msg(body), msg(event())])
    cols = batch.models["fraud"]
    assert cols.numeric[0].tolist() == [math.inf, 12.5]
    assert cols.numeric[1].tolist() == [3.0, 40.0]
    assert cols.categorical[0].tolist() == ["GB", "GB"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, INVALID_CATEGORY),
        (1.5, INVALID_CATEGORY),
        ({}, INVALID_CATEGORY),
        (["GB"], INVALID_CATEGORY),
        ("\x00GB", INVALID_CATEGORY),
        (INVALID_CATEGORY, INVALID_CATEGORY),
        (True, "true"),
        (False, "false"),
        ("", ""),
        ("Ünïcode ✓", "Ünïcode ✓"),
        ("x" * 256, "x" * 256),
        ("x" * 257, INVALID_CATEGORY),
        ("é" * 257, INVALID_CATEGORY),
        ("\x00" + "x" * 300, INVALID_CATEGORY),
    ],
)
def test_categorical_value_classification(value: Any, expected: str) -> None:
    """Categorical values: strings kept, bools spelled, other types, NUL-prefixed strings and
    strings over 256 characters invalid."""
    batch = decoder().decode([msg(event({"country": value, "amount": 1.0})), msg(event())])
    cols = batch.models["fraud"]
    assert cols.categorical[0].tolist() == [expected, "GB"]
    assert cols.numeric[0].tolist() == [1.0, 12.5]


def test_integers_and_floats_become_float64() -> None:
    """JSON integers (any size within float range) and floats become float64 values."""
    values = [0, -3, 2**64 + 1, 10**300, 1.5e-320, -0.0, 1.7976931348623157e308]
    batch = decoder().decode([msg(event({"amount": v})) for v in values])
    assert batch.models["fraud"].numeric[0].tolist() == [float(v) for v in values]


# -- timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp()),
        ("2026-11-26T10:00:00.25Z", datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp() + 0.25),
        ("2026-11-26T11:30:00+01:30", datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp()),
        ("2026-11-26T05:00:00-05:00", datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp()),
        ("2026-11-26t10:00:00z", datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp()),
        ("2026-11-26 10:00:00+00:00", datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp()),
        (
            "2026-11-26T10:00:00.123456789Z",
            datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC).timestamp(),
        ),
        ("1970-01-01T00:00:01Z", 1.0),
    ],
)
def test_rfc3339_timestamps_are_accepted(text: str, expected: float) -> None:
    """RFC 3339 strings with fractions, offsets, lowercase and space separators are parsed."""
    assert parse_rfc3339(text) == pytest.approx(expected, abs=1e-6)
    cols = decoder().decode([msg(event(ts=text))]).models["fraud"]
    assert cols.times[0] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26",
        "2026-11-26T10:00:00",
        "2026-11-26T10:00Z",
        "2026-11-26T10:00:00+0530",
        "2026-W48-4T10:00:00Z",
        "20261126T100000Z",
        "2026-11-26T23:59:60Z",
        "2026-02-30T10:00:00Z",
        "2026-11-26T10:00:00+24:00",
        "0000-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2600-01-01T00:00:00Z",
        "٢٠٢٦-11-26T10:00:00Z",
        " 2026-11-26T10:00:00Z",
        "2026-11-26T10:00:00Z\n",
        "1764180000",
        "",
        "yesterday",
    ],
)
def test_bad_timestamp_strings_are_rejected(text: str) -> None:
    """Anything but a full RFC 3339 date-time with offset, in range, is bad_timestamp."""
    assert epoch_seconds(text) is None
    assert only_reject(decoder().decode([msg(event(ts=text))]))[1] is RejectReason.BAD_TIMESTAMP


@pytest.mark.parametrize(
    ("ts", "ok"),
    [
        (1, True),
        (1.5e10, True),
        (TS, True),
        (1_764_180_000, True),
        (0, False),
        (0.0, False),
        (-1.0, False),
        (1.6e10, False),
        (1_764_180_000_000, False),
        (10**400, False),
        (True, False),
        (False, False),
    ],
)
def test_numeric_timestamp_range(ts: Any, ok: bool) -> None:
    """Numbers must be epoch seconds in (0, 1.6e10); milliseconds and bools are refused."""
    batch = decoder().decode([msg(event(ts=ts))])
    if ok:
        assert batch.models["fraud"].times.tolist() == [float(ts)]
    else:
        assert only_reject(batch)[1] is RejectReason.BAD_TIMESTAMP


def test_timestamp_field_none_always_uses_kafka_time() -> None:
    """With timestamp_field=None the Kafka record time is used, even if the event has a ts."""
    dec = decoder(EventFields(timestamp_field=None))
    batch = dec.decode([msg(event(ts=5.0), kafka_ms=1_500), msg(event(ts=...), kafka_ms=2_000)])
    assert batch.models["fraud"].times.tolist() == [1.5, 2.0]


@pytest.mark.parametrize("kafka_ms", [None, -1, 0, 16_000_000_000_000])
def test_unusable_kafka_time_is_bad_timestamp(kafka_ms: int | None) -> None:
    """A missing, negative, zero or far-future Kafka timestamp cannot stand in for event time."""
    dec = decoder(EventFields(timestamp_field=None))
    batch = dec.decode([msg(event(), kafka_ms=kafka_ms)])
    assert only_reject(batch)[1] is RejectReason.BAD_TIMESTAMP


def test_fallback_to_kafka_time_only_when_the_field_is_absent_or_null() -> None:
    """With the fallback on, absent/null ts uses Kafka time; a present ts wins; bad ts is bad."""
    dec = decoder(EventFields(timestamp_fallback_to_kafka=True))
    batch = dec.decode(
        [
            msg(event(ts=...), kafka_ms=1_000),
            msg(event(ts=None), kafka_ms=2_000),
            msg(event(ts=7.0), kafka_ms=3_000),
            msg(event(ts="nope"), kafka_ms=4_000),
            msg(event(ts=...), kafka_ms=None),
        ]
    )
    assert batch.models["fraud"].times.tolist() == [1.0, 2.0, 7.0]
    assert batch.rejected == {("features", RejectReason.BAD_TIMESTAMP): 2}


# -- model routing ------------------------------------------------------------------------


def test_events_are_routed_to_their_model() -> None:
    """Each model gets its own columns with its own features, in batch order."""
    churn = {"ts": TS, "model": "churn", "features": {"tenure": 3, "plan": "pro", "region": "eu"}}
    batch = decoder(models=[FRAUD, CHURN]).decode(
        [msg(event({"amount": 1.0})), msg(churn), msg(event({"amount": 2.0}))]
    )
    assert batch.models["fraud"].numeric[0].tolist() == [1.0, 2.0]
    assert batch.models["churn"].numeric.tolist() == [[3.0]]
    assert [c.tolist() for c in batch.models["churn"].categorical] == [["pro"], ["eu"]]
    assert batch.models["churn"].sources.tolist() == [0]


def test_model_topic_restriction() -> None:
    """A model restricted to some topics is unknown_model on any other topic."""
    restricted = ModelSchema("fraud", ("amount",), (), topics=frozenset({"payments"}))
    dec = decoder(models=[restricted, CHURN])
    batch = dec.decode(
        [
            msg(event(), topic="payments"),
            msg(event(), topic="clicks"),
            msg({"ts": TS, "model": "churn", "features": {}}, topic="clicks"),
        ]
    )
    assert len(batch.models["fraud"]) == 1
    assert len(batch.models["churn"]) == 1
    assert batch.rejected == {("clicks", RejectReason.UNKNOWN_MODEL): 1}
    assert batch.accepted == {"payments": 1, "clicks": 1}
    assert "'clicks'" in batch.samples[0][2]


def test_default_model_is_used_when_the_model_field_is_absent_or_null() -> None:
    """default_model routes records without a model; a non-string model is still unknown."""
    dec = decoder(EventFields(default_model="fraud"))
    batch = dec.decode(
        [msg(event(model=...)), msg(event(model=None)), msg(event(model=1)), msg(event())]
    )
    assert len(batch.models["fraud"]) == 3
    assert batch.rejected == {("features", RejectReason.UNKNOWN_MODEL): 1}


def test_model_version_is_the_last_non_empty_one() -> None:
    """model_version is the last non-empty string (or integer) of the model's accepted events."""
    dec = decoder()
    versions = [msg(event(model_version=v)) for v in ("v1", "v2", "", None)]
    assert dec.decode(versions).models["fraud"].model_version == "v2"
    assert dec.decode([msg(event(model_version=7))]).models["fraud"].model_version == "7"
    assert dec.decode([msg(event(model_version=...))]).models["fraud"].model_version == ""
    assert (
        len(dec.decode([msg(event(model_version="x" * 500))]).models["fraud"].model_version) == 128
    )
    rejected_later = [msg(event(model_version="v1")), msg(event(model_version="v9", ts=None))]
    assert dec.decode(rejected_later).models["fraud"].model_version == "v1"
    no_field = decoder(EventFields(model_version_field=""))
    assert no_field.decode([msg(event())]).models["fraud"].model_version == ""


# -- layouts ------------------------------------------------------------------------------


def test_flat_layout_reads_features_from_top_level_keys() -> None:
    """features_path "" reads features from the record itself."""
    dec = decoder(EventFields(features_path=""))
    flat = {"ts": TS, "model": "fraud", "amount": 3.0, "country": "FR", "other": "x"}
    batch = dec.decode([msg(flat)])
    cols = batch.models["fraud"]
    assert cols.numeric[:, 0].tolist()[0] == 3.0 and math.isnan(cols.numeric[1, 0])
    assert cols.categorical[0].tolist() == ["FR"]


def test_flat_layout_refuses_features_named_like_event_fields() -> None:
    """In the flat layout a feature named like the ts/model/version field is a config error."""
    with pytest.raises(ConfigError, match="ts"):
        decoder(EventFields(features_path=""), [ModelSchema("m", ("ts",), ())])
    decoder(EventFields(), [ModelSchema("m", ("ts",), ())])  # fine when nested


def test_dotted_features_path() -> None:
    """A dotted features_path follows nested objects; a missing step is not_an_object."""
    dec = decoder(EventFields(features_path="payload.features"))
    good = {"ts": TS, "model": "fraud", "payload": {"features": {"amount": 4.0}}}
    bad = {"ts": TS, "model": "fraud", "payload": 5}
    missing = {"ts": TS, "model": "fraud", "payload": {}}
    batch = dec.decode([msg(good), msg(bad), msg(missing)])
    assert batch.models["fraud"].numeric[0].tolist() == [4.0]
    assert batch.rejected == {("features", RejectReason.NOT_AN_OBJECT): 2}


def test_feature_names_need_not_be_identifiers() -> None:
    """Feature names with spaces, dots, keywords or odd characters are read as configured."""
    names = ("a b", "class", "x.y", "ünï", "")
    dec = decoder(models=[ModelSchema("fraud", names, ("m",))])
    features = {"a b": 1, "class": 2, "x.y": 3, "ünï": 4, "": 5, "m": "q"}
    cols = dec.decode([msg(event(features))]).models["fraud"]
    assert cols.numeric[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert cols.categorical[0].tolist() == ["q"]


def test_a_name_numeric_in_one_model_and_categorical_in_another() -> None:
    """One feature name can be numeric for one model and categorical for another."""
    a = ModelSchema("fraud", ("x",), ())
    b = ModelSchema("churn", (), ("x",))
    dec = decoder(models=[a, b])
    batch = dec.decode(
        [
            msg({"ts": 1.0, "model": "fraud", "features": {"x": 2}}),
            msg({"ts": 1.0, "model": "churn", "features": {"x": "two"}}),
            msg({"ts": 1.0, "model": "fraud", "features": {"x": "two"}}),
        ]
    )
    assert batch.models["fraud"].numeric[0].tolist() == [2.0, math.inf]
    assert batch.models["churn"].categorical[0].tolist() == ["two"]


@pytest.mark.parametrize(
    ("fields", "models", "match"),
    [
        (EventFields(), [FRAUD, FRAUD], "twice"),
        (EventFields(), [ModelSchema("m", ("a",), ("a",))], "repeated"),
        (EventFields(default_model="nope"), [FRAUD], "default_model"),
        (EventFields(features_path="a..b"), [FRAUD], "features_path"),
        (EventFields(model_field="ts"), [FRAUD], "must differ"),
        (EventFields(max_message_bytes=0), [FRAUD], "max_message_bytes"),
    ],
)
def test_bad_configuration_is_refused(
    fields: EventFields, models: list[ModelSchema], match: str
) -> None:
    """Impossible configurations raise ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=match):
        BatchDecoder(fields, models)


def test_no_models_rejects_everything_as_unknown_model() -> None:
    """With no model configured every record is unknown_model."""
    batch = BatchDecoder(EventFields(), []).decode([msg(event()), msg([event(), event()])])
    assert batch.rejected == {("features", RejectReason.UNKNOWN_MODEL): 3}


# -- sources ------------------------------------------------------------------------------


def test_sources_map_each_event_to_its_topic_and_partition() -> None:
    """partitions[sources[i]] is the (topic, partition) of the message event i came from."""
    layout = [("a", 0), ("b", 2), ("a", 1), ("a", 0), ("b", 2), ("b", 0)]
    messages = []
    expected = []
    for i, (topic, partition) in enumerate(layout):
        count = 1 + i % 3
        messages.append(
            msg([event({"amount": float(i)})] * count, topic=topic, partition=partition)
        )
        expected += [(topic, partition)] * count
    messages.insert(2, msg(b"bad", topic="c", partition=9))
    batch = decoder().decode(messages)
    cols = batch.models["fraud"]
    assert [batch.partitions[s] for s in cols.sources.tolist()] == expected
    assert len(set(batch.partitions)) == len(batch.partitions)
    assert ("c", 9) in batch.partitions


def test_sources_with_one_topic_and_several_partitions() -> None:
    """The single-topic shortcut still numbers partitions in order of first appearance."""
    parts = [5, 1, 5, 3, 1]
    batch = decoder().decode([msg(event(), partition=p) for p in parts])
    assert batch.partitions == [("features", 5), ("features", 1), ("features", 3)]
    cols = batch.models["fraud"]
    assert [batch.partitions[s][1] for s in cols.sources.tolist()] == parts


def test_a_batch_larger_than_one_chunk_is_joined_in_order() -> None:
    """Batches spanning several internal chunks keep order, sources, counts and versions."""
    messages = []
    for i in range(2_600):
        topic, partition = ("a", i % 3) if i % 2 else ("b", 7)
        if i % 97 == 0:
            body: Any = b"broken"
        elif i % 5 == 0:
            body = {"ts": TS, "model": "churn", "features": {"tenure": i, "plan": f"p{i}"}}
        else:
            body = event({"amount": float(i), "age": -i}, model_version=f"v{i}")
        messages.append(msg(body, topic=topic, partition=partition, offset=i))
    batch = decoder(models=[FRAUD, CHURN]).decode(messages)
    fraud = [i for i in range(2_600) if i % 97 and i % 5]
    churn = [i for i in range(2_600) if i % 97 and not i % 5]
    assert batch.models["fraud"].numeric[0].tolist() == [float(i) for i in fraud]
    assert batch.models["fraud"].numeric[1].tolist() == [-float(i) for i in fraud]
    assert batch.models["fraud"].model_version == f"v{fraud[-1]}"
    assert batch.models["churn"].numeric[0].tolist() == [float(i) for i in churn]
    assert batch.models["churn"].categorical[0].tolist() == [f"p{i}" for i in churn]
    assert batch.models["churn"].model_version == ""
    where = [batch.partitions[s] for s in batch.models["fraud"].sources.tolist()]
    assert where == [("a", i % 3) if i % 2 else ("b", 7) for i in fraud]
    bad = len(range(0, 2_600, 97))
    assert batch.total_rejected == bad
    assert batch.total_accepted == 2_600 - bad
    assert batch.consumed == {"a": 1_300, "b": 1_300}
    assert batch.rejected_messages == [messages[i] for i in range(0, 2_600, 97)]


# -- no growth on unexpected names -----------------------------------------------------------


def _unknown_names_batch(prefix: str) -> list[RawMessage]:
    """100 messages, each with 100 distinct unexpected feature names (10,000 in all)."""
    return [
        msg(event({f"{prefix}{m}_{k}": k for k in range(100)} | {"amount": 1.0}), offset=m)
        for m in range(100)
    ]


def test_ten_thousand_unknown_feature_names_grow_nothing() -> None:
    """Decoding 10,000 distinct unexpected names leaves the decoder's state unchanged."""
    dec = decoder()
    dec.decode(_unknown_names_batch("warm"))
    tracked = set(type(dec).__slots__) - {"_last_unknown", "_unchecked_batches"}
    before = {slot: getattr(dec, slot) for slot in tracked}
    layouts_before = dict(dec._layouts)
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.take_snapshot()
        batch = dec.decode(_unknown_names_batch("new"))
        assert len(batch.models["fraud"]) == 100
        del batch
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(baseline, "filename"))
    assert growth < 64 * 1024, growth  # the 10,000 names alone would take > 500 kB
    assert {slot: getattr(dec, slot) for slot in tracked} == before
    assert dec._layouts == layouts_before


# -- memory bounds on hostile input ----------------------------------------------------------


def test_array_over_the_element_cap_keeps_the_first_elements_and_counts_the_rest() -> None:
    """An array of 8 events under a cap of 5: 5 accepted, 3 too_large, one dead letter."""
    dec = decoder(EventFields(max_array_elements=5))
    elements = [event({"amount": float(i)}) for i in range(8)]
    message = msg(elements, topic="t")
    batch = dec.decode([message, msg(elements[:5], topic="t")])
    np.testing.assert_array_equal(batch.models["fraud"].numeric[0], [0, 1, 2, 3, 4] * 2)
    assert batch.accepted == {"t": 10}
    assert batch.rejected == {("t", RejectReason.TOO_LARGE): 3}
    assert batch.rejected_messages == [message]
    assert "array of 8 elements > event.max_array_elements 5" in batch.samples[0][2]


def test_hostile_array_is_counted_without_building_its_records() -> None:
    """A 349,000-element `[{},...]` message decodes with a small peak of Python memory."""
    value = b"[" + b",".join([b"{}"] * 349_000) + b"]"
    dec = decoder()
    gc.collect()
    tracemalloc.start()
    try:
        batch = dec.decode([msg(value, topic="t")])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert batch.rejected == {
        ("t", RejectReason.UNKNOWN_MODEL): 10_000,
        ("t", RejectReason.TOO_LARGE): 339_000,
    }
    assert len(batch.rejected_messages) == 1 and len(batch.samples) == 2  # one per reason
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # 349k records: > 100 MiB


@pytest.mark.parametrize("field", ["model", "ts", "model_version", "amount", "country"])
def test_arrays_where_scalars_belong_are_classified_without_holding_them(field: str) -> None:
    """8 messages with 100,000 `[]` in one scalar field: same verdicts as a small array, and
    no record keeps its list (8 kept would be > 50 MiB of Python memory)."""
    hostile = "[" + ",".join(["[]"] * 100_000) + "]"
    marker = "9" * 12  # replaced by the hostile array in the encoded message
    if field in ("amount", "country"):
        features = {"amount": 12.5, "age": 40, "country": "GB", field: marker}
        record = event(features)
    else:
        record = event(**{field: marker})
    value = dumps(record).replace(f'"{marker}"'.encode(), hostile.encode())
    small = dumps(record).replace(f'"{marker}"'.encode(), b"[[]]")
    dec = decoder()
    expected = dec.decode([msg(small, topic="t")])
    gc.collect()
    tracemalloc.start()
    try:
        batch = dec.decode([msg(value, topic="t", offset=i) for i in range(8)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert batch.rejected == {key: 8 * n for key, n in expected.rejected.items()}
    assert batch.accepted == {t: 8 * n for t, n in expected.accepted.items()}
    if "fraud" in expected.models:
        np.testing.assert_array_equal(
            batch.models["fraud"].numeric, np.repeat(expected.models["fraud"].numeric, 8, axis=1)
        )
        assert list(batch.models["fraud"].categorical[0]) == 8 * list(
            expected.models["fraud"].categorical[0]
        )
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_slices_bound_the_columns_alive_at_once() -> None:
    """`slices` cuts a batch of arrays into slices of bounded records, counting everything."""
    dec = decoder()
    limit = dec._slice_records
    per_message = 1_000
    n_messages = 3 * limit // per_message
    value = dumps([event({"amount": 1.0})] * per_message)
    messages = [msg(value, topic="t", offset=i) for i in range(n_messages)]
    account = BatchAccount()
    sizes = [len(part.models["fraud"]) for part in dec.slices(messages, account)]
    assert len(sizes) >= 3 and max(sizes) <= limit
    assert sum(sizes) == n_messages * per_message == account.decoded["t"]
    assert account.consumed == {"t": n_messages} and account.rejected == {}


def test_a_tombstone_sample_names_it_and_nothing_else() -> None:
    """A null value is one invalid_json reject described as a tombstone."""
    batch = decoder().decode([msg(None, topic="t")])
    assert batch.rejected == {("t", RejectReason.INVALID_JSON): 1}
    assert batch.samples[0][2].endswith("value is null (a tombstone)")


# -- properties -----------------------------------------------------------------------------

_GENERIC = msgspec.json.Decoder(float_hook=float)


def _expected_records(value: bytes | None, max_bytes: int) -> int:
    """How many records a message holds, independently of BatchDecoder."""
    if value is None or len(value) > max_bytes:
        return 1
    try:
        parsed = _GENERIC.decode(value)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return 1
    return len(parsed) if isinstance(parsed, list) else 1


def _assert_conserved(batch: DecodedBatch, messages: list[RawMessage], max_bytes: int) -> None:
    """consumed counts messages; accepted + rejected counts records; columns hold accepted."""
    per_topic: dict[str, int] = {}
    for m in messages:
        per_topic[m.topic] = per_topic.get(m.topic, 0) + 1
    assert batch.consumed == per_topic
    assert records_in(batch) == sum(_expected_records(m.value, max_bytes) for m in messages)
    assert sum(len(c) for c in batch.models.values()) == batch.total_accepted
    for topic in list(batch.accepted) + [t for t, _ in batch.rejected]:
        assert topic in per_topic
    for cols in batch.models.values():
        n = len(cols)
        assert cols.numeric.shape[1] == n and cols.sources.shape == (n,)
        assert all(c.shape == (n,) for c in cols.categorical)
        assert ((cols.times > 0) & (cols.times < 1.6e10)).all()
        assert (cols.sources >= 0).all() and (cols.sources < len(batch.partitions)).all()
        assert not np.isneginf(cols.numeric).any()
    assert len(batch.samples) <= 20
    assert all(len(d) <= 200 for _, _, d in batch.samples)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["ts", "model", "features", "amount", "x"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)
topics = st.sampled_from(["a", "b"])


_TOKENS = [
    b"{", b"}", b"[", b"]", b":", b",", b'"', b" ", b"\\", b"0", b"1.5", b"-", b"e999", b"null",
    b"true", b"NaN", b'"ts"', b'"model"', b'"fraud"', b'"features"', b'"amount"', b'"country"',
    b"\xc3", b"\xc3\xa9", b"\x00", b"\\u0000", b"\\ud800",
]  # fmt: skip
json_ish_bytes = st.lists(st.sampled_from(_TOKENS), max_size=30).map(b"".join)


def _insert(item: tuple[Any, int, bytes]) -> bytes:
    """Valid JSON of a value with one token inserted at some position (a local defect)."""
    value, position, token = item
    text = dumps(value)
    cut = position % (len(text) + 1)
    return text[:cut] + token + text[cut:]


_EVENTS = st.fixed_dictionaries(
    {
        "ts": st.just(TS),
        "model": st.just("fraud"),
        "features": st.fixed_dictionaries({"amount": st.just(1.5), "country": st.just("GB")}),
    },
    optional={"zzz": st.just("unused")},
)
corrupted_json = st.tuples(
    st.one_of(_EVENTS, st.lists(_EVENTS, max_size=2)),
    st.integers(min_value=0),
    st.sampled_from(_TOKENS),
).map(_insert)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            topics,
            st.integers(0, 3),
            st.one_of(st.none(), st.binary(max_size=200), json_ish_bytes, corrupted_json),
        ),
        max_size=12,
    )
)
def test_arbitrary_bytes_never_raise_and_conserve_counts(
    items: list[tuple[str, int, bytes | None]],
) -> None:
    """Any bytes (or no value) decode without raising and every record is accounted for."""
    messages = [msg(v, topic=t, partition=p, offset=i) for i, (t, p, v) in enumerate(items)]
    fields = EventFields(max_message_bytes=160)
    _assert_conserved(decoder(fields).decode(messages), messages, 160)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(topics, json_values), max_size=10))
def test_arbitrary_json_values_never_raise_and_conserve_counts(
    items: list[tuple[str, Any]],
) -> None:
    """Any JSON value as a message decodes without raising and conserves record counts."""
    messages = [msg(dumps(v), topic=t, offset=i) for i, (t, v) in enumerate(items)]
    dec = decoder(EventFields(default_model="fraud", timestamp_fallback_to_kafka=True))
    _assert_conserved(dec.decode(messages), messages, 1_048_576)


# Reference semantics of one record, written independently of the decoder.

_ABSENT = object()
_GOOD_TIMES = {
    "2026-11-26T10:00:00Z": datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp(),
    "2026-11-26T10:00:00.5+02:00": datetime(2026, 11, 26, 8, tzinfo=UTC).timestamp() + 0.5,
}
_BAD_TIMES = ["2026-11-26", "soon", "2026-11-26T10:00:00"]


def _oracle_numeric(value: Any) -> float:
    """Reference numeric value: NaN missing, +inf invalid, else the float."""
    if value is _ABSENT or value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.inf
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _oracle_category(value: Any) -> str | None:
    """Reference categorical value: None missing, INVALID_CATEGORY invalid, else the string."""
    if value is _ABSENT or value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return INVALID_CATEGORY if value.startswith("\x00") else value
    return INVALID_CATEGORY


def _oracle(record: Any, topic: str, kafka_ms: int | None) -> RejectReason | tuple[Any, ...]:
    """Expected outcome of one record under `ORACLE_FIELDS` and `ORACLE_MODELS`."""
    if not isinstance(record, dict):
        return RejectReason.NOT_AN_OBJECT
    name = record.get("model")
    if name is None:
        name = "fraud"
    models = {m.name: m for m in ORACLE_MODELS}
    schema = models.get(name) if isinstance(name, str) else None
    if schema is None or (schema.topics is not None and topic not in schema.topics):
        return RejectReason.UNKNOWN_MODEL
    features = record.get("features")
    if not isinstance(features, dict):
        return RejectReason.NOT_AN_OBJECT
    raw = record.get("ts")
    if raw is None:
        ts = kafka_ms / 1000 if kafka_ms is not None and kafka_ms > 0 else None
    elif isinstance(raw, bool):
        ts = None
    elif isinstance(raw, int | float):
        ts = float(raw) if 0 < raw < 1.6e10 else None
    elif isinstance(raw, str):
        ts = _GOOD_TIMES.get(raw)
    else:
        ts = None
    if ts is None:
        return RejectReason.BAD_TIMESTAMP
    return (
        schema.name,
        ts,
        [_oracle_numeric(features.get(n, _ABSENT)) for n in schema.numeric],
        [_oracle_category(features.get(n, _ABSENT)) for n in schema.categorical],
    )


ORACLE_MODELS = (
    ModelSchema("fraud", ("amount", "age"), ("country",)),
    ModelSchema("churn", ("amount",), ("plan",), topics=frozenset({"b"})),
)
ORACLE_FIELDS = EventFields(default_model="fraud", timestamp_fallback_to_kafka=True)

feature_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**320), max_value=10**320),
    st.sampled_from([None, True, False, "x", "GB", "\x00x", "1.5", [], {}, [1.0], {"a": 1}]),
)
record_dicts: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["fraud", "churn", "other", None, 3, ""]),
        "ts": st.one_of(
            st.floats(min_value=-10.0, max_value=2e10, allow_nan=False),
            st.integers(min_value=-5, max_value=2 * 10**10),
            st.sampled_from([None, True, [], *list(_GOOD_TIMES), *_BAD_TIMES]),
        ),
        "features": st.one_of(
            st.dictionaries(
                st.sampled_from(["amount", "age", "country", "plan", "zzz"]),
                feature_values,
                max_size=5,
            ),
            st.sampled_from([None, 1, "f", []]),
        ),
    },
)
message_bodies = st.one_of(
    record_dicts,
    st.lists(st.one_of(record_dicts, st.integers(0, 9)), max_size=4),
    st.integers(0, 9),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(topics, st.one_of(st.none(), st.integers(-5, 3 * 10**12)), message_bodies),
        max_size=12,
    )
)
def test_decoder_matches_reference_semantics(
    items: list[tuple[str, int | None, Any]],
) -> None:
    """Every record's outcome (reason, or model, time and column values) matches a reference.

    Batches mix clean messages (the fast path) with odd ones (the per-message slow path).
    """
    messages = [
        msg(dumps(body), topic=t, kafka_ms=k, offset=i) for i, (t, k, body) in enumerate(items)
    ]
    expected_rejects: dict[tuple[str, RejectReason], int] = {}
    expected_rows: dict[str, list[tuple[Any, ...]]] = {m.name: [] for m in ORACLE_MODELS}
    for topic, kafka_ms, body in items:
        for record in body if isinstance(body, list) else [body]:
            outcome = _oracle(record, topic, kafka_ms)
            if isinstance(outcome, RejectReason):
                key = (topic, outcome)
                expected_rejects[key] = expected_rejects.get(key, 0) + 1
            else:
                expected_rows[outcome[0]].append((topic, *outcome[1:]))
    for chunk in (1024, 3):  # one chunk, and many small chunks joined
        with mock.patch.object(decode_module, "_CHUNK_MESSAGES", chunk):
            batch = BatchDecoder(ORACLE_FIELDS, ORACLE_MODELS).decode(messages)
        assert batch.rejected == expected_rejects
        for name, rows in expected_rows.items():
            if not rows:
                assert name not in batch.models
                continue
            cols = batch.models[name]
            topics_seen = [batch.partitions[s][0] for s in cols.sources.tolist()]
            assert topics_seen == [r[0] for r in rows]
            np.testing.assert_array_equal(cols.times, [r[1] for r in rows])
            np.testing.assert_array_equal(cols.numeric, np.array([r[2] for r in rows]).T)
            for j, column in enumerate(cols.categorical):
                assert column.tolist() == [r[3][j] for r in rows]
