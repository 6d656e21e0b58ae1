"""One end-to-end consumer run in a fresh process: the driftmon daemon loop, or raw kafka-python.

    python -m bench.e2e_worker --mode driftmon|raw --config driftmon.yaml --events N

Both modes read the same topic with the same consumer settings (`KafkaSettings.
consumer_kwargs()` of the config: same `max_poll_records`, fetch sizes and a fresh group
id), until N records have been consumed.

- `driftmon`: the real `Daemon` loop (`Daemon.step()`: poll, decode, bin into the event-time
  window, evaluate on the configured interval, checkpoint when due) over the real
  `KafkaSource`, wired by `monitor.compose` exactly as `driftmon run` wires it — `driftmon
  run` without its HTTP thread.
- `raw`: `KafkaConsumer.poll()` returning raw bytes and nothing else: the practical ceiling of
  a kafka-python consumer on this machine.

A driftmon run also splits its wall time per event into the source's poll, the decoder
(`BatchDecoder.slices` in the loop, wrapped with a timer after `Daemon.start()` built it) and
the rest (binning into the window, metrics, evaluations, checkpoints). With
`event.decode_worker` the decoding runs in the worker's child: its CPU per event is reported
apart (`worker_cpu_us_per_event`), and once every record was polled the source polls
without waiting, so the batches still in the worker are applied at once (a live stream's
next batches would do that; the end of the bench topic would add an idle poll timeout).

The rate is (N - first batch) / (time of the last record - start of the poll after the first
batch), so group join, connection set-up and the first batch are not counted in either mode;
CPU per event is this process's CPU time over the same span. Afterwards the driftmon mode
times five evaluations of the full window (`ModelRuntime.evaluate`), checks that every event
was accepted, and reports the peak RSS reached while consuming (VmHWM) before shutting down.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import monitor  # noqa: F401  (first: single-threaded BLAS, as in `driftmon run`)
from bench.harness import emit, peak_rss_mib


@dataclass
class Clock:
    """Starts when the first non-empty batch has been handled (at the next poll), then adds up
    the time spent in polls and in decoding."""

    first_wall: float | None = None
    first_cpu: float = 0.0
    first_size: int = 0
    poll_s: float = 0.0
    decode_s: float = 0.0
    polls: int = 0
    records: int = 0
    on_start: Callable[[], None] | None = None

    def mark(self) -> None:
        """Call before every poll: starts the clock once the first batch was handled."""
        if self.first_size and self.first_wall is None:
            self.first_wall = time.perf_counter()
            self.first_cpu = time.process_time()
            if self.on_start is not None:
                self.on_start()

    def saw(self, n: int) -> None:
        """Call after every poll with the number of records it returned."""
        if n and not self.first_size:
            self.first_size = n
        elif n:
            self.polls += 1
            self.records += n


class TimedDecoder:
    """Delegates `decode` / `slices` to the daemon's BatchDecoder and adds the time spent
    decoding (each slice, not the caller's work between slices) to a Clock."""

    def __init__(self, inner: Any, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock

    def decode(self, messages: Any, account: Any = None) -> Any:
        """Delegate and time."""
        started = time.perf_counter()
        result = self._inner.decode(messages, account)
        if self._clock.first_wall is not None:
            self._clock.decode_s += time.perf_counter() - started
        return result

    def slices(self, messages: Any, account: Any) -> Iterator[Any]:
        """Delegate and time the production of each slice."""
        parts = iter(self._inner.slices(messages, account))
        while True:
            started = time.perf_counter()
            part = next(parts, None)
            if self._clock.first_wall is not None:
                self._clock.decode_s += time.perf_counter() - started
            if part is None:
                return
            yield part


class TimedSource:
    """A RecordSource that delegates to another and tells a Clock about every batch."""

    def __init__(self, inner: Any, clock: Clock, events: int) -> None:
        self._inner = inner
        self._clock = clock
        self._events = events

    def poll(self, timeout_s: float, max_records: int, held_bytes: int = 0) -> list[Any]:
        """Delegate (without waiting once every record was polled), then record the size."""
        self._clock.mark()
        if self._clock.first_size + self._clock.records >= self._events:
            timeout_s = 0.0
        started = time.perf_counter()
        batch: list[Any] = self._inner.poll(timeout_s, max_records, held_bytes)
        if self._clock.first_wall is not None:
            self._clock.poll_s += time.perf_counter() - started
        self._clock.saw(len(batch))
        return batch

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Delegate."""
        self._inner.commit(offsets)

    def assignment(self) -> frozenset[tuple[str, int]]:
        """Delegate."""
        result: frozenset[tuple[str, int]] = self._inner.assignment()
        return result

    def lag(self) -> dict[tuple[str, int], int]:
        """Delegate."""
        result: dict[tuple[str, int], int] = self._inner.lag()
        return result

    def held_back(self) -> bool:
        """Delegate."""
        return bool(self._inner.held_back())

    def unreadable_batches(self) -> dict[tuple[str, Any], int]:
        """Delegate."""
        result: dict[tuple[str, Any], int] = self._inner.unreadable_batches()
        return result

    def is_connected(self) -> bool:
        """Delegate."""
        return bool(self._inner.is_connected())

    def close(self) -> None:
        """Delegate."""
        self._inner.close()


class _WorkerProcess:
    """The daemon's decode worker child, read from /proc (zeros without one): its CPU seconds
    since the start of the rate's span (`started()`, called by `Clock.mark`) and its peak RSS."""

    def __init__(self, daemon: Any) -> None:
        self._daemon = daemon
        self._at_start: float | None = None

    def _proc(self, name: str) -> str | None:
        worker = self._daemon.decode_worker
        process = None if worker is None else worker._process
        if process is None or process.pid is None:
            return None
        try:
            return Path(f"/proc/{process.pid}/{name}").read_text()
        except OSError:
            return None

    def cpu_seconds(self) -> float:
        """utime + stime of the child."""
        stat = self._proc("stat")
        if stat is None:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self) -> float:
        """The child's peak resident set (VmHWM)."""
        status = self._proc("status") or ""
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def started(self) -> None:
        if self._at_start is None:
            self._at_start = self.cpu_seconds()

    def cpu_since_start(self) -> float:
        return self.cpu_seconds() - (self._at_start or 0.0)


def _span(clock: Clock, events: int, end_wall: float, end_cpu: float) -> dict[str, Any]:
    if clock.first_wall is None:
        raise RuntimeError("no record arrived")
    counted = events - clock.first_size
    seconds = end_wall - clock.first_wall
    return {
        "events": events,
        "events_per_s": counted / seconds if seconds > 0 else None,
        "cpu_us_per_event": (end_cpu - clock.first_cpu) / counted * 1e6 if counted else None,
        "seconds": seconds,
        "events_per_poll": clock.records / clock.polls if clock.polls else None,
    }


def run_driftmon(config: Path, events: int, deadline_s: float) -> dict[str, Any]:
    """The daemon loop over the topic until `events` records were consumed."""
    from monitor.compose import build_daemon, kafka_source_factory
    from monitor.config import load_settings
    from monitor.daemon import AssignCallback, RevokeCallback, tune_garbage_collector
    from monitor.logconf import configure_logging

    settings = load_settings(config)
    configure_logging(settings.log.level, settings.log.format)
    clock = Clock()
    kafka_source = kafka_source_factory(settings)

    def make_source(on_assign: AssignCallback, on_revoke: RevokeCallback) -> TimedSource:
        return TimedSource(kafka_source(on_assign, on_revoke), clock, events)

    daemon = build_daemon(settings, make_source).daemon
    daemon.start()
    daemon.decoder = TimedDecoder(daemon.decoder, clock)  # type: ignore[assignment]
    worker = _WorkerProcess(daemon)
    clock.on_start = worker.started
    tune_garbage_collector()  # as `driftmon run` does
    give_up = time.monotonic() + deadline_s
    while daemon.stats.records < events:
        if time.monotonic() > give_up:
            raise RuntimeError(f"only {daemon.stats.records} of {events} records in {deadline_s} s")
        daemon.step()
    end_wall, end_cpu = time.perf_counter(), time.process_time()
    result = _span(clock, daemon.stats.records, end_wall, end_cpu)
    counted = daemon.stats.records - clock.first_size
    result["worker_cpu_us_per_event"] = worker.cpu_since_start() / counted * 1e6
    result["worker_peak_rss_mib"] = round(worker.peak_rss_mib(), 1)
    result["poll_us_per_event"] = clock.poll_s / counted * 1e6
    result["decode_us_per_event"] = clock.decode_s / counted * 1e6
    result["rest_us_per_event"] = result["seconds"] / counted * 1e6 - (
        result["poll_us_per_event"] + result["decode_us_per_event"]
    )
    peak_consuming = peak_rss_mib()
    daemon.apply_pending()  # the last polls' events may still wait for a minimum batch
    runtime = next(iter(daemon.runtimes.values()))
    assert runtime.window is not None
    accepted = int(runtime.window.current()[0].sum())
    timings, drifted = [], 0
    for _ in range(5):
        started = time.perf_counter()
        evaluation = runtime.evaluate(time.time())
        timings.append(time.perf_counter() - started)
        drifted = evaluation.drifted_features
    result.update(
        {
            "mode": "driftmon",
            "accepted": accepted,
            "rejected": daemon.stats.rejected,
            "evaluations_in_loop": daemon.stats.evaluations,
            "evaluate_ms": statistics.median(timings) * 1e3,
            "drifted_features": drifted,
            "features": len(runtime.specs),
            "state_bytes": runtime.memory_bytes(),
            "peak_rss_mib_consuming": round(peak_consuming, 1),
        }
    )
    daemon.shutdown()
    return result


def run_raw(config: Path, events: int, deadline_s: float) -> dict[str, Any]:
    """Plain kafka-python: poll raw bytes with the daemon's consumer settings, nothing else."""
    from kafka import KafkaConsumer

    from monitor.config import load_settings

    settings = load_settings(config)
    kwargs: dict[str, Any] = {
        **settings.kafka.consumer_kwargs(),
        "value_deserializer": None,
        "key_deserializer": None,
    }
    max_records = settings.kafka.max_poll_records
    consumer = KafkaConsumer(**kwargs)
    consumer.subscribe(list(settings.kafka.topics))
    clock = Clock()
    seen = 0
    give_up = time.monotonic() + deadline_s
    while seen < events:
        if time.monotonic() > give_up:
            raise RuntimeError(f"only {seen} of {events} records in {deadline_s} s")
        clock.mark()
        batches = consumer.poll(timeout_ms=200, max_records=max_records)
        n = sum(len(records) for records in batches.values())
        clock.saw(n)
        seen += n
    end_wall, end_cpu = time.perf_counter(), time.process_time()
    result = _span(clock, seen, end_wall, end_cpu)
    result.update({"mode": "raw", "peak_rss_mib_consuming": round(peak_rss_mib(), 1)})
    consumer.close()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run one mode, print the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("driftmon", "raw"), required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--deadline", type=float, default=600.0, help="give up after seconds")
    args = parser.parse_args(argv)
    runner = run_driftmon if args.mode == "driftmon" else run_raw
    emit(runner(args.config, args.events, args.deadline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
