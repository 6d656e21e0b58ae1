"""A fleet `warmup` model whose features change (`state.backend: kafka`): real `driftmon run`
replicas, one registry, the real broker.

Two replicas warm a model on x, c up through the registry (one activation, cause warmup) and
count events; both are then restarted with x, y, c. As on a single node, the unchanged
features must keep their counts and y must be warmed up and then counted, and, as in any
fleet, every replica must export the same window: one reference for the model everywhere.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from monitor.reference import ReferenceProfile, profile_to_json
from tests.integration.test_fleet_kafka import MODEL, PARTITIONS, _model, _Producer
from tests.integration.test_fleet_references_kafka import registry_table
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import DaemonProcess, daemon_config, model_entry, write_config
from tests.support.fleet import replica_set, stop_all, wait_shared
from tests.support.waiting import wait_until


def _config(
    tmp_path: Path,
    bootstrap: str,
    topic: str,
    registry: str,
    state: str,
    with_y: bool,
    group: str | None = None,
) -> Path:
    """The replicas' configuration (a fresh consumer group unless `group` is given)."""
    features = [("x", "numeric")] + ([("y", "numeric")] if with_y else []) + [("c", "categorical")]
    config = daemon_config(
        bootstrap=bootstrap,
        topics=[topic],
        models=[model_entry(MODEL, features, {"mode": "warmup", "warmup_events": 300})],
        state_dir=tmp_path / "no-state",
        window={"bucket": "1m", "length": "10m", "allowed_lateness": "1m"},
        evaluation={"interval": "500ms", "min_samples": 100},
        group_id=group,
    )
    config["references"] = {"topic": registry, "timeout": "10s"}
    config["state"] = {
        "backend": "kafka",
        "topic": state,
        "publish_interval": "1s",
        "snapshot_interval": "3s",
    }
    return write_config(tmp_path / f"driftmon-{int(with_y)}.yaml", config)


def _events(n: int, seed: int, start: float) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    times = start - 240.0 + np.sort(rng.uniform(0.0, 240.0, n))
    return [
        {
            "ts": float(times[i]),
            "model": MODEL,
            "features": {
                "x": float(rng.normal(0.3, 1.2)),
                "y": float(rng.normal(-1.0, 2.0)),
                "c": str(rng.choice(["a", "b", "c"])),
            },
        }
        for i in range(n)
    ]


def _samples(model: dict[str, Any] | None) -> dict[str, int]:
    if model is None:
        return {}
    return {f["name"]: f["current_samples"] for f in model["features"]}


def _features(profile: ReferenceProfile) -> dict[str, Any]:
    return {f["name"]: f for f in json.loads(profile_to_json(profile))["features"]}


def _activated(bootstrap: str, registry: str) -> str | None:
    """The reference id the registry activates for the model (None before any)."""
    activation = registry_table(bootstrap, registry).activations.get(MODEL)
    return None if activation is None else activation.reference_id


def _on_every_replica(replicas: list[DaemonProcess], want: Any, message: str) -> None:
    def diagnose() -> str:
        return (
            "\n".join(
                f"{(_model(r) or {}).get('reference_id')} {_samples(_model(r))}" for r in replicas
            )
            + "\n"
            + replicas[0].tail(3000)
        )

    wait_until(
        lambda: all(want(_model(r)) for r in replicas),
        90.0,
        interval=0.3,
        message=message,
        on_timeout=diagnose,
    )


@pytest.mark.parametrize("change", ["restart", "sighup"])
def test_a_feature_added_to_a_fleet_warm_up_model_is_warmed_up_once_and_keeps_the_others(
    broker: TansuBroker, tmp_path: Path, change: str
) -> None:
    """Two replicas warm x, c up, count 1,000 events, and change to x, y, c (restarted, or
    reloaded by SIGHUP): the leader publishes one extension of the adopted reference (y warmed
    up, `extends` it), every replica adopts it, x and c keep every event's count and y counts
    from then on, and both replicas export the same window."""
    topic, registry = f"fleet-{uuid.uuid4().hex[:8]}", f"refs-{uuid.uuid4().hex[:8]}"
    state = f"state-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=PARTITIONS)
    before = _config(tmp_path, broker.bootstrap, topic, registry, state, with_y=False)
    after = _config(tmp_path, broker.bootstrap, topic, registry, state, with_y=True)
    producer = _Producer({"bootstrap_servers": broker.bootstrap}, topic)
    with closing(producer), ExitStack() as stack:
        replicas = stack.enter_context(replica_set(before, tmp_path))
        wait_shared(replicas, PARTITIONS)
        producer.send(_events(2_400, 1, time.time() - 3_600))  # the warm-up, out of the window
        first = wait_until(
            lambda: _activated(broker.bootstrap, registry), 90.0, message="a warm-up published"
        )
        # every replica on the registry's reference (its own fit alone counts nowhere else)
        _on_every_replica(replicas, lambda m: m is not None and m["reference_id"] == first, first)
        producer.send(_events(1_000, 2, time.time()))
        _on_every_replica(replicas, lambda m: _samples(m).get("x") == 1_000, "1,000 counted")
        if change == "sighup":  # the same group: a reload may not change the kafka section
            group = yaml.safe_load(before.read_text(encoding="utf-8"))["kafka"]["group_id"]
            after = _config(tmp_path, broker.bootstrap, topic, registry, state, True, group)
            before.write_text(after.read_text(encoding="utf-8"), encoding="utf-8")
            for replica in replicas:
                assert replica.proc is not None
                replica.proc.send_signal(signal.SIGHUP)
            for replica in replicas:
                replica.wait_metric("driftmon_config_reloads_total", 1.0, result="success")
        else:
            stop_all(replicas)
            replicas = stack.enter_context(replica_set(after, tmp_path, prefix="s"))
            wait_shared(replicas, PARTITIONS)
        producer.send(_events(1_200, 3, time.time()))  # y's warm-up on the leader's partitions
        _on_every_replica(
            replicas,
            lambda m: m is not None and m["reference_id"] not in ("", first),
            "the extension adopted",
        )
        table = registry_table(broker.bootstrap, registry)
        activation = table.activations[MODEL]
        extension = table.profiles[activation.reference_id].profile
        assert extension.extends == first
        assert [f.name for f in extension.features] == ["x", "y", "c"]
        assert activation.cause == "warmup" and activation.reason.endswith(": y")
        parent = _features(table.profiles[first].profile)
        for name in ("x", "c"):  # the unchanged features keep their bins and reference counts
            assert _features(extension)[name] == parent[name]

        producer.send(_events(500, 4, time.time()))

        def settled(model: dict[str, Any] | None) -> bool:
            samples = _samples(model)
            return samples.get("x") == 2_700 and samples.get("c") == 2_700

        _on_every_replica(replicas, settled, "every event counted for x and c")
        models = [m for m in (_model(r) for r in replicas) if m is not None]
        assert len(models) == 2
        y = _samples(models[0])["y"]
        assert 500 <= y <= 1_700, y  # from the adoption on: at least the last 500 events
        for model in models:
            feature = next(f for f in model["features"] if f["name"] == "y")
            assert feature["reference_samples"] == 300 and feature["reference_ready"]
        wait_until(
            lambda: len({(_model(r) or {}).get("window_digest") for r in replicas}) == 1,
            30.0,
            interval=0.3,
            message="one window on every replica",
        )
        assert len(table.profiles) == 2, "one warm-up and one extension"
        stop_all(replicas)
