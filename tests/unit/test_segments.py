"""Drift per segment (`segment_by`): slices, windows, the one BH family, checkpoints, config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from monitor.account import BatchAccount
from monitor.config import Settings, load_settings
from monitor.decode import INVALID_CATEGORY, ModelColumns
from monitor.errors import ConfigError, ReferenceDataError
from monitor.model import FeatureKind, FeatureSpec, ModelEvaluation
from monitor.reference import (
    build_profile,
    fit_profile,
    layout_for,
    profile_from_json,
    profile_to_json,
)
from monitor.runtime import ModelRuntime, model_runtimes
from monitor.segment_slices import OTHER_SEGMENT, top_segments
from monitor.tools.profile_io import with_segments

START = 1_800_000_000.0
SEGMENTS = tuple(f"s{k:02d}" for k in range(12))  # 10 kept + 2 that fall into OTHER
WEIGHTS = np.linspace(2.0, 0.5, len(SEGMENTS)) / np.linspace(2.0, 0.5, len(SEGMENTS)).sum()
NUMERIC = ("x0", "x1", "x2")


def _data(
    rng: np.random.Generator, n: int, *, shift: dict[str, float] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Numeric features whose mean depends on the segment (+ `shift` per segment on x0)."""
    seg = rng.choice(np.array(SEGMENTS, dtype=object), n, p=WEIGHTS)
    code = np.asarray([SEGMENTS.index(s) for s in seg.tolist()], dtype=np.float64)
    numeric = {name: rng.normal(code * 0.2, 1.0, n) for name in NUMERIC}
    for name, delta in (shift or {}).items():
        numeric["x0"][seg == name] += delta
    channel = rng.choice(np.array(["web", "app", "pos"], dtype=object), n)
    return numeric, {"channel": channel}, seg


def _config(tmp_path: Path, mode: str, extra: str = "") -> Settings:
    config = tmp_path / "driftmon.yaml"
    features = "".join(f"      - {{name: {n}, kind: numeric}}\n" for n in NUMERIC)
    config.write_text(
        f"""
kafka: {{bootstrap_servers: "127.0.0.1:9", topics: [t]}}
models:
  - name: m
    reference: {{mode: {mode}, path: "{tmp_path / "ref.json"}", warmup_events: 20000}}
    segment_by: features.seg
    features:
{features}      - {{name: channel, kind: categorical}}
{extra}
window: {{bucket: 1m, length: 1h, allowed_lateness: 0s}}
evaluation: {{min_samples: 200}}
state: {{dir: "{tmp_path / "state"}"}}
"""
    )
    return load_settings(config, env={})


def _write_reference(tmp_path: Path, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    numeric, categorical, seg = _data(rng, n)
    specs = [FeatureSpec(x, FeatureKind.NUMERIC) for x in NUMERIC]
    specs.append(FeatureSpec("channel", FeatureKind.CATEGORICAL))
    profile = fit_profile("m", specs, numeric, categorical)
    profile = with_segments(profile, "seg", 10, numeric, {**categorical, "seg": seg})
    (tmp_path / "ref.json").write_text(profile_to_json(profile))
    return {**numeric, "seg": seg}


def _columns(
    numeric: dict[str, np.ndarray], categorical: dict[str, np.ndarray], seg: np.ndarray
) -> ModelColumns:
    n = seg.size
    return ModelColumns(
        model="m",
        times=START + np.linspace(0, 3000, n),
        numeric=np.vstack([numeric[x] for x in NUMERIC]),
        categorical=(categorical["channel"], seg),
        model_version="",
        sources=np.zeros(n, dtype=np.int32),
    )


def _file_runtime(tmp_path: Path, rng: np.random.Generator, n_ref: int) -> ModelRuntime:
    _write_reference(tmp_path, rng, n_ref)
    runtime = model_runtimes(_config(tmp_path, "file"), clock=lambda: START + 3600)["m"]
    runtime.load_reference_file()
    return runtime


def _segment(evaluation: ModelEvaluation, name: str) -> dict[str, object]:
    found = next(s for s in evaluation.segments if s.segment == name)
    return {f.name: f for f in found.features}


def test_each_segment_ks_equals_ks_2samp_on_its_slice_within_the_bound(tmp_path: Path) -> None:
    """Per segment and feature, 0 <= ks_2samp(raw slices) - D <= the reported ks_error_bound."""
    rng = np.random.default_rng(11)
    reference = _write_reference(tmp_path, rng, 40_000)
    runtime = model_runtimes(_config(tmp_path, "file"), clock=lambda: START + 3600)["m"]
    runtime.load_reference_file()
    numeric, categorical, seg = _data(rng, 30_000, shift={"s03": 0.3})
    runtime.ingest(_columns(numeric, categorical, seg))
    evaluation = runtime.evaluate(START + 3600)
    kept = top_segments(reference["seg"], 10)
    assert len(evaluation.segments) == 11
    checked = 0
    for segment in evaluation.segments:
        in_ref = ~np.isin(reference["seg"], kept) if segment.segment == OTHER_SEGMENT else None
        in_ref = reference["seg"] == segment.segment if in_ref is None else in_ref
        in_cur = ~np.isin(seg, kept) if segment.segment == OTHER_SEGMENT else seg == segment.segment
        for f in segment.features:
            if f.kind is not FeatureKind.NUMERIC:
                continue
            exact = sps.ks_2samp(reference[f.name][in_ref], numeric[f.name][in_cur]).statistic
            assert f.ks_statistic is not None and f.ks_error_bound is not None
            gap = float(exact) - f.ks_statistic
            assert -1e-12 <= gap <= f.ks_error_bound + 1e-12, (segment.segment, f.name, gap)
            checked += 1
    assert checked == 11 * len(NUMERIC)


def test_segment_windows_partition_the_whole_model_window(tmp_path: Path) -> None:
    """Segment event counts sum to the model's window; each equals its raw event count."""
    rng = np.random.default_rng(12)
    runtime = _file_runtime(tmp_path, rng, 20_000)
    numeric, categorical, seg = _data(rng, 5_000)
    runtime.ingest(_columns(numeric, categorical, seg))
    evaluation = runtime.evaluate(START + 3600)
    by_name = {s.segment: s.current_events for s in evaluation.segments}
    assert sum(by_name.values()) == 5_000 == evaluation.features[0].current_samples
    assert by_name["s00"] == int(np.sum(seg == "s00"))
    assert by_name[OTHER_SEGMENT] == int(np.isin(seg, ["s10", "s11"]).sum())


def test_events_without_the_segment_field_go_to_other_and_are_counted(tmp_path: Path) -> None:
    """Absent/null and non-string segment values land in OTHER and in segment_field_missing."""
    rng = np.random.default_rng(13)
    runtime = _file_runtime(tmp_path, rng, 20_000)
    numeric, categorical, _ = _data(rng, 300)
    seg = np.array(["s00"] * 100 + [None] * 150 + [INVALID_CATEGORY] * 50, dtype=object)
    runtime.ingest(_columns(numeric, categorical, seg))
    evaluation = runtime.evaluate(START + 3600)
    assert evaluation.segment_field_missing == 200
    assert {s.segment: s.current_events for s in evaluation.segments}[OTHER_SEGMENT] == 200


def test_a_drift_in_one_of_ten_segments_is_flagged_on_that_segment_only(tmp_path: Path) -> None:
    """100k events, x0 of segment s04 shifted by 0.25 sd: only (s04, x0) drifts."""
    rng = np.random.default_rng(14)
    runtime = _file_runtime(tmp_path, rng, 100_000)
    numeric, categorical, seg = _data(rng, 100_000, shift={"s04": 0.25})
    runtime.ingest(_columns(numeric, categorical, seg))
    evaluation = runtime.evaluate(START + 3600)
    flagged = {
        (s.segment, f.name) for s in evaluation.segments for f in s.features if f.drift_detected
    }
    assert flagged == {("s04", "x0")}
    assert evaluation.segments[0].segment == "s04"  # worst first
    assert evaluation.drifted_features == 0  # diluted over the model: under the effect floors


def test_a_model_without_segment_by_has_no_segments(tmp_path: Path) -> None:
    """Without segment_by: no segment results, the schema has only the features' columns."""
    rng = np.random.default_rng(15)
    _write_reference(tmp_path, rng, 5_000)
    settings = _config(tmp_path, "file")
    config = (tmp_path / "driftmon.yaml").read_text()
    (tmp_path / "driftmon.yaml").write_text(config.replace("    segment_by: features.seg\n", ""))
    plain = load_settings(tmp_path / "driftmon.yaml", env={})
    runtime = model_runtimes(plain, clock=lambda: START)["m"]
    runtime.load_reference_file()
    assert runtime.schema.categorical == ("channel",)
    assert runtime.evaluate(START).segments == ()
    segmented = model_runtimes(settings, clock=lambda: START)["m"]
    assert segmented.schema.categorical == ("channel", "seg")
    assert segmented.fingerprint() != runtime.fingerprint()


def test_warmup_reference_records_the_top_segments(tmp_path: Path) -> None:
    """A warm-up reference carries slices of its top segments, persisted with the profile."""
    rng = np.random.default_rng(16)
    settings = _config(tmp_path, "warmup")
    runtime = model_runtimes(settings, clock=lambda: START + 3600)["m"]
    numeric, categorical, seg = _data(rng, 25_000)
    runtime.ingest(_columns(numeric, categorical, seg))
    assert runtime.profile is not None and runtime.profile.segments is not None
    assert runtime.profile.segments.names == top_segments(seg[:20_000], 10)
    assert sum(runtime.profile.segments.events) == 20_000
    saved = profile_from_json((tmp_path / "state" / "references" / "m.json").read_text())
    assert saved.segments is not None and saved.reference_id == runtime.profile.reference_id
    evaluation = runtime.evaluate(START + 3600)
    assert sum(s.current_events for s in evaluation.segments) == 5_000


def test_checkpoint_restores_the_segment_windows(tmp_path: Path) -> None:
    """to_state/restore gives the same segment results and the same unassigned count."""
    rng = np.random.default_rng(17)
    runtime = _file_runtime(tmp_path, rng, 20_000)
    numeric, categorical, seg = _data(rng, 4_000)
    seg[:7] = None
    runtime.ingest(_columns(numeric, categorical, seg))
    state = runtime.to_state()
    again = model_runtimes(_config(tmp_path, "file"), clock=lambda: START + 3600)["m"]
    again.load_reference_file()
    again.restore(state)
    before, after = runtime.evaluate(START + 3600), again.evaluate(START + 3600)
    assert after.segments == before.segments
    assert after.segment_field_missing == 7


def test_profile_slices_that_do_not_sum_to_the_counts_are_refused(tmp_path: Path) -> None:
    """A hand-edited slice (counts no longer summing to the feature's) is refused."""
    rng = np.random.default_rng(18)
    _write_reference(tmp_path, rng, 5_000)
    document = json.loads((tmp_path / "ref.json").read_text())
    assert profile_from_json(json.dumps(document)).segments is not None
    document["segments"]["features"]["x0"][0][3] += 1
    with pytest.raises(ReferenceDataError, match="do not sum"):
        profile_from_json(json.dumps(document))


def test_a_file_reference_without_slices_leaves_the_segments_empty(tmp_path: Path) -> None:
    """A profile without slices: whole-model drift still works, segments are empty."""
    rng = np.random.default_rng(19)
    numeric, categorical, seg = _data(rng, 5_000)
    specs = [FeatureSpec(x, FeatureKind.NUMERIC) for x in NUMERIC]
    specs.append(FeatureSpec("channel", FeatureKind.CATEGORICAL))
    (tmp_path / "ref.json").write_text(
        profile_to_json(fit_profile("m", specs, numeric, categorical))
    )
    runtime = model_runtimes(_config(tmp_path, "file"), clock=lambda: START + 3600)["m"]
    runtime.load_reference_file()
    runtime.ingest(_columns(numeric, categorical, seg))
    evaluation = runtime.evaluate(START + 3600)
    assert evaluation.segments == () and evaluation.features[0].current_samples == 5_000
    assert runtime.segments is not None and "--segment-by" in runtime.segments.note


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("    segment_by: features.seg\n", "    segment_by: seg\n"),
        ("    segment_by: features.seg\n", "    segment_by: features.x0\n"),
        ("mode: file", "mode: rolling, lag: 2h, length: 1h"),
        ('state: {dir: "', 'state: {backend: kafka, dir: "'),
    ],
)
def test_bad_segment_by_is_a_config_error(tmp_path: Path, change: str, message: str) -> None:
    """Outside the features object, a numeric feature, a rolling reference, a fleet: refused."""
    _config(tmp_path, "file")
    path = tmp_path / "driftmon.yaml"
    path.write_text(path.read_text().replace(change, message))
    with pytest.raises(ConfigError, match="segment_by"):
        load_settings(path, env={})


def test_grouped_counts_equal_each_groups_own_count() -> None:
    """count_grouped block k == count of group k's events (NaN, inf, None, invalid included)."""
    rng = np.random.default_rng(22)
    numeric, categorical, _ = _data(rng, 3_000)
    specs = [FeatureSpec(x, FeatureKind.NUMERIC) for x in NUMERIC]
    specs.append(FeatureSpec("channel", FeatureKind.CATEGORICAL))
    layout, _, _ = layout_for(fit_profile("m", specs, numeric, categorical), specs)
    matrix = np.vstack([numeric[x] for x in NUMERIC])
    matrix[0, :40], matrix[1, 40:60], matrix[2, 60:70] = np.nan, np.inf, -1e9
    channel = categorical["channel"].copy()
    channel[:30], channel[30:45], channel[45:50] = None, INVALID_CATEGORY, "never-seen"
    groups = np.asarray(rng.integers(0, 5, size=matrix.shape[1]), dtype=np.int64)
    blocks = layout.count_grouped(matrix, [channel], groups, 5)
    for k in range(5):
        own = groups == k
        assert np.array_equal(blocks[k], layout.count(matrix[:, own], [channel[own]]))
    assert np.array_equal(blocks.sum(axis=0), layout.count(matrix, [channel]))


def test_deferred_ingest_counts_the_same_segment_windows(tmp_path: Path) -> None:
    """The daemon's deferred ingest (pending events, then flush) gives the same segments."""
    rng = np.random.default_rng(23)
    _write_reference(tmp_path, rng, 20_000)
    numeric, categorical, seg = _data(rng, 6_000, shift={"s02": 0.5})
    seg[:50] = None
    results = []
    for defer in (False, True):
        runtime = model_runtimes(_config(tmp_path, "file"), clock=lambda: START + 3600)["m"]
        runtime.load_reference_file()
        columns = _columns(numeric, categorical, seg)
        for lo in range(0, 6_000, 700):
            part = slice(lo, lo + 700)
            runtime.ingest(
                ModelColumns(
                    model="m",
                    times=columns.times[part],
                    numeric=columns.numeric[:, part],
                    categorical=tuple(c[part] for c in columns.categorical),
                    model_version="",
                    sources=columns.sources[part],
                ),
                defer=defer,
            )
        results.append(runtime.evaluate(START + 3600))
    assert results[0].segments == results[1].segments
    assert results[0].segment_field_missing == results[1].segment_field_missing == 50


@pytest.mark.parametrize("keys_per_call", [None, 1, 4])
def test_a_batch_over_many_buckets_counts_each_bucket_and_segment_as_its_own_events(
    tmp_path: Path, keys_per_call: int | None
) -> None:
    """Segment count_batch over 40 buckets with a random accepted subset and hostile values
    (NaN, inf, None, invalid) equals, bucket by bucket and segment by segment, `count` of
    exactly those events (also counted in runs of 1 or 4 buckets)."""
    rng = np.random.default_rng(41)
    runtime = _file_runtime(tmp_path, rng, 20_000)
    tracker, window = runtime.segments, runtime.window
    assert tracker is not None and tracker.model is not None and window is not None
    model = tracker.model
    numeric, categorical, seg = _data(rng, 2_000)
    seg[:30] = None
    matrix = np.vstack([numeric[x] for x in NUMERIC])
    matrix[rng.random(matrix.shape) < 0.05] = np.nan
    matrix[rng.random(matrix.shape) < 0.05] = np.inf
    channel = categorical["channel"].copy()
    channel[rng.random(channel.size) < 0.1] = None
    channel[rng.random(channel.size) < 0.1] = INVALID_CATEGORY
    times = START + rng.uniform(0.0, 40 * 60.0, seg.size)
    accepted = window.admit(times).accepted & (rng.random(seg.size) < 0.7)
    cells = model.groups * model.layout.n_features * model.layout.width
    with pytest.MonkeyPatch.context() as patch:
        if keys_per_call is not None:
            patch.setattr("monitor.window.MAX_BLOCK_CELLS", keys_per_call * cells)
        total = tracker.count_batch(window, times, accepted, matrix, [channel], seg)
    codes = model.coder.codes(seg)
    buckets = np.floor(times / 60.0).astype(np.int64)
    assert np.unique(buckets[accepted]).size == 40
    assert tracker.window is not None
    for bucket in np.unique(buckets[accepted]).tolist():
        held = tracker.window.ring.get(bucket)
        assert held is not None
        blocks = held.reshape(model.groups, model.layout.n_features, model.layout.width)
        for group in range(model.groups):
            own = accepted & (buckets == bucket) & (codes == group)
            expected = model.layout.count(matrix[:, own], [channel[own]])
            assert np.array_equal(blocks[group], expected)
        whole = window.ring.get(bucket)
        assert whole is not None and np.array_equal(whole, blocks.sum(axis=0))
    expected_total = model.layout.count(matrix[:, accepted], [channel[accepted]])
    assert np.array_equal(total, expected_total)


def test_deferred_events_whose_bucket_left_the_window_are_skipped_not_a_crash(
    tmp_path: Path,
) -> None:
    """Pending events whose bucket a later poll evicted before the flush are left out of the
    model and segment windows (as counted at once then evicted), instead of a ValueError."""
    rng = np.random.default_rng(31)
    _write_reference(tmp_path, rng, 20_000)
    polls = []
    for start in (START - 7200, START - 600, START):
        numeric, categorical, seg = _data(rng, 300)
        columns = _columns(numeric, categorical, seg)
        polls.append(dataclasses.replace(columns, times=start + np.linspace(0, 300, 300)))
    windows = []
    for defer in (False, True):
        runtime = model_runtimes(_config(tmp_path, "file"), clock=lambda: START + 3600)["m"]
        runtime.load_reference_file()
        for columns in polls:
            runtime.ingest(columns, defer=defer)
        runtime.flush(BatchAccount())
        assert runtime.window is not None and runtime.segments is not None
        assert runtime.segments.window is not None
        windows.append((runtime.window.current(), runtime.segments.window.current()))
    assert int(windows[0][0][0].sum()) == 600  # the first poll's buckets were evicted
    assert np.array_equal(windows[0][0], windows[1][0])
    assert np.array_equal(windows[0][1], windows[1][1])


def test_a_changed_feature_restores_empty_segment_windows(tmp_path: Path) -> None:
    """After a feature is removed from the config the checkpoint still restores; the segment
    windows start empty (their rows changed) and the field-missing count is kept."""
    rng = np.random.default_rng(24)
    runtime = _file_runtime(tmp_path, rng, 20_000)
    numeric, categorical, seg = _data(rng, 3_000)
    seg[:9] = None
    runtime.ingest(_columns(numeric, categorical, seg))
    state = runtime.to_state()
    path = tmp_path / "driftmon.yaml"
    path.write_text(path.read_text().replace("      - {name: x2, kind: numeric}\n", ""))
    again = model_runtimes(load_settings(path, env={}), clock=lambda: START + 3600)["m"]
    again.load_reference_file()
    again.restore(state)
    evaluation = again.evaluate(START + 3600)
    assert [f.name for f in evaluation.features] == ["x0", "x1", "channel"]
    assert evaluation.features[0].current_samples == 3_000  # the model's window carried over
    assert sum(s.current_events for s in evaluation.segments) == 0
    assert evaluation.segment_field_missing == 9


def test_segment_slices_keep_the_profiles_joint_references() -> None:
    """`reference fit --segment-by` keeps the correlation/reconstruction sections it fitted."""
    rng = np.random.default_rng(25)
    numeric, _, seg = _data(rng, 2_000)
    specs = [FeatureSpec(x, FeatureKind.NUMERIC) for x in NUMERIC]
    plain = fit_profile("m", specs, numeric, {})
    joint = build_profile("m", plain.features, plain.events, joint={"correlation": {"n": 1}})
    sliced = with_segments(joint, "seg", 10, numeric, {"seg": seg})
    assert sliced.joint == joint.joint and sliced.segments is not None
