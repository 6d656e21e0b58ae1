"""Configuration reloads (what SIGHUP triggers) on a daemon over an in-memory source.

The daemon is built as `driftmon run` builds it, with a settings loader that re-reads the
config file. The oracle of "unchanged features keep their state" is a daemon that ran the
old configuration over the same events without a reload.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from prometheus_client import generate_latest

from monitor.account import BatchAccount
from monitor.compose import build_daemon
from monitor.config import load_settings
from monitor.daemon import AssignCallback, RevokeCallback
from monitor.errors import ReloadResult
from monitor.runtime import ModelRuntime
from monitor.tools.scenarios import EventGenerator
from tests.integration.test_daemon_fake_source import Clock, FakeSource, Harness
from tests.support.daemon_harness import daemon_config, model_entry, write_config

TP = tuple[str, int]
OLD = [
    ("amount", "numeric"),
    ("age", "numeric"),
    ("score", "numeric"),
    ("country", "categorical"),
    ("device", "categorical"),
]
NEW = [
    ("amount", "numeric"),
    ("age", "categorical"),
    ("country", "categorical"),
    ("device", "categorical"),
    ("latency_ms", "numeric"),
    ("balance", "numeric"),
]
UNCHANGED = ("amount", "country", "device")


def config(
    tmp_path: Path,
    features: Sequence[tuple[str, str]],
    reference: dict[str, Any] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """A daemon config of one model `m` with `features` (default: a 500-event warm-up)."""
    reference = reference or {"mode": "warmup", "warmup_events": 500}
    return daemon_config(
        bootstrap="127.0.0.1:9",
        topics=["t"],
        models=[model_entry("m", features, reference)],
        state_dir=kw.pop("state_dir", tmp_path / "state"),
        group_id="reload-test",
        kafka={"max_poll_records": 250},
        **kw,
    )


def build(path: Path, logs: dict[TP, list[bytes]]) -> Harness:
    """A started daemon over a FakeSource of `logs` that reloads from the file at `path`."""
    made: list[FakeSource] = []

    def factory(on_assign: AssignCallback, on_revoke: RevokeCallback) -> FakeSource:
        made.append(FakeSource(logs, on_assign, on_revoke))
        return made[0]

    clock = Clock()
    wiring = build_daemon(
        load_settings(path, env={}),
        factory,
        monotonic=clock,
        settings_loader=lambda: load_settings(path, env={}),
    )
    wiring.daemon.start()
    return Harness(wiring.daemon, wiring.registry, made[0], clock)


def stream(n: int, seed: int, *, age_as_text: bool = False) -> list[bytes]:
    """`n` demo events of model `m` within the last minutes (age as a string if asked)."""
    out = []
    for event in EventGenerator("m", seed=seed).events(n, time.time() - 200.0, 100.0):
        if age_as_text:
            event["features"]["age"] = str(int(event["features"]["age"]))
        out.append(msgspec.json.encode(event))
    return out


def rows(runtime: ModelRuntime) -> dict[str, list[int]]:
    """Each feature's current-window row: value slots, MISSING, INVALID (deferred events
    counted first)."""
    runtime.flush(BatchAccount())
    assert runtime.layout is not None and runtime.window is not None
    current = runtime.window.current()
    return {
        name: [*current[i, : int(slots)].tolist(), int(current[i, -2]), int(current[i, -1])]
        for i, (name, slots) in enumerate(
            zip(runtime.layout.names, runtime.layout.value_slots.tolist(), strict=True)
        )
    }


def exposition(h: Harness) -> str:
    """The daemon's /metrics text."""
    return generate_latest(h.registry).decode()


def test_a_reload_applies_feature_changes_and_keeps_every_unchanged_window(
    tmp_path: Path,
) -> None:
    """Add 2, remove 1, re-kind 1 by reload: unchanged rows equal an uninterrupted run's."""
    before, after = stream(2000, seed=1), stream(2000, seed=2, age_as_text=True)
    path = write_config(tmp_path / "driftmon.yaml", config(tmp_path, OLD))
    h = build(path, {("t", 0): before + after})
    for _ in range(8):  # 2000 events: the first batches of the log
        h.daemon.step()
    assert sum(h.daemon.offsets.values()) == 2000
    write_config(path, config(tmp_path, NEW))
    assert 'feature="score"' in exposition(h)
    h.daemon.request_reload()
    h.drain()
    assert h.value("driftmon_config_reloads_total", result="success") == 1
    assert h.value("driftmon_config_last_reload_successful") == 1

    straight = build(
        write_config(tmp_path / "straight.yaml", config(tmp_path, OLD, state_dir=tmp_path / "s")),
        {("t", 0): before + after},
    )
    straight.drain()
    mine, theirs = rows(h.daemon.runtimes["m"]), rows(straight.daemon.runtimes["m"])
    for name in UNCHANGED:
        assert mine[name] == theirs[name], name
    assert set(mine) == {n for n, _ in NEW}
    h.daemon.evaluate()
    text = exposition(h)
    assert 'feature="score"' not in text  # statistics and the invalid-values counter
    assert 'driftmon_feature_invalid_values_total{feature="balance",model="m"}' in text
    evaluation = {f.name: f for f in h.daemon.collector.snapshot.models[0].features}
    # age is categorical now: the 500 events after the reload are its warm-up, then it counts
    assert evaluation["age"].kind.value == "categorical" and evaluation["age"].reference_ready
    assert evaluation["age"].reference_samples == 500
    assert 0 < evaluation["age"].current_samples <= 1500
    assert h.value("driftmon_feature_invalid_values_total", model="m", feature="age") == 0


def test_an_invalid_config_is_refused_and_the_running_one_stays(tmp_path: Path) -> None:
    """A file that does not validate: counted `invalid`, gauge 0, same runtimes, still counting."""
    path = write_config(tmp_path / "driftmon.yaml", config(tmp_path, OLD))
    h = build(path, {("t", 0): stream(1500, seed=3)})
    h.daemon.step()
    runtimes = dict(h.daemon.runtimes)
    path.write_text(path.read_text().replace("kind: numeric", "kind: numerical", 1))
    assert h.daemon.reload() is ReloadResult.INVALID
    assert h.value("driftmon_config_reloads_total", result="invalid") == 1
    assert h.value("driftmon_config_last_reload_successful") == 0
    assert h.daemon.runtimes == runtimes
    h.drain()
    assert h.value("driftmon_events_accepted_total", model="m") == 1500
    write_config(path, config(tmp_path, OLD, evaluation={"interval": "2s", "min_samples": 100}))
    assert h.daemon.reload() is ReloadResult.SUCCESS
    assert h.value("driftmon_config_last_reload_successful") == 1
    assert h.value("driftmon_evaluation_interval_seconds") == 2.0
    assert h.daemon.runtimes["m"].policy.min_samples == 100


def test_a_change_only_a_restart_applies_is_refused_with_its_keys(tmp_path: Path) -> None:
    """A new window length or HTTP port on reload: `restart_required`, nothing applied."""
    path = write_config(tmp_path / "driftmon.yaml", config(tmp_path, OLD))
    h = build(path, {("t", 0): stream(600, seed=4)})
    h.drain()
    changed = config(tmp_path, NEW, window={"bucket": "1m", "length": "20m"})
    changed["http"]["port"] = 9999
    write_config(path, changed)
    lines: list[tuple[str, dict[str, Any]]] = []
    h.daemon.log = _Recorder(lines)
    assert h.daemon.reload() is ReloadResult.RESTART_REQUIRED
    assert h.value("driftmon_config_reloads_total", result="restart_required") == 1
    assert [n for n, _ in OLD] == [s.name for s in h.daemon.runtimes["m"].plan.features]
    event, fields = lines[-1]
    assert "restart required" in event
    assert fields["changed"] == ["window.length", "http.port"]


def test_a_file_model_whose_reference_lacks_an_added_feature_is_refused(tmp_path: Path) -> None:
    """Adding a feature the reference file does not hold refuses the whole reload."""
    from monitor.model import FeatureKind, FeatureSpec
    from monitor.reference import fit_profile, profile_to_json

    cols = EventGenerator("m", seed=5).columns(2000, 1.0, 1.0)
    specs = [FeatureSpec(n, FeatureKind(k)) for n, k in OLD]
    profile = fit_profile(
        "m",
        specs,
        {s.name: cols.numeric[s.name] for s in specs if s.kind is FeatureKind.NUMERIC},
        {
            s.name: list(cols.categorical[s.name])
            for s in specs
            if s.kind is FeatureKind.CATEGORICAL
        },
    )
    ref = tmp_path / "ref.json"
    ref.write_text(profile_to_json(profile))
    file_ref = {"mode": "file", "path": str(ref)}
    path = write_config(tmp_path / "driftmon.yaml", config(tmp_path, OLD, file_ref))
    h = build(path, {("t", 0): stream(800, seed=6)})
    h.drain()
    before = rows(h.daemon.runtimes["m"])
    write_config(path, config(tmp_path, [*OLD, ("balance", "numeric")], file_ref))
    assert h.daemon.reload() is ReloadResult.INVALID
    assert rows(h.daemon.runtimes["m"]) == before
    write_config(path, config(tmp_path, OLD[:-1], file_ref))  # drop device: fine
    assert h.daemon.reload() is ReloadResult.SUCCESS
    after = rows(h.daemon.runtimes["m"])
    assert after == {k: v for k, v in before.items() if k != "device"}
    assert np.sum([sum(v) for v in after.values()]) > 0


class _Recorder:
    """A structlog-like logger that records (event, fields) of every call."""

    def __init__(self, lines: list[tuple[str, dict[str, Any]]]) -> None:
        self.lines = lines

    def _log(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    info = warning = error = debug = _log


# -- features: auto ------------------------------------------------------------------------------


def auto_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """One model `m` with `features: auto` and a 500-event warm-up."""
    cfg = config(tmp_path, OLD)
    cfg["models"][0]["features"] = "auto"
    cfg["models"][0].update(extra)
    return cfg


def wide_stream(n: int, seed: int, start: int = 0) -> list[bytes]:
    """Events with 6 numeric (n0..n5), 2 categorical (c0, c1), one one-off name each and a
    name with a double quote."""
    rng = np.random.default_rng(seed)
    now = time.time() - 200.0
    out = []
    for i in range(n):
        features: dict[str, Any] = {f"n{j}": float(rng.normal()) for j in range(6)}
        features.update({f"c{j}": str(rng.integers(4)) for j in range(2)})
        features[f"once-{seed}-{start + i}"] = 1.0
        features['bad"name'] = 1.0  # in every event, but no decoder could match it
        out.append(msgspec.json.encode({"ts": now + i * 0.01, "model": "m", "features": features}))
    return out


def test_auto_features_discover_warm_up_and_survive_a_restart(tmp_path: Path) -> None:
    """features: auto finds 6 numeric + 2 categorical, counts the one-offs, keeps them frozen."""
    path = write_config(tmp_path / "driftmon.yaml", auto_config(tmp_path, exclude=["c1"]))
    logs = {("t", 0): wide_stream(2000, seed=1)}
    h = build(path, logs)
    h.drain()
    runtime = h.daemon.runtimes["m"]
    assert {s.name: s.kind.value for s in runtime.specs} == {
        **{f"n{j}": "numeric" for j in range(6)},
        "c0": "categorical",
    }
    assert runtime.ready  # the 500 events after discovery were its warm-up
    h.daemon.evaluate()
    assert h.value("driftmon_unmonitored_features", model="m") == 2000 + 2  # + c1, bad"name
    status = h.daemon.collector.snapshot.models[0].discovery
    assert status is not None and not status.discovering and status.monitored == 7
    assert len(status.unmonitored_names) == 20
    assert h.value("driftmon_feature_invalid_values_total", model="m", feature="n0") == 0
    assert h.daemon.checkpoint()
    reference = runtime.reference_id

    again = build(path, {("t", 0): [*logs[("t", 0)], *wide_stream(300, seed=2)]})
    again.drain()
    restarted = again.daemon.runtimes["m"]
    assert restarted.reference_id == reference and len(restarted.specs) == 7
    again.daemon.evaluate()
    assert again.value("driftmon_unmonitored_features", model="m") == 300 + 2  # counted anew


def test_a_loader_that_fails_unexpectedly_is_a_refused_reload(tmp_path: Path) -> None:
    """Whatever the loader raises, the reload is refused and counted; the daemon runs on."""
    path = write_config(tmp_path / "driftmon.yaml", config(tmp_path, OLD))
    h = build(path, {("t", 0): stream(300, seed=7)})

    def broken() -> Any:
        raise OSError("disk went away")

    h.daemon.settings_loader = broken
    assert h.daemon.reload() is ReloadResult.INVALID
    path.unlink()
    h.daemon.settings_loader = lambda: load_settings(path, env={})
    assert h.daemon.reload() is ReloadResult.INVALID
    assert h.value("driftmon_config_reloads_total", result="invalid") == 2
    h.drain()
    assert h.value("driftmon_events_accepted_total", model="m") == 300


def test_auto_features_stay_frozen_on_reload_and_new_rules_discover_again(
    tmp_path: Path,
) -> None:
    """A threshold reload keeps the discovered features; a new exclude list rediscovers."""
    path = write_config(tmp_path / "driftmon.yaml", auto_config(tmp_path, exclude=["c1"]))
    logs = {("t", 0): [*wide_stream(1500, seed=3), *wide_stream(1500, seed=4, start=1500)]}
    h = build(path, logs)
    for _ in range(6):  # 1500 events: discovery, warm-up, some counting
        h.daemon.step()
    before = h.daemon.runtimes["m"]
    assert before.ready and len(before.specs) == 7
    write_config(
        path,
        auto_config(
            tmp_path, exclude=["c1"], thresholds={"psi": {"warning": 0.2, "critical": 0.4}}
        ),
    )
    assert h.daemon.reload() is ReloadResult.SUCCESS
    kept = h.daemon.runtimes["m"]
    assert [s.name for s in kept.specs] == [s.name for s in before.specs]
    assert kept.reference_id == before.reference_id
    assert kept.specs[0].thresholds.psi_warning == 0.2
    write_config(path, auto_config(tmp_path))  # c1 no longer excluded
    assert h.daemon.reload() is ReloadResult.SUCCESS
    assert not h.daemon.runtimes["m"].specs  # discovering again
    h.drain()
    assert "c1" in {s.name for s in h.daemon.runtimes["m"].specs}
