"""The micro-benchmarks that live beside the suite (`bench_core.py`, `bench_decode.py`).

They print their own tables; this part runs each one that exists in a fresh process, saves
its output verbatim to `<out>/<module>.md`, and lists the files in one table.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.procs import REPO, Log
from bench.report import Table

MODULES = ("bench_core", "bench_decode", "bench_shadow")


def run(*, out_dir: Path, log: Log) -> list[Table]:
    """Run every micro-benchmark present and save its output."""
    table = Table(
        "micro",
        "Micro-benchmarks (their own tables, saved verbatim)",
        ["module", "output file", "seconds", "status"],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    for module in MODULES:
        if not (REPO / "bench" / f"{module}.py").is_file():
            continue
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", f"bench.{module}"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        seconds = time.monotonic() - started
        target = out_dir / f"{module}.md"
        if done.returncode == 0:
            target.write_text(done.stdout, encoding="utf-8")
            status = "ok"
        else:
            status = f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
        log(f"micro {module}: {status} ({seconds:.1f} s)")
        table.add(f"bench.{module}", target.name if status == "ok" else None, seconds, status)
    return [table]
