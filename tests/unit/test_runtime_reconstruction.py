"""ModelRuntime with the reconstruction-error feature: warm-up, detection, checkpoint, fit CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.account import BatchAccount
from monitor.cli import main
from monitor.config import Settings, load_settings, redacted_dump
from monitor.errors import ConfigError
from monitor.reconstruction import VIRTUAL_FEATURE
from monitor.reference import joint_section, profile_from_json, profile_to_json
from monitor.state import ModelState
from tests.support.joint_runtime import START, WARMUP, columns, joint_settings, runtime_of


def _settings(tmp_path: Path, mode: str = "warmup", extra: str = "") -> Settings:
    groups = f"    reconstruction: {{enabled: true{extra}}}\n    correlation: {{enabled: true}}"
    return joint_settings(tmp_path, groups, mode)


def _raw(rng: np.random.Generator, n: int, rotated: bool = False) -> np.ndarray:
    """x, y standard normal with correlation 0.8 (rotated by 90 degrees if asked), z independent."""
    v = rng.standard_normal((3, n))
    v[1] = 0.8 * v[0] + 0.6 * v[1]
    if rotated:
        v[0], v[1] = -v[1], v[0].copy()
    return v


def test_warmup_fits_the_basis_and_the_virtual_feature_flags_a_rotation(tmp_path: Path) -> None:
    """After warm-up the virtual feature has bins; a rotation flags it and no marginal."""
    rng = np.random.default_rng(1)
    runtime = runtime_of(_settings(tmp_path))
    assert VIRTUAL_FEATURE not in runtime.schema.numeric
    runtime.ingest(columns(rng, _raw(rng, WARMUP), START))
    assert runtime.basis is not None and runtime.profile is not None
    assert runtime.profile.feature(VIRTUAL_FEATURE) is not None
    assert joint_section(runtime.profile, "reconstruction") is not None
    current = _raw(rng, 10_000, rotated=True)
    runtime.ingest(columns(rng, current, START + 1800))
    evaluation = runtime.evaluate(START + 4000)
    flags = {f.name: f.drift_detected for f in evaluation.features}
    assert flags == {"x": False, "y": False, "z": False, "c": False, VIRTUAL_FEATURE: True}
    virtual = next(f for f in evaluation.features if f.name == VIRTUAL_FEATURE)
    assert virtual.reference_ready and virtual.current_samples == 10_000
    assert runtime.layout is not None and runtime.window is not None
    expected = runtime.layout.count(
        np.vstack([current, runtime.basis.errors(current)[None, :]]),
        (np.full(10_000, "a", dtype=object),),
    )
    row = runtime.layout.names.index(VIRTUAL_FEATURE)
    assert np.array_equal(runtime.window.current()[row], expected[row])
    assert evaluation.correlation is not None and evaluation.correlation.drifted_pairs == 1


def test_checkpoint_round_trip_restores_basis_and_window(tmp_path: Path) -> None:
    """A runtime restored from to_state() has the same basis and evaluates the same."""
    rng = np.random.default_rng(2)
    settings = _settings(tmp_path)
    runtime = runtime_of(settings)
    runtime.ingest(columns(rng, _raw(rng, WARMUP), START))
    runtime.ingest(columns(rng, _raw(rng, 2_000), START + 1800))
    state = runtime.to_state()
    restored = runtime_of(settings)
    meta = json.loads(json.dumps(state.meta))
    restored.restore(ModelState(state.fingerprint, dict(state.arrays), meta))
    assert restored.basis is not None and runtime.basis is not None
    assert np.array_equal(restored.basis.components, runtime.basis.components)
    before, after = runtime.evaluate(1.0), restored.evaluate(1.0)
    assert before.features == after.features and before.correlation == after.correlation


def test_reference_fit_with_config_records_both_groups(tmp_path: Path) -> None:
    """`reference fit --config` writes the virtual feature and both joint sections; it loads."""
    rng = np.random.default_rng(3)
    raw = _raw(rng, 3_000)
    lines = ["x,c,y,z"] + [f"{a},k,{b},{c}" for a, b, c in raw.T.tolist()]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    _settings(tmp_path, mode="file")
    code = main(
        [
            "reference",
            "fit",
            str(tmp_path / "train.csv"),
            "--config",
            str(tmp_path / "driftmon.yaml"),
            "--model",
            "m",
            "-o",
            str(tmp_path / "ref.json"),
            "--no-progress",
        ]
    )
    assert code == 0
    profile = profile_from_json((tmp_path / "ref.json").read_text())
    virtual = profile.feature(VIRTUAL_FEATURE)
    assert virtual is not None and virtual.samples == 3_000
    assert joint_section(profile, "correlation") and joint_section(profile, "reconstruction")
    runtime = runtime_of(_settings(tmp_path, mode="file"))
    runtime.load_reference_file()
    assert runtime.basis is not None and runtime.correlation is not None


def test_config_reserves_the_virtual_name_and_dumps_cleanly(tmp_path: Path) -> None:
    """A user feature may not be called __reconstruction__; check-config's dump still works."""
    with pytest.raises(ConfigError, match="reconstruction"):
        _settings(tmp_path, extra=", features: [x, c]")
    settings = _settings(tmp_path)
    assert [f["name"] for f in redacted_dump(settings)["models"][0]["features"]] == [
        "x",
        "c",
        "y",
        "z",
    ]
    config = tmp_path / "reserved.yaml"
    config.write_text(
        'kafka: {bootstrap_servers: "127.0.0.1:9", topics: [t]}\n'
        "models: [{name: m, features: [{name: __reconstruction__, kind: numeric}]}]\n"
    )
    with pytest.raises(ConfigError, match="reserved"):
        load_settings(config, env={})


def test_a_float_range_sentinel_in_a_group_leaves_the_model_and_its_groups_fitted(
    tmp_path: Path,
) -> None:
    """1 % of x at 1.8e308 (a producer's "no value"): both groups and every feature are
    fitted from the warm-up (the groups' sums overflowed, and the unusable fits left the
    whole model without a reference at every warm-up)."""
    rng = np.random.default_rng(5)
    raw = _raw(rng, WARMUP)
    raw[0, rng.random(WARMUP) < 0.01] = np.finfo(np.float64).max
    runtime = runtime_of(_settings(tmp_path))
    runtime.ingest(columns(rng, raw, START))
    assert runtime.ready and not runtime.pending
    assert runtime.correlation is not None and runtime.basis is not None
    profile = runtime.profile
    assert profile is not None and profile_from_json(profile_to_json(profile)) is not None


def test_the_events_after_the_warm_up_in_its_own_batch_get_reconstruction_errors(
    tmp_path: Path,
) -> None:
    """One batch of the warm-up and 3,000 more: the 3,000 are counted with their errors, as
    their own batch would be (they were counted missing: 60 % missing, a drift flagged on a
    stationary stream)."""
    rng = np.random.default_rng(8)
    raw = _raw(rng, WARMUP + 3_000)
    runtime = runtime_of(_settings(tmp_path))
    runtime.ingest(columns(rng, raw, START))
    assert runtime.basis is not None and runtime.layout is not None and runtime.window is not None
    rest = raw[:, WARMUP:]
    expected = runtime.layout.count(
        np.vstack([rest, runtime.basis.errors(rest)[None, :]]), (np.full(3_000, "a", dtype=object),)
    )
    runtime.flush(BatchAccount())
    row = runtime.layout.names.index(VIRTUAL_FEATURE)
    assert np.array_equal(runtime.window.current()[row], expected[row])
    assert runtime.window.current()[row, runtime.layout.missing_col] == 0
