"""A fleet replica with the decode worker, fenced while batches are in flight (real state
topic on tansu, the source in memory so the test decides when each batch is read).

The replica's claim of the partition is taken over by an intruder's higher epoch while the
stream runs; the replica's next commit is refused, it drops the partition and claims it
again, which seeks it back to its chain head. The batches polled under the old claim and
applied after the new one must leave that partition out (it is read again from the chain
head): the global window then holds every event exactly once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.compose import build_daemon
from monitor.daemon import AssignCallback, RevokeCallback
from monitor.errors import CommitResult
from monitor.fleet_records import encode_claim
from monitor.state_log import StateLog
from tests.integration.test_daemon_fake_source import (
    Clock,
    FakeSource,
    events,
    file_model,
    reference_file,
    settings_for,
)
from tests.support.broker import TansuBroker

TP = ("t", 0)
N = 12_000


@dataclass
class SeekingSource(FakeSource):
    """The in-memory source with the seek a fleet replica needs to go back to its chain head."""

    def seek(self, tp: tuple[str, int], offset: int) -> None:
        """Read `tp` from `offset` next."""
        if tp in self.assigned:
            self.position[tp] = offset


@pytest.mark.parametrize("aside", [False, True], ids=["as-it-comes", "decoding-aside"])
def test_a_fenced_replica_with_batches_in_flight_counts_every_event_once(
    broker: TansuBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aside: bool
) -> None:
    """Fenced mid-stream with two batches in the decode worker (and, forced, one decoded aside
    by the loop), the replica claims again and re-reads from its chain head; every event is in
    the global window exactly once."""
    reference = reference_file(tmp_path / "ref.json", "m", seed=1)
    settings = settings_for(
        tmp_path,
        [file_model("m", reference)],
        event={"decode_worker": True},
        kafka={"max_poll_records": 60},
    )
    topic = f"state-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": [broker.bootstrap]}),
            "state": settings.state.model_copy(
                update={"backend": "kafka", "topic": topic, "publish_interval": 1.0}
            ),
        }
    )
    logs = {TP: events("m", N, seed=2, ts=time.time() - 60.0)}
    made: list[SeekingSource] = []

    def factory(on_assign: AssignCallback, on_revoke: RevokeCallback) -> SeekingSource:
        made.append(SeekingSource(logs, on_assign, on_revoke))
        return made[0]

    clock = Clock()
    daemon = build_daemon(settings, factory, monotonic=clock, fleet=True).daemon
    intruder = StateLog({"bootstrap_servers": broker.bootstrap}, topic)
    try:
        daemon.start()
        fleet = daemon.fleet
        assert fleet is not None and daemon.decode_worker is not None
        asides: list[bool] = []
        if aside:  # the worker never seems to have answered: a batch is decoded aside whenever
            monkeypatch.setattr(daemon.decode_worker, "answered", lambda: False)  # it is full
            decode_aside = daemon._decode_aside

            def counting(worker: Any, batch: Any) -> bool:
                asides.append(decode_aside(worker, batch))
                return asides[-1]

            monkeypatch.setattr(daemon, "_decode_aside", counting)
        source = made[0]
        steps = 0
        while source.position.get(TP, 0) < N // 4:
            daemon.step()
            steps += 1
            clock.now += 0.3  # a commit every few turns
        epoch = fleet.fold.head("t:0").epoch
        intruder.publish([encode_claim("t:0", epoch + 1, "intruder")])
        while not (source.drained and fleet.fold.head("t:0").epoch > epoch + 1):
            daemon.step()
            clock.now += 0.3
            time.sleep(0.005)
            steps += 1
            assert steps < 5_000, "the replica never claimed the partition again"
        assert fleet.fold.commits[CommitResult.STALE_EPOCH] >= 1, "the old claim's commit refused"
        assert daemon.decode_worker is not None and daemon.decode_worker.failures == 0
        for _ in range(200):  # publish and fold everything
            daemon.step()
            clock.now += 0.3
            time.sleep(0.005)
            if fleet.fold.head("t:0").next == N:
                break
        assert fleet.fold.head("t:0").next == N
        daemon.drain()
        window = daemon.runtimes["m"].window
        assert window is not None
        counted = window.current().sum(axis=1)
        assert counted.tolist() == [N, N], "every event once in each feature's row"
        assert any(asides) == aside
    finally:
        daemon.shutdown()
        intruder.close()
