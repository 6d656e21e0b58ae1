"""The alerting chain on real servers: exporter -> Prometheus -> Alertmanager -> webhook.

A tiny prometheus_client exporter stands in for the daemon and serves the metric families the
drift alerts read. Prometheus loads a generated copy of the shipped rules with `for: 1s`;
Alertmanager runs the shipped config with local webhook URLs and 1 s grouping. Every
dashboard query is also evaluated on the live Prometheus. Finally the inhibit rules are proven
live, by posting the scenarios of tests/ops/alert_scenarios.py straight to Alertmanager and
comparing what it mutes with tests/ops/inhibition.py's model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from monitor.dev.broker import free_port
from monitor.model import FeatureKind, Thresholds
from tests.support.ops_services import (
    ALERTMANAGER_CONFIG,
    AlertmanagerServer,
    PrometheusServer,
    WebhookReceiver,
    load_yaml,
    write_alertmanager_config,
    write_fast_rules,
    write_prometheus_config,
)
from tests.support.waiting import holds_for, wait_until

from .alert_scenarios import Scenario, scenarios
from .dashboards import dashboard_files, evaluate, load, queries
from .inhibition import load_rules
from .promql import metric_names, reads_only_opt_in_series

pytestmark = pytest.mark.e2e

RUNBOOK = "https://github.com/driftmon/driftmon/blob/main/docs/runbook.md"


def exporter_registry() -> CollectorRegistry:
    """Metrics of one model with two drifting features: amount (PSI between the bands) and
    country (PSI above the critical band)."""
    registry = CollectorRegistry()
    mf = ["model", "feature"]

    def gauge(name: str, labels: list[str], values: dict[tuple[str, ...], float]) -> None:
        g = Gauge(name, f"test stand-in for {name}", labels, registry=registry)
        for key, value in values.items():
            (g.labels(*key) if labels else g).set(value)

    drifting: dict[tuple[str, ...], float] = {("fraud", "amount"): 1.0, ("fraud", "country"): 1.0}
    gauge("driftmon_feature_drift_detected", mf, drifting)
    gauge("driftmon_feature_drift_qvalue", mf, {("fraud", "amount"): 1e-5})
    gauge("driftmon_feature_psi", mf, {("fraud", "amount"): 0.18, ("fraud", "country"): 0.6})
    gauge("driftmon_feature_ks_statistic", mf, {("fraud", "amount"): 0.12})
    # The default thresholds of both feature kinds on both features (a stand-in: the daemon
    # exports those of each feature's kind), so every dashboard threshold line has data.
    thresholds: dict[tuple[str, ...], float] = {}
    for feature in ("amount", "country"):
        for kind in FeatureKind:
            for signal, severity, value in Thresholds().series(kind):
                thresholds[("fraud", feature, signal.value, severity.value)] = value
        thresholds[("fraud", feature, "drift_qvalue", "decision")] = 1e-3
    gauge("driftmon_feature_threshold", [*mf, "signal", "severity"], thresholds)
    gauge("driftmon_model_drifted_features", ["model"], {("fraud",): 2})
    gauge("driftmon_model_features", ["model"], {("fraud",): 10})
    gauge("driftmon_model_reference_ready", ["model"], {("fraud",): 1})
    gauge("driftmon_ready", [], {(): 1})
    gauge("driftmon_kafka_connected", [], {(): 1})
    return registry


@pytest.fixture
def exporter() -> Iterator[str]:
    """The stand-in exporter on a free 127.0.0.1 port; yields its host:port."""
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=exporter_registry())
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def alerts_of(payload: dict[str, Any], alertname: str) -> list[dict[str, Any]]:
    """The alerts of a webhook payload with the given alertname."""
    return [a for a in payload["alerts"] if a["labels"]["alertname"] == alertname]


def test_drift_alert_reaches_its_receiver_and_inhibits_live(tmp_path: Path, exporter: str) -> None:
    """DriftmonFeatureDrift reaches the chat receiver with its labels and rendered annotations;
    DriftmonFeaturePsiCritical pages; the critical alert mutes the warning on its feature."""
    with WebhookReceiver() as hook:
        am_config = write_alertmanager_config(tmp_path / "alertmanager.yml", hook.url)
        with AlertmanagerServer(am_config, tmp_path) as am:
            rules = write_fast_rules(tmp_path / "driftmon.rules.yml")
            prom_config = write_prometheus_config(
                tmp_path / "prometheus.yml", rules, [exporter], am.address
            )
            with PrometheusServer(prom_config, tmp_path) as prom:
                path, chat = hook.wait_for(
                    lambda p, n: (
                        n["status"] == "firing" and bool(alerts_of(n, "DriftmonFeatureDrift"))
                    ),
                    timeout=40,
                    description="DriftmonFeatureDrift at the webhook",
                )
                pager_path, pager = hook.wait_for(
                    lambda p, n: (
                        n["status"] == "firing" and bool(alerts_of(n, "DriftmonFeaturePsiCritical"))
                    ),
                    timeout=15,
                    description="DriftmonFeaturePsiCritical at the webhook",
                )
                am_alerts = {
                    (a["labels"]["alertname"], a["labels"].get("feature")): a for a in am.alerts()
                }
                firing = {a["labels"]["alertname"] for a in prom.alerts()}
                panel_results = evaluate(
                    prom.url,
                    [q for path in dashboard_files() for q in queries(load(path))],
                )

    assert (path, chat["receiver"]) == ("driftmon-chat", "driftmon-chat")
    assert chat["groupLabels"] == {"alertname": "DriftmonFeatureDrift", "model": "fraud"}
    (alert,) = chat["alerts"]  # country's warning is inhibited by its critical alert
    assert alert["labels"] == {
        "alertname": "DriftmonFeatureDrift",
        "severity": "warning",
        "category": "drift",
        "job": "driftmon",
        "model": "fraud",
        "feature": "amount",
    }  # aggregated over the job's replicas: no instance label
    assert alert["annotations"] == {
        "summary": "Feature amount of model fraud is drifting",
        "description": (
            "The multiple-testing-corrected drift test has flagged feature amount of model "
            "fraud for at least 10 minutes (q-value 1e-05; PSI 0.180 against the warning band "
            '0.10; KS D 0.120). First look at the Grafana dashboard "driftmon / feature" '
            '(model=fraud, feature=amount), panels "PSI vs thresholds" and "p-values and '
            'q-value", then at recent changes of the upstream producer or of the model.'
        ),
        "runbook_url": f"{RUNBOOK}#driftmonfeaturedrift",
    }

    assert (pager_path, pager["receiver"]) == ("driftmon-pager", "driftmon-pager")
    (critical,) = alerts_of(pager, "DriftmonFeaturePsiCritical")
    assert critical["labels"]["severity"] == "critical"
    assert critical["labels"]["feature"] == "country"
    assert critical["annotations"]["description"].startswith(
        "Feature country of model fraud has had a PSI of 0.600, above its critical band of 0.25,"
    )

    assert {"DriftmonFeatureDrift", "DriftmonFeaturePsiCritical"} <= firing
    muted = am_alerts[("DriftmonFeatureDrift", "country")]["status"]
    assert muted["state"] == "suppressed"
    assert muted["inhibitedBy"] == [
        am_alerts[("DriftmonFeaturePsiCritical", "country")]["fingerprint"]
    ]
    delivered = [
        a["labels"].get("feature")
        for _, n in hook.received()
        for a in alerts_of(n, "DriftmonFeatureDrift")
    ]
    assert "country" not in delivered

    # Every dashboard query evaluates on the live Prometheus; those reading only metrics the
    # stand-in exports return data.
    errors = {w: r for w, r in panel_results.items() if isinstance(r, str)}
    assert errors == {}
    served = {m.name for m in exporter_registry().collect()}
    expressions = dict(q for path in dashboard_files() for q in queries(load(path)))
    empty = [
        w
        for w, result in panel_results.items()
        if metric_names(expressions[w]) <= served
        and not result
        and not reads_only_opt_in_series(expressions[w])
    ]
    assert empty == []
    assert sum(1 for w in panel_results if metric_names(expressions[w]) <= served) >= 10


def alertmanager_state(
    am: AlertmanagerServer, scenario: Scenario
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Alertmanager's alerts keyed by scenario id, and the ids it currently suppresses."""
    by_id = {}
    for alert in am.alerts():
        key = next(k for k, labels in scenario.firing.items() if labels == alert["labels"])
        by_id[key] = alert
    return by_id, {k for k, a in by_id.items() if a["status"]["inhibitedBy"]}


@pytest.mark.parametrize("scenario", scenarios(), ids=lambda s: s.name)
def test_alertmanager_mutes_what_the_inhibition_model_predicts(
    tmp_path: Path, scenario: Scenario
) -> None:
    """A real Alertmanager with the shipped inhibit rules suppresses exactly the scenario's
    expected alerts, each by a source the model also names."""
    rules = load_rules(load_yaml(ALERTMANAGER_CONFIG))
    firing = list(scenario.firing.values())
    with WebhookReceiver() as hook:
        config = write_alertmanager_config(tmp_path / "alertmanager.yml", hook.url)
        with AlertmanagerServer(config, tmp_path) as am:
            am.post_alerts([{"labels": labels} for labels in firing])

            def settled() -> bool:
                by_id, suppressed = alertmanager_state(am, scenario)
                return len(by_id) == len(firing) and suppressed >= scenario.muted

            with contextlib.suppress(AssertionError):  # the assertions below show the diff
                wait_until(settled, 5, message="the expected inhibitions")
                # an unexpected extra inhibition would show up within 0.3 s: watch for one
                holds_for(
                    lambda: alertmanager_state(am, scenario)[1] <= scenario.muted,
                    0.3,
                    message="no inhibition beyond the expected ones",
                )
            by_id, suppressed = alertmanager_state(am, scenario)

    assert len(by_id) == len(firing)
    assert suppressed == scenario.muted
    id_of = {a["fingerprint"]: k for k, a in by_id.items()}
    for key in suppressed:
        target = scenario.firing[key]
        allowed = {
            k
            for k, labels in scenario.firing.items()
            if any(labels in rule.sources_muting(target, firing) for rule in rules)
        }
        sources = {id_of[fp] for fp in by_id[key]["status"]["inhibitedBy"]}
        assert sources <= allowed, f"{key} inhibited by {sources}, the model allows {allowed}"
