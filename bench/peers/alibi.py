"""Peer: alibi-detect `TabularDrift` at its defaults (KS per numeric, chi2 per categorical).

    python -m bench.peers.alibi --data workload.npz

The detector gets one float32 array of the 22 columns (alibi-detect's usual dtype), the two
categorical columns as integer codes declared in `categories_per_feature` (categories read
from the reference). Default `p_val=0.05`; per-feature decisions (`drift_type='feature'`)
are p < 0.05 with no correction (the Bonferroni correction applies to the batch decision).
Missing values stay NaN: scipy's KS then returns NaN for f19, which is never flagged.
Timed per window: `predict(x, drift_type='feature')`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from bench.dataset import Dataset
from bench.harness import Timer, emit, peak_rss_mib, stats_arguments, stats_result
from bench.peers.common import load, version_of
from bench.workload import Batch


def _matrix(batch: Batch) -> np.ndarray:
    return np.hstack([batch.numeric, batch.categorical]).astype(np.float32)


def main(argv: Sequence[str] | None = None) -> int:
    """Run and print the RESULT line."""
    args = stats_arguments(__doc__ or "", argv)
    cd = load("alibi_detect.cd")
    import_rss = peak_rss_mib()

    data = Dataset(args.data)
    n_numeric = len(data.numeric_names)
    x_ref = _matrix(data.reference())
    categorical = {n_numeric + j: None for j in range(len(data.categorical_names))}
    started = time.perf_counter()
    detector = cd.TabularDrift(x_ref, p_val=0.05, categories_per_feature=categorical)
    fit_s = time.perf_counter() - started
    del x_ref

    timer = Timer()
    flags: list[list[bool]] = []
    nan_features: set[str] = set()
    events = 0
    for _, batch in data.windows(args.windows):
        events = len(batch)
        x = _matrix(batch)
        with timer:
            prediction = detector.predict(x, drift_type="feature", return_p_val=True)
        result = prediction["data"]
        flags.append([bool(v) for v in np.asarray(result["is_drift"]).ravel()])
        p_values = np.asarray(result["p_val"], dtype=np.float64)
        nan_features |= {data.features[j] for j in np.flatnonzero(np.isnan(p_values))}

    emit(
        stats_result(
            tool="alibi-detect",
            version=version_of("alibi-detect"),
            method="TabularDrift defaults (KS numeric, chi2 categorical; p < 0.05 per feature)",
            kind="batch",
            fit_s=fit_s,
            window_s=timer.times,
            flags=flags,
            covered=data.features,
            events_per_window=events,
            import_rss_mib=import_rss,
            notes=[f"NaN statistic (never flagged): {', '.join(sorted(nan_features))}"]
            if nan_features
            else [],
            extra={"numpy": np.__version__},
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
