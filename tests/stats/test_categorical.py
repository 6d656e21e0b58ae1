"""Categorical drift statistics: chi-square level and new-category check (docs/statistics.md §4).

Set-up: vocabulary of V = 5,000 categories with Zipf(1.1) frequencies; every reference is a
fresh sample of n_ref = 1e5 values fitted by monitor.reference.fit_categorical (top-20,
vocabulary, singleton fraction). Each category's slot (top-K, OTHER, UNSEEN) comes from the
fitted layout's own binning of the category names, so a current window's slot counts are
Multinomial(n_cur, slot probabilities) with slot probability = the summed probability of the
categories in the slot (exactly the law of binning n_cur raw values; tests/stats/test_sim.py
checks the identity). Windows are judged by the real ModelEvaluator with the default policy
(unseen merged into OTHER, Cochran merging, chi-square + TVD leg, new-category leg).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest

from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.histogram import CategoricalBins, ModelLayout
from monitor.model import DecisionPolicy, FeatureKind, FeatureResult, FeatureSpec
from tests.stats.sim import (
    FittedReference,
    fit_reference,
    fmt_rate,
    multinomial_rows,
    print_table,
    zipf_probs,
)

pytestmark = pytest.mark.slow

VOCABULARY = 5_000
ZIPF_EXPONENT = 1.1
N_REF = 100_000
TOP_K = 20
N_CURS = (1_000, 3_000, 10_000, 100_000)
REFERENCES = 40
WINDOWS = 50  # per (reference, n_cur, scenario): 2,000 windows per n_cur and scenario
NEW_SHARE = 0.05
POLICY = DecisionPolicy()
STRICT_ALPHA = 1e-3 / 1000  # one drifting feature among 1000 (see test_decision.py)
CONTEXT = EvaluationContext(model="sim", evaluated_at=0.0)


def _or(value: float | None, default: float) -> float:
    """A FeatureResult statistic, or `default` when it was not computed (None)."""
    return default if value is None else value


@dataclass
class CategoricalTally:
    """Null or drifted windows of one n_cur and what the evaluator said about them."""

    results: list[FeatureResult] = field(default_factory=list)
    singleton: list[float] = field(default_factory=list)

    @property
    def windows(self) -> int:
        """Number of windows."""
        return len(self.results)

    def chi2_below(self, alpha: float) -> int:
        """Windows whose chi-square p-value is <= alpha."""
        return sum(1 for r in self.results if _or(r.chi2_pvalue, 1.0) <= alpha)

    def flagged(self, leg: str | None = None) -> int:
        """Windows detected as drifting (with this leg among the reasons, if given)."""
        return sum(
            1 for r in self.results if r.drift_detected and (leg is None or leg in r.drift_reasons)
        )

    def new_leg_at(self, alpha: float) -> int:
        """Windows where the new-category leg would fire at family level alpha (p <= alpha/2)."""
        return sum(
            1
            for r, p0 in zip(self.results, self.singleton, strict=True)
            if _or(r.new_category_pvalue, 1.0) <= alpha / 2
            and _or(r.unseen_category_ratio, 0.0) > p0 + r.thresholds.unseen_category_ratio_decision
        )

    def mean_unseen(self) -> float:
        """Mean share of current values in the UNSEEN slot."""
        return float(np.mean([_or(r.unseen_category_ratio, 0.0) for r in self.results]))


def _evaluate_rows(
    fitted: FittedReference, reference_row: npt.NDArray[np.int64], current: npt.NDArray[np.int64]
) -> tuple[FeatureResult, ...]:
    """Evaluate many windows of one fitted reference as the rows of one model.

    The evaluator only needs the top-K categories and the singleton fraction (binning is
    already done by the fitted layout), so its layout leaves the vocabulary out instead of
    building one 4,600-entry lookup per row.
    """
    bins = fitted.bins
    eval_bins = CategoricalBins(bins.categories, frozenset(), bins.singleton_fraction)
    names = [f"w{i:04d}" for i in range(current.shape[0])]
    layout = ModelLayout([], [(name, eval_bins) for name in names])
    specs = [FeatureSpec(name, FeatureKind.CATEGORICAL) for name in names]
    reference = np.tile(reference_row, (current.shape[0], 1))
    evaluation = ModelEvaluator(layout, specs, POLICY).evaluate(reference, current, CONTEXT)
    return evaluation.features


@pytest.fixture(scope="module")
def categorical_tallies() -> dict[tuple[str, int], CategoricalTally]:
    """REFERENCES fitted references x WINDOWS windows per n_cur, null and with a new category."""
    start = time.perf_counter()
    rng = np.random.default_rng([20_261_126, 7])
    probs = zipf_probs(VOCABULARY, ZIPF_EXPONENT)
    scenarios = {
        "null": np.append(probs, 0.0),
        "new 5%": np.append(probs * (1.0 - NEW_SHARE), NEW_SHARE),
    }
    out = {(s, n): CategoricalTally() for s in scenarios for n in N_CURS}
    singletons = []
    for _ in range(REFERENCES):
        fitted = fit_reference(rng, probs, N_REF, TOP_K)
        singletons.append(fitted.bins.singleton_fraction)
        reference_row = np.asarray(fitted.profile.counts, dtype=np.int64)
        for scenario, category_probs in scenarios.items():
            slot_probs = fitted.slot_probs(category_probs)
            current = np.vstack([multinomial_rows(rng, n, slot_probs, WINDOWS) for n in N_CURS])
            results = _evaluate_rows(fitted, reference_row, current)
            for i, n in enumerate(N_CURS):
                tally = out[(scenario, n)]
                tally.results.extend(results[i * WINDOWS : (i + 1) * WINDOWS])
                tally.singleton.extend([fitted.bins.singleton_fraction] * WINDOWS)
    print_table(
        f"Categorical, no drift: {REFERENCES} references x {WINDOWS} windows per n_cur "
        f"(V = {VOCABULARY} Zipf({ZIPF_EXPONENT}), top-{TOP_K} + OTHER, n_ref = {N_REF}); "
        f"mean singleton fraction p0 = {np.mean(singletons):.4f}",
        [
            "n_cur",
            "windows",
            "mean unseen share",
            "chi2 P(p<=0.05)",
            "chi2 P(p<=0.01)",
            "new-category leg at q=1e-3",
            "flagged (default policy)",
        ],
        [
            (
                n,
                t.windows,
                f"{t.mean_unseen():.4f}",
                fmt_rate(t.chi2_below(0.05), t.windows),
                fmt_rate(t.chi2_below(0.01), t.windows),
                fmt_rate(t.new_leg_at(POLICY.fdr_q), t.windows),
                fmt_rate(t.flagged(), t.windows),
            )
            for (s, n), t in out.items()
            if s == "null"
        ],
    )
    print_table(
        f"Categorical, a new category with {NEW_SHARE:.0%} of the mass",
        [
            "n_cur",
            "windows",
            "mean unseen share",
            "new-category leg at alpha_f=1e-6",
            "flagged via new_category (default policy)",
            "flagged via chi2",
        ],
        [
            (
                n,
                t.windows,
                f"{t.mean_unseen():.4f}",
                fmt_rate(t.new_leg_at(STRICT_ALPHA), t.windows),
                fmt_rate(t.flagged("new_category"), t.windows),
                fmt_rate(t.flagged("chi2"), t.windows),
            )
            for (s, n), t in out.items()
            if s != "null"
        ],
    )
    print(f"\n(categorical simulation time: {time.perf_counter() - start:.1f} s)")
    return out


@pytest.mark.parametrize("n_cur", N_CURS)
def test_chi2_level_with_unseen_merged_into_other(
    categorical_tallies: dict[tuple[str, int], CategoricalTally], n_cur: int
) -> None:
    """With unseen merged into OTHER and Cochran merging the chi-square level is 3-7 % at 0.05."""
    tally = categorical_tallies[("null", n_cur)]
    level = tally.chi2_below(0.05) / tally.windows
    assert 0.03 <= level <= 0.07, f"chi-square level at 0.05 is {level:.4f}"


@pytest.mark.parametrize("n_cur", N_CURS)
def test_new_category_check_is_quiet_without_drift(
    categorical_tallies: dict[tuple[str, int], CategoricalTally], n_cur: int
) -> None:
    """The new-category check fires in <= 0.2 % of 2,000 null windows, even at level q."""
    tally = categorical_tallies[("null", n_cur)]
    assert tally.windows >= 2_000
    assert tally.new_leg_at(POLICY.fdr_q) / tally.windows <= 2e-3
    assert tally.flagged("new_category") / tally.windows <= 2e-3


@pytest.mark.parametrize("n_cur", N_CURS)
def test_new_category_of_five_percent_is_detected(
    categorical_tallies: dict[tuple[str, int], CategoricalTally], n_cur: int
) -> None:
    """A new category holding 5 % of the mass is flagged in >= 99 % of windows."""
    tally = categorical_tallies[("new 5%", n_cur)]
    assert tally.flagged("new_category") / tally.windows >= 0.99
    assert tally.new_leg_at(STRICT_ALPHA) / tally.windows >= 0.99
