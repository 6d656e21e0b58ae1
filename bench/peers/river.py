"""Peer: River `drift.ADWIN()` at its defaults (delta=0.002), one detector per numeric feature,
updated event by event (River has no categorical drift detector).

    python -m bench.peers.river --data workload.npz

The stream is the reference followed by the current windows, as Python floats (what a
consumer has after JSON decoding); missing values are skipped. A (window, feature) pair is
flagged if the feature's detector fired while the window streamed through. Timed: the update
loop of each window (the reference pass is the fit time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from bench.dataset import Dataset
from bench.harness import emit, peak_rss_mib, stats_arguments, stats_result
from bench.peers.common import load, version_of


def _stream(detectors: Sequence[Any], rows: list[list[float]]) -> list[bool]:
    """Update every detector with every row; which of them fired."""
    fired = [False] * len(detectors)
    for row in rows:
        for j, x in enumerate(row):
            if not math.isnan(x):  # missing is skipped
                detector = detectors[j]
                detector.update(x)
                if detector.drift_detected:
                    fired[j] = True
    return fired


def main(argv: Sequence[str] | None = None) -> int:
    """Run and print the RESULT line."""
    args = stats_arguments(__doc__ or "", argv)
    drift = load("river.drift")
    import_rss = peak_rss_mib()

    data = Dataset(args.data)
    n_numeric = len(data.numeric_names)
    detectors = [drift.ADWIN() for _ in range(n_numeric)]
    rows = data.reference().numeric.tolist()
    started = time.perf_counter()
    _stream(detectors, rows)
    fit_s = time.perf_counter() - started
    del rows

    times: list[float] = []
    flags: list[list[bool]] = []
    events = 0
    for _, batch in data.windows(args.windows):
        events = len(batch)
        rows = batch.numeric.tolist()
        started = time.perf_counter()
        fired = _stream(detectors, rows)
        times.append(time.perf_counter() - started)
        flags.append(fired + [False] * len(data.categorical_names))

    emit(
        stats_result(
            tool="River",
            version=version_of("river"),
            method="ADWIN() per numeric feature, per event (delta=0.002)",
            kind="streaming",
            fit_s=fit_s,
            window_s=times,
            flags=flags,
            covered=data.numeric_names,
            events_per_window=events,
            import_rss_mib=import_rss,
            notes=["no categorical detector; missing values skipped"],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
