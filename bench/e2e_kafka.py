"""Measurement 3 through a real Apache Kafka 4.1 instead of the embedded tansu broker.

    python -m bench.e2e_kafka [--reps 3] [--wide-only]

Runs `bench.e2e` (driftmon daemon loop vs raw kafka-python, A B pairs in fresh processes,
1 MiB partition fetches) against one Apache Kafka node (KRaft) assembled from Maven Central
as the tests do (`tests/support/apache_kafka.py`: Java 17 and Maven from `make
system-packages`, jars cached in ~/.m2), on 127.0.0.1. The clients use the node's PLAINTEXT
listener (its own inter-broker one, whose ANONYMOUS principal is a super user), so no SASL
handshake is measured. What it shows next to `bench.e2e`: how much of each rate is the
broker's (the broker CPU column), and whether the ratios hold on the broker production runs.
`--wide-only` runs the 2000 + 200 rows alone (unsampled, decode worker, sample_rate 0.1).
The table is printed as markdown and written to bench/results/e2e-kafka.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import e2e
from bench.procs import REPO, log_stderr
from bench.report import load_average, machine_info, write_markdown_page


@dataclass(frozen=True, slots=True)
class _Plaintext:
    """The node's PLAINTEXT listener and its JVM's process id."""

    bootstrap: str
    pid: int | None


@contextmanager
def apache_kafka(workdir: Path) -> Iterator[_Plaintext]:
    """Start one Apache Kafka node in `workdir`, yield where to connect, stop it."""
    from tests.support.apache_kafka import ApacheKafka

    kafka = ApacheKafka(workdir / "apache-kafka")
    kafka.start()
    try:
        yield _Plaintext(f"127.0.0.1:{kafka.internal_port}", kafka.pid)
    finally:
        kafka.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the e2e rows through Apache Kafka and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.e2e_kafka", description=__doc__)
    parser.add_argument("--reps", type=int, default=3, help="A B pairs per row (3)")
    parser.add_argument("--wide-only", action="store_true", help="the 2000 + 200 rows only")
    args = parser.parse_args(argv)
    widths = [w for w in e2e.WIDTHS if not args.wide_only or w.numeric == 2000]
    machine = machine_info()
    start_load = load_average()
    tables = e2e.run(
        reps=args.reps,
        log=log_stderr,
        widths=widths,
        fetches=(None,),
        broker=apache_kafka,
        broker_name="Apache Kafka 4.1 (one KRaft node)",
    )
    out = REPO / "bench" / "results" / "e2e-kafka.md"
    print(write_markdown_page(tables, machine, start_load, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
