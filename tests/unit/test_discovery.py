"""Feature discovery (`features: auto`): kinds, the frequency floor, caps and bounded memory."""

from __future__ import annotations

import heapq
import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import yaml

from monitor.config import load_settings, redacted_dump
from monitor.discovery import (
    FeatureDiscovery,
    UnmonitoredNames,
    feature_objects,
    value_kind,
)
from monitor.errors import ConfigError
from monitor.http import snapshot_to_json
from monitor.model import DiscoveryStatus, FeatureKind
from monitor.statuspage import render_status_page
from monitor.tools.statusview import render_status
from tests.support.builders import evaluation, snapshot


def kinds(discovery: FeatureDiscovery) -> dict[str, FeatureKind]:
    """The chosen features as {name: kind}."""
    return {s.name: s.kind for s in discovery.choose()}


def test_value_kinds_follow_the_event_contract() -> None:
    """Numbers are numeric; strings and bools categorical; null, lists and objects neither."""
    assert value_kind(1) is value_kind(2.5) is FeatureKind.NUMERIC
    assert value_kind("x") is value_kind(True) is FeatureKind.CATEGORICAL
    assert value_kind(None) is value_kind([1]) is value_kind({"a": 1}) is None


def test_kinds_are_the_majority_and_one_off_names_are_not_features() -> None:
    """A mixed feature takes its majority kind; a name seen once never becomes a feature."""
    d = FeatureDiscovery(1000, max_features=100)
    rng = np.random.default_rng(1)
    events = []
    for i in range(1000):
        events.append(
            {
                "n": float(rng.normal()),
                "c": str(rng.integers(5)),
                "b": bool(i % 2),
                "mixed": "x" if i % 10 == 0 else i,
                "tie": "x" if i % 2 else i,
                "nulls": None,
                f"once-{i}": 1.0,
            }
        )
    assert d.observe(events) == 1000 and d.done
    assert kinds(d) == {
        "n": FeatureKind.NUMERIC,
        "mixed": FeatureKind.NUMERIC,
        "c": FeatureKind.CATEGORICAL,
        "b": FeatureKind.CATEGORICAL,
        "tie": FeatureKind.CATEGORICAL,
    }
    assert [s.kind for s in d.choose()][:2] == [FeatureKind.NUMERIC] * 2  # numeric first


def test_max_features_keeps_the_most_frequent_and_exclude_drops_matches() -> None:
    """The cap keeps the names present in most events; excluded globs are never chosen."""
    d = FeatureDiscovery(100, max_features=2, exclude=("debug_*",))
    events = [
        {"a": 1, "b": 1, "c": 1, "debug_x": 1} if i % 2 else {"a": 1, "b": 1, "debug_x": 1}
        for i in range(100)
    ]
    d.observe(events)
    assert set(kinds(d)) == {"a", "b"}


def test_the_discovery_stops_at_events_needed() -> None:
    """Events beyond `events_needed` are not taken."""
    d = FeatureDiscovery(10, max_features=5)
    assert d.observe([{"a": 1}] * 25) == 10 and d.events == 10


def test_a_flood_of_distinct_names_keeps_memory_bounded_and_the_real_features() -> None:
    """200,000 one-off names: the table stays within max_names and the real features win."""
    d = FeatureDiscovery(2000, max_features=10, max_names=1000)
    for i in range(2000):
        event: dict[str, object] = {f"junk-{i}-{j}": 1.0 for j in range(100)}
        event.update({"x": 1.0, "y": "a"})
        d.observe([event])
        assert len(d.names) <= 1000
    assert kinds(d) == {"x": FeatureKind.NUMERIC, "y": FeatureKind.CATEGORICAL}


def test_a_flood_into_a_full_table_costs_heap_steps_not_scans_and_keeps_the_frequent_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A table full of names seen twice, then one event of 40,000 new names: each new name
    evicts the one before it with one heap pop (not a scan of the table); the twice-seen
    names all stay."""
    d = FeatureDiscovery(100, max_features=10, max_names=10_000)
    d.observe([{f"s{i}": 1.0 for i in range(9_999)}] * 2)
    pops: list[int] = []
    heappop = heapq.heappop

    def counted(heap: list[Any]) -> Any:
        pops.append(len(heap))
        return heappop(heap)

    monkeypatch.setattr(heapq, "heappop", counted)
    d.observe([{f"f{i}": 1.0 for i in range(40_000)}])
    assert len(pops) == 40_000 - 1
    assert d.evicted == 40_000 - 1 and len(d.names) == 10_000
    assert all(f"s{i}" in d.names for i in range(9_999)) and "f39999" in d.names


def test_a_full_table_evicts_the_smallest_count_the_newest_among_equals() -> None:
    """Counts that grew after insertion are seen: the name with the fewest events goes, and of
    equals the one added last."""
    d = FeatureDiscovery(100, max_features=3, max_names=3)
    d.observe([{"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 1.0, "c": 1.0}, {"a": 1.0}])
    d.observe([{"d": 1.0}])
    assert set(d.names) == {"a", "c", "d"}
    d.observe([{"e": 1.0}, {"f": "x"}])
    assert set(d.names) == {"a", "c", "f"} and d.evicted == 3


def test_unmonitored_names_count_distinct_names_up_to_a_cap() -> None:
    """Repeats count once; the list holds at most 20; the cap is a floor, flagged saturated."""
    names = UnmonitoredNames(cap=50)
    names.add(["a", "b", "a"])
    assert names.count == 2 and not names.saturated
    names.add(f"n{i}" for i in range(100))
    assert names.count == 50 and names.saturated and len(names.listed) == 20
    names.discard(["a"])
    assert names.count == 49 and "a" not in names.listed


def test_feature_objects_follow_the_event_contract() -> None:
    """Arrays, default model, top-level features and junk: only the wanted models' objects."""
    values = [
        msgspec.json.encode({"model": "m", "features": {"a": 1}}),
        msgspec.json.encode([{"model": "m", "features": {"b": 2}}, 5, {"model": "z"}]),
        msgspec.json.encode({"features": {"c": "x"}}),
        b"{not json",
        None,
        msgspec.json.encode({"model": "m", "features": [1, 2]}),
    ]
    found = list(
        feature_objects(
            values,
            model_field="model",
            features_path="features",
            reserved=frozenset({"ts", "model"}),
            default_model="m",
            wanted=frozenset({"m"}),
            max_array_elements=10,
            max_message_bytes=1000,
        )
    )
    assert found == [("m", {"a": 1}), ("m", {"b": 2}), ("m", {"c": "x"})]
    top = list(
        feature_objects(
            [msgspec.json.encode({"ts": 1.0, "model": "m", "x": 1.5})],
            model_field="model",
            features_path="",
            reserved=frozenset({"ts", "model"}),
            default_model=None,
            wanted=frozenset({"m"}),
            max_array_elements=10,
            max_message_bytes=1000,
        )
    )
    assert top == [("m", {"x": 1.5})]


def test_features_auto_is_validated_against_the_reference_mode_and_the_fleet(
    tmp_path: Path,
) -> None:
    """auto needs warmup/rolling, refuses max_features on a list, and a fleet backend."""
    model: dict[str, Any] = {"name": "m", "features": "auto", "max_features": 5, "exclude": ["x*"]}
    base: dict[str, Any] = {
        "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"]},
        "models": [model],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base))
    settings = load_settings(path, env={})
    assert settings.models[0].auto_features and settings.models[0].effective_max_features == 5
    assert redacted_dump(settings)["models"][0]["features"] == "auto"
    bad: list[tuple[dict[str, Any], str]] = [
        ({"reference": {"mode": "file", "path": str(path)}}, r"auto needs reference\.mode"),
        ({"features": [{"name": "a", "kind": "numeric"}]}, "applies to features: auto only"),
        ({"features": []}, "needs at least 1 item"),
        ({"segment_by": "features.country"}, "not supported with features: auto"),
        ({"correlation": {"enabled": True}}, "not supported with features: auto"),
    ]
    for change, message in bad:
        path.write_text(yaml.safe_dump({**base, "models": [{**model, **change}]}))
        with pytest.raises(ConfigError, match=message):
            load_settings(path, env={})
    path.write_text(yaml.safe_dump({**base, "state": {"backend": "kafka"}}))
    with pytest.raises(ConfigError, match=r"not supported with state\.backend kafka"):
        load_settings(path, env={})


def test_names_the_decoder_cannot_match_are_never_discovered() -> None:
    """Quotes, backslashes, control characters or 257+ characters: counted, never features."""
    bad = ['a"b', "a\\b", "a\nb", "x" * 257, ""]
    d = FeatureDiscovery(100, max_features=10)
    d.observe([{**dict.fromkeys(bad, 1.0), "ok": 1.0, "y" * 256: "v"}] * 100)
    assert kinds(d) == {"ok": FeatureKind.NUMERIC, "y" * 256: FeatureKind.CATEGORICAL}
    assert set(d.names) == {"ok", "y" * 256}


def test_listed_names_never_carry_control_characters() -> None:
    """A name with an escape sequence is listed escaped, so `driftmon status` stays inert."""
    names = UnmonitoredNames()
    names.add(["\x1b[2Jboom", "caf\u00e9"])
    assert names.listed == ["\\x1b[2Jboom", "caf\u00e9"]
    names.discard(["\x1b[2Jboom"])
    assert names.listed == ["caf\u00e9"] and names.count == 1


def test_status_views_show_discovery_progress_and_unmonitored_names() -> None:
    """The status page and `driftmon status` say how many features were discovered and list
    some unmonitored names, escaped."""
    discovering = DiscoveryStatus(True, 120, 0, 40)
    done = DiscoveryStatus(False, 0, 350, 10_000, False, ("once-1", "<b>x</b>", "\\x1b[2J"))
    snap = snapshot(evaluation("a", discovery=discovering), evaluation("b", discovery=done))
    page = render_status_page(snap).decode()
    assert "discovering features: 120 events seen" in page
    assert "350 discovered features, 10000 unmonitored names" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    text = render_status(json.loads(snapshot_to_json(snap)))
    assert "  discovering features: 120 events seen" in text
    assert "  350 discovered features, 10000 unmonitored names (once-1, <b>x</b>, \\x1b[2J)" in text
    assert "\x1b" not in text
