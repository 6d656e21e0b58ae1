"""Size and sample limits of reference profiles: what a file reference may hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.config import load_settings, model_plans
from monitor.errors import ReferenceDataError
from monitor.histogram import NumericBins
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import (
    MAX_EDGES,
    FeatureProfile,
    build_profile,
    fit_profile,
    profile_from_json,
    profile_to_json,
)
from monitor.runtime import ModelRuntime


def _profile_with_edges(n_edges: int, per_bin: int = 1) -> str:
    """A self-consistent profile (valid reference_id) whose feature `x` has n_edges edges."""
    bins = NumericBins(np.arange(n_edges, dtype=np.float64))
    counts = (0, *([per_bin] * n_edges), 0, 0, 0)
    feature = FeatureProfile("x", FeatureKind.NUMERIC, bins, counts)
    return profile_to_json(build_profile("m", [feature], sum(counts)))


def test_a_profile_with_200001_edges_is_refused_when_read() -> None:
    """The hard cap applies to every profile read, before anything is allocated per edge."""
    with pytest.raises(ReferenceDataError, match=f"at most {MAX_EDGES}"):
        profile_from_json(_profile_with_edges(200_001))


def _file_runtime(tmp_path: Path, profile: str, max_bins: int) -> ModelRuntime:
    (tmp_path / "ref.json").write_text(profile)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
kafka: {{bootstrap_servers: "127.0.0.1:9", topics: [t]}}
models:
  - name: m
    max_bins: {max_bins}
    reference: {{mode: file, path: "{tmp_path / "ref.json"}"}}
    features: [{{name: x, kind: numeric}}]
state: {{dir: "{tmp_path / "state"}"}}
"""
    )
    settings = load_settings(config, env={})
    return ModelRuntime(model_plans(settings)[0], clock=lambda: 0.0, state_dir=settings.state.dir)


def test_a_file_reference_over_the_models_max_bins_is_refused(tmp_path: Path) -> None:
    """300 edges against max_bins 128: refused naming the feature; max_bins 512 accepts it."""
    profile = _profile_with_edges(300)
    with pytest.raises(ReferenceDataError, match="'x' has 300 edges"):
        _file_runtime(tmp_path, profile, 128).load_reference_file()
    assert _file_runtime(tmp_path, profile, 512).load_reference_file()


def test_a_file_reference_from_a_handful_of_values_is_refused(tmp_path: Path) -> None:
    """A profile fitted from 3 values (a 3-row CSV) is refused when the daemon loads it."""
    profile = fit_profile("m", [FeatureSpec("x", FeatureKind.NUMERIC)], {"x": [1.0, 2.0, 3.0]}, {})
    runtime = _file_runtime(tmp_path, profile_to_json(profile), 128)
    with pytest.raises(ReferenceDataError, match="only 3 reference values, at least 50"):
        runtime.load_reference_file()
    assert not runtime.ready
