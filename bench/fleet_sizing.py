"""Sizing a fleet: state-topic bytes per second per partition, and a replica's start-up time.

For each width (20 + 2, 200 + 20, 2000 + 200 features) on the embedded tansu broker, with
the default `state.publish_interval` (5 s) and `state.snapshot_interval` (5 min):

1. one `driftmon run` replica (`state.backend: kafka`, a file reference of the width) owns
   the 6 partitions of a fresh topic;
2. a producer sends `RATE` clean events per second for `SECONDS` seconds, round robin over
   the partitions (so each partition gets RATE / 6 events per second), then stops;
3. after two publish intervals the state topic is read from the beginning: its bytes (keys
   and values) / SECONDS / 6 = the state-topic bytes per second per source partition at
   that event rate, and its record count;
4. a second replica starts cold (no snapshot yet: it folds the whole state topic) and is
   timed from its start to /readyz and to the moment its /status window digest of the model
   equals the first replica's (the global window, bin for bin).

    python -m bench.fleet_sizing [--seconds 30] [--rate 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import workload
from bench.e2e import MODEL, Width, config_yaml, encode_events, fit_reference
from bench.fleet import PARTITIONS, state_topic_bytes
from bench.procs import Log
from bench.report import Table

WIDTHS = (Width(20, 2, 0, 20_000), Width(200, 20, 0, 20_000), Width(2000, 200, 0, 5_000))
RATE = 60
SECONDS = 30


def _digest(fleet: Any, replica: Any) -> str | None:
    try:
        models = fleet.status(replica)["models"]
    except Exception:  # not serving yet
        return None
    model = next((m for m in models if m["model"] == MODEL), None)
    return None if model is None else model.get("window_digest")


def _steady(messages: Sequence[bytes], bootstrap: str, topic: str, rate: int) -> None:
    """Send the messages at `rate` per second, round robin over the partitions."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=8 << 20)
    started = time.monotonic()
    try:
        for i, message in enumerate(messages):
            producer.send(topic, value=message, partition=i % PARTITIONS)
            if i % rate == rate - 1:
                producer.flush()
                time.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
        producer.flush()
    finally:
        producer.close()


def one_width(
    bootstrap: str, width: Width, rate: int, seconds: int, workdir: Path, log: Log
) -> dict[str, Any]:
    """The sizing numbers of one width."""
    from monitor.source import ensure_topic
    from tests.support.fleet import Fleet

    topic = f"sizing-{width.numeric}-{uuid.uuid4().hex[:6]}"
    ensure_topic({"bootstrap_servers": bootstrap}, topic, partitions=PARTITIONS)
    reference = workdir / f"reference-{width.numeric}.json"
    fit_reference(width, reference)
    config = json.loads(
        config_yaml(bootstrap, topic, f"g-{topic}", reference, width, workdir / "state")
    )
    config["log"]["level"] = "info"
    config["state"] = {"backend": "kafka", "topic": f"{topic}-state"}
    batch = workload.draw(
        workload.stream_rng(4, width.numeric),
        rate * seconds,
        n_numeric=width.numeric,
        n_categorical=width.categorical,
    )
    messages = encode_events(batch, time.time() - 600.0, 600.0)
    with Fleet(config, workdir / topic, topic=topic, partitions=PARTITIONS) as fleet:
        (first,) = fleet.start(1, wait_http=300.0)
        fleet.wait_split(timeout=300.0)
        fleet.wait_ready(timeout=300.0)
        producer = threading.Thread(target=_steady, args=(messages, bootstrap, topic, rate))
        producer.start()
        producer.join()
        time.sleep(11.0)  # two publish intervals: the last counts are on the state topic
        state_bytes = state_topic_bytes(bootstrap, f"{topic}-state")
        want = _digest(fleet, first)
        started = time.monotonic()
        second = fleet.add(wait_http=120.0)
        fleet.wait_ready([second], timeout=300.0)
        ready_s = time.monotonic() - started
        fleet.wait_until(lambda: _digest(fleet, second) == want, 300.0, "the same window")
        exact_s = time.monotonic() - started
    per_partition = state_bytes / seconds / PARTITIONS
    log(
        f"sizing {width.label}: {per_partition:,.0f} B/s per partition at {rate} events/s; "
        f"cold start ready {ready_s:.1f} s, exact {exact_s:.1f} s"
    )
    return {
        "bytes_per_s_per_partition": per_partition,
        "bytes_per_event": state_bytes / (rate * seconds),
        "ready_s": ready_s,
        "exact_s": exact_s,
    }


def run(
    *, log: Log, rate: int = RATE, seconds: int = SECONDS, widths: Sequence[Width] = WIDTHS
) -> list[Table]:
    """The sizing table, one row per width."""
    from monitor.dev.broker import EmbeddedBroker

    table = Table(
        "fleet_sizing",
        f"Fleet sizing: state-topic bytes at {rate} events/s over {PARTITIONS} partitions, "
        "and a second replica's cold start",
        [
            "features / event",
            "state-topic bytes/s per partition",
            "state-topic bytes / event",
            "cold start: ready s",
            "cold start: same window s",
        ],
    )
    with (
        tempfile.TemporaryDirectory(prefix="driftmon-bench-sizing-") as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
    ):
        for width in widths:
            try:
                r = one_width(broker.bootstrap, width, rate, seconds, Path(tmp), log)
            except AssertionError as exc:
                table.add(width.label, None, None, None, None)
                table.notes.append(f"{width.label}: {str(exc)[:300]}")
                continue
            table.add(
                width.label,
                r["bytes_per_s_per_partition"],
                r["bytes_per_event"],
                r["ready_s"],
                r["exact_s"],
            )
    table.notes.append(
        f"One replica owns the {PARTITIONS} partitions; {rate} clean events/s for {seconds} s "
        f"({rate // PARTITIONS}/s per partition), default publish interval (5 s) and snapshot "
        "interval (5 min, so the cold start folds the whole state topic). Bytes: keys and "
        "values of every state-topic record, read back after the run."
    )
    return [table]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sizing alone and print its table."""
    from bench.procs import REPO
    from bench.report import machine_info, to_text, write_report

    parser = argparse.ArgumentParser(prog="python -m bench.fleet_sizing", description=__doc__)
    parser.add_argument("--rate", type=int, default=RATE)
    parser.add_argument("--seconds", type=int, default=SECONDS)
    parser.add_argument(
        "--width",
        action="append",
        type=int,
        choices=[w.numeric for w in WIDTHS],
        help="only these widths (by numeric features)",
    )
    args = parser.parse_args(argv)
    widths = [w for w in WIDTHS if args.width is None or w.numeric in args.width]

    def log(message: str) -> None:
        sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")

    tables = run(log=log, rate=args.rate, seconds=args.seconds, widths=widths)
    for table in tables:
        print(to_text(table))
    machine = machine_info()
    machine["command"] = "python -m bench.fleet_sizing " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    write_report(tables, machine, REPO / "bench" / "results", "fleet-sizing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
