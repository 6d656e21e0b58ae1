"""Measurement 7: a fleet of two `driftmon run` replicas against one, at 200 + 20 features.

Issue 11's throughput question: do two replicas in one consumer group on this machine
consume faster than one, and what does the fleet write to its state topic per event?

Each run (N = 1 then N = 2, alternating, `reps` pairs) uses a fresh 6-partition topic on the
embedded tansu broker and a fresh consumer group:

1. start N real `driftmon run` processes (tests/support/fleet.py) with the e2e measurement's
   daemon settings (bench.e2e.config_yaml: defaults, 1 s evaluations, a file reference of the
   width) and consumer timeouts long enough to survive step 3 (session 20 s);
2. wait until the replicas split the 6 partitions between them (the group has settled);
3. SIGSTOP every replica, produce the backlog (`EVENTS` clean events of the width, round
   robin over the partitions), SIGCONT every replica: the producer's CPU and the group join
   stay out of the measurement;
4. from the SIGCONT, scrape every replica's /metrics every 0.2 s until the replicas have
   consumed the whole backlog; events/s = backlog / that time.

State-topic bytes per event: with `state.backend: kafka` (when the daemon has it) the
state topic is read from the beginning after the run and the bytes of its keys and values
are divided by the backlog; with the file backend there is no state topic and the column
says so. Rows: medians over the runs; the ratio is taken within each pair.

    python -m bench.fleet [--reps 3] [--events 60000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import workload
from bench.e2e import Width, config_yaml, encode_events, fit_reference
from bench.procs import Log
from bench.report import Table

PARTITIONS = 6
EVENTS = 60_000
WIDTH = Width(200, 20, EVENTS, 20_000)
TARGET_RATIO = 1.6
"""Issue 11: 2 replicas reach at least 1.6 times one replica's events/s."""
#: Consumer timeouts that outlast the SIGSTOP while the backlog is produced.
PAUSE_SAFE_KAFKA = {
    "session_timeout_ms": 20_000,
    "heartbeat_interval_ms": 2_000,
    "max_poll_interval_ms": 60_000,
}


def kafka_backend_available() -> bool:
    """True when this daemon's config has `state.backend` (the fleet protocol, issue 11)."""
    from monitor.config import StateSettings

    return "backend" in StateSettings.model_fields


def fleet_config(
    bootstrap: str, topic: str, reference: Path, width: Width, workdir: Path, backend: str
) -> dict[str, Any]:
    """The daemon config shared by the replicas of one run (fresh group and state topic)."""
    group = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    document: dict[str, Any] = json.loads(
        config_yaml(bootstrap, topic, group, reference, width, workdir / "state")
    )
    document["kafka"].update(PAUSE_SAFE_KAFKA)
    document["log"]["level"] = "info"  # the harness reads the port from the `serving` line
    if backend == "kafka":
        document["state"] = {"backend": "kafka", "topic": f"{topic}-state"}
    return document


def state_topic_bytes(bootstrap: str, topic: str, idle_s: float = 3.0) -> int:
    """Bytes of every key and value on `topic`, read from the beginning until idle."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    total, last = 0, time.monotonic()
    try:
        while time.monotonic() - last < idle_s:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    total += len(record.value or b"") + len(record.key or b"")
                    last = time.monotonic()
    finally:
        consumer.close()
    return total


def one_run(
    bootstrap: str,
    messages: Sequence[bytes],
    reference: Path,
    replicas: int,
    backend: str,
    workdir: Path,
    log: Log,
) -> dict[str, Any]:
    """N replicas on a fresh topic: events/s from SIGCONT to the last record consumed."""
    from monitor.source import ensure_topic
    from tests.support.fleet import CONSUMED, Fleet, produce_round_robin

    topic = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    ensure_topic({"bootstrap_servers": bootstrap}, topic, partitions=PARTITIONS)
    config = fleet_config(bootstrap, topic, reference, WIDTH, workdir, backend)
    with Fleet(config, workdir / topic, topic=topic, partitions=PARTITIONS) as fleet:
        members = fleet.start(replicas)
        fleet.wait_split(timeout=180.0)
        for member in members:
            fleet.pause(member)
        produce_round_robin(
            {"bootstrap_servers": bootstrap, "max_request_size": 8 * 2**20},
            topic,
            messages,
            PARTITIONS,
        )
        pids = [m.process.proc.pid for m in members if m.process.proc is not None]
        cpu_before = sum(process_cpu_seconds(pid) for pid in pids)
        started = time.monotonic()
        for member in members:
            fleet.resume(member)

        def consumed() -> float:
            return sum(fleet.metrics(m, CONSUMED).total(CONSUMED, topic=topic) for m in members)

        fleet.wait_until(lambda: consumed() >= len(messages), 600.0, "the backlog consumed")
        seconds = time.monotonic() - started
        cpu = sum(process_cpu_seconds(pid) for pid in pids) - cpu_before
        shares = {m.name: sorted(fleet.partitions(m)) for m in members}
    state_bytes = state_topic_bytes(bootstrap, f"{topic}-state") if backend == "kafka" else 0
    rate = len(messages) / seconds
    cpu_us = cpu / len(messages) * 1e6
    log(
        f"  fleet N={replicas} ({backend}): {rate:,.0f} events/s, {cpu_us:.0f} replica CPU µs"
        f"/event, partitions {shares}"
    )
    return {"events_per_s": rate, "seconds": seconds, "state_bytes": state_bytes, "cpu_us": cpu_us}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


COLUMNS = [
    "replicas",
    "state backend",
    "features / event",
    "events",
    "events/s (median)",
    "vs 1 replica (median of pairs)",
    "state-topic bytes / event",
    "replicas' CPU µs / event (sum)",
    "runs",
]


def run(*, reps: int, log: Log, events: int = EVENTS) -> list[Table]:
    """Measurement 7 as one table: N = 1 and N = 2 rows, alternating runs."""
    from monitor.dev.broker import EmbeddedBroker

    backend = "kafka" if kafka_backend_available() else "file"
    table = Table(
        "fleet",
        f"A fleet: 2 `driftmon run` replicas vs 1 at {WIDTH.label} features, 6 partitions",
        list(COLUMNS),
    )
    results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    errors: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="driftmon-bench-fleet-") as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
    ):
        workdir = Path(tmp)
        reference = workdir / "reference.json"
        fit_reference(WIDTH, reference)
        batch = workload.draw(
            workload.stream_rng(4, WIDTH.numeric),
            events,
            n_numeric=WIDTH.numeric,
            n_categorical=WIDTH.categorical,
        )
        messages = encode_events(batch, time.time() - 1800.0, 1800.0)
        del batch
        log(f"fleet {WIDTH.label}: {events} events of {statistics.mean(map(len, messages)):.0f} B")
        for rep in range(reps):
            for replicas in (1, 2):
                try:
                    results[replicas].append(
                        one_run(
                            broker.bootstrap,
                            messages,
                            reference,
                            replicas,
                            backend,
                            workdir / f"rep{rep}",
                            log,
                        )
                    )
                except AssertionError as exc:
                    errors.append(f"N={replicas} rep {rep}: {str(exc)[:300]}")
                    log(f"  fleet N={replicas}: {str(exc)[:300]}")
    pairs = list(zip(results[1], results[2], strict=False))
    for replicas in (1, 2):
        runs = results[replicas]
        ratio = (
            statistics.median(b["events_per_s"] / a["events_per_s"] for a, b in pairs)
            if replicas == 2 and pairs
            else (1.0 if runs else None)
        )
        table.add(
            replicas,
            backend,
            WIDTH.label,
            events,
            statistics.median(r["events_per_s"] for r in runs) if runs else None,
            ratio,
            statistics.median(r["state_bytes"] / events for r in runs) if runs else None,
            statistics.median(r["cpu_us"] for r in runs) if runs else None,
            len(runs),
        )
    _notes(table, backend, pairs, errors)
    return [table]


def _notes(
    table: Table,
    backend: str,
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    errors: list[str],
) -> None:
    if pairs:
        ratio = statistics.median(b["events_per_s"] / a["events_per_s"] for a, b in pairs)
        met = ratio >= TARGET_RATIO
        table.notes.append(
            f"Issue-11 target (2 replicas >= {TARGET_RATIO} x 1 replica): "
            f"{'MET' if met else 'NOT MET'} ({ratio:.2f} x, median of {len(pairs)} pairs)"
        )
    if backend == "file":
        table.notes.append(
            "state.backend: file (this daemon has no kafka backend yet): each replica counts "
            "only its own partitions and nothing is written to a state topic (0 bytes/event); "
            "the rows measure the consumer group's parallelism alone."
        )
    table.notes += [
        "Each run: a fresh 6-partition topic on the embedded tansu broker and a fresh group; "
        "the replicas join and split the partitions, are paused (SIGSTOP) while the backlog "
        "is produced, and are timed from SIGCONT until their records_consumed_total add up "
        "to the backlog (scraped every 0.2 s, that counter only: `/metrics?name[]=`). Daemon "
        "settings as in the e2e table.",
        "Both replicas, the broker and the scrapes share this machine's 2 cores; the ratio says "
        "what a second process buys here, not on a machine with a core per replica. The CPU "
        "column (user + system time of the replica processes from SIGCONT to the end, summed, "
        "per event) says what the fleet costs per event: equal at N = 1 and N = 2 means the "
        "second replica adds no work, so with a core of its own it would double the rate.",
        *errors,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement alone and print its table."""
    from bench.report import to_text

    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--events", type=int, default=EVENTS)
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")

    for table in run(reps=args.reps, log=log, events=args.events):
        print(to_text(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
