"""Simulation helpers shared by the statistical acceptance tests.

Every drift statistic driftmon computes is a function of the histogram counts only, so a
window of n i.i.d. values is simulated exactly by drawing its counts, counts ~
Multinomial(n, p), where p are the slot probabilities of the frozen bins under the data
distribution. Many windows are many rows of one count matrix, evaluated in one call.

Rates are reported with exact (Clopper-Pearson) 95 % intervals; tables are printed as
markdown so `pytest -s` output can be pasted into docs/statistics.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from monitor.histogram import CategoricalBins, CountMatrix, ModelLayout, NumericBins
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import FeatureProfile, fit_categorical

FloatArray = npt.NDArray[np.float64]


def normal_slot_probs(edges: FloatArray, mean: float = 0.0, sd: float = 1.0) -> FloatArray:
    """Probability of each numeric value slot (monitor.edges layout) under N(mean, sd^2).

    Slots: underflow x < e_0, the minimum x == e_0 (probability 0 for continuous data),
    (e_{k-1}, e_k] for k = 1..m-1, overflow x > e_{m-1}.
    """
    cdf = np.asarray(sps.norm.cdf(edges, loc=mean, scale=sd), dtype=np.float64)
    probs = np.concatenate([[cdf[0], 0.0], np.diff(cdf), [1.0 - cdf[-1]]])
    probs = np.clip(probs, 0.0, None)
    return np.asarray(probs / probs.sum(), dtype=np.float64)


def padded(probs: FloatArray, width: int) -> FloatArray:
    """Slot probabilities widened to a layout row (missing, invalid and unused slots get 0)."""
    out = np.zeros(width, dtype=np.float64)
    out[: probs.size] = probs
    return out


def multinomial_rows(rng: np.random.Generator, n: int, probs: FloatArray, rows: int) -> CountMatrix:
    """`rows` independent windows of n values: an int64 count matrix [rows, len(probs)]."""
    return np.asarray(rng.multinomial(n, probs, size=rows), dtype=np.int64)


def numeric_model(edges: FloatArray, n_features: int) -> tuple[ModelLayout, list[FeatureSpec]]:
    """A model of `n_features` numeric features that all share the same frozen edges."""
    bins = NumericBins(edges)
    names = [f"x{i:05d}" for i in range(n_features)]
    layout = ModelLayout([(name, bins) for name in names], [])
    return layout, [FeatureSpec(name, FeatureKind.NUMERIC) for name in names]


def zipf_probs(vocabulary: int, exponent: float) -> FloatArray:
    """Category probabilities p_i proportional to i^-exponent, i = 1..vocabulary."""
    weights = 1.0 / np.arange(1, vocabulary + 1, dtype=np.float64) ** exponent
    return np.asarray(weights / weights.sum(), dtype=np.float64)


NEW_CATEGORY = "never-seen-before"


def category_names(vocabulary: int) -> npt.NDArray[np.object_]:
    """Names of the vocabulary's categories followed by NEW_CATEGORY (last)."""
    names = [f"c{i:05d}" for i in range(vocabulary)] + [NEW_CATEGORY]
    return np.asarray(names, dtype=object)


@dataclass(frozen=True)
class FittedReference:
    """A reference fitted by fit_categorical and the slot of every category (new one last)."""

    profile: FeatureProfile
    layout: ModelLayout
    category_counts: npt.NDArray[np.int64]
    slot_of: npt.NDArray[np.int64]

    @property
    def bins(self) -> CategoricalBins:
        """The fitted top-K / vocabulary / singleton-fraction bins."""
        bins = self.profile.bins
        assert isinstance(bins, CategoricalBins)
        return bins

    def slot_probs(self, category_probs: FloatArray) -> FloatArray:
        """Slot probabilities of a window whose categories (vocabulary + new) have these."""
        return np.asarray(
            np.bincount(self.slot_of, weights=category_probs, minlength=self.layout.width),
            dtype=np.float64,
        )


def fit_reference(
    rng: np.random.Generator, probs: FloatArray, n_ref: int, top_k: int
) -> FittedReference:
    """Draw a reference of n_ref values, fit it, and bin every category name once.

    slot_of[i] is the slot the fitted layout's own binning gives category i (the last entry
    is NEW_CATEGORY, which is never in the reference), so the slot counts of any window are
    the category counts summed per slot.
    """
    names = category_names(probs.size)
    counts = np.asarray(rng.multinomial(n_ref, probs), dtype=np.int64)
    sample = np.repeat(names[:-1], counts)  # the order of a sample does not matter to a fit
    profile = fit_categorical("category", list(sample), top_k=top_k)
    bins = profile.bins
    assert isinstance(bins, CategoricalBins)
    layout = ModelLayout([], [("category", bins)])
    slot_of = layout.bin_batch(np.empty((0, names.size)), [names])[0]
    return FittedReference(profile, layout, counts, slot_of)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided confidence interval of a binomial proportion k / n."""
    tail = (1.0 - confidence) / 2.0
    lower = 0.0 if k == 0 else float(sps.beta.ppf(tail, k, n - k + 1))
    upper = 1.0 if k == n else float(sps.beta.ppf(1.0 - tail, k + 1, n - k))
    return lower, upper


def fmt_rate(k: int, n: int) -> str:
    """'rate [lo, hi]' with the 95 % Clopper-Pearson interval, 4 significant digits."""
    lower, upper = clopper_pearson(k, n)
    return f"{k / n:.4g} [{lower:.3g}, {upper:.3g}]"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a markdown table under a title (visible with `pytest -s`)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
