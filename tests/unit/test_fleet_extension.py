"""Features added to a fleet `warmup` model: the runtime holds its warmed-up extension, the
registry takes it only while its parent is active, and the profile names the window it
continues (`ReferenceProfile.extends`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from monitor.errors import ReferenceDataError
from monitor.model import FeatureKind, FeatureSpec, ReferenceMode
from monitor.reference import (
    ReferenceProfile,
    build_profile,
    fit_profile,
    layout_for,
    profile_from_json,
    profile_to_json,
)
from monitor.registry import RegistryTable, extension_records, rollback, warmup_records
from monitor.runtime import ModelRuntime
from tests.unit.test_schema_evolution import CAT, NUM, World, feed, plan, runtime, world

BEFORE = (("x1", NUM), ("c1", CAT))
AFTER = (("x1", NUM), ("x2", NUM), ("c1", CAT))


def _fleet_runtime(
    tmp_path: Path,
) -> tuple[ModelRuntime, ReferenceProfile, npt.NDArray[np.float64], World]:
    """A warm-up runtime on x1, c1 that has warmed up on 200 events, then its configuration
    gains x2 (a restart: the active profile is handed over as the registry would)."""
    times, data = world(1500, seed=3)
    first = runtime(plan(BEFORE, ReferenceMode.WARMUP), tmp_path)
    feed(first, times, data, 0, 200)
    assert first.profile is not None
    rt = runtime(plan(AFTER, ReferenceMode.WARMUP), tmp_path)
    rt.in_fleet = True
    rt.swap(first.profile)
    return rt, first.profile, times, data


def test_a_fleet_runtime_holds_the_extension_and_keeps_counting_the_active_profile(
    tmp_path: Path,
) -> None:
    """After x2's 200-event warm-up the active profile is unchanged, x1 counts every event,
    the extension extends it with x2, and nothing more is collected for x2."""
    rt, parent, times, data = _fleet_runtime(tmp_path)
    feed(rt, times, data, 200, 700)
    assert rt.reference_id == parent.reference_id
    extension = rt.extension
    assert extension is not None and extension.extends == parent.reference_id
    assert [f.name for f in extension.features] == ["x1", "x2", "c1"]
    assert rt.warmup_progress == (0, 200)
    evaluation = {f.name: f for f in rt.evaluate(times[-1]).features}
    assert evaluation["x1"].current_samples == int(
        np.count_nonzero(~np.isnan(data["x1", NUM][200:700]))
    )
    assert not evaluation["x2"].reference_ready
    assert "waits for the registry" in evaluation["x2"].reference_note
    rt.swap(extension)
    assert rt.extension is None and rt.reference_id == extension.reference_id
    assert rt.profile is not None and rt.profile.ring_id == parent.reference_id


def test_a_single_node_runtime_activates_its_extension_at_once(tmp_path: Path) -> None:
    """Outside a fleet the warmed-up x2 joins the active profile, which extends nothing."""
    rt, parent, times, data = _fleet_runtime(tmp_path)
    rt.in_fleet = False
    feed(rt, times, data, 200, 700)
    assert rt.extension is None and rt.profile is not None
    assert rt.reference_id != parent.reference_id and rt.profile.extends == ""


def test_extension_records_need_the_parent_active(tmp_path: Path) -> None:
    """The extension is published with a `warmup` activation naming the added feature only
    while its parent is the active reference; never for a model without one."""
    rt, parent, times, data = _fleet_runtime(tmp_path)
    feed(rt, times, data, 200, 700)
    extension = rt.extension
    assert extension is not None
    table = RegistryTable()
    assert extension_records(table, extension, parent.reference_id, at=1.0, by="r0") == []
    for _, value in warmup_records(table, parent, at=1.0, by="r0"):
        assert table.apply(value) is None
    assert extension_records(table, extension, "sha256:0000000000000000", at=2.0, by="r0") == []
    for _, value in extension_records(table, extension, parent.reference_id, at=2.0, by="r0"):
        assert table.apply(value) is None
    activation = table.activations["m"]
    assert activation.reference_id == extension.reference_id
    assert activation.cause == "warmup"
    assert activation.reason == "warm-up of new or changed features: x2"
    assert table.profiles[extension.reference_id].profile.extends == parent.reference_id
    assert extension_records(table, extension, parent.reference_id, at=3.0, by="r1") == []
    back = rollback(table, "m", at=4.0, by="ops", reason="undo")
    assert back.reference_id == parent.reference_id  # the extension is one step, as any other


def test_extends_round_trips_and_is_part_of_the_id() -> None:
    """A profile's `extends` survives JSON, changes its id, and a malformed one is refused."""
    rng = np.random.default_rng(1)
    plain = fit_profile(
        "m", [FeatureSpec("x", FeatureKind.NUMERIC)], {"x": rng.normal(size=500)}, {}
    )
    extended = build_profile("m", plain.features, plain.events, extends=plain.reference_id)
    assert extended.reference_id != plain.reference_id and plain.ring_id == plain.reference_id
    again = profile_from_json(profile_to_json(extended))
    assert again.extends == plain.reference_id and again.reference_id == extended.reference_id
    assert again.ring_id == plain.reference_id
    assert "extends" not in profile_to_json(plain)
    for bad in ("x", 5, "sha256:ZZ", "sha256:" + "a" * 64):
        text = profile_to_json(extended).replace(f'"{plain.reference_id}"', json.dumps(bad))
        with pytest.raises(ReferenceDataError, match="extends"):
            profile_from_json(text)


def test_a_feature_of_another_kind_is_warmed_up_again_and_the_others_kept(
    tmp_path: Path,
) -> None:
    """The adopted profile has k numeric, the configuration k categorical: the profile is
    adopted with k unfitted (not refused as a whole), and the extension refits k only."""
    times, data = world(1500, seed=3)
    first = runtime(plan((("x1", NUM), ("k", NUM), ("c1", CAT)), ReferenceMode.WARMUP), tmp_path)
    feed(first, times, data, 0, 200)
    parent = first.profile
    assert parent is not None
    rt = runtime(plan((("x1", NUM), ("k", CAT), ("c1", CAT)), ReferenceMode.WARMUP), tmp_path)
    rt.in_fleet = True
    rt.swap(parent)
    assert rt.reference_id == parent.reference_id
    assert {row.name: row.digest != "" for row in rt.layout_rows()} == {
        "x1": True,
        "k": False,
        "c1": True,
    }
    feed(rt, times, data, 200, 700)
    extension = rt.extension
    assert extension is not None and extension.extends == parent.reference_id
    assert {f.name: f.kind for f in extension.features} == {
        "x1": FeatureKind.NUMERIC,
        "k": FeatureKind.CATEGORICAL,
        "c1": FeatureKind.CATEGORICAL,
    }
    before, after = _features_json(parent), _features_json(extension)
    assert after["x1"] == before["x1"] and after["c1"] == before["c1"]


def test_layout_for_gives_a_feature_of_another_kind_placeholder_bins_only_when_partial() -> None:
    """A partial layout (warm-up modes) refits a re-kinded feature; a full one refuses it."""
    rng = np.random.default_rng(2)
    profile = fit_profile(
        "m", [FeatureSpec("k", FeatureKind.NUMERIC)], {"k": rng.normal(size=300)}, {}
    )
    specs = [FeatureSpec("k", FeatureKind.CATEGORICAL)]
    layout, counts, _ = layout_for(profile, specs, partial=True)
    assert layout.categorical_names == ("k",) and int(counts.sum()) == 0
    with pytest.raises(ReferenceDataError, match="categorical in the config but numeric"):
        layout_for(profile, specs)


def _features_json(profile: ReferenceProfile) -> dict[str, object]:
    return {f["name"]: f for f in json.loads(profile_to_json(profile))["features"]}
