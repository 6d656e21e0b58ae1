"""ModelRuntime with a correlation group: warm-up fit, decision, checkpoint, file profile."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from monitor import correlation as correlation_module
from monitor import runtime as runtime_module
from monitor.config import Settings, load_settings
from monitor.correlation import CorrelationReference
from monitor.decode import ModelColumns
from monitor.errors import ConfigError, ReferenceDataError
from monitor.reference import build_profile, joint_section, profile_from_json, profile_to_json
from monitor.state import ModelState
from tests.support.joint_runtime import START, WARMUP, columns, joint_settings, runtime_of


def _settings(tmp_path: Path, extra: str = "", mode: str = "warmup") -> Settings:
    return joint_settings(tmp_path, f"    correlation: {{enabled: true{extra}}}", mode)


def _events(rng: np.random.Generator, n: int, rho: float, t0: float) -> ModelColumns:
    """x, y correlated rho (x with outliers at 0.3 %), z independent, y 5 % missing."""
    x = rng.standard_normal(n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    x[rng.random(n) < 0.003] = 1e6
    y[rng.random(n) < 0.05] = np.nan
    z = rng.standard_normal(n)
    return columns(rng, np.vstack([x, y, z]), t0)


def test_warmup_fits_the_group_and_the_current_r_is_numpy_corrcoef(tmp_path: Path) -> None:
    """The exported current r equals numpy.corrcoef on the winsorised window values (1e-9)."""
    rng = np.random.default_rng(1)
    runtime = runtime_of(_settings(tmp_path))
    runtime.ingest(_events(rng, WARMUP, 0.3, START))
    assert runtime.correlation is not None and runtime.profile is not None
    assert joint_section(runtime.profile, "correlation") is not None
    current = _events(rng, 8_000, 0.6, START + 1800)
    runtime.ingest(current)
    result = runtime.evaluate(START + 4000).correlation
    assert result is not None and result.pairs_evaluated == 3
    top = result.top_pairs[0]
    assert (top.feature_a, top.feature_b, top.drifted) == ("x", "y", True)
    assert result.drifted_pairs == 1
    ref = runtime.correlation.reference
    x, y = current.numeric[0], current.numeric[1]
    both = ~np.isnan(y)
    wx = np.clip(x[both], ref.lo[0], ref.hi[0])
    wy = np.clip(y[both], ref.lo[1], ref.hi[1])
    assert abs(top.current_r - np.corrcoef(wx, wy)[0, 1]) < 1e-9
    assert top.current_samples == int(both.sum())


def test_checkpoint_round_trip_keeps_the_correlation_window(tmp_path: Path) -> None:
    """A runtime restored from to_state() evaluates the same correlations."""
    rng = np.random.default_rng(2)
    settings = _settings(tmp_path)
    runtime = runtime_of(settings)
    runtime.ingest(_events(rng, WARMUP, 0.3, START))
    runtime.ingest(_events(rng, 3_000, 0.5, START + 1800))
    state = runtime.to_state()
    restored = runtime_of(settings)
    restored.restore(
        ModelState(state.fingerprint, dict(state.arrays), json.loads(json.dumps(state.meta)))
    )
    assert restored.evaluate(1.0).correlation == runtime.evaluate(1.0).correlation
    assert runtime.memory_bytes() > restored.memory_bytes() - 1


def test_file_profile_carries_the_group_and_a_bad_section_is_refused(tmp_path: Path) -> None:
    """A file profile with the group's section is used; a malformed section refuses the file."""
    rng = np.random.default_rng(3)
    warm = runtime_of(_settings(tmp_path))
    warm.ingest(_events(rng, WARMUP, 0.3, START))
    assert warm.profile is not None
    text = profile_to_json(warm.profile)
    assert profile_from_json(text).reference_id == warm.profile.reference_id
    (tmp_path / "ref.json").write_text(text)
    runtime = runtime_of(_settings(tmp_path, mode="file"))
    runtime.load_reference_file()
    assert runtime.correlation is not None
    document = json.loads(text)
    document["joint"]["correlation"]["scale"][0] = -1.0
    with pytest.raises(ReferenceDataError, match=r"joint\.correlation reference: non-finite"):
        profile_from_json(json.dumps(document))  # the section is checked before the id
    section = document["joint"]["correlation"]
    bad = build_profile("m", warm.profile.features, WARMUP, joint={"correlation": section})
    (tmp_path / "ref.json").write_text(profile_to_json(bad))
    with pytest.raises(ReferenceDataError, match="scale"):
        runtime_of(_settings(tmp_path, mode="file")).load_reference_file()


@pytest.mark.parametrize("lo", [{"x": 1}, [10**400, 0, 0], "abc", [[1], [2, 3], 4]])
def test_a_section_that_is_not_numbers_is_refused_not_raised(tmp_path: Path, lo: object) -> None:
    """A correlation section holding an object, an integer beyond the float range or text
    refuses the profile (a TypeError or OverflowError crashed `driftmon run` at every start)."""
    rng = np.random.default_rng(3)
    warm = runtime_of(_settings(tmp_path))
    warm.ingest(_events(rng, WARMUP, 0.3, START))
    assert warm.profile is not None
    section = dict(json.loads(profile_to_json(warm.profile))["joint"]["correlation"], lo=lo)
    bad = build_profile("m", warm.profile.features, WARMUP, joint={"correlation": section})
    with pytest.raises(ReferenceDataError, match=r"joint\.correlation reference: lo"):
        profile_from_json(profile_to_json(bad))
    (tmp_path / "ref.json").write_text(profile_to_json(bad))
    with pytest.raises(ReferenceDataError, match="lo is not an array of numbers"):
        runtime_of(_settings(tmp_path, mode="file")).load_reference_file()


def test_config_refuses_a_group_with_a_categorical_or_unknown_feature(tmp_path: Path) -> None:
    """correlation.features must be 2..64 numeric features of the model."""
    for features in ("[x, c]", "[x, nope]", "[x]"):
        with pytest.raises(ConfigError, match="correlation"):
            _settings(tmp_path, f", features: {features}")
    plan = runtime_of(_settings(tmp_path)).plan.correlation
    assert plan is not None and plan.features == ("x", "y", "z")


def test_config_refuses_a_group_in_a_fleet(tmp_path: Path) -> None:
    """A correlation group with state.backend kafka is refused: the state topic has no sums."""
    settings = _settings(tmp_path, mode="file")
    config = tmp_path / "driftmon.yaml"
    text = config.read_text().replace('state: {dir: "', 'state: {backend: kafka, dir: "')
    config.write_text(text)
    with pytest.raises(ConfigError, match=r"models\.0\.correlation.*state\.backend kafka"):
        load_settings(config, env={})
    assert settings.models[0].correlation.enabled


def test_a_group_fit_its_reader_would_refuse_leaves_the_group_off_not_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A correlation fit with a non-finite centre is not used: the model is ready with every
    feature fitted and no group (it made the whole profile unusable at every warm-up)."""
    fit = correlation_module.fit_reference

    def infinite_centre(names: tuple[str, ...], values: np.ndarray) -> CorrelationReference:
        good = fit(names, values)
        return dataclasses.replace(good, center=np.full_like(good.center, np.inf))

    monkeypatch.setattr(runtime_module, "fit_reference", infinite_centre)
    rng = np.random.default_rng(3)
    runtime = runtime_of(_settings(tmp_path))
    runtime.ingest(_events(rng, WARMUP, 0.3, START))
    assert runtime.ready and not runtime.pending and runtime.correlation is None
