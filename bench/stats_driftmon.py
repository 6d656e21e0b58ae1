"""Measurement 1 + 2 for driftmon: statistics on in-memory windows, at its defaults.

    python -m bench.stats_driftmon --data workload.npz

Fit: a reference profile from the 100,000 reference events (`fit_profile`: 128 quantile bins
per numeric feature, top-20 categories), then `layout_for`, a `ModelEvaluator` with the
default `DecisionPolicy` (BH at q = 1e-3) and the cached PSI decile groups. Per window the
timed work is what the daemon does with a batch and an evaluation:
`ModelLayout.count` (the window's count matrix, as the daemon's hot path builds it) +
`ModelEvaluator.evaluate`.
Building the numpy columns from the stored arrays (the decoder's job in the daemon; a
DataFrame for the peers) is not timed. The evaluation alone is timed too: in the daemon the
window's histogram is maintained as batches arrive, so an evaluation only costs this part.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from bench.harness import Timer, emit, peak_rss_mib, stats_arguments, stats_result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement and print its RESULT line."""
    args = stats_arguments(__doc__ or "", argv)
    import monitor
    from bench.dataset import Dataset
    from monitor.evaluate import EvaluationContext, ModelEvaluator
    from monitor.model import DecisionPolicy, FeatureKind, FeatureSpec
    from monitor.reference import fit_profile, layout_for

    import_rss = peak_rss_mib()
    data = Dataset(args.data)
    specs = [FeatureSpec(n, FeatureKind.NUMERIC) for n in data.numeric_names] + [
        FeatureSpec(n, FeatureKind.CATEGORICAL) for n in data.categorical_names
    ]
    ref = data.reference()
    numeric_ref = {n: ref.numeric[:, i] for i, n in enumerate(data.numeric_names)}
    categorical_ref = {
        n: list(data.strings(ref.categorical[:, j], j))
        for j, n in enumerate(data.categorical_names)
    }
    started = time.perf_counter()
    profile = fit_profile("bench", specs, numeric_ref, categorical_ref)
    layout, reference, ordered = layout_for(profile, specs)
    evaluator = ModelEvaluator(layout, ordered, DecisionPolicy())
    groups = evaluator.psi_groups(reference)
    fit_s = time.perf_counter() - started
    del ref, numeric_ref, categorical_ref

    total, evaluate_only = Timer(), Timer()
    flags: list[list[bool]] = []
    for w, batch in data.windows(args.windows):
        numeric = np.ascontiguousarray(batch.numeric.T)
        categorical = [data.strings(batch.categorical[:, j], j) for j in range(2)]
        context = EvaluationContext(model="bench", evaluated_at=float(w))
        with total:
            counts = layout.count(numeric, categorical)
            with evaluate_only:
                evaluation = evaluator.evaluate(reference, counts, context, groups)
        decided = {f.name: f.drift_detected for f in evaluation.features}
        flags.append([decided[name] for name in data.features])

    emit(
        stats_result(
            tool="driftmon",
            version=f"driftmon {monitor.__version__}",
            method="defaults: 128 quantile bins; KS + PSI legs, chi2 + new-category legs, "
            "missing leg; BH q=1e-3",
            kind="batch",
            fit_s=fit_s,
            window_s=total.times,
            flags=flags,
            covered=data.features,
            events_per_window=len(data.window(0)),
            import_rss_mib=import_rss,
            extra={"evaluate_ms": [round(t * 1e3, 4) for t in evaluate_only.times]},
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
