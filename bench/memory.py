"""Measurement 5: resident memory grows with features x bins, not with events.

For each width (22, 220 and 2,200 features) and each number of events in the window (10,000
and 100,000), a fresh process (`python -m bench.memory --worker ...`) loads the width's
reference profile into a `ModelRuntime` (default window: 60 one-minute buckets, 1 minute of
allowed lateness), then ingests clean events of that width in decoded batches of 1,000 with
event times spread over the hour, so every bucket of the ring holds counts, and evaluates
once. It reports its RSS after loading the reference, its peak RSS at the end, and the
runtime's own state bytes (`ModelRuntime.memory_bytes()`: the bucket ring, the running sum
and the reference counts, i.e. features x (bins + 4) x (buckets x 4 B + 16 B)).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import workload
from bench.e2e import Width, fit_reference
from bench.harness import current_rss_mib, emit
from bench.procs import Log, run_module
from bench.report import Table

BATCH = 1_000
EVENT_COUNTS = (10_000, 100_000)
WIDTHS: tuple[Width, ...] = (
    Width(20, 2, 0, 100_000),
    Width(200, 20, 0, 20_000),
    Width(2000, 200, 0, 5_000),
)
START = 1_767_225_600.0
WINDOW_S = 3600.0


def worker(width: Width, events: int, reference: Path, state_dir: Path) -> None:
    """Load the reference, ingest `events` events, evaluate once, print the RESULT line."""
    from bench.runtime import file_runtime
    from monitor.decode import ModelColumns

    runtime = file_runtime(
        reference,
        workload.numeric_names(width.numeric),
        workload.categorical_names(width.categorical),
        clock=lambda: START + WINDOW_S,
        state_dir=state_dir,
    )
    rss_reference = current_rss_mib()
    rng = workload.stream_rng(6, width.numeric)
    step = WINDOW_S / events
    for start in range(0, events, BATCH):
        n = min(BATCH, events - start)
        batch = workload.draw(rng, n, n_numeric=width.numeric, n_categorical=width.categorical)
        runtime.ingest(
            ModelColumns(
                model="bench",
                times=START + (start + np.arange(n, dtype=np.float64)) * step,
                numeric=np.ascontiguousarray(batch.numeric.T),
                categorical=tuple(
                    workload.category_strings(batch.categorical[:, j], j)
                    for j in range(width.categorical)
                ),
                model_version="v1",
                sources=np.zeros(n, dtype=np.int32),
            )
        )
    evaluation = runtime.evaluate(START + WINDOW_S)
    assert runtime.window is not None and runtime.layout is not None
    emit(
        {
            "features": len(runtime.specs),
            "columns": runtime.layout.width,
            "buckets": runtime.window.ring.n_slots,
            "events": int(runtime.window.current()[0].sum()),
            "evaluated": sum(f.evaluated for f in evaluation.features),
            "rss_reference_mib": round(rss_reference, 1),
            "rss_end_mib": round(current_rss_mib(), 1),
            "state_bytes": runtime.memory_bytes(),
        }
    )


def run(*, reps: int, log: Log) -> list[Table]:
    """Measurement 5 as one table (each cell: median of `reps` fresh processes)."""
    table = Table(
        "memory",
        "Resident memory vs features and events (ModelRuntime, default 1 h window)",
        [
            "features",
            "events in window",
            "count-matrix columns",
            "window + reference state MiB",
            "RSS after reference MiB",
            "peak RSS MiB",
            "RSS at end MiB",
            "runs",
        ],
    )
    with tempfile.TemporaryDirectory(prefix="driftmon-bench-memory-") as tmp:
        for width in WIDTHS:
            reference = Path(tmp) / f"reference-{width.numeric}.json"
            fit_reference(width, reference)
            for events in EVENT_COUNTS:
                results = []
                for _ in range(reps):
                    done = run_module(
                        sys.executable,
                        "bench.memory",
                        [
                            "--worker",
                            "--numeric",
                            str(width.numeric),
                            "--categorical",
                            str(width.categorical),
                            "--events",
                            str(events),
                            "--reference",
                            str(reference),
                            "--state",
                            str(Path(tmp) / "state"),
                        ],
                    )
                    log(f"memory {width.label} x {events}: {done.result or done.error}")
                    if done.result is not None:
                        results.append(done.result)
                if not results:
                    table.add(width.numeric + width.categorical, events, *([None] * 5), 0)
                    continue
                first = results[0]
                table.add(
                    first["features"],
                    first["events"],
                    first["columns"],
                    first["state_bytes"] / 2**20,
                    statistics.median(r["rss_reference_mib"] for r in results),
                    statistics.median(r["peak_rss_mib"] for r in results),
                    statistics.median(r["rss_end_mib"] for r in results),
                    len(results),
                )
    table.notes += [
        "State = 61 int32 bucket matrices (60 buckets + 1 of allowed lateness) + the int64 "
        "running sum + the int64 reference counts, each features x columns (133 = underflow, "
        "the minimum, 128 quantile bins, overflow, missing, invalid; categorical rows use 24).",
    ]
    table.notes.append(_growth_note(table))
    return [table]


def _growth_note(table: Table) -> str:
    """How much the peak RSS moves with 10x the events, at each number of features."""
    peaks: dict[int, list[float]] = {}
    for row in table.rows:
        if row[5] is not None:
            peaks.setdefault(int(row[0]), []).append(float(row[5]))
    changes = [
        f"{features:,} features: {p[-1] - p[0]:+.1f} MiB ({(p[-1] - p[0]) / p[0]:+.0%})"
        for features, p in peaks.items()
        if len(p) == 2
    ]
    return (
        f"Peak RSS with {EVENT_COUNTS[1] // EVENT_COUNTS[0]}x the events in the window: "
        + "; ".join(changes)
        + ". The state itself does not change with events; it grows with the number of "
        "features (x10 features, x10 state)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Worker entry point (the runner calls `run`)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--numeric", type=int, required=True)
    parser.add_argument("--categorical", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args(argv)
    width = Width(args.numeric, args.categorical, 0, 0)
    worker(width, args.events, args.reference, args.state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
