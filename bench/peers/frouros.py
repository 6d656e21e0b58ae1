"""Peer: Frouros batch statistical tests, `KSTest` per numeric and `ChiSquareTest` per
categorical feature, fitted on the reference; drift when p < 0.05.

    python -m bench.peers.frouros --data workload.npz

Frouros returns the statistic and p-value and leaves the decision to the caller (callbacks);
p < 0.05 is the conventional level of both tests. Missing values are dropped per feature
(a NaN makes scipy's KS meaningless). Timed per window: 20 `KSTest.compare` + 2
`ChiSquareTest.compare` calls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.dataset import Dataset
from bench.harness import Timer, emit, peak_rss_mib, stats_arguments, stats_result
from bench.peers.common import load, version_of

ALPHA = 0.05


def main(argv: Sequence[str] | None = None) -> int:
    """Run and print the RESULT line."""
    args = stats_arguments(__doc__ or "", argv)
    detectors = load("frouros.detectors.data_drift")
    import_rss = peak_rss_mib()

    data = Dataset(args.data)
    ref = data.reference()
    started = time.perf_counter()
    tests: list[Any] = []
    for i in range(len(data.numeric_names)):
        column = ref.numeric[:, i]
        test = detectors.KSTest()
        test.fit(X=column[~np.isnan(column)])
        tests.append(test)
    for j in range(len(data.categorical_names)):
        test = detectors.ChiSquareTest()
        test.fit(X=ref.categorical[:, j])
        tests.append(test)
    fit_s = time.perf_counter() - started
    del ref

    timer = Timer()
    flags: list[list[bool]] = []
    events = 0
    n_numeric = len(data.numeric_names)
    for _, batch in data.windows(args.windows):
        events = len(batch)
        columns: list[np.ndarray] = [
            batch.numeric[:, i][~np.isnan(batch.numeric[:, i])] for i in range(n_numeric)
        ]
        columns += [batch.categorical[:, j] for j in range(len(data.categorical_names))]
        with timer:
            results = [
                test.compare(X=column)[0] for test, column in zip(tests, columns, strict=True)
            ]
        flags.append([bool(r.p_value < ALPHA) for r in results])

    emit(
        stats_result(
            tool="Frouros",
            version=version_of("frouros"),
            method="KSTest numeric, ChiSquareTest categorical; p < 0.05",
            kind="batch",
            fit_s=fit_s,
            window_s=timer.times,
            flags=flags,
            covered=data.features,
            events_per_window=events,
            import_rss_mib=import_rss,
            notes=["missing values are dropped before each test"],
            extra={"numpy": np.__version__},
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
