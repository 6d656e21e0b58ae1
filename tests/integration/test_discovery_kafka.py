"""`features: auto` with a real `driftmon run` on the real tansu broker.

Acceptance of issue 12, discovery: a stream with 300 numeric, 50 categorical and 10,000
one-off names monitors exactly the 350 (max_features >= 350), counts the 10,000 others in
`driftmon_unmonitored_features`, keeps the series count bounded (no one-off name in any
label), and the discovered kinds match the generator's ground truth, including features with
a minority of values of the other kind (their minority is counted as invalid values).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from monitor.metrics import cardinality
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import DaemonProcess, daemon_config, produce, write_config
from tests.support.waiting import wait_until

N_NUMERIC, N_CATEGORICAL, N_ONE_OFF = 300, 50, 10_000
EVENTS, WARMUP = 2_500, 500
MIXED = ("n000", "n001", "n002")  # numeric, one value in 10 a string
BOOLS = tuple(f"c{j:03d}" for j in range(10))  # categorical as true/false


def truth() -> dict[str, str]:
    """The generator's features and kinds."""
    kinds = {f"n{j:03d}": "numeric" for j in range(N_NUMERIC)}
    kinds.update({f"c{j:03d}": "categorical" for j in range(N_CATEGORICAL)})
    return kinds


def stream(seed: int) -> list[bytes]:
    """EVENTS events: every feature (5 % absent), and 4 one-off names per event."""
    rng = np.random.default_rng(seed)
    start = time.time() - 300.0
    numeric = rng.normal(size=(EVENTS, N_NUMERIC)).round(4)
    categories = rng.integers(0, 6, size=(EVENTS, N_CATEGORICAL))
    absent = rng.random((EVENTS, N_NUMERIC + N_CATEGORICAL)) < 0.05
    per_event = N_ONE_OFF // EVENTS
    out = []
    for i in range(EVENTS):
        features: dict[str, Any] = {}
        for j in range(N_NUMERIC):
            if not absent[i, j]:
                name = f"n{j:03d}"
                features[name] = "oops" if name in MIXED and i % 10 == 0 else float(numeric[i, j])
        for j in range(N_CATEGORICAL):
            if not absent[i, N_NUMERIC + j]:
                name = f"c{j:03d}"
                value = int(categories[i, j])
                features[name] = bool(value % 2) if name in BOOLS else f"v{value}"
        for k in range(per_event):
            features[f"once-{i * per_event + k}"] = float(k)
        event = {"ts": start + i * 0.1, "model": "auto", "features": features}
        out.append(msgspec.json.encode(event))
    return out


@pytest.mark.slow
def test_auto_features_monitor_exactly_the_real_ones_and_count_the_rest(
    broker: TansuBroker, make_topic: Any, tmp_path: Path
) -> None:
    """300 numeric + 50 categorical monitored with the right kinds; 10,000 one-offs counted."""
    topic = make_topic(1)
    produce(broker.bootstrap, topic, stream(seed=5))
    model = {
        "name": "auto",
        "features": "auto",
        "max_features": 400,
        "reference": {"mode": "warmup", "warmup_events": WARMUP},
    }
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        models=[model],
        state_dir=tmp_path / "state",
        evaluation={"interval": "1s", "min_samples": 100},
        kafka={"max_poll_records": 250},
    )
    with DaemonProcess(write_config(tmp_path / "driftmon.yaml", config), tmp_path) as daemon:
        daemon.start()

        def settled() -> dict[str, Any] | None:
            status = daemon.status()["models"][0]
            discovery = status["discovery"]
            done = discovery and not discovery["discovering"]
            counted = status["features"] and status["features"][0]["current_samples"] > 0
            return status if done and counted and daemon.ready() else None

        wait_until(
            lambda: (
                daemon.metrics().value("driftmon_events_accepted_total", model="auto") >= EVENTS
            ),
            120,
            message="every event read",
            on_timeout=daemon.tail,
        )
        status = wait_until(settled, 60, message="discovered and ready", on_timeout=daemon.tail)
        daemon.wait_evaluations(1)
        status = daemon.status()["models"][0]
        # the gauge comes from the last evaluation's snapshot, which may predate the status
        daemon.wait_evaluations(1)
        scraped = daemon.metrics()

    kinds = {f["name"]: f["kind"] for f in status["features"]}
    assert kinds == truth()
    discovery = status["discovery"]
    assert discovery["monitored"] == N_NUMERIC + N_CATEGORICAL
    assert discovery["unmonitored"] == N_ONE_OFF and not discovery["unmonitored_saturated"]
    assert len(discovery["unmonitored_names"]) == 20
    assert all(n.startswith("once-") for n in discovery["unmonitored_names"])
    assert scraped.value("driftmon_unmonitored_features", model="auto") == N_ONE_OFF
    assert scraped.value("driftmon_model_features", model="auto") == N_NUMERIC + N_CATEGORICAL

    labelled = {
        dict(key).get("feature")
        for (_, key) in scraped.series
        if dict(key).get("feature") is not None
    }
    assert labelled == set(truth())  # no one-off name ever became a label value
    assert len(scraped) <= cardinality(1, N_NUMERIC + N_CATEGORICAL, 1, 1) + 20 * 14
    for name in MIXED:  # the minority strings of a numeric feature are invalid values
        invalid = scraped.value("driftmon_feature_invalid_values_total", model="auto", feature=name)
        assert invalid > 0, name
    assert scraped.value("driftmon_feature_invalid_values_total", model="auto", feature="n100") == 0
