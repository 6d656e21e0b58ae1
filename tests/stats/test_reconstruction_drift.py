"""Acceptance of the reconstruction-error feature (monitor.reconstruction) by simulation.

The reference events fit the PCA basis and, through their errors, the virtual feature's
histogram; every window is counted with the production layout and evaluated by the
production `ModelEvaluator` over the five features plus `__reconstruction__`, so the
virtual feature meets exactly the decision rule of the others. Fixed seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.histogram import CountMatrix, ModelLayout
from monitor.model import DecisionPolicy, FeatureKind, FeatureSpec, ModelEvaluation
from monitor.reconstruction import VIRTUAL_FEATURE, PcaBasis, fit_basis
from monitor.reference import fit_profile, layout_for

NAMES = ("f0", "f1", "f2", "f3", "f4")
SPECS = [FeatureSpec(n, FeatureKind.NUMERIC) for n in (*NAMES, VIRTUAL_FEATURE)]
CONTEXT = EvaluationContext("m", 0.0)


def _events(rng: np.random.Generator, n: int, rotated: bool = False) -> np.ndarray:
    """f0, f1 standard normal with correlation 0.8; f2..f4 independent standard normal.

    `rotated`: (f0, f1) -> (-f1, f0), a 90 degree rotation: both marginals stay N(0, 1) and
    the correlation becomes -0.8.
    """
    z = rng.standard_normal((5, n))
    z[1] = 0.8 * z[0] + 0.6 * z[1]
    if rotated:
        z[0], z[1] = -z[1], z[0].copy()
    return z


class _Monitor:
    """A reference fitted from raw events: basis, layout, reference counts, evaluator."""

    def __init__(self, rng: np.random.Generator, n_ref: int = 20_000) -> None:
        raw = _events(rng, n_ref)
        self.basis: PcaBasis = fit_basis(NAMES, raw)
        rows = {**{n: raw[i] for i, n in enumerate(NAMES)}, VIRTUAL_FEATURE: self.errors(raw)}
        profile = fit_profile("m", SPECS, rows, {})
        layout, counts, _ = layout_for(profile, SPECS)
        self.layout: ModelLayout = layout
        self.counts: CountMatrix = counts
        self.evaluator = ModelEvaluator(layout, SPECS, DecisionPolicy())
        self.groups = self.evaluator.psi_groups(counts)

    def errors(self, raw: np.ndarray) -> np.ndarray:
        return self.basis.errors(raw)

    def evaluate(self, raw: np.ndarray) -> ModelEvaluation:
        matrix = np.vstack([raw, self.errors(raw)[None, :]])
        current = self.layout.count(matrix, [])
        return self.evaluator.evaluate(self.counts, current, CONTEXT, self.groups)


@pytest.mark.slow
def test_rotation_with_unchanged_marginals_is_caught_by_the_reconstruction_error() -> None:
    """A 90 degree rotation of (f0, f1) at n_cur = 1e4: >= 95 % flagged, marginals <= 5 %."""
    rng = np.random.default_rng(17)
    monitor = _Monitor(rng)
    windows, caught, marginal = 100, 0, 0
    for _ in range(windows):
        evaluation = monitor.evaluate(_events(rng, 10_000, rotated=True))
        flags = {f.name: f.drift_detected for f in evaluation.features}
        caught += flags[VIRTUAL_FEATURE]
        marginal += any(flags[n] for n in NAMES)
    print(f"rotation: reconstruction flagged {caught}/{windows}, a marginal {marginal}/{windows}")
    assert caught >= 0.95 * windows
    assert marginal <= 0.05 * windows


@pytest.mark.slow
def test_no_false_detection_in_two_thousand_null_windows() -> None:
    """2,000 null windows of 1e4 events (20 references x 100 windows): no feature flagged."""
    rng = np.random.default_rng(18)
    flagged = 0
    for _ in range(20):
        monitor = _Monitor(rng)
        for _ in range(100):
            flagged += monitor.evaluate(_events(rng, 10_000)).drifted_features > 0
    print(f"null: {flagged} of 2000 windows flagged")
    assert flagged == 0
