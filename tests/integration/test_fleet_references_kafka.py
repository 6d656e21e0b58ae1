"""Registry references in a fleet (`state.backend: kafka`, `reference.mode: registry`):
real `driftmon run` replicas, the real `driftmon reference` commands, the real broker.

The oracle is the digest of the events binned directly in a profile's edges (as in
tests/integration/test_fleet_kafka.py). The fold keeps one global ring per reference
(docs/fleet.md, References): a reference's ring holds exactly the events binned while some
replica had it active or pre-warmed, so after each activation and rollback every replica's
window must equal the oracle of precisely those events.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from monitor.reference import ReferenceProfile, fit_profile, layout_for, profile_to_json
from monitor.registry import ActivationRecord, RegistryTable
from monitor.registry import decode_record as decode_registry_record
from monitor.registry_log import RegistryLog
from tests.integration.test_fleet_kafka import (
    MODEL,
    PARTITIONS,
    SPECS,
    _events,
    _model,
    _Producer,
    _statistics,
    _wait_exact,
)
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import (
    DaemonProcess,
    daemon_config,
    model_entry,
    run_cli,
    write_config,
)
from tests.support.fleet import (
    owned_partitions,
    replica_set,
    send_to,
    split_leader,
    stop_all,
    wait_shared,
)
from tests.support.waiting import wait_until


def _profile(shift: float, seed: int) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    return fit_profile(
        MODEL,
        SPECS,
        {"x": rng.normal(shift, 1.0 + shift, 5_000)},
        {"c": list(rng.choice(["a", "b", "c", "d", "zz"][: 4 + int(shift)], 5_000))},
    )


def _digest(profile: ReferenceProfile, events: list[dict[str, Any]]) -> str:
    """The oracle: every event binned directly in the profile's edges, hashed as
    `window_digest` hashes a window."""
    layout, _, _ = layout_for(profile, SPECS)
    numeric = np.asarray(
        [[np.nan if e["features"]["x"] is None else e["features"]["x"] for e in events]],
        dtype=np.float64,
    )
    categorical = (np.asarray([e["features"]["c"] for e in events], dtype=object),)
    counts = layout.histogram(layout.bin_batch(numeric, categorical))
    return hashlib.sha256(counts.astype("<i8").tobytes()).hexdigest()


def _config(
    tmp_path: Path,
    bootstrap: str,
    topic: str,
    registry: str,
    reference: dict[str, Any] | None = None,
    publish_interval: str = "1s",
) -> Path:
    features = [("x", "numeric"), ("c", "categorical")]
    config = daemon_config(
        bootstrap=bootstrap,
        topics=[topic],
        models=[model_entry(MODEL, features, reference or {"mode": "registry"})],
        state_dir=tmp_path / "no-state",
        window={"bucket": "1m", "length": "10m", "allowed_lateness": "1m"},
        evaluation={"interval": "500ms", "min_samples": 100},
    )
    config["references"] = {"topic": registry, "timeout": "10s"}
    config["state"] = {
        "backend": "kafka",
        "topic": f"state-{uuid.uuid4().hex[:8]}",
        "publish_interval": publish_interval,
        "snapshot_interval": "3s",
    }
    return write_config(tmp_path / "driftmon.yaml", config)


def _cli(config: Path, *args: str) -> str:
    done = run_cli("reference", *args, "-c", str(config))
    assert done.returncode == 0, done.stderr
    return done.stdout


def _write(tmp_path: Path, name: str, profile: ReferenceProfile) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(profile_to_json(profile), encoding="utf-8")
    return path


def _wait_reference(replicas: list[DaemonProcess], reference_id: str) -> None:
    def check() -> bool:
        models = [_model(r) for r in replicas]
        return all(m is not None and m["reference_id"] == reference_id for m in models)

    wait_until(check, 30.0, interval=0.2, message=f"{reference_id} active on every replica")


def _wait_shadow(replicas: list[DaemonProcess], reference_id: str) -> None:
    def check() -> bool:
        models = [_model(r) for r in replicas]
        return all(
            m is not None
            and [s["reference_id"] for s in m["reference_view"]["shadows"]] == [reference_id]
            for m in models
        )

    wait_until(check, 30.0, interval=0.2, message=f"a {reference_id} shadow on every replica")


def _identical(replicas: list[DaemonProcess]) -> None:
    models = [_model(r) for r in replicas]
    assert all(m is not None for m in models)
    first = _statistics(models[0])  # type: ignore[arg-type]
    for model in models[1:]:
        assert _statistics(model) == first  # type: ignore[arg-type]


def test_registry_activation_and_rollback_change_the_reference_on_every_replica_exactly(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """Two replicas on six partitions: a pre-warmed activation and a pre-warmed rollback each
    move both replicas to the new reference, whose global window equals the oracle of
    exactly the events binned with it, and both export identical statistics; a third
    replica started afterwards restores the rings from a snapshot and is exact too; an
    activation without a pre-warm moves all three to a ring of the events after it."""
    topic, registry = f"fleet-{uuid.uuid4().hex[:8]}", f"refs-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=PARTITIONS)
    config = _config(tmp_path, broker.bootstrap, topic, registry)
    old, new = _profile(0.0, 5), _profile(1.0, 6)
    assert old.reference_id != new.reference_id
    _cli(config, "push", str(_write(tmp_path, "old", old)), "--activate")
    producer = _Producer({"bootstrap_servers": broker.bootstrap}, topic)
    late = DaemonProcess(config, tmp_path / "late")
    phases = [_events(600, seed, time.time()) for seed in range(1, 5)]
    with closing(producer), late, replica_set(config, tmp_path) as replicas:
        _wait_reference(replicas, old.reference_id)
        producer.send(phases[0])
        _wait_exact(replicas, _digest(old, phases[0]))

        assert "pre-warming" in _cli(config, "push", str(_write(tmp_path, "new", new)), "--prewarm")
        _wait_shadow(replicas, new.reference_id)
        producer.send(phases[1])
        _wait_exact(replicas, _digest(old, phases[0] + phases[1]))
        _cli(config, "activate", "--model", MODEL, new.reference_id)
        _wait_reference(replicas, new.reference_id)
        _wait_exact(replicas, _digest(new, phases[1]))
        _identical(replicas)
        producer.send(phases[2])
        _wait_exact(replicas, _digest(new, phases[1] + phases[2]))

        assert "pre-warming" in _cli(config, "push", str(tmp_path / "old.json"), "--prewarm")
        _wait_shadow(replicas, old.reference_id)
        producer.send(phases[3])
        _wait_exact(replicas, _digest(new, phases[1] + phases[2] + phases[3]))
        _cli(config, "rollback", "--model", MODEL, "--reason", "back")
        _wait_reference(replicas, old.reference_id)
        # the old reference's ring: the events binned while it was active or pre-warmed
        rolled_back = _digest(old, phases[0] + phases[1] + phases[3])
        _wait_exact(replicas, rolled_back)
        _identical(replicas)
        # a replica started now restores a snapshot holding both rings with their ids
        late.start()
        _wait_exact([late, *replicas], rolled_back)
        folded = [line for line in late.log_lines() if line.get("event") == "state topic folded"]
        assert folded and folded[0]["from_snapshot"] is True, "the cold start used a snapshot"
        replicas.append(late)
        _identical(replicas)
        for replica in replicas:
            scraped = replica.metrics()
            assert (
                scraped.value("driftmon_state_records_rejected_total", reason="too_many_references")
                == 0
            )
            assert (
                scraped.value("driftmon_reference_activations_total", model=MODEL, cause="rollback")
                == 1
            )
        # without a pre-warm: the new reference's ring is made by the first commit binned
        # with it, so it holds exactly the events after every replica's swap
        third = _profile(2.0, 7)
        _cli(config, "push", str(_write(tmp_path, "third", third)), "--activate")
        _wait_reference(replicas, third.reference_id)
        after = _events(600, 5, time.time())
        producer.send(after)
        _wait_exact(replicas, _digest(third, after))
        _identical(replicas)
        stop_all(replicas)


def _current(model: dict[str, Any] | None, feature: str) -> int | None:
    """The current window's values of `feature` in a model's /status entry (None: no entry)."""
    if model is None:
        return None
    return next(int(f["current_samples"]) for f in model["features"] if f["name"] == feature)


def registry_table(bootstrap: str, registry: str) -> RegistryTable:
    """The registry topic folded to its end."""
    log = RegistryLog({"bootstrap_servers": bootstrap}, registry)
    table = RegistryTable()
    try:
        log.read_to_end(table)
    finally:
        log.close()
    return table


def one_reference(replicas: list[DaemonProcess]) -> bool:
    """Whether every replica serves the model with one and the same reference."""
    models = [_model(r) for r in replicas]
    ids = {m["reference_id"] if m is not None else "" for m in models}
    return len(ids) == 1 and "" not in ids


def _activation_records(bootstrap: str, registry: str) -> list[ActivationRecord]:
    """Every activation record in the registry topic, in log order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(registry, p) for p in consumer.partitions_for_topic(registry)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        found: list[ActivationRecord] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1_000).values():
                for record in records:
                    decoded = decode_registry_record(record.value)
                    if isinstance(decoded, ActivationRecord):
                        found.append(decoded)
        return found
    finally:
        consumer.close()


def test_a_fleet_warm_up_is_published_once_and_every_replica_adopts_it(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """Two `warmup` replicas and one registry: the replica owning the lowest partition
    publishes its fitted profile with exactly one activation (cause warmup), both replicas
    adopt it, and their global window equals the oracle of the events after the warm-up."""
    topic, registry = f"fleet-{uuid.uuid4().hex[:8]}", f"refs-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=PARTITIONS)
    config = _config(
        tmp_path, broker.bootstrap, topic, registry, {"mode": "warmup", "warmup_events": 300}
    )
    producer = _Producer({"bootstrap_servers": broker.bootstrap}, topic)
    with closing(producer), replica_set(config, tmp_path) as replicas:
        wait_shared(replicas, PARTITIONS)
        # the warm-up: an hour old, so none of it is left in the window after the next phase
        producer.send(_events(2_400, 1, time.time() - 3_600))

        def diagnose() -> str:
            return "\n".join(r.tail(2500) for r in replicas)

        wait_until(
            lambda: one_reference(replicas),
            60.0,
            interval=0.2,
            message="one warm-up reference everywhere",
            on_timeout=diagnose,
        )
        table = registry_table(broker.bootstrap, registry)
        activation = table.activations[MODEL]
        assert activation.cause == "warmup"
        assert [a.cause for a in _activation_records(broker.bootstrap, registry)] == ["warmup"]
        model = _model(replicas[0])
        assert model is not None and model["reference_id"] == activation.reference_id
        profile = table.profiles[activation.reference_id].profile
        assert profile.events == 300

        after = _events(1_500, 2, time.time())
        producer.send(after)
        _wait_exact(replicas, _digest(profile, after))
        _identical(replicas)
        assert not (tmp_path / "no-state").exists(), "the warm-up profile stays off the disk"
        stop_all(replicas)


def test_events_counted_with_a_replica_s_own_warm_up_fit_are_read_again_into_the_fleet_s(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """Events a replica counts with its own warm-up fit before it adopts the registry's
    reference reach every replica's window: bin for bin the oracle of the 1,500 events after
    the two warm-ups (before the fix, none of them)."""
    # The other replica fits on exactly its 300 events first; then one burst gives the leader
    # its 300 warm-up events and 600 more, in order on one partition, and the other replica
    # 900 on its partitions, all counted with each one's own fit until it adopts.
    topic, registry = f"fleet-{uuid.uuid4().hex[:8]}", f"refs-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=PARTITIONS)
    config = _config(
        tmp_path, broker.bootstrap, topic, registry, {"mode": "warmup", "warmup_events": 300}
    )
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    with closing(producer), replica_set(config, tmp_path) as replicas:
        wait_shared(replicas, PARTITIONS)
        leading, others = split_leader(replicas, topic, PARTITIONS)
        other = next(r for r in replicas if 0 not in owned_partitions(r, topic))
        events = _events(2_100, 5, time.time())
        send_to(producer, topic, events[:300], others)

        def own_fit() -> bool:
            model = _model(other)
            return model is not None and bool(model["reference_id"])

        wait_until(own_fit, 60.0, interval=0.1, message="the other replica's own warm-up fit")
        leader_events, other_events = events[300:1_200], events[1_200:]
        for event in leader_events:  # its warm-up, then 600 more, in order on one partition
            producer.send(topic, msgspec.json.encode(event), partition=leading[0])
        send_to(producer, topic, other_events, others)

        wait_until(
            lambda: one_reference(replicas),
            60.0,
            interval=0.2,
            message="one warm-up reference everywhere",
        )
        table = registry_table(broker.bootstrap, registry)
        profile = table.profiles[table.activations[MODEL].reference_id].profile
        assert profile.events == 300

        def counts() -> list[int | None]:  # c is never missing: one value an event
            return [_current(_model(r), "c") for r in replicas]

        wait_until(
            lambda: counts() == [1_500, 1_500],
            60.0,
            interval=0.5,
            message="1,500 events in every replica's window",
            on_timeout=lambda: f"windows hold {counts()} events",
        )
        _wait_exact(replicas, _digest(profile, leader_events[300:] + other_events))
        _identical(replicas)
        stop_all(replicas)


def test_a_replica_killed_before_any_commit_leaves_its_warm_up_sample_to_no_window(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """A replica warms up on 300 events, reads 200 more and is killed before its first commit
    (its publish interval 60 s, the next one's 1 s; the fleet's window shows committed counts
    only): the next replica reads the partitions again from the start and, by the first one's
    `sample` records, leaves the 300 out; its window is bin for bin the oracle of the 200 (it
    held all 500 before the records existed)."""
    topic, registry = f"fleet-{uuid.uuid4().hex[:8]}", f"refs-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=PARTITIONS)
    reference = {"mode": "warmup", "warmup_events": 300}
    config = _config(tmp_path, broker.bootstrap, topic, registry, reference, "60s")
    events = _events(500, 11, time.time())
    everywhere = list(range(PARTITIONS))
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    with closing(producer):
        with DaemonProcess(config, tmp_path / "first") as first:
            first.start()
            wait_shared([first], PARTITIONS)
            send_to(producer, topic, events[:300], everywhere)
            wait_until(lambda: one_reference([first]), 60.0, message="the warm-up reference")
            send_to(producer, topic, events[300:], everywhere)
            first.wait_metric("driftmon_records_consumed_total", 500, timeout=60, topic=topic)
            assert _current(_model(first), "c") == 0  # nothing committed yet: no window
            first.kill()
        table = registry_table(broker.bootstrap, registry)
        profile = table.profiles[table.activations[MODEL].reference_id].profile
        document = yaml.safe_load(config.read_text(encoding="utf-8"))
        document["state"]["publish_interval"] = "1s"  # the next replica commits at once
        config = write_config(tmp_path / "second.yaml", document)
        with DaemonProcess(config, tmp_path / "second") as second:
            second.start()
            second.wait_metric("driftmon_records_consumed_total", 500, timeout=90, topic=topic)
            _wait_exact([second], _digest(profile, events[300:]))
            assert _current(_model(second), "c") == 200
            stop_all([second])
