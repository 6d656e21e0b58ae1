"""The cost of the NewCategories rule's floors and levels: the smallest new category it reports.

    python -m bench.new_category_cost

`DriftmonFeatureNewCategories` fires when the unseen share u/n of a window is above
p0 + threshold (before: above threshold alone) and the new-category p-value of u is below its
level (`monitor.stats.new_category_pvalue`: U ~ Poisson(n M0), M0 ~ Gamma(mean p0, variance
v0), v0 Esty's variance from f1/n_ref and f2/n_ref). A stream whose unseen mass is p0 (the
warm-up estimated it exactly) plus a brand-new category of share s sends, in a window of n
values, a median of about n (p0 + s (1 - p0)) unseen values. The smallest reported new
category is the smallest s whose median count meets both conditions, i.e. the new category
that the rule reports in about half of the windows of that size.

The warm-ups are those of `bench.false_alarms` (the workload's 1,000-level Zipf feature
`c1000` and 10-level `c10`, 10,000 warm-up events, seeds as given).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np

from bench import false_alarms as fa
from monitor.histogram import CategoricalBins
from monitor.model import Thresholds
from monitor.stats import good_turing_variance, new_category_pvalue

WINDOWS = (1_190, 6_000, 60_000)
"""Events per 1 h window at 20, 100 and 1,000 events/min."""


UNSEEN_THRESHOLD = Thresholds().unseen_category_ratio_warning


def smallest_share(
    rule: fa.NewCategoriesVariant, bins: CategoricalBins, n_ref: float, n: int
) -> float:
    """Smallest new-category share s (step 1e-4) whose median window count the rule reports."""
    p0 = bins.singleton_fraction
    f2 = bins.doubleton_fraction if bins.doubleton_fraction is not None else math.nan
    v0 = float(good_turing_variance(np.asarray([p0]), np.asarray([f2]), np.asarray([n_ref]))[0])
    shares = np.arange(0, 2_001) * 1e-4
    counts = np.round(n * (p0 + shares * (1.0 - p0)))
    floor = UNSEEN_THRESHOLD + (p0 if rule.adds_p0 else 0.0)
    pvalues = new_category_pvalue(
        counts,
        np.full(counts.shape, float(n)),
        np.full(counts.shape, p0),
        np.full(counts.shape, v0),
    )
    reported = (counts / n > floor) & (pvalues < rule.level)
    return float(shares[int(np.argmax(reported))]) if reported.any() else math.nan


def table(seeds: Sequence[tuple[int, int]]) -> str:
    """Markdown: one row per warm-up (seed, model) and feature, one column per rule and window."""
    header = ["warm-up", "feature", "p0", "rule", *(f"n = {n:,}" for n in WINDOWS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for seed, model in seeds:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 22, model]))
        layout, reference, _ = fa.fit_warmup(rng, 20, 2)
        for j, bins in enumerate(layout.categorical_bins):
            row = layout.n_numeric + j
            n_ref = float(reference[row, : layout.width - 2].sum())
            for rule in fa.NEW_CATEGORIES_VARIANTS[:4]:
                cells = [f"{100 * smallest_share(rule, bins, n_ref, n):.2f} %" for n in WINDOWS]
                name = layout.names[row]
                warmup = f"seed {seed} model {model}"
                p0 = f"{bins.singleton_fraction:.4f}"
                variant = rule.name.removeprefix("DriftmonFeatureNewCategories")
                lines.append("| " + " | ".join([warmup, name, p0, variant, *cells]) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table for the warm-ups of seed 13 (model 0) and seed 18."""
    parser = argparse.ArgumentParser(prog="python -m bench.new_category_cost", description=__doc__)
    parser.parse_args(argv)
    print(table([(13, 0), (18, 0)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
