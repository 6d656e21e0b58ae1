"""A fleet model whose features change (`state.backend: kafka`), with real `driftmon run`
processes on the real broker.

A replica counts 400 events per model with the model `fleet` configured as x, z, c; it is
stopped and a replica with x, y, c (y added, z removed) counts 300 more. The oracle is every
event binned directly with the new layout (`bin_batch` + `histogram`), y's row from the 300
later events only, hashed as `window_digest` hashes a window: the unchanged features keep
every count across the change, the added one fills from the change on, the removed one is
gone, the other model is untouched, and no state record is refused. A replica started
afterwards folds the state topic to the same window. And during a rolling update, a replica
on each list, live in one group, exports the same results for the unchanged features.
"""

from __future__ import annotations

import hashlib
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from kafka import KafkaProducer

from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import fit_profile, layout_for, profile_to_json
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import DaemonProcess, daemon_config, model_entry, write_config
from tests.support.fleet import wait_shared
from tests.support.waiting import wait_until

X, Y, Z = (FeatureSpec(n, FeatureKind.NUMERIC) for n in ("x", "y", "z"))
C = FeatureSpec("c", FeatureKind.CATEGORICAL)
BEFORE, AFTER = (X, Z, C), (X, Y, C)


def _profiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    numeric = {n: rng.normal(0.0, 1.0, 5_000) for n in ("x", "y", "z")}
    fleet = fit_profile("fleet", (X, Y, Z, C), numeric, {"c": list(rng.choice(["a", "b"], 5_000))})
    other = fit_profile("other", (X,), {"x": numeric["x"]}, {})
    (tmp_path / "fleet.json").write_text(profile_to_json(fleet), encoding="utf-8")
    (tmp_path / "other.json").write_text(profile_to_json(other), encoding="utf-8")


def _config(
    tmp_path: Path, bootstrap: str, topic: str, state: str, specs: tuple[FeatureSpec, ...]
) -> Path:
    config = daemon_config(
        bootstrap=bootstrap,
        topics=[topic],
        models=[
            model_entry(
                "fleet",
                [(s.name, s.kind.value) for s in specs],
                {"mode": "file", "path": str(tmp_path / "fleet.json")},
            ),
            model_entry(
                "other", [("x", "numeric")], {"mode": "file", "path": str(tmp_path / "other.json")}
            ),
        ],
        state_dir=tmp_path / "no-state",
        group_id=f"group-{state}",
        window={"bucket": "1m", "length": "10m", "allowed_lateness": "1m"},
        evaluation={"interval": "500ms", "min_samples": 100},
    )
    config["state"] = {
        "backend": "kafka",
        "topic": state,
        "publish_interval": "1s",
        "snapshot_interval": "2s",
    }
    return write_config(tmp_path / f"driftmon-{len(specs)}{specs[1].name}.yaml", config)


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    """n events per model within the last minute; some x missing, some categories unseen."""
    rng = np.random.default_rng(seed)
    now = time.time()
    out = []
    for i in range(n):
        features = {
            "x": None if i % 13 == 0 else float(rng.normal(0.2, 1.1)),
            "y": float(rng.normal(0.5, 1.0)),
            "z": float(rng.normal(-0.5, 1.0)),
            "c": str(rng.choice(["a", "b", "q"])),
        }
        at = now - 60.0 + 50.0 * i / n
        out += [{"ts": at, "model": m, "features": features} for m in ("fleet", "other")]
    return out


def _send(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    try:
        for i, event in enumerate(events):
            producer.send(topic, msgspec.json.encode(event), partition=(i // 2) % 2)
        producer.flush(timeout=60)
    finally:
        producer.close()


def _counts(
    tmp_path: Path, model: str, specs: tuple[FeatureSpec, ...], events: list[dict[str, Any]]
) -> np.ndarray:
    """The oracle: `events` of `model` binned directly with its reference's layout."""
    from monitor.reference import profile_from_json

    profile = profile_from_json((tmp_path / f"{model}.json").read_text(encoding="utf-8"))
    layout, _, _ = layout_for(profile, specs)
    mine = [e["features"] for e in events if e["model"] == model]
    numeric = np.asarray(
        [
            [np.nan if f[s.name] is None else f[s.name] for f in mine]
            for s in specs
            if s.kind is FeatureKind.NUMERIC
        ],
        dtype=np.float64,
    )
    categorical = tuple(
        np.asarray([f[s.name] for f in mine], dtype=object)
        for s in specs
        if s.kind is FeatureKind.CATEGORICAL
    )
    return layout.histogram(layout.bin_batch(numeric, categorical))


def _digest(counts: np.ndarray) -> str:
    return hashlib.sha256(counts.astype("<i8").tobytes()).hexdigest()


def _digests(replica: DaemonProcess) -> dict[str, str]:
    try:
        return {m["model"]: m["window_digest"] for m in replica.status()["models"]}
    except Exception:  # not serving yet
        return {}


def _wait_digests(replica: DaemonProcess, want: dict[str, str]) -> None:
    wait_until(
        lambda: _digests(replica) == want,
        90.0,
        interval=0.5,
        message=f"the replica's windows {want}",
        on_timeout=lambda: f"{_digests(replica)}\n{replica.tail(3000)}",
    )


def test_a_fleet_model_keeps_its_unchanged_features_when_features_are_added_and_removed(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """Restarting a fleet with x, y, c instead of x, z, c keeps every count of x and c, fills
    y from the change on, drops z, leaves the other model alone and refuses no state record;
    a replica started later folds the same windows."""
    topic = f"schema-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    state = f"state-{uuid.uuid4().hex[:8]}"
    _profiles(tmp_path)
    first, later = _events(400, 1), _events(300, 2)
    before = DaemonProcess(
        _config(tmp_path, broker.bootstrap, topic, state, BEFORE), tmp_path / "r1"
    )
    changed = _config(tmp_path, broker.bootstrap, topic, state, AFTER)
    after, cold = DaemonProcess(changed, tmp_path / "r2"), DaemonProcess(changed, tmp_path / "r3")
    with before, after, cold:
        before.start()
        _send(broker.bootstrap, topic, first)
        _wait_digests(
            before,
            {
                "fleet": _digest(_counts(tmp_path, "fleet", BEFORE, first)),
                "other": _digest(_counts(tmp_path, "other", (X,), first)),
            },
        )
        assert before.stop() == 0

        after.start()
        _send(broker.bootstrap, topic, later)
        expected = _counts(tmp_path, "fleet", AFTER, first + later)
        expected[1] = _counts(tmp_path, "fleet", AFTER, later)[1]  # y: counted from the change on
        want = {
            "fleet": _digest(expected),
            "other": _digest(_counts(tmp_path, "other", (X,), first + later)),
        }
        _wait_digests(after, want)
        features = {
            f["name"]
            for m in after.status()["models"]
            if m["model"] == "fleet"
            for f in m["features"]
        }
        assert features == {"x", "y", "c"}
        scraped = after.metrics()
        assert scraped.total("driftmon_state_records_rejected_total") == 0
        assert not [labels for (_, labels) in scraped.series if ("feature", "z") in labels]
        assert not [
            line
            for line in after.log_lines()
            if line.get("event") == "own commit refused; claiming the partition again"
        ]

        cold.start()
        _wait_digests(cold, want)
        assert after.stop() == 0 and cold.stop() == 0


def _features(replica: DaemonProcess) -> dict[str, dict[str, Any]]:
    """The `fleet` model's feature results on a replica, without the per-layout ones (the
    q-value and the decision depend on which features are tested together)."""
    try:
        models = replica.status()["models"]
    except Exception:  # not serving yet
        return {}
    model: dict[str, Any] = next((m for m in models if m["model"] == "fleet"), {"features": []})
    varying = {"evaluated_at", "qvalue", "drift_detected", "drift_reasons"}
    return {f["name"]: {k: v for k, v in f.items() if k not in varying} for f in model["features"]}


def test_replicas_on_the_old_and_the_new_feature_list_export_the_same_unchanged_features(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """During a rolling update, a replica on x, z, c and one on x, y, c each hold every
    event's counts of x and c (identical results on both), while z holds the old replica's
    events only and y the new one's: together exactly every event."""
    topic = f"schema-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    state = f"state-{uuid.uuid4().hex[:8]}"
    _profiles(tmp_path)
    old = DaemonProcess(_config(tmp_path, broker.bootstrap, topic, state, BEFORE), tmp_path / "old")
    new = DaemonProcess(_config(tmp_path, broker.bootstrap, topic, state, AFTER), tmp_path / "new")
    events = _events(500, 3)
    with old, new:
        old.start()
        new.start()
        wait_shared([old, new], 2)
        _send(broker.bootstrap, topic, events)

        def settled() -> tuple[dict[str, Any], dict[str, Any]] | None:
            a, b = _features(old), _features(new)
            if not a or not b or a["c"]["current_samples"] != 500 or b["c"] != a["c"]:
                return None
            return (a, b) if b["x"] == a["x"] else None

        a, b = wait_until(
            settled,
            90.0,
            interval=0.5,
            message="x and c equal on both replicas with every event",
            on_timeout=lambda: f"{_features(old)}\n{_features(new)}\n{new.tail(2000)}",
        )
        assert set(a) == {"x", "z", "c"} and set(b) == {"x", "y", "c"}
        z, y = a["z"]["current_samples"], b["y"]["current_samples"]
        assert z > 0 and y > 0 and z + y == 500, (z, y)
        assert a["x"]["distribution"]["current"], "x was evaluated with its distribution"
        for replica in (old, new):
            assert replica.metrics().total("driftmon_state_records_rejected_total") == 0
            assert replica.stop() == 0


def test_sighup_changes_a_fleet_replica_s_features_and_refuses_an_invalid_file(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """SIGHUP on a fleet replica: an invalid file is refused (the old list keeps counting, the
    failure is a metric); then x, y, c replaces x, z, c with the windows of a restart."""
    topic = f"schema-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    state = f"state-{uuid.uuid4().hex[:8]}"
    _profiles(tmp_path)
    first, later = _events(400, 4), _events(300, 5)
    config = _config(tmp_path, broker.bootstrap, topic, state, BEFORE)
    with DaemonProcess(config, tmp_path / "r1") as replica:
        replica.start()
        _send(broker.bootstrap, topic, first)
        counted = {
            "fleet": _digest(_counts(tmp_path, "fleet", BEFORE, first)),
            "other": _digest(_counts(tmp_path, "other", (X,), first)),
        }
        _wait_digests(replica, counted)
        old_text = config.read_text(encoding="utf-8")
        config.write_text(old_text.replace("models:", "models: [oops", 1), encoding="utf-8")
        assert replica.proc is not None
        replica.proc.send_signal(signal.SIGHUP)
        replica.wait_metric("driftmon_config_reloads_total", 1.0, result="invalid")
        assert replica.running and _digests(replica) == counted

        changed = _config(tmp_path, broker.bootstrap, topic, state, AFTER)
        config.write_text(changed.read_text(encoding="utf-8"), encoding="utf-8")
        replica.proc.send_signal(signal.SIGHUP)
        replica.wait_metric("driftmon_config_reloads_total", 1.0, result="success")
        _send(broker.bootstrap, topic, later)
        expected = _counts(tmp_path, "fleet", AFTER, first + later)
        expected[1] = _counts(tmp_path, "fleet", AFTER, later)[1]  # y: counted from the reload on
        _wait_digests(
            replica,
            {
                "fleet": _digest(expected),
                "other": _digest(_counts(tmp_path, "other", (X,), first + later)),
            },
        )
        assert replica.metrics().total("driftmon_state_records_rejected_total") == 0
        assert replica.stop() == 0
