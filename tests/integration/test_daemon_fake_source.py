"""The daemon loop's logic with an in-memory source: delivery, health, references, shutdown.

A `FakeSource` plays Kafka: partitions are lists of message values (offset = index), a poll
"joins" (assigns every partition, seeking where `on_assign` says, else to the committed
offset), commits are recorded and can be made to fail, and the connection can be cut. The
daemon is built exactly as `driftmon run` builds it (real Settings, PipelineMetrics,
DriftCollector, CheckpointStore) but its clocks are driven by the test: evaluation and
checkpoint happen when the test says so, which lets a "crash" land exactly between them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.compose import build_daemon
from monitor.config import Settings, load_settings
from monitor.daemon import AssignCallback, Daemon, RevokeCallback
from monitor.errors import SourceError, UnreadableReason
from monitor.model import FeatureKind, FeatureSpec, RawMessage
from monitor.reference import fit_profile, profile_to_json
from monitor.state import CheckpointStore
from monitor.tools.scenarios import EventGenerator
from tests.support.daemon_harness import daemon_config, model_entry, write_config
from tests.support.record_headers import pack_headers

TP = tuple[str, int]
FEATURES = [("amount", "numeric"), ("country", "categorical")]
SPECS = (
    FeatureSpec("amount", FeatureKind.NUMERIC),
    FeatureSpec("country", FeatureKind.CATEGORICAL),
)


@dataclass
class FakeSource:
    """An in-memory RecordSource (see the module docstring)."""

    logs: dict[TP, list[bytes]]
    on_assign: AssignCallback
    on_revoke: RevokeCallback
    committed: dict[TP, int] = field(default_factory=dict)
    connected: bool = True
    fail_commit: bool = False
    on_poll: Callable[[int], None] | None = None
    position: dict[TP, int] = field(default_factory=dict)
    assigned: frozenset[TP] = frozenset()
    commits: list[dict[TP, int]] = field(default_factory=list)
    closed: bool = False
    polls: int = 0
    unreadable: dict[tuple[str, UnreadableReason], int] = field(default_factory=dict)
    held: list[int] = field(default_factory=list)
    hold_back_at: frozenset[int] = frozenset()
    headers: Collection[tuple[str, bytes | None]] = ()
    """The headers of every record handed out."""

    def poll(self, timeout_s: float, max_records: int, held_bytes: int = 0) -> list[RawMessage]:
        """Join on the first connected poll, then hand out up to `max_records` records."""
        self.polls += 1
        self.held.append(held_bytes)
        if self.on_poll is not None:
            self.on_poll(self.polls)
        if not self.connected:
            return []
        if not self.assigned:
            self.assigned = frozenset(self.logs)
            seek = self.on_assign(self.assigned)
            for tp in self.assigned:
                self.position[tp] = seek.get(tp, self.committed.get(tp, 0))
        out: list[RawMessage] = []
        for tp in sorted(self.assigned):
            start = self.position[tp]
            chunk = self.logs[tp][start : start + max_records - len(out)]
            out.extend(
                RawMessage(tp[0], tp[1], start + i, None, v, None, self.headers)
                for i, v in enumerate(chunk)
            )
            self.position[tp] = start + len(chunk)
        return out

    def commit(self, offsets: Mapping[TP, int]) -> None:
        """Record a commit, or fail like a broker that went away."""
        if self.fail_commit:
            raise SourceError("offset commit failed: broker away")
        self.commits.append(dict(offsets))
        self.committed.update(offsets)

    def assignment(self) -> frozenset[TP]:
        """The assigned partitions (empty while disconnected)."""
        return self.assigned if self.connected else frozenset()

    def lag(self) -> dict[TP, int]:
        """Records behind per assigned partition."""
        return {tp: len(self.logs[tp]) - self.position.get(tp, 0) for tp in self.assigned}

    def held_back(self) -> bool:
        """Whether the test said the last poll held a batch back (`hold_back_at`)."""
        return self.polls in self.hold_back_at

    def unreadable_batches(self) -> dict[tuple[str, UnreadableReason], int]:
        """The batches a test marked unreadable since the last call."""
        counted, self.unreadable = self.unreadable, {}
        return counted

    def is_connected(self) -> bool:
        """Whether the fake cluster is reachable."""
        return self.connected

    def close(self) -> None:
        """Revoke and close."""
        if self.assigned:
            self.on_revoke(self.assigned)
        self.closed = True

    @property
    def drained(self) -> bool:
        """True once every record was handed out."""
        return all(self.position.get(tp, 0) >= len(log) for tp, log in self.logs.items())


class Clock:
    """A monotonic clock the test moves (the daemon evaluates/checkpoints when it passes)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """A daemon on a fake source, with its registry and the knobs of the test."""

    daemon: Daemon
    registry: CollectorRegistry
    source: FakeSource
    clock: Clock

    def value(self, name: str, **labels: str) -> float:
        """A sample of the daemon's registry (0 when absent)."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def drain(self, max_steps: int = 1_000) -> None:
        """Step until the source has handed out everything."""
        for _ in range(max_steps):
            if self.source.drained and self.source.assigned:
                return
            self.daemon.step()
        raise AssertionError("the source was not drained")

    def current(self, model: str) -> np.ndarray[Any, Any]:
        """The model's current-window count matrix (deferred events counted first)."""
        self.daemon.apply_pending()
        window = self.daemon.runtimes[model].window
        assert window is not None
        return window.current()


def settings_for(tmp_path: Path, models: Sequence[dict[str, Any]], **kw: Any) -> Settings:
    """Settings from a YAML file, as `driftmon run` loads them."""
    config = daemon_config(
        bootstrap="127.0.0.1:9",
        topics=kw.pop("topics", ["t"]),
        models=models,
        state_dir=kw.pop("state_dir", tmp_path / "state"),
        **kw,
    )
    return load_settings(write_config(tmp_path / f"config-{time.monotonic_ns()}.yaml", config))


def build(
    settings: Settings,
    logs: dict[TP, list[bytes]],
    *,
    committed: dict[TP, int] | None = None,
    store: CheckpointStore | None = None,
    dead_letter: Any = None,
) -> Harness:
    """A started daemon over a FakeSource of `logs` (the source is created by start())."""
    made: list[FakeSource] = []

    def factory(on_assign: AssignCallback, on_revoke: RevokeCallback) -> FakeSource:
        made.append(FakeSource(logs, on_assign, on_revoke, committed=dict(committed or {})))
        return made[0]

    clock = Clock()
    wiring = build_daemon(settings, factory, dead_letter=dead_letter, store=store, monotonic=clock)
    daemon, registry = wiring.daemon, wiring.registry
    daemon.start()
    return Harness(daemon, registry, made[0], clock)


def events(model: str, n: int, *, seed: int, ts: float | None = None, **kw: Any) -> list[bytes]:
    """`n` encoded demo events of `model` (amount, country, ... ), one second apart at most."""
    start = time.time() - 100.0 if ts is None else ts
    return [
        msgspec.json.encode(e)
        for e in EventGenerator(model, seed=seed, **kw).events(n, start, 50.0)
    ]


def reference_file(path: Path, model: str, seed: int, shift: float = 0.0) -> Path:
    """A file reference for (amount, country) fitted from demo events."""
    cols = EventGenerator(model, seed=seed).columns(3_000, 1.0, 1.0)
    profile = fit_profile(
        model,
        SPECS,
        {"amount": cols.numeric["amount"] + shift},
        {"country": list(cols.categorical["country"])},
    )
    path.write_text(profile_to_json(profile), encoding="utf-8")
    return path


def file_model(name: str, path: Path) -> dict[str, Any]:
    """A `models:` entry with a file reference."""
    return model_entry(name, FEATURES, {"mode": "file", "path": str(path)})


def warmup_model(name: str, n: int = 1_000) -> dict[str, Any]:
    """A `models:` entry with a warm-up reference of `n` events."""
    return model_entry(name, FEATURES, {"mode": "warmup", "warmup_events": n})


# -- delivery ----------------------------------------------------------------------------------


def test_crash_between_checkpoints_replays_from_the_checkpoint_and_counts_once(
    tmp_path: Path,
) -> None:
    """After a crash the restart resumes at the checkpoint (not the lagging commit): no loss."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    logs = {("t", 0): events("m", 3_000, seed=2), ("t", 1): events("m", 2_000, seed=3)}
    settings = settings_for(tmp_path, [file_model("m", ref)], kafka={"max_poll_records": 700})

    first = build(settings, logs)
    for _ in range(3):
        first.daemon.step()
    first.source.fail_commit = True  # the checkpoint lands, the commit does not
    assert first.daemon.checkpoint()
    checkpointed = dict(first.daemon.offsets)
    assert first.source.committed == {} and sum(checkpointed.values()) == 3 * 700
    for _ in range(3):
        first.daemon.step()  # progress beyond the checkpoint, lost in the crash
    assert sum(first.daemon.offsets.values()) > sum(checkpointed.values())
    del first  # kill -9: no shutdown, no checkpoint

    second = build(settings, logs, committed={})
    second.drain()
    assert second.source.position == {("t", 0): 3_000, ("t", 1): 2_000}
    replayed = second.value("driftmon_events_accepted_total", model="m")
    assert replayed == 5_000 - sum(checkpointed.values())  # only what the checkpoint lacked

    straight = build(
        settings_for(tmp_path, [file_model("m", ref)], state_dir=tmp_path / "s2"), logs
    )
    straight.drain()
    assert np.array_equal(second.current("m"), straight.current("m"))
    assert int(second.current("m")[0, :-2].sum()) == 5_000  # amount is never missing


def test_offsets_are_committed_only_after_a_successful_checkpoint(tmp_path: Path) -> None:
    """A failed checkpoint commits nothing; a good one commits the assigned partitions only."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    settings = settings_for(tmp_path, [file_model("m", ref)])
    logs = {("t", 0): events("m", 500, seed=2)}
    h = build(settings, logs, store=CheckpointStore(blocker / "state"))
    h.daemon.step()
    h.daemon.offsets[("t", 7)] = 42  # restored from an old checkpoint, no longer assigned
    assert not h.daemon.checkpoint()
    assert h.value("driftmon_checkpoints_total", result="failure") == 1
    assert h.source.commits == []

    h.daemon.store = CheckpointStore(tmp_path / "state")
    assert h.daemon.checkpoint()
    assert h.source.commits == [{("t", 0): 500}]
    assert h.value("driftmon_checkpoints_total", result="success") == 1
    assert h.value("driftmon_offset_commits_total", result="success") == 1
    stored = h.daemon.store.load()
    assert stored is not None and stored.offsets == {("t", 0): 500, ("t", 7): 42}


def test_a_full_disk_mid_checkpoint_keeps_the_last_good_one_and_frees_its_partial_file(
    tmp_path: Path,
) -> None:
    """ENOSPC while writing (the temp file on /dev/full): counted, nothing committed, the last
    good checkpoint intact, the partial file removed; once space returns the next checkpoint
    lands, and a restart from it holds every event exactly once."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    logs = {("t", 0): events("m", 2_000, seed=2), ("t", 1): events("m", 1_000, seed=3)}
    settings = settings_for(tmp_path, [file_model("m", ref)], kafka={"max_poll_records": 500})
    h = build(settings, logs)
    h.daemon.step()
    assert h.daemon.checkpoint()
    assert len(h.source.commits) == 1
    good = h.daemon.store.path.read_bytes()
    h.daemon.step()
    partial = h.daemon.store.path.with_suffix(".npz.tmp")
    partial.symlink_to("/dev/full")  # every write to the temp file: No space left on device
    assert not h.daemon.checkpoint()
    assert h.value("driftmon_checkpoints_total", result="failure") == 1
    assert len(h.source.commits) == 1, "a failed checkpoint commits nothing"
    assert h.daemon.store.path.read_bytes() == good
    assert not partial.exists() and not partial.is_symlink(), "the partial file holds the space"
    h.drain()  # the loop goes on
    assert h.daemon.checkpoint()
    assert len(h.source.commits) == 2
    del h  # kill -9 after the good checkpoint

    again = build(settings, logs)
    again.drain()
    straight = build(
        settings_for(tmp_path, [file_model("m", ref)], state_dir=tmp_path / "s2"), logs
    )
    straight.drain()
    assert np.array_equal(again.current("m"), straight.current("m"))
    assert int(again.current("m")[0, :-2].sum()) == 3_000  # amount is never missing


def test_commit_failure_is_counted_and_the_loop_goes_on(tmp_path: Path) -> None:
    """An offset commit that fails is counted; the checkpoint stands and consuming goes on."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    settings = settings_for(tmp_path, [file_model("m", ref)], kafka={"max_poll_records": 100})
    h = build(settings, {("t", 0): events("m", 300, seed=2)})
    h.daemon.step()
    h.source.fail_commit = True
    assert h.daemon.checkpoint()
    assert h.value("driftmon_offset_commits_total", result="failure") == 1
    h.drain()
    assert h.value("driftmon_events_accepted_total", model="m") == 300


def test_checkpoint_of_another_configuration_is_not_mixed_in(tmp_path: Path) -> None:
    """A checkpoint whose model layout differs is not restored: that window restarts empty."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    logs = {("t", 0): events("m", 400, seed=2)}
    h = build(settings_for(tmp_path, [file_model("m", ref)]), logs)
    h.drain()
    assert h.daemon.checkpoint()

    changed = settings_for(
        tmp_path, [file_model("m", ref)], window={"bucket": "2m", "length": "20m"}
    )
    h2 = build(changed, {("t", 0): [*logs[("t", 0)], *events("m", 100, seed=3)]})
    h2.drain()
    # Offsets resume after the 400 already seen; only the 100 new events are in the window.
    assert int(h2.current("m")[0, :-2].sum()) == 100
    assert h2.value("driftmon_events_accepted_total", model="m") == 100


def test_unreadable_checkpoint_is_set_aside_and_the_daemon_starts_empty(tmp_path: Path) -> None:
    """A corrupt checkpoint is moved aside (kept for inspection), never mixed in or retried."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    settings = settings_for(tmp_path, [file_model("m", ref)])
    settings.state.dir.mkdir(parents=True)
    (settings.state.dir / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really a zip")
    h = build(settings, {("t", 0): events("m", 200, seed=2)}, committed={("t", 0): 50})
    h.drain()
    assert h.value("driftmon_events_accepted_total", model="m") == 150  # from the commit
    aside = sorted(p.name for p in settings.state.dir.glob("checkpoint.npz.rejected-*"))
    assert len(aside) == 2 and aside[1] == aside[0] + ".reason.txt", aside
    assert "unreadable" in (settings.state.dir / aside[1]).read_text()


def test_warmup_buffer_survives_a_crash_and_gives_the_same_reference(tmp_path: Path) -> None:
    """A crash mid warm-up resumes the buffer: same reference and window as without it."""
    logs = {("t", 0): events("w", 3_000, seed=4)}
    settings = settings_for(tmp_path, [warmup_model("w", 1_000)], kafka={"max_poll_records": 300})
    first = build(settings, logs)
    for _ in range(2):
        first.daemon.step()
    assert first.daemon.runtimes["w"].warmup_progress == (600, 1_000)
    assert first.daemon.checkpoint()
    first.daemon.step()  # 900 buffered, lost in the crash
    del first

    second = build(settings, logs)
    assert second.daemon.runtimes["w"].warmup_progress == (600, 1_000)
    second.drain()
    straight = build(
        settings_for(tmp_path, [warmup_model("w", 1_000)], state_dir=tmp_path / "s2"), logs
    )
    straight.drain()
    assert second.daemon.runtimes["w"].reference_id == straight.daemon.runtimes["w"].reference_id
    assert np.array_equal(second.current("w"), straight.current("w"))
    assert (tmp_path / "state" / "references" / "w.json").exists()


# -- health and shutdown ----------------------------------------------------------------------


def test_readiness_follows_connection_assignment_reference_and_first_evaluation(
    tmp_path: Path,
) -> None:
    """Each readiness condition in turn, and an outage flips ready and kafka_connected."""
    settings = settings_for(tmp_path, [warmup_model("w", 1_000)], kafka={"max_poll_records": 600})
    h = build(settings, {("t", 0): events("w", 1_500, seed=5)})
    d = h.daemon
    h.source.connected = False
    d.step()
    assert d.not_ready_reason() == "not connected to Kafka"
    assert h.value("driftmon_kafka_connected") == 0 and h.value("driftmon_ready") == 0
    h.source.connected = True
    assert d.not_ready_reason() == "no partitions assigned"
    d.step()  # joins, 600 events buffered
    assert d.not_ready_reason() == "no reference yet for: w"
    d.step()  # warm-up complete
    assert d.not_ready_reason() == "no evaluation yet"
    h.clock.now += settings.evaluation.interval
    d.step()  # the evaluation is due
    assert d.ready() and d.not_ready_reason() == ""
    assert h.value("driftmon_ready") == 1 and h.value("driftmon_kafka_connected") == 1
    h.source.connected = False
    d.step()
    assert not d.ready() and d.live()
    assert h.value("driftmon_ready") == 0 and h.value("driftmon_kafka_connected") == 0
    h.source.connected = True
    d.step()
    assert d.ready() and h.value("driftmon_ready") == 1


def test_stop_applies_the_batch_in_hand_then_evaluates_checkpoints_commits_closes(
    tmp_path: Path,
) -> None:
    """A stop requested during a poll still counts that batch and exits 0 in order."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    settings = settings_for(tmp_path, [file_model("m", ref)], kafka={"max_poll_records": 250})
    h = build(settings, {("t", 0): events("m", 1_000, seed=2)})
    h.source.on_poll = lambda n: h.daemon.request_stop() if n == 2 else None
    assert h.daemon.run() == 0
    assert h.value("driftmon_events_accepted_total", model="m") == 500  # both batches
    assert h.value("driftmon_evaluations_total") == 1
    assert h.source.closed and h.source.commits[-1] == {("t", 0): 500}
    stored = CheckpointStore(settings.state.dir).load()
    assert stored is not None and stored.offsets == {("t", 0): 500}


# -- references --------------------------------------------------------------------------------


def test_file_reference_is_hot_swapped_and_a_broken_file_is_refused(tmp_path: Path) -> None:
    """A changed valid file is swapped in (window restarts); a broken one keeps the old."""
    path = reference_file(tmp_path / "ref.json", "m", seed=1)
    settings = settings_for(tmp_path, [file_model("m", path)])
    h = build(settings, {("t", 0): events("m", 600, seed=2)})
    runtime = h.daemon.runtimes["m"]
    first_id = runtime.reference_id
    h.drain()
    assert int(h.current("m")[0, :-2].sum()) == 600

    reference_file(path, "m", seed=9, shift=5.0)
    os.utime(path, (time.time() + 10, time.time() + 10))
    evaluation = h.daemon.evaluate()[0]
    assert runtime.reference_id not in ("", first_id)
    assert evaluation.reference_id == runtime.reference_id
    assert int(h.current("m").sum()) == 0  # its counts were in the old bins
    assert h.value("driftmon_model_reference_ready", model="m") == 1

    second_id = runtime.reference_id
    path.write_text("{ not a profile")
    os.utime(path, (time.time() + 20, time.time() + 20))
    h.daemon.evaluate()
    assert runtime.reference_id == second_id
    assert "refused" in runtime.last_reference_error


def test_missing_reference_file_counts_no_reference_until_it_appears(tmp_path: Path) -> None:
    """Events of a model without its file are counted as no_reference; the file then loads."""
    path = tmp_path / "later.json"
    settings = settings_for(tmp_path, [file_model("m", path)])
    logs = {("t", 0): events("m", 300, seed=2)}
    h = build(settings, logs)
    h.drain()
    assert h.value("driftmon_records_rejected_total", topic="t", reason="no_reference") == 300
    assert h.daemon.not_ready_reason() == "no reference yet for: m"
    reference_file(path, "m", seed=1)
    h.daemon.evaluate()
    assert h.daemon.ready()
    logs[("t", 0)].extend(events("m", 200, seed=3))
    h.drain()
    assert h.value("driftmon_events_accepted_total", model="m") == 200


# -- accounting -------------------------------------------------------------------------------


def test_late_and_early_events_are_counted_per_topic(tmp_path: Path) -> None:
    """too_late / too_early rejects carry the topic their message came from."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    settings = settings_for(tmp_path, [file_model("m", ref)], topics=["a", "b"])
    now = time.time()
    logs = {
        ("a", 0): events("m", 100, seed=2, ts=now - 60) + events("m", 3, seed=3, ts=now - 86_400),
        ("b", 0): events("m", 2, seed=4, ts=now - 86_400) + events("m", 4, seed=5, ts=now + 86_400),
    }
    h = build(settings, logs)
    h.drain()
    assert h.value("driftmon_records_rejected_total", topic="a", reason="too_late") == 3
    assert h.value("driftmon_records_rejected_total", topic="b", reason="too_late") == 2
    assert h.value("driftmon_records_rejected_total", topic="b", reason="too_early") == 4
    assert h.value("driftmon_records_rejected_total", topic="a", reason="too_early") == 0
    assert h.value("driftmon_events_accepted_total", model="m") == 100
    assert h.value("driftmon_records_consumed_total", topic="a") == 103


def test_batches_the_source_skipped_unread_are_counted_per_topic_and_reason(
    tmp_path: Path,
) -> None:
    """What the source reports skipped after a poll lands in
    driftmon_kafka_unreadable_batches_total, once."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    settings = settings_for(tmp_path, [file_model("m", ref)], topics=["a", "b"])
    h = build(settings, {("a", 0): events("m", 10, seed=2)})
    h.source.unreadable = {
        ("a", UnreadableReason.CRC_MISMATCH): 2,
        ("b", UnreadableReason.TOO_LARGE): 1,
    }
    h.drain()
    h.daemon.step()
    metric = "driftmon_kafka_unreadable_batches_total"
    assert h.value(metric, topic="a", reason="crc_mismatch") == 2
    assert h.value(metric, topic="b", reason="too_large") == 1
    assert h.value(metric, topic="a", reason="corrupt") == 0
    assert h.value("driftmon_events_accepted_total", model="m") == 10


@dataclass
class RecordingSink:
    """A dead-letter sink that records, or raises on every send."""

    broken: bool = False
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    reasons: list[bytes] = field(default_factory=list)
    flushes: int = 0

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        on_error: Any = None,
    ) -> None:
        if self.broken:
            raise SourceError("dead-letter broker away")
        self.sent.append((topic, value))
        self.reasons.append(dict(headers)["driftmon-reason"])

    def flush(self, timeout_s: float | None = None) -> None:
        self.flushes += 1

    def close(self, timeout_s: float = 5.0) -> None:
        return None


@pytest.mark.parametrize(
    ("value", "headers"),
    [(b"x" * 1_000_000, ()), (b"not json!!", ((b"trace", b"x" * 50_000),) * 20)],
    ids=["1-MB-values", "1-MB-of-headers"],
)
def test_queued_dead_letters_are_flushed_once_they_reach_sixteen_mebibytes(
    tmp_path: Path, value: bytes, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    """40 rejected messages of about 1 MB each in batches of 10 are flushed by size, not at
    checkpoints, whether the megabyte is the value or 20 headers of 50 KB (kept packed until
    then): a dead letter's headers count, not only its value."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    settings = settings_for(
        tmp_path,
        [file_model("m", ref)],
        kafka={"dead_letter_topic": "driftmon-dlq", "max_poll_records": 10},
    )
    sink = RecordingSink()
    h = build(settings, {("t", 0): [value] * 40}, dead_letter=sink)
    h.source.headers = pack_headers(headers)
    h.drain()
    assert len(sink.sent) == 40
    assert sink.flushes >= 2


@pytest.mark.parametrize("broken", [False, True])
def test_dead_letters_copy_rejected_messages_and_a_broken_sink_is_harmless(
    tmp_path: Path, broken: bool
) -> None:
    """Rejected messages go to the dead-letter topic once; a failing sink is counted, not fatal."""
    ref = reference_file(tmp_path / "ref.json", "m", seed=1)
    settings = settings_for(
        tmp_path, [file_model("m", ref)], kafka={"dead_letter_topic": "driftmon-dlq"}
    )
    bad = [b"not json", b"[1, 2]", msgspec.json.encode({"ts": 5, "model": "x", "features": {}})]
    good = events("m", 50, seed=2)
    sink = RecordingSink(broken=broken)
    h = build(settings, {("t", 0): good[:25] + bad + good[25:]}, dead_letter=sink)
    h.drain()
    assert h.value("driftmon_events_accepted_total", model="m") == 50
    rejected = {
        r: h.value("driftmon_records_rejected_total", topic="t", reason=r)
        for r in ("invalid_json", "not_an_object", "unknown_model")
    }
    assert rejected == {"invalid_json": 1, "not_an_object": 2, "unknown_model": 1}
    failures = {
        r: h.value("driftmon_dead_letter_failures_total", reason=r)
        for r in ("invalid_json", "not_an_object", "unknown_model")
    }
    assert failures == dict.fromkeys(failures, 1.0 if broken else 0.0)
    assert sink.reasons == ([] if broken else [b"invalid_json", b"not_an_object", b"unknown_model"])
    assert sink.sent == ([] if broken else [("driftmon-dlq", v) for v in bad])


def test_model_version_label_stays_one_series_under_ten_thousand_stream_versions(
    tmp_path: Path,
) -> None:
    """10,000 distinct model_version values in the stream give one reference_info series."""
    settings = settings_for(tmp_path, [warmup_model("w", 1_000)], kafka={"max_poll_records": 100})
    stream = [
        msgspec.json.encode({**msgspec.json.decode(e), "model_version": f"v{i}"})
        for i, e in enumerate(events("w", 10_000, seed=4))
    ]
    h = build(settings, {("t", 0): stream})
    seen: set[tuple[tuple[str, str], ...]] = set()
    while not (h.source.drained and h.source.assigned):
        h.daemon.step()
        h.daemon.evaluate()
        for family in h.registry.collect():
            if family.name == "driftmon_reference_info":
                seen.update(tuple(sorted(s.labels.items())) for s in family.samples)
    assert h.value("driftmon_events_accepted_total", model="w") == 10_000
    assert len(seen) == 1, sorted(seen)[:5]
    assert dict(next(iter(seen)))["model_version"] == "v999"
