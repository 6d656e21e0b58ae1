"""ModelRuntime: rolling (lagging) references, warm-up freezing and checkpoint round trips."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from monitor.account import BatchAccount
from monitor.config import Settings, load_settings
from monitor.decode import ModelColumns
from monitor.errors import RejectReason
from monitor.model import RawMessage
from monitor.runtime import ROLLING_BUCKET_SECONDS, ModelRuntime, model_runtimes

START = 1_800_000_000.0  # an hour boundary (divisible by 3600)


def _settings(tmp_path: Path, mode: str) -> Settings:
    config = tmp_path / "driftmon.yaml"
    config.write_text(
        f"""
kafka: {{bootstrap_servers: "127.0.0.1:9", topics: [t]}}
models:
  - name: m
    reference: {{mode: {mode}, warmup_events: 200, lag: 2h, length: 1h}}
    features:
      - {{name: x, kind: numeric}}
      - {{name: c, kind: categorical}}
window: {{bucket: 1m, length: 1h, allowed_lateness: 0s}}
evaluation: {{min_samples: 50}}
state: {{dir: "{tmp_path / "state"}"}}
"""
    )
    return load_settings(config, env={})


def _runtime(settings: Settings, now: float) -> ModelRuntime:
    return model_runtimes(settings, clock=lambda: now)["m"]


def _columns(times: np.ndarray, x: np.ndarray, c: np.ndarray) -> ModelColumns:
    return ModelColumns(
        model="m",
        times=times.astype(np.float64),
        numeric=x.reshape(1, -1).astype(np.float64),
        categorical=(c.astype(object),),
        model_version="v1",
        sources=np.zeros(times.size, dtype=np.int32),
    )


def _stream(rng: np.random.Generator, hours: float, per_minute: int) -> ModelColumns:
    n = int(hours * 60 * per_minute)
    times = START + np.sort(rng.uniform(0, hours * 3600, n))
    x = rng.normal(size=n) + (times - START) / 3600.0  # the mean moves one unit per hour
    c = rng.choice(np.array(["a", "b", "c", "d"]), n)
    return _columns(times, x, c)


def test_rolling_reference_is_the_lagging_hour_of_event_time(tmp_path: Path) -> None:
    """The rolling reference equals the counts of raw events in [wm - lag - length, wm - lag]."""
    rng = np.random.default_rng(3)
    settings = _settings(tmp_path, "rolling")
    runtime = _runtime(settings, START + 10 * 3600)
    stream = _stream(rng, hours=4.5, per_minute=20)
    for lo in range(0, len(stream), 997):
        part = slice(lo, lo + 997)
        runtime.ingest(
            _columns(stream.times[part], stream.numeric[0, part], stream.categorical[0][part])
        )
    assert runtime.ready and runtime.layout is not None and runtime.lagging is not None
    assert runtime.window is not None and runtime.window.watermark is not None
    after_warmup = slice(200, None)
    times = stream.times[after_warmup]
    watermark = runtime.window.watermark
    hi_hour = np.floor((watermark - 2 * 3600) / ROLLING_BUCKET_SECONDS)
    in_reference = np.floor(times / ROLLING_BUCKET_SECONDS) == hi_hour
    expected = runtime.layout.count(
        stream.numeric[:, after_warmup][:, in_reference],
        (stream.categorical[0][after_warmup][in_reference],),
    )
    assert np.array_equal(runtime.lagging.reference(), expected)
    evaluation = runtime.evaluate(watermark)
    numeric = next(f for f in evaluation.features if f.name == "x")
    assert numeric.reference_samples == int(in_reference.sum())
    assert numeric.drift_detected  # two hours of mean drift: one unit per hour


def test_rolling_state_survives_a_checkpoint_round_trip(tmp_path: Path) -> None:
    """Restoring a rolling model's checkpoint gives the same reference, window and evaluation."""
    rng = np.random.default_rng(4)
    settings = _settings(tmp_path, "rolling")
    now = START + 10 * 3600
    runtime = _runtime(settings, now)
    runtime.ingest(_stream(rng, hours=3.5, per_minute=10))
    state = runtime.to_state()
    restored = _runtime(settings, now)
    restored.restore(state)
    assert restored.lagging is not None and runtime.lagging is not None
    assert np.array_equal(restored.lagging.reference(), runtime.lagging.reference())
    assert restored.reference_id == runtime.reference_id
    assert restored.evaluate(now) == runtime.evaluate(now)


@pytest.mark.parametrize("mode", ["warmup", "rolling"])
def test_warmup_freezes_edges_from_exactly_the_first_events(tmp_path: Path, mode: str) -> None:
    """The first warmup_events events fit the edges; later events go to the window only."""
    rng = np.random.default_rng(5)
    settings = _settings(tmp_path, mode)
    runtime = _runtime(settings, START + 10 * 3600)
    stream = _stream(rng, hours=1.0, per_minute=10)
    account = BatchAccount()
    runtime.ingest(stream, account)
    assert account.events_accepted == {"m": len(stream)} and account.rejected == {}
    assert runtime.profile is not None
    x_profile = runtime.profile.feature("x")
    assert x_profile is not None and x_profile.samples == 200
    assert runtime.window is not None
    assert int(runtime.window.current()[0, :-2].sum()) == len(stream) - 200
    persisted = settings.state.dir / "references" / "m.json"
    assert persisted.is_file()


def test_a_window_drop_is_offered_as_one_log_sample_without_the_event_time(
    tmp_path: Path,
) -> None:
    """Late events of two messages: both dead-lettered, one `too_late` sample naming the
    first message's position and count, no event time (window drops were never sampled)."""
    rng = np.random.default_rng(4)
    runtime = _runtime(_settings(tmp_path, "warmup"), START + 7200)
    runtime.ingest(
        _columns(START + 3600 + np.arange(200.0), rng.normal(size=200), np.full(200, "a"))
    )
    assert runtime.ready
    runtime.ingest(_columns(START + 3900 + np.arange(10.0), rng.normal(size=10), np.full(10, "a")))
    late = dataclasses.replace(
        _columns(np.full(3, START + 17.25), rng.normal(size=3), np.full(3, "a")),
        messages=np.asarray([0, 0, 1], dtype=np.int32),
    )
    messages = [RawMessage("t", 0, offset, None, b"{}") for offset in (41, 42)]
    account = BatchAccount()
    runtime.ingest(late, account, messages)
    assert account.rejected == {("t", RejectReason.TOO_LATE): 3}
    assert len(account.dead_letters) == 2
    [sample] = account.samples
    assert (sample.offset, sample.reason) == (41, RejectReason.TOO_LATE)
    assert sample.detail.startswith("2 events of model m: event time older than")
    assert "17.25" not in sample.detail
