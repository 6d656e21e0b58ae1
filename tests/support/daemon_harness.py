"""Shared helpers for the daemon integration tests: run `driftmon run` as a real subprocess.

- `daemon_config` / `write_config`: a config dict (HTTP on 127.0.0.1 port 0, JSON logs, the
  fast tansu consumer timeouts) written as YAML into a test's tmp_path.
- `DaemonProcess`: starts `python -m monitor run --config ...` with stdout and stderr captured
  to one log file per start, finds the bound HTTP port in the `serving` log line, waits for
  /readyz, scrapes /metrics (`Metrics`), fetches /status, stops with SIGTERM or kill -9.
  It is a context manager that always kills what it started.
- `Metrics`: a parsed /metrics exposition, one float per (sample name, labels) series.
- `produce`: a KafkaProducer that accepts large messages; `run_cli`: `python -m monitor ...`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from monitor.dev.broker import FAST_CONSUMER_KWARGS
from tests.support.waiting import GiveUpError, wait_until

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
LabelKey = tuple[tuple[str, str], ...]


# -- configuration ----------------------------------------------------------------------------


def model_entry(
    name: str,
    features: Sequence[tuple[str, str]],
    reference: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """One `models:` item: features as (name, kind) pairs and a `reference:` mapping."""
    return {
        "name": name,
        "reference": dict(reference),
        "features": [{"name": f, "kind": k} for f, k in features],
        **extra,
    }


def daemon_config(
    *,
    bootstrap: str,
    topics: Sequence[str],
    models: Sequence[Mapping[str, Any]],
    state_dir: Path,
    group_id: str | None = None,
    window: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    checkpoint_interval: str = "1s",
    kafka: Mapping[str, Any] | None = None,
    event: Mapping[str, Any] | None = None,
    log_level: str = "info",
) -> dict[str, Any]:
    """A complete daemon config for tests: 127.0.0.1:0, JSON logs, fast consumer timeouts.

    `group_id` defaults to a fresh unique name so tests sharing a broker never share a group.
    """
    config: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": list(topics),
            "group_id": group_id or f"driftmon-test-{uuid.uuid4().hex[:8]}",
            **FAST_CONSUMER_KWARGS,
            **(kafka or {}),
        },
        "models": [dict(m) for m in models],
        "window": dict(window or {"bucket": "1m", "length": "10m", "allowed_lateness": "1m"}),
        "evaluation": dict(evaluation or {"interval": "1s", "min_samples": 500}),
        "http": {"host": "127.0.0.1", "port": 0},
        "state": {"dir": str(state_dir), "checkpoint_interval": checkpoint_interval},
        "log": {"level": log_level, "format": "json"},
    }
    if event:
        config["event"] = dict(event)
    return config


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    """Write `config` as YAML to `path` and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    return path


# -- metrics ------------------------------------------------------------------------------------


class Metrics:
    """A parsed Prometheus text exposition: one value per (sample name, sorted labels)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.series: dict[tuple[str, LabelKey], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                self.series[key] = float(sample.value)

    def __len__(self) -> int:
        """Number of series in the exposition."""
        return len(self.series)

    def get(self, name: str, /, **labels: str) -> float | None:
        """The value of the series `name{labels}` (all labels given), None when absent."""
        return self.series.get((name, tuple(sorted(labels.items()))))

    def value(self, name: str, **labels: str) -> float:
        """The value of the series `name{labels}`; AssertionError naming it when absent."""
        value = self.get(name, **labels)
        if value is None:
            raise AssertionError(f"no series {name}{labels} in /metrics")
        return value

    def find(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        """Every series of `name` whose labels include `labels`."""
        want = set(labels.items())
        return [
            (dict(key), v)
            for (sample, key), v in self.series.items()
            if sample == name and want <= set(key)
        ]

    def total(self, name: str, **labels: str) -> float:
        """Sum of every series of `name` whose labels include `labels`."""
        return sum(v for _, v in self.find(name, **labels))

    def names(self) -> set[str]:
        """Every sample name present."""
        return {name for name, _ in self.series}


# -- the daemon process -----------------------------------------------------------------------


class DaemonProcess:
    """`driftmon run --config CONFIG [ARGS]` as a child process; logs go to `workdir/daemon-N.log`.

    Every `start()` opens a new log file (N = 1, 2, ...), so the port and the log lines of each
    run stay apart. `close()` (or leaving the `with` block) kills a process still running.
    """

    def __init__(
        self,
        config: Path,
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        prefix: Sequence[str] = (),
        args: Sequence[str] = (),
    ) -> None:
        """`prefix`: a command the daemon runs under (e.g. `setpriv`); `args`: extra run flags."""
        self.config = config
        self.workdir = workdir
        self.prefix = tuple(prefix)
        self.args = tuple(args)  # extra `driftmon run` arguments, e.g. --web.config.file
        self.env = {**clean_environ(), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.port: int | None = None

    # lifecycle

    @property
    def log_path(self) -> Path:
        """The log file of the current (or last) run."""
        return self.workdir / f"daemon-{self.runs}.log"

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, wait_http: float = 30.0) -> None:
        """Start the daemon and wait until its HTTP server listens (port read from the log)."""
        if self.running:
            raise RuntimeError("the daemon is already running")
        self.runs += 1
        self.port = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *self.prefix,
                    sys.executable,
                    "-m",
                    "monitor",
                    "run",
                    "--config",
                    str(self.config),
                    *self.args,
                ],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.port = wait_until(
            self._serving_port, wait_http, message="the daemon's HTTP server", on_timeout=self.tail
        )

    def _serving_port(self) -> int | None:
        for line in self.log_lines():
            if line.get("event") == "serving":
                return int(str(line["url"]).rsplit(":", 1)[1].split("/", 1)[0])
        if not self.running:
            raise AssertionError(f"the daemon exited early:\n{self.tail()}")
        return None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait up to `timeout` s; returns the exit code (kills on timeout)."""
        proc = self._proc()
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"the daemon did not exit within {timeout:g}s of SIGTERM:\n{self.tail()}"
            ) from None

    def kill(self) -> None:
        """kill -9 and reap."""
        proc = self._proc()
        proc.kill()
        proc.wait()

    def close(self) -> None:
        """Kill the process if it is still running (idempotent)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _proc(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError("the daemon was never started")
        return self.proc

    # HTTP

    @property
    def url(self) -> str:
        """Base URL of the running daemon."""
        if self.port is None:
            raise RuntimeError("the daemon's port is not known yet")
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET `path`; returns (status code, body) for 2xx and error statuses alike."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def metrics(self, *names: str) -> Metrics:
        """Scrape and parse /metrics (only the families `names`, when given: prometheus_client's
        `name[]` filter, which spares the daemon rendering every per-feature series)."""
        query = "&".join(f"name[]={urllib.parse.quote(n)}" for n in names)
        code, body = self.get("/metrics" + (f"?{query}" if query else ""))
        assert code == 200, f"/metrics answered {code}"
        return Metrics(body.decode("utf-8"))

    def status(self) -> dict[str, Any]:
        """Fetch /status as JSON."""
        code, body = self.get("/status")
        assert code == 200, f"/status answered {code}"
        data: dict[str, Any] = json.loads(body)
        return data

    def ready(self) -> bool:
        """True when /readyz answers 200."""
        return self.get("/readyz")[0] == 200

    def live(self) -> bool:
        """True when /livez answers 200."""
        return self.get("/livez")[0] == 200

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until /readyz answers 200 (fails early if the process died)."""

        def check() -> bool:
            if not self.running:
                raise GiveUpError(f"the daemon exited:\n{self.tail()}")
            return self.ready()

        wait_until(check, timeout, message="/readyz 200", on_timeout=self.tail)

    def wait_metric(
        self,
        name: str,
        expected: float,
        timeout: float = 30.0,
        **labels: str,
    ) -> Metrics:
        """Scrape until `name{labels}` equals `expected`; returns that scrape."""

        def check() -> Metrics | None:
            if not self.running:
                raise GiveUpError(f"the daemon exited:\n{self.tail()}")
            scraped = self.metrics()
            return scraped if scraped.get(name, **labels) == expected else None

        def diagnose() -> str:
            try:
                seen = repr(self.metrics().get(name, **labels))
            except Exception as exc:  # the daemon may be gone
                seen = f"unavailable ({exc!r})"
            return f"{name}{labels} is {seen}, expected {expected}\n{self.tail()}"

        scraped = wait_until(
            check, timeout, message=f"{name}{labels} == {expected}", on_timeout=diagnose
        )
        assert scraped is not None
        return scraped

    # logs

    def log_lines(self, run: int | None = None) -> list[dict[str, Any]]:
        """The JSON log lines of one run (default: the current one); other lines are skipped."""
        path = self.workdir / f"daemon-{run or self.runs}.log"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        out: list[dict[str, Any]] = []
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def evaluations(self, run: int | None = None) -> list[dict[str, Any]]:
        """The `evaluation` summary log lines of one run, in order."""
        return [line for line in self.log_lines(run) if line.get("event") == "evaluation"]

    def wait_evaluations(self, n: int = 1, timeout: float = 30.0) -> None:
        """Wait until the current run has logged `n` more evaluations than it has now."""
        want = len(self.evaluations()) + n

        def check() -> bool:
            if not self.running:
                raise GiveUpError(f"the daemon exited:\n{self.tail()}")
            return len(self.evaluations()) >= want

        wait_until(check, timeout, message=f"{n} more evaluation(s)", on_timeout=self.tail)

    def tail(self, chars: int = 4000) -> str:
        """The end of the current run's log, for failure messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no daemon log)"
        return f"--- daemon log {self.log_path} (tail) ---\n{text[-chars:]}"


# -- Kafka and CLI helpers --------------------------------------------------------------------


def clean_environ() -> dict[str, str]:
    """This process's environment without DRIFTMON_* variables (they would override configs)."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("DRIFTMON_")}


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes],
    *,
    key: bytes | None = None,
    max_request_size: int = 16 * 1024 * 1024,
) -> int:
    """Send every value to `topic`, flush, and check each delivery; returns the count.

    `max_request_size` is raised above kafka-python's 1 MiB default so big messages can be
    produced (tansu accepts at least 11 MB per record).
    """
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        bootstrap_timeout_ms=10_000,
        max_request_size=max_request_size,
        linger_ms=5,
    )
    try:
        futures = [producer.send(topic, value=v, key=key) for v in values]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    return len(futures)


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run `python -m monitor ARGS` from the repository root; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=REPO,
        env={**clean_environ(), **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
