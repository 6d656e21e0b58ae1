"""Null calibration of the KS and PSI p-values (docs/statistics.md sections 1 and 2).

Set-up: 128 equal-mass fine bins. Each replicate draws a reference and a current window
from the same distribution as multinomial counts (both windows random, as the two-sample
tests assume), then computes, with the real monitor.stats functions:

    KS   D = ks_binned(ref, cur), p = ks_pvalue(D, n_ref, n_cur)
    PSI  groups = decile_groups(ref) (10 reference-decile groups of the fine bins),
         PSI, p = psi(group_counts(ref), group_counts(cur))   (+0.5 smoothing)

for every (n_ref, n_cur) cell. A p-value is calibrated when P(p <= alpha) matches alpha.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats as sps

from monitor.stats import decile_groups, group_counts, ks_binned, ks_pvalue, psi
from tests.stats.sim import clopper_pearson, fmt_rate, multinomial_rows, print_table

pytestmark = pytest.mark.slow

FINE_BINS = 128
REPS = 100_000
CHUNK = 10_000
CELLS = (
    (1_000, 1_000),
    (10_000, 10_000),
    (100_000, 1_000),
    (100_000, 10_000),
    (100_000, 100_000),
    (1_000_000, 1_000_000),
    (1_000, 100_000),
)
PSI_DF = 9  # 10 decile groups


@dataclass(frozen=True)
class NullCell:
    """Per-replicate KS p-values, PSI values and PSI p-values of one (n_ref, n_cur) cell."""

    n_ref: int
    n_cur: int
    ks_p: np.ndarray
    psi: np.ndarray
    psi_p: np.ndarray

    @property
    def psi_theory(self) -> float:
        """E[PSI] under no drift: 9 (1/n_ref + 1/n_cur)."""
        return PSI_DF * (1.0 / self.n_ref + 1.0 / self.n_cur)

    def count(self, pvalues: np.ndarray, alpha: float) -> int:
        """Number of replicates rejected at level alpha."""
        return int(np.sum(pvalues <= alpha))


def _simulate(n_ref: int, n_cur: int, seed: int) -> NullCell:
    rng = np.random.default_rng([20_261_126, seed])
    probs = np.full(FINE_BINS, 1.0 / FINE_BINS)
    ks_p, psi_v, psi_p = [], [], []
    for _ in range(REPS // CHUNK):
        ref = multinomial_rows(rng, n_ref, probs, CHUNK)
        cur = multinomial_rows(rng, n_cur, probs, CHUNK)
        d, _ = ks_binned(ref, cur)
        n_r = np.full(CHUNK, float(n_ref))
        n_c = np.full(CHUNK, float(n_cur))
        ks_p.append(ks_pvalue(d, n_r, n_c))
        groups = decile_groups(ref)
        value, p = psi(group_counts(ref, groups), group_counts(cur, groups))
        psi_v.append(value)
        psi_p.append(p)
    return NullCell(
        n_ref, n_cur, np.concatenate(ks_p), np.concatenate(psi_v), np.concatenate(psi_p)
    )


@pytest.fixture(scope="module")
def null_cells() -> dict[tuple[int, int], NullCell]:
    """All cells simulated once (REPS replicates each); prints the measured tables."""
    start = time.perf_counter()
    cells = {pair: _simulate(*pair, seed=i) for i, pair in enumerate(CELLS)}
    elapsed = time.perf_counter() - start
    print_table(
        f"KS p-value under H0, 128 equal-mass bins, {REPS} replicates per cell (rate [95 % CI])",
        ["n_ref", "n_cur", "n_eff", "P(p<=0.05)", "P(p<=0.01)", "P(p<=0.001)"],
        [
            (
                c.n_ref,
                c.n_cur,
                round(c.n_ref * c.n_cur / (c.n_ref + c.n_cur)),
                fmt_rate(c.count(c.ks_p, 0.05), REPS),
                fmt_rate(c.count(c.ks_p, 0.01), REPS),
                fmt_rate(c.count(c.ks_p, 0.001), REPS),
            )
            for c in cells.values()
        ],
    )
    print_table(
        f"PSI on 10 reference-decile groups under H0, {REPS} replicates per cell",
        [
            "n_ref",
            "n_cur",
            "mean PSI",
            "9(1/n_ref+1/n_cur)",
            "ratio",
            "P(p<=0.05)",
            "P(p<=0.01)",
            "P(p<=0.001)",
        ],
        [
            (
                c.n_ref,
                c.n_cur,
                f"{c.psi.mean():.4g}",
                f"{c.psi_theory:.4g}",
                f"{c.psi.mean() / c.psi_theory:.4f}",
                fmt_rate(c.count(c.psi_p, 0.05), REPS),
                fmt_rate(c.count(c.psi_p, 0.01), REPS),
                fmt_rate(c.count(c.psi_p, 0.001), REPS),
            )
            for c in cells.values()
        ],
    )
    print(f"\n(simulation time for KS + PSI null cells: {elapsed:.1f} s)")
    return cells


@pytest.mark.parametrize(("n_ref", "n_cur"), CELLS)
def test_ks_level_is_conservative_but_close(
    null_cells: dict[tuple[int, int], NullCell], n_ref: int, n_cur: int
) -> None:
    """Binned KS rejects 3-5 % of null windows at 0.05 and 0.6-1 % at 0.01."""
    cell = null_cells[(n_ref, n_cur)]
    at_05 = cell.count(cell.ks_p, 0.05) / REPS
    at_01 = cell.count(cell.ks_p, 0.01) / REPS
    assert 0.03 <= at_05 <= 0.05, f"level at 0.05 is {at_05:.4f}"
    assert 0.006 <= at_01 <= 0.01, f"level at 0.01 is {at_01:.4f}"


def test_kstwobign_agrees_with_exact_kstwo() -> None:
    """ks_pvalue is within 10 % of scipy's exact kstwo for n_eff >= 500, never below it."""
    rows = []
    gaps = []
    for n in (1_000, 2_000, 10_000, 100_000):  # n_ref = n_cur = n, so n_eff = n / 2
        n_eff = n // 2
        targets = np.asarray([0.05, 0.01, 1e-3, 1e-4, 1e-5, 1e-6])
        d = np.asarray(sps.kstwobign.isf(targets), dtype=np.float64) / np.sqrt(n_eff)
        ours = ks_pvalue(d, np.full(d.size, float(n)), np.full(d.size, float(n)))
        exact = np.asarray(sps.kstwo.sf(d, n_eff), dtype=np.float64)
        for i, target in enumerate(targets):
            ratio = float(ours[i] / exact[i])
            rows.append((n_eff, f"{target:g}", f"{d[i]:.5f}", f"{exact[i]:.4g}", f"{ratio:.4f}"))
            gaps.append((n_eff, float(target), ratio))
    print_table(
        "ks_pvalue (kstwobign) vs exact kstwo, n_ref = n_cur = 2 n_eff",
        ["n_eff", "ks_pvalue", "D", "kstwo.sf", "ratio"],
        rows,
    )
    assert all(ratio >= 1.0 for _, _, ratio in gaps), "kstwobign must err on the safe side"
    in_scope = [abs(r - 1.0) for n_eff, p, r in gaps if p >= 1e-4 or n_eff >= 1_000]
    assert max(in_scope) <= 0.10, f"largest relative gap {max(in_scope):.3f}"


@pytest.mark.parametrize(("n_ref", "n_cur"), CELLS)
def test_psi_null_mean_matches_chi_square_scaling(
    null_cells: dict[tuple[int, int], NullCell], n_ref: int, n_cur: int
) -> None:
    """Mean PSI under no drift is within 5 % of 9 (1/n_ref + 1/n_cur)."""
    cell = null_cells[(n_ref, n_cur)]
    ratio = float(cell.psi.mean()) / cell.psi_theory
    assert abs(ratio - 1.0) <= 0.05, f"mean PSI / theory = {ratio:.4f}"


@pytest.mark.parametrize(("n_ref", "n_cur"), CELLS)
def test_psi_pvalue_level_at_005(
    null_cells: dict[tuple[int, int], NullCell], n_ref: int, n_cur: int
) -> None:
    """The PSI chi-square p-value rejects 4-6 % of null windows at 0.05."""
    cell = null_cells[(n_ref, n_cur)]
    level = cell.count(cell.psi_p, 0.05) / REPS
    assert 0.04 <= level <= 0.06, f"level at 0.05 is {level:.4f}"


def test_psi_pvalue_level_at_0001(null_cells: dict[tuple[int, int], NullCell]) -> None:
    """At 0.001 the pooled PSI level is in [0.0005, 0.002] and no cell contradicts it."""
    pooled = sum(c.count(c.psi_p, 0.001) for c in null_cells.values())
    pooled_rate = pooled / (REPS * len(null_cells))
    assert 0.0005 <= pooled_rate <= 0.002, f"pooled level at 0.001 is {pooled_rate:.5f}"
    for cell in null_cells.values():
        lower, upper = clopper_pearson(cell.count(cell.psi_p, 0.001), REPS)
        assert upper >= 0.0005 and lower <= 0.002, (
            f"cell {cell.n_ref}/{cell.n_cur}: 95 % CI [{lower:.5f}, {upper:.5f}]"
        )
