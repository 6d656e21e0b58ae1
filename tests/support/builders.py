"""Builders of the evaluation value types (`FeatureResult`, `ModelEvaluation`, `Snapshot`).

Tests that render metrics, /status or the status table need these values without running
an evaluation. Each builder fills the fields a test does not care about with plausible
defaults and takes every other field as a keyword, so a test states only what it checks:

    numeric("amount", psi=0.31, drift_detected=True)
    categorical("country", tvd=0.011)
    unevaluated("age", current_samples=120)        # under min_samples: no statistic
    evaluation("fraud", numeric("amount"), reference_id="r")
    snapshot(evaluation("fraud", ...), created_at=2.0)
"""

from __future__ import annotations

from typing import Any

from monitor.model import Correction, FeatureKind, FeatureResult, ModelEvaluation, Snapshot

#: Window sizes of an evaluated feature unless a test says otherwise.
REFERENCE_SAMPLES = 50_000
CURRENT_SAMPLES = 4_000


def feature(name: str, kind: FeatureKind, **fields: Any) -> FeatureResult:
    """An evaluated feature of `kind`: both windows full, nothing missing, no statistic set.

    `fields` overrides any `FeatureResult` field (statistics, sample counts, decision).
    """
    base: dict[str, Any] = {
        "reference_samples": REFERENCE_SAMPLES,
        "current_samples": CURRENT_SAMPLES,
        "reference_missing_ratio": 0.0,
        "current_missing_ratio": 0.0,
        "evaluated": True,
    }
    return FeatureResult(name=name, kind=kind, **{**base, **fields})


def numeric(name: str, **fields: Any) -> FeatureResult:
    """An evaluated numeric feature (see `feature`)."""
    return feature(name, FeatureKind.NUMERIC, **fields)


def categorical(name: str, **fields: Any) -> FeatureResult:
    """An evaluated categorical feature (see `feature`)."""
    return feature(name, FeatureKind.CATEGORICAL, **fields)


def unevaluated(name: str, kind: FeatureKind = FeatureKind.NUMERIC, **fields: Any) -> FeatureResult:
    """A feature without statistics: empty windows and unknown missing ratios by default."""
    base: dict[str, Any] = {
        "reference_samples": 0,
        "current_samples": 0,
        "reference_missing_ratio": None,
        "current_missing_ratio": None,
        "evaluated": False,
    }
    return FeatureResult(name=name, kind=kind, **{**base, **fields})


def full_numeric(name: str, value: float) -> FeatureResult:
    """A numeric feature with every optional statistic set to `value` (complete, not realistic)."""
    return numeric(
        name,
        reference_samples=1000,
        current_samples=1000,
        psi=value,
        psi_pvalue=value,
        ks_statistic=value,
        ks_error_bound=value,
        ks_pvalue=value,
        chi2_pvalue=value,
        tvd=value,
        qvalue=value,
        out_of_range_ratio=value,
        unseen_category_ratio=value,
        new_category_pvalue=value,
        reference_unseen_estimate=value,
    )


def evaluation(model: str, *features: FeatureResult, **fields: Any) -> ModelEvaluation:
    """One model's evaluation of `features`: at t = 1.0, BH at q = 1e-3 unless overridden.

    The features may also come as a `features=` tuple (not both).
    """
    if features and "features" in fields:
        raise TypeError("give the features positionally or as features=, not both")
    base: dict[str, Any] = {
        "evaluated_at": 1.0,
        "correction": Correction.BH,
        "fdr_q": 1e-3,
        "features": features,
    }
    return ModelEvaluation(model=model, **{**base, **fields})


def snapshot(*models: ModelEvaluation, created_at: float | None = None) -> Snapshot:
    """A snapshot of `models`, created at the latest evaluation time (0.0 without models)."""
    if created_at is None:
        created_at = max((m.evaluated_at for m in models), default=0.0)
    return Snapshot(created_at=created_at, models=models)
