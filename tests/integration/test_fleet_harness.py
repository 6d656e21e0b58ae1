"""The multi-replica harness (tests/support/fleet.py) against today's single-replica daemon.

Real `driftmon run` processes in one consumer group on a real Apache Kafka (its group
coordinator rebalances the way a fleet relies on; tansu's rebalances take 3-25 s), with the
file backend: each replica counts only the partitions it owns. What the harness must show:
the replicas split the partitions, kill -9 / SIGSTOP / SIGTERM / a new replica move them,
a paused replica comes back, and each replica's counters say what it consumed. And the group
join the fleet relies on: a source polled with a 1 ms timeout always applies its assignment
(monitor/group_join.py), which kafka-python 3.0.12 alone does not.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaConsumer

from monitor.group_join import guard_group_join
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import fit_profile, profile_to_json
from monitor.source import KafkaSource
from tests.support.apache_kafka import USERS, ApacheKafka
from tests.support.daemon_harness import daemon_config, model_entry
from tests.support.fleet import Fleet, produce_round_robin

PARTITIONS = 6
MODEL = "fraud"
#: The daemon's login on the SASL listener (the super user: no ACLs needed here).
LOGIN = {
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "admin",
    "sasl_password": USERS["admin"],
}


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """One Apache Kafka for the module."""
    with ApacheKafka(tmp_path_factory.mktemp("apache-kafka")) as broker:
        yield broker


def _topic(kafka: ApacheKafka) -> str:
    topic = f"fleet-harness-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, PARTITIONS)
    return topic


def _fleet(kafka: ApacheKafka, tmp_path: Path) -> Fleet:
    """A fleet config: one model with a file reference, on a fresh 6-partition topic."""
    topic = _topic(kafka)
    rng = np.random.default_rng(11)
    profile = fit_profile(
        MODEL, (FeatureSpec("amount", FeatureKind.NUMERIC),), {"amount": rng.normal(0, 1, 2000)}, {}
    )
    reference = tmp_path / "reference.json"
    reference.write_text(profile_to_json(profile), encoding="utf-8")
    config = daemon_config(
        bootstrap=kafka.bootstrap,
        topics=[topic],
        models=[
            model_entry(MODEL, [("amount", "numeric")], {"mode": "file", "path": str(reference)})
        ],
        state_dir=tmp_path / "unused",  # the harness gives every replica its own state.dir
        kafka=LOGIN,
        evaluation={"interval": "500ms", "min_samples": 10},
    )
    return Fleet(config, tmp_path / "fleet", topic=topic, partitions=PARTITIONS)


def _events(n: int) -> list[bytes]:
    now = time.time()
    return [
        json.dumps({"ts": now, "model": MODEL, "features": {"amount": float(i % 7)}}).encode()
        for i in range(n)
    ]


def _produce(kafka: ApacheKafka, fleet: Fleet, n: int) -> int:
    return produce_round_robin(kafka.client_kwargs("admin"), fleet.topic, _events(n), PARTITIONS)


def _counted(fleet: Fleet, replica: Any) -> float:
    """Events the replica accepted into its windows in its current run."""
    return fleet.metrics(replica).total("driftmon_events_accepted_total", model=MODEL)


def test_two_replicas_split_the_partitions_and_count_their_shares(
    kafka: ApacheKafka, tmp_path: Path
) -> None:
    """Two replicas own disjoint shares of the six partitions and each counts only the events
    of its share (today's file backend: two partial truths that add up to the stream)."""
    with _fleet(kafka, tmp_path) as fleet:
        r1, r2 = fleet.start(2)
        shares = fleet.wait_split()
        assert set(shares) == {"r1", "r2"}
        fleet.wait_ready()
        sent = _produce(kafka, fleet, 600)  # 100 per partition
        fleet.wait_until(
            lambda: _counted(fleet, r1) + _counted(fleet, r2) == sent, 60, "600 events counted"
        )
        for replica in (r1, r2):
            assert _counted(fleet, replica) == 100 * len(shares[replica.name])
            assert fleet.consumed(replica) == 100 * len(shares[replica.name])
        assert r1.process.port != r2.process.port
        assert fleet.status(r1)["models"] and fleet.status(r2)["models"]


def test_kill_pause_resume_terminate_and_add_move_the_partitions(
    kafka: ApacheKafka, tmp_path: Path
) -> None:
    """kill -9 hands a replica's partitions to the survivor; a replica paused past the
    session timeout loses its share and gets one back on SIGCONT; SIGTERM exits 0 and leaves;
    a replica added later takes a share."""
    with _fleet(kafka, tmp_path) as fleet:
        r1, r2 = fleet.start(2)
        fleet.wait_split()

        fleet.kill(r1)
        assert fleet.wait_split() == {"r2": frozenset(range(PARTITIONS))}
        fleet.restart(r1)
        assert set(fleet.wait_split()) == {"r1", "r2"}

        fleet.pause(r2)
        assert fleet.live == [r1]
        assert fleet.wait_split() == {"r1": frozenset(range(PARTITIONS))}
        time.sleep(1.0)  # still paused: r2's process is alive but answers nothing
        assert r2.running and not r2.live
        fleet.resume(r2)
        assert set(fleet.wait_split()) == {"r1", "r2"}
        fleet.wait_ready()

        assert fleet.terminate(r1) == 0
        assert fleet.wait_split() == {"r2": frozenset(range(PARTITIONS))}

        r3 = fleet.add()
        shares = fleet.wait_split()
        assert set(shares) == {"r2", "r3"}
        sent = _produce(kafka, fleet, 60)
        fleet.wait_until(
            lambda: fleet.consumed(r3) == 10 * len(shares["r3"]), 60, "r3 counts its share"
        )
        assert sent == 60
    assert not any(r.running for r in fleet.replicas), "the harness stops what it started"


# -- the stranded group join (monitor/group_join.py) --------------------------------------------

#: Fresh starts per join test; a poll timeout of 1 ms leaves kafka-python 3.0.12's join task
#: in flight across polls, the case the guard is for.
JOIN_STARTS = 8
TINY_POLL_MS = 1


def _group_kwargs(kafka: ApacheKafka) -> dict[str, Any]:
    """A fresh consumer group on the module's broker, with the test suite's fast timeouts."""
    return {
        **kafka.client_kwargs("admin"),
        "group_id": f"join-{uuid.uuid4().hex[:8]}",
        "session_timeout_ms": 3000,
        "heartbeat_interval_ms": 500,
    }


def _joins(
    poll: Callable[[], object], assignment: Callable[[], Collection[object]], within: float
) -> bool:
    """Poll until the member owns all PARTITIONS (True) or `within` s passed (False)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        poll()
        if len(assignment()) == PARTITIONS:
            return True
    return False


def test_a_source_polling_with_a_tiny_timeout_always_gets_its_partitions(
    kafka: ApacheKafka,
) -> None:
    """KafkaSource's consumer, polled with a 1 ms timeout on a fresh topic and group, applies
    the assignment of its rejoin in every one of 8 starts (kafka-python alone strands it)."""
    for _ in range(JOIN_STARTS):
        kafka.create_topic(topic := f"join-{uuid.uuid4().hex[:8]}", PARTITIONS)
        source = KafkaSource(_group_kwargs(kafka), [topic], lambda tps: {}, lambda tps: None)
        try:
            source.connect()
            assert guard_group_join(source._consumer), "this kafka-python has a join to guard"
            joined = _joins(
                partial(source.poll, TINY_POLL_MS / 1000, 100), source.assignment, within=20
            )
        finally:
            source.close()
        assert joined, f"the source never got the {PARTITIONS} partitions of {topic}"


def test_kafka_python_alone_strands_a_member_polling_with_a_tiny_timeout(
    kafka: ApacheKafka,
) -> None:
    """Without the guard, a bare KafkaConsumer polled with a 1 ms timeout is left without its
    partitions in at least one of 8 starts (when this fails, kafka-python fixed its join and
    monitor/group_join.py can go)."""
    stranded = 0
    for _ in range(JOIN_STARTS):
        kafka.create_topic(topic := f"join-{uuid.uuid4().hex[:8]}", PARTITIONS)
        consumer = KafkaConsumer(**_group_kwargs(kafka), enable_auto_commit=False)
        try:
            consumer.subscribe([topic])
            joined = _joins(
                partial(consumer.poll, timeout_ms=TINY_POLL_MS), consumer.assignment, within=8
            )
        finally:
            consumer.close(autocommit=False)
        if not joined:
            stranded += 1
            break
    assert stranded, "kafka-python applied every join: its stranded-join bug may be fixed"
