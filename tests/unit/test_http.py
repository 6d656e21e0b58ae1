"""Tests for monitor.http: a real HttpServer on 127.0.0.1 (port 0), driven with urllib."""

from __future__ import annotations

import gzip
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import (
    text_string_to_metric_families as text_string_to_metric_families_text,
)

from monitor.http import HttpServer, snapshot_to_json
from monitor.metrics import DriftCollector, PipelineMetrics
from monitor.model import Correction, FeatureKind, FeatureResult, ModelEvaluation, Snapshot

TIMEOUT = 5.0


@dataclass
class FakeHealth:
    """A Health whose answers the test sets directly."""

    is_live: bool = True
    is_ready: bool = True
    why: str = ""
    broken: bool = False

    def live(self) -> bool:
        return self.is_live

    def ready(self) -> bool:
        if self.broken:
            raise RuntimeError("health check failed")
        return self.is_ready

    def reason(self) -> str:
        return self.why


def snapshot(psi: float = 0.3) -> Snapshot:
    """One model with a numeric feature (non-finite p-values) and a categorical one."""
    amount = FeatureResult(
        name="amount",
        kind=FeatureKind.NUMERIC,
        reference_samples=5000,
        current_samples=3000,
        reference_missing_ratio=0.0,
        current_missing_ratio=0.01,
        evaluated=True,
        psi=psi,
        psi_pvalue=float("nan"),
        ks_statistic=0.2,
        ks_pvalue=float("inf"),
        drift_detected=True,
        drift_reasons=("psi",),
    )
    country = FeatureResult(
        name="country",
        kind=FeatureKind.CATEGORICAL,
        reference_samples=5000,
        current_samples=10,
        reference_missing_ratio=None,
        current_missing_ratio=None,
        evaluated=False,
    )
    model = ModelEvaluation(
        model="fraud",
        evaluated_at=100.0,
        features=(amount, country),
        correction=Correction.BH,
        fdr_q=1e-3,
        reference_id="abc",
        reference_mode="file",
        watermark=float("-inf"),
    )
    return Snapshot(created_at=101.0, models=(model,))


@dataclass
class Served:
    """A started server and the things behind it."""

    server: HttpServer
    collector: DriftCollector
    health: FakeHealth

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """GET `path`; returns status, headers and body (also for 4xx/5xx answers)."""
        request = urllib.request.Request(self.server.url + path, headers=headers or {})
        return send(request)


def send(request: urllib.request.Request) -> tuple[int, dict[str, str], bytes]:
    """Perform `request`; returns status, headers and body whatever the status."""
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def families(body: bytes) -> set[str]:
    """The metric family names of a Prometheus text exposition."""
    parsed = text_string_to_metric_families_text(body.decode("utf-8"))
    return {family.name for family in parsed}


def bare_server(port: int) -> HttpServer:
    """An unstarted server on 127.0.0.1:`port` over an empty registry and snapshot."""
    return HttpServer(
        "127.0.0.1",
        port,
        registry=CollectorRegistry(),
        snapshot=lambda: Snapshot(0.0),
        health=FakeHealth(),
    )


@pytest.fixture
def served() -> Iterator[Served]:
    """A running server over a registry with pipeline metrics and a drift collector."""
    registry = CollectorRegistry()
    PipelineMetrics(
        registry,
        topics=("features",),
        features={"fraud": ("amount", "country")},
        evaluation_interval_seconds=15.0,
    )
    collector = DriftCollector(registry, snapshot(0.3))
    health = FakeHealth()
    server = HttpServer(
        "127.0.0.1", 0, registry=registry, snapshot=lambda: collector.snapshot, health=health
    )
    server.start()
    try:
        yield Served(server, collector, health)
    finally:
        server.stop()


class TestMetricsRoute:
    def test_serves_the_registry_in_text_format(self, served: Served) -> None:
        """GET /metrics returns 200, the 0.0.4 content type and the drift series."""
        status, headers, body = served.get("/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = body.decode()
        assert 'driftmon_feature_psi{feature="amount",model="fraud"} 0.3' in text
        assert 'driftmon_records_rejected_total{reason="too_late",topic="features"} 0.0' in text

    def test_honours_an_openmetrics_accept_header(self, served: Served) -> None:
        """An OpenMetrics Accept header gets an OpenMetrics body that parses and ends in # EOF."""
        accept = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"
        status, headers, body = served.get("/metrics", {"Accept": accept})
        assert status == 200
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        text = body.decode()
        assert text.endswith("# EOF\n")
        families = text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
        assert "driftmon_feature_psi" in {f.name for f in families}

    def test_gzip_when_the_scraper_accepts_it(self, served: Served) -> None:
        """`Accept-Encoding: gzip` gets a gzip body that decompresses to the plain exposition."""
        _, _, plain = served.get("/metrics")
        status, headers, body = served.get("/metrics", {"Accept-Encoding": "gzip"})
        assert (status, headers.get("Content-Encoding")) == (200, "gzip")
        assert int(headers["Content-Length"]) == len(body) < len(plain)
        assert families(gzip.decompress(body)) == families(plain)
        assert "Content-Encoding" not in served.get("/metrics")[1]

    def test_name_filter_returns_only_the_named_families(self, served: Served) -> None:
        """`?name[]=driftmon_ready` returns that family alone; repeating name[] adds families."""
        assert len(families(served.get("/metrics")[2])) > 10
        assert families(served.get("/metrics?name[]=driftmon_ready")[2]) == {"driftmon_ready"}
        query = "name[]=driftmon_ready&name[]=driftmon_feature_psi"
        assert families(served.get("/metrics?" + query)[2]) == {
            "driftmon_ready",
            "driftmon_feature_psi",
        }
        assert families(served.get("/metrics?name[]=driftmon_no_such_family")[2]) == set()

    def test_a_newly_published_snapshot_is_served(self, served: Served) -> None:
        """After publish() the next scrape shows the new value, through the real server."""
        served.collector.publish(snapshot(0.07))
        _, _, body = served.get("/metrics?name[]=driftmon_feature_psi")
        assert 'driftmon_feature_psi{feature="amount",model="fraud"} 0.07' in body.decode()


class TestProbes:
    def test_livez_follows_health_live(self, served: Served) -> None:
        """/livez is 200 ok while live and 503 once the loop has stalled."""
        assert served.get("/livez")[::2] == (200, b"ok\n")
        served.health.is_live = False
        assert served.get("/livez")[0] == 503

    def test_readyz_reports_the_reason_when_not_ready(self, served: Served) -> None:
        """/readyz is 503 with health.reason() as the body until ready, then 200 ok."""
        served.health.is_ready = False
        served.health.why = "waiting for partition assignment"
        assert served.get("/readyz")[::2] == (503, b"waiting for partition assignment\n")
        served.health.why = ""
        assert served.get("/readyz")[::2] == (503, b"not ready\n")
        served.health.is_ready = True
        assert served.get("/readyz")[::2] == (200, b"ok\n")


class TestStatusRoute:
    def test_status_is_strict_json_with_every_feature(self, served: Served) -> None:
        """/status parses as strict JSON (no NaN/Infinity) and lists each model's features."""

        def reject(constant: str) -> None:
            raise AssertionError(f"non-standard JSON constant {constant}")

        status, headers, body = served.get("/status")
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        doc = json.loads(body, parse_constant=reject)
        assert doc["created_at"] == 101.0
        (model,) = doc["models"]
        assert (model["model"], model["correction"], model["drifted_features"]) == (
            "fraud",
            "bh",
            1,
        )
        assert model["watermark"] is None
        amount, country = model["features"]
        assert (amount["name"], amount["kind"], amount["psi"]) == ("amount", "numeric", 0.3)
        assert (amount["psi_pvalue"], amount["ks_pvalue"]) == (None, None)
        assert amount["drift_reasons"] == ["psi"]
        assert (country["name"], country["evaluated"], country["psi"]) == ("country", False, None)

    def test_status_carries_every_field_of_the_model_types(self) -> None:
        """Every FeatureResult and ModelEvaluation field appears in the JSON under its own name."""
        doc = json.loads(snapshot_to_json(snapshot()))
        model = doc["models"][0]
        assert set(ModelEvaluation.__dataclass_fields__) | {"drifted_features"} == set(model)
        assert set(FeatureResult.__dataclass_fields__) == set(model["features"][0])

    def test_empty_snapshot_renders(self) -> None:
        """Before the first evaluation /status is an object with an empty model list."""
        assert json.loads(snapshot_to_json(Snapshot(created_at=0.0))) == {
            "created_at": 0.0,
            "models": [],
        }


class TestRouting:
    def test_unknown_path_is_404(self, served: Served) -> None:
        """A path that is not a route gets 404."""
        assert served.get("/metricz")[0] == 404
        assert served.get("/")[0] == 404

    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
    def test_non_get_is_405_with_allow_header(self, served: Served, method: str) -> None:
        """Any method but GET gets 405 and `Allow: GET`, on routes as on other paths."""
        data = b"x=1" if method in {"POST", "PUT"} else None
        for path in ("/metrics", "/nope"):
            request = urllib.request.Request(served.server.url + path, data=data, method=method)
            status, headers, _ = send(request)
            assert (status, headers["Allow"]) == (405, "GET")

    def test_route_failure_is_a_500_not_a_dead_server(self, served: Served) -> None:
        """A health callable that raises gives 500; the server keeps answering afterwards."""
        served.health.broken = True
        assert served.get("/readyz")[0] == 500
        assert served.get("/livez")[0] == 200

    def test_requests_write_nothing_to_stderr(
        self, served: Served, capfd: pytest.CaptureFixture[str]
    ) -> None:
        """Access logging is off: a few requests, good and bad, leave stderr empty."""
        for path in ("/metrics", "/livez", "/nope"):
            served.get(path)
        send(urllib.request.Request(served.server.url + "/livez", method="POST", data=b""))
        assert capfd.readouterr().err == ""


class TestLifecycle:
    def test_port_zero_picks_a_free_port(self, served: Served) -> None:
        """Asking for port 0 binds a real port reported by .port and .url."""
        assert served.server.port > 0
        assert served.server.url == f"http://127.0.0.1:{served.server.port}"

    def test_stop_frees_the_port_and_is_idempotent(self) -> None:
        """After stop() connections are refused, a new server can bind the port, stop repeats."""
        first = bare_server(0)
        first.start()
        port = first.port
        assert send(urllib.request.Request(first.url + "/livez"))[0] == 200
        first.stop()
        first.stop()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(first.url + "/livez", timeout=TIMEOUT)
        with bare_server(port) as second:
            assert second.port == port
            assert send(urllib.request.Request(second.url + "/livez"))[0] == 200

    def test_a_silent_client_does_not_hold_up_stop(self, served: Served) -> None:
        """A connection that never sends a request does not delay stop()."""
        with socket.create_connection(("127.0.0.1", served.server.port), timeout=TIMEOUT):
            time.sleep(0.05)  # let the server accept it into a handler thread
            start = time.monotonic()
            served.server.stop()
            assert time.monotonic() - start < 2.0

    def test_port_before_start_and_double_start_are_errors(self) -> None:
        """.port before start() and a second start() raise RuntimeError."""
        server = bare_server(0)
        with pytest.raises(RuntimeError):
            _ = server.port
        server.start()
        try:
            with pytest.raises(RuntimeError):
                server.start()
        finally:
            server.stop()
