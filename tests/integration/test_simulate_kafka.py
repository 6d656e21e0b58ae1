"""monitor.tools.simulate: pacing, replay and drift with a recording sink and a fake clock,
then end to end through KafkaSink into the real tansu broker (tests/support/broker.py)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import msgspec
import pytest
from kafka import KafkaConsumer

from monitor.source import KafkaSink, producer_kwargs
from monitor.tools.scenarios import DEMO_FEATURES, NEW_CATEGORY
from monitor.tools.simulate import SimulationReport, run_simulation
from tests.support.broker import TansuBroker

FEATURE_NAMES = [f.name for f in DEMO_FEATURES]


@dataclass
class RecordingSink:
    """A Sink that keeps every message in memory and counts flushes."""

    messages: list[tuple[str, bytes, bytes | None]] = field(default_factory=list)
    flushes: int = 0

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.messages.append((topic, value, key))

    def flush(self, timeout_s: float | None = None) -> None:
        self.flushes += 1

    def events(self) -> list[dict[str, Any]]:
        """Every event sent, arrays unpacked, in send order."""
        out: list[dict[str, Any]] = []
        for _, value, _ in self.messages:
            doc = msgspec.json.decode(value)
            out.extend(doc if isinstance(doc, list) else [doc])
        return out


@dataclass
class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    now: float = 1000.0
    slept: float = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds
        self.slept += seconds


def simulate(sink: RecordingSink, fake: FakeClock, **kwargs: Any) -> SimulationReport:
    """run_simulation on topic "t" with the fake clock and a fixed wall clock."""
    return run_simulation(
        sink, "t", clock=fake.clock, sleep=fake.sleep, wall=lambda: 1_700_000_000.0, **kwargs
    )


def test_rate_paces_event_times_and_wall_time() -> None:
    """At 1,000 ev/s, 5,000 events take 5 s of (fake) wall time and are 1 ms apart in event time."""
    sink, fake = RecordingSink(), FakeClock()
    report = simulate(sink, fake, models=["a", "b"], rate=1000.0, total_events=5000)
    assert report.sent == {"a": 2500, "b": 2500}
    assert report.messages == 5000
    assert report.elapsed_s == pytest.approx(4.999, abs=1e-6)
    assert abs(report.achieved_rate / 1000.0 - 1) < 0.05
    assert sink.flushes == 1
    ts = sorted(e["ts"] for e in sink.events())
    assert ts[0] == 1_700_000_000.0
    assert ts[-1] == pytest.approx(1_700_000_000.0 + 4.999)
    gaps = {round(b - a, 6) for a, b in pairwise(ts)}
    assert gaps == {0.001}
    assert report.first_ts == ts[0]
    assert report.last_ts == ts[-1]


def test_models_alternate_and_messages_are_keyed_by_model() -> None:
    """Event k belongs to models[k % M]; every message's key is its model name."""
    sink, fake = RecordingSink(), FakeClock()
    simulate(sink, fake, models=["a", "b", "c"], rate=100.0, total_events=30, batch=7)
    events = sorted(sink.events(), key=lambda e: e["ts"])
    assert [e["model"] for e in events] == ["a", "b", "c"] * 10
    for _, value, key in sink.messages:
        assert key == msgspec.json.decode(value)["model"].encode()


def test_duration_bounds_the_run() -> None:
    """A 3 s run at 500 ev/s sends exactly the 1,500 events due within those 3 s."""
    sink, fake = RecordingSink(), FakeClock()
    report = simulate(sink, fake, models=["a"], rate=500.0, duration_s=3.0)
    assert report.events == 1500
    assert report.elapsed_s <= 3.0


def test_array_packs_events_of_one_model_per_message() -> None:
    """With array=10, messages are JSON arrays of up to 10 events of a single model."""
    sink, fake = RecordingSink(), FakeClock()
    report = simulate(sink, fake, models=["a", "b"], rate=0, total_events=1000, array=10)
    assert report.events == 1000
    assert report.messages == len(sink.messages) == 100
    for _, value, key in sink.messages:
        doc = msgspec.json.decode(value)
        assert isinstance(doc, list)
        assert 1 <= len(doc) <= 10
        assert {e["model"].encode() for e in doc} == {key}


def test_replay_compresses_event_time_and_drifts_after_the_offset() -> None:
    """time_scale=3600 pushes 2 h of event time in 2 s; drift starts 1 h into event time."""
    sink, fake = RecordingSink(), FakeClock()
    start = 1_600_000_000.0
    report = simulate(
        sink,
        fake,
        models=["fraud", "churn"],
        scenario="new-category",
        drift_models=["fraud"],
        rate=2000.0,
        total_events=4000,
        start_ts=start,
        time_scale=3600.0,
        drift_after_s=3600.0,
    )
    assert fake.slept == pytest.approx(2.0, abs=0.01)
    assert report.drift_start_ts == start + 3600.0
    assert report.drifted_models == ("fraud",)
    assert report.last_ts is not None
    assert report.last_ts - start == pytest.approx(3600.0 * 3999 / 2000)
    events = sink.events()
    new = [e for e in events if e["features"]["country"] == NEW_CATEGORY]
    assert new
    assert all(e["model"] == "fraud" and e["ts"] >= start + 3600.0 for e in new)
    late_fraud = [e for e in events if e["model"] == "fraud" and e["ts"] >= start + 3600.0]
    assert 0.05 < len(new) / len(late_fraud) < 0.11


def test_rate_zero_stamps_events_with_elapsed_wall_time() -> None:
    """At rate 0 nothing sleeps and event times follow the actual elapsed time."""
    sink, fake = RecordingSink(), FakeClock()
    report = simulate(sink, fake, models=["a"], rate=0, total_events=2500, batch=1000)
    assert fake.slept == 0.0
    assert report.events == 2500
    assert {e["ts"] for e in sink.events()} == {1_700_000_000.0}


def test_stop_callable_ends_the_run_and_still_flushes() -> None:
    """The run stops as soon as stop() returns True, and the sink is flushed."""
    sink, fake = RecordingSink(), FakeClock()
    report = simulate(
        sink, fake, models=["a"], rate=1000.0, batch=50, stop=lambda: len(sink.messages) >= 200
    )
    assert report.events == 200
    assert sink.flushes == 1


def test_stop_is_noticed_while_waiting_for_a_slow_rate() -> None:
    """At one event per 2 s, stop() is checked during the wait, not only between events."""
    sink, fake = RecordingSink(), FakeClock()
    start = fake.now
    report = simulate(sink, fake, models=["a"], rate=0.5, stop=lambda: fake.now - start >= 2.5)
    assert report.events == 2  # due at 0 s and 2 s; the one due at 4 s is never sent
    assert 2.5 <= report.elapsed_s <= 2.5 + 0.2


def test_falling_behind_drops_the_debt_instead_of_bursting() -> None:
    """A sender stalled 10 s resumes at the nominal rate, not with a 10 s catch-up burst."""
    sink, fake = RecordingSink(), FakeClock()
    stalled = False

    def stop() -> bool:
        nonlocal stalled
        if not stalled and len(sink.messages) >= 1000:
            fake.now += 10.0  # e.g. the broker blocked the producer for 10 s
            stalled = True
        return False

    report = simulate(sink, fake, models=["a"], rate=1000.0, total_events=3000, stop=stop)
    assert report.events == 3000
    # 1 s before the stall, 10 s stalled, a burst of 1 s worth (max_lag_s), then 1 s at the
    # rate: 12 s. Catching up the whole debt would end at 11 s.
    assert report.elapsed_s == pytest.approx(12.0, abs=0.05)


def test_on_progress_reports_interim_counts() -> None:
    """on_progress gets interim reports with growing event counts at the requested interval."""
    sink, fake = RecordingSink(), FakeClock()
    seen: list[SimulationReport] = []
    simulate(
        sink,
        fake,
        models=["a"],
        rate=1000.0,
        total_events=5000,
        on_progress=seen.append,
        progress_interval_s=1.0,
    )
    assert 4 <= len(seen) <= 5
    counts = [r.events for r in seen]
    assert counts == sorted(counts)
    assert counts[0] == pytest.approx(1000, abs=100)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scenario": "shift"}, "unknown scenario"),
        ({"models": []}, "at least one"),
        ({"models": ["a", "a"]}, "distinct"),
        ({"drift_models": ["z"]}, "z not among"),
        ({"rate": -1.0}, "rate"),
        ({"time_scale": 0.0}, "time_scale"),
        ({"batch": 0}, "batch"),
        ({"array": 0}, "array"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    """Bad arguments raise ValueError naming the problem, before anything is sent."""
    sink, fake = RecordingSink(), FakeClock()
    args: dict[str, Any] = {"models": ["a"], "total_events": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        simulate(sink, fake, **args)
    assert sink.messages == []


# --- against the real broker -----------------------------------------------------------------


def consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
    """Read `expected` records from the start of `topic` with a plain kafka-python consumer."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expected:
            assert time.monotonic() < deadline, f"only {len(records)} of {expected} records"
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(batch)
    finally:
        consumer.close()
    return records


def test_simulate_into_kafka_as_fast_as_possible(broker: TansuBroker, topic: str) -> None:
    """5,000 events for 2 models at rate 0 arrive once each, keyed, in the event shape."""
    sink = KafkaSink(producer_kwargs({"bootstrap_servers": broker.bootstrap}))
    try:
        report = run_simulation(
            sink, topic, models=["fraud", "churn"], rate=0, total_events=5000, batch=1000
        )
    finally:
        sink.close()
    assert report.sent == {"fraud": 2500, "churn": 2500}
    assert sink.failed == 0
    records = consume(broker.bootstrap, topic, 5000)
    assert len(records) == 5000
    events = [msgspec.json.decode(r.value) for r in records]
    assert Counter(e["model"] for e in events) == {"fraud": 2500, "churn": 2500}
    assert all(r.key == msgspec.json.decode(r.value)["model"].encode() for r in records)
    for e in events:
        assert set(e) == {"ts", "model", "model_version", "features"}
        assert isinstance(e["ts"], float)
        assert list(e["features"]) == FEATURE_NAMES


def test_simulate_into_kafka_at_a_fixed_rate(broker: TansuBroker, topic: str) -> None:
    """A 2 s run at 2,000 ev/s achieves the rate within 10 % and delivers every event."""
    sink = KafkaSink(producer_kwargs({"bootstrap_servers": broker.bootstrap}))
    try:
        sink.send(topic, b"{}")  # connect before timing, as a long-running simulation would be
        sink.flush()
        started = time.monotonic()
        report = run_simulation(sink, topic, models=["fraud", "churn"], rate=2000.0, duration_s=2.0)
        wall = time.monotonic() - started
    finally:
        sink.close()
    assert report.events == 4000
    assert abs(report.achieved_rate / 2000.0 - 1) < 0.10
    assert abs(report.events / wall / 2000.0 - 1) < 0.10
    assert len(consume(broker.bootstrap, topic, 4001)) == 4001
