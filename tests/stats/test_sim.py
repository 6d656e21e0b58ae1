"""The simulation shortcuts of tests/stats agree with driftmon's real binning.

The acceptance simulations draw count rows instead of raw values. That is exact only if the
slot probabilities they draw from are those of binning raw values with the real layout;
these tests check it for both kinds of feature.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from monitor.edges import learn_edges
from monitor.histogram import ModelLayout, NumericBins
from tests.stats.sim import category_names, fit_reference, normal_slot_probs, zipf_probs

pytestmark = pytest.mark.slow


def test_normal_slot_probabilities_match_binned_raw_values() -> None:
    """Binning 1e6 raw normal values with the layout fits the computed slot probabilities."""
    rng = np.random.default_rng([20_261_126, 1])
    edges = learn_edges(rng.normal(size=10_000), 128)
    layout = ModelLayout([("x", NumericBins(edges))], [])
    mean, sd = 0.25, 1.2
    counts = layout.count(rng.normal(mean, sd, size=(1, 1_000_000)), [])[0]
    probs = normal_slot_probs(edges, mean, sd)
    assert probs.size == edges.size + 2
    assert probs[1] == 0.0  # the slot of values equal to the smallest edge
    assert counts[probs.size :].sum() == 0  # nothing missing or invalid
    used = probs > 0
    expected = probs[used] * counts.sum()
    result = sps.chisquare(counts[: probs.size][used], expected)
    assert result.pvalue > 1e-3, f"goodness of fit p = {result.pvalue:.3g}"


def test_category_slot_map_matches_the_fitted_layout() -> None:
    """Summing category counts per mapped slot equals binning the raw values, new ones included."""
    rng = np.random.default_rng([20_261_126, 2])
    probs = zipf_probs(2_000, 1.1)
    fitted = fit_reference(rng, probs, 20_000, 20)
    width = fitted.layout.width
    reference = np.bincount(fitted.slot_of[:-1], weights=fitted.category_counts, minlength=width)
    assert fitted.profile.counts == tuple(int(v) for v in reference)
    assert fitted.slot_of[-1] == fitted.bins.unseen_slot
    window = np.append(probs * 0.9, 0.1)
    codes = rng.choice(window.size, size=50_000, p=window)
    raw = category_names(probs.size)[codes]
    binned = fitted.layout.count(np.empty((0, raw.size)), [raw])[0]
    assert np.array_equal(binned, np.bincount(fitted.slot_of[codes], minlength=width))
    assert binned[fitted.bins.unseen_slot] > 0
