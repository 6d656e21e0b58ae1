"""The decoder follows the producer's key order: the same columns in any order, bounded state.

msgspec matches each key of an object against a Struct's fields from the one after the last
match onwards, so `BatchDecoder` lays its record types out in the key order of each batch's
first JSON object (`decode._Layout`). The layout may change only the speed, never a value:
every test here compares a learning decoder with one that keeps the configured order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import decode as decode_module
from monitor.decode import BatchDecoder, DecodedBatch, EventFields, ModelSchema
from monitor.model import RawMessage

TS = 1_764_180_000.25
NUMERIC = tuple(f"n{i:02d}" for i in range(60))  # 64 with CATEGORICAL: unknown keys join
CATEGORICAL = tuple(f"c{i}" for i in range(4))
MODELS = (
    ModelSchema("wide", NUMERIC, CATEGORICAL),
    ModelSchema("narrow", NUMERIC[:3], CATEGORICAL[:1]),
)


class _ConfiguredOrder(BatchDecoder):
    """The oracle: a decoder that never changes its layout (the configured key order)."""

    __slots__ = ()

    def _follow_key_order(self, values: Sequence[Any]) -> None:
        return


def _pair(fields: EventFields) -> tuple[BatchDecoder, BatchDecoder]:
    return BatchDecoder(fields, MODELS), _ConfiguredOrder(fields, MODELS)


def _value(rng: random.Random, name: str) -> Any:
    """Mostly the configured kind; sometimes null, a wrong type, an object or a huge int."""
    roll = rng.random()
    if roll < 0.05:
        return None
    if roll < 0.08:
        return rng.choice(["1.5", True, [1], {"a": 1}, 10**400, "\u0000x"])
    if name.startswith("n"):
        return rng.choice([rng.gauss(0.0, 1.0), rng.randrange(-5, 5)])
    return rng.choice(["a", "b", "é", ""])


def _features(rng: random.Random, order: Sequence[str], unknown: Sequence[str]) -> dict[str, Any]:
    """The configured names in `order`, some left out, with unknown keys in between."""
    keys = [k for k in order if rng.random() > 0.05]
    for name in unknown:
        keys.insert(rng.randrange(len(keys) + 1), name)
    return {k: _value(rng, k) if k in order else {"deep": [1, 2]} for k in keys}


def _message(fields: EventFields, features: dict[str, Any], model: str, offset: int) -> bytes:
    head = {"ts": TS + offset, "model": model, "model_version": f"v{offset % 3}"}
    if fields.features_path == "":
        record = dict(head)
        for key, value in features.items():
            record[key] = value
        items = list(record.items())
        random.Random(offset).shuffle(items)  # the head keys anywhere among the features
        return json.dumps(dict(items)).encode()
    record = head | {"x": 1}
    inner: Any = features
    for key in reversed(fields.features_path.split(".")[1:]):
        inner = {key: inner}
    record[fields.features_path.split(".")[0]] = inner
    return json.dumps(record).encode()


def _batch(
    rng: random.Random, fields: EventFields, order: Sequence[str], unknown: Sequence[str], n: int
) -> list[RawMessage]:
    out = []
    for i in range(n):
        model = "wide" if rng.random() < 0.8 else "narrow"
        value = _message(fields, _features(rng, order, unknown), model, i)
        if rng.random() < 0.05:
            value = b"[" + value + b"," + value + b"]"  # an array of two records
        if rng.random() < 0.03:
            value = value[:-3]  # invalid JSON
        out.append(RawMessage("t", 0, i, 1_764_190_000_000, value))
    return out


def _assert_same(got: DecodedBatch, want: DecodedBatch) -> None:
    assert list(got.models) == list(want.models)
    for name, g in got.models.items():
        w = want.models[name]
        np.testing.assert_array_equal(g.times, w.times)
        np.testing.assert_array_equal(g.numeric, w.numeric)
        assert [c.tolist() for c in g.categorical] == [c.tolist() for c in w.categorical]
        assert g.model_version == w.model_version
        np.testing.assert_array_equal(g.sources, w.sources)
        np.testing.assert_array_equal(g.messages, w.messages)
    assert got.accepted == want.accepted
    assert got.rejected == want.rejected
    assert got.samples == want.samples
    assert got.partitions == want.partitions


PATHS = ["features", "a.b", ""]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), path=st.sampled_from(PATHS), unknowns=st.integers(0, 30))
def test_any_key_order_decodes_exactly_as_the_configured_order(
    seed: int, path: str, unknowns: int
) -> None:
    """Shuffled keys, unknown keys in between, wrong types, arrays, bad JSON: same columns."""
    rng = random.Random(seed)
    fields = EventFields(features_path=path)
    learning, oracle = _pair(fields)
    order = list(NUMERIC + CATEGORICAL)
    rng.shuffle(order)
    unknown = [f"u_{i}" for i in range(unknowns)]
    for _ in range(3):  # the unknown keys join the layout from the second batch on
        batch = _batch(rng, fields, order, unknown, 60)
        _assert_same(learning.decode(batch), oracle.decode(batch))


WIDE = tuple(f"w{i:03d}" for i in range(decode_module._UNKNOWN_FROM_FEATURES))


def _wide_batch(fields: EventFields, keys: Sequence[str], n: int = 5) -> list[RawMessage]:
    return [
        RawMessage("t", 0, i, 1, _message(fields, dict.fromkeys(keys, 1.0), "w", i))
        for i in range(n)
    ]


def test_the_layout_follows_the_producer_and_takes_stable_unknown_keys_second() -> None:
    """Reversed keys are laid out reversed; unknown keys join once two samples agree."""
    fields = EventFields()
    dec = BatchDecoder(fields, [ModelSchema("w", WIDE, ())])
    order = list(reversed(WIDE))
    batch = _wide_batch(fields, ["zz", *order])
    dec.decode(batch)
    assert dec._current.layout.order == tuple(order)
    dec.decode(batch)
    assert dec._current.layout.order == ("zz", *order)
    assert len(dec._layouts) == 2


def test_a_narrow_model_never_takes_unknown_keys() -> None:
    """Below the width where a Raw field pays, unknown keys stay out of the layout."""
    fields = EventFields()
    dec = BatchDecoder(fields, [ModelSchema("w", WIDE[:-1], ())])
    batch = _wide_batch(fields, ["zz", *WIDE[:-1]])
    for _ in range(3):
        dec.decode(batch)
    assert len(dec._current.layout.positions) == len(WIDE) - 1


def test_one_off_unknown_names_do_not_rebuild_the_layout() -> None:
    """Batches whose unknown names never repeat keep one layout (no churn)."""
    fields = EventFields()
    dec = BatchDecoder(fields, MODELS)
    for b in range(20):
        features = dict.fromkeys(NUMERIC, 1.0) | {f"once_{b}": 2.0}
        dec.decode([RawMessage("t", 0, b, 1, _message(fields, features, "wide", b))])
    assert len(dec._layouts) == 1
    assert dec._current.layout.order == NUMERIC


def test_alternating_producers_reuse_their_layouts_and_the_cache_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two orders in turn build two layouts once; ten orders keep only the last four."""
    fields = EventFields()
    dec = BatchDecoder(fields, MODELS)
    built: list[tuple[str, ...]] = []
    original = BatchDecoder._decoders_for

    def counting(self: BatchDecoder, order: tuple[str, ...]) -> Any:
        built.append(order)
        return original(self, order)

    monkeypatch.setattr(BatchDecoder, "_decoders_for", counting)
    rng = random.Random(3)
    orders = []
    for _ in range(10):
        order = list(NUMERIC)
        rng.shuffle(order)
        orders.append(order)

    def send(order: list[str], offset: int) -> None:
        value = _message(fields, dict.fromkeys(order, 1.0), "wide", offset)
        dec.decode([RawMessage("t", 0, offset, 1, value)])

    for i in range(8):
        send(orders[i % 2], i)
    assert len(built) == 2
    for i, order in enumerate(orders):
        send(order, 100 + i)
    assert len(dec._layouts) == decode_module._LAYOUTS_KEPT
    assert len(built) == 10


@pytest.mark.parametrize("unknown", [1_000, 5_000])
def test_unknown_keys_join_a_layout_all_or_none(unknown: int) -> None:
    """Seen in two looks, unknown keys under the cap all become fields, over it none (a scan
    covers every field taken, so taking some would slow the others down)."""
    fields = EventFields()
    dec = BatchDecoder(fields, [ModelSchema("w", WIDE, ())])
    cap = decode_module._UNKNOWN_FIELDS + decode_module._UNKNOWN_FIELDS_PER_FEATURE * len(WIDE)
    assert 1_000 <= cap < 5_000
    features = {f"k{i}": i for i in range(unknown)} | dict.fromkeys(WIDE, 2.0)
    value = msgspec.json.encode({"ts": TS, "model": "w", "features": features})
    for offset in range(decode_module._ORDER_CHECK_EVERY + 1):  # looked at twice
        batch = dec.decode([RawMessage("t", 0, offset, 1, value)])
        np.testing.assert_array_equal(batch.models["w"].numeric, np.full((len(WIDE), 1), 2.0))
    taken = unknown if unknown <= cap else 0
    assert len(dec._current.layout.positions) == len(WIDE) + taken


def test_a_producer_in_the_configured_order_builds_no_layout() -> None:
    """Keys already in the configured order keep the layout built at construction."""
    fields = EventFields()
    dec = BatchDecoder(fields, [ModelSchema("w", WIDE, ())])
    before = dec._current
    for _ in range(3):
        dec.decode(_wide_batch(fields, WIDE))
    assert dec._current is before and not dec._layouts


def test_a_sample_that_is_no_object_leaves_the_layout() -> None:
    """Arrays, scalars, bad JSON and a missing features object do not change the layout."""
    fields = EventFields()
    dec = BatchDecoder(fields, MODELS)
    before = dec._current
    for value in (b"[1,2]", b"7", b"{bad", b'{"model": "wide"}', b'{"features": 3}'):
        dec.decode([RawMessage("t", 0, 0, 1, value)])
        assert dec._current is before


def test_the_order_is_looked_at_every_few_batches_and_a_change_is_followed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A steady producer is looked at once in `_ORDER_CHECK_EVERY` batches; a new order is
    followed within that many batches."""
    fields = EventFields()
    dec = BatchDecoder(fields, [ModelSchema("w", WIDE, ())])
    looks: list[int] = []
    original = decode_module._key_order

    def counted(value: bytes, keys: tuple[str, ...]) -> Any:
        looks.append(1)
        return original(value, keys)

    monkeypatch.setattr(decode_module, "_key_order", counted)
    every = decode_module._ORDER_CHECK_EVERY
    for _ in range(4 * every):
        dec.decode(_wide_batch(fields, WIDE, n=2))
    assert len(looks) == 4
    reversed_keys = list(reversed(WIDE))
    for _ in range(every):
        dec.decode(_wide_batch(fields, reversed_keys, n=2))
    assert dec._current.layout.order == tuple(reversed_keys)
