"""The viewer role end to end: `driftmon run --web.config.file`, `driftmon status` over TLS with
basic auth, invalid web configs at start and in check-config, and Prometheus scraping over TLS.

Real processes (the daemon on the shared tansu broker, the CLI, Prometheus), a trustme CA.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.http import HttpServer, load_web_config
from monitor.metrics import PipelineMetrics
from monitor.model import Snapshot
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import (
    DaemonProcess,
    daemon_config,
    model_entry,
    run_cli,
    write_config,
)
from tests.support.ops_services import PrometheusServer
from tests.support.tls import PASSWORD, USER, ViewerFiles, viewer_files, write_web_config
from tests.support.waiting import wait_until
from tests.unit.test_http import FakeHealth
from tests.unit.test_http_tls import get

PASSWORD_ENV = {"DRIFTMON_STATUS_PASSWORD": PASSWORD}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ViewerFiles:
    """One CA with server and client certificates for the module."""
    return viewer_files(tmp_path_factory.mktemp("pki"))


def config_for(broker: TansuBroker, topic: str, state: Path, **http: Any) -> dict[str, Any]:
    """A daemon config on `topic` with extra `http` keys."""
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        models=[model_entry("fraud", [("amount", "numeric")], {"mode": "warmup"})],
        state_dir=state,
    )
    config["http"].update(http)
    return config


@pytest.fixture
def daemon(
    broker: TansuBroker, topic: str, files: ViewerFiles, tmp_path: Path
) -> Iterator[DaemonProcess]:
    """`driftmon run --web.config.file web.yml` with http.metrics_public: true."""
    web = write_web_config(tmp_path / "web.yml", files.web_config())
    config = write_config(
        tmp_path / "driftmon.yml",
        config_for(broker, topic, tmp_path / "state", metrics_public=True),
    )
    with DaemonProcess(config, tmp_path, args=["--web.config.file", str(web)]) as process:
        process.start()
        yield process
        assert process.stop() == 0


def https(daemon: DaemonProcess) -> str:
    """The daemon's base URL over TLS."""
    return f"https://127.0.0.1:{daemon.port}"


class TestDaemonBehindTheViewerRole:
    def test_serves_tls_with_basic_auth_on_status(
        self, daemon: DaemonProcess, files: ViewerFiles
    ) -> None:
        """Over TLS: probes and public /metrics need no login, /status does (401, then 200)."""
        context = files.client_context()
        assert get(https(daemon) + "/livez", context)[0] == 200
        status, _, body = get(https(daemon) + "/metrics", context)
        assert status == 200 and b"driftmon_build_info" in body
        status, headers, _ = get(https(daemon) + "/status", context)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert get(https(daemon) + "/status", context, USER, "nope")[0] == 401
        status, _, body = get(https(daemon) + "/status", context, USER, PASSWORD)
        assert status == 200 and "models" in json.loads(body)

    def test_the_log_announces_https_and_never_a_password(
        self, daemon: DaemonProcess, files: ViewerFiles
    ) -> None:
        """The `serving` line has the https URL and tls/basic_auth flags; no password appears."""
        get(https(daemon) + "/status", files.client_context(), USER, "wrong-guess")
        get(https(daemon) + "/status", files.client_context(), USER, PASSWORD)
        (serving,) = [line for line in daemon.log_lines() if line.get("event") == "serving"]
        assert serving["url"].startswith("https://127.0.0.1:")
        assert (serving["tls"], serving["basic_auth"]) == (True, True)
        text = daemon.log_path.read_text(encoding="utf-8")
        assert PASSWORD not in text and "wrong-guess" not in text
        assert files.password_hash not in text

    def test_status_cli_reads_the_daemon_with_ca_and_user(
        self, daemon: DaemonProcess, files: ViewerFiles, tmp_path: Path
    ) -> None:
        """`driftmon status --ca-file --user` works with the env password or a password file."""
        base = ["status", "--url", https(daemon), "--ca-file", str(files.ca), "--json"]
        done = run_cli(*base, "--user", USER, env=PASSWORD_ENV)
        assert done.returncode == 0, done.stderr
        assert "models" in json.loads(done.stdout)
        secret = tmp_path / "password"
        secret.write_text(PASSWORD + "\n", encoding="utf-8")
        done = run_cli(*base, "--user", USER, "--password-file", str(secret))
        assert done.returncode == 0, done.stderr
        assert PASSWORD not in done.stdout + done.stderr

    def test_status_cli_explains_what_is_missing(
        self, daemon: DaemonProcess, files: ViewerFiles
    ) -> None:
        """Wrong password: 401 (exit 1); no --ca-file: a TLS error (exit 1); no password: 2."""
        url = https(daemon)
        wrong = run_cli(
            "status", "--url", url, "--ca-file", str(files.ca), "--user", USER,
            env={"DRIFTMON_STATUS_PASSWORD": "wrong"},
        )  # fmt: skip
        assert wrong.returncode == 1 and "HTTP 401" in wrong.stderr
        anonymous = run_cli("status", "--url", url, "--ca-file", str(files.ca))
        assert anonymous.returncode == 1 and "--user" in anonymous.stderr
        untrusted = run_cli("status", "--url", url, "--user", USER, env=PASSWORD_ENV)
        assert untrusted.returncode == 1 and "--ca-file" in untrusted.stderr
        no_password = run_cli("status", "--url", url, "--user", USER)
        assert no_password.returncode == 2 and "DRIFTMON_STATUS_PASSWORD" in no_password.stderr


BAD_WEB_CONFIGS = [
    ("bad-yaml", "tls_server_config: [\n", "YAML syntax error"),
    ("unknown-key", "http_server_config: {http2: true}\n", "http_server_config: unknown key"),
    ("plain-password", "basic_auth_users:\n  viewer: hunter2\n", "basic_auth_users.viewer"),
    (
        "missing-cert",
        "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
        "tls_server_config.cert_file",
    ),
]


def small_config(**http: Any) -> dict[str, Any]:
    """A valid daemon config (no broker is contacted before the web config is checked)."""
    return {
        "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["features"]},
        "models": [model_entry("fraud", [("amount", "numeric")], {"mode": "warmup"})],
        "http": {"host": "127.0.0.1", "port": 0, **http},
    }


@pytest.mark.parametrize(
    ("text", "key"), [c[1:] for c in BAD_WEB_CONFIGS], ids=[c[0] for c in BAD_WEB_CONFIGS]
)
@pytest.mark.parametrize("command", ["run", "check-config"])
def test_an_invalid_web_config_exits_2_naming_the_key(
    tmp_path: Path, text: str, key: str, command: str
) -> None:
    """run and check-config refuse a bad --web.config.file with exit 2 and the key's name."""
    web = tmp_path / "web.yml"
    web.write_text(text, encoding="utf-8")
    path = write_config(tmp_path / "driftmon.yml", small_config())
    done = run_cli(command, "--config", str(path), "--web.config.file", str(web), timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert key in done.stderr
    assert "hunter2" not in done.stderr


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_the_config_key_is_checked_like_the_flag(tmp_path: Path, command: str) -> None:
    """http.web_config_file pointing at a bad file is refused the same way (exit 2, key)."""
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  viewer: hunter2\n", encoding="utf-8")
    path = write_config(tmp_path / "driftmon.yml", small_config(web_config_file=str(web)))
    done = run_cli(command, "--config", str(path), timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "basic_auth_users.viewer: is not a bcrypt hash" in done.stderr
    assert "hunter2" not in done.stderr


def test_check_config_shows_the_web_config_flag(tmp_path: Path, files: ViewerFiles) -> None:
    """A valid --web.config.file passes check-config and appears as http.web_config_file."""
    web = write_web_config(tmp_path / "web.yml", files.web_config())
    path = write_config(tmp_path / "driftmon.yml", small_config())
    done = run_cli("check-config", "--config", str(path), "--web.config.file", str(web))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["http"]["web_config_file"] == str(web)


@pytest.mark.e2e
def test_prometheus_scrapes_over_tls_with_basic_auth(files: ViewerFiles, tmp_path: Path) -> None:
    """Prometheus with tls_config + basic_auth scrapes /metrics (up 1); a wrong password: up 0."""
    registry = CollectorRegistry()
    PipelineMetrics(
        registry, topics=("features",), features={"fraud": ("amount",)},
        evaluation_interval_seconds=15.0,
    )  # fmt: skip
    web = load_web_config(write_web_config(tmp_path / "web.yml", files.web_config()))
    with HttpServer(
        "127.0.0.1",
        0,
        registry=registry,
        snapshot=lambda: Snapshot(0.0),
        health=FakeHealth(),
        web_config=web,
    ) as server:
        target = f"127.0.0.1:{server.port}"

        def job(name: str, password: str) -> dict[str, Any]:
            return {
                "job_name": name,
                "scheme": "https",
                "tls_config": {"ca_file": str(files.ca)},
                "basic_auth": {"username": USER, "password": password},
                "static_configs": [{"targets": [target]}],
            }

        prom_config = tmp_path / "prometheus.yml"
        prom_config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "500ms", "scrape_timeout": "500ms"},
                    "scrape_configs": [job("viewer", PASSWORD), job("intruder", "guess")],
                }
            ),
            encoding="utf-8",
        )
        with PrometheusServer(prom_config, tmp_path) as prom:

            def scraped() -> dict[str, str] | None:
                up = {r["metric"]["job"]: r["value"][1] for r in prom.query("up")}
                return up if len(up) == 2 else None

            up = wait_until(scraped, 60, message="both jobs scraped")
            assert up == {"viewer": "1", "intruder": "0"}
            assert prom.query('driftmon_build_info{job="viewer"}')
