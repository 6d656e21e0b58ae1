"""Decoding wide events into columns: the tuple fast path against an independent json.loads."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.account import BatchAccount
from monitor.decode import (
    INVALID_CATEGORY,
    BatchDecoder,
    EventFields,
    ModelSchema,
    _categorical_columns,
    _category_value,
)
from monitor.model import MAX_CATEGORY_CHARS, RawMessage


def _messages(
    rng: np.random.Generator, path: str, models: dict[str, tuple[list[str], list[str]]], n: int
) -> list[bytes]:
    out = []
    names = list(models)
    for i in range(n):
        model = names[i % len(names)]
        numeric, categorical = models[model]
        features: dict[str, object] = {}
        for name in numeric:
            roll = rng.random()
            features[name] = None if roll < 0.1 else int(roll * 100) if roll < 0.2 else roll
        for name in categorical:
            features[name] = None if rng.random() < 0.1 else f"v{rng.integers(5)}"
        event: dict[str, object] = {"ts": 1.7e9 + i, "model": model}
        if path == "":
            event.update(features)
        else:
            keys = path.split(".")
            inner: dict[str, object] = features
            for key in reversed(keys[1:]):
                inner = {key: inner}
            event[keys[0]] = inner
        out.append(json.dumps(event).encode())
    return out


def _features(message: bytes, path: str) -> dict[str, object]:
    event = json.loads(message)
    if path:
        for key in path.split("."):
            event = event[key]
    return event  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["features", "", "a.b"])
def test_wide_numeric_columns_equal_an_independent_decode(path: str) -> None:
    """Consecutive, offset and interleaved feature sets give the values json.loads reads."""
    rng = np.random.default_rng(11)
    models = {
        "wide": ([f"n{i}" for i in range(300)], [f"c{i}" for i in range(30)]),
        "tail": ([f"n{i}" for i in range(250, 320)], ["c3"]),
        "odd": ([f"n{i}" for i in range(0, 300, 7)], []),
    }
    messages = _messages(rng, path, models, 120)
    decoder = BatchDecoder(
        EventFields(features_path=path),
        [ModelSchema(name, tuple(num), tuple(cat)) for name, (num, cat) in models.items()],
    )
    raw = [RawMessage("t", 0, i, 1, m) for i, m in enumerate(messages)]
    batch = decoder.decode(raw, BatchAccount())
    assert batch.total_accepted == len(messages)
    for name, (numeric, categorical) in models.items():
        columns = batch.models[name]
        for event, message_index in enumerate(columns.messages.tolist()):
            features = _features(messages[message_index], path)
            expected = [math.nan if features[f] is None else float(features[f]) for f in numeric]  # type: ignore[arg-type]
            np.testing.assert_array_equal(columns.numeric[:, event], expected)
            for row, feature in enumerate(categorical):
                assert columns.categorical[row][event] == features[feature]


HOSTILE_CATEGORIES: tuple[object, ...] = (
    None,
    "ok",
    "",
    "\x00x",
    "a\x00",
    7,
    1.5,
    True,
    False,
    [1],
    {"k": 1},
)


def _expected_category(value: object) -> object:
    """The categorical rules of the event contract, written out independently."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return INVALID_CATEGORY if value.startswith("\x00") else value
    return INVALID_CATEGORY


def test_wide_categorical_columns_follow_the_rules_for_every_json_type() -> None:
    """Consecutive categorical features with strings, NUL, numbers, bools, arrays and objects."""
    rng = np.random.default_rng(12)
    categorical = [f"c{i}" for i in range(25)]
    messages = []
    for i in range(200):
        features = {
            name: HOSTILE_CATEGORIES[int(rng.integers(len(HOSTILE_CATEGORIES)))]
            if i % 3 == 0
            else f"v{rng.integers(5)}"
            for name in categorical
        }
        messages.append(json.dumps({"ts": 1.7e9 + i, "features": features}).encode())
    decoder = BatchDecoder(
        EventFields(default_model="m"),
        [ModelSchema("m", (), tuple(categorical))],
    )
    raw = [RawMessage("t", 0, i, 1, m) for i, m in enumerate(messages)]
    columns = decoder.decode(raw, BatchAccount()).models["m"]
    assert columns.times.size == len(messages)
    for event, message_index in enumerate(columns.messages.tolist()):
        features = json.loads(messages[message_index])["features"]
        for row, feature in enumerate(categorical):
            assert columns.categorical[row][event] == _expected_category(features[feature])


@pytest.mark.parametrize("where", [0, 57, 119])
def test_an_int_beyond_the_float_range_is_invalid_and_its_batch_exact(where: int) -> None:
    """An int too large for a float anywhere in a wide batch is +inf (invalid), the rest exact."""
    rng = np.random.default_rng(13)
    numeric = [f"n{i}" for i in range(40)]
    events = [{name: float(rng.normal()) for name in numeric} for _ in range(120)]
    events[where]["n7"] = 10**400
    messages = [
        json.dumps({"ts": 1.7e9 + i, "features": features}).encode()
        for i, features in enumerate(events)
    ]
    decoder = BatchDecoder(EventFields(default_model="m"), [ModelSchema("m", tuple(numeric), ())])
    raw = [RawMessage("t", 0, i, 1, m) for i, m in enumerate(messages)]
    columns = decoder.decode(raw, BatchAccount()).models["m"]
    expected = np.array([[e[name] for e in events] for name in numeric], dtype=object)
    expected[7, where] = math.inf
    np.testing.assert_array_equal(columns.numeric, expected.astype(np.float64))


_CLEAN = st.sampled_from(["a", "b", "level-7", "", None])
_ODD_STRINGS = st.sampled_from(["\x00x", "a" * (MAX_CATEGORY_CHARS + 1)])
_NOT_STRINGS = st.sampled_from([7, 2.5, True, [1], {"k": 1}])
_CHUNKS = {
    "clean": _CLEAN,
    "strings": st.one_of(_CLEAN, _CLEAN, _CLEAN, _ODD_STRINGS),
    "any": st.one_of(_CLEAN, _ODD_STRINGS, _NOT_STRINGS),
}


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(_CHUNKS)).flatmap(
        lambda kind: st.lists(
            st.lists(_CHUNKS[kind], min_size=6, max_size=6), min_size=1, max_size=30
        )
    )
)
def test_categorical_columns_of_a_chunk_equal_each_value_decoded_alone(
    rows: list[list[Any]],
) -> None:
    """The columns of consecutive fields (one object matrix when the whole chunk is clean,
    else column by column) hold what `_category_value` makes of each value alone."""
    struct = msgspec.defstruct("Features", [(f"c{i}", Any) for i in range(6)])
    features = [struct(*row) for row in rows]
    columns = _categorical_columns(features, tuple(f"c{i}" for i in range(6)), slice(0, 6))
    assert len(columns) == 6
    for i, column in enumerate(columns):
        assert column.dtype == object and column.shape == (len(rows),)
        assert column.tolist() == [_category_value(row[i]) for row in rows]
