"""The image's runtime contract, run for real without Docker (tests/support/sandbox.py).

driftmon is installed from deploy/requirements.lock with --require-hashes, as the Dockerfile
does, then run under bubblewrap as uid 10001 on a read-only root with a tmpfs /tmp, its config
read-only on /etc/driftmon and its state on /var/lib/driftmon: it consumes from the real
broker on 127.0.0.1, serves /metrics, and checkpoints into the state directory only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.dev.broker import free_port
from tests.support.broker import FAST_CONSUMER_KWARGS, TansuBroker
from tests.support.daemon_harness import Metrics
from tests.support.sandbox import (
    CONFIG_DIR,
    STATE_DIR,
    UID,
    container_argv,
    image_venv,
    sandboxed_pid,
)

N_EVENTS = 400


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """driftmon installed like the image: lock file with hashes, then the project, no deps."""
    return image_venv(tmp_path_factory.mktemp("image"))


def container_config(bootstrap: str, topic: str, port: int, state_dir: str) -> dict[str, Any]:
    """The config mounted at /etc/driftmon/driftmon.yaml."""
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "group_id": f"container-{topic}",
            **FAST_CONSUMER_KWARGS,
        },
        "models": [
            {
                "name": "fraud",
                "reference": {"mode": "warmup", "warmup_events": 100},
                "features": [{"name": "amount", "kind": "numeric"}],
            }
        ],
        "window": {"bucket": "1m", "length": "10m", "allowed_lateness": "1m"},
        "evaluation": {"interval": "1s", "min_samples": 100},
        "http": {"host": "127.0.0.1", "port": port},
        "state": {"dir": state_dir, "checkpoint_interval": "1s"},
        "log": {"level": "info", "format": "json"},
    }


class Container:
    """`driftmon run --config /etc/driftmon/driftmon.yaml` inside the sandbox."""

    def __init__(self, venv: Path, workdir: Path, config: dict[str, Any]) -> None:
        self.config_dir = workdir / "etc"
        self.config_dir.mkdir()
        (self.config_dir / "driftmon.yaml").write_text(yaml.safe_dump(config))
        self.state_dir = workdir / "state"
        self.state_dir.mkdir()
        os.chown(self.state_dir, UID, UID)  # the Dockerfile's chown of /var/lib/driftmon
        self.log_path = workdir / "container.log"
        self.port = int(config["http"]["port"])
        self.argv = container_argv(
            venv,
            self.config_dir,
            self.state_dir,
            "driftmon",
            "run",
            "--config",
            f"{CONFIG_DIR}/driftmon.yaml",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        """Start bwrap with the daemon; output goes to the log file."""
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        return self.proc

    def log(self) -> str:
        """Everything the sandboxed process printed so far."""
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        """GET http://127.0.0.1:PORT/path; (status, body), errors as their status."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def wait(self, what: str, check: Any, timeout: float = 90.0) -> Any:
        """Poll `check()` until it returns a truthy value; fail with the log on timeout/exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"exited:\n{self.log()}"
            try:
                value = check()
            except OSError:
                value = None
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log()[-4000:]}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM to the daemon inside the sandbox (bwrap forwards no signal); its exit code."""
        assert self.proc is not None
        pid = sandboxed_pid(self.proc.pid)
        assert pid is not None, "no sandboxed process"
        os.kill(pid, signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Kill bwrap if it still runs (--die-with-parent takes the daemon with it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def produced(broker: TansuBroker, topic: str) -> Iterator[str]:
    """N_EVENTS valid events of model `fraud` on a fresh topic."""
    start = time.time() - 500
    broker.produce(
        topic,
        [
            json.dumps({"ts": start + i, "model": "fraud", "features": {"amount": i % 50}}).encode()
            for i in range(N_EVENTS)
        ],
    )
    yield topic


def test_daemon_runs_as_uid_10001_on_a_read_only_root(
    venv: Path, broker: TansuBroker, produced: str, tmp_path: Path
) -> None:
    """In the sandbox the daemon consumes every event from the broker, serves /metrics and
    /readyz, checkpoints only into the state volume (files owned by 10001) and exits 0."""
    config = container_config(broker.bootstrap, produced, free_port(), STATE_DIR)
    with Container(venv, tmp_path, config) as container:
        container.start()
        container.wait(
            f"{N_EVENTS} records consumed",
            lambda: (
                Metrics(container.get("/metrics")[1].decode()).get(
                    "driftmon_records_consumed_total", topic=produced
                )
                == N_EVENTS
            ),
        )
        container.wait("/readyz 200", lambda: container.get("/readyz")[0] == 200)
        container.wait(
            "a successful checkpoint",
            lambda: Metrics(container.get("/metrics")[1].decode()).get(
                "driftmon_checkpoints_total", result="success"
            ),
        )
        assert container.stop() == 0, container.log()
    written = sorted(p.relative_to(container.state_dir).as_posix() for p in _files(container))
    assert "checkpoint.npz" in written, written
    assert all(not name.endswith(".tmp") for name in written), written
    for path in _files(container):
        assert (path.stat().st_uid, path.stat().st_gid) == (UID, UID), path
    assert "Traceback" not in container.log()
    assert "Read-only file system" not in container.log()


def test_a_state_dir_outside_the_volume_fails_clearly(
    venv: Path, broker: TansuBroker, produced: str, tmp_path: Path
) -> None:
    """state.dir on the read-only root: the checkpoint write fails with a clear, logged error
    naming the read-only file system, counted as a failed checkpoint, and nothing is written."""
    config = container_config(broker.bootstrap, produced, free_port(), "/opt/driftmon-state")
    with Container(venv, tmp_path, config) as container:
        container.start()
        container.wait(
            "a failed checkpoint",
            lambda: Metrics(container.get("/metrics")[1].decode()).get(
                "driftmon_checkpoints_total", result="failure"
            ),
        )
        container.stop()
    log = container.log()
    assert "Read-only file system" in log, log[-4000:]
    assert "/opt/driftmon-state" in log, log[-4000:]
    assert "Traceback" not in log
    assert not Path("/opt/driftmon-state").exists()
    assert list(_files(container)) == []


def _files(container: Container) -> list[Path]:
    """Every file the daemon left in the state directory."""
    return [p for p in container.state_dir.rglob("*") if p.is_file()]
