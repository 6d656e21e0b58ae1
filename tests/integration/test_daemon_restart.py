"""Crash, graceful-stop and broker-outage resilience of `driftmon run` on the real tansu broker.

Acceptance criteria 4 and 5 of the daemon issue:

- kill -9 the daemon several times mid-stream (and SIGTERM it once, which must exit 0 within
  10 s), restarting it each time: the final windows equal those of an uninterrupted run over
  the same events and the ground truth computed from the events (no loss, no double count);
- stop the broker under a running daemon: it stays live, turns not-ready and reports Kafka as
  disconnected; start the broker again (tansu forgets everything: the topic is recreated) and
  produce new events: the daemon becomes ready again and counts them without a restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from monitor.reference import fit_profile, profile_to_json
from monitor.state import CheckpointStore
from monitor.tools.scenarios import DEMO_FEATURES, EventGenerator, encode
from tests.support.broker import TansuBroker, free_port
from tests.support.daemon_harness import (
    DaemonProcess,
    daemon_config,
    model_entry,
    produce,
    write_config,
)
from tests.support.waiting import holds_for, wait_until

FEATURES = [(spec.name, spec.kind.value) for spec in DEMO_FEATURES]
POOL_A = 45_000  # model "a": file reference, spread over both partitions
POOL_B = 15_000  # model "b": warm-up reference of its first 2,000 events, partition 1
WARMUP_EVENTS = 2_000
RATE = 1_000.0  # messages per second while the daemon is being interrupted (pool: 60 s)


def write_reference(path: Path, model: str, seed: int, n: int = 5_000) -> None:
    """Fit a file reference for `model` from clean demo events drawn with `seed`."""
    cols = EventGenerator(model, seed=seed).columns(n, 1.0, 1.0)
    profile = fit_profile(
        model,
        DEMO_FEATURES,
        cols.numeric,
        {name: list(values) for name, values in cols.categorical.items()},
    )
    path.write_text(profile_to_json(profile), encoding="utf-8")


def expected_samples(events: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Non-missing values per feature in `events` (what the window must count)."""
    return {
        name: sum(1 for e in events if e["features"].get(name) is not None) for name, _ in FEATURES
    }


def features_by_name(status: dict[str, Any], model: str) -> dict[str, dict[str, Any]]:
    """/status features of `model` keyed by feature name."""
    for entry in status["models"]:
        if entry["model"] == model:
            return {f["name"]: f for f in entry["features"]}
    raise AssertionError(f"model {model!r} not in /status")


def current_samples(daemon: DaemonProcess, model: str) -> int:
    """The model's largest current-window sample count over its features (from /metrics)."""
    series = daemon.metrics().find("driftmon_feature_window_samples", model=model, window="current")
    return int(max((v for _, v in series), default=0))


@dataclass(frozen=True)
class Message:
    """One message of the pool: its partition, value, and which event of which model it is."""

    partition: int
    value: bytes
    model: str
    index: int


class PacedProducer(threading.Thread):
    """Sends the pool's messages in order at about `rate` per second until `finish()`.

    The stream keeps flowing through every interruption however long the restarts take; what
    was actually sent (`sent`, a prefix of the pool) is the ground truth afterwards.
    """

    def __init__(self, bootstrap: str, topic: str, pool: Sequence[Message], rate: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.pool = pool
        self.rate = rate
        self.sent = 0
        self.error: BaseException | None = None
        self._finish = threading.Event()

    def finish(self) -> None:
        """Stop after the current step; `join()` then waits for every delivery."""
        self._finish.set()

    def run(self) -> None:
        """Send steps of 0.05 s worth of messages, then flush and check every delivery."""
        try:
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
            try:
                step = max(1, int(self.rate * 0.05))
                start = time.monotonic()
                futures = []
                for i in range(0, len(self.pool), step):
                    if self._finish.wait(max(0.0, start + i / self.rate - time.monotonic())):
                        break
                    for message in self.pool[i : i + step]:
                        futures.append(
                            producer.send(
                                self.topic, value=message.value, partition=message.partition
                            )
                        )
                    self.sent = i + len(self.pool[i : i + step])
                producer.flush(timeout=30)
                for future in futures:
                    future.get(timeout=30)
            finally:
                producer.close()
        except BaseException as exc:  # reported by the test thread
            self.error = exc


@pytest.fixture
def stream(tmp_path: Path) -> dict[str, Any]:
    """Both models' events, the message pool (a on both partitions, b on 1) and a reference."""
    start = time.time() - 300.0
    events = {
        "a": EventGenerator("a", seed=11).events(POOL_A, start, POOL_A / 240.0),
        "b": EventGenerator("b", seed=12).events(POOL_B, start, POOL_B / 240.0),
    }
    encoded = {model: encode(evs) for model, evs in events.items()}
    pool: list[Message] = []
    for i, value in enumerate(encoded["a"]):
        pool.append(Message(i % 2, value, "a", i))
        if i % 3 == 2:
            j = i // 3
            pool.append(Message(1, encoded["b"][j], "b", j))
    assert len(pool) == POOL_A + POOL_B
    reference = tmp_path / "ref-a.json"
    write_reference(reference, "a", seed=99)
    return {"events": events, "pool": pool, "reference": reference}


def sent_events(stream: dict[str, Any], sent: int) -> dict[str, list[dict[str, Any]]]:
    """The events of each model in the first `sent` messages of the pool, in order."""
    counts = {"a": 0, "b": 0}
    for message in stream["pool"][:sent]:
        counts[message.model] += 1
    return {model: stream["events"][model][:n] for model, n in counts.items()}


def restart_config(tmp_path: Path, name: str, bootstrap: str, topic: str, reference: Path) -> Path:
    """Config of one daemon (own group and state dir) watching models a (file) and b (warm-up)."""
    config = daemon_config(
        bootstrap=bootstrap,
        topics=[topic],
        state_dir=tmp_path / name / "state",
        models=[
            model_entry("a", FEATURES, {"mode": "file", "path": str(reference)}),
            model_entry("b", FEATURES, {"mode": "warmup", "warmup_events": WARMUP_EVENTS}),
        ],
        evaluation={"interval": "1s", "min_samples": 1000},
        checkpoint_interval="1s",
        kafka={"max_poll_records": 500},
    )
    return write_config(tmp_path / name / "driftmon.yaml", config)


def offsets_sum(store: CheckpointStore) -> int:
    """Sum of the checkpointed next offsets over all partitions (0 without a checkpoint)."""
    checkpoint = store.load()
    return 0 if checkpoint is None else sum(checkpoint.offsets.values())


def consumed_position(daemon: DaemonProcess, resumed_at: int) -> int:
    """Messages read so far over all partitions: the run's resume point plus what it consumed."""
    consumed = daemon.metrics().total("driftmon_records_consumed_total")
    return resumed_at + int(consumed)


def has_consumed_fresh(daemon: DaemonProcess, resumed_at: int) -> bool:
    """True once this run read about one second of stream beyond where it resumed."""
    return consumed_position(daemon, resumed_at) >= resumed_at + RATE


def wait_all_counted(daemon: DaemonProcess, want: dict[str, int], timeout: float) -> None:
    """Wait until each model's current window holds `want[model]` events."""
    wait_until(
        lambda: all(current_samples(daemon, m) >= n for m, n in want.items()),
        timeout,
        interval=0.2,
        message=f"current windows of {want}",
        on_timeout=daemon.tail,
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_kill_9_and_sigterm_mid_stream_lose_and_double_count_nothing(
    broker: TansuBroker,
    make_topic: Callable[[int], str],
    tmp_path: Path,
    stream: dict[str, Any],
) -> None:
    """Three kill -9 and one SIGTERM mid-stream leave windows equal to an uninterrupted run."""
    topic = make_topic(2)
    interrupted = DaemonProcess(
        restart_config(tmp_path, "interrupted", broker.bootstrap, topic, stream["reference"]),
        tmp_path / "interrupted",
    )
    store = CheckpointStore(tmp_path / "interrupted" / "state")
    producer = PacedProducer(broker.bootstrap, topic, stream["pool"], RATE)
    sigterm_seconds: float | None = None
    replays_needed = 0
    resumed_at = 0  # checkpointed offsets the next run resumes from (read while no run is up)
    with interrupted:
        interrupted.start()
        producer.start()
        # Interrupt once this run has consumed ~1 s of fresh stream, then after a varying
        # delay, so the interruptions land at different phases of the checkpoint cycle.
        for action, delay in (("kill", 0.3), ("kill", 0.75), ("kill", 0.05), ("term", 0.5)):
            wait_until(
                partial(has_consumed_fresh, interrupted, resumed_at),
                30,
                message="this run to consume fresh events",
                on_timeout=interrupted.tail,
            )
            time.sleep(delay)  # not a wait for a condition: the delay *is* the varied phase
            assert producer.is_alive(), f"the stream ended too early: {producer.error!r}"
            position = consumed_position(interrupted, resumed_at)  # a lower bound at the kill
            if action == "kill":
                interrupted.kill()
                replays_needed += offsets_sum(store) < position
            else:
                began = time.monotonic()
                assert interrupted.stop(timeout=10.0) == 0, interrupted.tail()
                sigterm_seconds = time.monotonic() - began
                assert any(line.get("event") == "stopped" for line in interrupted.log_lines()), (
                    interrupted.tail()
                )
                assert offsets_sum(store) >= position  # a clean stop checkpoints everything
            resumed_at = offsets_sum(store)
            interrupted.start()
        wait_until(
            partial(has_consumed_fresh, interrupted, resumed_at),
            30,
            message="the last run to consume fresh events",
            on_timeout=interrupted.tail,
        )
        producer.finish()  # the stream ends after the last restart, whenever that was
        producer.join(60)
        assert producer.error is None, producer.error
        sent = sent_events(stream, producer.sent)
        want = {"a": len(sent["a"]), "b": len(sent["b"]) - WARMUP_EVENTS}
        assert want["b"] >= 1_000  # enough for statistics on both models
        wait_all_counted(interrupted, want, timeout=60)
        interrupted.wait_ready(30)
        interrupted.wait_evaluations(2)  # a whole evaluation over the final windows
        after_crashes = interrupted.status()
        assert interrupted.stop() == 0
    assert interrupted.runs == 5
    # At least one kill landed after progress the checkpoint did not hold yet: those events
    # were read again by the next run and still counted once.
    assert replays_needed >= 1
    assert sigterm_seconds is not None and sigterm_seconds < 10.0

    with DaemonProcess(
        restart_config(tmp_path, "clean", broker.bootstrap, topic, stream["reference"]),
        tmp_path / "clean",
    ) as clean:
        clean.start()
        wait_all_counted(clean, want, timeout=60)
        clean.wait_ready(30)
        clean.wait_evaluations(2)
        uninterrupted = clean.status()
        assert clean.stop() == 0

    truth = {
        "a": expected_samples(sent["a"]),
        "b": expected_samples(sent["b"][WARMUP_EVENTS:]),
    }
    truth_reference_b = expected_samples(sent["b"][:WARMUP_EVENTS])
    for model in ("a", "b"):
        crashed = features_by_name(after_crashes, model)
        straight = features_by_name(uninterrupted, model)
        for name, _ in FEATURES:
            assert crashed[name]["current_samples"] == truth[model][name], (model, name)
            # Same histograms give bit-identical statistics: compare every field.
            assert crashed[name] == straight[name], (model, name)
        if model == "b":
            for name, _ in FEATURES:
                assert crashed[name]["reference_samples"] == truth_reference_b[name], name


@pytest.mark.broker
@pytest.mark.timeout(120)
def test_broker_outage_keeps_daemon_live_then_it_recovers_without_restart(
    tmp_path: Path,
) -> None:
    """With the broker down the daemon is live but not ready; after it returns it counts again."""
    reference = tmp_path / "ref-a.json"
    write_reference(reference, "a", seed=99)
    topic = "outage"
    with TansuBroker(port=free_port(), log_path=tmp_path / "tansu.log") as broker:
        broker.create_topic(topic)
        config = daemon_config(
            bootstrap=broker.bootstrap,
            topics=[topic],
            state_dir=tmp_path / "state",
            models=[model_entry("a", FEATURES, {"mode": "file", "path": str(reference)})],
            evaluation={"interval": "1s", "min_samples": 100},
            kafka={"reconnect_backoff_ms": 100, "reconnect_backoff_max_ms": 1000},
        )
        with DaemonProcess(write_config(tmp_path / "driftmon.yaml", config), tmp_path) as daemon:
            daemon.start()
            first_values = encode(
                EventGenerator("a", seed=1).events(1_500, time.time() - 60, 100.0)
            )
            produce(broker.bootstrap, topic, first_values)
            daemon.wait_ready(30)
            daemon.wait_metric("driftmon_events_accepted_total", 1_500, model="a")
            assert daemon.metrics().value("driftmon_kafka_connected") == 1

            broker.stop()
            wait_until(
                lambda: daemon.get("/readyz")[0] == 503,
                30,
                message="/readyz 503 during the outage",
                on_timeout=daemon.tail,
            )
            down = daemon.wait_metric("driftmon_kafka_connected", 0, timeout=30)
            assert down.value("driftmon_ready") == 0
            code, reason = daemon.get("/readyz")
            assert code == 503 and b"Kafka" in reason, reason
            holds_for(lambda: daemon.running and daemon.live(), 3.0, 0.5, "live through the outage")

            broker.start()
            # tansu keeps nothing across a restart, unlike Kafka: recreate the topic and put
            # the same first records back, so the log is what a real broker would have kept.
            broker.create_topic(topic)
            produce(broker.bootstrap, topic, first_values)
            second = EventGenerator("a", seed=2).events(700, time.time() - 30, 100.0)
            produce(broker.bootstrap, topic, encode(second))
            daemon.wait_ready(60)
            recovered = daemon.wait_metric(
                "driftmon_events_accepted_total", 1_500 + 700, timeout=60, model="a"
            )
            assert recovered.value("driftmon_kafka_connected") == 1
            assert recovered.value("driftmon_ready") == 1
            daemon.wait_evaluations(2)  # nothing more arrives, nothing is re-counted
            final = daemon.metrics()
            assert final.value("driftmon_events_accepted_total", model="a") == 2_200
            assert (
                final.value(
                    "driftmon_feature_window_samples", model="a", feature="amount", window="current"
                )
                == 2_200
            )
            assert daemon.runs == 1 and daemon.running
            assert daemon.stop() == 0


@pytest.mark.timeout(120)
def test_rebalance_that_revokes_partitions_keeps_both_daemons_running(
    broker: TansuBroker, make_topic: Callable[[int], str], tmp_path: Path
) -> None:
    """A second replica joining the group revokes partitions from the first, which keeps going.

    Regression test: the revoke callback runs on kafka-python's IO thread and used to commit
    offsets synchronously there, which raises and stopped the daemon.
    """
    topic = make_topic(2)
    reference = tmp_path / "ref-a.json"
    write_reference(reference, "a", seed=99)
    group = f"replicas-{topic}"
    daemons = []
    for name in ("first", "second"):
        config = daemon_config(
            bootstrap=broker.bootstrap,
            topics=[topic],
            group_id=group,
            state_dir=tmp_path / name / "state",
            models=[model_entry("a", FEATURES, {"mode": "file", "path": str(reference)})],
            evaluation={"interval": "1s", "min_samples": 100},
        )
        daemons.append(
            DaemonProcess(write_config(tmp_path / name / "driftmon.yaml", config), tmp_path / name)
        )
    first, second = daemons
    with first, second:
        first.start()
        first.wait_ready(30)
        second.start()

        def revoked_from_first() -> bool:
            return any(
                line.get("event") == "partitions revoked" and line.get("partitions")
                for line in first.log_lines()
            )

        wait_until(
            revoked_from_first, 30, message="a rebalance revoking partitions", on_timeout=first.tail
        )
        second.wait_ready(30)
        events = EventGenerator("a", seed=5).events(2_000, time.time() - 30, 100.0)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        try:
            for i, value in enumerate(encode(events)):
                producer.send(topic, value=value, partition=i % 2)
            producer.flush(30)
        finally:
            producer.close()

        def accepted() -> float:
            return sum(
                d.metrics().value("driftmon_events_accepted_total", model="a") for d in daemons
            )

        wait_until(lambda: accepted() == 2_000, 30, message="both replicas to count their share")
        assert first.running and second.running
        shares = [d.metrics().value("driftmon_events_accepted_total", model="a") for d in daemons]
        assert shares == [1_000, 1_000]  # one partition each
        # The first replica leaves: the second is revoked, then takes both partitions.
        assert first.stop() == 0, first.tail()

        def second_owns_both() -> bool:
            assigned = [
                line["partitions"]
                for line in second.log_lines()
                if line.get("event") == "partitions assigned"
            ]
            return bool(assigned) and len(assigned[-1]) == 2

        wait_until(
            second_owns_both, 30, message="the second replica to take over", on_timeout=second.tail
        )
        assert second.running and second.live(), second.tail()
        assert second.stop() == 0, second.tail()


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    """Producers started by a test must be finished when it ends."""
    yield
    leftovers = [t for t in threading.enumerate() if isinstance(t, PacedProducer) and t.is_alive()]
    for thread in leftovers:
        thread.join(30)
    assert not any(t.is_alive() for t in leftovers)
