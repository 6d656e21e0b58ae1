"""Schema evolution of one model: a checkpoint restored into a changed feature list, per feature.

The oracle is an uninterrupted runtime fed the same events under the old configuration: every
unchanged feature of the changed runtime must hold exactly its counts (window rows bin by bin,
reference counts), while added and changed features start fresh and removed ones are gone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from monitor.decode import ModelColumns
from monitor.errors import StateError
from monitor.histogram import CategoricalBins, ModelLayout, NumericBins
from monitor.model import (
    FeatureKind,
    FeatureSpec,
    ModelPlan,
    ReferenceMode,
    ReferencePlan,
    WindowPlan,
)
from monitor.reference import fit_profile, profile_to_json
from monitor.runtime import ModelRuntime
from monitor.schema_change import bins_digest
from monitor.state import Checkpoint, CheckpointStore, ModelState

START = 1_800_000_000.0
NUM, CAT = FeatureKind.NUMERIC, FeatureKind.CATEGORICAL
OLD = (("x1", NUM), ("x2", NUM), ("x3", NUM), ("c1", CAT), ("k", NUM))
NEW = (("x1", NUM), ("x2", NUM), ("c1", CAT), ("k", CAT), ("x4", NUM), ("c2", CAT))
UNCHANGED = ("x1", "x2", "c1")
World = dict[tuple[str, FeatureKind], npt.NDArray[np.generic]]


def world(n: int, seed: int) -> tuple[npt.NDArray[np.float64], World]:
    """Event times and every feature's values under either kind (5 % missing values)."""
    rng = np.random.default_rng(seed)
    times = START + np.sort(rng.uniform(0, 1800, n))
    data: World = {}
    for name in ("x1", "x2", "x3", "x4", "k"):
        values = rng.normal(size=n) * (2 if name == "x2" else 1)
        values[rng.random(n) < 0.05] = np.nan
        data[name, NUM] = values
    for name, cats in (("c1", "abcde"), ("c2", "uvw"), ("k", "pq")):
        values_c = rng.choice(np.array(list(cats), dtype=object), n)
        values_c[rng.random(n) < 0.05] = None
        data[name, CAT] = values_c
    return times, data


def plan(
    features: Sequence[tuple[str, FeatureKind]], mode: ReferenceMode, path: Path | None = None
) -> ModelPlan:
    """A model `m` with `features`, a 200-event warm-up or a file reference, 1 h window."""
    return ModelPlan(
        name="m",
        features=tuple(FeatureSpec(n, k) for n, k in features),
        reference=ReferencePlan(mode=mode, path=path, warmup_events=200),
        window=WindowPlan(60.0, 3600.0, 0.0, float("inf")),
        top_k=tuple((n, None) for n, k in features if k is CAT),
    )


def runtime(model: ModelPlan, tmp_path: Path) -> ModelRuntime:
    """A runtime of `model` whose clock is far ahead of every event time."""
    rt = ModelRuntime(model, clock=lambda: START + 10 * 3600, state_dir=tmp_path / "state")
    if model.reference.mode is ReferenceMode.FILE:
        rt.load_reference_file()
    return rt


def feed(rt: ModelRuntime, times: npt.NDArray[np.float64], data: World, lo: int, hi: int) -> None:
    """Ingest events [lo, hi) in batches of 100, with the columns the runtime's schema names."""
    for a in range(lo, hi, 100):
        b = min(hi, a + 100)
        numeric = np.vstack([data[n, NUM][a:b] for n in rt.schema.numeric]).astype(np.float64)
        categorical = tuple(data[n, CAT][a:b].astype(object) for n in rt.schema.categorical)
        rt.ingest(
            ModelColumns("m", times[a:b], numeric, categorical, "v1", np.zeros(b - a, np.int32))
        )


def row(rt: ModelRuntime, name: str, matrix: npt.NDArray[np.int64]) -> list[int]:
    """A feature's row of a count matrix of `rt`: value slots, then MISSING and INVALID."""
    layout = rt.layout
    assert layout is not None
    i = layout.names.index(name)
    slots = int(layout.value_slots[i])
    return [*matrix[i, :slots].tolist(), int(matrix[i, -2]), int(matrix[i, -1])]


def _present(value: object) -> bool:
    """Not missing: neither None nor NaN."""
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def restarted(state: ModelState, model: ModelPlan, tmp_path: Path) -> ModelRuntime:
    """A runtime of `model` restored from `state` through a real checkpoint file."""
    store = CheckpointStore(tmp_path / "ckpt")
    store.save(Checkpoint({}, {"m": state}))
    loaded = store.load()
    assert loaded is not None
    rt = runtime(model, tmp_path)
    rt.restore(loaded.models["m"])
    return rt


def test_warmup_model_keeps_every_unchanged_feature_across_a_changed_config(
    tmp_path: Path,
) -> None:
    """Add 2, remove 1, change a kind: unchanged features equal an uninterrupted run's counts."""
    times, data = world(3000, seed=1)
    straight = runtime(plan(OLD, ReferenceMode.WARMUP), tmp_path)
    feed(straight, times, data, 0, 3000)
    before = runtime(plan(OLD, ReferenceMode.WARMUP), tmp_path)
    feed(before, times, data, 0, 1500)

    after = restarted(before.to_state(), plan(NEW, ReferenceMode.WARMUP), tmp_path)
    assert after.ready and after.reference_id != before.reference_id  # x3 and k left it
    assert after.profile is not None
    assert {f.name for f in after.profile.features} == set(UNCHANGED)
    feed(after, times, data, 1500, 3000)

    assert straight.window is not None and after.window is not None
    assert straight.reference_counts is not None and after.reference_counts is not None
    for name in UNCHANGED:
        assert row(after, name, after.window.current()) == row(
            straight, name, straight.window.current()
        ), name
        assert row(after, name, after.reference_counts) == row(
            straight, name, straight.reference_counts
        ), name
    evaluation = {f.name: f for f in after.evaluate(START + 3600).features}
    assert set(evaluation) == {n for n, _ in NEW}
    # the added and re-kinded features warmed up on the first 200 events after the change,
    # then count every later event (batches of 100: the warm-up ends on a batch boundary)
    for name, kind in (("x4", NUM), ("c2", CAT), ("k", CAT)):
        values = data[name, kind]
        present = [_present(v) for v in values[1700:3000]]
        assert evaluation[name].kind is kind
        assert evaluation[name].reference_ready, name
        assert evaluation[name].current_samples == sum(present), name
        assert evaluation[name].reference_samples == sum(_present(v) for v in values[1500:1700]), (
            name
        )


def test_a_restart_without_changes_restores_the_model_bit_for_bit(tmp_path: Path) -> None:
    """Same config: the restored runtime continues exactly like the uninterrupted one."""
    times, data = world(2000, seed=2)
    straight = runtime(plan(OLD, ReferenceMode.ROLLING), tmp_path)
    feed(straight, times, data, 0, 2000)
    before = runtime(plan(OLD, ReferenceMode.ROLLING), tmp_path)
    feed(before, times, data, 0, 900)
    after = restarted(before.to_state(), plan(OLD, ReferenceMode.ROLLING), tmp_path)
    assert after.reference_id == before.reference_id
    feed(after, times, data, 900, 2000)
    assert straight.window is not None and after.window is not None
    assert straight.lagging is not None and after.lagging is not None
    assert np.array_equal(after.window.ring.counts, straight.window.ring.counts)
    assert np.array_equal(after.lagging.ring.counts, straight.lagging.ring.counts)


def test_a_checkpoint_written_before_per_feature_restore_still_resumes(tmp_path: Path) -> None:
    """An old checkpoint (whole-model fingerprint, no feature list) of the same config resumes."""
    times, data = world(1000, seed=3)
    before = runtime(plan(OLD, ReferenceMode.WARMUP), tmp_path)
    feed(before, times, data, 0, 1000)
    state = before.to_state()
    del state.meta["features"], state.meta["rows"]
    state.fingerprint = before._legacy_fingerprint()
    after = restarted(state, plan(OLD, ReferenceMode.WARMUP), tmp_path)
    assert before.window is not None and after.window is not None
    assert np.array_equal(after.window.current(), before.window.current())
    changed = state.fingerprint
    with pytest.raises(StateError, match="different configuration"):
        restarted(state, plan(NEW, ReferenceMode.WARMUP), tmp_path)
    assert changed == before._legacy_fingerprint()


def test_a_changed_window_still_resets_the_whole_model(tmp_path: Path) -> None:
    """The window geometry is model-wide: a checkpoint of another geometry is refused."""
    times, data = world(500, seed=4)
    before = runtime(plan(OLD, ReferenceMode.WARMUP), tmp_path)
    feed(before, times, data, 0, 500)
    other = plan(OLD, ReferenceMode.WARMUP)
    other = ModelPlan(
        other.name,
        other.features,
        other.reference,
        WindowPlan(120.0, 3600.0, 0.0),
        top_k=other.top_k,
    )
    with pytest.raises(StateError, match="different configuration"):
        restarted(before.to_state(), other, tmp_path)


def test_a_warmup_in_progress_keeps_the_values_of_unchanged_features(tmp_path: Path) -> None:
    """Mid warm-up, a changed config keeps the buffered values: the same reference as without."""
    times, data = world(1000, seed=5)
    straight = runtime(plan(OLD, ReferenceMode.WARMUP), tmp_path)
    feed(straight, times, data, 0, 1000)
    before = runtime(plan(OLD, ReferenceMode.WARMUP), tmp_path)
    feed(before, times, data, 0, 100)
    assert not before.ready and before.warmup_progress == (100, 200)
    after = restarted(before.to_state(), plan(NEW, ReferenceMode.WARMUP), tmp_path)
    assert after.warmup_progress == (100, 200)
    feed(after, times, data, 100, 1000)
    assert straight.profile is not None and after.profile is not None
    for name in UNCHANGED:
        mine, theirs = after.profile.feature(name), straight.profile.feature(name)
        assert mine is not None and theirs is not None
        assert bins_digest(mine.bins) == bins_digest(theirs.bins), name
        assert mine.counts == theirs.counts, name
    assert straight.window is not None and after.window is not None
    for name in UNCHANGED:
        assert row(after, name, after.window.current()) == row(
            straight, name, straight.window.current()
        )


def test_a_changed_top_k_refits_that_feature_only(tmp_path: Path) -> None:
    """A categorical feature's top_k is its fit parameter: changing it resets that feature."""
    times, data = world(1000, seed=6)
    before = runtime(plan(OLD, ReferenceMode.WARMUP), tmp_path)
    feed(before, times, data, 0, 1000)
    changed = plan(OLD, ReferenceMode.WARMUP)
    changed = ModelPlan(
        changed.name, changed.features, changed.reference, changed.window, top_k=(("c1", 3),)
    )
    after = restarted(before.to_state(), changed, tmp_path)
    assert after.profile is not None
    assert {f.name for f in after.profile.features} == {"x1", "x2", "x3", "k"}
    assert before.window is not None and after.window is not None
    assert sum(row(after, "c1", after.window.current())) == 0
    assert row(after, "x1", after.window.current()) == row(before, "x1", before.window.current())


def _write_profile(
    path: Path, features: Sequence[tuple[str, FeatureKind]], data: World, lo: int, hi: int
) -> None:
    specs = [FeatureSpec(n, k) for n, k in features]
    profile = fit_profile(
        "m",
        specs,
        {n: data[n, NUM][lo:hi] for n, k in features if k is NUM},
        {n: list(data[n, CAT][lo:hi]) for n, k in features if k is CAT},
    )
    path.write_text(profile_to_json(profile), encoding="utf-8")


def test_a_new_reference_file_resets_only_the_features_whose_bins_changed(
    tmp_path: Path,
) -> None:
    """File reload: x2 refitted on other data restarts empty, x1 and c1 keep their windows."""
    times, data = world(3000, seed=7)
    features = (("x1", NUM), ("x2", NUM), ("c1", CAT))
    path = tmp_path / "ref.json"
    _write_profile(path, features, data, 0, 1000)
    rt = runtime(plan(features, ReferenceMode.FILE, path), tmp_path)
    feed(rt, times, data, 1000, 2000)
    assert rt.window is not None
    kept = {n: row(rt, n, rt.window.current()) for n in ("x1", "c1")}
    assert sum(row(rt, "x2", rt.window.current())) == 1000

    other = dict(data)
    other["x2", NUM] = np.asarray(data["x2", NUM], dtype=np.float64) + 5.0  # other edges
    _write_profile(path, features, other, 0, 1000)
    os.utime(path, (START, START + 1))
    outcome = rt.load_reference_file()
    assert outcome is not None and outcome.activated
    assert {n: row(rt, n, rt.window.current()) for n in ("x1", "c1")} == kept
    assert sum(row(rt, "x2", rt.window.current())) == 0


def test_layout_rows_digest_changes_with_the_bins_only(tmp_path: Path) -> None:
    """Equal edges give equal digests; other edges or categories give different ones."""
    a = NumericBins(np.array([0.0, 1.0, 2.0]))
    assert bins_digest(a) == bins_digest(NumericBins(np.array([0.0, 1.0, 2.0])))
    assert bins_digest(a) != bins_digest(NumericBins(np.array([0.0, 1.0, 2.5])))
    b = CategoricalBins(("x", "y"), frozenset({"x", "y", "z"}), 0.1)
    assert bins_digest(b) != bins_digest(CategoricalBins(("x", "y"), frozenset({"x", "y"}), 0.1))
    assert bins_digest(b) != bins_digest(
        CategoricalBins(("y", "x"), frozenset({"x", "y", "z"}), 0.1)
    )
    layout = ModelLayout([("n", a)], [("c", b)])
    assert layout.names == ("n", "c")
