"""Registry mode in the runtime: shadow windows, zero-gap swaps, following model versions."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from monitor.config import Settings, load_settings
from monitor.decode import ModelColumns
from monitor.follow import VersionShares, dominant
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import ReferenceProfile, fit_profile, layout_for
from monitor.reference_registry import Activated, RegistryReferences
from monitor.registry import (
    RegistryTable,
    activate,
    encode_activation,
    encode_prewarm,
    encode_profile,
    prewarm,
    rollback,
)
from monitor.registry_follow import RegistryView
from monitor.runtime import ModelRuntime, model_runtimes
from monitor.window import EventTimeWindow

START = 1_800_000_000.0
SPECS = [FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("c", FeatureKind.CATEGORICAL)]


def _settings(tmp_path: Path, follow: bool = False) -> Settings:
    config = tmp_path / "driftmon.yaml"
    follow_key = ", follow_model_version: true" if follow else ""
    config.write_text(
        f"""
kafka: {{bootstrap_servers: "127.0.0.1:9", topics: [t]}}
models:
  - name: m
    reference: {{mode: registry{follow_key}}}
    features:
      - {{name: x, kind: numeric}}
      - {{name: c, kind: categorical}}
  - name: other
    reference: {{mode: registry}}
    features:
      - {{name: x, kind: numeric}}
      - {{name: c, kind: categorical}}
window: {{bucket: 1m, length: 10m, allowed_lateness: 1m}}
evaluation: {{min_samples: 50}}
state: {{dir: "{tmp_path / "state"}"}}
"""
    )
    return load_settings(config, env={})


def _profile(shift: float, version: str, seed: int, model: str = "m") -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    numeric = {"x": rng.normal(shift, 1.0 + shift / 4, 2_000)}
    categorical = {"c": list(rng.choice(["a", "b", "c", "d", "e"], 2_000))}
    return fit_profile(model, SPECS, numeric, categorical, model_version=version)


def _columns(
    rng: np.random.Generator, start: float, n: int, version: str, shift: float = 0.0
) -> ModelColumns:
    times = start + np.sort(rng.uniform(0, 30, n))
    categories = np.array(["a", "b", "c", "d", "e", "z"], dtype=object)
    return ModelColumns(
        model="m",
        times=times,
        numeric=rng.normal(shift, 1.0, (1, n)),
        categorical=(rng.choice(categories, n).astype(object),),
        model_version=version,
        sources=np.zeros(n, dtype=np.int32),
    )


class _Registry:
    """A registry table and the views a follower would publish from it."""

    def __init__(self) -> None:
        self.table = RegistryTable()
        self.generation = 0

    def push(self, profile: ReferenceProfile) -> None:
        for _, value in encode_profile(profile, pushed_at=time.time(), pushed_by="t"):
            assert self.table.apply(value) is None

    def activate(self, model: str, profile: ReferenceProfile) -> None:
        record = activate(self.table, model, profile.reference_id, at=1.0, by="t", reason="")
        assert self.table.apply(encode_activation(record)[1]) is None

    def rollback(self, model: str) -> None:
        record = rollback(self.table, model, at=2.0, by="t", reason="")
        assert self.table.apply(encode_activation(record)[1]) is None

    def prewarm(self, model: str, profile: ReferenceProfile) -> None:
        record = prewarm(self.table, model, profile.reference_id, at=1.0, by="t")
        assert self.table.apply(encode_prewarm(record)[1]) is None

    def view(self) -> RegistryView:
        self.generation += 1
        return RegistryView(
            generation=self.generation,
            loaded=True,
            profiles=dict(self.table.profiles),
            activations=dict(self.table.activations),
            prewarm=dict(self.table.prewarm),
            records=self.table.records,
        )


def _runtimes(tmp_path: Path, follow: bool = False) -> dict[str, ModelRuntime]:
    now = START + 3_600
    return model_runtimes(_settings(tmp_path, follow), clock=lambda: now)


def test_prewarmed_swap_carries_a_window_equal_to_a_fresh_one_in_the_new_edges(
    tmp_path: Path,
) -> None:
    """After activating a pre-warmed profile the window equals, bin by bin, a fresh window
    binned in the new edges from the same events, and every feature has statistics."""
    runtimes = _runtimes(tmp_path)
    references = RegistryReferences(runtimes, "refs")
    registry = _Registry()
    old, new = _profile(0.0, "v1", 1), _profile(1.5, "v2", 2)
    registry.push(old)
    registry.push(new)
    registry.activate("m", old)
    assert [type(o) for o in references.sync(registry.view(), START)] == [Activated]
    registry.prewarm("m", new)
    references.sync(registry.view(), START)
    runtime = runtimes["m"]
    assert list(runtime.shadows.windows) == [new.reference_id]

    layout, _, _ = layout_for(new, runtime.specs)
    fresh = EventTimeWindow((layout.n_features, layout.width), 60.0, 600.0, 60.0)
    rng = np.random.default_rng(7)
    for k in range(20):
        columns = _columns(rng, START + 30 * k, 400, "v1", shift=1.5)
        runtime.ingest(columns)
        fresh.add(layout.bin_batch(columns.numeric, columns.categorical), columns.times)

    registry.activate("m", new)
    (outcome,) = references.sync(registry.view(), START + 700)
    assert isinstance(outcome, Activated) and outcome.info.gapless
    assert runtime.reference_id == new.reference_id and not runtime.shadows.windows
    assert runtime.window is not None
    np.testing.assert_array_equal(runtime.window.current(), fresh.current())
    assert runtime.window.current().sum() > 0
    evaluation = runtime.evaluate(START + 700)
    assert all(f.evaluated and f.reference_ready for f in evaluation.features)
    assert evaluation.features[0].ks_statistic is not None
    assert evaluation.features[1].chi2_pvalue is not None


def test_a_swap_without_a_shadow_starts_an_empty_window(tmp_path: Path) -> None:
    """Activating a profile that had no shadow restarts the window, as a file swap does."""
    runtimes = _runtimes(tmp_path)
    references = RegistryReferences(runtimes, "refs")
    registry = _Registry()
    old, new = _profile(0.0, "v1", 1), _profile(1.0, "v2", 2)
    registry.push(old)
    registry.push(new)
    registry.activate("m", old)
    references.sync(registry.view(), START)
    runtimes["m"].ingest(_columns(np.random.default_rng(1), START, 500, "v1"))
    registry.activate("m", new)
    (outcome,) = references.sync(registry.view(), START + 40)
    assert isinstance(outcome, Activated) and not outcome.info.gapless
    window = runtimes["m"].window
    assert window is not None and window.current().sum() == 0
    view = references.view_of(runtimes["m"])
    assert view.note.startswith("no shadow window") and view.activations[0].cause == "operator"


def test_following_switches_at_half_the_window_and_back_and_leaves_other_models(
    tmp_path: Path,
) -> None:
    """A stream moving to v2 switches the model to v2's profile once v2 carries half of the
    window, with v2's shadow carried over; going back to v1 switches back; `other` stays."""
    runtimes = _runtimes(tmp_path, follow=True)
    references = RegistryReferences(runtimes, "refs")
    registry = _Registry()
    v1, v2 = _profile(0.0, "v1", 1), _profile(1.0, "v2", 2)
    keep = _profile(0.0, "v1", 3, model="other")
    for profile in (v1, v2, keep):
        registry.push(profile)
    registry.activate("m", v1)
    registry.activate("other", keep)
    references.sync(registry.view(), START)
    runtime = runtimes["m"]
    rng = np.random.default_rng(5)
    t = START
    for _ in range(10):
        runtime.ingest(_columns(rng, t, 100, "v1"))
        t += 30
    causes: list[tuple[str, str]] = []
    switched_at = None
    for step in range(12):
        runtime.ingest(_columns(rng, t, 100, "v2", shift=1.0))
        t += 30
        for outcome in references.sync(registry.view(), t):
            assert isinstance(outcome, Activated)
            causes.append((outcome.info.reference_id, outcome.info.cause))
            switched_at = switched_at if switched_at is not None else step
        if step == 0:
            assert list(runtime.shadows.windows) == [v2.reference_id]
    assert causes == [(v2.reference_id, "model_version")]
    # after 10 v2 slices v1 and v2 hold 1,000 events each (a tie keeps v1); the 11th
    # slice moves the window past v1's first bucket: v2 has 1,100 of 1,900
    assert switched_at == 10
    assert runtime.reference_id == v2.reference_id
    assert runtime.window is not None  # the shadow started with v2's first slice: all 12
    assert runtime.window.current()[0].sum() == 1_200
    for _ in range(25):
        runtime.ingest(_columns(rng, t, 100, "v1"))
        t += 30
        for outcome in references.sync(registry.view(), t):
            assert isinstance(outcome, Activated)
            causes.append((outcome.info.reference_id, outcome.info.cause))
    assert causes[-1] == (v1.reference_id, "model_version") and len(causes) == 2
    assert runtimes["other"].reference_id == keep.reference_id
    assert all(a.model_version == "v1" for a in references.history.get("other", ()))


def test_a_registry_rollback_is_followed_with_cause_rollback(tmp_path: Path) -> None:
    """A rollback in the registry returns the model to the earlier profile (cause rollback)."""
    runtimes = _runtimes(tmp_path)
    references = RegistryReferences(runtimes, "refs")
    registry = _Registry()
    first, second = _profile(0.0, "v1", 1), _profile(1.0, "v2", 2)
    for profile in (first, second):
        registry.push(profile)
        registry.activate("m", profile)
    references.sync(registry.view(), START)
    registry.rollback("m")
    (outcome,) = references.sync(registry.view(), START + 1)
    assert isinstance(outcome, Activated)
    assert (outcome.info.reference_id, outcome.info.cause) == (first.reference_id, "rollback")


def test_a_profile_that_does_not_fit_the_model_is_refused_once_and_the_old_stays(
    tmp_path: Path,
) -> None:
    """A registered profile without a configured feature is refused; the active one stays."""
    runtimes = _runtimes(tmp_path)
    references = RegistryReferences(runtimes, "refs")
    registry = _Registry()
    good = _profile(0.0, "v1", 1)
    rng = np.random.default_rng(2)
    narrow = fit_profile("m", SPECS[:1], {"x": rng.normal(size=500)}, {}, model_version="v9")
    for profile in (good, narrow):
        registry.push(profile)
    registry.activate("m", good)
    references.sync(registry.view(), START)
    registry.activate("m", narrow)
    (refused,) = references.sync(registry.view(), START + 1)
    assert not isinstance(refused, Activated) and "'c'" in refused.error
    assert runtimes["m"].reference_id == good.reference_id
    assert references.sync(registry.view(), START + 2) == []


def test_version_shares_count_the_window_and_forget_old_buckets() -> None:
    """Shares are per version over the buckets still in the window; old buckets are dropped."""
    shares = VersionShares(max_versions=2)
    shares.add("v1", np.array([1, 1, 2, 3], dtype=np.int64))
    shares.add("v2", np.array([3, 4], dtype=np.int64))
    assert shares.shares(0) == pytest.approx({"v1": 4 / 6, "v2": 2 / 6})
    assert shares.shares(3) == pytest.approx({"v1": 1 / 3, "v2": 2 / 3})
    assert dominant(shares.shares(3)) == "v2"
    shares.add("v3", np.array([5], dtype=np.int64))  # v1 was seen longest ago: dropped
    assert set(shares.shares(3)) == {"v2", "v3"}
    assert dominant({"": 0.9, "v1": 0.1}) is None
    assert dominant({"v1": 0.5, "v2": 0.5}, current="v2") == "v2"
    assert dominant({"v1": 0.5, "v2": 0.5}, current="v1") == "v1"


def test_a_restart_on_the_same_reference_keeps_the_checkpointed_window(tmp_path: Path) -> None:
    """A restored model whose checkpointed profile is still the registry's active one keeps
    its window and counts no activation; one rolled back meanwhile swaps to the registry's."""
    runtimes = _runtimes(tmp_path)
    references = RegistryReferences(runtimes, "refs")
    registry = _Registry()
    first, second = _profile(0.0, "v1", 1), _profile(1.0, "v2", 2)
    for profile in (first, second):
        registry.push(profile)
    registry.activate("m", first)
    references.sync(registry.view(), START)
    runtimes["m"].ingest(_columns(np.random.default_rng(4), START, 500, "v1"))
    state = runtimes["m"].to_state()

    again = _runtimes(tmp_path)
    again["m"].restore(state)
    assert RegistryReferences(again, "refs").sync(registry.view(), START + 60) == []
    assert again["m"].window is not None and again["m"].window.current().sum() == 2 * 500

    registry.activate("m", second)
    registry.rollback("m")
    registry.activate("m", second)
    moved = _runtimes(tmp_path)
    moved["m"].restore(state)
    (outcome,) = RegistryReferences(moved, "refs").sync(registry.view(), START + 60)
    assert isinstance(outcome, Activated) and outcome.info.reference_id == second.reference_id
