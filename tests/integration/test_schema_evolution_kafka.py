"""Schema evolution with real `driftmon run` processes on the real tansu broker.

Acceptance of issue 12, schema evolution: change the config (add 2 features, remove 1,
change the kind of 1) and restart, and separately SIGHUP a running daemon. Three daemons read
the same topic in their own consumer groups:

- `straight` runs the old config over every event (the oracle);
- `restarted` runs the old config over the first half, stops, and is started again with the
  new config for the second half;
- `reloaded` runs the old config, gets an invalid file on SIGHUP (refused: it keeps running
  the old one, the failure metric goes up), then the new config on SIGHUP, and reads the
  second half.

Afterwards every unchanged feature's window ring equals the straight run's bin by bin and
bucket by bucket; the added and re-kinded features hold exactly the second half's values
binned against their new reference; the removed feature has no series left. Model `a` has a
`file` reference (refitted for the new config from the same data, so the unchanged features'
bins are the same); model `w` has a warm-up reference that survives the restart (the measured
defect: 500 reference + 2,500 current events dropped to 0 / 0 by one added feature).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import ReferenceProfile, fit_profile, layout_for, profile_to_json
from monitor.state import CheckpointStore, ModelState
from monitor.tools.scenarios import EventGenerator
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import (
    DaemonProcess,
    daemon_config,
    model_entry,
    produce,
    write_config,
)
from tests.support.waiting import wait_until

OLD_A = [
    ("amount", "numeric"),
    ("age", "numeric"),
    ("score", "numeric"),
    ("country", "categorical"),
    ("device", "categorical"),
]
NEW_A = [
    ("amount", "numeric"),
    ("age", "categorical"),
    ("country", "categorical"),
    ("device", "categorical"),
    ("latency_ms", "numeric"),
    ("balance", "numeric"),
]
UNCHANGED_A = ("amount", "country", "device")
FRESH_A = ("age", "latency_ms", "balance")
OLD_W = [("amount", "numeric"), ("country", "categorical")]
NEW_W = [*OLD_W, ("device", "categorical")]
HALF_A, HALF_W, WARMUP = 1500, 1500, 500


def events(model: str, n: int, seed: int, start: float, *, age_text: bool) -> list[dict[str, Any]]:
    """Demo events of `model` over 200 s from `start`; `age` as a string after the change."""
    out = EventGenerator(model, seed=seed).events(n, start, n / 200.0)
    if age_text:
        for event in out:
            event["features"]["age"] = str(int(event["features"]["age"]))
    return out


def fit(features: Sequence[tuple[str, str]], seed: int) -> ReferenceProfile:
    """A reference of model `a` from 5,000 clean demo events (age as text when categorical)."""
    cols = EventGenerator("a", seed=seed).columns(5_000, 1.0, 1.0)
    specs = [FeatureSpec(n, FeatureKind(k)) for n, k in features]
    categorical: dict[str, list[object]] = {}
    for spec in specs:
        if spec.kind is FeatureKind.CATEGORICAL:
            if spec.name in cols.categorical:
                categorical[spec.name] = list(cols.categorical[spec.name])
            else:
                categorical[spec.name] = [str(int(v)) for v in cols.numeric[spec.name]]
    return fit_profile(
        "a",
        specs,
        {s.name: cols.numeric[s.name] for s in specs if s.kind is FeatureKind.NUMERIC},
        categorical,
    )


def config(
    tmp_path: Path, name: str, bootstrap: str, topic: str, ref: Path, new: bool
) -> dict[str, Any]:
    """The config of daemon `name` (own group and state dir), old or new feature lists."""
    return daemon_config(
        bootstrap=bootstrap,
        topics=[topic],
        state_dir=tmp_path / name / "state",
        group_id=f"schema-{name}-{topic}",
        models=[
            model_entry("a", NEW_A if new else OLD_A, {"mode": "file", "path": str(ref)}),
            model_entry("w", NEW_W if new else OLD_W, {"mode": "warmup", "warmup_events": WARMUP}),
        ],
        evaluation={"interval": "1s", "min_samples": 100},
        kafka={"max_poll_records": 300},
    )


def ring(state: ModelState) -> dict[str, npt.NDArray[np.int64]]:
    """Each feature's window ring rows [slot, value slots + MISSING + INVALID] by name."""
    counts = np.asarray(state.arrays["window.counts"], dtype=np.int64)
    out = {}
    for i, (name, _digest, slots) in enumerate(state.meta["rows"]):
        row = counts[:, i, :]
        out[str(name)] = np.concatenate([row[:, : int(slots)], row[:, -2:]], axis=1)
    return out


def checkpoint(tmp_path: Path, name: str) -> dict[str, ModelState]:
    """The models of daemon `name`'s last checkpoint."""
    loaded = CheckpointStore(tmp_path / name / "state").load()
    assert loaded is not None
    return loaded.models


def expected_rows(
    profile: ReferenceProfile, features: Sequence[tuple[str, str]], sent: list[dict[str, Any]]
) -> dict[str, npt.NDArray[np.int64]]:
    """Every feature's counts of `sent` binned against `profile` (value slots, MISSING, INVALID)."""
    specs = [FeatureSpec(n, FeatureKind(k)) for n, k in features]
    layout, _, ordered = layout_for(profile, specs)
    numeric = np.array(
        [
            [np.nan if e["features"].get(s.name) is None else e["features"][s.name] for e in sent]
            for s in ordered
            if s.kind is FeatureKind.NUMERIC
        ],
        dtype=np.float64,
    )
    categorical = tuple(
        np.array([e["features"].get(s.name) for e in sent], dtype=object)
        for s in ordered
        if s.kind is FeatureKind.CATEGORICAL
    )
    counts = layout.count(numeric, categorical)
    return {
        s.name: np.concatenate([counts[i, : int(layout.value_slots[i])], counts[i, -2:]]).astype(
            np.int64
        )
        for i, s in enumerate(ordered)
    }


def accepted(daemon: DaemonProcess, model: str) -> float:
    """This run's `driftmon_events_accepted_total` of `model`."""
    return daemon.metrics().value("driftmon_events_accepted_total", model=model)


def wait_accepted(daemon: DaemonProcess, counts: dict[str, int], timeout: float = 90.0) -> None:
    """Wait until this run accepted `counts[model]` events of each model."""
    wait_until(
        lambda: all(accepted(daemon, m) >= n for m, n in counts.items()),
        timeout,
        message=f"accepted {counts}",
        on_timeout=daemon.tail,
    )


def reloads(daemon: DaemonProcess, result: str) -> float:
    """`driftmon_config_reloads_total{result}` of the running daemon."""
    return daemon.metrics().value("driftmon_config_reloads_total", result=result)


def test_changed_features_keep_every_unchanged_window_across_restart_and_sighup(
    broker: TansuBroker, make_topic: Any, tmp_path: Path
) -> None:
    """Restart and SIGHUP with 2 added, 1 removed, 1 re-kinded feature: unchanged rows equal."""
    topic = make_topic(1)
    old_ref, new_ref = fit(OLD_A, seed=7), fit(NEW_A, seed=7)
    ref_path = tmp_path / "ref-a.json"
    ref_path.write_text(profile_to_json(old_ref), encoding="utf-8")
    new_ref_path = tmp_path / "ref-a-new.json"
    new_ref_path.write_text(profile_to_json(new_ref), encoding="utf-8")
    start = time.time() - 400.0
    first = [
        *events("a", HALF_A, 1, start, age_text=False),
        *events("w", HALF_W, 2, start, age_text=False),
    ]
    second = [
        *events("a", HALF_A, 3, start + 200, age_text=True),
        *events("w", HALF_W, 4, start + 200, age_text=True),
    ]

    def write(name: str, new: bool) -> Path:
        path = new_ref_path if new else ref_path
        cfg = config(tmp_path, name, broker.bootstrap, topic, path, new)
        return write_config(tmp_path / name / "driftmon.yaml", cfg)

    produce(broker.bootstrap, topic, [msgspec.json.encode(e) for e in first])
    daemons = {
        name: DaemonProcess(write(name, new=False), tmp_path / name)
        for name in ("straight", "restarted", "reloaded")
    }
    try:
        for daemon in daemons.values():
            daemon.start()
        for daemon in daemons.values():
            wait_accepted(daemon, {"a": HALF_A, "w": HALF_W})
        straight, restarted, reloaded = daemons.values()

        # an invalid file on SIGHUP: refused, the old config keeps running
        config_path = tmp_path / "reloaded" / "driftmon.yaml"
        config_path.write_text(config_path.read_text().replace("kind: numeric", "kind: nope", 1))
        assert reloaded.proc is not None
        reloaded.proc.send_signal(signal.SIGHUP)
        scraped = reloaded.wait_metric("driftmon_config_reloads_total", 1.0, result="invalid")
        assert scraped.value("driftmon_config_last_reload_successful") == 0.0
        assert scraped.find("driftmon_feature_window_samples", model="a", feature="score")
        assert reloaded.ready() and reloaded.running
        refused = [x for x in reloaded.log_lines() if "reload refused" in str(x.get("event"))]
        assert refused and "kind" in refused[0]["error"], refused

        # the new config: by SIGHUP for one daemon, by a restart for the other
        write("reloaded", new=True)
        reloaded.proc.send_signal(signal.SIGHUP)
        scraped = reloaded.wait_metric("driftmon_config_reloads_total", 1.0, result="success")
        assert scraped.value("driftmon_config_last_reload_successful") == 1.0
        assert restarted.stop() == 0
        write("restarted", new=True)
        restarted.start()
        restarted.wait_ready(30.0)  # no new warm-up: every model kept its reference

        produce(broker.bootstrap, topic, [msgspec.json.encode(e) for e in second])
        wait_accepted(straight, {"a": 2 * HALF_A, "w": 2 * HALF_W})
        wait_accepted(reloaded, {"a": 2 * HALF_A, "w": 2 * HALF_W})
        wait_accepted(restarted, {"a": HALF_A, "w": HALF_W})
        for daemon in (restarted, reloaded):
            daemon.wait_evaluations(2)
            text = daemon.metrics().text
            assert 'feature="score"' not in text  # every family, counters included
            status = {m["model"]: m for m in daemon.status()["models"]}
            features = {f["name"]: f for f in status["w"]["features"]}
            assert features["amount"]["reference_samples"] == WARMUP  # kept, not refitted
            assert features["amount"]["current_samples"] >= 2 * HALF_W - WARMUP
        for daemon in daemons.values():
            assert daemon.stop() == 0
    finally:
        for daemon in daemons.values():
            daemon.close()

    oracle = checkpoint(tmp_path, "straight")
    fresh = expected_rows(new_ref, NEW_A, [e for e in second if e["model"] == "a"])
    for name in ("restarted", "reloaded"):
        models = checkpoint(tmp_path, name)
        for model, unchanged in (("a", UNCHANGED_A), ("w", ("amount", "country"))):
            theirs, mine = ring(oracle[model]), ring(models[model])
            assert np.array_equal(
                oracle[model].arrays["window.bucket_ids"], models[model].arrays["window.bucket_ids"]
            )
            for feature in unchanged:
                assert theirs[feature].sum() >= 2 * HALF_W - WARMUP  # both halves counted
                assert np.array_equal(mine[feature], theirs[feature]), (name, model, feature)
        rows_a = ring(models["a"])
        assert set(rows_a) == {n for n, _ in NEW_A}
        for feature in FRESH_A:  # the second half only, binned against the new reference
            assert np.array_equal(rows_a[feature].sum(axis=0), fresh[feature]), (name, feature)
        assert "device" in ring(models["w"])
