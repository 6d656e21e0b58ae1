"""Prometheus metrics: the metric catalogue, the pipeline metrics and the drift collector.

Layer 3. With `monitor.http` this is the only module that imports `prometheus_client`.
Metric names are the public API (README.md, Metrics); the golden exposition test in
`tests/unit/test_metrics.py` pins every name, type, HELP text and label name.

Two owners, one registry (injected, never the global one):

- `PipelineMetrics` owns the counters, gauges and histograms the loop thread updates as it
  works (records consumed and rejected, batch and evaluation durations, checkpoints, offset
  commits, lag, readiness). Every counter is pre-initialised to 0 over its closed label set
  (configured topics x `RejectReason`, configured models, configured features,
  `CheckpointResult`), so `rate()` and `increase()` work from the first scrape.
- `DriftCollector` renders the drift statistics from the latest immutable `Snapshot`. The
  loop swaps the snapshot reference with `publish()`; a scrape reads that reference once
  and only formats what it finds, so a scrape takes no lock, computes nothing, and every
  series of one scrape comes from one evaluation.

Label values come only from configuration, closed enums and the reference profile (the `bin`
label of `driftmon_feature_bin_ratio`: constants or top reference categories, at most 20 per
feature); the one label read from messages is `model_version` (bounded, see the README).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from operator import attrgetter
from typing import Final, Literal, NamedTuple, TypeAlias

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitor import __version__
from monitor.account import BatchAccount
from monitor.distribution import MAX_CATEGORIES, NUMERIC_BINS, exported_features
from monitor.errors import (
    CheckpointResult,
    ClaimResult,
    CommitResult,
    RegistryRejectReason,
    RejectReason,
    ReloadResult,
    StateRejectReason,
    UnreadableReason,
)
from monitor.model import (
    THRESHOLD_KEYS,
    DistributionExport,
    DistributionPolicy,
    ModelEvaluation,
    Severity,
    Signal,
    Snapshot,
)

__all__ = [
    "BATCH_DURATION_BUCKETS",
    "CATALOGUE",
    "EVALUATION_DURATION_BUCKETS",
    "DriftCollector",
    "MetricDef",
    "PipelineMetrics",
    "bin_label",
    "cardinality",
    "distribution_cardinality",
    "render_snapshot",
]

# --- metric names (the public API; counters are written with their `_total` suffix) --------

# Pipeline (PipelineMetrics)
RECORDS_CONSUMED_TOTAL: Final = "driftmon_records_consumed_total"
RECORDS_REJECTED_TOTAL: Final = "driftmon_records_rejected_total"
KAFKA_UNREADABLE_BATCHES_TOTAL: Final = "driftmon_kafka_unreadable_batches_total"
DEAD_LETTER_FAILURES_TOTAL: Final = "driftmon_dead_letter_failures_total"
EVENTS_ACCEPTED_TOTAL: Final = "driftmon_events_accepted_total"
FEATURE_INVALID_VALUES_TOTAL: Final = "driftmon_feature_invalid_values_total"
BATCH_DURATION_SECONDS: Final = "driftmon_batch_duration_seconds"
EVALUATION_DURATION_SECONDS: Final = "driftmon_evaluation_duration_seconds"
EVALUATIONS_TOTAL: Final = "driftmon_evaluations_total"
CHECKPOINTS_TOTAL: Final = "driftmon_checkpoints_total"
OFFSET_COMMITS_TOTAL: Final = "driftmon_offset_commits_total"
DECODE_WORKER_FAILURES_TOTAL: Final = "driftmon_decode_worker_failures_total"
LAST_RECORD_TIMESTAMP_SECONDS: Final = "driftmon_last_record_timestamp_seconds"
LAST_EVALUATION_TIMESTAMP_SECONDS: Final = "driftmon_last_evaluation_timestamp_seconds"
CONSUMER_LAG: Final = "driftmon_consumer_lag"
BUILD_INFO: Final = "driftmon_build_info"
READY: Final = "driftmon_ready"
KAFKA_CONNECTED: Final = "driftmon_kafka_connected"
EVALUATION_INTERVAL_SECONDS: Final = "driftmon_evaluation_interval_seconds"
REGISTRY_RECORDS_REJECTED_TOTAL: Final = "driftmon_registry_records_rejected_total"
REFERENCE_ACTIVATIONS_TOTAL: Final = "driftmon_reference_activations_total"
CONFIG_RELOADS_TOTAL: Final = "driftmon_config_reloads_total"
CONFIG_LAST_RELOAD_SUCCESSFUL: Final = "driftmon_config_last_reload_successful"
CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS: Final = (
    "driftmon_config_last_reload_success_timestamp_seconds"
)
SAMPLE_RATIO: Final = "driftmon_sample_ratio"
# The fleet's state topic (state.backend: kafka; docs/fleet.md)
STATE_LAG_RECORDS: Final = "driftmon_state_lag_records"
STATE_COMMITS_TOTAL: Final = "driftmon_state_commits_total"
STATE_CLAIMS_TOTAL: Final = "driftmon_state_claims_total"
STATE_RECORDS_REJECTED_TOTAL: Final = "driftmon_state_records_rejected_total"
PARTITIONS_OWNED: Final = "driftmon_partitions_owned"
STATE_SNAPSHOT_AGE_SECONDS: Final = "driftmon_state_snapshot_age_seconds"

# Per model and feature (DriftCollector)
FEATURE_PSI: Final = "driftmon_feature_psi"
FEATURE_PSI_PVALUE: Final = "driftmon_feature_psi_pvalue"
FEATURE_KS_STATISTIC: Final = "driftmon_feature_ks_statistic"
FEATURE_KS_ERROR_BOUND: Final = "driftmon_feature_ks_error_bound"
FEATURE_KS_PVALUE: Final = "driftmon_feature_ks_pvalue"
FEATURE_CHI2_PVALUE: Final = "driftmon_feature_chi2_pvalue"
FEATURE_TVD: Final = "driftmon_feature_tvd"
FEATURE_DRIFT_QVALUE: Final = "driftmon_feature_drift_qvalue"
FEATURE_OUT_OF_RANGE_RATIO: Final = "driftmon_feature_out_of_range_ratio"
FEATURE_UNSEEN_CATEGORY_RATIO: Final = "driftmon_feature_unseen_category_ratio"
FEATURE_NEW_CATEGORY_PVALUE: Final = "driftmon_feature_new_category_pvalue"
FEATURE_REFERENCE_UNSEEN_ESTIMATE: Final = "driftmon_feature_reference_unseen_estimate"
FEATURE_DRIFT_DETECTED: Final = "driftmon_feature_drift_detected"
FEATURE_WINDOW_SAMPLES: Final = "driftmon_feature_window_samples"
FEATURE_MISSING_RATIO: Final = "driftmon_feature_missing_ratio"
FEATURE_BIN_RATIO: Final = "driftmon_feature_bin_ratio"
FEATURE_THRESHOLD: Final = "driftmon_feature_threshold"
FEATURE_PSI_THRESHOLD: Final = "driftmon_feature_psi_threshold"  # deprecated: FEATURE_THRESHOLD
FEATURE_REFERENCE_READY: Final = "driftmon_feature_reference_ready"

# Per model (DriftCollector)
MODEL_DRIFTED_FEATURES: Final = "driftmon_model_drifted_features"
MODEL_FEATURES: Final = "driftmon_model_features"
MODEL_LAST_EVALUATION_TIMESTAMP_SECONDS: Final = "driftmon_model_last_evaluation_timestamp_seconds"
MODEL_WATERMARK_TIMESTAMP_SECONDS: Final = "driftmon_model_watermark_timestamp_seconds"
REFERENCE_INFO: Final = "driftmon_reference_info"
MODEL_REFERENCE_READY: Final = "driftmon_model_reference_ready"
UNMONITORED_FEATURES: Final = "driftmon_unmonitored_features"

# Per model with a correlation group (DriftCollector; monitor.correlation)
CORRELATION_PAIRS: Final = "driftmon_correlation_pairs"
CORRELATION_DRIFTED_PAIRS: Final = "driftmon_correlation_drifted_pairs"
CORRELATION_MAX_CHANGE: Final = "driftmon_correlation_max_change"
CORRELATION_CHANGE: Final = "driftmon_correlation_change"
CORRELATION_COEFFICIENT: Final = "driftmon_correlation_coefficient"
# Per model, segment and feature (DriftCollector; models with `segment_by` only)
SEGMENT_FEATURE_DRIFT_DETECTED: Final = "driftmon_segment_feature_drift_detected"
SEGMENT_FEATURE_DRIFT_QVALUE: Final = "driftmon_segment_feature_drift_qvalue"
SEGMENT_FEATURE_KS_STATISTIC: Final = "driftmon_segment_feature_ks_statistic"
SEGMENT_FEATURE_PSI: Final = "driftmon_segment_feature_psi"
SEGMENT_FEATURE_TVD: Final = "driftmon_segment_feature_tvd"
SEGMENT_DRIFTED_FEATURES: Final = "driftmon_segment_drifted_features"
SEGMENT_WINDOW_EVENTS: Final = "driftmon_segment_window_events"
SEGMENT_FIELD_MISSING_EVENTS_TOTAL: Final = "driftmon_segment_field_missing_events_total"

ACTIVATION_CAUSES: Final = ("operator", "rollback", "model_version", "warmup")
"""The `cause` values of driftmon_reference_activations_total (monitor.registry.CAUSES)."""

# Label values of the closed label sets rendered by DriftCollector.
WINDOWS: Final = ("reference", "current")
SEVERITIES: Final = ("warning", "critical")
COMMIT_RESULTS: Final = (CheckpointResult.SUCCESS, CheckpointResult.FAILURE)
"""The `result` values of driftmon_offset_commits_total (CORRUPT applies to checkpoints)."""
DECISION: Final = Severity.DECISION.value

MetricType = Literal["counter", "gauge", "histogram"]


class MetricDef(NamedTuple):
    """One metric of the public API: full name, type, label names and HELP text."""

    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str


_MF: Final = ("model", "feature")
_MSF: Final = ("model", "segment", "feature")

CATALOGUE: Final[tuple[MetricDef, ...]] = (
    # pipeline
    MetricDef(
        RECORDS_CONSUMED_TOTAL,
        "counter",
        ("topic",),
        "Kafka messages consumed from the topic and handed to decoding.",
    ),
    MetricDef(
        RECORDS_REJECTED_TOTAL,
        "counter",
        ("topic", "reason"),
        "Records (events) rejected whole, by topic and closed reject reason.",
    ),
    MetricDef(
        KAFKA_UNREADABLE_BATCHES_TOTAL,
        "counter",
        ("topic", "reason"),
        "Kafka record batches skipped unread (their records never decoded), by topic and "
        "closed reason.",
    ),
    MetricDef(
        DEAD_LETTER_FAILURES_TOTAL,
        "counter",
        ("reason",),
        "Rejected records that could not be copied to the dead-letter topic, by reject reason.",
    ),
    MetricDef(
        EVENTS_ACCEPTED_TOTAL,
        "counter",
        ("model",),
        "Events accepted into the current window of the model.",
    ),
    MetricDef(
        FEATURE_INVALID_VALUES_TOTAL,
        "counter",
        _MF,
        "Feature values of the wrong type or infinite, per model and configured feature.",
    ),
    MetricDef(
        BATCH_DURATION_SECONDS,
        "histogram",
        (),
        "Wall time to decode and apply one polled batch, in seconds (decoded in the decode "
        "worker's child: its time on the batch, not the wait).",
    ),
    MetricDef(
        EVALUATION_DURATION_SECONDS,
        "histogram",
        (),
        "Wall time of one evaluation of every model, in seconds.",
    ),
    MetricDef(EVALUATIONS_TOTAL, "counter", (), "Evaluation cycles completed."),
    MetricDef(
        REGISTRY_RECORDS_REJECTED_TOTAL,
        "counter",
        ("reason",),
        "Reference-registry records refused (the table unchanged), by closed reason.",
    ),
    MetricDef(
        REFERENCE_ACTIVATIONS_TOTAL,
        "counter",
        ("model", "cause"),
        "Reference activations performed by this daemon, by model and cause (operator, "
        "rollback, model_version, warmup).",
    ),
    MetricDef(
        CHECKPOINTS_TOTAL,
        "counter",
        ("result",),
        "Checkpoint writes by result; corrupt counts unusable checkpoints found at start.",
    ),
    MetricDef(
        OFFSET_COMMITS_TOTAL,
        "counter",
        ("result",),
        "Kafka offset commits by result.",
    ),
    MetricDef(
        DECODE_WORKER_FAILURES_TOTAL,
        "counter",
        (),
        "Decode worker children stopped because they failed (event.decode_worker); the "
        "batches they held were decoded in process.",
    ),
    MetricDef(
        LAST_RECORD_TIMESTAMP_SECONDS,
        "gauge",
        ("topic",),
        "Event time of the newest record applied from the topic, in Unix seconds.",
    ),
    MetricDef(
        LAST_EVALUATION_TIMESTAMP_SECONDS,
        "gauge",
        (),
        "Wall time the last evaluation finished, in Unix seconds (0 before the first).",
    ),
    MetricDef(
        CONSUMER_LAG,
        "gauge",
        ("topic", "partition"),
        "Records between the consumed position and the end of an assigned partition.",
    ),
    MetricDef(BUILD_INFO, "gauge", ("version",), "Build information of driftmon, value 1."),
    MetricDef(
        READY,
        "gauge",
        (),
        "1 when partitions are assigned, references are loaded and an evaluation ran, else 0.",
    ),
    MetricDef(
        KAFKA_CONNECTED,
        "gauge",
        (),
        "1 while the Kafka consumer is connected to the cluster, else 0.",
    ),
    MetricDef(
        EVALUATION_INTERVAL_SECONDS,
        "gauge",
        (),
        "Configured interval between evaluations, in seconds.",
    ),
    MetricDef(
        CONFIG_RELOADS_TOTAL,
        "counter",
        ("result",),
        "Configuration reloads (SIGHUP) by result: success, invalid or restart_required.",
    ),
    MetricDef(
        CONFIG_LAST_RELOAD_SUCCESSFUL,
        "gauge",
        (),
        "1 when the last configuration reload (or the start) succeeded, 0 when it was refused.",
    ),
    MetricDef(
        CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS,
        "gauge",
        (),
        "Wall time the running configuration was loaded (start or reload), in Unix seconds.",
    ),
    MetricDef(
        SAMPLE_RATIO,
        "gauge",
        ("model",),
        "Share of a model's messages its windows count (config sample_rate; 1 = all).",
    ),
    # per model and feature
    MetricDef(
        FEATURE_PSI,
        "gauge",
        _MF,
        "PSI of the current window against the reference, per feature.",
    ),
    MetricDef(
        FEATURE_PSI_PVALUE,
        "gauge",
        _MF,
        "Chi-square p-value of the PSI of the current window against the reference.",
    ),
    MetricDef(
        FEATURE_KS_STATISTIC,
        "gauge",
        _MF,
        "KS distance (0-1) of the current window against the reference on the fine bins.",
    ),
    MetricDef(
        FEATURE_KS_ERROR_BOUND,
        "gauge",
        _MF,
        "Largest error of the binned KS distance: the largest mass inside one fine bin.",
    ),
    MetricDef(
        FEATURE_KS_PVALUE,
        "gauge",
        _MF,
        "Asymptotic p-value of the KS distance of the current window against the reference.",
    ),
    MetricDef(
        FEATURE_CHI2_PVALUE,
        "gauge",
        _MF,
        "Chi-square p-value of the category counts of the current window against the reference.",
    ),
    MetricDef(
        FEATURE_TVD,
        "gauge",
        _MF,
        "Total variation distance (0-1) of the current window against the reference categories.",
    ),
    MetricDef(
        FEATURE_DRIFT_QVALUE,
        "gauge",
        _MF,
        "Multiple-testing corrected p-value of the drift test of the current window.",
    ),
    MetricDef(
        FEATURE_OUT_OF_RANGE_RATIO,
        "gauge",
        _MF,
        "Fraction (0-1) of current-window values outside the reference range.",
    ),
    MetricDef(
        FEATURE_UNSEEN_CATEGORY_RATIO,
        "gauge",
        _MF,
        "Fraction (0-1) of current-window values in categories unseen in the reference.",
    ),
    MetricDef(
        FEATURE_NEW_CATEGORY_PVALUE,
        "gauge",
        _MF,
        "P-value of the unseen-category count of the current window (Good-Turing p0 "
        "with its uncertainty).",
    ),
    MetricDef(
        FEATURE_REFERENCE_UNSEEN_ESTIMATE,
        "gauge",
        _MF,
        "The reference's Good-Turing estimate p0 = f1/n_ref of the mass of categories it never "
        "saw (categorical features); DriftmonFeatureNewCategories needs the unseen share above "
        "p0 plus its threshold.",
    ),
    MetricDef(
        FEATURE_DRIFT_DETECTED,
        "gauge",
        _MF,
        "1 when the corrected drift decision for the current window is positive, else 0.",
    ),
    MetricDef(
        FEATURE_WINDOW_SAMPLES,
        "gauge",
        (*_MF, "window"),
        "Non-missing values behind the statistics, per feature and window.",
    ),
    MetricDef(
        FEATURE_MISSING_RATIO,
        "gauge",
        (*_MF, "window"),
        "Fraction (0-1) of events of the window in which the feature is missing.",
    ),
    MetricDef(
        FEATURE_THRESHOLD,
        "gauge",
        (*_MF, "signal", "severity"),
        "Configured threshold of a feature's signal: alert level (warning, critical) or the "
        "drift decision's (decision).",
    ),
    MetricDef(
        FEATURE_PSI_THRESHOLD,
        "gauge",
        (*_MF, "severity"),
        'Deprecated: driftmon_feature_threshold{signal="psi"}. Configured PSI alert '
        "threshold of the feature, per severity.",
    ),
    MetricDef(
        FEATURE_REFERENCE_READY,
        "gauge",
        _MF,
        "1 when the feature has a usable reference (bins fitted; for a rolling reference, "
        "min_samples values in the lagged window), else 0.",
    ),
    MetricDef(
        FEATURE_BIN_RATIO,
        "gauge",
        (*_MF, "window", "bin"),
        "Share (0-1) of the window's values in the bin: reference deciles or top categories.",
    ),
    # the fleet's state topic
    MetricDef(
        STATE_LAG_RECORDS,
        "gauge",
        (),
        "State-topic records written but not yet folded by this replica (0 without a fleet).",
    ),
    MetricDef(
        STATE_COMMITS_TOTAL,
        "counter",
        ("result",),
        "State-topic commits folded: accepted, stale_epoch (a zombie) or gap.",
    ),
    MetricDef(
        STATE_CLAIMS_TOTAL,
        "counter",
        ("result",),
        "State-topic partition claims folded: accepted or stale_epoch.",
    ),
    MetricDef(
        STATE_RECORDS_REJECTED_TOTAL,
        "counter",
        ("reason",),
        "State-topic records refused by the fold, by reason.",
    ),
    MetricDef(
        PARTITIONS_OWNED,
        "gauge",
        (),
        "Source partitions this replica owns (claimed and counting).",
    ),
    MetricDef(
        STATE_SNAPSHOT_AGE_SECONDS,
        "gauge",
        (),
        "Seconds since the newest state-topic snapshot this replica has seen was written.",
    ),
    # per model
    MetricDef(
        MODEL_DRIFTED_FEATURES,
        "gauge",
        ("model",),
        "Features of the model with a positive drift decision at the last evaluation.",
    ),
    MetricDef(
        MODEL_FEATURES,
        "gauge",
        ("model",),
        "Features of the model in the last evaluation, with or without statistics.",
    ),
    MetricDef(
        MODEL_LAST_EVALUATION_TIMESTAMP_SECONDS,
        "gauge",
        ("model",),
        "Wall time of the last evaluation of the model, in Unix seconds.",
    ),
    MetricDef(
        MODEL_WATERMARK_TIMESTAMP_SECONDS,
        "gauge",
        ("model",),
        "Largest event time seen for the model (the end of its current window), Unix seconds.",
    ),
    MetricDef(
        REFERENCE_INFO,
        "gauge",
        ("model", "reference_id", "mode", "model_version"),
        "Reference profile in use by the model, value 1.",
    ),
    MetricDef(
        MODEL_REFERENCE_READY,
        "gauge",
        ("model",),
        "1 when the model has a reference profile with at least one usable feature, else 0.",
    ),
    # per model with a correlation group
    MetricDef(
        CORRELATION_PAIRS,
        "gauge",
        ("model",),
        "Feature pairs of the correlation group tested at the last evaluation.",
    ),
    MetricDef(
        CORRELATION_DRIFTED_PAIRS,
        "gauge",
        ("model",),
        "Feature pairs whose correlation changed (Fisher-z test and floor) at the last evaluation.",
    ),
    MetricDef(
        CORRELATION_MAX_CHANGE,
        "gauge",
        ("model",),
        "Largest absolute change of a pair's correlation, current minus reference window.",
    ),
    MetricDef(
        CORRELATION_CHANGE,
        "gauge",
        ("model", "feature_a", "feature_b"),
        "Correlation change (current minus reference) of the 10 pairs that changed most.",
    ),
    MetricDef(
        CORRELATION_COEFFICIENT,
        "gauge",
        ("model", "feature_a", "feature_b", "window"),
        "Pearson correlation of winsorised values per window, for the 10 pairs that changed most.",
    ),
    MetricDef(
        UNMONITORED_FEATURES,
        "gauge",
        ("model",),
        "Distinct feature names seen in a features: auto model's events that it does not "
        "monitor (exact up to 100,000).",
    ),
    # per segment (models with segment_by only)
    MetricDef(
        SEGMENT_FEATURE_DRIFT_DETECTED,
        "gauge",
        _MSF,
        "1 when the segment's corrected drift decision for the feature is positive, else 0.",
    ),
    MetricDef(
        SEGMENT_FEATURE_DRIFT_QVALUE,
        "gauge",
        _MSF,
        "Corrected p-value of the segment's drift test (one BH family per model).",
    ),
    MetricDef(
        SEGMENT_FEATURE_KS_STATISTIC,
        "gauge",
        _MSF,
        "KS distance (0-1) of the segment's current window against its reference slice.",
    ),
    MetricDef(
        SEGMENT_FEATURE_PSI,
        "gauge",
        _MSF,
        "PSI of the segment's current window against its reference slice.",
    ),
    MetricDef(
        SEGMENT_FEATURE_TVD,
        "gauge",
        _MSF,
        "Total variation distance (0-1) of the segment's categories against its slice.",
    ),
    MetricDef(
        SEGMENT_DRIFTED_FEATURES,
        "gauge",
        ("model", "segment"),
        "Features of the segment with a positive drift decision at the last evaluation.",
    ),
    MetricDef(
        SEGMENT_WINDOW_EVENTS,
        "gauge",
        ("model", "segment", "window"),
        "Events of the segment in the reference slice and in the current window.",
    ),
    MetricDef(
        SEGMENT_FIELD_MISSING_EVENTS_TOTAL,
        "counter",
        ("model",),
        "Events whose segment field was absent, null or not a string (counted in __other__).",
    ),
)

_DEFS: Final[Mapping[str, MetricDef]] = {d.name: d for d in CATALOGUE}

# Batch: a batch of up to a few thousand records is decoded and binned in roughly 0.5 ms
# (tiny batches) to tens of milliseconds; seconds mean the loop is starved or swapping.
BATCH_DURATION_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
# Evaluation: O(models x features x bins); ~0.1 ms per feature puts 20 features near 2 ms
# and 1000 features near 100 ms. Beyond 10 s the consumer risks max_poll_interval eviction.
EVALUATION_DURATION_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def _counter(name: str, registry: CollectorRegistry) -> Counter:
    d = _DEFS[name]
    return Counter(d.name, d.help, d.labels, registry=registry)


def _gauge(name: str, registry: CollectorRegistry) -> Gauge:
    d = _DEFS[name]
    return Gauge(d.name, d.help, d.labels, registry=registry)


def _histogram(name: str, buckets: Sequence[float], registry: CollectorRegistry) -> Histogram:
    d = _DEFS[name]
    return Histogram(d.name, d.help, d.labels, buckets=buckets, registry=registry)


class PipelineMetrics:
    """The loop's own counters, gauges and histograms on an injected registry.

    Every method is cheap (a dict lookup and a locked float add inside prometheus_client)
    and meant for the loop thread. Label values must come from the closed sets given here:
    passing a topic, model or (model, feature) that was not configured raises `KeyError`,
    because minting label values at run time would make the cardinality unbounded.

    `driftmon_last_record_timestamp_seconds{topic}` and `driftmon_consumer_lag` have no
    series until a value is known; everything else exists (at 0) from construction on.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        topics: Sequence[str],
        features: Mapping[str, Sequence[str]],
        evaluation_interval_seconds: float,
        version: str = __version__,
        sample_rates: Mapping[str, float] | None = None,
    ) -> None:
        """Register every pipeline metric on `registry` and pre-initialise its series.

        `topics` are the configured Kafka topics; `features` maps each configured model to
        the names of its configured features; `evaluation_interval_seconds` is exported
        as-is so alert rules can scale their staleness thresholds by it. `sample_rates`
        holds each model's configured `sample_rate` (1 for a model it does not name).
        """
        consumed = _counter(RECORDS_CONSUMED_TOTAL, registry)
        rejected = _counter(RECORDS_REJECTED_TOTAL, registry)
        dead_letter_failures = _counter(DEAD_LETTER_FAILURES_TOTAL, registry)
        accepted = _counter(EVENTS_ACCEPTED_TOTAL, registry)
        invalid = _counter(FEATURE_INVALID_VALUES_TOTAL, registry)
        checkpoints = _counter(CHECKPOINTS_TOTAL, registry)
        commits = _counter(OFFSET_COMMITS_TOTAL, registry)
        self._decode_worker_failures = _counter(DECODE_WORKER_FAILURES_TOTAL, registry)

        self._consumed = {t: consumed.labels(t) for t in topics}
        self._rejected = {(t, r): rejected.labels(t, r.value) for t in topics for r in RejectReason}
        unreadable = _counter(KAFKA_UNREADABLE_BATCHES_TOTAL, registry)
        self._unreadable = {
            (t, r): unreadable.labels(t, r.value) for t in topics for r in UnreadableReason
        }
        self._dead_letter_failures = {r: dead_letter_failures.labels(r.value) for r in RejectReason}
        self._accepted_family, self._invalid_family = accepted, invalid
        self._accepted: dict[str, Counter] = {}
        self._invalid: dict[tuple[str, str], Counter] = {}
        self._checkpoints = {r: checkpoints.labels(r.value) for r in CheckpointResult}
        self._commits = {r: commits.labels(r.value) for r in COMMIT_RESULTS}
        registry_rejected = _counter(REGISTRY_RECORDS_REJECTED_TOTAL, registry)
        self._registry_rejected = {
            r: registry_rejected.labels(r.value) for r in RegistryRejectReason
        }
        self._activations_family = _counter(REFERENCE_ACTIVATIONS_TOTAL, registry)
        self._activations: dict[tuple[str, str], Counter] = {}
        self.set_features(features)

        self._batch = _histogram(BATCH_DURATION_SECONDS, BATCH_DURATION_BUCKETS, registry)
        self._evaluation = _histogram(
            EVALUATION_DURATION_SECONDS, EVALUATION_DURATION_BUCKETS, registry
        )
        self._evaluations = _counter(EVALUATIONS_TOTAL, registry)

        self._last_record = _gauge(LAST_RECORD_TIMESTAMP_SECONDS, registry)
        self._last_record_seen: dict[str, float] = {}
        self._topics = frozenset(topics)
        self._last_evaluation = _gauge(LAST_EVALUATION_TIMESTAMP_SECONDS, registry)
        self._lag = _gauge(CONSUMER_LAG, registry)
        self._lag_series: set[tuple[str, str]] = set()

        _gauge(BUILD_INFO, registry).labels(version).set(1)
        self._ready = _gauge(READY, registry)
        self._kafka_connected = _gauge(KAFKA_CONNECTED, registry)
        self._interval = _gauge(EVALUATION_INTERVAL_SECONDS, registry)
        self._interval.set(evaluation_interval_seconds)
        reloads = _counter(CONFIG_RELOADS_TOTAL, registry)
        self._reloads = {r: reloads.labels(r.value) for r in ReloadResult}
        self._reload_ok = _gauge(CONFIG_LAST_RELOAD_SUCCESSFUL, registry)
        self._reload_time = _gauge(CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, registry)
        self._reload_ok.set(1)
        self.fleet = FleetMetrics(registry)
        self._sample_ratio = _gauge(SAMPLE_RATIO, registry)
        self._sample_models: set[str] = set()
        self.set_sample_rates({m: (sample_rates or {}).get(m, 1.0) for m in features})

    def set_features(self, features: Mapping[str, Sequence[str]]) -> None:
        """Make `features` (model -> feature names) the closed label sets of the per-model
        and per-feature counters: new series start at 0, the series of a model or feature
        no longer configured are removed (a SIGHUP reload calls this)."""
        models = set(features)
        pairs = {(m, f) for m, fs in features.items() for f in fs}
        for model in set(self._accepted) - models:
            self._accepted_family.remove(model)
            del self._accepted[model]
            for cause in ACTIVATION_CAUSES:
                self._activations_family.remove(model, cause)
                del self._activations[model, cause]
        for pair in set(self._invalid) - pairs:
            self._invalid_family.remove(*pair)
            del self._invalid[pair]
        for model in features:
            if model not in self._accepted:
                self._accepted[model] = self._accepted_family.labels(model)
                for cause in ACTIVATION_CAUSES:
                    self._activations[model, cause] = self._activations_family.labels(model, cause)
        for model, names in features.items():
            for name in names:
                if (model, name) not in self._invalid:
                    self._invalid[model, name] = self._invalid_family.labels(model, name)

    def set_sample_rates(self, rates: Mapping[str, float]) -> None:
        """Export each model's `sample_rate`; the series of models no longer configured go."""
        for model in self._sample_models - set(rates):
            self._sample_ratio.remove(model)
        self._sample_models = set(rates)
        for model, rate in rates.items():
            self._sample_ratio.labels(model).set(rate)

    def set_evaluation_interval(self, seconds: float) -> None:
        """Export a new evaluation interval (after a reload changed it)."""
        self._interval.set(seconds)

    def config_loaded(self, timestamp: float) -> None:
        """The running configuration was loaded at `timestamp` (start or successful reload)."""
        self._reload_ok.set(1)
        self._reload_time.set(timestamp)

    def config_reload(self, result: ReloadResult, timestamp: float) -> None:
        """Count one reload attempt; a success also sets the load time, a refusal clears
        `driftmon_config_last_reload_successful` until the next success."""
        self._reloads[result].inc()
        if result is ReloadResult.SUCCESS:
            self.config_loaded(timestamp)
        else:
            self._reload_ok.set(0)

    def record_consumed(self, topic: str, n: int) -> None:
        """Count `n` Kafka messages consumed from `topic`."""
        self._consumed[topic].inc(n)

    def record_rejected(self, topic: str, reason: RejectReason, n: int = 1) -> None:
        """Count `n` records (events) from `topic` rejected whole for `reason`."""
        self._rejected[topic, reason].inc(n)

    def dead_letter_failed(self, reason: RejectReason, n: int = 1) -> None:
        """Count `n` rejected records of `reason` that did not reach the dead-letter topic.

        Thread-safe: the producer's delivery callbacks call it from its IO thread.
        """
        self._dead_letter_failures[reason].inc(n)

    def record_batch(self, account: BatchAccount) -> None:
        """Add one batch's account: consumed, rejected, accepted, invalid values, event times."""
        for topic, n in account.consumed.items():
            self.record_consumed(topic, n)
        for (topic, reason), n in account.rejected.items():
            self.record_rejected(topic, reason, n)
        for model, n in account.events_accepted.items():
            self.record_accepted(model, n)
        for (model, feature), n in account.invalid.items():
            self.add_invalid_values(model, feature, n)
        for topic, seconds in account.newest_event.items():
            self.last_record_timestamp(topic, seconds)

    def record_accepted(self, model: str, n: int) -> None:
        """Count `n` events accepted into the current window of `model`."""
        self._accepted[model].inc(n)

    def add_invalid_values(self, model: str, feature: str, n: int) -> None:
        """Count `n` values of a configured feature that had the wrong type or were ±inf."""
        self._invalid[model, feature].inc(n)

    def observe_batch(self, seconds: float) -> None:
        """Record the wall time one polled batch took to decode and apply."""
        self._batch.observe(seconds)

    def observe_evaluation(self, seconds: float) -> None:
        """Record the wall time one evaluation of every model took."""
        self._evaluation.observe(seconds)

    def evaluation_done(self, timestamp: float) -> None:
        """Count one finished evaluation cycle and set its wall time (Unix seconds)."""
        self._evaluations.inc()
        self._last_evaluation.set(timestamp)

    def checkpoint(self, result: CheckpointResult) -> None:
        """Count one checkpoint write with its result."""
        self._checkpoints[result].inc()

    def offset_commit(self, result: CheckpointResult) -> None:
        """Count one Kafka offset commit with its result."""
        self._commits[result].inc()

    def decode_worker_failed(self) -> None:
        """Count one decode worker child stopped because it failed."""
        self._decode_worker_failures.inc()

    def last_record_timestamp(self, topic: str, ts_seconds: float) -> None:
        """Advance the newest applied event time of `topic`; it never moves backwards."""
        if topic not in self._topics:
            raise KeyError(topic)
        if ts_seconds > self._last_record_seen.get(topic, float("-inf")):
            self._last_record_seen[topic] = ts_seconds
            self._last_record.labels(topic).set(ts_seconds)

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Set the lag of every assigned (topic, partition); drop series of revoked partitions.

        `lags` must name every partition currently assigned: a partition absent from it
        loses its series, so a revoked partition does not keep reporting a stale lag.
        """
        current = {(topic, str(partition)) for topic, partition in lags}
        for gone in self._lag_series - current:
            self._lag.remove(*gone)
        for (topic, partition), lag in lags.items():
            self._lag.labels(topic, str(partition)).set(lag)
        self._lag_series = current

    def unreadable_batches(self, counts: Mapping[tuple[str, UnreadableReason], int]) -> None:
        """Count record batches skipped unread, per (configured topic, reason)."""
        for key, n in counts.items():
            self._unreadable[key].inc(n)

    def registry_rejected(self, reason: RegistryRejectReason, n: int = 1) -> None:
        """Count `n` registry records refused for `reason`."""
        self._registry_rejected[reason].inc(n)

    def reference_activated(self, model: str, cause: str) -> None:
        """Count one reference activation of `model` (cause from ACTIVATION_CAUSES)."""
        self._activations[model, cause].inc()

    def set_ready(self, ready: bool) -> None:
        """Export the readiness flag (the same condition as `/readyz`)."""
        self._ready.set(1 if ready else 0)

    def set_kafka_connected(self, connected: bool) -> None:
        """Export whether the Kafka consumer is currently connected."""
        self._kafka_connected.set(1 if connected else 0)


# FeatureResult attribute -> metric; each is emitted only when the value is not None.
_OPTIONAL_FEATURE_STATS: Final = (
    (FEATURE_PSI, "psi"),
    (FEATURE_PSI_PVALUE, "psi_pvalue"),
    (FEATURE_KS_STATISTIC, "ks_statistic"),
    (FEATURE_KS_ERROR_BOUND, "ks_error_bound"),
    (FEATURE_KS_PVALUE, "ks_pvalue"),
    (FEATURE_CHI2_PVALUE, "chi2_pvalue"),
    (FEATURE_TVD, "tvd"),
    (FEATURE_DRIFT_QVALUE, "qvalue"),
    (FEATURE_OUT_OF_RANGE_RATIO, "out_of_range_ratio"),
    (FEATURE_UNSEEN_CATEGORY_RATIO, "unseen_category_ratio"),
    (FEATURE_NEW_CATEGORY_PVALUE, "new_category_pvalue"),
    (FEATURE_REFERENCE_UNSEEN_ESTIMATE, "reference_unseen_estimate"),
)


class FleetMetrics:
    """The state-topic series (docs/fleet.md); every series exists at 0 from construction.

    `fold_counts` takes the fold's cumulative counters and adds what is new since the last
    call, so a Prometheus counter never goes backwards.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        commits = _counter(STATE_COMMITS_TOTAL, registry)
        claims = _counter(STATE_CLAIMS_TOTAL, registry)
        rejected = _counter(STATE_RECORDS_REJECTED_TOTAL, registry)
        self._commits = {r.value: commits.labels(r.value) for r in CommitResult}
        self._claims = {r.value: claims.labels(r.value) for r in ClaimResult}
        self._rejected = {r.value: rejected.labels(r.value) for r in StateRejectReason}
        self._seen: dict[tuple[str, str], int] = {}
        self._lag = _gauge(STATE_LAG_RECORDS, registry)
        self._owned = _gauge(PARTITIONS_OWNED, registry)
        self._snapshot_age = _gauge(STATE_SNAPSHOT_AGE_SECONDS, registry)

    def fold_counts(
        self,
        commits: Mapping[str, int],
        claims: Mapping[str, int],
        rejected: Mapping[str, int],
    ) -> None:
        """Bring the counters up to the fold's cumulative counts (by label value)."""
        for family, counts, series in (
            ("commits", commits, self._commits),
            ("claims", claims, self._claims),
            ("rejected", rejected, self._rejected),
        ):
            for label, total in counts.items():
                new = int(total) - self._seen.get((family, str(label)), 0)
                if new > 0:
                    series[str(label)].inc(new)
                    self._seen[family, str(label)] = int(total)

    def set_state(self, lag_records: int, owned: int, snapshot_age_seconds: float) -> None:
        """The state-topic lag, the partitions owned and the newest snapshot's age."""
        self._lag.set(lag_records)
        self._owned.set(owned)
        self._snapshot_age.set(snapshot_age_seconds)


def _family(name: str) -> GaugeMetricFamily:
    d = _DEFS[name]
    return GaugeMetricFamily(d.name, d.help, labels=d.labels)


_SEGMENT_FEATURE_STATS: Final = (
    (SEGMENT_FEATURE_DRIFT_QVALUE, "qvalue"),
    (SEGMENT_FEATURE_KS_STATISTIC, "ks_statistic"),
    (SEGMENT_FEATURE_PSI, "psi"),
    (SEGMENT_FEATURE_TVD, "tvd"),
)


def _segment_families(snapshot: Snapshot) -> list[Metric]:
    """The per-segment families (samples only for models with `segment_by`).

    Per (model, segment, feature): the drift flag, and the q-value, KS D, PSI and TVD when
    computed; per (model, segment): drifted features and events per window; per segmented
    model: the events without a usable segment value. `segment` values are the reference's
    top segments and `__other__` (at most `max_segments` + 1 per model).
    """
    detected = _family(SEGMENT_FEATURE_DRIFT_DETECTED)
    stats = [(_family(name), attrgetter(attr)) for name, attr in _SEGMENT_FEATURE_STATS]
    drifted = _family(SEGMENT_DRIFTED_FEATURES)
    events = _family(SEGMENT_WINDOW_EVENTS)
    d = _DEFS[SEGMENT_FIELD_MISSING_EVENTS_TOTAL]
    missing = CounterMetricFamily(d.name.removesuffix("_total"), d.help, labels=d.labels)
    for m in snapshot.models:
        if not m.segment_by:
            continue
        missing.add_metric((m.model,), m.segment_field_missing)
        for segment in m.segments:
            labels = (m.model, segment.segment)
            drifted.add_metric(labels, segment.drifted_features)
            events.add_metric((*labels, "reference"), segment.reference_events)
            events.add_metric((*labels, "current"), segment.current_events)
            for f in segment.features:
                detected.add_metric((*labels, f.name), 1.0 if f.drift_detected else 0.0)
                for family, get in stats:
                    value = get(f)
                    if value is not None:
                        family.add_metric((*labels, f.name), value)
    return [detected, *(family for family, _ in stats), drifted, events, missing]


DEFAULT_DISTRIBUTIONS: Final = DistributionPolicy()
# Bins of one feature's picture: 13 numeric, at most MAX_CATEGORIES + 3 categorical.
MAX_BINS: Final = max(len(NUMERIC_BINS), MAX_CATEGORIES + 3)


def bin_label(index: int, name: str) -> str:
    """The `bin` label value: the bin's position, zero-padded, a space and its display name.

    The position makes the values unique (a reference category may be called "(other)") and
    makes them sort in bin order as text ("00 (below)", "01 p0-10", ..., "12 (missing)").
    """
    return f"{index:02d} {name}"


def render_snapshot(
    snapshot: Snapshot, distributions: Mapping[str, DistributionPolicy] | None = None
) -> list[Metric]:
    """Format `snapshot` as gauge families; reads the snapshot only and computes nothing.

    Every family is returned even when it has no samples (so it stays typed in the
    exposition). Per (model, feature): the optional statistics appear only when the
    `FeatureResult` value is not None (no statistic under `min_samples`); the drift
    decision, both window sample counts, every threshold of the feature's kind
    (`Thresholds.series`, plus `signal="drift_qvalue",severity="decision"` = the model's q)
    and the deprecated PSI bands always appear; the missing ratio appears per window when
    known. Per model: drifted and evaluated feature counts,
    last evaluation time, reference readiness, the watermark when known and
    `driftmon_reference_info` when a reference is loaded (`reference_id` non-empty).
    `driftmon_feature_bin_ratio` appears for the features `exported_features` picks under
    the model's policy in `distributions` (default: `DistributionPolicy()`), per window
    that is not empty, one series per bin (`bin_label`).
    """
    policies = distributions or {}
    bin_ratio = _family(FEATURE_BIN_RATIO)
    stats = [(_family(name), attrgetter(attr)) for name, attr in _OPTIONAL_FEATURE_STATS]
    detected = _family(FEATURE_DRIFT_DETECTED)
    samples = _family(FEATURE_WINDOW_SAMPLES)
    missing = _family(FEATURE_MISSING_RATIO)
    threshold = _family(FEATURE_THRESHOLD)
    psi_threshold = _family(FEATURE_PSI_THRESHOLD)
    feature_ready = _family(FEATURE_REFERENCE_READY)
    drifted = _family(MODEL_DRIFTED_FEATURES)
    n_features = _family(MODEL_FEATURES)
    evaluated_at = _family(MODEL_LAST_EVALUATION_TIMESTAMP_SECONDS)
    watermark = _family(MODEL_WATERMARK_TIMESTAMP_SECONDS)
    reference_info = _family(REFERENCE_INFO)
    reference_ready = _family(MODEL_REFERENCE_READY)
    correlation = _CorrelationFamilies()
    unmonitored = _family(UNMONITORED_FEATURES)

    for m in snapshot.models:
        model = m.model
        for f in m.features:
            labels = (model, f.name)
            for family, get in stats:
                value = get(f)
                if value is not None:
                    family.add_metric(labels, value)
            detected.add_metric(labels, 1.0 if f.drift_detected else 0.0)
            samples.add_metric((*labels, "reference"), f.reference_samples)
            samples.add_metric((*labels, "current"), f.current_samples)
            if f.reference_missing_ratio is not None:
                missing.add_metric((*labels, "reference"), f.reference_missing_ratio)
            if f.current_missing_ratio is not None:
                missing.add_metric((*labels, "current"), f.current_missing_ratio)
            for signal, severity, value in f.thresholds.series(f.kind):
                threshold.add_metric((*labels, signal.value, severity.value), value)
            threshold.add_metric((*labels, Signal.DRIFT_QVALUE.value, DECISION), m.fdr_q)
            psi_threshold.add_metric((*labels, "warning"), f.thresholds.psi_warning)
            psi_threshold.add_metric((*labels, "critical"), f.thresholds.psi_critical)
            feature_ready.add_metric(labels, 1.0 if f.reference_ready else 0.0)
        for f in exported_features(m, policies.get(model, DEFAULT_DISTRIBUTIONS)):
            picture = f.distribution
            if picture is None:  # exported_features returns only features with one
                continue
            bins = [bin_label(i, name) for i, name in enumerate(picture.bins)]
            for window, shares in (("reference", picture.reference), ("current", picture.current)):
                if shares is not None:
                    for label, share in zip(bins, shares, strict=True):
                        bin_ratio.add_metric((model, f.name, window, label), share)

        drifted.add_metric((model,), m.drifted_features)
        n_features.add_metric((model,), len(m.features))
        evaluated_at.add_metric((model,), m.evaluated_at)
        if m.watermark is not None:
            watermark.add_metric((model,), m.watermark)
        has_reference = m.reference_id != ""
        if has_reference:
            reference_info.add_metric(
                (model, m.reference_id, m.reference_mode, m.model_version), 1.0
            )
        usable = has_reference and any(f.reference_ready for f in m.features)
        reference_ready.add_metric((model,), 1.0 if usable else 0.0)
        correlation.add(m)
        if m.discovery is not None:
            unmonitored.add_metric((model,), float(m.discovery.unmonitored))

    return [
        *(family for family, _ in stats),
        detected,
        samples,
        missing,
        threshold,
        psi_threshold,
        feature_ready,
        bin_ratio,
        drifted,
        n_features,
        evaluated_at,
        watermark,
        reference_info,
        reference_ready,
        *correlation.families(),
        unmonitored,
        *_segment_families(snapshot),
    ]


class _CorrelationFamilies:
    """The `driftmon_correlation_*` families; only models with a correlation result add to them.

    Per model: pairs tested, drifted pairs, the largest |change| (when a pair was tested);
    per pair, for the top pairs only (at most 10 per model, so bounded labels): the change
    and both windows' r.
    """

    def __init__(self) -> None:
        self.pairs = _family(CORRELATION_PAIRS)
        self.drifted = _family(CORRELATION_DRIFTED_PAIRS)
        self.max_change = _family(CORRELATION_MAX_CHANGE)
        self.change = _family(CORRELATION_CHANGE)
        self.coefficient = _family(CORRELATION_COEFFICIENT)

    def add(self, m: ModelEvaluation) -> None:
        """Add one model's correlation series (nothing when it has no correlation group)."""
        result = m.correlation
        if result is None:
            return
        self.pairs.add_metric((m.model,), result.pairs_evaluated)
        self.drifted.add_metric((m.model,), result.drifted_pairs)
        if result.max_abs_change is not None:
            self.max_change.add_metric((m.model,), result.max_abs_change)
        for pair in result.top_pairs:
            labels = (m.model, pair.feature_a, pair.feature_b)
            self.change.add_metric(labels, pair.change)
            self.coefficient.add_metric((*labels, "reference"), pair.reference_r)
            self.coefficient.add_metric((*labels, "current"), pair.current_r)

    def families(self) -> list[GaugeMetricFamily]:
        """Every family, in catalogue order (present even without samples)."""
        return [self.pairs, self.drifted, self.max_change, self.change, self.coefficient]


class DriftCollector:
    """A custom Collector that renders the latest published `Snapshot` and nothing else.

    The loop calls `publish()` after each evaluation; that is one attribute assignment,
    atomic under the GIL, so neither side takes a lock. `collect()` (called by scrapes on
    the HTTP threads) reads the reference once, so one scrape never mixes two evaluations.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        snapshot: Snapshot | None = None,
        *,
        distributions: Mapping[str, DistributionPolicy] | None = None,
    ) -> None:
        """Register on `registry`, starting from `snapshot` (default: an empty one).

        `distributions` maps a model to its distribution export policy (default for a model
        not in it: `DistributionPolicy()`, i.e. `drifting`).
        """
        self._snapshot = snapshot if snapshot is not None else Snapshot(created_at=0.0)
        self._distributions = dict(distributions or {})
        registry.register(self)

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot the next scrape will render."""
        return self._snapshot

    def publish(self, snapshot: Snapshot) -> None:
        """Make `snapshot` the one every later scrape renders (atomic reference swap)."""
        self._snapshot = snapshot

    def set_distributions(self, distributions: Mapping[str, DistributionPolicy]) -> None:
        """Replace the per-model distribution policies (a SIGHUP reload; one swap)."""
        self._distributions = dict(distributions)

    def describe(self) -> Iterator[Metric]:
        """The families this collector owns, without samples (lets the registry spot clashes)."""
        return iter(render_snapshot(Snapshot(created_at=0.0)))

    def collect(self) -> Iterator[Metric]:
        """Render the current snapshot (read once) as gauge families."""
        return iter(render_snapshot(self._snapshot, self._distributions))


def cardinality(
    n_models: int,
    n_features_total: int,
    n_topics: int,
    n_partitions: int,
    *,
    created_series: bool = True,
) -> int:
    """Upper bound on the series driftmon exports (excluding process/platform collectors).

    The distribution series are not included: add `distribution_cardinality` per model.

    Counts every optional statistic as present (a feature never has all 12: numeric features
    lack the categorical ones and vice versa, so the real number is lower). `n_features_total`
    is summed over models; `n_partitions` is the number of assigned partitions (lag series).
    `created_series` adds the `_created` series prometheus_client emits per counter child and
    histogram unless `PROMETHEUS_DISABLE_CREATED_SERIES` is set.

    Per feature: 12 optional statistics (p0 included) + drift_detected + 2 window_samples
    + 2 missing_ratio + 9 threshold series (8 of the feature's kind + the model's q)
    + 2 deprecated psi_threshold + reference_ready + invalid_values_total = 30.
    Per model: 8 gauges (unmonitored_features with `features: auto` only) +
    events_accepted_total + one reference_activations_total per cause.
    Per topic: consumed_total + one rejected_total per `RejectReason` + one
    kafka_unreadable_batches_total per `UnreadableReason` + last_record_timestamp.
    Fixed: 2 histograms of 13 buckets (+Inf, _sum, _count: 16 each), evaluations_total,
    one checkpoints_total per `CheckpointResult`, 2 offset_commits_total, one
    dead_letter_failures_total per `RejectReason`, one registry_records_rejected_total per
    `RegistryRejectReason`, last_evaluation_timestamp, build_info, ready, kafka_connected,
    evaluation_interval, one config_reloads_total per `ReloadResult`,
    config_last_reload_successful and its success timestamp, decode_worker_failures_total;
    the state topic's 3 gauges and one counter per commit result, claim result and state
    reject reason.
    """
    n_reasons = len(RejectReason)
    n_registry = len(RegistryRejectReason)
    n_causes = len(ACTIVATION_CAUSES)
    n_state = len(CommitResult) + len(ClaimResult) + len(StateRejectReason)
    n_results = len(CheckpointResult) + len(COMMIT_RESULTS)
    per_feature = len(_OPTIONAL_FEATURE_STATS) + 1 + 2 + 2 + _MAX_THRESHOLDS + 2 + 1 + 1
    per_model = 8 + 1 + n_causes
    n_unreadable = len(UnreadableReason)
    per_topic = 1 + n_reasons + n_unreadable + 1
    histograms = len(BATCH_DURATION_BUCKETS) + 3 + len(EVALUATION_DURATION_BUCKETS) + 3
    n_reloads = len(ReloadResult)
    fixed = (
        histograms + 1 + n_results + n_reasons + n_registry + 5 + n_reloads + 2 + 3 + n_state + 1
    )
    total = (
        per_feature * n_features_total
        + per_model * n_models
        + per_topic * n_topics
        + n_partitions
        + fixed
    )
    if created_series:
        counters = (
            n_features_total
            + n_models * (1 + n_causes)
            + n_topics * (1 + n_reasons + n_unreadable)
            + 1
            + n_results
            + n_reasons
            + n_registry
            + n_reloads
            + n_state
            + 1  # decode_worker_failures_total
        )
        total += counters + 2  # + the two histograms
    return total


def distribution_cardinality(n_features: int, policy: DistributionPolicy) -> int:
    """Upper bound on the `driftmon_feature_bin_ratio` series of one model with `n_features`.

    Exported features x 2 windows x MAX_BINS (13 numeric, at most 23 categorical), where the
    exported features are all of them (`all`), none (`none`) or at most min(n_features,
    limit) (`drifting`: the flagged ones and the `top` most drifting, capped at `limit`).
    """
    if policy.mode is DistributionExport.NONE:
        return 0
    exported = n_features
    if policy.mode is DistributionExport.DRIFTING:
        exported = min(n_features, policy.limit)
    return exported * 2 * MAX_BINS


_MAX_THRESHOLDS: Final = 1 + max(len(keys) for keys in THRESHOLD_KEYS.values())
"""Threshold series of the feature kind with the most, plus the model's q."""


Registry: TypeAlias = CollectorRegistry
"""The registry type, for modules that hold one but may not import prometheus_client."""


def new_registry() -> Registry:
    """A fresh registry for one daemon (no default process/platform collectors)."""
    return CollectorRegistry()
