"""Alerts and dashboards of a fleet on a live Prometheus: two replicas, one truth, one alert.

Two stand-in exporters serve the same model and feature series (what the replicas of a fleet
with `state.backend: kafka` export once caught up); one Prometheus scrapes both as job
`driftmon` with the shipped rules (`for: 1s`), a second Prometheus scrapes only the first.
Every drift alert must fire exactly once in the two-replica Prometheus, with the labels it has
in the one-replica Prometheus, and every panel query of the overview and feature dashboards
must return the same series and values in both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import start_http_server

from monitor.dev.broker import free_port
from tests.support.ops_services import (
    DASHBOARDS,
    PrometheusServer,
    write_fast_rules,
    write_prometheus_config,
)
from tests.support.waiting import wait_until

from .dashboards import evaluate, load, queries
from .test_prometheus_alertmanager_live import exporter_registry

pytestmark = pytest.mark.e2e

#: The dashboards whose series are the fleet's global statistics (the pipeline dashboard
#: shows each replica on purpose).
GLOBAL_BOARDS = ("driftmon-overview.json", "driftmon-feature.json")
#: The drift alerts the stand-in's series raise (fraud/amount and fraud/country).
EXPECTED = {
    ("DriftmonFeatureDrift", "amount"),
    ("DriftmonFeatureDrift", "country"),
    ("DriftmonFeaturePsiCritical", "country"),
}


@contextlib.contextmanager
def replicas(n: int) -> Iterator[list[str]]:
    """`n` stand-in replicas exporting identical series on free ports; their host:port."""
    servers = []
    try:
        for _ in range(n):
            port = free_port()
            server, thread = start_http_server(port, addr="127.0.0.1", registry=exporter_registry())
            servers.append((server, thread, f"127.0.0.1:{port}"))
        yield [address for _, _, address in servers]
    finally:
        for server, thread, _ in servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def firing(prom: PrometheusServer) -> list[dict[str, str]]:
    """Labels of the firing drift alerts (alertname, model, feature and the rest)."""
    return [
        a["labels"]
        for a in prom.alerts()
        if a["state"] == "firing" and a["labels"].get("category") == "drift"
    ]


def settled(prom: PrometheusServer) -> bool:
    """True once the expected drift alerts fire (they need two scrapes and `for: 1s`)."""
    return {(a["alertname"], a["feature"]) for a in firing(prom)} >= EXPECTED


def series(result: list[dict[str, Any]]) -> list[tuple[tuple[tuple[str, str], ...], str]]:
    """An instant query result as sorted (labels, value) pairs."""
    return sorted((tuple(sorted(r["metric"].items())), r["value"][1]) for r in result)


def test_two_replicas_raise_each_alert_once_and_draw_the_same_panels(tmp_path: Path) -> None:
    """With two replicas exporting identical series, each drift alert fires once with the
    one-replica labels, and every overview/feature panel returns the one-replica series."""
    rules = write_fast_rules(tmp_path / "driftmon.rules.yml")
    with replicas(2) as (first, second):
        fleet_config = write_prometheus_config(tmp_path / "fleet.yml", rules, [first, second], None)
        single_config = write_prometheus_config(tmp_path / "single.yml", rules, [first], None)
        with (
            PrometheusServer(fleet_config, tmp_path / "fleet") as fleet,
            PrometheusServer(single_config, tmp_path / "single") as single,
        ):
            up = 'count(up{job="driftmon"} == 1)'
            wait_until(lambda: fleet.query(up) and fleet.query(up)[0]["value"][1] == "2", 40)
            wait_until(lambda: settled(fleet) and settled(single), 40, message="drift alerts")
            fleet_alerts, single_alerts = firing(fleet), firing(single)
            exprs = [q for name in GLOBAL_BOARDS for q in queries(load(DASHBOARDS / name))]
            fleet_panels = evaluate(fleet.url, exprs)
            single_panels = evaluate(single.url, exprs)

    assert sorted(map(_items, fleet_alerts)) == sorted(map(_items, single_alerts))
    assert {(a["alertname"], a["feature"]) for a in fleet_alerts} == EXPECTED
    assert all("instance" not in a for a in fleet_alerts)

    errors = {w: r for w, r in fleet_panels.items() if isinstance(r, str)}
    assert errors == {}
    assert any(fleet_panels.values()), "no panel query returned data"
    differing = {
        where: (series(fleet_panels[where]), series(single_panels[where]))
        for where in fleet_panels
        if series(fleet_panels[where]) != series(single_panels[where])
    }
    assert differing == {}


def _items(labels: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(labels.items())
