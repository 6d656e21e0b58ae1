"""Tests for monitor.metrics: the metric catalogue, PipelineMetrics and DriftCollector.

The golden file `golden/metrics_exposition.txt` is the public metric API. To rewrite it after
an intended change, run `DRIFTMON_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_metrics.py`
and review the diff line by line.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

import monitor
from monitor import metrics
from monitor.distribution import NUMERIC_BINS
from monitor.errors import CheckpointResult, RejectReason, UnreadableReason
from monitor.metrics import CATALOGUE, DriftCollector, PipelineMetrics, cardinality
from monitor.model import (
    Correction,
    CorrelationResult,
    DiscoveryStatus,
    Distribution,
    DistributionExport,
    DistributionPolicy,
    FeatureKind,
    FeatureResult,
    ModelEvaluation,
    PairChange,
    SegmentResult,
    Snapshot,
    Thresholds,
)
from tests.support.builders import (
    categorical,
    evaluation,
    full_numeric,
    numeric,
    snapshot,
    unevaluated,
)

GOLDEN = Path(__file__).parent / "golden" / "metrics_exposition.txt"

TOPICS = ("features", "features-eu")
FEATURES = {"fraud": ("amount", "country", "age"), "churn": ("tenure",)}

DRIFT_NAMES = {
    d.name
    for d in CATALOGUE
    if d.name.startswith(("driftmon_feature_", "driftmon_model_", "driftmon_reference_"))
    and d.name not in (metrics.FEATURE_INVALID_VALUES_TOTAL, metrics.REFERENCE_ACTIVATIONS_TOTAL)
}
OPTIONAL_STATS = {
    metrics.FEATURE_PSI: "psi",
    metrics.FEATURE_PSI_PVALUE: "psi_pvalue",
    metrics.FEATURE_KS_STATISTIC: "ks_statistic",
    metrics.FEATURE_KS_ERROR_BOUND: "ks_error_bound",
    metrics.FEATURE_KS_PVALUE: "ks_pvalue",
    metrics.FEATURE_CHI2_PVALUE: "chi2_pvalue",
    metrics.FEATURE_TVD: "tvd",
    metrics.FEATURE_DRIFT_QVALUE: "qvalue",
    metrics.FEATURE_OUT_OF_RANGE_RATIO: "out_of_range_ratio",
    metrics.FEATURE_UNSEEN_CATEGORY_RATIO: "unseen_category_ratio",
    metrics.FEATURE_NEW_CATEGORY_PVALUE: "new_category_pvalue",
    metrics.FEATURE_REFERENCE_UNSEEN_ESTIMATE: "reference_unseen_estimate",
}


# --- fixtures and builders ------------------------------------------------------------------


def amount() -> FeatureResult:
    """A numeric feature with every numeric statistic, drifting."""
    return numeric(
        "amount",
        current_samples=4_200,
        current_missing_ratio=0.015,
        psi=0.31,
        psi_pvalue=1e-12,
        ks_statistic=0.21,
        ks_error_bound=0.004,
        ks_pvalue=3.5e-9,
        out_of_range_ratio=0.02,
        qvalue=2e-11,
        drift_detected=True,
        drift_reasons=("ks", "psi"),
        distribution=Distribution(
            NUMERIC_BINS,
            (0.0, *(0.1,) * 10, 0.0, 0.0),
            (0.005, 0.05, 0.05, 0.05, 0.05, 0.1, 0.1, 0.1, 0.15, 0.15, 0.12, 0.01, 0.015),
        ),
    )


def country() -> FeatureResult:
    """A categorical feature with every categorical statistic, not drifting."""
    return categorical(
        "country",
        current_samples=4_100,
        reference_missing_ratio=0.001,
        psi=0.004,
        psi_pvalue=0.62,
        chi2_pvalue=0.48,
        tvd=0.011,
        unseen_category_ratio=0.003,
        new_category_pvalue=0.9,
        reference_unseen_estimate=0.002,
        qvalue=0.96,
        thresholds=Thresholds(psi_warning=0.2, psi_critical=0.5, tvd_decision=0.04),
        distribution=Distribution(
            ("GB", "(other)", 'say "hi"', "(other)", "(unseen)", "(missing)"),
            (0.5, 0.2, 0.1, 0.199, 0.0, 0.001),
            (0.49, 0.21, 0.1, 0.197, 0.003, 0.0),
        ),
    )


def age_under_min_samples() -> FeatureResult:
    """A numeric feature whose current window is under min_samples: no statistic at all."""
    return unevaluated(
        "age",
        reference_samples=50_000,
        current_samples=120,
        reference_missing_ratio=0.1,
        current_missing_ratio=0.25,
    )


def fixed_snapshot() -> Snapshot:
    """Two models: fraud (file reference; numeric, categorical, under-min) and churn (warm-up)."""
    fraud = evaluation(
        "fraud",
        amount(),
        country(),
        age_under_min_samples(),
        evaluated_at=1764180015.0,
        reference_id="sha256:0f3a9c",
        reference_mode="file",
        model_version="v7",
        watermark=1764180012.5,
        correlation=CorrelationResult(
            features=("amount", "age", "income"),
            pairs_evaluated=3,
            drifted_pairs=1,
            max_abs_change=0.25,
            top_pairs=(
                PairChange("amount", "income", 0.3, 0.55, 0.25, 1e-12, 3e-12, 9000, True),
                PairChange("amount", "age", 0.1, 0.05, -0.05, 0.2, 0.3, 9000, False),
            ),
        ),
    )
    churn = evaluation(
        "churn",
        unevaluated(
            "tenure", reference_ready=False, reference_note="warm-up in progress: 10/1000 events"
        ),
        evaluated_at=1764180015.0,
        correction=Correction.BONFERRONI,
        reference_mode="warmup",
        discovery=DiscoveryStatus(False, 0, 1, 3, False, ("plan", "region", "seats")),
    )
    return snapshot(fraud, churn)


def segmented_model() -> ModelEvaluation:
    """A model with `segment_by`: one drifting segment and OTHER, 4 events without the field."""
    gb = SegmentResult(
        "GB",
        30_000,
        2_500,
        (numeric("basket", ks_statistic=0.12, psi=0.08, qvalue=1e-9, drift_detected=True),),
    )
    other = SegmentResult("__other__", 20_000, 1_700, (unevaluated("basket"),))
    return replace(
        evaluation("shop", numeric("basket", ks_statistic=0.04, psi=0.01, qvalue=0.2)),
        reference_id="sha256:5e9b01",
        reference_mode="file",
        segment_by="features.country",
        segments=(gb, other),
        segment_field_missing=4,
    )


def uniform_snapshot(n_features: int, value: float) -> Snapshot:
    """One model whose n features all carry every statistic equal to `value`."""
    features = tuple(full_numeric(f"f{i}", value) for i in range(n_features))
    return snapshot(evaluation("m", *features, reference_id="r"))


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry per test (never the global one)."""
    return CollectorRegistry()


@pytest.fixture
def pipeline(registry: CollectorRegistry) -> PipelineMetrics:
    """Pipeline metrics over the two configured topics and the two configured models."""
    return PipelineMetrics(
        registry, topics=TOPICS, features=FEATURES, evaluation_interval_seconds=15.0
    )


@pytest.fixture
def collector(registry: CollectorRegistry) -> DriftCollector:
    """A drift collector on the same registry, starting from an empty snapshot."""
    return DriftCollector(registry)


def scrape(registry: CollectorRegistry) -> str:
    """The registry in the Prometheus text format."""
    return generate_latest(registry).decode("utf-8")


def metric_name(line: str) -> str:
    """The metric name a HELP, TYPE or sample line is about."""
    if line.startswith("# "):
        return line.split(" ", 3)[2]
    return re.split(r"[{ ]", line, maxsplit=1)[0]


def normalise(text: str) -> str:
    """Drop the `_created` families (wall-clock values) and pin the build version."""
    kept = [line for line in text.splitlines() if not metric_name(line).endswith("_created")]
    out = "\n".join(kept) + "\n"
    return out.replace(f'version="{monitor.__version__}"', 'version="VERSION"')


def sample_names(text: str) -> set[str]:
    """Names of all sample lines in an exposition."""
    return {metric_name(line) for line in text.splitlines() if not line.startswith("#")}


# --- the catalogue ---------------------------------------------------------------------------


class TestCatalogue:
    def test_names_follow_the_naming_rules(self) -> None:
        """Every name is unique, snake_case, prefixed driftmon_, and only counters end _total."""
        names = [d.name for d in CATALOGUE]
        assert len(names) == len(set(names))
        for d in CATALOGUE:
            assert re.fullmatch(r"driftmon_[a-z0-9_]+", d.name), d.name
            assert d.name.endswith("_total") == (d.type == "counter"), d.name
            assert not d.name.endswith(("_ms", "_milliseconds", "_percent")), d.name
            assert d.help.endswith(".") and (d.help[0].isupper() or d.help[0].isdigit()), d.name
            assert all(re.fullmatch(r"[a-z_]+", label) for label in d.labels), d.name

    def test_first_release_metrics_are_all_present(self) -> None:
        """Every metric of the first release (public API, never removed) is in the catalogue."""
        released = {
            "driftmon_feature_psi",
            "driftmon_feature_psi_pvalue",
            "driftmon_feature_ks_statistic",
            "driftmon_feature_ks_pvalue",
            "driftmon_feature_chi2_pvalue",
            "driftmon_feature_tvd",
            "driftmon_feature_drift_qvalue",
            "driftmon_feature_drift_detected",
            "driftmon_feature_window_samples",
            "driftmon_feature_missing_ratio",
            "driftmon_feature_out_of_range_ratio",
            "driftmon_feature_unseen_category_ratio",
            "driftmon_feature_psi_threshold",
            "driftmon_feature_invalid_values_total",
            "driftmon_model_drifted_features",
            "driftmon_model_features",
            "driftmon_reference_info",
            "driftmon_records_consumed_total",
            "driftmon_records_rejected_total",
            "driftmon_batch_duration_seconds",
            "driftmon_evaluation_duration_seconds",
            "driftmon_evaluations_total",
            "driftmon_checkpoints_total",
            "driftmon_offset_commits_total",
            "driftmon_last_record_timestamp_seconds",
            "driftmon_last_evaluation_timestamp_seconds",
            "driftmon_consumer_lag",
            "driftmon_build_info",
        }
        assert released <= {d.name for d in CATALOGUE}

    def test_catalogue_describes_the_exposition_exactly(
        self, registry: CollectorRegistry, pipeline: PipelineMetrics, collector: DriftCollector
    ) -> None:
        """Each exposed family has the catalogue's type, HELP and label names, and vice versa."""
        collector.publish(fixed_snapshot())
        pipeline.last_record_timestamp("features", 10.0)
        pipeline.set_lag({("features", 0): 3})
        by_name = {d.name: d for d in CATALOGUE}
        seen = set()
        for family in text_string_to_metric_families(scrape(registry)):
            if family.name.endswith("_created"):
                continue
            name = family.name + ("_total" if family.type == "counter" else "")
            d = by_name[name]
            seen.add(name)
            assert (family.type, family.documentation) == (d.type, d.help)
            for s in family.samples:
                assert set(s.labels) - {"le"} == set(d.labels), (s.name, s.labels)
        assert seen == set(by_name)


# --- the golden exposition --------------------------------------------------------------------


class TestGoldenExposition:
    def test_exposition_matches_golden_file(
        self, registry: CollectorRegistry, pipeline: PipelineMetrics, collector: DriftCollector
    ) -> None:
        """The full exposition of a fixed pipeline state and snapshot equals the golden file."""
        pipeline.record_consumed("features", 120)
        pipeline.record_rejected("features", RejectReason.TOO_LATE, 3)
        pipeline.dead_letter_failed(RejectReason.TOO_LARGE)
        pipeline.unreadable_batches({("features", UnreadableReason.CRC_MISMATCH): 2})
        pipeline.record_accepted("fraud", 117)
        pipeline.add_invalid_values("fraud", "amount", 2)
        pipeline.observe_batch(0.003)
        pipeline.observe_evaluation(0.02)
        pipeline.evaluation_done(1764180015.5)
        pipeline.checkpoint(CheckpointResult.SUCCESS)
        pipeline.offset_commit(CheckpointResult.FAILURE)
        pipeline.last_record_timestamp("features", 1764180012.5)
        pipeline.set_lag({("features", 0): 7, ("features", 1): 0})
        pipeline.set_ready(True)
        pipeline.set_kafka_connected(True)
        collector.publish(snapshot(*fixed_snapshot().models, segmented_model()))

        actual = normalise(scrape(registry))
        if os.environ.get("DRIFTMON_UPDATE_GOLDEN"):
            GOLDEN.parent.mkdir(exist_ok=True)
            GOLDEN.write_text(actual)
        assert actual == GOLDEN.read_text()

    def test_openmetrics_rendering_parses(
        self, registry: CollectorRegistry, pipeline: PipelineMetrics, collector: DriftCollector
    ) -> None:
        """The OpenMetrics rendering of the same registry is accepted by the OpenMetrics parser."""
        collector.publish(fixed_snapshot())
        text = generate_openmetrics(registry).decode("utf-8")  # type: ignore[no-untyped-call]
        families = {f.name for f in parse_openmetrics(text)}  # type: ignore[no-untyped-call]
        assert "driftmon_records_rejected" in families
        assert "driftmon_feature_psi" in families


# --- PipelineMetrics ----------------------------------------------------------------------


class TestPipelineMetrics:
    def test_counters_start_at_zero_over_closed_label_sets(
        self, registry: CollectorRegistry, pipeline: PipelineMetrics
    ) -> None:
        """Before any event every topic x reason, result, model and feature series exists at 0."""
        get = registry.get_sample_value
        for topic in TOPICS:
            assert get(metrics.RECORDS_CONSUMED_TOTAL, {"topic": topic}) == 0
            for reason in RejectReason:
                labels = {"topic": topic, "reason": reason.value}
                assert get(metrics.RECORDS_REJECTED_TOTAL, labels) == 0
        for result in CheckpointResult:
            assert get(metrics.CHECKPOINTS_TOTAL, {"result": result.value}) == 0
        for result in metrics.COMMIT_RESULTS:
            assert get(metrics.OFFSET_COMMITS_TOTAL, {"result": result.value}) == 0
        for model, features in FEATURES.items():
            assert get(metrics.EVENTS_ACCEPTED_TOTAL, {"model": model}) == 0
            for feature in features:
                labels = {"model": model, "feature": feature}
                assert get(metrics.FEATURE_INVALID_VALUES_TOTAL, labels) == 0
        assert get(metrics.EVALUATIONS_TOTAL) == 0
        assert get(metrics.READY) == 0
        assert get(metrics.KAFKA_CONNECTED) == 0

    def test_counts_accumulate_per_label(
        self, registry: CollectorRegistry, pipeline: PipelineMetrics
    ) -> None:
        """Repeated calls add up on their own series and leave the others alone."""
        pipeline.record_consumed("features", 5)
        pipeline.record_consumed("features", 7)
        pipeline.record_rejected("features-eu", RejectReason.INVALID_JSON, 2)
        pipeline.record_rejected("features-eu", RejectReason.INVALID_JSON)
        pipeline.add_invalid_values("fraud", "country", 4)
        pipeline.checkpoint(CheckpointResult.FAILURE)
        get = registry.get_sample_value
        assert get(metrics.RECORDS_CONSUMED_TOTAL, {"topic": "features"}) == 12
        assert get(metrics.RECORDS_CONSUMED_TOTAL, {"topic": "features-eu"}) == 0
        rejected = {"topic": "features-eu", "reason": "invalid_json"}
        assert get(metrics.RECORDS_REJECTED_TOTAL, rejected) == 3
        assert get(metrics.RECORDS_REJECTED_TOTAL, {**rejected, "topic": "features"}) == 0
        invalid = {"model": "fraud", "feature": "country"}
        assert get(metrics.FEATURE_INVALID_VALUES_TOTAL, invalid) == 4
        assert get(metrics.CHECKPOINTS_TOTAL, {"result": "failure"}) == 1
        assert get(metrics.CHECKPOINTS_TOTAL, {"result": "success"}) == 0

    def test_unconfigured_label_values_are_refused(self, pipeline: PipelineMetrics) -> None:
        """A topic, model or feature outside the configuration raises instead of adding a series."""
        with pytest.raises(KeyError):
            pipeline.record_consumed("other-topic", 1)
        with pytest.raises(KeyError):
            pipeline.record_accepted("other-model", 1)
        with pytest.raises(KeyError):
            pipeline.add_invalid_values("fraud", "tenure", 1)
        with pytest.raises(KeyError):
            pipeline.last_record_timestamp("other-topic", 1.0)

    def test_lag_series_of_a_revoked_partition_disappear(
        self, registry: CollectorRegistry, pipeline: PipelineMetrics
    ) -> None:
        """A partition missing from the next set_lag call loses its lag series."""
        pipeline.set_lag({("features", 0): 10, ("features", 1): 4, ("features-eu", 0): 1})
        pipeline.set_lag({("features", 1): 2, ("features-eu", 0): 0})
        get = registry.get_sample_value
        assert get(metrics.CONSUMER_LAG, {"topic": "features", "partition": "0"}) is None
        assert get(metrics.CONSUMER_LAG, {"topic": "features", "partition": "1"}) == 2
        assert get(metrics.CONSUMER_LAG, {"topic": "features-eu", "partition": "0"}) == 0
        pipeline.set_lag({})
        assert metrics.CONSUMER_LAG not in sample_names(scrape(registry))

    def test_last_record_timestamp_never_moves_backwards(
        self, registry: CollectorRegistry, pipeline: PipelineMetrics
    ) -> None:
        """An older batch after a newer one leaves the newest event time in place."""
        labels = {"topic": "features"}
        assert registry.get_sample_value(metrics.LAST_RECORD_TIMESTAMP_SECONDS, labels) is None
        pipeline.last_record_timestamp("features", 200.0)
        pipeline.last_record_timestamp("features", 150.0)
        assert registry.get_sample_value(metrics.LAST_RECORD_TIMESTAMP_SECONDS, labels) == 200.0
        pipeline.last_record_timestamp("features", 250.0)
        assert registry.get_sample_value(metrics.LAST_RECORD_TIMESTAMP_SECONDS, labels) == 250.0

    def test_evaluation_done_counts_and_stamps(
        self, registry: CollectorRegistry, pipeline: PipelineMetrics
    ) -> None:
        """Each finished evaluation adds one and records its wall time."""
        pipeline.evaluation_done(100.0)
        pipeline.evaluation_done(115.0)
        assert registry.get_sample_value(metrics.EVALUATIONS_TOTAL) == 2
        assert registry.get_sample_value(metrics.LAST_EVALUATION_TIMESTAMP_SECONDS) == 115.0

    def test_batch_buckets_resolve_half_a_millisecond_to_five_seconds(
        self, registry: CollectorRegistry, pipeline: PipelineMetrics
    ) -> None:
        """Durations of 0.4 ms, 0.7 ms and 4 s land in distinct buckets under +Inf."""
        for seconds in (0.0004, 0.0007, 4.0):
            pipeline.observe_batch(seconds)

        def bucket(le: str) -> float | None:
            name = metrics.BATCH_DURATION_SECONDS + "_bucket"
            return registry.get_sample_value(name, {"le": le})

        assert (bucket("0.0005"), bucket("0.001"), bucket("2.5"), bucket("5.0")) == (1, 2, 2, 3)
        assert registry.get_sample_value(metrics.BATCH_DURATION_SECONDS + "_count") == 3

    def test_flags_build_info_and_interval(
        self, registry: CollectorRegistry, pipeline: PipelineMetrics
    ) -> None:
        """Ready and connected follow their setters; build info and interval are constant."""
        pipeline.set_ready(True)
        pipeline.set_kafka_connected(True)
        pipeline.set_kafka_connected(False)
        get = registry.get_sample_value
        assert (get(metrics.READY), get(metrics.KAFKA_CONNECTED)) == (1, 0)
        assert get(metrics.BUILD_INFO, {"version": monitor.__version__}) == 1
        assert get(metrics.EVALUATION_INTERVAL_SECONDS) == 15.0


# --- DriftCollector -------------------------------------------------------------------------


class TestDriftCollector:
    def test_empty_snapshot_yields_typed_families_without_samples(
        self, registry: CollectorRegistry, collector: DriftCollector
    ) -> None:
        """Before the first evaluation every drift family is typed but has no sample."""
        text = scrape(registry)
        for name in DRIFT_NAMES:
            assert f"# TYPE {name} gauge\n" in text
        assert not sample_names(text) & DRIFT_NAMES

    def test_none_statistics_produce_no_series(
        self, registry: CollectorRegistry, collector: DriftCollector
    ) -> None:
        """A feature under min_samples exports its counts, decision and thresholds, no statistic."""
        collector.publish(fixed_snapshot())
        age = {"model": "fraud", "feature": "age"}
        get = registry.get_sample_value
        for name in OPTIONAL_STATS:
            assert get(name, age) is None, name
        assert get(metrics.FEATURE_DRIFT_DETECTED, age) == 0
        assert get(metrics.FEATURE_WINDOW_SAMPLES, {**age, "window": "current"}) == 120
        assert get(metrics.FEATURE_WINDOW_SAMPLES, {**age, "window": "reference"}) == 50_000
        assert get(metrics.FEATURE_MISSING_RATIO, {**age, "window": "current"}) == 0.25
        assert get(metrics.FEATURE_PSI_THRESHOLD, {**age, "severity": "warning"}) == 0.1
        assert get(metrics.FEATURE_PSI_THRESHOLD, {**age, "severity": "critical"}) == 0.25
        psi_critical = {**age, "signal": "psi", "severity": "critical"}
        assert get(metrics.FEATURE_THRESHOLD, psi_critical) == 0.25

    def test_every_threshold_of_the_features_kind_is_a_series(
        self, registry: CollectorRegistry, collector: DriftCollector
    ) -> None:
        """Each feature exports exactly its kind's thresholds and the model's q, with values."""
        collector.publish(fixed_snapshot())
        text = scrape(registry)
        found: dict[str, dict[tuple[str, str], float]] = {}
        for family in text_string_to_metric_families(text):
            if family.name == metrics.FEATURE_THRESHOLD:
                for s in family.samples:
                    key = f"{s.labels['model']}/{s.labels['feature']}"
                    found.setdefault(key, {})[(s.labels["signal"], s.labels["severity"])] = s.value
        numeric = {
            ("psi", "warning"): 0.1,
            ("psi", "critical"): 0.25,
            ("psi", "decision"): 0.02,
            ("ks", "critical"): 0.2,
            ("ks", "decision"): 0.05,
            ("missing_ratio_change", "warning"): 0.1,
            ("missing_ratio_change", "decision"): 0.05,
            ("out_of_range_ratio", "warning"): 0.05,
            ("drift_qvalue", "decision"): 1e-3,
        }
        categorical = {
            ("psi", "warning"): 0.2,
            ("psi", "critical"): 0.5,
            ("tvd", "decision"): 0.04,
            ("missing_ratio_change", "warning"): 0.1,
            ("missing_ratio_change", "decision"): 0.05,
            ("unseen_category_ratio", "warning"): 0.01,
            ("unseen_category_ratio", "decision"): 0.01,
            ("new_category_pvalue", "warning"): 1e-5,
            ("drift_qvalue", "decision"): 1e-3,
        }
        assert found == {
            "fraud/amount": numeric,
            "fraud/country": categorical,
            "fraud/age": numeric,
            "churn/tenure": numeric,
        }

    def test_statistics_are_exported_verbatim(
        self, registry: CollectorRegistry, collector: DriftCollector
    ) -> None:
        """Every non-None statistic of every feature is exported with exactly its value."""
        snapshot = fixed_snapshot()
        collector.publish(snapshot)
        exported = 0
        for model in snapshot.models:
            for f in model.features:
                labels = {"model": model.model, "feature": f.name}
                for name, attr in OPTIONAL_STATS.items():
                    value = getattr(f, attr)
                    assert registry.get_sample_value(name, labels) == value, (name, labels)
                    exported += value is not None
        assert exported == 7 + 8  # amount (numeric) and country (categorical, with its p0)

    def test_model_series_follow_the_evaluation(
        self, registry: CollectorRegistry, collector: DriftCollector
    ) -> None:
        """Per-model gauges count features, drift and readiness; info only with a reference."""
        collector.publish(fixed_snapshot())
        get = registry.get_sample_value
        fraud, churn = {"model": "fraud"}, {"model": "churn"}
        assert (get(metrics.MODEL_FEATURES, fraud), get(metrics.MODEL_FEATURES, churn)) == (3, 1)
        assert get(metrics.MODEL_DRIFTED_FEATURES, fraud) == 1
        assert get(metrics.MODEL_DRIFTED_FEATURES, churn) == 0
        assert get(metrics.MODEL_REFERENCE_READY, fraud) == 1
        assert get(metrics.MODEL_REFERENCE_READY, churn) == 0
        assert get(metrics.MODEL_WATERMARK_TIMESTAMP_SECONDS, fraud) == 1764180012.5
        assert get(metrics.MODEL_WATERMARK_TIMESTAMP_SECONDS, churn) is None
        assert get(metrics.MODEL_LAST_EVALUATION_TIMESTAMP_SECONDS, churn) == 1764180015.0
        info = {"model": "fraud", "reference_id": "sha256:0f3a9c"}
        assert get(metrics.REFERENCE_INFO, {**info, "mode": "file", "model_version": "v7"}) == 1
        info_lines = [
            line
            for line in scrape(registry).splitlines()
            if line.startswith(metrics.REFERENCE_INFO + "{")
        ]
        assert len(info_lines) == 1

    def test_publishing_changes_the_next_scrape(
        self, registry: CollectorRegistry, collector: DriftCollector
    ) -> None:
        """A newly published snapshot is what the next scrape shows; dropped features vanish."""
        collector.publish(fixed_snapshot())
        amount_labels = {"model": "fraud", "feature": "amount"}
        assert registry.get_sample_value(metrics.FEATURE_PSI, amount_labels) == 0.31
        old = fixed_snapshot().models[0]
        newer = replace(old, features=(replace(amount(), psi=0.05),))
        collector.publish(snapshot(newer, created_at=2.0))
        assert collector.snapshot.created_at == 2.0
        assert registry.get_sample_value(metrics.FEATURE_PSI, amount_labels) == 0.05
        country_labels = {"model": "fraud", "feature": "country"}
        assert registry.get_sample_value(metrics.FEATURE_PSI, country_labels) is None
        assert registry.get_sample_value(metrics.MODEL_FEATURES, {"model": "churn"}) is None

    def test_a_scrape_never_mixes_two_snapshots(
        self, registry: CollectorRegistry, collector: DriftCollector
    ) -> None:
        """While another thread keeps publishing, each scrape shows one snapshot's values only."""
        snapshots = (uniform_snapshot(50, 1.0), uniform_snapshot(50, 2.0))
        stop = threading.Event()

        def publish_forever() -> None:
            i = 0
            while not stop.is_set():
                collector.publish(snapshots[i % 2])
                i += 1

        publisher = threading.Thread(target=publish_forever)
        publisher.start()
        try:
            seen = set()
            for _ in range(40):
                text = scrape(registry)
                values = {
                    line.rsplit(" ", 1)[1]
                    for line in text.splitlines()
                    if line.startswith(metrics.FEATURE_PSI + "{")
                }
                assert len(values) == 1, values
                seen |= values
        finally:
            stop.set()
            publisher.join()
        assert seen <= {"1.0", "2.0"}

    def test_a_large_snapshot_renders_every_series(
        self, registry: CollectorRegistry, collector: DriftCollector
    ) -> None:
        """collect() over 2,000 fully populated features renders 29 series each (its time is
        measured in bench/, not asserted here)."""
        collector.publish(uniform_snapshot(2000, 0.5))
        families = list(collector.collect())
        assert sum(len(f.samples) for f in families) == 2000 * 29 + 5

    def test_a_second_collector_on_the_same_registry_is_refused(
        self, registry: CollectorRegistry, collector: DriftCollector
    ) -> None:
        """describe() names the families, so a duplicate registration fails loudly."""
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            DriftCollector(registry)


# --- cardinality ----------------------------------------------------------------------------


class TestCardinality:
    def test_matches_a_fully_populated_registry(self, registry: CollectorRegistry) -> None:
        """The budget formula equals the series count when every optional series is present."""
        topics = ("a", "b", "c")
        features = {"m1": ("x", "y"), "m2": ("x", "y", "z", "w")}
        pipeline = PipelineMetrics(
            registry, topics=topics, features=features, evaluation_interval_seconds=15.0
        )
        collector = DriftCollector(registry)
        models = tuple(
            evaluation(
                m,
                *(full_numeric(f, 0.1) for f in fs),
                reference_id="r",
                watermark=1.0,
                discovery=DiscoveryStatus(False, 0, len(fs), 0),
            )
            for m, fs in features.items()
        )
        collector.publish(snapshot(*models))
        for topic in topics:
            pipeline.last_record_timestamp(topic, 1.0)
        pipeline.set_lag({("a", 0): 1, ("a", 1): 1, ("b", 0): 1, ("c", 0): 1, ("c", 5): 1})

        lines = [line for line in scrape(registry).splitlines() if not line.startswith("#")]
        created = [line for line in lines if metric_name(line).endswith("_created")]
        budget = cardinality(2, 6, 3, 5, created_series=False)
        assert len(lines) - len(created) == budget
        if created:  # unless PROMETHEUS_DISABLE_CREATED_SERIES is set
            assert len(lines) == cardinality(2, 6, 3, 5)


# --- distribution series ---------------------------------------------------------------------


def _pictured(name: str, psi: float, drifted: bool, kind: FeatureKind) -> FeatureResult:
    """A feature with a distribution of the largest size its kind can have."""
    if kind is FeatureKind.NUMERIC:
        bins: tuple[str, ...] = NUMERIC_BINS
    else:
        bins = (*(f"c{i}" for i in range(20)), "(other)", "(unseen)", "(missing)")
    shares = (1.0 / len(bins),) * len(bins)
    return replace(
        full_numeric(name, psi),
        kind=kind,
        drift_detected=drifted,
        distribution=Distribution(bins, shares, shares),
    )


def _bin_series(registry: CollectorRegistry) -> list[dict[str, str]]:
    return [
        s.labels
        for family in text_string_to_metric_families(scrape(registry))
        if family.name == metrics.FEATURE_BIN_RATIO
        for s in family.samples
    ]


class TestDistributionSeries:
    @pytest.mark.parametrize("kind", [FeatureKind.NUMERIC, FeatureKind.CATEGORICAL])
    def test_1000_flagged_features_stay_within_the_default_budget(
        self, registry: CollectorRegistry, kind: FeatureKind
    ) -> None:
        """1,000 configured features, all flagged, default policy: series within the budget."""
        collector = DriftCollector(registry)
        features = tuple(_pictured(f"f{i:04d}", 1.0 + i, True, kind) for i in range(1000))
        collector.publish(snapshot(evaluation("m", *features, reference_id="r")))

        series = _bin_series(registry)
        budget = metrics.distribution_cardinality(1000, DistributionPolicy())
        assert budget == 20 * 2 * 23 == 920
        bins = 13 if kind is FeatureKind.NUMERIC else 23
        assert len(series) == 20 * 2 * bins <= budget
        # the 20 most drifting (largest PSI) of the flagged ones
        assert {s["feature"] for s in series} == {f"f{i:04d}" for i in range(980, 1000)}

    def test_each_model_exports_by_its_own_policy(self, registry: CollectorRegistry) -> None:
        """`all` exports every feature, `none` none, `drifting` flagged + top N only."""
        policies = {
            "everything": DistributionPolicy(DistributionExport.ALL),
            "nothing": DistributionPolicy(DistributionExport.NONE),
            "some": DistributionPolicy(DistributionExport.DRIFTING, top=2, limit=20),
        }
        collector = DriftCollector(registry, distributions=policies)
        features = [_pictured(f"f{i}", i / 10, i == 0, FeatureKind.NUMERIC) for i in range(8)]
        collector.publish(snapshot(*(evaluation(name, *features) for name in policies)))

        exported: dict[str, set[str]] = {name: set() for name in policies}
        for labels in _bin_series(registry):
            exported[labels["model"]].add(labels["feature"])
        assert exported == {
            "everything": {f"f{i}" for i in range(8)},
            "nothing": set(),
            "some": {"f0", "f7", "f6"},
        }

    def test_bin_labels_are_unique_and_sort_in_bin_order(self, registry: CollectorRegistry) -> None:
        """Categories named like the special bins still give unique labels, in bin order."""
        collector = DriftCollector(registry)
        bins = ("(other)", "(missing)", "01 p0-10", "(other)", "(unseen)", "(missing)")
        shares = (0.2, 0.2, 0.2, 0.2, 0.1, 0.1)
        feature = replace(
            full_numeric("c", 0.5),
            drift_detected=True,
            distribution=Distribution(bins, shares, None),
        )
        collector.publish(snapshot(evaluation("m", feature)))

        series = _bin_series(registry)
        labels = [s["bin"] for s in series]
        assert {s["window"] for s in series} == {"reference"}  # no current shares: no series
        assert len(set(labels)) == len(labels) == 6
        assert labels == sorted(labels)
        assert labels[0] == "00 (other)" and labels[3] == "03 (other)"


def test_a_model_added_by_a_reload_counts_activations_and_a_removed_one_loses_them(
    registry: CollectorRegistry, pipeline: PipelineMetrics
) -> None:
    """A reload (set_features) opens an added model's activation series, closes a removed one's."""
    name = "driftmon_reference_activations_total"
    pipeline.set_features({"churn": ("tenure",), "credit": ("score",)})
    pipeline.reference_activated("credit", "operator")
    assert registry.get_sample_value(name, {"model": "credit", "cause": "operator"}) == 1.0
    assert registry.get_sample_value(name, {"model": "fraud", "cause": "operator"}) is None
    pipeline.set_sample_rates({"credit": 0.5})
    ratio = "driftmon_sample_ratio"
    assert registry.get_sample_value(ratio, {"model": "credit"}) == 0.5
    assert registry.get_sample_value(ratio, {"model": "fraud"}) is None
