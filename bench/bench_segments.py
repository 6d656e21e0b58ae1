"""Cost of segments in the daemon's own runtime, without a broker; prints a Markdown table.

    .venv/bin/python -m bench.bench_segments [--events 200000] [--reps 5]

Two `ModelRuntime`s with `file` references fitted on the same 20,000 reference events of the
benchmark workload (20 numeric + 2 categorical features, `bench.workload`): A without
segments, B with `segment_by: features.seg` and `max_segments: 10` (`seg` drawn from 15
values with Zipf-like shares, as in the e2e row "20 + 2, 10 segments"). Each ingests the same
events in batches of 5,000 (what a poll of the daemon holds) with the daemon's deferred
ingest (`defer=True`, then `flush`), A B A B ..., each run in a fresh runtime. The table
gives the median CPU time (`time.process_time`) per event of `ingest` and of one evaluation
of the full window, and the ratio B / A in the same run. CPU time, not wall time: the
machine is shared, and other processes inflate wall time but much less the CPU time of this
one. The e2e benchmark (`bench.e2e`) measures the whole daemon loop against raw
kafka-python.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import workload
from bench.e2e import SEGMENTED, segment_values
from bench.report import load_average, machine_info
from monitor.account import BatchAccount
from monitor.decode import ModelColumns
from monitor.model import (
    FeatureKind,
    FeatureSpec,
    ModelPlan,
    ReferenceMode,
    ReferencePlan,
    SegmentPlan,
)
from monitor.reference import fit_profile, profile_to_json
from monitor.runtime import ModelRuntime
from monitor.tools.profile_io import with_segments

BATCH = 5_000
REFERENCE_EVENTS = 20_000


def _specs() -> list[FeatureSpec]:
    numeric = [FeatureSpec(n, FeatureKind.NUMERIC) for n in workload.numeric_names(20)]
    return numeric + [
        FeatureSpec(n, FeatureKind.CATEGORICAL) for n in workload.categorical_names(2)
    ]


def _columns(
    batch: workload.Batch, seg: list[str]
) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    categorical = [
        np.asarray(workload.category_strings(batch.categorical[:, j], j), dtype=object)
        for j in range(2)
    ]
    return np.ascontiguousarray(batch.numeric.T), categorical, seg


def _runtime(path: Path, segmented: bool, now: float) -> ModelRuntime:
    plan = ModelPlan(
        name="bench",
        features=tuple(_specs()),
        reference=ReferencePlan(ReferenceMode.FILE, path=path),
        segments=SegmentPlan("features.seg", "seg", 10) if segmented else None,
    )
    runtime = ModelRuntime(plan, clock=lambda: now, state_dir=path.parent)
    runtime.load_reference_file()
    return runtime


def _run(path: Path, segmented: bool, data: Any, times: np.ndarray) -> tuple[float, float]:
    """(ingest CPU us/event, evaluation CPU ms) of one fresh runtime over every event."""
    numeric, categorical, seg = data
    now = float(times[-1]) + 1.0
    runtime = _runtime(path, segmented, now)
    n = times.size
    started = time.process_time()
    for lo in range(0, n, BATCH):
        part = slice(lo, lo + BATCH)
        extra = (np.asarray(seg[part], dtype=object),) if segmented else ()
        runtime.ingest(
            ModelColumns(
                model="bench",
                times=times[part],
                numeric=numeric[:, part],
                categorical=(*(c[part] for c in categorical), *extra),
                model_version="",
                sources=np.zeros(min(BATCH, n - lo), dtype=np.int32),
            ),
            defer=True,
        )
    runtime.flush(BatchAccount())
    ingest = (time.process_time() - started) * 1e6 / n
    evaluations = []
    for _ in range(5):
        started = time.process_time()
        runtime.evaluate(now)
        evaluations.append((time.process_time() - started) * 1e3)
    return ingest, statistics.median(evaluations)


def main() -> None:
    """Run A B A B and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    load_before = load_average()
    reference = workload.draw(
        workload.stream_rng(3, 20), REFERENCE_EVENTS, n_numeric=20, n_categorical=2
    )
    ref_numeric, ref_categorical, _ = _columns(reference, [])
    names = workload.numeric_names(20)
    numeric = {n: ref_numeric[i] for i, n in enumerate(names)}
    categorical = dict(zip(workload.categorical_names(2), ref_categorical, strict=True))
    profile = fit_profile("bench", _specs(), numeric, categorical)
    seg = np.asarray(segment_values(SEGMENTED, REFERENCE_EVENTS, 3), dtype=object)
    profile = with_segments(profile, "seg", 10, numeric, {**categorical, "seg": seg})
    batch = workload.draw(workload.stream_rng(4, 20), args.events, n_numeric=20, n_categorical=2)
    data = _columns(batch, segment_values(SEGMENTED, args.events, 4))
    times = time.time() - 1800.0 + np.arange(args.events) * (1800.0 / args.events)
    rows: dict[str, list[tuple[float, float]]] = {"plain": [], "segments": []}
    with tempfile.TemporaryDirectory(prefix="driftmon-bench-segments-") as tmp:
        path = Path(tmp) / "reference.json"
        path.write_text(profile_to_json(profile), encoding="utf-8")
        for _ in range(args.reps):
            rows["plain"].append(_run(path, False, data, times))
            rows["segments"].append(_run(path, True, data, times))
    plain_ingest = statistics.median(r[0] for r in rows["plain"])
    plain_eval = statistics.median(r[1] for r in rows["plain"])
    ratios = [b[0] / a[0] for a, b in zip(rows["plain"], rows["segments"], strict=True)]
    print("| runtime (20 + 2 features) | ingest CPU us/event | evaluation CPU ms | ingest B / A |")
    print("|---|---|---|---|")
    print(f"| A: no segments | {plain_ingest:.2f} | {plain_eval:.1f} | 1 |")
    print(
        f"| B: 10 segments + OTHER | {statistics.median(r[0] for r in rows['segments']):.2f} | "
        f"{statistics.median(r[1] for r in rows['segments']):.1f} | "
        f"{statistics.median(ratios):.2f} |"
    )
    info = machine_info()
    print(
        f"\n{args.events} events in batches of {BATCH}, {args.reps} A B pairs; "
        f"{info['cpu_model']}, {info['cores']} cores, Python {info['python']}, "
        f"{info['date']}; load average before {load_before}, after {load_average()}"
    )


if __name__ == "__main__":
    main()
