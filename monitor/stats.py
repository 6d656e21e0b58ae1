"""Drift statistics on binned counts, vectorised over features (numpy/scipy only).

Every function takes count matrices `[F, S]` (one row per feature, S value slots, missing
and invalid columns already removed) and returns one value per row. A row whose window is
empty yields NaN. References: docs/architecture.md (Statistics) and docs/statistics.md.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PSI_GROUPS = 10
PSI_SMOOTHING = 0.5
COCHRAN_MIN_EXPECTED = 5.0


def _totals(counts: npt.NDArray[np.integer]) -> FloatArray:
    return np.asarray(counts.sum(axis=1), dtype=np.float64)


def _safe_divide(num: npt.ArrayLike, den: npt.ArrayLike) -> FloatArray:
    """num / den elementwise (broadcast), NaN where den <= 0; no floating-point warnings."""
    numerator = np.asarray(num, dtype=np.float64)
    denominator = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast_shapes(numerator.shape, denominator.shape), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def effective_n(n_ref: FloatArray, n_cur: FloatArray) -> FloatArray:
    """n_eff = n_r n_c / (n_r + n_c), the sample size of the two-sample KS and PSI laws."""
    return _safe_divide(n_ref * n_cur, n_ref + n_cur)


def ks_binned(
    ref: npt.NDArray[np.integer], cur: npt.NDArray[np.integer]
) -> tuple[FloatArray, FloatArray]:
    """Binned two-sample KS statistic and its error certificate, per row.

    D = max_k |F_r(e_k) - F_c(e_k)| with F(e_k) = cumsum(counts)[k] / n (the ECDFs at the
    bin edges). err_bound = max_k max(r_k / n_r, c_k / n_c): inside a bin neither ECDF can
    rise by more than that bin's mass, so 0 <= D_exact - D <= err_bound (the bound
    docs/statistics.md measures). Atoms on an edge cost nothing, so the bound is conservative.
    """
    n_r = _totals(ref)
    n_c = _totals(cur)
    cdf_r = _safe_divide(np.cumsum(ref, axis=1, dtype=np.float64), n_r[:, None])
    cdf_c = _safe_divide(np.cumsum(cur, axis=1, dtype=np.float64), n_c[:, None])
    d = np.max(np.abs(cdf_r - cdf_c), axis=1)
    # max_k (r_k / n_r) = (max_k r_k) / n_r exactly (division by n_r > 0 is monotone)
    err = np.maximum(_safe_divide(ref.max(axis=1), n_r), _safe_divide(cur.max(axis=1), n_c))
    return d, err


def ks_pvalue(d: FloatArray, n_ref: FloatArray, n_cur: FloatArray) -> FloatArray:
    """Asymptotic KS p-value p = kstwobign.sf(D * sqrt(n_eff)), n_eff = n_r n_c / (n_r + n_c).

    (scipy.special.kolmogorov is kstwobign.sf.) Against the exact `kstwo` at n_eff >= 500
    it overstates p (conservative) by <= 9 % for p >= 1e-4 and by up to 13 % at p = 1e-6
    (docs/statistics.md); it is also conservative under binning (the binned D is a maximum
    over fewer points): actual level ~0.75 x nominal at 128 bins.
    """
    n_eff = effective_n(n_ref, n_cur)
    with np.errstate(invalid="ignore"):
        p = np.asarray(special.kolmogorov(d * np.sqrt(n_eff)), dtype=np.float64)
    return np.where(np.isfinite(d) & (n_eff > 0), p, np.nan)


KS_NULL_MEAN = 0.8687311606361591
"""E[sqrt(n_eff) D] under no drift: the mean of the Kolmogorov law, sqrt(pi / 2) ln 2."""


def ks_noise_floor(n_ref: FloatArray, n_cur: FloatArray, multiple: float) -> FloatArray:
    """The KS D that sampling noise alone reaches rarely: `multiple` times its null mean.

    floor = multiple * 0.8687 / sqrt(n_eff) (`KS_NULL_MEAN`, n_eff = n_r n_c / (n_r + n_c)).
    D >= floor is the event sqrt(n_eff) D >= 0.8687 multiple: at multiple 3.1,
    kolmogorov(2.693) = 1.0e-6 per window (binned D is smaller than the exact one, so less),
    whatever the correction's level. The floor falls like 1/sqrt(n): it binds on small
    windows, where the fixed `ks_floor` is below the noise (docs/statistics.md, "False alarms
    over time"). multiple = 0 disables it (floor 0).
    """
    n_eff = effective_n(np.asarray(n_ref, dtype=np.float64), np.asarray(n_cur, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = multiple * KS_NULL_MEAN / np.sqrt(n_eff)
    return np.asarray(np.where(multiple > 0, floor, 0.0), dtype=np.float64)


def decile_groups(ref: npt.NDArray[np.integer], n_groups: int = PSI_GROUPS) -> IntArray:
    """Group index of every fine slot, cutting at the reference quantiles k / n_groups.

    A slot's group is floor(n_groups * m) for m the mid-point of its cumulative reference
    mass interval, capped at n_groups - 1: with 128 equal-mass fine bins each of the 10
    groups holds 0.1 +- 1/128 of the reference. Slots without reference mass join the group
    at their cumulative position (underflow the first group, overflow the last).
    """
    n_r = _totals(ref)
    cum = np.cumsum(ref, axis=1, dtype=np.float64)
    before = cum - ref
    mid = _safe_divide((cum + before) / 2.0, n_r[:, None])
    mid = np.nan_to_num(mid, nan=0.0)
    return np.minimum(np.floor(mid * n_groups), n_groups - 1).astype(np.int64)


def group_counts(
    counts: npt.NDArray[np.integer], groups: IntArray, n_groups: int = PSI_GROUPS
) -> FloatArray:
    """Sum fine-slot counts into groups: out[f, g] = sum of counts[f, s] with groups[f, s] = g."""
    n_rows = counts.shape[0]
    flat = groups + (np.arange(n_rows, dtype=np.int64) * n_groups)[:, None]
    summed = np.bincount(
        flat.ravel(), weights=counts.ravel().astype(np.float64), minlength=n_rows * n_groups
    )
    return np.asarray(summed, dtype=np.float64).reshape(n_rows, n_groups)


def psi(
    ref: npt.ArrayLike, cur: npt.ArrayLike, smoothing: float = PSI_SMOOTHING
) -> tuple[FloatArray, FloatArray]:
    """Population stability index on already-grouped counts, with its chi-square p-value.

    Only buckets non-empty in the pooled data take part (B_eff of them). Every count gets
    +smoothing (Laplace), proportions r_i = (R_i + s) / (n_r + s B_eff) and likewise c_i;
    PSI = sum_i (c_i - r_i) ln(c_i / r_i) >= 0.
    p = chi2.sf(PSI / (1/n_r + 1/n_c), B_eff - 1) (Yurdakul scaling; docs/statistics.md
    section 2). Under no drift E[PSI] ~ (B_eff - 1)(1/n_r + 1/n_c).
    """
    r = np.asarray(ref, dtype=np.float64)
    c = np.asarray(cur, dtype=np.float64)
    used = (r + c) > 0
    b_eff = used.sum(axis=1).astype(np.float64)
    n_r = r.sum(axis=1)
    n_c = c.sum(axis=1)
    r_s = np.where(used, r + smoothing, 0.0)
    c_s = np.where(used, c + smoothing, 0.0)
    r_p = _safe_divide(r_s, r_s.sum(axis=1)[:, None])
    c_p = _safe_divide(c_s, c_s.sum(axis=1)[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(used, (c_p - r_p) * np.log(c_p / np.where(used, r_p, 1.0)), 0.0)
    value = terms.sum(axis=1)
    valid = (n_r > 0) & (n_c > 0)
    value = np.where(valid, np.maximum(value, 0.0), np.nan)
    scale = _safe_divide(np.ones_like(n_r), n_r) + _safe_divide(np.ones_like(n_c), n_c)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.asarray(special.chdtrc(np.maximum(b_eff - 1, 1), value / scale), dtype=np.float64)
    p = np.where(valid & (b_eff > 1), p, np.where(valid, 1.0, np.nan))
    return value, p


def psi_noise_floor(
    n_ref: FloatArray, n_cur: FloatArray, groups_used: npt.ArrayLike, multiple: float
) -> FloatArray:
    """The PSI that sampling noise alone reaches rarely: `multiple` times its null mean.

    floor = multiple (B_eff - 1)(1/n_r + 1/n_c), B_eff the groups non-empty in the pooled
    data. Under no drift PSI / (1/n_r + 1/n_c) ~ chi2(B_eff - 1) (see `psi`), so E[PSI] =
    (B_eff - 1)(1/n_r + 1/n_c) and PSI >= floor is the event chi2(B_eff - 1) >= multiple
    (B_eff - 1): at 10 groups and multiple 5, probability chi2.sf(45, 9) = 9.2e-7 per window,
    whatever the correction's level. The floor falls like 1/n: it binds on small windows,
    where the fixed `psi_floor` is below the noise (docs/statistics.md, "False alarms over
    time"). multiple = 0 disables it (floor 0).
    """
    degrees = np.maximum(np.asarray(groups_used, dtype=np.float64) - 1.0, 0.0)
    scale = _safe_divide(np.ones_like(n_ref), n_ref) + _safe_divide(np.ones_like(n_cur), n_cur)
    return np.asarray(multiple * degrees * scale, dtype=np.float64)


def cochran_merge(
    ref: npt.ArrayLike, cur: npt.ArrayLike, other_col: IntArray
) -> tuple[FloatArray, FloatArray]:
    """Merge buckets whose smallest expected count is below 5 into each row's OTHER bucket.

    Expected count of bucket j in the 2 x k table: min(n_r, n_c) * (R_j + C_j) / (n_r + n_c).
    `other_col[f]` is the column of row f's OTHER bucket (it is never merged away).
    """
    r = np.asarray(ref, dtype=np.float64).copy()
    c = np.asarray(cur, dtype=np.float64).copy()
    n_r = r.sum(axis=1)
    n_c = c.sum(axis=1)
    pooled = r + c
    expected = _safe_divide(np.minimum(n_r, n_c)[:, None] * pooled, (n_r + n_c)[:, None])
    small = (expected < COCHRAN_MIN_EXPECTED) & (pooled > 0)
    rows = np.arange(r.shape[0])
    small[rows, other_col] = False
    r[rows, other_col] += np.where(small, r, 0.0).sum(axis=1)
    c[rows, other_col] += np.where(small, c, 0.0).sum(axis=1)
    r[small] = 0.0
    c[small] = 0.0
    return r, c


def chi2_homogeneity(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Chi-square test of homogeneity of two count vectors per row (2 x k table).

    X^2 = sum_{i in {r,c}} sum_j (O_ij - E_ij)^2 / E_ij with E_ij = n_i (R_j + C_j) / N over
    the k buckets non-empty in the pooled data; p = chi2.sf(X^2, k - 1).
    """
    r = np.asarray(ref, dtype=np.float64)
    c = np.asarray(cur, dtype=np.float64)
    n_r = r.sum(axis=1)[:, None]
    n_c = c.sum(axis=1)[:, None]
    total = n_r + n_c
    pooled = r + c
    used = pooled > 0
    e_r = _safe_divide(n_r * pooled, total)
    e_c = _safe_divide(n_c * pooled, total)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(used, (r - e_r) ** 2 / e_r + (c - e_c) ** 2 / e_c, 0.0).sum(axis=1)
    k = used.sum(axis=1)
    valid = (n_r[:, 0] > 0) & (n_c[:, 0] > 0)
    with np.errstate(invalid="ignore"):
        p = np.asarray(special.chdtrc(np.maximum(k - 1, 1), stat), dtype=np.float64)
    p = np.where(valid & (k > 1), p, np.where(valid, 1.0, np.nan))
    return np.where(valid, stat, np.nan), p


def total_variation(ref: npt.ArrayLike, cur: npt.ArrayLike) -> FloatArray:
    """Total variation distance TVD = 1/2 sum_j |r_j / n_r - c_j / n_c| per row, in [0, 1]."""
    r = np.asarray(ref, dtype=np.float64)
    c = np.asarray(cur, dtype=np.float64)
    r_p = _safe_divide(r, r.sum(axis=1)[:, None])
    c_p = _safe_divide(c, c.sum(axis=1)[:, None])
    return np.asarray(0.5 * np.abs(r_p - c_p).sum(axis=1), dtype=np.float64)


def good_turing_variance(
    singleton_fraction: FloatArray, doubleton_fraction: FloatArray, n_ref: FloatArray
) -> FloatArray:
    """Variance of the Good-Turing unseen mass p0 = f1 / n as an estimate of the true one.

    Var(f1/n - M0) ~ (f1 (1 - f1/n) + 2 f2) / n^2 = (p1 (1 - p1) + 2 p2) / n (Esty 1983), with
    p1 = f1/n and p2 = f2/n the singleton and doubleton fractions of the reference. A NaN p2
    (not recorded) counts as 0, which leaves the f1 part only (a lower bound).
    """
    p1 = np.clip(np.asarray(singleton_fraction, dtype=np.float64), 0.0, 1.0)
    p2 = np.nan_to_num(np.asarray(doubleton_fraction, dtype=np.float64), nan=0.0)
    return _safe_divide(p1 * (1.0 - p1) + 2.0 * np.clip(p2, 0.0, 0.5), n_ref)


def new_category_pvalue(
    unseen: FloatArray,
    n_cur: FloatArray,
    singleton_fraction: FloatArray,
    p0_variance: FloatArray | float = 0.0,
) -> FloatArray:
    """One-sided test of the unseen-category count against the Good-Turing mass.

    H0: each current value is unseen with probability M0, whose Good-Turing estimate is
    p0 = f1 / n_ref (the reference's singleton fraction) with variance v0 (`p0_variance`,
    `good_turing_variance`). The count is Poisson(n_c M0) with M0 ~ Gamma(mean p0, variance
    v0), i.e. negative binomial with shape r = p0^2 / v0 and mean mu = n_c p0:
    p = P(U >= u) = I_{mu / (r + mu)}(u, r) (regularised incomplete beta). With v0 = 0 it is
    the Poisson tail P(U >= u) = pdtrc(u - 1, n_c p0), slightly above the binomial one. With
    p0 = 0 any unseen value gives p = 0. The decision also needs u / n_c > p0 + floor
    (DecisionPolicy). Taking p0 as exact made the test reject a warm-up that underestimated
    M0 for the life of that reference (docs/statistics.md, false alarms over time).
    """
    u = np.asarray(unseen, dtype=np.float64)
    n = np.asarray(n_cur, dtype=np.float64)
    p0 = np.clip(np.asarray(singleton_fraction, dtype=np.float64), 0.0, 1.0)
    v0 = np.broadcast_to(np.asarray(p0_variance, dtype=np.float64), np.broadcast(u, p0).shape)
    mu = n * p0
    with np.errstate(invalid="ignore", divide="ignore"):
        shape = np.where(v0 > 0, p0 * p0 / np.where(v0 > 0, v0, 1.0), np.inf)
        mixed = special.betainc(
            np.maximum(u, 1.0), np.where(np.isfinite(shape), shape, 1.0), mu / (shape + mu)
        )
        poisson = special.pdtrc(np.maximum(u - 1.0, 0.0), mu)
    p = np.where(np.isfinite(shape) & (shape > 0), mixed, poisson)
    p = np.where(p0 > 0, p, 0.0)
    p = np.asarray(np.where(u <= 0, 1.0, p), dtype=np.float64)
    return np.where(n > 0, p, np.nan)


def two_proportion_pvalue(
    k_ref: FloatArray, n_ref: FloatArray, k_cur: FloatArray, n_cur: FloatArray
) -> FloatArray:
    """Two-sided pooled z-test of equal proportions (used for the missing-value ratio).

    z = (k_c/n_c - k_r/n_r) / sqrt(p (1 - p) (1/n_r + 1/n_c)), p = (k_r + k_c)/(n_r + n_c);
    p-value = 2 * norm.sf(|z|); 1 when both proportions are 0 or both are 1.
    """
    pooled = _safe_divide(k_ref + k_cur, n_ref + n_cur)
    se = np.sqrt(
        pooled
        * (1.0 - pooled)
        * (_safe_divide(np.ones_like(n_ref), n_ref) + _safe_divide(np.ones_like(n_cur), n_cur))
    )
    diff = _safe_divide(k_cur, n_cur) - _safe_divide(k_ref, n_ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, np.abs(diff) / np.where(se > 0, se, 1.0), 0.0)
    p = np.asarray(2.0 * special.ndtr(-z), dtype=np.float64)
    return np.where((n_ref > 0) & (n_cur > 0), p, np.nan)


def benjamini_hochberg(pvalues: FloatArray) -> FloatArray:
    """BH-adjusted p-values (q-values): q_(i) = min_{j >= i} m p_(j) / j, capped at 1.

    NaN entries are not part of the family (m counts finite p-values only) and stay NaN.
    A feature is rejected at FDR level q iff its q-value <= q.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    m = int(finite.sum())
    if m == 0:
        return out
    values = p[finite]
    order = np.argsort(values, kind="mergesort")
    ranked = values[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(adjusted, 1.0)
    out[finite] = q
    return out


def bonferroni(pvalues: FloatArray) -> FloatArray:
    """Bonferroni-adjusted p-values min(m p, 1) over the finite entries; NaN stays NaN."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = int(np.isfinite(p).sum())
    return np.where(np.isfinite(p), np.minimum(p * max(m, 1), 1.0), np.nan)
