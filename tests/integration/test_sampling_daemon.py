"""`sample_rate` through the daemon loop (in-memory source): determinism, accounting, power."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import numpy as np

from monitor.model import FeatureKind, FeatureSpec, RawMessage
from monitor.reference import fit_profile, profile_to_json
from monitor.sampling import uniforms
from tests.integration.test_daemon_fake_source import TP, Harness, build, settings_for
from tests.support.daemon_harness import model_entry

RATE = 0.1


def _reference(path: Path, n: int = 100_000) -> Path:
    """A file reference for `x` ~ N(0, 1)."""
    rng = np.random.default_rng(99)
    profile = fit_profile(
        "m", [FeatureSpec("x", FeatureKind.NUMERIC)], {"x": rng.normal(size=n)}, {}
    )
    path.write_text(profile_to_json(profile), encoding="utf-8")
    return path


def _log(n: int, seed: int, shift: float = 0.0) -> list[bytes]:
    """`n` events of model m with x ~ N(shift, 1), within the last 100 s."""
    rng = np.random.default_rng(seed)
    start = time.time() - 100.0
    encode = msgspec.json.Encoder().encode
    return [
        encode({"ts": start + i * 90.0 / n, "model": "m", "features": {"x": float(v)}})
        for i, v in enumerate(rng.normal(shift, 1.0, n))
    ]


def _harness(tmp_path: Path, logs: dict[TP, list[bytes]], name: str, **kafka: int) -> Harness:
    model = model_entry(
        "m",
        [("x", "numeric")],
        {"mode": "file", "path": str(_reference(tmp_path / "ref.json"))},
        sample_rate=RATE,
    )
    settings = settings_for(
        tmp_path, [model], state_dir=tmp_path / f"state-{name}", kafka=kafka or None
    )
    return build(settings, logs)


def _kept(logs: dict[TP, list[bytes]]) -> int:
    """Messages the hash keeps at RATE, computed from their coordinates alone."""
    messages = [
        RawMessage(topic, partition, offset, None, value)
        for (topic, partition), log in logs.items()
        for offset, value in enumerate(log)
    ]
    return int(np.count_nonzero(uniforms(messages) < RATE))


def test_sampled_windows_are_identical_across_runs_batch_sizes_and_a_crash(
    tmp_path: Path,
) -> None:
    """Two runs (other poll sizes) and a crash + replay count the same sampled events."""
    logs = {("t", 0): _log(20_000, seed=1), ("t", 1): _log(15_000, seed=2)}
    first = _harness(tmp_path, logs, "a", max_poll_records=5000)
    first.drain()
    second = _harness(tmp_path, logs, "b", max_poll_records=777)
    second.drain()
    kept = _kept(logs)
    assert 0.09 * 35_000 < kept < 0.11 * 35_000
    np.testing.assert_array_equal(first.current("m"), second.current("m"))
    assert int(first.current("m")[0].sum()) == kept
    assert first.value("driftmon_events_accepted_total", model="m") == kept
    assert first.value("driftmon_records_consumed_total", topic="t") == 35_000
    assert first.value("driftmon_sample_ratio", model="m") == RATE
    (evaluation,) = first.daemon.evaluate()
    assert evaluation.sample_rate == RATE
    assert evaluation.features[0].current_samples == kept

    crashed = _harness(tmp_path, logs, "c", max_poll_records=3000)
    for _ in range(4):
        crashed.daemon.step()
    assert crashed.daemon.checkpoint()
    for _ in range(2):
        crashed.daemon.step()  # counted, then lost in the crash
    del crashed
    replay = _harness(tmp_path, logs, "c", max_poll_records=3000)
    replay.drain()
    np.testing.assert_array_equal(replay.current("m"), first.current("m"))


def test_a_half_sigma_shift_is_detected_from_ten_thousand_sampled_events(
    tmp_path: Path,
) -> None:
    """100,000 events at rate 0.1: a 0.5 sd shift drifts, the same stream unshifted does not."""
    verdicts = {}
    for shift in (0.0, 0.5):
        logs = {("t", 0): _log(100_000, seed=3, shift=shift)}
        harness = _harness(tmp_path, logs, f"shift-{shift}")
        harness.drain()
        (evaluation,) = harness.daemon.evaluate()
        (feature,) = evaluation.features
        assert 9_000 < feature.current_samples < 11_000
        verdicts[shift] = feature.drift_detected
    assert verdicts == {0.0: False, 0.5: True}
