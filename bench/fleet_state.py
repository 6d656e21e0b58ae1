"""The fleet's state topic at 22, 220 and 2,200 features: bytes per commit and snapshot, and the
CPU time of a cold start (restore the newest snapshot, fold a snapshot interval of commits).

    .venv/bin/python -m bench.fleet_state [--repeat 5]

No broker: the records are encoded and folded in process (`monitor.fleet_records`,
`monitor.fleet`), so the figures are the replica's own cost; the broker adds its transfer
time. Workload: one model, F features (90 % numeric with 130 bins, 10 % categorical with 23),
a 1 h window of 1 min buckets; a source partition carries `--rate` events/s; a commit covers
`--publish` seconds of them (events spread over the current bucket and the one before, as a
stream in event-time order does). The snapshot holds a full ring (every bucket of the window
+ lateness filled). A cold start restores that snapshot and folds the commits of one snapshot
interval (`--snapshot` seconds) from `--partitions` partitions. Medians of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from monitor.fleet import FleetFold
from monitor.fleet_contrib import Contributor
from monitor.fleet_records import encode_claim, encode_snapshot
from monitor.window import EventTimeWindow

BUCKET_S, LENGTH_S, LATENESS_S = 60.0, 3600.0, 60.0


def _width(features: int) -> tuple[int, int]:
    return features, 130


def _window(features: int) -> EventTimeWindow:
    return EventTimeWindow(_width(features), BUCKET_S, LENGTH_S, LATENESS_S)


def _commit(features: int, events: int, rng: np.random.Generator, t0: float) -> list[bytes]:
    """One commit of `events` events over two buckets (values drawn per feature)."""
    shape = _width(features)
    contributor = Contributor("bench")
    contributor.own("events:0", 1, 0)
    for bucket_offset, share in ((0, 0.5), (1, 0.5)):
        n = max(1, int(events * share))
        counts = np.zeros(shape, dtype=np.int64)
        n_numeric = int(features * 0.9)
        slots = np.minimum(rng.poisson(64, (features, n)), shape[1] - 1)
        slots[n_numeric:] = rng.integers(0, 23, (features - n_numeric, n))
        rows = np.repeat(np.arange(features), n)
        np.add.at(counts, (rows, slots.ravel()), 1)
        bucket = int(t0 // BUCKET_S) + bucket_offset
        contributor.add("events:0", "m", bucket, counts, (bucket + 1) * BUCKET_S - 1)
    contributor.consumed("events:0", events)
    return [value for _, value in contributor.commit("events:0")]


def _full_fold(features: int, rng: np.random.Generator) -> FleetFold:
    fold = FleetFold({"m": _window(features)})
    fold.apply(encode_claim("events:0", 1, "bench")[1])
    window = fold.windows["m"]
    shape = _width(features)
    head = 1_000_000
    window.advance(head * BUCKET_S)
    for bucket in range(head - window.ring.n_slots + 1, head + 1):
        window.add_counts(bucket, rng.poisson(3, shape).astype(np.int64))
    return fold


def measure(features: int, args: argparse.Namespace) -> dict[str, float]:
    rng = np.random.default_rng(features)
    events = int(args.rate * args.publish)
    commit = _commit(features, events, rng, 1_000_000 * BUCKET_S)
    commit_bytes = sum(len(v) for v in commit)
    fold = _full_fold(features, rng)
    snapshot = encode_snapshot(fold.snapshot_body(), {0: 0}, "bench", 0.0)
    snapshot_bytes = sum(len(v) for _, v in snapshot)
    n_commits = int(args.snapshot / args.publish) * args.partitions
    tail = [
        _commit(features, events, rng, 1_000_000 * BUCKET_S)
        for _ in range(min(n_commits, args.max_commits))
    ]
    scale = n_commits / len(tail)
    restore_s: list[float] = []
    fold_s: list[float] = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        loader = FleetFold(decode_snapshots=True)
        outcome = None
        for _, value in snapshot:
            outcome = loader.apply(value)
        assert outcome is not None and outcome.snapshot is not None
        target = FleetFold({"m": _window(features)})
        assert target.restore(outcome.snapshot[1]) is None
        restore_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        for values in tail:  # each as its own partition's first commit
            target.heads.clear()
            target.apply(encode_claim("events:0", 1, "bench")[1])
            for value in values:
                target.apply(value)
        fold_s.append((time.perf_counter() - started) * scale)
    return {
        "commit_bytes": commit_bytes,
        "bytes_per_s_per_partition": commit_bytes / args.publish,
        "snapshot_bytes": snapshot_bytes,
        "restore_s": statistics.median(restore_s),
        "fold_interval_s": statistics.median(fold_s),
        "commits_per_interval": n_commits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s per partition")
    parser.add_argument("--publish", type=float, default=5.0, help="publish interval, s")
    parser.add_argument("--snapshot", type=float, default=300.0, help="snapshot interval, s")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--max-commits", type=int, default=60, help="commits folded (scaled)")
    parser.add_argument("--features", type=int, nargs="*", default=[22, 220, 2200])
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(
        f"# {args.rate:g} events/s per partition, commits every {args.publish:g} s, "
        f"snapshots every {args.snapshot:g} s, {args.partitions} partitions"
    )
    print(
        "| features | bytes/commit | state bytes/s per partition | snapshot bytes | "
        "restore s | fold one interval s | cold start s |"
    )
    print("|---|---|---|---|---|---|---|")
    for features in args.features:
        m = measure(features, args)
        print(
            f"| {features} | {m['commit_bytes']:,.0f} | {m['bytes_per_s_per_partition']:,.0f} "
            f"| {m['snapshot_bytes']:,.0f} | {m['restore_s']:.3f} | {m['fold_interval_s']:.3f} "
            f"| {m['restore_s'] + m['fold_interval_s']:.3f} |"
        )


if __name__ == "__main__":
    main()
