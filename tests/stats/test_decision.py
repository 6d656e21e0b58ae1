"""False alarms and power of the numeric drift decision rule (docs/statistics.md section 3).

Set-up (docs/statistics.md section 3): normal data; B = 128 quantile edges learned by
monitor.edges.learn_edges from a fresh 10,000-value warm-up per model; a 1e5 reference
snapshot (fixed size, redrawn for every window, as in the research script); current windows
of n_cur in {1e3, 1e4, 1e5}. Windows are multinomial count rows over the edges' slot
probabilities and are judged by the real ModelEvaluator.

Embedding the research's per-feature level alpha_f = 1e-3 / 1000 into a model-wide
correction. A model has F = 1000 features; under BH at q = 1e-3 a feature whose family
p-value ranks k-th among k* rejections is tested at q k* / 1000, so a single drifting
feature among 999 null ones is tested at exactly alpha_f (the research set-up).
We measure three things:

* null: models whose 1000 features are all null, default policy (BH q = 1e-3);
* power, lower bound: models whose 1000 features all drift, evaluated with Bonferroni at
  the same q (alpha* = q / 1000 = alpha_f for every feature). BH with the same m rejects a
  superset of Bonferroni's rejections, so this is the power of BH for a drifting feature
  in any 1000-feature model, including the single-drifter case; the same counts are also
  evaluated with default BH (all features drifting, BH's most liberal case), which bounds
  the small-shift "ignored" rate from above;
* mixed: default-policy models with 8 drifting and 992 null features, the realistic case.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from monitor.edges import learn_edges
from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.model import Correction, DecisionPolicy, ModelEvaluation
from tests.stats.sim import (
    fmt_rate,
    multinomial_rows,
    normal_slot_probs,
    numeric_model,
    padded,
    print_table,
)

pytestmark = pytest.mark.slow

N_REF = 100_000
N_CURS = (1_000, 10_000, 100_000)
FAMILY = 1_000
WARMUP = 10_000
NULL_MODELS = 20  # x 1000 features = 20,000 null feature-windows per n_cur
DRIFT_MODELS = 4  # x 1000 features = 4,000 drifted feature-windows per cell
MIXED_MODELS = 10
MIXED_PER_SCENARIO = 2
BH = DecisionPolicy()
BONFERRONI = DecisionPolicy(correction=Correction.BONFERRONI)
CONTEXT = EvaluationContext(model="sim", evaluated_at=0.0)
SCENARIOS: dict[str, tuple[float, float]] = {
    "+0.1σ": (0.1, 1.0),
    "+0.25σ": (0.25, 1.0),
    "+0.5σ": (0.5, 1.0),
    "variance ×1.5": (0.0, float(np.sqrt(1.5))),
}


@dataclass
class Tally:
    """Windows seen and flagged under one policy, with the legs that fired."""

    windows: int = 0
    flagged: int = 0
    by_leg: dict[str, int] = field(default_factory=dict)
    mean_d: list[float] = field(default_factory=list)
    mean_psi: list[float] = field(default_factory=list)
    min_pvalue: float = 1.0

    def add(self, evaluation: ModelEvaluation, rows: Sequence[int] | None = None) -> None:
        """Count the chosen rows (all by default) of one evaluation."""
        features = evaluation.features
        chosen = [features[i] for i in rows] if rows is not None else list(features)
        self.windows += len(chosen)
        for f in chosen:
            assert f.evaluated
            self.flagged += f.drift_detected
            for leg in f.drift_reasons:
                self.by_leg[leg] = self.by_leg.get(leg, 0) + 1
            self.mean_d.append(f.ks_statistic or 0.0)
            self.mean_psi.append(f.psi or 0.0)
            legs = [p for p in (f.ks_pvalue, f.psi_pvalue) if p is not None]
            self.min_pvalue = min([self.min_pvalue, *legs])

    @property
    def rate(self) -> float:
        """Fraction of windows flagged."""
        return self.flagged / self.windows

    def leg_rate(self, leg: str) -> float:
        """Fraction of windows flagged with this leg among the reasons."""
        return self.by_leg.get(leg, 0) / self.windows


def _evaluate(
    rng: np.random.Generator,
    n_cur: int,
    row_dists: Sequence[tuple[float, float]],
    policies: Sequence[DecisionPolicy],
) -> list[ModelEvaluation]:
    """One model (fresh warm-up edges, fresh references), row i drawn from row_dists[i]."""
    edges = learn_edges(rng.normal(size=WARMUP), 128)
    layout, specs = numeric_model(edges, len(row_dists))
    null_p = padded(normal_slot_probs(edges), layout.width)
    reference = multinomial_rows(rng, N_REF, null_p, len(row_dists))
    current = np.empty_like(reference)
    dists = np.asarray(row_dists)
    for mean, sd in {tuple(d) for d in dists.tolist()}:
        rows = np.flatnonzero((dists[:, 0] == mean) & (dists[:, 1] == sd))
        probs = padded(normal_slot_probs(edges, mean, sd), layout.width)
        current[rows] = multinomial_rows(rng, n_cur, probs, rows.size)
    return [
        ModelEvaluator(layout, specs, policy).evaluate(reference, current, CONTEXT)
        for policy in policies
    ]


@pytest.fixture(scope="module")
def null_tallies() -> dict[int, dict[str, Tally]]:
    """All-null 1000-feature models, NULL_MODELS per n_cur, under BH and Bonferroni."""
    start = time.perf_counter()
    rng = np.random.default_rng([20_261_126, 6, 0])
    out: dict[int, dict[str, Tally]] = {}
    for n_cur in N_CURS:
        tallies = {"bh": Tally(), "bonferroni": Tally()}
        for _ in range(NULL_MODELS):
            bh, bonf = _evaluate(rng, n_cur, [(0.0, 1.0)] * FAMILY, [BH, BONFERRONI])
            tallies["bh"].add(bh)
            tallies["bonferroni"].add(bonf)
        out[n_cur] = tallies
    print_table(
        f"No drift: {NULL_MODELS} models x {FAMILY} null features per n_cur, n_ref = {N_REF}",
        [
            "n_cur",
            "feature-windows",
            "flagged (BH q=1e-3)",
            "flagged (Bonferroni)",
            "smallest leg p-value",
            "mean D",
            "mean PSI₁₀",
        ],
        [
            (
                n,
                t["bh"].windows,
                fmt_rate(t["bh"].flagged, t["bh"].windows),
                fmt_rate(t["bonferroni"].flagged, t["bonferroni"].windows),
                f"{t['bh'].min_pvalue:.3g}",
                f"{np.mean(t['bh'].mean_d):.4f}",
                f"{np.mean(t['bh'].mean_psi):.5f}",
            )
            for n, t in out.items()
        ],
    )
    print(f"\n(null simulation time: {time.perf_counter() - start:.1f} s)")
    return out


@pytest.fixture(scope="module")
def drift_tallies() -> dict[tuple[str, int], dict[str, Tally]]:
    """All-drifting 1000-feature models, DRIFT_MODELS per cell, under Bonferroni and BH."""
    start = time.perf_counter()
    rng = np.random.default_rng([20_261_126, 6, 1])
    out: dict[tuple[str, int], dict[str, Tally]] = {}
    for name, dist in SCENARIOS.items():
        for n_cur in N_CURS:
            tallies = {"bonferroni": Tally(), "bh": Tally()}
            for _ in range(DRIFT_MODELS):
                bonf, bh = _evaluate(rng, n_cur, [dist] * FAMILY, [BONFERRONI, BH])
                tallies["bonferroni"].add(bonf)
                tallies["bh"].add(bh)
                bonf_flags = [f.drift_detected for f in bonf.features]
                bh_flags = [f.drift_detected for f in bh.features]
                assert all(b for a, b in zip(bonf_flags, bh_flags, strict=True) if a), (
                    "BH must flag every feature Bonferroni flags"
                )
            out[(name, n_cur)] = tallies
    print_table(
        f"Drift: fraction of windows flagged ({DRIFT_MODELS * FAMILY} per cell), "
        f"n_ref = {N_REF}; alpha_f = 1e-6 embedding (Bonferroni over 1000 = BH with one "
        "drifter among 999 nulls) and BH with all 1000 features drifting",
        [
            "scenario",
            "n_cur",
            "mean D",
            "mean PSI₁₀",
            "flagged, alpha_f = 1e-6",
            "via KS",
            "via PSI",
            "flagged, BH all drifting",
        ],
        [
            (
                name,
                n,
                f"{np.mean(t['bonferroni'].mean_d):.4f}",
                f"{np.mean(t['bonferroni'].mean_psi):.4f}",
                fmt_rate(t["bonferroni"].flagged, t["bonferroni"].windows),
                f"{t['bonferroni'].leg_rate('ks'):.4f}",
                f"{t['bonferroni'].leg_rate('psi'):.4f}",
                fmt_rate(t["bh"].flagged, t["bh"].windows),
            )
            for (name, n), t in out.items()
        ],
    )
    print(f"\n(drift simulation time: {time.perf_counter() - start:.1f} s)")
    return out


@pytest.fixture(scope="module")
def mixed_tallies() -> dict[int, dict[str, Tally]]:
    """Default-policy models of 1000 features: 2 per drift scenario, the rest null."""
    start = time.perf_counter()
    rng = np.random.default_rng([20_261_126, 6, 2])
    drifters = [d for d in SCENARIOS.values() for _ in range(MIXED_PER_SCENARIO)]
    rows = drifters + [(0.0, 1.0)] * (FAMILY - len(drifters))
    out: dict[int, dict[str, Tally]] = {}
    for n_cur in N_CURS:
        tallies = {name: Tally() for name in [*SCENARIOS, "null"]}
        for _ in range(MIXED_MODELS):
            (evaluation,) = _evaluate(rng, n_cur, rows, [BH])
            for i, name in enumerate(SCENARIOS):
                block = range(i * MIXED_PER_SCENARIO, (i + 1) * MIXED_PER_SCENARIO)
                tallies[name].add(evaluation, list(block))
            tallies["null"].add(evaluation, list(range(len(drifters), FAMILY)))
        out[n_cur] = tallies
    print_table(
        f"Mixed models, default policy (BH q=1e-3): {MIXED_MODELS} models x "
        f"({len(drifters)} drifting + {FAMILY - len(drifters)} null features) per n_cur",
        ["n_cur", *(f"{name} flagged" for name in SCENARIOS), "null features flagged"],
        [
            (
                n,
                *(f"{t[name].flagged}/{t[name].windows}" for name in SCENARIOS),
                f"{t['null'].flagged}/{t['null'].windows}",
            )
            for n, t in out.items()
        ],
    )
    print(f"\n(mixed-model simulation time: {time.perf_counter() - start:.1f} s)")
    return out


@pytest.mark.parametrize("n_cur", N_CURS)
def test_no_false_detection_without_drift(
    null_tallies: dict[int, dict[str, Tally]], n_cur: int
) -> None:
    """No null feature-window is flagged under the default policy (20,000 per n_cur)."""
    tally = null_tallies[n_cur]["bh"]
    assert tally.windows >= 4_000
    assert tally.flagged == 0, f"{tally.flagged} of {tally.windows} null windows flagged"


POWER_FLOORS = [
    ("+0.25σ", 1_000, 0.93),
    ("+0.25σ", 10_000, 0.93),
    ("+0.25σ", 100_000, 0.93),
    ("+0.5σ", 1_000, 0.99),
    ("+0.5σ", 10_000, 0.99),
    ("+0.5σ", 100_000, 0.99),
    ("variance ×1.5", 1_000, 0.80),
    ("variance ×1.5", 10_000, 0.99),
    ("variance ×1.5", 100_000, 0.99),
]


@pytest.mark.parametrize(("scenario", "n_cur", "floor"), POWER_FLOORS)
def test_power_at_research_level(
    drift_tallies: dict[tuple[str, int], dict[str, Tally]],
    scenario: str,
    n_cur: int,
    floor: float,
) -> None:
    """At alpha_f = 1e-3/1000 the rule flags at least the research's share of drifted windows."""
    tally = drift_tallies[(scenario, n_cur)]["bonferroni"]
    assert tally.rate >= floor, f"{scenario} at n_cur={n_cur}: power {tally.rate:.4f} < {floor}"


@pytest.mark.parametrize("n_cur", [10_000, 100_000])
@pytest.mark.parametrize("policy", ["bonferroni", "bh"])
def test_small_shift_is_ignored(
    drift_tallies: dict[tuple[str, int], dict[str, Tally]], n_cur: int, policy: str
) -> None:
    """A 0.1σ shift is flagged in at most 10 % of windows at n_cur >= 1e4 (effect floors)."""
    tally = drift_tallies[("+0.1σ", n_cur)][policy]
    assert tally.rate <= 0.10, f"0.1σ at n_cur={n_cur} ({policy}): flagged {tally.rate:.4f}"


@pytest.mark.parametrize("n_cur", N_CURS)
def test_mixed_model_flags_drifters_not_nulls(
    mixed_tallies: dict[int, dict[str, Tally]], n_cur: int
) -> None:
    """With 8 drifting features among 1000, BH flags every 0.5σ drifter and no null feature."""
    tallies = mixed_tallies[n_cur]
    assert tallies["null"].flagged == 0
    assert tallies["+0.5σ"].flagged == tallies["+0.5σ"].windows
