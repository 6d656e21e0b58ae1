"""Measurement 6: peak memory of a real `driftmon run` under hostile input (README "Memory budget").

Each scenario starts the embedded tansu broker's topic, a fresh `driftmon run` process with the
default configuration (plus the scenario's overrides), waits until it has joined, produces the
hostile messages, waits until `driftmon_records_consumed_total` counts all of them and reads
the process's peak resident memory (`VmHWM` in /proc/PID/status), its resident memory at the
start (before any message) and after the flood. Scenarios:

- `flood-6x349k`: 6 partitions, one message each holding a JSON array of 349,000 `{}`
  (1,047,001 bytes, under the default 1 MiB `max_message_bytes`); the records are rejected
  (`unknown_model`, and `too_large` past `event.max_array_elements`).
- `accepted-6x349k`: the same flood where every `{}` is a valid event (`default_model`,
  `features_path: ""`, Kafka timestamps): the columns path, 20 + 2 features.
- `scalars-6x524k`: 6 messages `[1,1,...]` of 524,000 numbers each (`not_an_object`).
- `array-1e6-4MiB`: one array of 1,000,000 `{}` with `max_message_bytes: 4 MiB`.
- `rejected-50MB`: one 50 MB message (`too_large`, never parsed).
- `gzip-6x64x349k`: the `flood-6x349k` message 64 times on each of 6 partitions, gzip-compressed
  by the producer (about 1 KB each on the broker, so one fetch holds all 64 of a partition):
  what a poll may inflate is bounded (`monitor.kafka_records`, 64 MiB per poll), not what a
  fetch holds compressed.
- `gzip-6x64x349k-worker`: the same with `event.decode_worker: true` (the loop's process; the
  batches in flight to the child count against what a poll may inflate).
- `headers-2x1600x20k-gzip`: 1,600 messages `{}` on each of 2 partitions, each with 20,000
  empty headers (40 KB on the wire, about 100 bytes gzip-compressed; 64 million headers in
  all): a tuple per header, about 70 bytes each, took the daemon to 315 MiB of peak RSS
  (2026-12-05); `monitor.kafka_records.PackedHeaders` keeps them in their wire form. The records are
  rejected (`unknown_model`).

    python -m bench.memory_hostile [--scenario NAME ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.procs import REPO, Log
from bench.report import Table

BUDGET_MIB = 256.0
"""The documented peak RSS budget at the default configuration (README "Memory budget")."""
MIB = 1 << 20
NUMERIC = tuple(f"n{i}" for i in range(20))
CATEGORICAL = ("c0", "c1")


def hostile_array(elements: int, item: bytes = b"{}") -> bytes:
    """A JSON array of `elements` copies of `item` (`[{},{},...]`)."""
    return b"[" + b",".join([item] * elements) + b"]"


def vm_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MiB, from /proc/PID/status."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024.0
    return out


@dataclass(frozen=True)
class Scenario:
    """One hostile input: messages per partition and the config overrides it runs with."""

    name: str
    partitions: int
    message: Callable[[], bytes]
    kafka: dict[str, Any] = field(default_factory=dict)
    event: dict[str, Any] = field(default_factory=dict)
    copies: int = 1
    compression: str | None = None
    headers: int = 0
    """Empty headers (key and value "") on every message."""


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("flood-6x349k", 6, lambda: hostile_array(349_000)),
    Scenario(
        "accepted-6x349k",
        6,
        lambda: hostile_array(349_000),
        event={
            "default_model": "m",
            "features_path": "",
            "timestamp_field": None,
        },
    ),
    Scenario("scalars-6x524k", 6, lambda: hostile_array(524_000, b"1")),
    Scenario(
        "array-1e6-4MiB", 1, lambda: hostile_array(1_000_000), kafka={"max_message_bytes": 4 * MIB}
    ),
    Scenario("rejected-50MB", 1, lambda: b"[" + b" " * (50 * 10**6) + b"]"),
    Scenario("gzip-6x64x349k", 6, lambda: hostile_array(349_000), copies=64, compression="gzip"),
    Scenario(
        "gzip-6x64x349k-worker",
        6,
        lambda: hostile_array(349_000),
        event={"decode_worker": True},
        copies=64,
        compression="gzip",
    ),
    Scenario(
        "headers-2x1600x20k-gzip", 2, lambda: b"{}", copies=1600, compression="gzip", headers=20_000
    ),
)


def reference_profile(path: Path) -> Path:
    """A file reference for the 20 + 2 features (recent-enough windows do not matter here)."""
    from monitor.model import FeatureKind, FeatureSpec
    from monitor.reference import fit_profile, profile_to_json

    rng = np.random.default_rng(6)
    specs = tuple(FeatureSpec(n, FeatureKind.NUMERIC) for n in NUMERIC) + tuple(
        FeatureSpec(c, FeatureKind.CATEGORICAL) for c in CATEGORICAL
    )
    profile = fit_profile(
        "m",
        specs,
        {n: rng.normal(size=2_000) for n in NUMERIC},
        {c: list(rng.choice(["a", "b", "c"], size=2_000)) for c in CATEGORICAL},
    )
    path.write_text(profile_to_json(profile), encoding="utf-8")
    return path


def config(
    bootstrap: str, topic: str, reference: Path, state: Path, scenario: Scenario
) -> dict[str, Any]:
    """The default configuration plus what a test run needs (HTTP port 0, fast group joins)."""
    from monitor.dev.broker import FAST_CONSUMER_KWARGS

    features = [{"name": n, "kind": "numeric"} for n in NUMERIC]
    features += [{"name": c, "kind": "categorical"} for c in CATEGORICAL]
    document: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "group_id": f"hostile-{topic}",
            **FAST_CONSUMER_KWARGS,
            **scenario.kafka,
        },
        "models": [
            {
                "name": "m",
                "reference": {"mode": "file", "path": str(reference)},
                "features": features,
            }
        ],
        "http": {"host": "127.0.0.1", "port": 0},
        "state": {"dir": str(state)},
        "log": {"format": "json"},
    }
    if scenario.event:
        document["event"] = dict(scenario.event)
    return document


def _port(log_path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"driftmon exited: {log_path.read_text()[-2000:]}")
        for line in log_path.read_text().splitlines():
            if '"serving"' in line:
                url = json.loads(line)["url"]
                return int(url.rsplit(":", 1)[1].split("/", 1)[0])
        time.sleep(0.1)
    raise RuntimeError("driftmon did not start serving")


def _metric(port: int, name: str) -> float:
    """Sum of a metric's samples; -1 while a scrape fails (a busy daemon may time out)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def produce(
    bootstrap: str,
    topic: str,
    value: bytes,
    partitions: int,
    copies: int = 1,
    compression: str | None = None,
    headers: int = 0,
) -> None:
    """`copies` copies of `value` to each partition (compressed by `compression`, each with
    `headers` empty headers); raises on any failure."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        max_request_size=len(value) + 2 * headers + MIB,
        request_timeout_ms=60_000,
        compression_type=compression,
    )
    empty: list[tuple[str, bytes]] | None = [("", b"")] * headers if headers else None
    try:
        futures = [
            producer.send(topic, value=value, partition=p, headers=empty)
            for _ in range(copies)
            for p in range(partitions)
        ]
        producer.flush(timeout=120)
        for future in futures:
            future.get(timeout=120)
    finally:
        producer.close()


def measure(
    scenario: Scenario, bootstrap: str, create_topic: Callable[[str, int], None], workdir: Path
) -> dict[str, Any]:
    """Run one scenario against a fresh daemon process; its RSS figures in MiB."""
    topic = f"hostile-{scenario.name}-{time.monotonic_ns()}"
    create_topic(topic, scenario.partitions)
    reference = reference_profile(workdir / f"{topic}.json")
    config_path = workdir / f"{topic}.yaml"
    config_path.write_text(
        yaml.safe_dump(config(bootstrap, topic, reference, workdir / f"{topic}-state", scenario))
    )
    log_path = workdir / f"{topic}.log"
    value = scenario.message()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config_path)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        port = _port(log_path, proc)
        deadline = time.monotonic() + 60
        while _metric(port, "driftmon_kafka_connected") < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)
        start = vm_status(proc.pid)
        produce(
            bootstrap,
            topic,
            value,
            scenario.partitions,
            scenario.copies,
            scenario.compression,
            scenario.headers,
        )
        del value
        deadline = time.monotonic() + 180
        consumed = 0.0
        while time.monotonic() < deadline and proc.poll() is None:
            consumed = _metric(port, "driftmon_records_consumed_total")
            if consumed >= scenario.partitions * scenario.copies:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        if proc.poll() is not None:
            raise RuntimeError(f"driftmon exited: {log_path.read_text()[-2000:]}")
        end = vm_status(proc.pid)
        rejected = _metric(port, "driftmon_records_rejected_total")
        accepted = _metric(port, "driftmon_events_accepted_total")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "scenario": scenario.name,
        "consumed": consumed,
        "rejected": rejected,
        "accepted": accepted,
        "rss_start_mib": start["VmRSS"],
        "peak_rss_mib": end["VmHWM"],
        "rss_after_mib": end["VmRSS"],
    }


def run(*, log: Log, names: Sequence[str] | None = None) -> list[Table]:
    """Measurement 6 as one table."""
    from monitor.dev.broker import EmbeddedBroker
    from monitor.source import ensure_topic

    table = Table(
        "memory_hostile",
        f"Peak RSS of `driftmon run` under hostile input (budget {BUDGET_MIB:.0f} MiB)",
        [
            "scenario",
            "messages",
            "records rejected",
            "events accepted",
            "RSS at start MiB",
            "peak RSS MiB",
            "RSS after MiB",
            "within budget",
        ],
    )
    chosen = [s for s in SCENARIOS if not names or s.name in names]
    with (
        tempfile.TemporaryDirectory(prefix="driftmon-bench-hostile-") as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
    ):

        def create(name: str, partitions: int) -> None:
            ensure_topic({"bootstrap_servers": broker.bootstrap}, name, partitions=partitions)

        for scenario in chosen:
            result = measure(scenario, broker.bootstrap, create, Path(tmp))
            log(f"memory_hostile {json.dumps(result)}")
            table.add(
                scenario.name,
                int(result["consumed"]),
                int(result["rejected"]),
                int(result["accepted"]),
                round(result["rss_start_mib"], 1),
                round(result["peak_rss_mib"], 1),
                round(result["rss_after_mib"], 1),
                "yes" if result["peak_rss_mib"] <= BUDGET_MIB else "NO",
            )
    table.notes.append(
        "Each scenario runs a fresh `driftmon run` process (default configuration, one file "
        "reference of 20 + 2 features) against the embedded broker; peak RSS is the process's "
        "VmHWM after every message was consumed."
    )
    return [table]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory_hostile", description=__doc__)
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS])
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        sys.stderr.write(message + "\n")

    (table,) = run(log=log, names=args.scenario)
    print(" | ".join(table.columns))
    for row in table.rows:
        print(" | ".join(str(v) for v in row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
