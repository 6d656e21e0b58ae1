"""`driftmon run` on the real broker with features the warm-up cannot fit, the README quick
start (example config + `driftmon simulate`), and late events outside the window.

Before the fix each of the first two made `driftmon run` exit 1 ("the reference sample has no
finite value") and fail again on every restart from the same checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tests.support.broker import TansuBroker
from tests.support.daemon_harness import (
    REPO,
    DaemonProcess,
    daemon_config,
    model_entry,
    produce,
    run_cli,
    write_config,
)
from tests.support.waiting import wait_until

FEATURES = [("a", "numeric"), ("b", "numeric"), ("c", "categorical")]
T0 = 1_790_000_040.0  # a minute boundary, in the past


def events(
    model: str, n: int, t0: float, rng: np.random.Generator, **fixed: Any
) -> Iterator[bytes]:
    """n events one tenth of a second apart; `fixed` pins a feature's value (absent: missing)."""
    for i in range(n):
        features: dict[str, Any] = {
            "a": float(rng.normal()),
            "b": float(rng.normal(5.0)),
            "c": str(rng.choice(["x", "y", "z"])),
        }
        for name, value in fixed.items():
            if value == "absent":
                features.pop(name)
            else:
                features[name] = value
        yield json.dumps({"ts": t0 + i * 0.1, "model": model, "features": features}).encode()


def readiness(daemon: DaemonProcess, model: str) -> dict[str, float]:
    """driftmon_feature_reference_ready of every feature of `model`."""
    found = daemon.metrics().find("driftmon_feature_reference_ready", model=model)
    return {labels["feature"]: value for labels, value in found}


def status_features(daemon: DaemonProcess, model: str) -> dict[str, dict[str, Any]]:
    """/status features of `model` by name."""
    for entry in daemon.status()["models"]:
        if entry["model"] == model:
            return {f["name"]: f for f in entry["features"]}
    raise AssertionError(f"{model} not in /status")


def test_unfittable_features_never_stop_the_daemon_and_survive_kill_restart(
    tmp_path: Path, broker: TansuBroker, topic: str
) -> None:
    """b "hostile" (warm-up), c null (rolling): the daemon runs, reports, restarts, recovers."""
    rng = np.random.default_rng(11)
    warm = {"mode": "warmup", "warmup_events": 1000}
    rolling = {"mode": "rolling", "warmup_events": 1000, "lag": "1h", "length": "1h"}
    config = write_config(
        tmp_path / "driftmon.yaml",
        daemon_config(
            bootstrap=broker.bootstrap,
            topics=[topic],
            models=[model_entry("w", FEATURES, warm), model_entry("r", FEATURES, rolling)],
            state_dir=tmp_path / "state",
        ),
    )
    produce(broker.bootstrap, topic, events("w", 1500, T0, rng, b="hostile"))
    produce(broker.bootstrap, topic, events("r", 1500, T0, rng, c=None))
    with DaemonProcess(config, tmp_path / "run") as daemon:
        daemon.start()
        daemon.wait_metric("driftmon_events_accepted_total", 1500, model="w")
        daemon.wait_metric("driftmon_feature_reference_ready", 1, model="w", feature="a")
        assert readiness(daemon, "w") == {"a": 1, "b": 0, "c": 1}
        # rolling: bins fitted for a and b, but the lagged hour holds no event yet
        assert readiness(daemon, "r") == {"a": 0, "b": 0, "c": 0}
        metrics = daemon.metrics()
        assert metrics.value("driftmon_model_reference_ready", model="w") == 1
        assert metrics.value("driftmon_model_reference_ready", model="r") == 0
        assert metrics.get("driftmon_feature_ks_statistic", model="w", feature="a") is not None
        assert metrics.value("driftmon_feature_invalid_values_total", model="w", feature="b") > 0
        features = status_features(daemon, "w")
        assert features["b"]["reference_ready"] is False
        assert "no finite value" in features["b"]["reference_note"]
        assert "no category value" in status_features(daemon, "r")["c"]["reference_note"]
        wait_until((tmp_path / "state" / "checkpoint.npz").exists, 10, message="checkpoint")
        daemon.kill()

        daemon.start()  # the same checkpoint: used to exit 1 again
        daemon.wait_ready(30)
        assert readiness(daemon, "w") == {"a": 1, "b": 0, "c": 1}
        assert daemon.running
        # b turns up with numbers: its warm-up is repeated over the next 1,000 events
        produce(broker.bootstrap, topic, events("w", 1000, T0 + 150, rng))
        daemon.wait_metric("driftmon_feature_reference_ready", 1, model="w", feature="b")
        assert readiness(daemon, "w") == {"a": 1, "b": 1, "c": 1}
        assert daemon.stop() == 0


def test_the_readme_quick_start_config_with_simulate_runs(
    tmp_path: Path, broker: TansuBroker, topic: str
) -> None:
    """examples/driftmon.yaml's fraud model fed by `driftmon simulate`: every feature ready."""
    example = yaml.safe_load((REPO / "examples" / "driftmon.yaml").read_text())
    fraud = next(m for m in example["models"] if m["name"] == "fraud")
    fraud["reference"]["warmup_events"] = 1000
    config = daemon_config(
        bootstrap=broker.bootstrap, topics=[topic], models=[fraud], state_dir=tmp_path / "state"
    )
    path = write_config(tmp_path / "driftmon.yaml", config)
    sent = run_cli(
        "simulate", "--bootstrap", broker.bootstrap, "--topic", topic, "--models", "fraud",
        "--events", "1500", "--rate", "0",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    with DaemonProcess(path, tmp_path / "run") as daemon:
        daemon.start()
        daemon.wait_metric("driftmon_events_accepted_total", 1500, model="fraud")
        daemon.wait_metric("driftmon_feature_reference_ready", 1, model="fraud", feature="amount")
        features = [f["name"] for f in fraud["features"]]
        assert readiness(daemon, "fraud") == dict.fromkeys(features, 1)
        daemon.wait_ready(30)
        assert daemon.stop() == 0


def test_events_within_lateness_but_before_the_window_are_counted_outside_window(
    tmp_path: Path, broker: TansuBroker, topic: str
) -> None:
    """They are neither accepted into the current window nor silently dropped."""
    rng = np.random.default_rng(12)
    config = write_config(
        tmp_path / "driftmon.yaml",
        daemon_config(
            bootstrap=broker.bootstrap,
            topics=[topic],
            models=[model_entry("w", FEATURES, {"mode": "warmup", "warmup_events": 100})],
            state_dir=tmp_path / "state",
        ),
    )  # window: 10 one-minute buckets, allowed lateness 1m
    head = T0 + 3600
    produce(broker.bootstrap, topic, events("w", 100, T0, rng))
    produce(broker.bootstrap, topic, events("w", 10, head, rng))
    produce(broker.bootstrap, topic, events("w", 5, head - 590, rng))  # bucket head - 10
    produce(broker.bootstrap, topic, events("w", 7, head - 900, rng))  # beyond the lateness
    with DaemonProcess(config, tmp_path / "run") as daemon:
        daemon.start()
        scrape = daemon.wait_metric(
            "driftmon_records_rejected_total", 7, topic=topic, reason="too_late"
        )
        scrape = daemon.wait_metric(
            "driftmon_records_rejected_total", 5, topic=topic, reason="outside_window"
        )
        assert scrape.value("driftmon_events_accepted_total", model="w") == 110
        daemon.wait_metric(
            "driftmon_feature_window_samples", 10, model="w", feature="a", window="current"
        )
        assert daemon.stop() == 0
