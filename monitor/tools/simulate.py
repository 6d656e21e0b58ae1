"""Produce synthetic feature events to a topic at a controlled rate (`driftmon simulate`).

Layer 4. `run_simulation` draws events with `monitor.tools.scenarios.EventGenerator` (one generator
per model) and hands the encoded messages to a `Sink` (`monitor.source.KafkaSink` in the CLI;
anything with `send` and `flush` in tests).

Contract of `run_simulation`:

- Models take turns event by event (event k belongs to `models[k % len(models)]`), so every
  model gets `rate / len(models)` events per second. Each message is keyed by its model name
  and holds one JSON object (one event) or, with `array=N`, a JSON array of up to N events of
  the same model.
- Pacing (`rate > 0`): event k is due at wall offset k / rate from the start. Events are
  generated in steps of at most `batch` events and at most a tenth of a second's worth, and a
  step is sent once its last event is due (sleeping as needed), so the long-run rate is `rate`.
  A sender that falls more than `max_lag_s` behind its schedule forgets the older debt: it
  catches up at most `rate * max_lag_s` events in a burst (a token bucket of that depth), and
  the event times skip the gap. `rate == 0` sends as fast as possible.
- Event time: `ts = start_ts + time_scale * t`, with t the event's due offset (its actual wall
  offset when `rate == 0`). `start_ts` defaults to the wall clock at the start; a past
  `start_ts` with `time_scale > 1` replays history compressed (`time_scale=3600` pushes an hour
  of event time per wall second).
- Drift: the models in `drift_models` (default: all) follow `scenario` for events with
  `ts >= start_ts + drift_after_s` (event-time seconds; the same as wall seconds when
  `time_scale == 1`); the other models stay clean.
- Stop: after `total_events` events, or when the next event would be due at or after
  `duration_s` wall seconds (with `rate == 0`: once `duration_s` have elapsed), or when
  `stop()` returns True (checked before every step and at least every 0.2 s while waiting;
  a step not yet sent when it turns True is dropped). With none of them it runs until
  interrupted. The sink is flushed at the end, and the report counts what was handed to it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.tools.scenarios import EventGenerator, affected_features, encode, encode_array

__all__ = ["SimulationReport", "Sink", "check_arguments", "run_simulation"]

_STEP_SECONDS = 0.1
_SLEEP_RESOLUTION_S = 1e-6  # closer than this to the due time counts as due
_STOP_CHECK_S = 0.2  # longest sleep between two stop() checks


class Sink(Protocol):
    """Where the messages go: `monitor.source.KafkaSink` has this shape."""

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Queue one message (may raise if it cannot be queued)."""
        ...

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every queued message is delivered or failed."""
        ...


@dataclass(frozen=True, slots=True)
class SimulationReport:
    """What a simulation sent: events per model, messages, wall time and event-time span.

    `first_ts` / `last_ts` are the smallest and largest event times sent (None if nothing was
    sent); `drift_start_ts` is the event time drift starts at (None for scenario `none`).
    """

    sent: dict[str, int]
    messages: int
    elapsed_s: float
    first_ts: float | None
    last_ts: float | None
    drift_start_ts: float | None
    drifted_models: tuple[str, ...] = field(default_factory=tuple)

    @property
    def events(self) -> int:
        """Total events sent, all models."""
        return sum(self.sent.values())

    @property
    def achieved_rate(self) -> float:
        """Events per wall second over the whole run (0 when no time elapsed)."""
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


def check_arguments(
    *,
    models: Sequence[str],
    scenario: str,
    drift_models: Sequence[str] | None,
    rate: float,
    total_events: int | None,
    duration_s: float | None,
    time_scale: float = 1.0,
    batch: int = 1000,
    array: int | None = None,
) -> None:
    """ValueError naming the first invalid argument of `run_simulation` (the CLI's exit 2)."""
    affected_features(scenario)  # ValueError listing the valid scenarios
    if not models or any(not m for m in models):
        raise ValueError("models: at least one non-empty model name is required")
    if len(set(models)) != len(models):
        raise ValueError("models: names must be distinct")
    if drift_models is not None and not set(drift_models) <= set(models):
        unknown = sorted(set(drift_models) - set(models))
        raise ValueError(f"drift_models: {', '.join(unknown)} not among the simulated models")
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError("rate must be a finite number >= 0 (0 = as fast as possible)")
    if total_events is not None and total_events < 0:
        raise ValueError("total_events must be >= 0")
    if duration_s is not None and not duration_s >= 0:
        raise ValueError("duration_s must be >= 0")
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise ValueError("time_scale must be a finite number > 0")
    if batch < 1:
        raise ValueError("batch must be >= 1")
    if array is not None and array < 1:
        raise ValueError("array must be >= 1 (or None for one event per message)")


def run_simulation(
    sink: Sink,
    topic: str,
    *,
    models: Sequence[str],
    scenario: str = "none",
    drift_models: Sequence[str] | None = None,
    rate: float = 1000.0,
    total_events: int | None = None,
    duration_s: float | None = None,
    drift_after_s: float = 0.0,
    start_ts: float | None = None,
    time_scale: float = 1.0,
    batch: int = 1000,
    array: int | None = None,
    seed: int = 0,
    max_lag_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], float] = time.time,
    stop: Callable[[], bool] | None = None,
    on_progress: Callable[[SimulationReport], None] | None = None,
    progress_interval_s: float = 5.0,
) -> SimulationReport:
    """Send synthetic events to `topic` through `sink` (see the module docstring).

    `clock` (monotonic seconds) and `sleep` pace the run, `wall` gives the default `start_ts`.
    `on_progress` receives an interim report at most every `progress_interval_s`.
    ValueError for invalid arguments; exceptions of `sink` propagate.
    """
    check_arguments(
        models=models,
        scenario=scenario,
        drift_models=drift_models,
        rate=rate,
        total_events=total_events,
        duration_s=duration_s,
        time_scale=time_scale,
        batch=batch,
        array=array,
    )
    n_models = len(models)
    start = wall() if start_ts is None else float(start_ts)
    drift_start = None if scenario == "none" else start + drift_after_s
    drifting = tuple(models) if drift_models is None else tuple(drift_models)
    generators = [
        EventGenerator(m, scenario if m in drifting else "none", seed=seed, drift_start=drift_start)
        for m in models
    ]
    keys = [m.encode("utf-8") for m in models]
    step = batch if rate == 0 else max(1, min(batch, math.ceil(rate * _STEP_SECONDS)))
    sent = dict.fromkeys(models, 0)
    messages = 0
    first_ts: float | None = None
    last_ts: float | None = None

    def report(elapsed: float) -> SimulationReport:
        return SimulationReport(
            dict(sent),
            messages,
            elapsed,
            first_ts,
            last_ts,
            drift_start,
            drifting if drift_start is not None else (),
        )

    t0 = clock()
    last_progress = t0
    scheduled = 0.0  # wall offset (s since t0) at which the next event is due
    produced = 0  # global event index of the next event
    while not (stop is not None and stop()):
        n = step if total_events is None else min(step, total_events - produced)
        if rate > 0:
            now = clock() - t0
            if now - scheduled > max_lag_s:
                scheduled = now - max_lag_s  # too far behind: keep at most max_lag_s of debt
            if duration_s is not None:
                n = min(n, math.ceil((duration_s - scheduled) * rate - 1e-9))
            event_offset, gen_rate = scheduled, rate / (n_models * time_scale)
        else:
            event_offset, gen_rate = clock() - t0, math.inf
            if duration_s is not None and event_offset >= duration_s:
                break
        if n <= 0:
            break

        payloads: list[tuple[int, list[dict[str, Any]], list[bytes]]] = []
        for m in range(n_models):
            first = (m - produced) % n_models  # first offset in this step owned by model m
            count = len(range(first, n, n_models))
            if count:
                offset = event_offset + first / rate if rate > 0 else event_offset
                events = generators[m].events(count, start + time_scale * offset, gen_rate)
                payloads.append((m, events, _messages(events, array)))

        if rate > 0:
            due = scheduled + (n - 1) / rate
            if not _wait_until(due, t0, clock, sleep, stop):
                break
            scheduled += n / rate
        for m, events, values in payloads:
            for value in values:
                sink.send(topic, value, keys[m])
            messages += len(values)
            sent[models[m]] += len(events)
            ts_first, ts_last = events[0]["ts"], events[-1]["ts"]
            first_ts = ts_first if first_ts is None else min(first_ts, ts_first)
            last_ts = ts_last if last_ts is None else max(last_ts, ts_last)
        produced += n

        if on_progress is not None and clock() - last_progress >= progress_interval_s:
            last_progress = clock()
            on_progress(report(last_progress - t0))

    sink.flush()
    return report(clock() - t0)


def _wait_until(
    due: float,
    t0: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    stop: Callable[[], bool] | None,
) -> bool:
    """Sleep until `clock() - t0 >= due`, in slices of at most `_STOP_CHECK_S` so that `stop`
    is noticed quickly; False if `stop()` turned True meanwhile."""
    while (remaining := due - (clock() - t0)) > _SLEEP_RESOLUTION_S:
        sleep(min(remaining, _STOP_CHECK_S))
        if stop is not None and remaining > _STOP_CHECK_S and stop():
            return False
    return True


def _messages(events: list[dict[str, Any]], array: int | None) -> list[bytes]:
    """One message per event, or JSON arrays of up to `array` events."""
    if array is None:
        return encode(events)
    return [encode_array(events[i : i + array]) for i in range(0, len(events), array)]
