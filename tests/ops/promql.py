"""PromQL helpers for the static ops tests: metric names, Grafana macros, syntax via promtool.

PromQL has no parse-only command in promtool 2.42, so `syntax_errors` writes every expression
as a recording rule of a temporary rules file and runs `promtool check rules` on it.
`metric_names` is a small lexer, not a parser: it strips string literals, label matchers,
range/subquery brackets and grouping clauses, then keeps the identifiers that are not
functions, aggregations, keywords or numbers. It is exact for the expressions this project
writes (tests/ops/test_promql_helpers.py pins its behaviour).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml

#: Every metric name driftmon exports (the README's metric table; the public API).
DRIFTMON_METRICS: frozenset[str] = frozenset(
    {
        # per (model, feature)
        "driftmon_feature_psi",
        "driftmon_feature_psi_pvalue",
        "driftmon_feature_ks_statistic",
        "driftmon_feature_ks_error_bound",
        "driftmon_feature_ks_pvalue",
        "driftmon_feature_chi2_pvalue",
        "driftmon_feature_tvd",
        "driftmon_feature_drift_qvalue",
        "driftmon_feature_out_of_range_ratio",
        "driftmon_feature_unseen_category_ratio",
        "driftmon_feature_new_category_pvalue",
        "driftmon_feature_reference_unseen_estimate",
        "driftmon_feature_drift_detected",
        "driftmon_feature_window_samples",
        "driftmon_feature_missing_ratio",
        "driftmon_feature_threshold",
        "driftmon_feature_psi_threshold",
        "driftmon_feature_bin_ratio",
        "driftmon_feature_reference_ready",
        "driftmon_feature_invalid_values_total",
        # per (model, segment[, feature]): models with segment_by
        "driftmon_segment_feature_drift_detected",
        "driftmon_segment_feature_drift_qvalue",
        "driftmon_segment_feature_ks_statistic",
        "driftmon_segment_feature_psi",
        "driftmon_segment_feature_tvd",
        "driftmon_segment_drifted_features",
        "driftmon_segment_window_events",
        "driftmon_segment_field_missing_events_total",
        # per model
        "driftmon_model_drifted_features",
        "driftmon_model_features",
        "driftmon_model_last_evaluation_timestamp_seconds",
        "driftmon_model_watermark_timestamp_seconds",
        "driftmon_reference_info",
        "driftmon_model_reference_ready",
        # per model with a correlation group
        "driftmon_correlation_pairs",
        "driftmon_correlation_drifted_pairs",
        "driftmon_correlation_max_change",
        "driftmon_correlation_change",
        "driftmon_correlation_coefficient",
        # pipeline
        "driftmon_records_consumed_total",
        "driftmon_records_rejected_total",
        "driftmon_kafka_unreadable_batches_total",
        "driftmon_dead_letter_failures_total",
        "driftmon_events_accepted_total",
        "driftmon_batch_duration_seconds",
        "driftmon_evaluation_duration_seconds",
        "driftmon_evaluations_total",
        "driftmon_checkpoints_total",
        "driftmon_offset_commits_total",
        "driftmon_decode_worker_failures_total",
        "driftmon_last_record_timestamp_seconds",
        "driftmon_last_evaluation_timestamp_seconds",
        "driftmon_consumer_lag",
        "driftmon_build_info",
        "driftmon_ready",
        "driftmon_kafka_connected",
        "driftmon_evaluation_interval_seconds",
        "driftmon_sample_ratio",
        # the reference registry (docs/registry.md)
        "driftmon_registry_records_rejected_total",
        "driftmon_reference_activations_total",
        # configuration reloads and feature discovery
        "driftmon_config_reloads_total",
        "driftmon_config_last_reload_successful",
        "driftmon_config_last_reload_success_timestamp_seconds",
        "driftmon_unmonitored_features",
    }
)

#: The fleet's state-backend series (issue 11; exported with `state.backend: kafka`). Their
#: names are fixed by the issue; the fleet alerts and dashboard panels read them. Until the
#: daemon's catalogue (monitor/metrics.py) defines one, it is accepted here as pending; once
#: defined, it belongs to DRIFTMON_METRICS like every other catalogue metric
#: (test_helpers.test_known_metrics_match_the_daemon_catalogue).
FLEET_STATE_METRICS: frozenset[str] = frozenset(
    {
        "driftmon_state_lag_records",
        "driftmon_state_commits_total",
        "driftmon_state_claims_total",
        "driftmon_partitions_owned",
        "driftmon_state_snapshot_age_seconds",
        "driftmon_state_records_rejected_total",
    }
)

#: Series a daemon exports only for a model that opts in (segment_by, a correlation group,
#: features: auto): a panel that reads only these has no data under the default config.
OPT_IN_METRICS: frozenset[str] = frozenset(
    {
        "driftmon_segment_feature_drift_detected",
        "driftmon_segment_feature_drift_qvalue",
        "driftmon_segment_feature_ks_statistic",
        "driftmon_segment_feature_psi",
        "driftmon_segment_feature_tvd",
        "driftmon_segment_drifted_features",
        "driftmon_segment_window_events",
        "driftmon_segment_field_missing_events_total",
        "driftmon_correlation_pairs",
        "driftmon_correlation_drifted_pairs",
        "driftmon_correlation_max_change",
        "driftmon_correlation_change",
        "driftmon_correlation_coefficient",
        "driftmon_unmonitored_features",
    }
)

#: The virtual feature of `reconstruction.enabled` (opt-in too).
RECONSTRUCTION_SELECTOR = 'feature="__reconstruction__"'


def reads_only_opt_in_series(expr: str) -> bool:
    """True when `expr` reads only opt-in series (OPT_IN_METRICS, or the reconstruction
    feature's), which a daemon without those options never exports."""
    names = metric_names(expr)
    return bool(names) and (names <= OPT_IN_METRICS or RECONSTRUCTION_SELECTOR in expr)


#: The histograms among them, whose _bucket/_sum/_count series are also valid names.
DRIFTMON_HISTOGRAMS: frozenset[str] = frozenset(
    {"driftmon_batch_duration_seconds", "driftmon_evaluation_duration_seconds"}
)

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

#: Grafana's built-in interval macros and the concrete values used to check expressions.
GRAFANA_MACROS: Mapping[str, str] = {
    "${__rate_interval}": "1m",
    "$__rate_interval": "1m",
    "${__interval}": "15s",
    "$__interval_ms": "15000",
    "$__interval": "15s",
    "${__range}": "1h",
    "$__range_s": "3600",
    "$__range_ms": "3600000",
    "$__range": "1h",
}

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "atan2",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:]|\s*\()")


#: Exported but deprecated: kept for one release, read by no shipped rule or dashboard.
DEPRECATED_METRICS: frozenset[str] = frozenset({"driftmon_feature_psi_threshold"})


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (identifiers that are not calls or keywords)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}


def is_driftmon_metric(name: str) -> bool:
    """True for an exported driftmon metric or a series of one of its histograms."""
    if name in DRIFTMON_METRICS or name in FLEET_STATE_METRICS:
        return True
    return any(
        name.endswith(suffix) and name.removesuffix(suffix) in DRIFTMON_HISTOGRAMS
        for suffix in HISTOGRAM_SUFFIXES
    )


def substitute_grafana(expr: str, variables: Mapping[str, str]) -> str:
    """Replace Grafana macros and `$var`, `${var}`, `${var:fmt}`, `[[var]]` by concrete values."""
    for macro in sorted(GRAFANA_MACROS, key=len, reverse=True):
        expr = expr.replace(macro, GRAFANA_MACROS[macro])
    for name, value in variables.items():
        pattern = rf"\$\{{{name}(?::[a-z]+)?\}}|\${name}\b|\[\[{name}\]\]"
        expr = re.sub(pattern, value.replace("\\", "\\\\"), expr)
    return expr


_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$"
)


def label_values_selector(query: str) -> tuple[str | None, str]:
    """Split a Grafana `label_values([selector,] label)` query into (selector, label)."""
    m = _LABEL_VALUES.match(query)
    if m is None:
        raise ValueError(f"not a label_values() query: {query!r}")
    return m.group("selector"), m.group("label")


def syntax_errors(promtool: str, exprs: Sequence[str]) -> list[str]:
    """promtool's complaints about each expression that does not parse (empty: all parse).

    All expressions are checked in one promtool run; only when that run fails is each one
    re-checked alone, so that every error names its expression.
    """
    if not exprs:
        return []
    ok, output = _check_as_rules(promtool, exprs)
    if ok:
        return []
    errors = []
    for expr in exprs:
        ok, output = _check_as_rules(promtool, [expr])
        if not ok:
            errors.append(f"{expr!r}: {output.strip()}")
    return errors or [output]


def _check_as_rules(promtool: str, exprs: Iterable[str]) -> tuple[bool, str]:
    rules = [{"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(exprs)]
    doc = {"groups": [{"name": "expressions", "rules": rules}]}
    with tempfile.TemporaryDirectory(prefix="promql-") as tmp:
        path = Path(tmp) / "exprs.rules.yml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        proc = subprocess.run(
            [promtool, "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    return proc.returncode == 0, proc.stdout + proc.stderr
