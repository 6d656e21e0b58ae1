"""Static tests of deploy/prometheus: promtool checks, rule unit tests, rule conventions."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.ops_services import (
    DASHBOARDS,
    PROMETHEUS_CONFIG,
    RULES_FILE,
    RULES_TEST_FILE,
    RUNBOOK,
    assert_tool_ok,
    load_yaml,
    run_tool,
    shipped_alert_rules,
    write_fast_rules,
)

from .promql import is_driftmon_metric, metric_names

RUNBOOK_BASE = "https://github.com/driftmon/driftmon/blob/main/docs/runbook.md"
SEVERITIES = {"critical", "warning"}
CATEGORIES = {"drift", "data_quality", "pipeline"}
#: Series the rules may use besides driftmon's own: `up` is written by Prometheus per target.
PROMETHEUS_SERIES = {"up"}

EXPECTED_ALERTS = {
    "DriftmonFeatureDrift": "warning",
    "DriftmonFeaturePsiCritical": "critical",
    "DriftmonFeatureKsCritical": "critical",
    "DriftmonModelWideDrift": "critical",
    "DriftmonCorrelationDrift": "warning",
    "DriftmonSegmentDrift": "warning",
    "DriftmonFeatureMissingIncrease": "warning",
    "DriftmonFeatureOutOfRange": "warning",
    "DriftmonFeatureNewCategories": "warning",
    "DriftmonDown": "critical",
    "DriftmonNotEvaluating": "critical",
    "DriftmonStreamStalled": "warning",
    "DriftmonConsumerLagGrowing": "warning",
    "DriftmonHighRejectRate": "warning",
    "DriftmonUnreadableBatches": "warning",
    "DriftmonCheckpointFailing": "warning",
    "DriftmonOffsetCommitFailing": "warning",
    "DriftmonDecodeWorkerFailing": "warning",
    "DriftmonNoReference": "warning",
    "DriftmonFeatureNoReference": "warning",
    "DriftmonCheckpointCorrupt": "warning",
    "DriftmonConfigReloadFailed": "warning",
    "DriftmonNotReady": "warning",
    "DriftmonReplicasDisagree": "warning",
    "DriftmonStateLagHigh": "warning",
    "DriftmonStateSnapshotStale": "warning",
    "DriftmonStateCommitsRejected": "warning",
    "DriftmonStateRecordsRejected": "warning",
    "DriftmonReplicaIdle": "warning",
}

ALERTS = shipped_alert_rules()


def all_rules() -> list[dict[str, Any]]:
    """Every recording and alerting rule of the shipped file."""
    return [r for g in load_yaml(RULES_FILE)["groups"] for r in g["rules"]]


def test_rules_file_passes_promtool_check() -> None:
    """`promtool check rules` accepts the shipped rules, templates included."""
    output = assert_tool_ok(run_tool(["promtool", "check", "rules", RULES_FILE]))
    assert f"SUCCESS: {len(all_rules())} rules found" in output


def test_rule_unit_tests_pass() -> None:
    """`promtool test rules` passes every unit test of driftmon.rules.test.yml."""
    proc = run_tool(["promtool", "test", "rules", RULES_TEST_FILE.name], cwd=RULES_TEST_FILE.parent)
    assert "SUCCESS" in assert_tool_ok(proc)


def test_rule_unit_tests_detect_a_wrong_expectation(tmp_path: Path) -> None:
    """A copy of the unit tests with one altered annotation fails, so the tests can fail."""
    (tmp_path / RULES_FILE.name).write_text(RULES_FILE.read_text())
    text = RULES_TEST_FILE.read_text()
    assert "KS D 0.120)" in text
    (tmp_path / "broken.test.yml").write_text(text.replace("KS D 0.120)", "KS D 0.121)", 1))
    proc = run_tool(["promtool", "test", "rules", "broken.test.yml"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "DriftmonFeatureDrift" in proc.stdout + proc.stderr


def test_the_expected_alerts_exist_with_their_severity() -> None:
    """The rules file defines exactly the documented alerts, each with its severity."""
    assert {name: r["labels"]["severity"] for name, r in ALERTS.items()} == EXPECTED_ALERTS


@pytest.mark.parametrize("alertname", sorted(EXPECTED_ALERTS))
def test_alert_carries_labels_annotations_and_runbook(alertname: str) -> None:
    """Each alert has severity, category, a `for:`, summary, description and its runbook URL."""
    rule = ALERTS[alertname]
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"]["category"] in CATEGORIES
    assert re.fullmatch(r"\d+[smh]", rule["for"]), rule.get("for")
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{alertname.lower()}"
    assert len(annotations["summary"]) < 140
    assert "First " in annotations["description"], "the description must say where to look first"


def test_rules_use_only_exported_metrics() -> None:
    """Every metric named in a rule expression is exported by driftmon (or is `up`)."""
    used = {name for r in all_rules() for name in metric_names(r["expr"])}
    unknown = {n for n in used if not is_driftmon_metric(n) and n not in PROMETHEUS_SERIES}
    assert unknown == set()
    assert "driftmon_feature_threshold" in used
    assert "driftmon_feature_psi_threshold" not in used  # deprecated: no shipped rule reads it


#: Per-feature alerts -> the (signal, severity) threshold series each compares with.
THRESHOLD_ALERTS = {
    "DriftmonFeaturePsiCritical": [("psi", "critical")],
    "DriftmonFeatureKsCritical": [("ks", "critical")],
    "DriftmonFeatureMissingIncrease": [("missing_ratio_change", "warning")],
    "DriftmonFeatureOutOfRange": [("out_of_range_ratio", "warning")],
    "DriftmonFeatureNewCategories": [
        ("unseen_category_ratio", "warning"),
        ("new_category_pvalue", "warning"),
    ],
}


@pytest.mark.parametrize("alertname", sorted(THRESHOLD_ALERTS))
def test_threshold_alerts_compare_with_the_features_threshold_series(alertname: str) -> None:
    """Each per-feature threshold alert compares its signal with its own threshold series
    (NewCategories: the threshold plus the reference's p0), both aggregated over replicas and
    matched on (namespace, job, model, feature), and holds no numeric threshold literal."""
    expr = " ".join(ALERTS[alertname]["expr"].split())
    for signal, severity in THRESHOLD_ALERTS[alertname]:
        series = f'driftmon_feature_threshold{{signal="{signal}",severity="{severity}"}}'
        assert re.search(
            rf"[<>] on\({FLEET_KEY}\) (?:\( )?(?:max|min) by \({FLEET_KEY}\) \("
            + re.escape(series),
            expr,
        )
    without_decision = expr.replace("(driftmon_feature_drift_detected) == 1", "")
    assert re.findall(r"[<>]=?\s*[0-9.]", without_decision) == []
    assert set(metric_names(expr)) >= {"driftmon_feature_threshold"}


#: The labels the drift, data-quality and reference alerts keep when they aggregate over the
#: replicas of a fleet: no instance (nor pod), so N replicas raise one alert.
FLEET_KEY = "namespace, job, model, feature"

#: Alerts about the model/feature statistics every replica of a fleet exports identically.
FLEET_AGGREGATED = {
    "DriftmonFeatureDrift",
    "DriftmonFeaturePsiCritical",
    "DriftmonFeatureKsCritical",
    "DriftmonModelWideDrift",
    "DriftmonSegmentDrift",
    "DriftmonFeatureMissingIncrease",
    "DriftmonFeatureOutOfRange",
    "DriftmonFeatureNewCategories",
    "DriftmonNoReference",
    "DriftmonFeatureNoReference",
}


@pytest.mark.parametrize("alertname", sorted(FLEET_AGGREGATED))
def test_statistic_alerts_aggregate_over_replicas(alertname: str) -> None:
    """Every series a statistic alert reads is aggregated by (namespace, job, model[, segment]
    [, feature]),
    never matched per instance, and its description queries select no instance."""
    rule = ALERTS[alertname]
    expr = " ".join(rule["expr"].split())
    assert "instance" not in expr
    names = metric_names(expr)
    aggregated = re.findall(
        r"\b(?:max|min) by \(namespace, job, model(?:, segment)?(?:, feature)?\) \((\w+)", expr
    )
    assert set(names) == set(aggregated), expr
    assert "instance" not in rule["annotations"]["description"]


def test_every_alert_is_tested_firing_and_one_step_before() -> None:
    """Each alert has a test case asserting labels/annotations when it fires and silence one
    evaluation step earlier (which pins the `for:` duration)."""
    tests = load_yaml(RULES_TEST_FILE)["tests"]
    covered: set[str] = set()
    for case in tests:
        step = _duration_s(case["interval"])
        by_alert: dict[str, dict[float, list[Any]]] = {}
        for check in case.get("alert_rule_test", []):
            by_alert.setdefault(check["alertname"], {})[_duration_s(check["eval_time"])] = check[
                "exp_alerts"
            ]
        for alertname, checks in by_alert.items():
            for t, expected in checks.items():
                if not expected or checks.get(t - step) != []:
                    continue
                for alert in expected:
                    assert alert["exp_labels"]["severity"] == EXPECTED_ALERTS[alertname]
                    assert set(alert["exp_annotations"]) == {
                        "summary",
                        "description",
                        "runbook_url",
                    }
                covered.add(alertname)
    assert covered == set(EXPECTED_ALERTS)


#: Alerts whose first check is not a dashboard (no driftmon metrics exist while it is down).
NO_DASHBOARD = {"DriftmonDown"}


def test_alert_descriptions_name_existing_dashboards_and_panels() -> None:
    """Every `dashboard "X"` and `panel(s) "P"` named in a description exists in grafana/."""
    panels = {}
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text())
        panels[board["title"]] = {p["title"] for p in board["panels"]}
    for alertname, rule in ALERTS.items():
        if alertname in NO_DASHBOARD:
            continue
        description = rule["annotations"]["description"]
        m = re.search(r'dashboard\s+"(?P<board>[^"]+)"(?P<rest>.*)', description, re.DOTALL)
        assert m, f"{alertname}: no dashboard named"
        assert m["board"] in panels, f"{alertname}: unknown dashboard {m['board']!r}"
        named = re.search(r'panels?\s+((?:"[^"]+"(?:,\s*|\s+and\s+)?)+)', m["rest"])
        assert named, f"{alertname}: no panel named"
        for title in re.findall(r'"([^"]+)"', named[1]):
            assert title in panels[m["board"]], f"{alertname}: no panel {title!r} in {m['board']}"


def test_runbook_has_a_complete_section_per_alert() -> None:
    """docs/runbook.md has one section per alert (anchor = lowercase name) with the four parts."""
    text = RUNBOOK.read_text()
    sections = dict(
        re.findall(r"^## (Driftmon\w+)\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    )
    assert set(sections) == set(EXPECTED_ALERTS)
    for alertname, body in sections.items():
        for part in ("What it means", "First checks", "Common causes", "How to resolve"):
            assert f"**{part}**" in body, f"{alertname}: missing {part!r}"


def test_example_prometheus_config_is_valid() -> None:
    """`promtool check config` accepts deploy/prometheus/prometheus.yml and its rule file."""
    output = assert_tool_ok(run_tool(["promtool", "check", "config", PROMETHEUS_CONFIG]))
    assert "1 rule files found" in output
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == [RULES_FILE.name]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["driftmon"]["static_configs"][0]["targets"] == ["driftmon:9108"]


def test_fast_rules_copy_changes_only_for_durations(tmp_path: Path) -> None:
    """write_fast_rules shortens every `for:` in a copy and leaves the shipped file untouched."""
    before = hashlib.sha256(RULES_FILE.read_bytes()).hexdigest()
    copy = write_fast_rules(tmp_path / "fast.rules.yml", for_duration="2s")
    assert hashlib.sha256(RULES_FILE.read_bytes()).hexdigest() == before
    shipped, fast = load_yaml(RULES_FILE), load_yaml(copy)
    for g_shipped, g_fast in zip(shipped["groups"], fast["groups"], strict=True):
        for r_shipped, r_fast in zip(g_shipped["rules"], g_fast["rules"], strict=True):
            if "for" in r_shipped:
                assert r_fast.pop("for") == "2s"
                r_shipped.pop("for")
            assert r_fast == r_shipped
    assert_tool_ok(run_tool(["promtool", "check", "rules", copy]))


def _duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    assert m, text
    return int(m[1]) * units[m[2]]
