"""Run one measured Python module in its own process and collect its RESULT line.

Every measurement that reports memory runs in a fresh process, so its peak RSS is its own.
The module runs from the repository root with the root on PYTHONPATH (the peer virtualenvs
do not have driftmon installed; they only import `bench.*`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import parse_result

REPO = Path(__file__).resolve().parent.parent
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Run:
    """The outcome of one measured process: its RESULT (None on failure) and why it failed."""

    result: dict[str, Any] | None
    error: str
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the process printed a RESULT line and exited 0."""
        return self.result is not None and not self.error


def log_stderr(message: str) -> None:
    """A progress line on stderr, prefixed with the time of day (`Log` of the benchmarks)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used so far (Linux `/proc/<pid>/stat`, fields
    14 and 15 in clock ticks); None without a process or without `/proc`."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(kept[-lines:])[-400:]


def run_module(
    python: Path | str,
    module: str,
    args: Sequence[str] = (),
    *,
    timeout_s: float = 1800.0,
    env: dict[str, str] | None = None,
) -> Run:
    """`python -m module args...` from the repository root; never raises for a failed run."""
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), environment.get("PYTHONPATH", "")) if p
    )
    started = time.monotonic()
    try:
        done = subprocess.run(
            [str(python), "-m", module, *args],
            cwd=REPO,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Run(None, f"timed out after {timeout_s:.0f} s", time.monotonic() - started)
    except OSError as exc:
        return Run(None, f"cannot start {python}: {exc}", time.monotonic() - started)
    seconds = time.monotonic() - started
    result = parse_result(done.stdout)
    if done.returncode != 0 or result is None:
        reason = _tail(done.stderr) or _tail(done.stdout) or "no output"
        return Run(None, f"exit {done.returncode}: {reason}", seconds)
    return Run(result, "", seconds)
