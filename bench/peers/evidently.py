"""Peer: Evidently 0.7 at its defaults (`DataDriftPreset()`), numeric and categorical columns.

    python -m bench.peers.evidently --data workload.npz [--variant preset|stattests]

With a reference of more than 1,000 rows Evidently picks, per column, the normed Wasserstein
distance (numeric, drift at >= 0.1) or the Jensen-Shannon distance (categorical, >= 0.1);
missing values are dropped before the test.

- `preset`: what a user runs. Timed per window: `Dataset.from_pandas(current)` +
  `Report([DataDriftPreset()]).run(current, reference)` + reading the per-column values out
  of the snapshot. Flag: value < threshold for a p-value method, value >= threshold for a
  distance (the method name says which).
- `stattests`: the same default tests called directly, column by column
  (`get_stattest(..., None)` then the test at its default threshold), without the report
  machinery: Evidently's computational floor. Its decisions must equal the preset's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from bench.dataset import Dataset
from bench.harness import Timer, emit, peak_rss_mib, stats_arguments, stats_result
from bench.peers.common import frame, load, version_of


def _preset_flags(snapshot: Any, columns: Sequence[str]) -> list[bool]:
    values: dict[str, bool] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        value, threshold = float(metric["value"]), float(config["threshold"])
        p_value_method = "p_value" in str(config.get("method", ""))
        values[config["column"]] = value < threshold if p_value_method else value >= threshold
    return [values[c] for c in columns]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one variant and print its RESULT line."""
    args = stats_arguments(__doc__ or "", argv)
    os.environ["DO_NOT_TRACK"] = "1"  # no usage telemetry
    evidently = load("evidently")
    presets = load("evidently.presets")
    registry = load("evidently.legacy.calculations.stattests.registry")
    column_type = load("evidently.legacy.core").ColumnType
    import_rss = peak_rss_mib()

    data = Dataset(args.data)
    columns = list(data.features)
    definition = evidently.DataDefinition(
        numerical_columns=list(data.numeric_names),
        categorical_columns=list(data.categorical_names),
    )
    kinds = {
        c: column_type.Categorical if c in data.categorical_names else column_type.Numerical
        for c in columns
    }
    reference_df = frame(data, data.reference())
    variant = args.variant or "preset"
    started = time.perf_counter()
    if variant == "preset":
        reference: Any = evidently.Dataset.from_pandas(reference_df, data_definition=definition)
    else:
        reference = {c: reference_df[c].dropna() for c in columns}
    fit_s = time.perf_counter() - started

    timer = Timer()
    flags: list[list[bool]] = []
    events = 0
    for _, batch in data.windows(args.windows):
        events = len(batch)
        current_df = frame(data, batch)
        if variant == "preset":
            with timer:
                current = evidently.Dataset.from_pandas(current_df, data_definition=definition)
                snapshot = evidently.Report([presets.DataDriftPreset()]).run(current, reference)
                row = _preset_flags(snapshot, columns)
        else:
            with timer:
                row = []
                for c in columns:
                    cur = current_df[c].dropna()
                    test = registry.get_stattest(reference[c], cur, kinds[c], None)
                    row.append(bool(test(reference[c], cur, kinds[c], None).drifted))
        flags.append(row)

    emit(
        stats_result(
            tool="Evidently",
            version=version_of("evidently"),
            method=(
                "DataDriftPreset() defaults (Wasserstein >= 0.1 numeric, JS >= 0.1 categorical)"
                if variant == "preset"
                else "its default stat-test functions called per column (no Report)"
            ),
            kind="batch",
            fit_s=fit_s,
            window_s=timer.times,
            flags=flags,
            covered=columns,
            events_per_window=events,
            import_rss_mib=import_rss,
            notes=["missing values are dropped before each test"],
            extra={"variant": variant},
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
