"""Unit tests of the ops test helpers: PromQL lexing, Grafana macros, generated config copies."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import pytest

from monitor.metrics import CATALOGUE
from tests.support.ops_services import (
    ALERTMANAGER_CONFIG,
    WebhookReceiver,
    assert_tool_ok,
    find_tool,
    load_yaml,
    run_tool,
    write_alertmanager_config,
    write_fast_rules,
    write_prometheus_config,
)

from .promql import (
    DRIFTMON_HISTOGRAMS,
    DRIFTMON_METRICS,
    FLEET_STATE_METRICS,
    is_driftmon_metric,
    label_values_selector,
    metric_names,
    substitute_grafana,
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("driftmon_ready", {"driftmon_ready"}),
        (
            'histogram_quantile(0.99, sum by (le) (rate(x_bucket{job="a",le!="1"}[5m])))',
            {"x_bucket"},
        ),
        (
            'a > ignoring(severity) b{severity="critical"} and on(job, instance) c == 1',
            {"a", "b", "c"},
        ),
        ("time() - last_ts > 3 * interval_s", {"last_ts", "interval_s"}),
        ('sum without (window) (m{window="x y"}) offset 5m', {"m"}),
        ("topk(10, rate(c_total[1m:15s])) / 1e-3 + Inf", {"c_total"}),
        ('absent(up{job="driftmon"}) or vector(0)', {"up"}),
        ("record:name:rate5m unless bool_metric", {"record:name:rate5m", "bool_metric"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    """Selectors are found; functions, keywords, label names, strings, durations are not."""
    assert metric_names(expr) == names


def test_is_driftmon_metric() -> None:
    """Exported names and their histogram series are known; others are not."""
    assert is_driftmon_metric("driftmon_feature_psi")
    assert is_driftmon_metric("driftmon_batch_duration_seconds_bucket")
    assert is_driftmon_metric("driftmon_evaluation_duration_seconds_count")
    assert not is_driftmon_metric("driftmon_feature_psi_bucket")
    assert not is_driftmon_metric("driftmon_feature_psy")


def test_substitute_grafana() -> None:
    """Macros and every variable syntax are replaced; longer macros win over prefixes."""
    expr = (
        'rate(m{model="$model",f="${feature}",g="${feature:regex}",h="[[model]]"}'
        "[$__rate_interval])"
    )
    assert substitute_grafana(expr, {"model": "fraud", "feature": "amount"}) == (
        'rate(m{model="fraud",f="amount",g="amount",h="fraud"}[1m])'
    )
    assert substitute_grafana("x[$__interval] $__interval_ms", {}) == "x[15s] 15000"
    assert substitute_grafana("$models $model", {"model": "a"}) == "$models a"


def test_label_values_selector() -> None:
    """`label_values` queries split into selector and label; other queries are refused."""
    assert label_values_selector('label_values(m{a="b, c"}, feature)') == ('m{a="b, c"}', "feature")
    assert label_values_selector("label_values(model)") == (None, "model")
    with pytest.raises(ValueError, match="label_values"):
        label_values_selector("query_result(up)")


def test_find_tool_fails_or_skips_for_a_missing_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing tool fails the test with an install hint, or skips with DRIFTMON_SKIP_OPS=1."""
    monkeypatch.delenv("DRIFTMON_SKIP_OPS", raising=False)
    with pytest.raises(pytest.fail.Exception, match="install it"):
        find_tool("driftmon-no-such-tool")
    monkeypatch.setenv("DRIFTMON_SKIP_OPS", "1")
    with pytest.raises(pytest.skip.Exception):
        find_tool("driftmon-no-such-tool")


def test_fast_rules_reject_a_file_without_for_lines_rewritten(tmp_path: Path) -> None:
    """write_fast_rules refuses a source whose `for:` cannot be rewritten line by line."""
    source = tmp_path / "inline.rules.yml"
    source.write_text("groups:\n- name: g\n  rules:\n  - {alert: A, expr: up == 0, for: 5m}\n")
    with pytest.raises(AssertionError):
        write_fast_rules(tmp_path / "out.yml", source=source)


def test_alertmanager_copy_points_receivers_at_local_urls(tmp_path: Path) -> None:
    """The copy keeps routes and inhibitions, swaps webhook URLs and speeds up grouping."""
    before = hashlib.sha256(ALERTMANAGER_CONFIG.read_bytes()).hexdigest()
    copy = write_alertmanager_config(tmp_path / "am.yml", lambda name: f"http://127.0.0.1:9/{name}")
    assert hashlib.sha256(ALERTMANAGER_CONFIG.read_bytes()).hexdigest() == before
    shipped, fast = load_yaml(ALERTMANAGER_CONFIG), load_yaml(copy)
    assert fast["inhibit_rules"] == shipped["inhibit_rules"]
    assert (fast["route"]["group_wait"], fast["route"]["group_interval"]) == ("1s", "1s")
    assert [r["matchers"] for r in fast["route"]["routes"]] == [
        r["matchers"] for r in shipped["route"]["routes"]
    ]
    urls = {r["name"]: r["webhook_configs"][0]["url"] for r in fast["receivers"]}
    assert urls == {
        "driftmon-pager": "http://127.0.0.1:9/driftmon-pager",
        "driftmon-chat": "http://127.0.0.1:9/driftmon-chat",
    }
    assert_tool_ok(run_tool(["amtool", "check-config", copy]))


def test_prometheus_config_copy_is_valid(tmp_path: Path) -> None:
    """write_prometheus_config produces a config promtool accepts, with job `driftmon`."""
    rules = write_fast_rules(tmp_path / "rules.yml")
    config = write_prometheus_config(
        tmp_path / "prometheus.yml", rules, ["127.0.0.1:9108"], "127.0.0.1:9093"
    )
    assert_tool_ok(run_tool(["promtool", "check", "config", config]))
    assert load_yaml(config)["scrape_configs"][0]["job_name"] == "driftmon"


def test_webhook_receiver_records_posts_by_path() -> None:
    """POSTed JSON bodies are recorded with the path they were sent to."""
    with WebhookReceiver() as hook:
        request = urllib.request.Request(
            hook.url("driftmon-chat"),
            data=json.dumps({"status": "firing"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        path, payload = hook.wait_for(lambda p, n: True, timeout=5)
    assert (path, payload) == ("driftmon-chat", {"status": "firing"})


def test_known_metrics_match_the_daemon_catalogue() -> None:
    """The metric list the ops checks allow is exactly the daemon's public metric catalogue
    (the fleet's state series may be pending: allowed before the catalogue defines them)."""
    catalogue = {d.name for d in CATALOGUE}
    assert catalogue - FLEET_STATE_METRICS == DRIFTMON_METRICS - FLEET_STATE_METRICS
    assert catalogue >= DRIFTMON_METRICS & FLEET_STATE_METRICS
    histograms = {d.name for d in CATALOGUE if d.type == "histogram"}
    assert histograms == DRIFTMON_HISTOGRAMS
