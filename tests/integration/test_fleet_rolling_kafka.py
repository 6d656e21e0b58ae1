"""Rolling references in a fleet with real `driftmon run` processes on tansu."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack, closing
from pathlib import Path

import numpy as np
import yaml

from tests.integration.test_fleet_kafka import PARTITIONS, _events, _model, _Producer, _statistics
from tests.integration.test_fleet_references_kafka import _config, one_reference
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import DaemonProcess, write_config
from tests.support.fleet import replica_set, stop_all, wait_shared
from tests.support.waiting import wait_until

HOUR = 3600.0


def _identical(replicas: list[DaemonProcess]) -> bool:
    """Whether every replica serves the model with the same statistics."""
    models = [_model(r) for r in replicas]
    if any(m is None for m in models):
        return False
    first = _statistics(models[0])  # type: ignore[arg-type]
    return all(_statistics(m) == first for m in models[1:])  # type: ignore[arg-type]


def _three_hours(producer: _Producer, now: float) -> dict[str, int]:
    """Send 3,000 events over the 3 hours before `now` in time order (the last one at `now`);
    the values per feature in the lagged hour (lag 1 h, length 1 h: the hour before the
    last one, missing x left out), the oracle of every replica's lagged reference."""
    rng = np.random.default_rng(7)
    times = np.sort(rng.uniform(now - 3 * HOUR, now, 3_000))
    times[-1] = now
    events = _events(3_000, 2, now)
    for event, ts in zip(events, times.tolist(), strict=True):
        event["ts"] = ts
    producer.send(events)
    lagged = int((now - HOUR) // HOUR)
    in_span = [e for e, t in zip(events, times.tolist(), strict=True) if int(t // HOUR) == lagged]
    return {"c": len(in_span), "x": sum(1 for e in in_span if e["features"]["x"] is not None)}


def test_two_rolling_replicas_hold_the_same_lagged_reference_of_the_lagged_hour(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """Two `rolling` replicas adopt one warm-up profile; each one's lagged reference holds
    exactly the values of the events in the lagged hour (per feature, missing x left out:
    the oracle counts the produced events), and both export identical statistics."""
    topic, registry = f"fleet-{uuid.uuid4().hex[:8]}", f"refs-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=PARTITIONS)
    reference = {"mode": "rolling", "warmup_events": 300, "lag": "1h", "length": "1h"}
    config = _config(tmp_path, broker.bootstrap, topic, registry, reference)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    # replicas read their partitions at their own pace: a lateness of 2 h admits every event
    # of the 3 h stream whatever the skew, so the lagged hour holds all of its events
    data["window"]["allowed_lateness"] = "2h"
    config = write_config(config, data)
    producer = _Producer({"bootstrap_servers": broker.bootstrap}, topic)
    with closing(producer), replica_set(config, tmp_path) as replicas:
        wait_shared(replicas, PARTITIONS)
        now = time.time()
        producer.send(_events(2_400, 1, now - 3.5 * HOUR))  # the warm-up, 3.5 h old

        wait_until(
            lambda: one_reference(replicas),
            60.0,
            interval=0.2,
            message="one warm-up reference everywhere",
        )
        expected = _three_hours(producer, now)

        def lagged_reference() -> bool:
            models = [_model(r) for r in replicas]
            return all(
                m is not None
                and {f["name"]: f["reference_samples"] for f in m["features"]} == expected
                for m in models
            )

        wait_until(
            lagged_reference,
            90.0,
            interval=0.5,
            message=f"{expected} values in the lagged hour on every replica",
            on_timeout=lambda: str([_model(r) for r in replicas])[:3000],
        )
        # the lagged hour can be complete on both before either has folded the other's last
        # commit of the current window: the statistics agree once both have
        wait_until(
            lambda: _identical(replicas),
            60.0,
            interval=0.5,
            message="identical statistics on both replicas",
            on_timeout=lambda: str([_model(r) for r in replicas])[:3000],
        )
        stop_all(replicas)


def test_a_rolling_model_keeps_its_lagged_reference_across_an_added_feature(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """Two `rolling` replicas on x, c hold the lagged hour; restarted on x, y, c they warm y
    up, adopt the extension, and x and c keep exactly the lagged hour's values while y,
    counted from the extension on, has none in it yet."""
    topic, registry = f"fleet-{uuid.uuid4().hex[:8]}", f"refs-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=PARTITIONS)
    reference = {"mode": "rolling", "warmup_events": 300, "lag": "1h", "length": "1h"}
    config = _config(tmp_path, broker.bootstrap, topic, registry, reference)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["window"]["allowed_lateness"] = "2h"  # as above: every event of the stream admitted
    before = write_config(tmp_path / "before.yaml", data)
    data["models"][0]["features"].insert(1, {"name": "y", "kind": "numeric"})
    # a fresh consumer group (the state topic, not the group, carries the fleet's state):
    # tansu keeps a member that left a group as its leader, so a group whose every member was
    # replaced can stall in SyncGroup errors (measured: 7 of 10 whole-fleet restarts)
    data["kafka"]["group_id"] = f"{data['kafka']['group_id']}-after"
    added = write_config(tmp_path / "after.yaml", data)
    producer = _Producer({"bootstrap_servers": broker.bootstrap}, topic)
    with closing(producer), ExitStack() as stack:
        replicas = stack.enter_context(replica_set(before, tmp_path))
        wait_shared(replicas, PARTITIONS)
        now = time.time()
        producer.send(_events(2_400, 1, now - 3.5 * HOUR))
        wait_until(
            lambda: all((_model(r) or {}).get("reference_id") for r in replicas),
            60.0,
            interval=0.2,
            message="a warm-up reference",
        )
        first = (_model(replicas[0]) or {})["reference_id"]
        expected = _three_hours(producer, now)
        rng = np.random.default_rng(8)

        def lagged_reference(want: dict[str, int]) -> bool:
            models = [_model(r) for r in replicas]
            return all(
                m is not None and {f["name"]: f["reference_samples"] for f in m["features"]} == want
                for m in models
            )

        def diagnose() -> str:
            return str([_model(r) for r in replicas])[:3000]

        wait_until(
            lambda: lagged_reference(expected),
            90.0,
            interval=0.5,
            message=f"{expected} values in the lagged hour",
            on_timeout=diagnose,
        )
        stop_all(replicas)

        replicas = stack.enter_context(replica_set(added, tmp_path, prefix="s"))
        wait_shared(replicas, PARTITIONS)
        # y's warm-up, at the last event's time: the lagged hour stays where it was
        more = _events(1_200, 3, now)
        for event in more:
            event["ts"] = now
            event["features"]["y"] = float(rng.normal())
        producer.send(more)
        wait_until(
            lambda: all(
                (_model(r) or {}).get("reference_id") not in (None, first) for r in replicas
            ),
            90.0,
            interval=0.3,
            message="the extension with y adopted",
            on_timeout=diagnose,
        )
        wait_until(
            lambda: lagged_reference({**expected, "y": 0}),
            60.0,
            interval=0.5,
            message=f"{expected} values in the lagged hour after the change",
            on_timeout=diagnose,
        )
        wait_until(
            lambda: _identical(replicas),
            60.0,
            interval=0.5,
            message="identical statistics on both replicas",
            on_timeout=diagnose,
        )
        stop_all(replicas)
