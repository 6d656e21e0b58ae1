"""monitor.compose: settings become one wired daemon, the same for the CLI, the bench and tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.compose import build_daemon, dead_letter_sink, kafka_daemon, pipeline_metrics
from monitor.config import Settings, load_settings
from monitor.errors import UnreadableReason
from monitor.metrics import new_registry
from monitor.model import RawMessage
from monitor.source import KafkaSource
from monitor.state import CheckpointStore
from tests.support.daemon_harness import daemon_config, model_entry, write_config

FEATURES = [("amount", "numeric"), ("country", "categorical")]


def _settings(tmp_path: Path) -> Settings:
    config = daemon_config(
        bootstrap="127.0.0.1:9",
        topics=["a", "b"],
        models=[
            model_entry("fraud", FEATURES, {"mode": "warmup", "warmup_events": 100}),
            model_entry("churn", FEATURES[:1], {"mode": "warmup", "warmup_events": 100}),
        ],
        state_dir=tmp_path / "state",
    )
    return load_settings(write_config(tmp_path / "driftmon.yaml", config), env={})


class _NoSource:
    """A source with nothing to read, never connected."""

    def poll(self, timeout_s: float, max_records: int, held_bytes: int = 0) -> list[RawMessage]:
        """Nothing."""
        return []

    def held_back(self) -> bool:
        """Nothing read, nothing held back."""
        return False

    def commit(self, offsets: object) -> None:
        """Nothing to commit."""

    def assignment(self) -> frozenset[tuple[str, int]]:
        """No partitions."""
        return frozenset()

    def lag(self) -> dict[tuple[str, int], int]:
        """No lag known."""
        return {}

    def unreadable_batches(self) -> dict[tuple[str, UnreadableReason], int]:
        """Nothing read."""
        return {}

    def is_connected(self) -> bool:
        """Never connected."""
        return False

    def close(self) -> None:
        """Nothing to close."""


def test_build_daemon_wires_runtimes_metrics_and_store_from_settings(tmp_path: Path) -> None:
    """One runtime per configured model, closed metric label sets, the checkpoint in state.dir."""
    settings = _settings(tmp_path)
    wiring = build_daemon(settings, lambda _assign, _revoke: _NoSource())
    assert list(wiring.daemon.runtimes) == ["fraud", "churn"]
    assert [s.name for s in wiring.daemon.runtimes["fraud"].specs] == ["amount", "country"]
    assert wiring.daemon.store.path.parent == settings.state.dir
    assert wiring.daemon.metrics is wiring.metrics
    assert wiring.daemon.collector is wiring.collector
    assert wiring.daemon.dead_letter is None
    for topic in ("a", "b"):
        value = wiring.registry.get_sample_value(
            "driftmon_records_consumed_total", {"topic": topic}
        )
        assert value == 0.0
    assert (
        wiring.registry.get_sample_value(
            "driftmon_feature_invalid_values_total", {"model": "churn", "feature": "amount"}
        )
        == 0.0
    )
    with pytest.raises(KeyError):
        wiring.metrics.record_consumed("not-configured", 1)


def test_build_daemon_uses_injected_store_and_clocks(tmp_path: Path) -> None:
    """An injected store and clocks reach the daemon; two builds share no registry."""
    settings = _settings(tmp_path)
    store = CheckpointStore(tmp_path / "elsewhere")
    first = build_daemon(
        settings, lambda _a, _r: _NoSource(), store=store, clock=lambda: 5.0, monotonic=lambda: 7.0
    )
    second = build_daemon(settings, lambda _a, _r: _NoSource())
    assert first.daemon.store is store
    assert first.daemon.clock() == 5.0
    assert first.daemon.monotonic() == 7.0
    assert first.registry is not second.registry
    first.daemon.start()
    first.daemon.shutdown()
    assert store.path.exists()
    assert not (settings.state.dir / store.path.name).exists()


def test_kafka_daemon_builds_a_kafka_source_and_no_sink_without_dead_letter_topic(
    tmp_path: Path,
) -> None:
    """The production wiring consumes with KafkaSource; no producer without a DLQ topic."""
    settings = _settings(tmp_path)
    assert dead_letter_sink(settings) is None
    wiring = kafka_daemon(settings)
    assert wiring.daemon.dead_letter is None
    wiring.daemon.start()
    try:
        assert isinstance(wiring.daemon.source, KafkaSource)
    finally:
        wiring.daemon.shutdown()


def test_pipeline_metrics_covers_every_configured_feature(tmp_path: Path) -> None:
    """pipeline_metrics pre-initialises the invalid-value counter of each (model, feature)."""
    settings = _settings(tmp_path)
    registry = new_registry()
    pipeline_metrics(settings, registry)
    pairs = {("fraud", "amount"), ("fraud", "country"), ("churn", "amount")}
    for model, feature in pairs:
        labels = {"model": model, "feature": feature}
        assert registry.get_sample_value("driftmon_feature_invalid_values_total", labels) == 0.0
