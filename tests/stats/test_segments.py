"""Drift per segment under no drift: 0 false detections in 2,000 null windows (10 segments x 20).

Set-up (docs/statistics.md §6): 20 numeric features with the same 128 fine bins (edges from a
2,000-value N(0, 1) warm-up sample), 10 segments + OTHER with shares falling linearly from
13 % to 3 % of the events, a reference of 300,000 and a current window of 30,000 events (so
segment windows of about 900 to 3,900 events, around the default `min_samples` of 1,000).
In every replicate both the reference slices and the current windows are drawn
(Multinomial per segment and feature, as in tests/stats/sim.py), and the 220 (segment,
feature) tests run through `monitor.segments.SegmentModel.evaluate`: the daemon's decision
rule with one Benjamini-Hochberg family (q = 1e-3) over all of them.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from monitor.edges import learn_edges
from monitor.model import DecisionPolicy
from monitor.segment_slices import SegmentSlices
from monitor.segments import SegmentModel
from tests.stats.sim import normal_slot_probs, numeric_model, padded, print_table

pytestmark = pytest.mark.slow

SEGMENTS = 10
FEATURES = 20
WINDOWS = 2_000
N_REF = 300_000
N_CUR = 30_000


def test_no_false_detection_in_null_windows_of_ten_segments() -> None:
    """2,000 null windows x 11 segments x 20 features: no (segment, feature) is flagged."""
    rng = np.random.default_rng(1313)
    edges = learn_edges(rng.normal(size=2_000), 128)
    layout, specs = numeric_model(edges, FEATURES)
    names = tuple(f"s{k}" for k in range(SEGMENTS))
    empty = SegmentSlices("segment", names, (0,) * (SEGMENTS + 1), ())
    model = SegmentModel(layout, specs, empty, SEGMENTS, DecisionPolicy())
    groups = SEGMENTS + 1
    share = np.linspace(2.0, 0.5, groups)
    share /= share.sum()
    n_ref = np.round(share * N_REF).astype(np.int64)
    n_cur = np.round(share * N_CUR).astype(np.int64)
    probs = padded(normal_slot_probs(edges), layout.width)
    flagged_windows = flagged_tests = tested = 0
    smallest_q = 1.0
    start = time.perf_counter()
    for _ in range(WINDOWS):
        ref = rng.multinomial(n_ref[:, None], probs, size=(groups, FEATURES))
        cur = rng.multinomial(n_cur[:, None], probs, size=(groups, FEATURES))
        results = model.evaluate(cur.reshape(model.shape), 0.0, reference=ref.reshape(model.shape))
        flags = sum(s.drifted_features for s in results)
        flagged_tests += flags
        flagged_windows += flags > 0
        for segment in results:
            for f in segment.features:
                if f.qvalue is not None:
                    tested += 1
                    smallest_q = min(smallest_q, f.qvalue)
    elapsed = time.perf_counter() - start
    print_table(
        f"Segments under no drift: {WINDOWS} windows x {groups} segments x {FEATURES} features",
        ["windows flagged", "(segment, feature) tests flagged", "tests run", "smallest q"],
        [(f"{flagged_windows}/{WINDOWS}", flagged_tests, tested, f"{smallest_q:.3g}")],
    )
    print(f"(segment null simulation: {elapsed:.1f} s)")
    assert tested >= WINDOWS * FEATURES * 9  # the small segments may stay under min_samples
    assert flagged_windows == 0
