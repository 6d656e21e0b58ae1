"""Deferred ingest (`ModelRuntime.ingest(defer=True)`): a minimum batch counts exactly as
polls counted one by one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from monitor import runtime as runtime_module
from monitor.account import BatchAccount
from monitor.config import Settings, load_settings
from monitor.decode import INVALID_CATEGORY, ModelColumns
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import fit_profile, profile_to_json
from monitor.runtime import ModelRuntime, model_runtimes

START = 1_800_000_000.0


def _settings(tmp_path: Path, mode: str) -> Settings:
    config = tmp_path / f"{mode}.yaml"
    config.write_text(
        f"""
kafka: {{bootstrap_servers: "127.0.0.1:9", topics: [t]}}
models:
  - name: m
    reference: {{mode: {mode}, warmup_events: 300, lag: 1h, length: 1h}}
    features:
      - {{name: x, kind: numeric}}
      - {{name: y, kind: numeric}}
      - {{name: c, kind: categorical}}
window: {{bucket: 1m, length: 30m, allowed_lateness: 10m}}
evaluation: {{min_samples: 50}}
state: {{dir: "{tmp_path / mode}"}}
"""
    )
    return load_settings(config, env={})


def _polls(seed: int) -> list[ModelColumns]:
    """Three hours of events in polls of 1-60, a few late by up to an hour, with missing and
    invalid values and unseen categories."""
    rng = np.random.default_rng(seed)
    n = 9000
    times = START + np.sort(rng.uniform(0, 3 * 3600, n))
    late = rng.random(n) < 0.05
    times[late] -= rng.uniform(0, 3600, int(late.sum()))
    x = rng.normal(size=n)
    x[rng.random(n) < 0.03] = np.nan
    x[rng.random(n) < 0.02] = np.inf
    y = rng.lognormal(size=n) * 1e6
    c = rng.choice(np.array(["a", "b", "c", "new", None, INVALID_CATEGORY], dtype=object), n)
    polls = []
    lo = 0
    while lo < n:
        hi = min(n, lo + int(rng.integers(1, 61)))
        polls.append(
            ModelColumns(
                model="m",
                times=times[lo:hi].copy(),
                numeric=np.vstack([x[lo:hi], y[lo:hi]]),
                categorical=(c[lo:hi].copy(),),
                model_version="v1",
                sources=np.zeros(hi - lo, dtype=np.int32),
            )
        )
        lo = hi
    return polls


def _runtime(settings: Settings) -> ModelRuntime:
    return model_runtimes(settings, clock=lambda: START + 10 * 3600)["m"]


@pytest.mark.parametrize("mode", ["warmup", "rolling"])
def test_deferred_ingest_counts_every_bin_as_immediate_ingest(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows, lagging ring, accounts and invalid counts match poll-by-poll counting."""
    monkeypatch.setattr(runtime_module, "MIN_BATCH_VALUES", 4000)
    settings = _settings(tmp_path, mode)
    now, deferred = _runtime(settings), _runtime(settings)
    now_account, deferred_account = BatchAccount(), BatchAccount()
    for poll in _polls(7):
        account_a, account_b = BatchAccount(), BatchAccount()
        now.ingest(poll, account_a)
        deferred.ingest(poll, account_b, defer=True)
        assert account_a.events_accepted == account_b.events_accepted
        assert account_a.rejected == account_b.rejected
        for account, into in ((account_a, now_account), (account_b, deferred_account)):
            for (model, feature), n in account.invalid.items():
                into.add_invalid(model, feature, n)
    assert deferred.pending_events > 0, "the last polls should still be pending"
    deferred.flush(deferred_account)
    assert deferred.pending_events == 0
    assert now.window is not None and deferred.window is not None
    np.testing.assert_array_equal(deferred.window.ring.counts, now.window.ring.counts)
    np.testing.assert_array_equal(deferred.window.ring.bucket_ids, now.window.ring.bucket_ids)
    np.testing.assert_array_equal(deferred.window.current(), now.window.current())
    np.testing.assert_array_equal(deferred.window.current(), deferred.window.recompute())
    if mode == "rolling":
        assert now.lagging is not None and deferred.lagging is not None
        np.testing.assert_array_equal(deferred.lagging.ring.counts, now.lagging.ring.counts)
    assert deferred_account.invalid == now_account.invalid
    assert sum(now_account.invalid.values()) > 0


def test_a_checkpoint_holds_the_pending_events(tmp_path: Path) -> None:
    """`to_state` counts pending events first: the restored window equals immediate counting."""
    settings = _settings(tmp_path, "warmup")
    now, deferred = _runtime(settings), _runtime(settings)
    for poll in _polls(8)[:200]:
        now.ingest(poll)
        deferred.ingest(poll, defer=True)
    assert deferred.pending_events > 0
    restored = _runtime(settings)
    restored.restore(deferred.to_state())
    assert restored.window is not None and now.window is not None
    np.testing.assert_array_equal(restored.window.current(), now.window.current())
    assert restored.evaluate(START) == now.evaluate(START)


def test_pending_events_are_counted_once_the_oldest_is_old_enough(tmp_path: Path) -> None:
    """A small pending batch is counted on the next ingest after MAX_PENDING_SECONDS."""
    clock = [START + 10 * 3600]
    runtime = model_runtimes(_settings(tmp_path, "warmup"), clock=lambda: clock[0])["m"]
    polls = _polls(9)
    runtime.ingest(polls[0], defer=True)
    while not runtime.ready:
        runtime.ingest(polls.pop(1), defer=True)
    runtime.ingest(polls[1], defer=True)
    runtime.ingest(polls[2], defer=True)
    assert runtime.pending_events > 0
    clock[0] += runtime_module.MAX_PENDING_SECONDS
    runtime.ingest(polls[3], defer=True)
    assert runtime.pending_events == 0


def _file_settings(tmp_path: Path, reference: Path) -> Settings:
    config = tmp_path / "file.yaml"
    config.write_text(
        f"""
kafka: {{bootstrap_servers: "127.0.0.1:9", topics: [t]}}
models:
  - name: m
    reference: {{mode: file, path: "{reference}"}}
    features:
      - {{name: x, kind: numeric}}
      - {{name: y, kind: numeric}}
      - {{name: c, kind: categorical}}
window: {{bucket: 1m, length: 30m, allowed_lateness: 10m}}
evaluation: {{min_samples: 50}}
state: {{dir: "{tmp_path / "file-state"}"}}
"""
    )
    return load_settings(config, env={})


def _write_profile(path: Path, y_scale: float, mtime: float) -> None:
    rng = np.random.default_rng(21)
    specs = [
        FeatureSpec("x", FeatureKind.NUMERIC),
        FeatureSpec("y", FeatureKind.NUMERIC),
        FeatureSpec("c", FeatureKind.CATEGORICAL),
    ]
    numeric = {"x": rng.normal(size=5000), "y": rng.lognormal(size=5000) * y_scale}
    categorical = {"c": list(rng.choice(np.array(["a", "b", "c"]), 5000))}
    path.write_text(profile_to_json(fit_profile("m", specs, numeric, categorical)))
    os.utime(path, (mtime, mtime))


def test_a_changed_file_reference_carries_the_pending_events_of_unchanged_features(
    tmp_path: Path,
) -> None:
    """A reference reload keeping x's and c's bins keeps their pending events, as if counted."""
    reference = tmp_path / "ref.json"
    _write_profile(reference, 1e6, 1_000_000.0)
    settings = _file_settings(tmp_path, reference)
    now, deferred = _runtime(settings), _runtime(settings)
    for runtime in (now, deferred):
        runtime.load_reference_file()
    for poll in _polls(10)[:150]:
        now.ingest(poll)
        deferred.ingest(poll, defer=True)
    assert deferred.pending_events > 0
    _write_profile(reference, 2e6, 2_000_000.0)  # y refitted; x and c keep their bins
    for runtime in (now, deferred):
        outcome = runtime.load_reference_file()
        assert outcome is not None and outcome.activated
    assert now.window is not None and deferred.window is not None
    kept = [0, 2]  # rows of x and c
    assert now.window.current()[kept].sum() > 0
    np.testing.assert_array_equal(deferred.window.current(), now.window.current())
