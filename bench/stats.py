"""Measurements 1 and 2: statistics on in-memory windows, and detection at default settings.

Every tool runs in its own process on the same workload file (`bench.dataset`): driftmon
in the project's environment (`bench.stats_driftmon`), each peer in its own virtualenv
(`bench.peers.*`). With peers, each peer run is paired with a driftmon run just before it
(A B A B ...), and the "vs driftmon" ratios are medians over those pairs: both sides of a
ratio saw the same machine load. Times are the median over windows of one run, then the
median over runs; peak RSS is the median of the runs' own high-water marks.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.dataset import Dataset
from bench.procs import Log, Run, run_module
from bench.report import Table
from bench.scoring import score
from bench.venvs import Peer, ensure, python_of
from bench.workload import SCENARIOS

DRIFTMON_MODULE = "bench.stats_driftmon"


@dataclass
class Entry:
    """The runs of one tool variant, and the driftmon runs paired with them."""

    label: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    paired: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    windows: int | None = None


def _median_ms(result: dict[str, Any], key: str = "window_ms") -> float:
    return float(statistics.median(result[key]))


def _run_driftmon(data: Path, log: Log) -> Run:
    run = run_module(sys.executable, DRIFTMON_MODULE, ["--data", str(data)])
    log(f"  driftmon statistics: {'ok' if run.ok else run.error} ({run.seconds:.1f} s)")
    return run


def measure(
    data: Path, *, peers: Sequence[Peer], reps: int, peer_reps: int, log: Log
) -> tuple[list[dict[str, Any]], list[Entry]]:
    """Run driftmon `reps` times, then every peer variant `peer_reps` times, each after a
    driftmon run. Returns all driftmon results and one Entry per peer variant."""
    driftmon: list[dict[str, Any]] = []
    for _ in range(reps):
        run = _run_driftmon(data, log)
        if run.result is None:
            raise RuntimeError(f"driftmon statistics run failed: {run.error}")
        driftmon.append(run.result)
    entries: list[Entry] = []
    for p in peers:
        log(f"peer {p.name}: preparing .bench-venvs/{p.name}")
        reason = ensure(p)
        for variant, windows in p.variants:
            entry = Entry(f"{p.name} {variant}".strip(), windows=windows)
            entries.append(entry)
            if reason:
                entry.error = f"not installed: {reason}"
                continue
            args = ["--data", str(data)] + (["--variant", variant] if variant else [])
            args += ["--windows", str(windows)] if windows is not None else []
            for _ in range(peer_reps):
                mine = _run_driftmon(data, log)
                theirs = run_module(python_of(p), p.module, args)
                status = "ok" if theirs.ok else theirs.error
                log(f"  {entry.label}: {status} ({theirs.seconds:.1f} s)")
                if mine.result is not None:
                    driftmon.append(mine.result)
                if theirs.result is None:
                    entry.error = theirs.error
                    break
                entry.runs.append(theirs.result)
                if mine.result is not None:
                    entry.paired.append(mine.result)
    return driftmon, entries


def _ratio(entry: Entry, key: str) -> float | None:
    ratios = [
        _median_ms(theirs) / _median_ms(mine, key)
        for theirs, mine in zip(entry.runs, entry.paired, strict=False)
    ]
    return float(statistics.median(ratios)) if ratios else None


def speed_table(driftmon: list[dict[str, Any]], entries: Sequence[Entry]) -> Table:
    """Measurement 1: ms per window, events/s, ratio to driftmon, peak RSS."""
    first = driftmon[0]
    table = Table(
        "stats",
        f"Statistics on in-memory windows ({first['events_per_window']:,} events x "
        f"{len(first['covered'])} features; {len(first['window_ms'])} windows)",
        [
            "tool",
            "what is timed per window",
            "kind",
            "ms / window",
            "events/s",
            "x driftmon bin+evaluate",
            "x driftmon evaluate",
            "peak RSS MiB",
            "RSS after imports MiB",
            "runs",
        ],
    )
    events = driftmon[0]["events_per_window"]
    for key, what in (
        ("window_ms", "bin the window (ModelLayout) + ModelEvaluator.evaluate"),
        ("evaluate_ms", "ModelEvaluator.evaluate only (the daemon's cost per evaluation)"),
    ):
        ms = statistics.median(_median_ms(r, key) for r in driftmon)
        table.add(
            driftmon[0]["version"],
            what,
            "batch",
            ms,
            events / ms * 1e3,
            None,
            None,
            statistics.median(r["peak_rss_mib"] for r in driftmon),
            statistics.median(r["import_rss_mib"] for r in driftmon),
            len(driftmon),
        )
    for entry in entries:
        if not entry.runs:
            table.add(entry.label, f"not run: {entry.error}", *([None] * 8))
            continue
        first = entry.runs[0]
        ms = statistics.median(_median_ms(r) for r in entry.runs)
        scope = "" if entry.windows is None else f" (windows 0-{entry.windows - 1} only)"
        table.add(
            first["version"],
            first["method"] + scope,
            first["kind"],
            ms,
            first["events_per_window"] / ms * 1e3,
            _ratio(entry, "window_ms"),
            _ratio(entry, "evaluate_ms"),
            statistics.median(r["peak_rss_mib"] for r in entry.runs),
            statistics.median(r["import_rss_mib"] for r in entry.runs),
            len(entry.runs),
        )
    table.notes += [
        "ms / window: median over the windows of one run, then median over runs. "
        "Data is in memory; building columns or DataFrames is not timed.",
        "x driftmon: the tool's ms / window divided by driftmon's in the run just before it "
        "(same load), median over pairs; > 1 means driftmon is faster.",
        "peak RSS: each run's own process high-water mark (VmHWM), imports and data included.",
        "River is a streaming detector (per event); the others are batch (per window).",
    ]
    return table


def detection_table(
    driftmon: list[dict[str, Any]], entries: Sequence[Entry], dataset: Dataset
) -> Table:
    """Measurement 2: detected drifted pairs and false alarms at each tool's defaults."""
    schedule = dataset.schedule
    drifted = int(dataset.truth.sum())
    table = Table(
        "detection",
        f"Detection at default settings ({drifted:,} drifted and "
        f"{dataset.truth.size - drifted:,} clean (window, feature) pairs)",
        ["tool", "decision (defaults)", "features", "detected", "false alarms"]
        + [s.name for s in SCENARIOS],
    )

    def add(result: dict[str, Any]) -> None:
        result_score = score(np.asarray(result["flags"]), dataset.truth, schedule)
        covered = len(result["covered"])
        table.add(
            result["version"],
            result["method"],
            f"{covered} of {len(dataset.features)}",
            result_score.detected_text,
            result_score.false_alarm_text,
            *("{}/{}".format(*result_score.per_scenario.get(s.name, (0, 0))) for s in SCENARIOS),
        )

    add(driftmon[0])
    consistent = [
        r["flags"] == driftmon[0]["flags"] for r in driftmon[1:]
    ]  # same inputs, same code
    for entry in entries:
        if not entry.runs:
            table.add(entry.label, f"not run: {entry.error}", *([None] * (3 + len(SCENARIOS))))
            continue
        if entry.windows is None:
            add(entry.runs[0])
    table.notes.append(
        "Each tool's per-feature decision at its documented defaults; features a tool does not "
        "cover count as not flagged. Scenarios: "
        + "; ".join(f"{s.name}: {s.description} ({', '.join(s.features)})" for s in SCENARIOS)
    )
    if not all(consistent):
        table.notes.append("WARNING: driftmon's decisions differed between runs")
    return table


def prefix_notes(entries: Sequence[Entry], tables: Sequence[Table]) -> None:
    """For a variant timed on a prefix of windows, say whether its decisions there equal the
    full run of the same peer (Evidently's preset vs its stat-test functions)."""
    by_peer: dict[str, list[Entry]] = {}
    for entry in entries:
        by_peer.setdefault(entry.label.split()[0], []).append(entry)
    for group in by_peer.values():
        full = [e for e in group if e.windows is None and e.runs]
        for partial in (e for e in group if e.windows is not None and e.runs):
            if not full:
                continue
            n = len(partial.runs[0]["flags"])
            same = partial.runs[0]["flags"] == full[0].runs[0]["flags"][:n]
            tables[-1].notes.append(
                f"{partial.label} ran windows 0-{n - 1} only (for its time); its decisions there "
                f"{'equal' if same else 'DIFFER from'} those of {full[0].label}."
            )


def run(data: Path, *, peers: Sequence[Peer], reps: int, peer_reps: int, log: Log) -> list[Table]:
    """Measurements 1 and 2 as two tables."""
    driftmon, entries = measure(data, peers=peers, reps=reps, peer_reps=peer_reps, log=log)
    tables = [speed_table(driftmon, entries), detection_table(driftmon, entries, Dataset(data))]
    prefix_notes(entries, tables)
    return tables
