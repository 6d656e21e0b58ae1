"""Peer: NannyML `UnivariateDriftCalculator` at its defaults, one `calculate()` per window.

    python -m bench.peers.nannyml --data workload.npz

Defaults: Jensen-Shannon distance for continuous and categorical columns, alert when the
distance exceeds mean + 3 sd of its values over the reference chunks
(`StandardDeviationThreshold`); `chunk_size` is the window size (10,000), so the 100,000
reference rows make 10 reference chunks. Usage telemetry is switched off
(`NML_DISABLE_USAGE_LOGGING=1`). Timed per window: `calculate(window_df)` and reading the
alerts out of the result; `fit(reference_df)` is the fit time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from bench.dataset import Dataset
from bench.harness import Timer, emit, peak_rss_mib, stats_arguments, stats_result
from bench.peers.common import frame, load, version_of


def _alerts(result: Any, columns: Sequence[str]) -> list[list[bool]]:
    table = result.filter(period="analysis").to_df()
    return [
        [bool(row[(c, "jensen_shannon", "alert")]) for c in columns] for _, row in table.iterrows()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run and print the RESULT line."""
    args = stats_arguments(__doc__ or "", argv)
    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # no telemetry calls to the vendor
    nml = load("nannyml")
    import_rss = peak_rss_mib()

    data = Dataset(args.data)
    columns = list(data.features)
    reference_df = frame(data, data.reference())
    started = time.perf_counter()
    calculator = nml.UnivariateDriftCalculator(
        column_names=columns,
        treat_as_categorical=list(data.categorical_names),
        chunk_size=len(data.window(0)),
    )
    calculator.fit(reference_df)
    fit_s = time.perf_counter() - started
    del reference_df

    timer = Timer()
    flags: list[list[bool]] = []
    events = 0
    for _, batch in data.windows(args.windows):
        events = len(batch)
        current_df = frame(data, batch)
        with timer:
            rows = _alerts(calculator.calculate(current_df), columns)
        flags += rows

    emit(
        stats_result(
            tool="NannyML",
            version=version_of("nannyml"),
            method="UnivariateDriftCalculator defaults (Jensen-Shannon; alert > mean + 3 sd "
            "of the reference chunks)",
            kind="batch",
            fit_s=fit_s,
            window_s=timer.times,
            flags=flags,
            covered=columns,
            events_per_window=events,
            import_rss_mib=import_rss,
            notes=["missing values are removed before the distance is computed"],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
