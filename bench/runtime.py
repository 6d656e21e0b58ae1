"""A driftmon `ModelRuntime` over a file reference, for the in-process benchmarks.

`memory` and `delay` measure the daemon's per-model state without Kafka: one model named
`bench` with the given numeric and categorical features, its reference loaded from a
profile file, default evaluation settings, and no `too_early` limit (the benchmarks replay
event time far from the wall clock).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor.config import (
    EvaluationSettings,
    FeatureSettings,
    ModelSettings,
    ReferenceSettings,
    WindowSettings,
)
from monitor.model import FeatureKind, ModelPlan, ReferenceMode, ReferencePlan, WindowPlan
from monitor.runtime import ModelRuntime


def file_runtime(
    reference: Path,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    clock: Callable[[], float],
    state_dir: Path,
    window: WindowSettings | None = None,
) -> ModelRuntime:
    """The `bench` model's runtime with its reference loaded (default window: 1 h of 1 min)."""
    features = tuple(FeatureSettings(name=n, kind=FeatureKind.NUMERIC) for n in numeric) + tuple(
        FeatureSettings(name=n, kind=FeatureKind.CATEGORICAL) for n in categorical
    )
    settings = ModelSettings(
        name="bench",
        reference=ReferenceSettings(mode=ReferenceMode.FILE, path=reference),
        features=features,
    )
    window = window or WindowSettings()
    evaluation = EvaluationSettings()
    plan = ModelPlan(
        name=settings.name,
        features=settings.feature_specs(evaluation),
        reference=ReferencePlan(ReferenceMode.FILE, reference),
        window=WindowPlan(window.bucket, window.length, window.allowed_lateness, math.inf),
        policy=evaluation.policy(),
    )
    runtime = ModelRuntime(plan, clock=clock, state_dir=state_dir)
    runtime.load_reference_file()
    return runtime
