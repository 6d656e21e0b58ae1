"""What every measured subprocess shares (stdlib + numpy only; the peers import it too).

A measured process prints exactly one line `RESULT {json}` on stdout; `parse_result` finds it
in the runner. Peak memory is the process's own high-water mark: `VmHWM` from
/proc/self/status (the peak RSS of this process image; unlike `ru_maxrss` it does not carry
over the parent's peak across fork + exec), with `ru_maxrss` as the fallback elsewhere.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

RESULT_PREFIX = "RESULT "


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """Resident memory of this process now, in MiB (VmRSS; 0 where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Timer:
    """Context manager that appends each timed block's duration (seconds) to `times`."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.times.append(time.perf_counter() - self._start)


def emit(result: dict[str, Any]) -> None:
    """Print the one RESULT line (adds the process's peak RSS) and flush."""
    result = {**result, "peak_rss_mib": round(peak_rss_mib(), 1)}
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def parse_result(output: str) -> dict[str, Any] | None:
    """The JSON of the last RESULT line in a process's stdout (None if there is none)."""
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_PREFIX):
            value = json.loads(line[len(RESULT_PREFIX) :])
            return value if isinstance(value, dict) else None
    return None


def stats_arguments(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of a statistics run: --data (the workload .npz) and --windows (a prefix)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True, help="workload .npz (bench.dataset)")
    parser.add_argument("--windows", type=int, default=None, help="only the first N windows")
    parser.add_argument("--variant", default="", help="tool-specific variant")
    return parser.parse_args(argv)


def stats_result(
    *,
    tool: str,
    version: str,
    method: str,
    kind: str,
    fit_s: float,
    window_s: Sequence[float],
    flags: Sequence[Sequence[bool]] | None,
    covered: Sequence[str],
    events_per_window: int,
    import_rss_mib: float,
    notes: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The RESULT payload of a statistics run (the runner scores `flags` against the truth).

    `flags[w][f]` is the tool's drift decision for window w and feature f (the workload's
    feature order); features outside `covered` are never flagged. `window_s` holds the timed
    seconds per window; `kind` is "batch" (a window at a time) or "streaming" (per event).
    """
    return {
        "tool": tool,
        "version": version,
        "method": method,
        "kind": kind,
        "fit_s": round(fit_s, 4),
        "window_ms": [round(t * 1e3, 4) for t in window_s],
        "events_per_window": events_per_window,
        "flags": None if flags is None else [[bool(x) for x in row] for row in flags],
        "covered": list(covered),
        "import_rss_mib": round(import_rss_mib, 1),
        "notes": list(notes),
        **(extra or {}),
    }
