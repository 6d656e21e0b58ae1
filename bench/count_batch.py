"""`window.count_batch` at width: one binning per batch vs one per bucket; prints Markdown.

    .venv/bin/python -m bench.count_batch [--reps 7]

A deferred batch of the daemon at 2,000 numeric + 200 categorical features holds 480 events
(2^20 values, `monitor.accumulate`). The layout has 9 edges per numeric feature and 10
top-K categories per categorical one (W = 14); values are standard normal, categories
drawn from the top K, one reference-only value, one unseen value and None. Each row counts
the batch into a fresh window whose buckets it spans (1, 2, 5, 20, 100 buckets; one row with
10 % of the events not accepted) with

- `per bucket`: the former path, one masked `ModelLayout.count` per bucket;
- `once`: `window.count_batch` with `layout_counter` (one `count_grouped` call, events not
  accepted in a dropped block; one bucket: `ModelLayout.count`).

The single-bucket rows also time the alternative the code does not take (`count_grouped`
with one block, or with a dropped block instead of a masked copy), which is why one bucket
stays on `ModelLayout.count`. Medians of `--reps` runs of CPU time (`time.process_time`,
less distorted by other processes than wall time), in ms per batch; ratio = once / per
bucket in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from bench.report import load_average, machine_info
from monitor.histogram import CategoricalBins, ModelLayout, NumericBins
from monitor.window import EventTimeWindow, count_batch, layout_counter

N_NUMERIC, N_CATEGORICAL, EVENTS = 2000, 200, 480
BUCKET = 60.0
CATEGORIES = tuple(f"c{i}" for i in range(10))


def _batch(
    rng: np.random.Generator,
) -> tuple[ModelLayout, np.ndarray, tuple[np.ndarray, ...]]:
    numeric_bins = [(f"n{i}", NumericBins(np.sort(rng.normal(size=9)))) for i in range(N_NUMERIC)]
    bins = CategoricalBins(CATEGORIES, frozenset((*CATEGORIES, "rare")), 0.01)
    layout = ModelLayout(numeric_bins, [(f"k{i}", bins) for i in range(N_CATEGORICAL)])
    numeric = rng.normal(size=(N_NUMERIC, EVENTS))
    pool = np.asarray([*CATEGORIES, "rare", "unseen", None], dtype=object)
    categorical = tuple(pool[rng.integers(0, pool.size, EVENTS)] for _ in range(N_CATEGORICAL))
    return layout, numeric, categorical


def _per_bucket(
    layout: ModelLayout,
    window: EventTimeWindow,
    numeric: np.ndarray,
    categorical: tuple[np.ndarray, ...],
    times: np.ndarray,
    accepted: np.ndarray,
) -> None:
    """The former `count_batch`: one masked `count` per distinct bucket."""
    buckets = window.ring.bucket_of(times)
    distinct = np.unique(buckets[accepted])
    for bucket in distinct.tolist():
        select = accepted if distinct.size == 1 else accepted & (buckets == bucket)
        if select.all():
            counts = layout.count(numeric, categorical)
        else:
            counts = layout.count(numeric[:, select], tuple(c[select] for c in categorical))
        window.add_counts(int(bucket), counts)


def _cpu_ms(run: Callable[[], None], reps: int) -> float:
    samples = []
    for _ in range(reps):
        start = time.process_time()
        run()
        samples.append(time.process_time() - start)
    return statistics.median(samples) * 1e3


def _row(
    layout: ModelLayout,
    numeric: np.ndarray,
    categorical: tuple[np.ndarray, ...],
    times: np.ndarray,
    accepted: np.ndarray,
    reps: int,
) -> tuple[float, float]:
    """(per bucket ms, once ms): medians of `reps` counts, each into a fresh window."""
    shape = (layout.n_features, layout.width)
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(reps):
        for path, out in enumerate(samples):
            window = EventTimeWindow(shape, BUCKET, 100 * BUCKET)
            window.admit(times)
            start = time.process_time()
            if path == 0:
                _per_bucket(layout, window, numeric, categorical, times, accepted)
            else:
                count = layout_counter(layout, numeric, categorical)
                count_batch(window, None, times, accepted, count)
            out.append(time.process_time() - start)
    return statistics.median(samples[0]) * 1e3, statistics.median(samples[1]) * 1e3


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(12)
    layout, numeric, categorical = _batch(rng)
    print(f"machine: {machine_info()}; load average before: {load_average()}")
    print()
    print("| buckets | accepted | per bucket ms | once ms | once / per bucket | alternative |")
    print("|---|---|---|---|---|---|")
    cells = ((1, 1.0), (1, 0.9), (2, 1.0), (2, 0.9), (5, 1.0), (20, 1.0), (100, 1.0))
    for n_buckets, share in cells:
        times = (np.arange(EVENTS) % n_buckets) * BUCKET + rng.uniform(0.0, BUCKET, EVENTS)
        accepted = rng.random(EVENTS) < share
        accepted[:n_buckets] = True
        per_bucket, once = _row(layout, numeric, categorical, times, accepted, args.reps)
        alternative = ""
        if n_buckets == 1:
            groups = np.where(accepted, 0, 1)
            n_groups = 1 if share == 1.0 else 2

            def grouped(groups: np.ndarray = groups, n_groups: int = n_groups) -> None:
                layout.count_grouped(numeric, categorical, groups, n_groups)

            what = "one block" if share == 1.0 else "dropped block"
            alternative = f"count_grouped with a {what}: {_cpu_ms(grouped, args.reps):.1f} ms"
        print(
            f"| {n_buckets} | {share:.0%} | {per_bucket:.1f} | {once:.1f} "
            f"| {once / per_bucket:.2f} | {alternative} |"
        )


if __name__ == "__main__":
    main()
