"""The fleet (`state.backend: kafka`) with real `driftmon run` processes on the real broker.

The oracle: the count matrix of every event produced, binned directly with the reference's
layout (`bin_batch` + `histogram`, not the daemon's counting path), hashed the way
`ModelEvaluation.window_digest` hashes a window. Every live replica's global current window
must have that digest, and all replicas must export identical statistics.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import yaml
from kafka import KafkaProducer

from monitor.fleet_records import ChunkRecord, encode_claim, encode_commit, model_increment
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import fit_profile, layout_for, profile_to_json
from monitor.state_log import StateLog
from tests.support.apache_kafka import USERS, ApacheKafka
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import DaemonProcess, daemon_config, model_entry, write_config
from tests.support.fleet import partitions_owned, replica_set, stop_all, wait_shared
from tests.support.waiting import wait_until

MODEL = "fleet"
SPECS = (FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("c", FeatureKind.CATEGORICAL))
PARTITIONS = 6


def _reference(path: Path) -> None:
    rng = np.random.default_rng(5)
    profile = fit_profile(
        MODEL,
        SPECS,
        {"x": rng.normal(0.0, 1.0, 5_000)},
        {"c": list(rng.choice(["a", "b", "c", "d"], 5_000))},
    )
    path.write_text(profile_to_json(profile), encoding="utf-8")


def _events(n: int, seed: int, start: float) -> list[dict[str, Any]]:
    """n events within four minutes before `start`; some x missing, some unseen categories."""
    rng = np.random.default_rng(seed)
    xs = rng.normal(0.3, 1.2, n)
    cats = rng.choice(["a", "b", "c", "d", "zz"], n)
    times = start - 240.0 + np.sort(rng.uniform(0.0, 240.0, n))
    out = []
    for i in range(n):
        x = None if i % 17 == 0 else float(xs[i])
        out.append({"ts": float(times[i]), "model": MODEL, "features": {"x": x, "c": str(cats[i])}})
    return out


def _digest(reference: Path, events: list[dict[str, Any]]) -> tuple[str, int]:
    """The oracle: the digest of every event binned directly with the reference's layout."""
    profile_text = reference.read_text(encoding="utf-8")
    from monitor.reference import profile_from_json

    layout, _, _ = layout_for(profile_from_json(profile_text), SPECS)
    numeric = np.asarray(
        [[np.nan if e["features"]["x"] is None else e["features"]["x"] for e in events]],
        dtype=np.float64,
    )
    categorical = (np.asarray([e["features"]["c"] for e in events], dtype=object),)
    counts = layout.histogram(layout.bin_batch(numeric, categorical))
    return hashlib.sha256(counts.astype("<i8").tobytes()).hexdigest(), int(counts.sum())


class _Producer:
    """Sends events round-robin over the partitions, optionally at a steady rate in a thread."""

    def __init__(self, client: dict[str, Any], topic: str) -> None:
        self.topic = topic
        self.producer = KafkaProducer(**client, linger_ms=5)
        self.sent = 0

    def send(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.producer.send(
                self.topic, msgspec.json.encode(event), partition=self.sent % PARTITIONS
            )
            self.sent += 1
        self.producer.flush(timeout=60)

    def trickle(self, events: list[dict[str, Any]], seconds: float) -> threading.Thread:
        """Send `events` evenly over `seconds` in a background thread."""

        def run() -> None:
            chunks = max(1, int(seconds * 10))
            size = max(1, len(events) // chunks + 1)
            for i in range(0, len(events), size):
                self.send(events[i : i + size])
                time.sleep(0.1)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.producer.close()


def _config(
    tmp_path: Path, bootstrap: str, topic: str, kafka: dict[str, Any] | None = None
) -> Path:
    reference = tmp_path / "reference.json"
    config = daemon_config(
        bootstrap=bootstrap,
        topics=[topic],
        models=[
            model_entry(
                MODEL,
                [("x", "numeric"), ("c", "categorical")],
                {"mode": "file", "path": str(reference)},
            )
        ],
        state_dir=tmp_path / "no-state",
        kafka=kafka,
        window={"bucket": "1m", "length": "10m", "allowed_lateness": "1m"},
        evaluation={"interval": "500ms", "min_samples": 100},
    )
    config["state"] = {
        "backend": "kafka",
        "topic": f"state-{uuid.uuid4().hex[:8]}",
        "publish_interval": "1s",
        "snapshot_interval": "3s",
    }
    return write_config(tmp_path / "driftmon.yaml", config)


def _model(replica: DaemonProcess) -> dict[str, Any] | None:
    try:
        models = replica.status()["models"]
    except Exception:  # not serving yet, or restarting
        return None
    return next((m for m in models if m["model"] == MODEL), None)


def _statistics(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in f.items() if k != "evaluated_at"} for f in model["features"]]


def _wait_exact(replicas: list[DaemonProcess], digest: str, timeout: float = 90.0) -> None:
    def check() -> bool:
        models = [_model(r) for r in replicas]
        return all(m is not None and m["window_digest"] == digest for m in models)

    def diagnose() -> str:
        return (
            json.dumps([(m or {}).get("window_digest", "?") for m in (_model(r) for r in replicas)])
            + f" want {digest}\n"
            + replicas[0].tail(3000)
        )

    wait_until(check, timeout, interval=0.5, message="every replica exact", on_timeout=diagnose)


@pytest.fixture(scope="module")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """A real Apache Kafka: its group coordinator rebalances the way the fleet relies on."""
    with ApacheKafka(tmp_path_factory.mktemp("apache-kafka")) as kafka:
        yield kafka


def _tansu_setup(broker: TansuBroker, tmp_path: Path) -> tuple[Path, _Producer, Path]:
    topic = f"fleet-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=PARTITIONS)
    _reference(tmp_path / "reference.json")
    config = _config(tmp_path, broker.bootstrap, topic)
    return config, _Producer({"bootstrap_servers": broker.bootstrap}, topic), tmp_path


def _apache_setup(
    kafka: ApacheKafka, tmp_path: Path, partitions: int = PARTITIONS
) -> tuple[Path, _Producer, Path]:
    topic = f"fleet-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions)
    _reference(tmp_path / "reference.json")
    login = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "admin",
        "sasl_password": USERS["admin"],
    }
    config = _config(tmp_path, kafka.bootstrap, topic, login)
    return config, _Producer(kafka.client_kwargs("admin"), topic), tmp_path


def _state_topic(config: Path) -> str:
    return str(yaml.safe_load(config.read_text(encoding="utf-8"))["state"]["topic"])


def _snapshot_published(replica: DaemonProcess) -> bool:
    """Whether the replica's log says it published a state snapshot."""
    return any(line.get("event") == "state snapshot published" for line in replica.log_lines())


def _bad_state_records() -> list[tuple[bytes, bytes]]:
    """Garbage, an unknown record version and a commit (of a claimed partition, so that its
    epoch and offsets pass) whose first chunk was truncated."""
    future = msgspec.msgpack.encode({"v": 99, "kind": "claim", "source": "x:0", "epoch": 9})
    increment = model_increment("fleet", (2, 8), 1.0, {0: np.ones((2, 8), dtype=np.int64)})
    chunked = encode_commit("x:0", 1, "intruder", 0, 10, [increment], chunk_bytes=16)
    chunk = msgspec.msgpack.decode(chunked[0][1], type=ChunkRecord)
    cut = ChunkRecord(chunk.v, chunk.blob_id, chunk.index, chunk.total, chunk.data[:-3])
    truncated = [(chunked[0][0], msgspec.msgpack.encode(cut)), *chunked[1:]]
    claim = encode_claim("x:0", 1, "intruder")
    return [(b"x:0", b"\xffgarbage"), (b"x:0", future), claim, *truncated]


def test_replicas_are_exact_refuse_bad_state_input_and_cold_start(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """Two replicas hold every event's counts bin for bin, refuse and count bad state records,
    and a third started after the stream catches up to the same statistics."""
    config, producer, tmp_path = _tansu_setup(broker, tmp_path)
    events = _events(3_000, 1, time.time())
    digest, total = _digest(tmp_path / "reference.json", events)
    late = DaemonProcess(config, tmp_path / "late")
    state = StateLog({"bootstrap_servers": broker.bootstrap}, _state_topic(config))
    with closing(state), closing(producer), late, replica_set(config, tmp_path) as replicas:
        producer.send(events[:1_500])
        state.publish(_bad_state_records())
        producer.send(events[1_500:])
        _wait_exact(replicas, digest)
        models = [_model(r) for r in replicas]
        assert models[0] is not None and models[1] is not None
        assert _statistics(models[0]) == _statistics(models[1])
        for replica in replicas:
            scraped = replica.metrics()
            for reason in ("undecodable", "unknown_version", "hash_mismatch"):
                assert scraped.value("driftmon_state_records_rejected_total", reason=reason) == 1
            assert replica.running

        wait_shared(replicas, PARTITIONS)
        wait_until(  # every 3 s by the leader: a fast stream may be over before the first
            lambda: any(_snapshot_published(r) for r in replicas),
            60,
            interval=0.5,
            message="a state snapshot published",
        )
        late.start()  # cold start after the stream: folds the state topic, then exact
        _wait_exact([late, *replicas], digest)
        cold = _model(late)
        assert cold is not None and _statistics(cold) == _statistics(models[0])
        folded = [line for line in late.log_lines() if line.get("event") == "state topic folded"]
        assert folded and folded[0]["from_snapshot"] is True, "the cold start used a snapshot"
        stop_all([*replicas, late])
        assert not (tmp_path / "no-state").exists(), "the kafka backend keeps no state on disk"
    assert total == 2 * len(events)


def test_a_replica_without_partitions_is_ready_and_exact(
    apache_kafka: ApacheKafka, tmp_path: Path
) -> None:
    """More replicas than partitions: the idle replica is ready and serves the exact state."""
    config, producer, tmp_path = _apache_setup(apache_kafka, tmp_path, partitions=1)
    events = _events(1_000, 4, time.time())
    digest, _ = _digest(tmp_path / "reference.json", events)
    with closing(producer), replica_set(config, tmp_path) as replicas:
        for event in events:
            producer.producer.send(producer.topic, msgspec.json.encode(event))
        producer.producer.flush(timeout=60)
        _wait_exact(replicas, digest)

        def one_owner() -> bool:
            owned = sorted(partitions_owned(r) for r in replicas)
            return owned == [0.0, 1.0]

        wait_until(one_owner, 30.0, interval=0.5, message="one owner, one idle replica")
        for replica in replicas:
            replica.wait_ready(30)


def _hoarding_config(config: Path, path: Path) -> Path:
    """`config` with a publish interval of an hour: the replica's counts leave only in the
    last commit of a revoke or of its shutdown, so a pause always finds some unpublished."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["state"]["publish_interval"] = "1h"
    return write_config(path, data)


@pytest.mark.parametrize("decode_worker", [False, True], ids=["in-process", "decode-worker"])
def test_exactness_oracle_under_kills_pauses_joins_and_leaves(
    apache_kafka: ApacheKafka, tmp_path: Path, decode_worker: bool
) -> None:
    """kill -9 twice, a zombie past the session timeout, a join, a replica paused during a
    rebalance, and a leave: still exact (also with batches in flight in a decode worker)."""
    config, producer, tmp_path = _apache_setup(apache_kafka, tmp_path)
    if decode_worker:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        data.setdefault("event", {})["decode_worker"] = True
        config = write_config(config, data)
    events = _events(12_000, 2, time.time())
    digest, _ = _digest(tmp_path / "reference.json", events)
    # b, the future zombie, holds its counts until a revoke (see _hoarding_config), so it is
    # fenced with counts in hand whatever the moment of the pause.
    b_config = _hoarding_config(config, tmp_path / "driftmon-b.yaml")
    a, c, d = (DaemonProcess(config, tmp_path / name) for name in "acd")
    b = DaemonProcess(b_config, tmp_path / "b")
    with closing(producer), a, b, c, d:
        for replica in (a, b, c):
            replica.start()
        eighth = len(events) // 8
        producer.trickle(events[: 2 * eighth], 3.0).join()
        a.kill()  # kill -9 while the stream runs
        a.start()
        producer.trickle(events[2 * eighth : 3 * eighth], 2.0).join()

        def settled() -> bool:
            owned = [partitions_owned(r) for r in (a, b, c)]
            return min(owned) >= 1 and sum(owned) == PARTITIONS

        wait_until(settled, 60.0, interval=0.5, message="a, b and c to share the partitions")
        consumed = b.metrics().total("driftmon_records_consumed_total")
        thread = producer.trickle(events[3 * eighth : 4 * eighth], 2.0)
        wait_until(
            lambda: b.metrics().total("driftmon_records_consumed_total") > consumed,
            30.0,
            interval=0.1,
            message="b to count records of its partitions",
        )
        assert b.proc is not None
        os.kill(b.proc.pid, signal.SIGSTOP)  # past the 3 s session timeout: a zombie
        wait_until(
            lambda: partitions_owned(a) + partitions_owned(c) == PARTITIONS,
            60.0,
            interval=0.5,
            message="a and c to claim the paused replica's partitions",
        )
        os.kill(b.proc.pid, signal.SIGCONT)
        # The zombie's last commit, sent when it learns it lost its partitions, is refused: b
        # folds it and counts it.
        wait_until(
            lambda: b.metrics().value("driftmon_state_commits_total", result="stale_epoch") >= 1,
            30.0,
            interval=0.5,
            message="the zombie's last commit to be refused as stale",
        )
        thread.join()
        d.start()  # a fourth replica joins: the group rebalances
        assert c.proc is not None
        os.kill(c.proc.pid, signal.SIGSTOP)  # paused in the middle of that rebalance
        thread = producer.trickle(events[4 * eighth : 6 * eighth], 3.0)
        time.sleep(5.0)  # past the rebalance timeout (max_poll_interval_ms 3 s): left out
        os.kill(c.proc.pid, signal.SIGCONT)
        thread.join()
        a.kill()  # the second kill -9
        a.start()
        thread = producer.trickle(events[6 * eighth :], 3.0)
        assert c.stop() == 0  # SIGTERM: a last commit, then leave
        thread.join()
        # b never restarted, so it folded every claim; a restarted replica starts from a
        # snapshot and counts only the claims after it.
        claims = b.metrics().value("driftmon_state_claims_total", result="accepted")
        assert claims >= PARTITIONS + 3, "every rebalance claimed its partitions"
        assert b.stop() == 0  # SIGTERM: b's counts leave in its last commit
        live = [a, d]
        _wait_exact(live, digest, timeout=120.0)
        models = [_model(r) for r in live]
        assert all(m is not None for m in models)
        first = _statistics(models[0])  # type: ignore[arg-type]
        assert all(_statistics(m) == first for m in models[1:])  # type: ignore[arg-type]


def test_broker_outage_mid_stream_recovers_without_restart_and_stays_exact(
    apache_kafka: ApacheKafka, tmp_path: Path
) -> None:
    """During a broker outage every replica is not ready; after it, they recover on their own
    (no process restart) and every replica holds the exact global window again."""
    config, producer, tmp_path = _apache_setup(apache_kafka, tmp_path)
    events = _events(4_000, 3, time.time())
    half = len(events) // 2
    first, _ = _digest(tmp_path / "reference.json", events[:half])
    digest, _ = _digest(tmp_path / "reference.json", events)
    with closing(producer), replica_set(config, tmp_path) as replicas:
        producer.send(events[:half])
        _wait_exact(replicas, first)
        for replica in replicas:
            replica.wait_ready(30)
        apache_kafka.stop()  # the outage
        wait_until(
            lambda: not any(r.ready() for r in replicas),
            30.0,
            interval=0.5,
            message="every replica not ready during the outage",
        )
        time.sleep(3.0)
        assert all(r.running and r.live() for r in replicas)
        apache_kafka.restart()
        producer.send(events[half:])
        _wait_exact(replicas, digest, timeout=120.0)
        for replica in replicas:
            replica.wait_ready(60)
        models = [_model(r) for r in replicas]
        assert models[0] is not None and models[1] is not None
        assert _statistics(models[0]) == _statistics(models[1])
        assert [r.runs for r in replicas] == [1, 1], "recovered without a restart"
