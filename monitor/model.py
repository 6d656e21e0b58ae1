"""Frozen value types that cross module boundaries (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple

DEFAULT_MAX_BINS: Final = 128
"""Numeric fine bins per feature, cut at reference quantiles (`max_bins`, `--max-bins`)."""

DEFAULT_TOP_K: Final = 20
"""Reference categories kept per categorical feature, before OTHER (`top_k`, `--top-k`)."""


class FeatureKind(StrEnum):
    """How a feature's values are binned: numeric (quantile edges) or categorical (top-K)."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class ReferenceMode(StrEnum):
    """Where a model's reference distribution comes from."""

    FILE = "file"
    WARMUP = "warmup"
    ROLLING = "rolling"


class Correction(StrEnum):
    """Multiple-testing correction applied across all features of a model per evaluation."""

    BH = "bh"
    BONFERRONI = "bonferroni"
    NONE = "none"


class RawMessage(NamedTuple):
    """One Kafka record as the source hands it over: no Kafka types beyond this point."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    value: bytes


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """A configured feature: its name, kind and classic PSI alert bands."""

    name: str
    kind: FeatureKind
    psi_warning: float = 0.1
    psi_critical: float = 0.25


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """The drift decision rule's parameters (docs/architecture.md, Statistics)."""

    fdr_q: float = 1e-3
    correction: Correction = Correction.BH
    min_samples: int = 1000
    ks_floor: float = 0.05
    psi_floor: float = 0.02
    tvd_floor: float = 0.02
    new_category_floor: float = 0.01
    missing_floor: float = 0.05


class DistributionExport(StrEnum):
    """Which features of a model export their distribution series (`export_distributions`)."""

    ALL = "all"
    DRIFTING = "drifting"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class DistributionPolicy:
    """A model's distribution export setting: the mode, the N most drifting, the hard cap.

    `drifting` exports the flagged features and the `top` most drifting others, at most
    `limit` features in all; `all` exports every feature; `none` computes no distributions.
    """

    mode: DistributionExport = DistributionExport.DRIFTING
    top: int = 10
    limit: int = 20


@dataclass(frozen=True, slots=True)
class Distribution:
    """Shares (0-1) of a feature's reference and current window over the picture's bins.

    `bins` are display names in order. Numeric: "(below)", "p0-10" ... "p90-100" (the 10
    reference-decile groups the PSI uses), "(above)", "(missing)". Categorical: the top
    reference categories (at most 20, in reference order), "(other)", "(unseen)",
    "(missing)"; a category's position, not its text, tells it from a special bin. Each
    share is the bin's count over the window's valid and missing values (invalid ones
    excluded), so the shares of a window sum to 1; None for an empty window.
    """

    bins: tuple[str, ...]
    reference: tuple[float, ...] | None
    current: tuple[float, ...] | None


@dataclass(frozen=True, slots=True)
class FeatureResult:
    """Everything one evaluation knows about one feature. Statistics are None when not computed.

    A statistic is None when the feature's kind does not have it (KS for a categorical feature)
    or when either window holds fewer than `min_samples` non-missing values.
    """

    name: str
    kind: FeatureKind
    reference_samples: int
    current_samples: int
    reference_missing_ratio: float | None
    current_missing_ratio: float | None
    evaluated: bool
    psi: float | None = None
    psi_pvalue: float | None = None
    ks_statistic: float | None = None
    ks_error_bound: float | None = None
    ks_pvalue: float | None = None
    chi2_pvalue: float | None = None
    tvd: float | None = None
    out_of_range_ratio: float | None = None
    unseen_category_ratio: float | None = None
    new_category_pvalue: float | None = None
    missing_pvalue: float | None = None
    qvalue: float | None = None
    drift_detected: bool = False
    drift_reasons: tuple[str, ...] = ()
    psi_warning: float = 0.1
    psi_critical: float = 0.25
    distribution: Distribution | None = None


@dataclass(frozen=True, slots=True)
class ModelEvaluation:
    """The immutable result of evaluating every feature of one model at one instant."""

    model: str
    evaluated_at: float
    features: tuple[FeatureResult, ...]
    correction: Correction
    fdr_q: float
    reference_id: str = ""
    reference_mode: str = ""
    model_version: str = ""
    watermark: float | None = None

    @property
    def drifted_features(self) -> int:
        """Number of features whose drift decision is positive."""
        return sum(1 for f in self.features if f.drift_detected)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What scrapes and /status read: the latest evaluation of every model, swapped atomically."""

    created_at: float
    models: tuple[ModelEvaluation, ...] = field(default_factory=tuple)
