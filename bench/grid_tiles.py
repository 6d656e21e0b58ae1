"""`edges.EdgeGrid.count_below` in tiles of `TILE_VALUES` values vs one pass over the block.

    .venv/bin/python -m bench.grid_tiles [--reps 15]

A deferred batch of the daemon holds 2^20 values (`monitor.accumulate`): 52,428 events at
20 numeric features, 5,242 at 200 and 524 at 2,000. The features are the end-to-end
benchmark's (`bench.workload`: its mix of shapes and missing values), each with the 128
quantile bins of 5,000 reference events, and the batch is drawn from the same stream. Each
row times the same block binned in one pass
(`tile_values` = the block's size) and in tiles of `TILE_VALUES` (the daemon's), alternately,
`--reps` times each; medians of CPU time (`time.process_time`) in ms and their ratio. The two
results are checked equal value by value.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bench import workload
from bench.report import load_average, machine_info
from monitor.edges import TILE_VALUES, EdgeGrid, learn_edges

BATCH_VALUES = 1 << 20
WIDTHS = (20, 200, 2000)


def _block(width: int) -> tuple[EdgeGrid, np.ndarray]:
    """The grid of `width` workload features and a batch of 2^20 of their values."""
    reference = workload.draw(workload.stream_rng(1, width), 5_000, n_numeric=width)
    edges = [learn_edges(column, 128) for column in reference.numeric.T]
    batch = workload.draw(workload.stream_rng(2, width), BATCH_VALUES // width, n_numeric=width)
    return EdgeGrid(edges), np.ascontiguousarray(batch.numeric.T)


def _row(grid: EdgeGrid, block: np.ndarray, reps: int) -> tuple[float, float]:
    """(one pass ms, tiled ms): medians of `reps` alternating runs of each."""
    whole, tiled = (np.empty(block.shape, dtype=np.intp) for _ in range(2))
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(reps):
        for out, tile_values, times in (
            (whole, block.size, samples[0]),
            (tiled, TILE_VALUES, samples[1]),
        ):
            start = time.process_time()
            grid.count_below(block, out, tile_values)
            times.append(time.process_time() - start)
    finite = np.isfinite(block)
    if not np.array_equal(whole[finite], tiled[finite]):
        raise AssertionError("tiled and one-pass counts differ")
    return statistics.median(samples[0]) * 1e3, statistics.median(samples[1]) * 1e3


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    print(f"machine: {machine_info()}; load average before: {load_average()}")
    print()
    print(f"| numeric features | events | one pass ms | tiles of {TILE_VALUES:,} ms | ratio |")
    print("|---:|---:|---:|---:|---:|")
    for width in WIDTHS:
        grid, block = _block(width)
        whole, tiled = _row(grid, block, args.reps)
        print(
            f"| {width:,} | {block.shape[1]:,} | {whole:.1f} | {tiled:.1f} | {tiled / whole:.2f} |"
        )


if __name__ == "__main__":
    main()
