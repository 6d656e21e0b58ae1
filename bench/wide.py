"""The daemon's hot path at width, in process (no broker), in CPU time per event.

    .venv/bin/python -m bench.wide                        # this tree
    .venv/bin/python -m bench.wide --baseline a716bb1     # + the package as it was at a commit

Each run is a fresh process: it builds the daemon with `monitor.compose` over an in-memory
source holding the e2e workload's events (bench.e2e: 20 + 2, 200 + 20, 2000 + 200 features,
and 2000 + 200 with `sample_rate: 0.1`), hands them to `Daemon.process` in polls of the size
the e2e benchmark's 1 MiB fetches produce, counts every pending event, and reports the
process CPU time per event (`time.process_time`, so other processes on a shared machine
distort it much less than wall time), the CPU time of one evaluation of the full window
(median of 7) and the peak RSS. Evaluations and checkpoints are off during the loop.

`--baseline REV` extracts `monitor/` at REV (`git archive`) into a temporary directory and
runs the same cells with it first on the import path, interleaved A B A B with this tree;
the table shows medians. Peak RSS includes the workload's encoded events held in memory (a
few hundred MiB at 2,200 features), so compare it between rows, not with the daemon's budget.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import emit, parse_result, peak_rss_mib

REPO = Path(__file__).resolve().parents[1]
CELLS: tuple[tuple[int, int, float, int], ...] = (
    (20, 4535, 1.0, 60_000),
    (200, 937, 1.0, 30_000),
    (2000, 94, 1.0, 3_000),
    (2000, 94, 0.1, 3_000),
)
"""(numeric features, events per poll, sample_rate, events)."""


def worker(numeric: int, per_poll: int, rate: float, n_events: int) -> dict[str, Any]:
    """One measured run with whatever `monitor` is first on the import path."""
    import monitor

    assert monitor.__file__ is not None
    from bench import e2e, workload
    from monitor.compose import build_daemon
    from monitor.config import load_settings
    from monitor.daemon import tune_garbage_collector
    from monitor.model import RawMessage

    width = next(w for w in e2e.WIDTHS if w.numeric == numeric)
    tmp = Path(tempfile.mkdtemp(prefix="driftmon-wide-"))
    reference = tmp / "reference.json"
    e2e.fit_reference(width, reference)
    batch = workload.draw(
        workload.stream_rng(4, numeric),
        n_events,
        n_numeric=numeric,
        n_categorical=width.categorical,
    )
    raw = [
        RawMessage("t", 0, i, 1, m)
        for i, m in enumerate(e2e.encode_events(batch, time.time() - 1800.0, 1800.0))
    ]
    del batch
    document = json.loads(e2e.config_yaml("127.0.0.1:1", "t", "g", reference, width, tmp / "s"))
    document["evaluation"]["interval"] = "1h"
    document["state"]["checkpoint_interval"] = "1h"
    if rate < 1.0:
        document["models"][0]["sample_rate"] = rate
    (tmp / "config.yaml").write_text(json.dumps(document))

    class Source:
        """Hands nothing out: the loop below calls `process` itself."""

        def poll(self, timeout_s: float, max_records: int, held_bytes: int = 0) -> list[Any]:
            return []

        def held_back(self) -> bool:
            return False

        def commit(self, offsets: Any) -> None:
            """Nothing to commit."""

        def assignment(self) -> frozenset[tuple[str, int]]:
            return frozenset({("t", 0)})

        def lag(self) -> dict[tuple[str, int], int]:
            return {}

        def unreadable_batches(self) -> dict[tuple[str, Any], int]:
            return {}

        def is_connected(self) -> bool:
            return True

        def close(self) -> None:
            """Nothing to close."""

    daemon = build_daemon(load_settings(tmp / "config.yaml"), lambda a, r: Source()).daemon
    daemon.start()
    tune_garbage_collector()
    started = time.process_time()
    for lo in range(0, len(raw), per_poll):
        daemon.process(raw[lo : lo + per_poll])
    apply = getattr(daemon, "apply_pending", None)
    if apply is not None:
        apply()
    cpu = time.process_time() - started
    runtime = next(iter(daemon.runtimes.values()))
    evaluations = []
    for _ in range(7):
        begin = time.process_time()
        runtime.evaluate(time.time())
        evaluations.append(time.process_time() - begin)
    assert runtime.window is not None
    return {
        "cpu_us_per_event": cpu / len(raw) * 1e6,
        "evaluate_cpu_ms": statistics.median(evaluations) * 1e3,
        "accepted": int(runtime.window.current()[0].sum()),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "monitor": str(Path(monitor.__file__).parent),
    }


def _run(code: Path, cell: tuple[int, int, float, int]) -> dict[str, Any] | None:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join((str(code), str(REPO)))}
    done = subprocess.run(
        [sys.executable, "-m", "bench.wide", "--worker", *map(str, cell)],
        cwd=code,  # `python -m` puts the working directory first on the import path
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    return parse_result(done.stdout)


def _extract(revision: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", revision, "monitor"], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cells (and the baseline's) and print one Markdown table of medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", help="a git revision to compare with")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        numeric, per_poll, rate, events = args.worker
        emit(worker(int(numeric), int(per_poll), float(rate), int(events)))
        return 0
    with tempfile.TemporaryDirectory(prefix="driftmon-wide-base-") as tmp:
        codes = {"this tree": REPO}
        if args.baseline:
            codes = {f"at {args.baseline}": _extract(args.baseline, Path(tmp)), **codes}
        results: dict[tuple[str, tuple[int, int, float, int]], list[dict[str, Any]]] = {}
        for _ in range(args.reps):
            for cell in CELLS:
                for name, code in codes.items():
                    if cell[2] < 1.0 and code != REPO:
                        continue  # sample_rate is newer than any baseline
                    result = _run(code, cell)
                    if result is not None:
                        results.setdefault((name, cell), []).append(result)
        load = os.getloadavg()
    print("| features | sample_rate | code | CPU us/event | evaluation CPU ms | peak RSS MiB |")
    print("|---|---:|---|---:|---:|---:|")
    for cell in CELLS:
        for name in codes:
            runs = results.get((name, cell), [])
            if not runs and cell[2] < 1.0 and codes[name] != REPO:
                continue
            if not runs:
                print(f"| {cell[0]} + {cell[0] // 10} | {cell[2]:g} | {name} | failed | | |")
                continue
            cpu = statistics.median(r["cpu_us_per_event"] for r in runs)
            evaluation = statistics.median(r["evaluate_cpu_ms"] for r in runs)
            rss = statistics.median(r["peak_rss_mib"] for r in runs)
            print(
                f"| {cell[0]} + {cell[0] // 10} | {cell[2]:g} | {name} | {cpu:,.1f} | "
                f"{evaluation:.1f} | {rss:.0f} |"
            )
    print(f"\nload average after the runs: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
