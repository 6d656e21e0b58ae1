"""`reference.follow_model_version` in a fleet (`state.backend: kafka`): real `driftmon run`
replicas, the real `driftmon reference` commands, the real broker.

The fleet's leader writes each version switch to the registry (cause `model_version`) and
every replica follows it (monitor/fleet_versions.py). The oracle is the digest of the events
binned directly in a profile's edges (as in tests/integration/test_fleet_references_kafka.py):
a reference's ring holds exactly the events binned while some replica had it active or as a
shadow, so after each switch every replica's window must equal the oracle of those events.
"""

from __future__ import annotations

import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer

from monitor.reference import ReferenceProfile, fit_profile
from tests.integration.test_fleet_kafka import (
    MODEL,
    PARTITIONS,
    SPECS,
    _events,
    _Producer,
    _wait_exact,
)
from tests.integration.test_fleet_references_kafka import (
    _activation_records,
    _cli,
    _config,
    _digest,
    _identical,
    _wait_reference,
    _write,
)
from tests.support.broker import TansuBroker
from tests.support.fleet import replica_set, send_to, split_leader, stop_all, wait_shared
from tests.support.waiting import wait_until


def _versioned(version: str, shift: float, seed: int) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    return fit_profile(
        MODEL,
        SPECS,
        {"x": rng.normal(shift, 1.0 + shift, 5_000)},
        {"c": list(rng.choice(["a", "b", "c", "d"], 5_000))},
        model_version=version,
    )


class _Following:
    """A six-partition topic, a registry holding v1's profile (active) and v2's, and the
    configuration of replicas whose registry model follows its versions."""

    def __init__(self, broker: TansuBroker, tmp_path: Path) -> None:
        self.topic = f"fleet-{uuid.uuid4().hex[:8]}"
        self.registry = f"refs-{uuid.uuid4().hex[:8]}"
        broker.create_topic(self.topic, partitions=PARTITIONS)
        following = {"mode": "registry", "follow_model_version": True}
        self.config = _config(tmp_path, broker.bootstrap, self.topic, self.registry, following)
        self.v1, self.v2 = _versioned("v1", 0.0, 5), _versioned("v2", 1.0, 6)
        _cli(self.config, "push", str(_write(tmp_path, "v1", self.v1)), "--activate")
        _cli(self.config, "push", str(_write(tmp_path, "v2", self.v2)))


def _of_version(events: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    return [{**event, "model_version": version} for event in events]


@pytest.mark.parametrize("leader_first", [False, True], ids=["everywhere", "leader-first"])
def test_a_fleet_follows_model_versions_through_the_registry_together_and_exactly(
    broker: TansuBroker, tmp_path: Path, leader_first: bool
) -> None:
    """Two following replicas on v1's profile: once v2 carries the window, one switch to v2's
    profile is written to the registry (cause model_version) and both adopt it with the window
    their v2 shadows filled (exactly the v2 events); once v1 carries it again, one switch back,
    to v1's ring of every event (active, then a shadow). Both export identical statistics.
    Leader-first: the other replica's v2 events are sent once the leader's switch is in the
    registry, so that replica adopts v2 without a v2 shadow as its v2 events arrive, and must
    shadow v1 from the swap on."""
    fleet = _Following(broker, tmp_path)
    topic, registry, config, v1, v2 = fleet.topic, fleet.registry, fleet.config, fleet.v1, fleet.v2
    producer = _Producer({"bootstrap_servers": broker.bootstrap}, topic)
    first = _of_version(_events(600, 1, time.time()), "v1")
    with closing(producer), replica_set(config, tmp_path) as replicas:
        wait_shared(replicas, PARTITIONS)
        _wait_reference(replicas, v1.reference_id)
        producer.send(first)
        _wait_exact(replicas, _digest(v1, first))

        second = _of_version(_events(1_500, 2, time.time()), "v2")  # 1,500 of 2,100: v2 leads
        if leader_first:
            leading, others = split_leader(replicas, topic, PARTITIONS)
            send_to(producer.producer, topic, second[:750], leading)
            wait_until(
                lambda: len(_activation_records(broker.bootstrap, registry)) == 2,
                60,
                interval=0.05,
                message="the leader's switch in the registry",
            )  # the rest then reaches the other replica about when the switch does
            send_to(producer.producer, topic, second[750:], others)
        else:
            producer.send(second)
        _wait_reference(replicas, v2.reference_id)
        _wait_exact(replicas, _digest(v2, second))
        switches = [a for a in _activation_records(broker.bootstrap, registry)]
        assert [a.cause for a in switches] == ["operator", "model_version"]
        assert switches[1].reference_id == v2.reference_id
        assert switches[1].reason == "model_version v2 carries the window"
        assert switches[1].previous and switches[1].previous[0].reference_id == v1.reference_id
        _identical(replicas)

        third = _of_version(_events(2_500, 3, time.time()), "v1")  # 3,100 of 4,600: v1 again
        producer.send(third)
        _wait_reference(replicas, v1.reference_id)
        _wait_exact(replicas, _digest(v1, first + second + third))
        causes = [a.cause for a in _activation_records(broker.bootstrap, registry)]
        assert causes == ["operator", "model_version", "model_version"]
        _identical(replicas)
        stop_all(replicas)


def test_a_version_leading_on_one_replica_s_partitions_only_switches_no_replica(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """v2 events on the partitions of the replica that does not lead only: that replica sees
    v2 carry its own share of the window, yet no replica switches on its own judgement; both
    stay on v1's profile with every event, and the registry holds the operator's activation
    alone (the leader's partitions carry v1)."""
    fleet = _Following(broker, tmp_path)
    topic, registry, config, v1 = fleet.topic, fleet.registry, fleet.config, fleet.v1
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    first = _of_version(_events(600, 1, time.time()), "v1")
    second = _of_version(_events(1_500, 2, time.time()), "v2")
    with closing(producer), replica_set(config, tmp_path) as replicas:
        wait_shared(replicas, PARTITIONS)
        _wait_reference(replicas, v1.reference_id)
        _, others = split_leader(replicas, topic, PARTITIONS)
        send_to(producer, topic, first, list(range(PARTITIONS)))
        send_to(producer, topic, second, others)
        _wait_exact(replicas, _digest(v1, first + second))
        time.sleep(3.0)  # three looks of the leader and several syncs of both
        _wait_exact(replicas, _digest(v1, first + second))
        assert [a.cause for a in _activation_records(broker.bootstrap, registry)] == ["operator"]
        _identical(replicas)
        stop_all(replicas)
