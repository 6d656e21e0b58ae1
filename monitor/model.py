"""Frozen value types that cross module boundaries (stdlib only)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final, NamedTuple, Protocol

DEFAULT_MAX_BINS: Final = 128
"""Numeric fine bins per feature, cut at reference quantiles (`max_bins`, `--max-bins`)."""

DEFAULT_TOP_K: Final = 20
"""Reference categories kept per categorical feature, before OTHER (`top_k`, `--top-k`)."""

MAX_CATEGORY_CHARS: Final = 256
"""The longest categorical value: a longer string is invalid (monitor.decode) and a reference
category may not be longer (a category is a bin label; a 1,000,000-character value in 400
warm-up events held 400 MiB and wrote a 1.6 GB checkpoint before this bound)."""


class FeatureKind(StrEnum):
    """How a feature's values are binned: numeric (quantile edges) or categorical (top-K)."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class ReferenceMode(StrEnum):
    """Where a model's reference distribution comes from."""

    FILE = "file"
    WARMUP = "warmup"
    ROLLING = "rolling"
    REGISTRY = "registry"


class Correction(StrEnum):
    """Multiple-testing correction applied across all features of a model per evaluation."""

    BH = "bh"
    BONFERRONI = "bonferroni"
    NONE = "none"


class RawMessage(NamedTuple):
    """One Kafka record as the source hands it over: no Kafka types beyond this point.

    `value` is None for a tombstone; `key` and `headers` travel with a rejected record to the
    dead-letter topic. `headers` iterates (name, value or None) pairs and has a length: a
    tuple of them, or the record's headers still in their wire form
    (`monitor.kafka_records.PackedHeaders`).
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    value: bytes
    key: bytes | None = None
    headers: Collection[tuple[str, bytes | None]] = ()


class Signal(StrEnum):
    """A per-feature statistic that has thresholds (`signal` label of the threshold series)."""

    PSI = "psi"
    KS = "ks"
    TVD = "tvd"
    MISSING_RATIO_CHANGE = "missing_ratio_change"
    OUT_OF_RANGE_RATIO = "out_of_range_ratio"
    UNSEEN_CATEGORY_RATIO = "unseen_category_ratio"
    NEW_CATEGORY_PVALUE = "new_category_pvalue"
    DRIFT_QVALUE = "drift_qvalue"


class Severity(StrEnum):
    """What a threshold is for (`severity` label): an alert level or the drift decision's."""

    WARNING = "warning"
    CRITICAL = "critical"
    DECISION = "decision"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every threshold of one feature, resolved (feature > model > global > built-in default).

    Alert levels (compared by the shipped Prometheus rules with the exported series):
    `psi_warning`/`psi_critical` (PSI bands), `ks_critical` (KS D),
    `missing_ratio_change_warning` (current minus reference missing ratio),
    `out_of_range_ratio_warning`, `unseen_category_ratio_warning` and
    `new_category_pvalue_warning` (the new-category p-value must be below it).
    Decision floors (used by `monitor.evaluate`; a leg fires only when its effect reaches the
    floor): `ks_decision` (KS D >= floor), `psi_decision` (PSI >= floor), `tvd_decision`
    (TVD >= floor), `missing_ratio_change_decision` (|change| >= floor) and
    `unseen_category_ratio_decision` (unseen share > singleton fraction + floor).
    """

    psi_warning: float = 0.1
    psi_critical: float = 0.25
    psi_decision: float = 0.02
    ks_critical: float = 0.2
    ks_decision: float = 0.05
    tvd_decision: float = 0.02
    missing_ratio_change_warning: float = 0.1
    missing_ratio_change_decision: float = 0.05
    out_of_range_ratio_warning: float = 0.05
    unseen_category_ratio_warning: float = 0.01
    unseen_category_ratio_decision: float = 0.01
    new_category_pvalue_warning: float = 1e-5

    def series(self, kind: FeatureKind) -> tuple[tuple[Signal, Severity, float], ...]:
        """(signal, severity, value) of every threshold that applies to a feature of `kind`.

        Numeric features have no TVD or category thresholds, categorical ones no KS, PSI
        floor or range threshold. The drift q-value threshold (`fdr_q`) is per model and not
        part of this table.
        """
        return tuple(
            (signal, severity, getattr(self, f"{signal.value}_{severity.value}"))
            for signal, severity in THRESHOLD_KEYS[kind]
        )


_PSI_BANDS = ((Signal.PSI, Severity.WARNING), (Signal.PSI, Severity.CRITICAL))
_MISSING = (
    (Signal.MISSING_RATIO_CHANGE, Severity.WARNING),
    (Signal.MISSING_RATIO_CHANGE, Severity.DECISION),
)
THRESHOLD_KEYS: dict[FeatureKind, tuple[tuple[Signal, Severity], ...]] = {
    FeatureKind.NUMERIC: (
        *_PSI_BANDS,
        (Signal.PSI, Severity.DECISION),
        (Signal.KS, Severity.CRITICAL),
        (Signal.KS, Severity.DECISION),
        *_MISSING,
        (Signal.OUT_OF_RANGE_RATIO, Severity.WARNING),
    ),
    FeatureKind.CATEGORICAL: (
        *_PSI_BANDS,
        (Signal.TVD, Severity.DECISION),
        *_MISSING,
        (Signal.UNSEEN_CATEGORY_RATIO, Severity.WARNING),
        (Signal.UNSEEN_CATEGORY_RATIO, Severity.DECISION),
        (Signal.NEW_CATEGORY_PVALUE, Severity.WARNING),
    ),
}
"""The (signal, severity) thresholds exported per feature kind (see `Thresholds.series`)."""


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """A configured feature: its name, kind and resolved thresholds."""

    name: str
    kind: FeatureKind
    thresholds: Thresholds = Thresholds()


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """The model-wide part of the drift decision rule (docs/architecture.md, Statistics).

    The effect-size floors are per feature (`Thresholds`); these apply to the whole model.
    `psi_noise_multiple`: the PSI leg also needs PSI >= this multiple of its null mean
    (B_eff - 1)(1/n_r + 1/n_c) (monitor.stats.psi_noise_floor; 0 turns it off).
    `ks_noise_multiple`: the KS leg also needs D >= this multiple of its null mean
    0.8687 / sqrt(n_eff) (monitor.stats.ks_noise_floor; 0, the default, turns it off).
    """

    fdr_q: float = 1e-3
    correction: Correction = Correction.BH
    min_samples: int = 1000
    psi_noise_multiple: float = 5.0
    ks_noise_multiple: float = 0.0


@dataclass(frozen=True, slots=True)
class ReferencePlan:
    """Where a model's reference comes from: mode, file path, warm-up size, rolling lag,
    and (registry mode) whether to follow the stream's model version."""

    mode: ReferenceMode
    path: Path | None = None
    warmup_events: int = 10_000
    lag_seconds: float = 86_400.0
    length_seconds: float = 3_600.0
    follow_model_version: bool = False


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """The event-time window of every model: bucket, length, lateness, future tolerance."""

    bucket_seconds: float = 60.0
    length_seconds: float = 3_600.0
    allowed_lateness_seconds: float = 60.0
    max_future_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class CorrelationPlan:
    """A model's correlation group (monitor.correlation): its numeric features and floors."""

    features: tuple[str, ...]
    change_floor: float = 0.1
    noise_multiple: float = 6.0


RECONSTRUCTION_FEATURE = "__reconstruction__"
"""The virtual numeric feature holding each event's reconstruction error (reserved name)."""


@dataclass(frozen=True, slots=True)
class ReconstructionPlan:
    """A model's reconstruction group (monitor.reconstruction): its features and PCA variance."""

    features: tuple[str, ...]
    variance: float = 0.9


@dataclass(frozen=True, slots=True)
class DiscoveryPlan:
    """`features: auto`: at most `max_features` discovered features, none matching `exclude`
    (shell globs), each with `thresholds` (the model's, over the global ones)."""

    max_features: int = 1000
    exclude: tuple[str, ...] = ()
    thresholds: Thresholds = Thresholds()


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """Drift per segment (`segment_by`, `max_segments`; monitor/segments.py).

    `field` is the configured dotted path, `key` the key it names inside the features
    object; events are split by the string value at `key` into the `max_segments` most
    frequent reference values and OTHER.
    """

    field: str
    key: str
    max_segments: int = 10


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """Everything a model runtime needs from the configuration, as plain values.

    `features` hold the resolved thresholds; `top_k` is each feature's configured top-K in
    configuration order (None: the default), as it enters the checkpoint fingerprint.
    """

    name: str
    features: tuple[FeatureSpec, ...]
    reference: ReferencePlan
    window: WindowPlan = WindowPlan()
    policy: DecisionPolicy = DecisionPolicy()
    top_k: tuple[tuple[str, int | None], ...] = ()
    max_bins: int = DEFAULT_MAX_BINS
    topics: frozenset[str] | None = None
    distributions: bool = True
    """Whether evaluations carry the reference and current shares per bin (not `none`)."""
    correlation: CorrelationPlan | None = None
    """The correlation group, when the model enables one (`correlation.enabled`)."""
    reconstruction: ReconstructionPlan | None = None
    """The reconstruction group, when enabled; `features` then ends with its virtual feature."""
    discovery: DiscoveryPlan | None = None
    """Set for `features: auto`: `features` is empty until the stream's features are found."""
    segments: SegmentPlan | None = None
    """Drift per segment, when the model configures `segment_by`."""
    sample_rate: float = 1.0
    """Share of the model's messages counted (`monitor.sampling`)."""

    def top_k_of(self, name: str) -> int:
        """The top-K of a categorical feature (DEFAULT_TOP_K unless configured)."""
        return dict(self.top_k).get(name) or DEFAULT_TOP_K


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


class DeferredShares(Protocol):
    """Where a deferred `Distribution` reads its shares: row `row`'s (reference, current)."""

    def shares(self, row: int) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
        """The reference and current shares of feature row `row` (None: an empty window)."""
        ...


class Distribution:
    """Shares (0-1) of a feature's reference and current window over the picture's bins.

    `bins` are display names in order. Numeric: "(below)", "p0-10" ... "p90-100" (the 10
    reference-decile groups the PSI uses), "(above)", "(missing)". Categorical: the top
    reference categories (at most 20, in reference order), "(other)", "(unseen)",
    "(missing)"; a category's position, not its text, tells it from a special bin. Each
    share is the bin's count over the window's valid and missing values (invalid ones
    excluded), so the shares of a window sum to 1; None for an empty window.

    A picture is made with its shares (`Distribution(bins, reference, current)`) or deferred
    (`Distribution.deferred(bins, source, row)`): an evaluation makes a deferred picture per
    feature, and `source` computes the shares of every feature at once on the first read of
    any of them, so an evaluation whose pictures nobody reads (all but the exported and shown
    features, at thousands of features) never computes them. Both kinds compare equal when
    their bins and shares are equal.
    """

    __slots__ = ("_current", "_reference", "_row", "_source", "bins")

    def __init__(
        self,
        bins: tuple[str, ...],
        reference: tuple[float, ...] | None,
        current: tuple[float, ...] | None,
    ) -> None:
        self.bins = bins
        self._reference = reference
        self._current = current
        self._source: DeferredShares | None = None
        self._row = 0

    @classmethod
    def deferred(cls, bins: tuple[str, ...], source: DeferredShares, row: int) -> Distribution:
        """A picture whose shares are `source.shares(row)`, read on first use."""
        picture = cls.__new__(cls)
        picture.bins = bins
        picture._source = source
        picture._row = row
        return picture

    def _resolve(self) -> None:
        source = self._source
        if source is not None:
            self._reference, self._current = source.shares(self._row)
            self._source = None

    @property
    def reference(self) -> tuple[float, ...] | None:
        """Shares of the reference window per bin (None: empty)."""
        self._resolve()
        return self._reference

    @property
    def current(self) -> tuple[float, ...] | None:
        """Shares of the current window per bin (None: empty)."""
        self._resolve()
        return self._current

    def _key(self) -> tuple[object, ...]:
        return (self.bins, self.reference, self.current)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Distribution):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Distribution(bins={self.bins!r}, reference={self.reference!r}, "
            f"current={self.current!r})"
        )


@dataclass(slots=True, unsafe_hash=True)
class FeatureResult:
    """Everything one evaluation knows about one feature. Statistics are None when not computed.

    Immutable by contract, not frozen: nothing assigns a field after the evaluator made it
    (`dataclasses.replace` makes a new one). A frozen dataclass sets each of its 26 fields
    through `object.__setattr__`, which at 2,200 features made building the results 7.5 ms
    of an evaluation (1.2 ms unfrozen).

    A statistic is None when the feature's kind does not have it (KS for a categorical feature)
    or when either window holds fewer than `min_samples` non-missing values.
    `reference_ready` is False while the feature has no usable reference (no bins fitted yet,
    or a rolling reference's lagged window under `min_samples`); `reference_note` says why.
    `reference_unseen_estimate` is the reference's Good-Turing unseen mass p0 = f1 / n_ref
    that the new-category test and floor compare with (categorical features with fitted
    bins only; it does not depend on the window, so it is set under `min_samples` too).
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
    reference_unseen_estimate: float | None = None
    missing_pvalue: float | None = None
    qvalue: float | None = None
    drift_detected: bool = False
    drift_reasons: tuple[str, ...] = ()
    thresholds: Thresholds = Thresholds()
    reference_ready: bool = True
    reference_note: str = ""
    distribution: Distribution | None = None


@dataclass(frozen=True, slots=True)
class PairChange:
    """One pair of a correlation group: reference and current r, their change and its test."""

    feature_a: str
    feature_b: str
    reference_r: float
    current_r: float
    change: float
    pvalue: float
    qvalue: float
    current_samples: int
    drifted: bool


@dataclass(frozen=True, slots=True)
class CorrelationResult:
    """A model's correlation drift (monitor.correlation): counts and the top pairs by |change|.

    `max_abs_change` is None when no pair was evaluated; `top_pairs` holds at most 10.
    """

    features: tuple[str, ...]
    pairs_evaluated: int
    drifted_pairs: int
    max_abs_change: float | None
    top_pairs: tuple[PairChange, ...] = ()


@dataclass(frozen=True, slots=True)
class DiscoveryStatus:
    """`features: auto`: discovery progress and the names seen that are not monitored.

    `unmonitored` counts distinct names (exact up to a cap; `unmonitored_saturated` once the
    cap is reached); `unmonitored_names` lists the first few (at most 20).
    """

    discovering: bool
    discovery_events: int
    monitored: int
    unmonitored: int
    unmonitored_saturated: bool = False
    unmonitored_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """One segment's evaluation: its events in both windows and its features' results.

    `features` are decided in one Benjamini-Hochberg family over every (segment, feature)
    test of the model (monitor/segments.py); events count each event of the segment once.
    """

    segment: str
    reference_events: int
    current_events: int
    features: tuple[FeatureResult, ...]

    @property
    def drifted_features(self) -> int:
        """Features of this segment with a positive drift decision."""
        return sum(1 for f in self.features if f.drift_detected)


@dataclass(frozen=True, slots=True)
class ShadowInfo:
    """A shadow window a registry model counts for a profile that is not active yet."""

    reference_id: str
    model_version: str
    reason: str
    since: float
    events: int


@dataclass(frozen=True, slots=True)
class ActivationInfo:
    """One reference activation this daemon performed (`cause` as in the metric label)."""

    reference_id: str
    model_version: str
    cause: str
    at: float
    by: str
    reason: str
    gapless: bool


@dataclass(frozen=True, slots=True)
class ReferenceView:
    """A registry model's reference as /status shows it (docs/registry.md).

    `registry_active` is the id the registry names (the active one differs while the model
    follows another version); `shadows` the shadow windows held; `activations` this
    daemon's last activations, newest first; `version_shares` the model versions of the
    current window when following; `note` what the next swap does without a shadow.
    """

    topic: str
    registry_active: str
    following: bool
    shadows: tuple[ShadowInfo, ...] = ()
    activations: tuple[ActivationInfo, ...] = ()
    version_shares: tuple[tuple[str, float], ...] = ()
    note: str = ""
    registry_error: str = ""


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
    discovery: DiscoveryStatus | None = None
    """Set for a model with `features: auto` (monitor.autodiscover)."""
    segment_by: str = ""
    segments: tuple[SegmentResult, ...] = ()
    """Per-segment results, worst first (`segment_by` models only; see SegmentResult)."""
    segment_field_missing: int = 0
    """Events so far whose segment field was absent, null or not a string (counted in OTHER)."""
    reference_view: ReferenceView | None = None
    correlation: CorrelationResult | None = None
    """The correlation group's result, when the model configures one."""
    sample_rate: float = 1.0
    """Share of the model's messages its windows count (config `sample_rate`)."""
    window_digest: str = ""
    """SHA-256 (hex) of the current window's count matrix (little-endian int64, features x
    bins): equal digests mean equal windows, bin for bin (a fleet's replicas, docs/fleet.md)."""

    @property
    def drifted_features(self) -> int:
        """Number of features whose drift decision is positive."""
        return sum(1 for f in self.features if f.drift_detected)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What scrapes and /status read: the latest evaluation of every model, swapped atomically."""

    created_at: float
    models: tuple[ModelEvaluation, ...] = field(default_factory=tuple)
