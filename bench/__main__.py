"""Run driftmon's benchmarks and write their tables into bench/results/.

    python -m bench                  # driftmon alone (`make bench`)
    python -m bench --peers          # + Evidently, NannyML, alibi-detect, Frouros, River
                                     #   (`make bench-peers`; each in .bench-venvs/<peer>)
    python -m bench --only stats --peers --peer nannyml   # a part, one peer

Measurements (see each module): `stats` (1: statistics on in-memory windows, 2: detection
at default settings; bench.stats), `e2e` (3: through the embedded broker vs raw
kafka-python; bench.e2e), `fleet` (7: two `driftmon run` replicas vs one, and the state
topic's bytes per event; bench.fleet), `delay` (4: detection delay on event time;
bench.delay) and
`memory` (5: resident memory vs features and events; bench.memory), `memory_hostile` (6: peak
RSS of a real `driftmon run` under hostile input; bench.memory_hostile), and `micro` (the
micro-benchmarks bench_core / bench_decode, their output saved verbatim). The workload is
bench.workload, written once per run to a temporary .npz file that every tool reads.
Output: `<out>/bench.md` + `bench.json` (driftmon alone) or `bench-peers.md` + `.json`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import dataset
from bench.procs import REPO, log_stderr
from bench.report import Table, load_average, machine_info, write_report
from bench.venvs import PEERS, peer

MEASUREMENTS = ("stats", "e2e", "fleet", "delay", "memory", "memory_hostile", "micro")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the chosen measurements, write the report."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--peers", action="store_true", help="also run the peer tools")
    parser.add_argument(
        "--peer", action="append", choices=[p.name for p in PEERS], help="only these peers"
    )
    parser.add_argument("--only", action="append", choices=MEASUREMENTS, help="only these parts")
    parser.add_argument("--reps", type=int, default=3, help="driftmon runs / e2e pairs (3)")
    parser.add_argument("--peer-reps", type=int, default=2, help="runs of each peer (2)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.peer_reps < 1:
        parser.error("--reps and --peer-reps must be >= 1")
    parts = args.only or list(MEASUREMENTS)
    peers = [peer(name) for name in args.peer] if args.peer else list(PEERS)
    if not args.peers:
        peers = []

    machine = machine_info()
    loads = {"start": load_average()}
    started = time.monotonic()
    tables: list[Table] = []
    workdir = Path(tempfile.mkdtemp(prefix="driftmon-bench-"))
    try:
        if "stats" in parts:
            from bench import stats

            log_stderr("writing the workload")
            data = dataset.write(workdir / "workload.npz")
            tables += stats.run(
                data, peers=peers, reps=args.reps, peer_reps=args.peer_reps, log=log_stderr
            )
            loads["after stats"] = load_average()
        if "e2e" in parts:
            from bench import e2e

            tables += e2e.run(reps=args.reps, log=log_stderr)
            loads["after e2e"] = load_average()
        if "fleet" in parts:
            from bench import fleet

            tables += fleet.run(reps=args.reps, log=log_stderr)
            loads["after fleet"] = load_average()
        if "delay" in parts:
            from bench import delay

            tables += delay.run(log=log_stderr)
            loads["after delay"] = load_average()
        if "memory" in parts:
            from bench import memory

            tables += memory.run(reps=1, log=log_stderr)
            loads["after memory"] = load_average()
        if "memory_hostile" in parts:
            from bench import memory_hostile

            tables += memory_hostile.run(log=log_stderr)
            loads["after memory_hostile"] = load_average()
        if "micro" in parts:
            from bench import micro

            tables += micro.run(out_dir=args.out, log=log_stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    machine["load_average"] = load_average()
    machine["load_during_run"] = loads
    machine["run_seconds"] = round(time.monotonic() - started)
    machine["command"] = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    stem = "bench-peers" if peers else "bench"
    if args.only:
        stem += "-" + "-".join(parts)
    write_report(tables, machine, args.out, stem)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
