"""A fleet's consumer-group offsets (for lag tooling) on the real broker with `driftmon run`.

The replicas commit, per owned partition, the chain head their own accepted state commit
ended at (docs/fleet.md, "Group offsets"). Watched from outside the whole time, the group's
committed offsets only move forward, never exceed the partitions' end offsets, and end equal
to them once the stream is counted, also after one replica has left and the other took over.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from kafka import KafkaAdminClient, TopicPartition

from tests.integration.test_fleet_kafka import (
    PARTITIONS,
    _digest,
    _events,
    _Producer,
    _tansu_setup,
    _wait_exact,
)
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import DaemonProcess
from tests.support.waiting import wait_until


class _Watcher:
    """Reads the group's committed offsets; remembers every reading. The end offsets are
    counted from what the producer sent (a fresh topic: partition p holds offsets 0..n-1),
    since tansu's ListOffsets reports the base offset of a partition's last batch plus one
    when a producer batches several records."""

    def __init__(self, bootstrap: str, group: str, topic: str, producer: _Producer) -> None:
        self.group = group
        self.partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self.producer = producer
        self.readings: list[dict[int, int]] = []

    def committed(self) -> dict[int, int]:
        """The committed offset per partition (absent: none committed yet)."""
        offsets = self.admin.list_group_offsets({self.group: self.partitions})[self.group]
        out = {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
        self.readings.append(out)
        return out

    def ends(self) -> dict[int, int]:
        """Each partition's end offset: the records sent to it (round-robin from offset 0)."""
        sent = self.producer.sent
        return {
            p: sent // PARTITIONS + (1 if p < sent % PARTITIONS else 0) for p in range(PARTITIONS)
        }

    def caught_up(self) -> bool:
        """Whether every partition's committed offset equals its end offset."""
        return self.committed() == self.ends()

    def check_history(self) -> None:
        """Every partition's committed offset only grew, and never past its end offset."""
        ends = self.ends()
        for p in range(PARTITIONS):
            seen = [r[p] for r in self.readings if p in r]
            assert seen == sorted(seen), f"partition {p} moved backwards: {seen}"
            assert all(o <= ends[p] for o in seen), f"partition {p} ahead of its end: {seen}"

    def close(self) -> None:
        self.admin.close()


def _successes(replica: DaemonProcess) -> float:
    scraped = replica.metrics("driftmon_offset_commits_total")
    return scraped.value("driftmon_offset_commits_total", result="success")


def test_group_offsets_follow_the_chain_heads_forward_only(
    broker: TansuBroker, tmp_path: Path
) -> None:
    """Two replicas commit the group's offsets up to the end offsets once every event counts,
    forward only; after one leaves, the other commits the rest of the stream up to the end."""
    config, producer, tmp_path = _tansu_setup(broker, tmp_path)
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    topic, group = settings["kafka"]["topics"][0], settings["kafka"]["group_id"]
    events = _events(3_000, 3, time.time())
    replicas = [DaemonProcess(config, tmp_path / f"r{i}") for i in range(2)]
    watcher = _Watcher(broker.bootstrap, group, topic, producer)
    try:
        for replica in replicas:
            replica.start()
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
    finally:
        for replica in replicas:
            replica.close()
        producer.close()
        watcher.close()
