"""A fleet's consumer-group offsets (for lag tooling) on the real broker with `driftmon run`.

The replicas commit, per owned partition, the chain head their own accepted state commit
ended at (docs/fleet.md, "Group offsets"). Watched from outside the whole time, the group's
committed offsets only move forward, never exceed the partitions' end offsets, and end equal
to them once the stream is counted, also after one replica has left and the other took over.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from tests.integration.test_fleet_kafka import (
    PARTITIONS,
    _apache_setup,
    _digest,
    _events,
    _Producer,
    _tansu_setup,
    _wait_exact,
)
from tests.support.apache_kafka import ApacheKafka
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import DaemonProcess
from tests.support.fleet import partitions_owned, replica_set, stop_all
from tests.support.waiting import wait_until


class _Watcher:
    """Reads the group's committed offsets; remembers every reading. The end offsets are
    counted from what the producer sent (a fresh topic: partition p holds offsets 0..n-1),
    since tansu's ListOffsets reports the base offset of a partition's last batch plus one
    when a producer batches several records."""

    def __init__(self, client: dict[str, Any], group: str, topic: str, producer: _Producer) -> None:
        self.group = group
        self.partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.admin = KafkaAdminClient(**client)
        self.producer = producer
        self.readings: list[dict[int, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def committed(self) -> dict[int, int]:
        """The committed offset per partition (absent: none committed yet)."""
        with self._lock:
            offsets = self.admin.list_group_offsets({self.group: self.partitions})[self.group]
            out = {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
            self.readings.append(out)
            return out

    def watch(self) -> None:
        """Read the committed offsets every 0.2 s in a thread until `close`."""

        def run() -> None:
            while not self._stop.wait(0.2):
                try:
                    self.committed()
                except Exception:  # the coordinator moving; the next reading counts
                    continue

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def ends(self) -> dict[int, int]:
        """Each partition's end offset: the records sent to it (round-robin from offset 0)."""
        sent = self.producer.sent
        return {
            p: sent // PARTITIONS + (1 if p < sent % PARTITIONS else 0) for p in range(PARTITIONS)
        }

    def caught_up(self) -> bool:
        """Whether every partition's committed offset equals its end offset."""
        return self.committed() == self.ends()

    def check_history(self, ends: dict[int, int] | None = None) -> None:
        """Every partition's committed offset only grew, and never past its end offset
        (`ends`, default the records sent)."""
        ends = self.ends() if ends is None else ends
        for p in range(PARTITIONS):
            seen = [r[p] for r in self.readings if p in r]
            assert seen == sorted(seen), f"partition {p} moved backwards: {seen}"
            assert all(o <= ends[p] for o in seen), f"partition {p} ahead of its end: {seen}"

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        self.admin.close()


def _successes(replica: DaemonProcess) -> float:
    """The replica's successful group offset commits (0 while it is not serving)."""
    try:
        scraped = replica.metrics("driftmon_offset_commits_total")
        return scraped.get("driftmon_offset_commits_total", result="success") or 0.0
    except Exception:  # not serving yet
        return 0.0


def test_group_offsets_follow_the_chain_heads_forward_only(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """Two replicas commit the group's offsets up to the end offsets once every event counts,
    forward only; after one leaves, the other commits the rest of the stream up to the end."""
    config, producer, tmp_path = _tansu_setup(broker, tmp_path)
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    topic, group = settings["kafka"]["topics"][0], settings["kafka"]["group_id"]
    events = _events(3_000, 3, time.time())
    watcher = _Watcher({"bootstrap_servers": broker.bootstrap}, group, topic, producer)
    with closing(watcher), closing(producer), replica_set(config, tmp_path) as replicas:
        thread = producer.trickle(events[:2_000], 4.0)
        while thread.is_alive():
            watcher.committed()
            time.sleep(0.2)
        digest, _ = _digest(tmp_path / "reference.json", events[:2_000])
        _wait_exact(replicas, digest)
        wait_until(
            watcher.caught_up,
            60.0,
            interval=0.3,
            message="group offsets at the end",
            on_timeout=lambda: (
                f"{watcher.readings[-1:]} {watcher.ends()} "
                + str([_successes(r) for r in replicas])
            ),
        )
        assert all(_successes(r) > 0 for r in replicas), "both replicas committed offsets"
        assert replicas[1].stop() == 0
        producer.send(events[2_000:])
        digest, _ = _digest(tmp_path / "reference.json", events)
        _wait_exact(replicas[:1], digest)
        wait_until(watcher.caught_up, 60.0, interval=0.3, message="the survivor commits the rest")
        watcher.check_history()
        assert replicas[0].stop() == 0
        assert watcher.caught_up(), "the last commits at shutdown moved nothing backwards"
        watcher.check_history()


@pytest.fixture(scope="module")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """A real Apache Kafka: its group coordinator fences a stale generation's commits."""
    with ApacheKafka(tmp_path_factory.mktemp("apache-kafka")) as kafka:
        yield kafka


def test_a_zombie_never_moves_the_group_offsets_backwards(
    apache_kafka: ApacheKafka, tmp_path: Path
) -> None:
    """A replica paused past the session timeout while the stream runs, then resumed, never
    moves a committed offset backwards; at the end the group's offsets equal the end offsets."""
    config, producer, tmp_path = _apache_setup(apache_kafka, tmp_path)
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    topic, group = settings["kafka"]["topics"][0], settings["kafka"]["group_id"]
    events = _events(6_000, 4, time.time())
    a, b = (DaemonProcess(config, tmp_path / name) for name in "ab")
    watcher = _Watcher(apache_kafka.client_kwargs("admin"), group, topic, producer)
    with closing(producer), closing(watcher), a, b:
        a.start()
        b.start()
        watcher.watch()
        producer.trickle(events[:2_000], 3.0).join()
        wait_until(
            lambda: partitions_owned(a) >= 1 and partitions_owned(b) >= 1 and _successes(b) > 0,
            60.0,
            interval=0.3,
            message="both replicas own partitions and b committed group offsets",
        )
        thread = producer.trickle(events[2_000:4_000], 4.0)
        assert b.proc is not None
        os.kill(b.proc.pid, signal.SIGSTOP)  # past the 3 s session timeout: a zombie
        wait_until(
            lambda: partitions_owned(a) == PARTITIONS,
            60.0,
            interval=0.3,
            message="a to claim the paused replica's partitions",
        )
        thread.join()
        wait_until(
            lambda: watcher.committed() == _ends(watcher, apache_kafka, topic),
            60.0,
            interval=0.3,
            message="a to commit every partition's offsets to the end",
        )
        os.kill(b.proc.pid, signal.SIGCONT)  # the zombie resumes with its old heads in hand
        producer.trickle(events[4_000:], 3.0).join()
        digest, _ = _digest(tmp_path / "reference.json", events)
        _wait_exact([a, b], digest, timeout=120.0)
        wait_until(
            lambda: watcher.committed() == _ends(watcher, apache_kafka, topic),
            60.0,
            interval=0.3,
            message="group offsets at the end after the zombie resumed",
        )
        stop_all((b, a))
        assert watcher.committed() == _ends(watcher, apache_kafka, topic)
        watcher.check_history(_ends(watcher, apache_kafka, topic))
        assert len(watcher.readings) > 50, "the offsets were watched throughout"


def _ends(watcher: _Watcher, kafka: ApacheKafka, topic: str) -> dict[int, int]:
    """The end offsets Apache Kafka reports (exact there, whatever the producer's batches)."""
    consumer = KafkaConsumer(**kafka.client_kwargs("admin"))
    try:
        ends = consumer.end_offsets(watcher.partitions)
    finally:
        consumer.close()
    return {tp.partition: offset for tp, offset in ends.items()}
