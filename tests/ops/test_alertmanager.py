"""Static tests of deploy/alertmanager/alertmanager.yml: amtool checks, routes, inhibition."""

from __future__ import annotations

import urllib.parse

import pytest

from tests.support.ops_services import (
    ALERTMANAGER_CONFIG,
    assert_tool_ok,
    load_yaml,
    run_tool,
    shipped_alert_rules,
)

from .alert_scenarios import Scenario, scenarios
from .inhibition import load_rules, muted

PAGER, CHAT = "driftmon-pager", "driftmon-chat"
RECEIVER_FOR_SEVERITY = {"critical": PAGER, "warning": CHAT}


def route_receiver(labels: dict[str, str], expected: str) -> tuple[int, str]:
    """Run `amtool config routes test --verify.receivers=expected`; (exit status, output)."""
    proc = run_tool(
        [
            "amtool",
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--verify.receivers={expected}",
            *(f"{k}={v}" for k, v in labels.items()),
        ]
    )
    return proc.returncode, proc.stdout.strip()


def test_config_passes_amtool_check() -> None:
    """`amtool check-config` accepts the shipped config with its receivers and inhibit rules."""
    output = assert_tool_ok(run_tool(["amtool", "check-config", ALERTMANAGER_CONFIG]))
    assert "SUCCESS" in output
    assert "3 inhibit rules" in output
    assert "2 receivers" in output


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "DriftmonFeaturePsiCritical", "severity": "critical"}, PAGER),
        ({"alertname": "DriftmonFeatureDrift", "severity": "warning"}, CHAT),
        ({"alertname": "SomethingElse", "severity": "info"}, CHAT),
        ({"alertname": "NoSeverity"}, CHAT),
    ],
    ids=["critical", "warning", "other-severity", "no-severity"],
)
def test_route_by_severity(labels: dict[str, str], receiver: str) -> None:
    """Critical alerts page, warnings and anything unrouted go to chat (nothing is dropped)."""
    status, output = route_receiver(labels, receiver)
    assert (status, output) == (0, receiver)


def test_route_verification_rejects_a_wrong_receiver() -> None:
    """amtool exits non-zero when the expected receiver is not the routed one."""
    status, output = route_receiver({"severity": "warning"}, PAGER)
    assert status != 0
    assert output.startswith(CHAT)


@pytest.mark.parametrize("alertname", sorted(shipped_alert_rules()))
def test_every_shipped_alert_reaches_the_receiver_of_its_severity(alertname: str) -> None:
    """Each alert of driftmon.rules.yml, with its own labels, routes by its severity."""
    rule = shipped_alert_rules()[alertname]
    labels = {"alertname": alertname, **rule["labels"], "job": "driftmon", "model": "fraud"}
    expected = RECEIVER_FOR_SEVERITY[rule["labels"]["severity"]]
    assert route_receiver(labels, expected) == (0, expected)


def test_grouping_and_timings() -> None:
    """Notifications are grouped by alertname and model, with production-sized timings."""
    route = load_yaml(ALERTMANAGER_CONFIG)["route"]
    assert route["group_by"] == ["alertname", "model"]
    assert route["group_wait"] == "30s"
    assert route["repeat_interval"] == "4h"


def test_placeholder_webhook_urls_are_clearly_marked() -> None:
    """Every shipped webhook URL is an unroutable placeholder that says REPLACE."""
    config = load_yaml(ALERTMANAGER_CONFIG)
    urls = [h["url"] for r in config["receivers"] for h in r.get("webhook_configs", [])]
    assert len(urls) == 2
    for url in urls:
        assert urllib.parse.urlsplit(url).hostname.endswith(".example.invalid"), url
        assert "REPLACE" in url


@pytest.mark.parametrize("scenario", scenarios(), ids=lambda s: s.name)
def test_inhibition_scenarios(scenario: Scenario) -> None:
    """The shipped inhibit rules mute exactly the expected alerts of each scenario."""
    rules = load_rules(load_yaml(ALERTMANAGER_CONFIG))
    firing = list(scenario.firing.values())
    got = {key for key, labels in scenario.firing.items() if muted(rules, labels, firing)}
    assert got == scenario.muted


def test_down_alone_mutes_nothing_of_other_jobs() -> None:
    """DriftmonDown of job driftmon leaves a drift alert of job driftmon-eu alone."""
    rules = load_rules(load_yaml(ALERTMANAGER_CONFIG))
    down = {"alertname": "DriftmonDown", "severity": "critical", "category": "pipeline"}
    drift = {"alertname": "DriftmonFeatureDrift", "severity": "warning", "category": "drift"}
    assert muted(rules, {**drift, "job": "driftmon"}, [{**down, "job": "driftmon"}])
    assert not muted(rules, {**drift, "job": "driftmon-eu"}, [{**down, "job": "driftmon"}])
