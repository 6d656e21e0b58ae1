"""Correlation drift of a numeric group: bucketed moment sums and a Fisher-z test per pair.

A model's correlation group is up to `MAX_GROUP` numeric features (configured, or the first
64). Everything here is numpy/scipy only.

Values. Each value is winsorised at its feature's reference 0.5 % and 99.5 % quantiles
(lo, hi) and then shifted and scaled by the reference mean and standard deviation of the
winsorised values: u = (clip(x, lo, hi) - c) / s. A correlation is invariant under this
affine map, so r is the correlation of the winsorised values; the shift only keeps the sums
well conditioned (no cancellation of large means). Missing values (NaN) and invalid ones
(+-inf, as the decoder marks them) are skipped *pairwise*: a pair (a, b) uses every event in which
both are present, as `numpy.corrcoef` on those rows would. Pairwise-complete rather than
complete rows, so one sparse feature does not starve every other pair.

Sums. With m_a the presence indicator of feature a and u0_a = u_a where present, else 0,
one batch (or bucket) is four G x G matrices, stacked as `float64[4, G, G]`:

    N[a, b] = sum m_a m_b        S[a, b] = sum u0_a m_b
    Q[a, b] = sum u0_a^2 m_b     P[a, b] = sum u0_a u0_b

Sums add, so buckets merge by addition (a fleet folds them like the histograms) and a
window is the sum of its buckets. Per pair, from the sums over the pair's complete rows:

    r_ab = (N P - S_ab S_ba) / sqrt((N Q_ab - S_ab^2) (N Q_ba - S_ba^2))

Test. Per pair, Fisher's z of the change between the reference and the current window:

    z = (atanh r_cur - atanh r_ref) / sqrt(k (1 / (n_cur - 3) + 1 / (n_ref - 3))),
    p = 2 (1 - Phi(|z|))

1/(n - 3) is the variance of atanh r for bivariate normal data. For other data it is wrong
by a factor k that depends on the fourth moments (lognormal features: the level at 0.05
was 0.077 with k = 1), so k is estimated per pair on the reference, with the standardised
winsorised values a, b of the pair's complete rows and rho their correlation (the delta
method for r, e.g. Hawkins 1989, divided by the normal-theory variance (1 - rho^2)^2):

    k = [(1 + rho^2/2) m22 - rho (m31 + m13) + rho^2/4 (m40 + m04)] / (1 - rho^2)^2,
    m_ij = mean(a^i b^j),  clipped to [0.5, 20];  k = 1 for normal data.

A pair is evaluated when both windows hold at least `min_samples` complete rows and both
variances are positive. The evaluated pairs form one multiple-testing family of their own
(Benjamini-Hochberg at the model's q, or the model's other correction), separate from the
features' family, so enabling the group does not move the per-feature decisions. A pair
drifts iff p <= alpha* (the family's level) and |r_cur - r_ref| clears both the effect
floor (0.1) and the noise floor: `noise_multiple` m (6) standard errors of the change, by the
delta method on z at r_ref,

    |r_cur - r_ref| >= m (1 - r_ref^2) sqrt(k (1 / (n_cur - 3) + 1 / (n_ref - 3))),

i.e. |z| >= about m whatever the family's size. The normal tail of z is optimistic for skewed
data beyond what k corrects, and a sliding window evaluated every 15 s turns rare tail events
into runs that reach the alert's `for:`; the noise floor only bites when windows are small
(with k = 1, r_ref = 0.3 and 10,000 reference events it exceeds 0.1 below about 4,300
events per window). m = 0 turns it off. docs/statistics.md measures the level, the power
and the false alerts over time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from monitor.model import Correction, CorrelationResult, DecisionPolicy, PairChange
from monitor.stats import benjamini_hochberg, bonferroni

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_GROUP = 64
"""Most features in one correlation group (64 x 63 / 2 = 2,016 pairs)."""
WINSOR_QUANTILES = (0.005, 0.995)
DEFAULT_CHANGE_FLOOR = 0.1
"""The effect floor: a pair drifts only when |r_cur - r_ref| >= this."""
DEFAULT_NOISE_MULTIPLE = 6.0
"""The noise floor: a pair drifts only when |r_cur - r_ref| is at least this many standard
errors of the change (module docstring; 0: off)."""
TOP_PAIRS = 10
"""Pairs exported one by one (the largest |change| first); the rest only in the counts."""
_EMPTY_BUCKET = np.iinfo(np.int64).min
_R_LIMIT = 1.0 - 1e-12


@dataclass(frozen=True, slots=True, eq=False)
class CorrelationReference:
    """A group's frozen reference: names, winsor bounds, shift/scale and the reference sums."""

    names: tuple[str, ...]
    lo: FloatArray
    hi: FloatArray
    center: FloatArray
    scale: FloatArray
    sums: FloatArray
    variance_factor: FloatArray
    """k per pair (module docstring), float64[G, G]."""

    def transform(self, values: FloatArray) -> FloatArray:
        """u = (clip(x, lo, hi) - c) / s per row of `values` (float64[G, N]).

        NaN (missing) and +-inf (the decoder's invalid value) become NaN: skipped, never
        clipped into the range.
        """
        x = np.asarray(values, dtype=np.float64)
        x = np.where(np.isfinite(x), x, np.nan)
        clipped = np.clip(x, self.lo[:, None], self.hi[:, None])
        return np.asarray((clipped - self.center[:, None]) / self.scale[:, None])

    def moments(self, values: FloatArray) -> FloatArray:
        """The four sums (module docstring) of a batch of raw values float64[G, N]."""
        return moment_sums(self.transform(values))

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (floats round-trip exactly through `json`)."""
        return {
            "features": list(self.names),
            "lo": self.lo.tolist(),
            "hi": self.hi.tolist(),
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "sums": self.sums.tolist(),
            "variance_factor": self.variance_factor.tolist(),
        }

    @classmethod
    def from_json(cls, data: object) -> CorrelationReference:
        """Inverse of `to_json`; ValueError when the shapes or values do not fit."""
        if not isinstance(data, dict):
            raise ValueError("correlation reference must be an object")
        names = data.get("features")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("correlation reference: features must be a list of names")
        g = len(names)
        if not 2 <= g <= MAX_GROUP or len(set(names)) != g:
            raise ValueError(f"correlation reference: 2 to {MAX_GROUP} distinct features")
        vectors = [_floats(data, k) for k in ("lo", "hi", "center")]
        scale = _floats(data, "scale")
        sums = _floats(data, "sums")
        factor = _floats(data, "variance_factor")
        if any(v.shape != (g,) for v in (*vectors, scale)) or sums.shape != (4, g, g):
            raise ValueError("correlation reference: array shapes do not match the features")
        if factor.shape != (g, g):
            raise ValueError("correlation reference: variance_factor must be G x G")
        finite = all(np.isfinite(v).all() for v in (*vectors, scale, sums, factor))
        if not finite or (scale <= 0).any() or (factor <= 0).any():
            raise ValueError("correlation reference: non-finite value or scale <= 0")
        return cls(tuple(names), vectors[0], vectors[1], vectors[2], scale, sums, factor)


def _floats(data: dict[str, object], key: str) -> FloatArray:
    """`data[key]` as a float64 array; ValueError for anything that is not numbers (an object,
    a string, an integer beyond the float range: a TypeError or OverflowError crashed the
    daemon at every start with such a profile)."""
    try:
        return np.asarray(data.get(key), dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"correlation reference: {key} is not an array of numbers") from exc


def fit_reference(names: Sequence[str], values: FloatArray) -> CorrelationReference:
    """Fit a group's reference from raw reference values float64[G, N] (NaN = missing).

    lo, hi: the 0.5 % / 99.5 % quantiles of each feature's finite values (linear
    interpolation); c, s: mean and standard deviation of the winsorised values (s = 1 when
    a feature is constant: its pairs then have no variance and are never evaluated), taken
    on the values divided by max(|lo|, |hi|) when the plain sums overflow (a producer's
    1.8e308 "no value" sentinel in more than 0.5 % of the events).
    ValueError when a feature has no finite value, the group is not 2..MAX_GROUP wide, or
    the fit is not finite (what `from_json` would refuse is never returned).
    """
    x = np.asarray(values, dtype=np.float64)
    g = len(names)
    if not 2 <= g <= MAX_GROUP or x.ndim != 2 or x.shape[0] != g:
        raise ValueError(f"a correlation group has 2 to {MAX_GROUP} features, one row each")
    x = np.where(np.isfinite(x), x, np.nan)
    lo = np.empty(g)
    hi = np.empty(g)
    center = np.empty(g)
    scale = np.empty(g)
    for row in range(g):
        finite = x[row][~np.isnan(x[row])]
        if finite.size == 0:
            raise ValueError(f"feature {names[row]!r} has no finite reference value")
        with np.errstate(over="ignore", invalid="ignore"):
            lo[row], hi[row] = np.quantile(finite, WINSOR_QUANTILES)
            clipped = np.clip(finite, lo[row], hi[row])
            center[row], std = _mean_std(clipped, max(abs(lo[row]), abs(hi[row])))
        scale[row] = std if std > 0 and math.isfinite(std) else 1.0
    ones = np.ones((g, g))
    partial = CorrelationReference(tuple(names), lo, hi, center, scale, np.zeros((4, g, g)), ones)
    with np.errstate(over="ignore", invalid="ignore"):
        u = partial.transform(x)
        sums = moment_sums(u)
        factor = variance_factor(u, sums)
    fitted = CorrelationReference(tuple(names), lo, hi, center, scale, sums, factor)
    finite_fit = all(np.isfinite(v).all() for v in (lo, hi, center, scale, sums, factor))
    if not finite_fit or (factor <= 0).any():
        raise ValueError("the group's reference values do not give a finite correlation fit")
    return fitted


def _mean_std(values: FloatArray, magnitude: float) -> tuple[float, float]:
    """Mean and standard deviation of `values`, on `values / magnitude` when the plain sums
    overflow (values near the float range); callers check the results are finite."""
    mean, std = float(values.mean()), float(values.std())
    if (math.isfinite(mean) and math.isfinite(std)) or not 0 < magnitude < math.inf:
        return mean, std
    scaled = values / magnitude
    return float(scaled.mean()) * magnitude, float(scaled.std()) * magnitude


def variance_factor(u: FloatArray, sums: FloatArray) -> FloatArray:
    """k per pair (module docstring) from transformed reference values float64[G, N].

    Each pair's values are standardised over the pair's complete rows (means and variances
    from the sums); the fourth moments are masked matrix products.
    """
    present = ~np.isnan(u)
    m = present.astype(np.float64)
    u0 = np.where(present, u, 0.0)
    n, s, q, _ = (np.asarray(sums[i]) for i in range(4))
    rho, _ = correlations(sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n  # mean[a, b]: of a over the rows where b is present
        var = q / n - mean * mean
        sd = np.sqrt(np.maximum(var, 0.0))
        # a = (u_a - mean_ab) / sd_ab over the pair's rows; expand the powers of (u - mean).
        p = [u0**i for i in range(5)]
        p[0] = m
        raw = {(i, j): p[i] @ p[j].T for i in range(5) for j in range(5 - i)}
        n_safe = np.where(n > 0, n, 1.0)
        mu_a, mu_b = mean, mean.T

        def central(i: int, j: int) -> FloatArray:
            """mean over the pair's rows of (u_a - mu_a)^i (u_b - mu_b)^j."""
            total = np.zeros_like(n)
            for k in range(i + 1):
                for l_ in range(j + 1):
                    coef = math.comb(i, k) * math.comb(j, l_)
                    term = raw[(k, l_)] / n_safe
                    total += coef * term * (-mu_a) ** (i - k) * (-mu_b) ** (j - l_)
            return total

        sd_a, sd_b = sd, sd.T
        m22 = central(2, 2) / (sd_a**2 * sd_b**2)
        m31 = central(3, 1) / (sd_a**3 * sd_b)
        m13 = central(1, 3) / (sd_a * sd_b**3)
        m40 = central(4, 0) / sd_a**4
        m04 = central(0, 4) / sd_b**4
        r2 = rho * rho
        var_r = (1 + r2 / 2) * m22 - rho * (m31 + m13) + r2 / 4 * (m40 + m04)
        k = var_r / (1 - r2) ** 2
    k = np.where(np.isfinite(k), k, 1.0)
    return np.asarray(np.clip(k, 0.5, 20.0))


def moment_sums(u: FloatArray) -> FloatArray:
    """N, S, Q, P (module docstring) of transformed values float64[G, N] as float64[4, G, G].

    One matrix product: [u0; u0^2; m] (3G x N) times [u0; m]^T (N x 2G).
    """
    present = ~np.isnan(u)
    m = present.astype(np.float64)
    u0 = np.where(present, u, 0.0)
    g = u.shape[0]
    left = np.concatenate([u0, u0 * u0, m])
    right = np.concatenate([u0, m])
    block = left @ right.T
    out = np.empty((4, g, g))
    out[0] = block[2 * g :, g:]  # N = m m^T
    out[1] = block[:g, g:]  # S = u0 m^T
    out[2] = block[g : 2 * g, g:]  # Q = u0^2 m^T
    out[3] = block[:g, :g]  # P = u0 u0^T
    return out


def correlations(sums: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(r, n) per pair from the four sums: r float64[G, G] (NaN: no variance), n complete rows."""
    n, s, q, p = (np.asarray(sums[i], dtype=np.float64) for i in range(4))
    cov = n * p - s * s.T
    var_a = n * q - s * s
    var_b = var_a.T
    den = var_a * var_b
    r = np.full(n.shape, np.nan)
    with np.errstate(invalid="ignore"):
        np.divide(cov, np.sqrt(np.maximum(den, 0.0)), out=r, where=(var_a > 0) & (var_b > 0))
    return np.clip(r, -1.0, 1.0), n


def fisher_z_pvalue(
    r_ref: FloatArray,
    n_ref: FloatArray,
    r_cur: FloatArray,
    n_cur: FloatArray,
    factor: FloatArray | float = 1.0,
) -> FloatArray:
    """Two-sided p of z = (atanh r_cur - atanh r_ref) / sqrt(k (1/(n_cur-3) + 1/(n_ref-3))).

    k = `factor` (1: bivariate normal). NaN where a correlation is NaN or a window has 3
    rows or fewer.
    """
    ok = np.isfinite(r_ref) & np.isfinite(r_cur) & (n_ref > 3) & (n_cur > 3)
    z_ref = np.arctanh(np.clip(np.where(ok, r_ref, 0.0), -_R_LIMIT, _R_LIMIT))
    z_cur = np.arctanh(np.clip(np.where(ok, r_cur, 0.0), -_R_LIMIT, _R_LIMIT))
    z = (z_cur - z_ref) / _z_standard_error(n_ref, n_cur, factor, ok)
    p = np.asarray(special.erfc(np.abs(z) / math.sqrt(2.0)), dtype=np.float64)
    return np.where(ok, p, np.nan)


def evaluate_pairs(
    reference: CorrelationReference,
    current: FloatArray,
    policy: DecisionPolicy,
    floor: float = DEFAULT_CHANGE_FLOOR,
    top: int = TOP_PAIRS,
    *,
    noise_multiple: float = DEFAULT_NOISE_MULTIPLE,
) -> CorrelationResult:
    """The group's decision (module docstring): drifted pairs, largest |change|, top pairs."""
    r_ref, n_ref = correlations(reference.sums)
    r_cur, n_cur = correlations(current)
    a_idx, b_idx = np.triu_indices(len(reference.names), k=1)
    rr, nr = r_ref[a_idx, b_idx], n_ref[a_idx, b_idx]
    rc, nc = r_cur[a_idx, b_idx], n_cur[a_idx, b_idx]
    evaluated = (nr >= policy.min_samples) & (nc >= policy.min_samples)
    evaluated &= np.isfinite(rr) & np.isfinite(rc)
    factor = reference.variance_factor[a_idx, b_idx]
    p = np.where(evaluated, fisher_z_pvalue(rr, nr, rc, nc, factor), np.nan)
    qvalues, alpha = _correct(p, policy)
    change = np.where(evaluated, rc - rr, np.nan)
    noise = change_noise_floor(rr, nr, nc, factor, noise_multiple)
    with np.errstate(invalid="ignore"):
        drifted = evaluated & (p <= alpha) & (np.abs(change) >= np.maximum(floor, noise))
    order = np.argsort(-np.where(evaluated, np.abs(change), -1.0), kind="stable")
    shown = [int(i) for i in order[: max(0, top)] if evaluated[i]]
    names = reference.names
    pairs = tuple(
        PairChange(
            feature_a=names[int(a_idx[i])],
            feature_b=names[int(b_idx[i])],
            reference_r=float(rr[i]),
            current_r=float(rc[i]),
            change=float(change[i]),
            pvalue=float(p[i]),
            qvalue=float(qvalues[i]),
            current_samples=int(nc[i]),
            drifted=bool(drifted[i]),
        )
        for i in shown
    )
    return CorrelationResult(
        features=names,
        pairs_evaluated=int(evaluated.sum()),
        drifted_pairs=int(drifted.sum()),
        max_abs_change=float(np.abs(change[shown[0]])) if shown else None,
        top_pairs=pairs,
    )


def change_noise_floor(
    r_ref: FloatArray,
    n_ref: FloatArray,
    n_cur: FloatArray,
    factor: FloatArray | float,
    multiple: float,
) -> FloatArray:
    """m (1 - r_ref^2) sqrt(k (1/(n_cur-3) + 1/(n_ref-3))): `multiple` standard errors of
    r_cur - r_ref under no change (delta method on Fisher's z at r_ref; module docstring).

    0 where `multiple` is 0; NaN where r_ref is NaN or a window has 3 rows or fewer.
    """
    ok = np.isfinite(r_ref) & (n_ref > 3) & (n_cur > 3)
    se = _z_standard_error(n_ref, n_cur, factor, ok)
    floor = multiple * (1.0 - np.where(ok, r_ref, 0.0) ** 2) * se
    return np.where(ok, floor, np.nan)


def _z_standard_error(
    n_ref: FloatArray, n_cur: FloatArray, factor: FloatArray | float, ok: npt.NDArray[np.bool_]
) -> FloatArray:
    """sqrt(k (1/(n_cur-3) + 1/(n_ref-3))): the standard error of atanh r_cur - atanh r_ref
    under no change (any value where not `ok`, i.e. where a window has 3 rows or fewer)."""
    return np.asarray(
        np.sqrt(
            np.asarray(factor)
            * (1.0 / np.where(ok, n_cur - 3, 1.0) + 1.0 / np.where(ok, n_ref - 3, 1.0))
        ),
        dtype=np.float64,
    )


def _correct(p: FloatArray, policy: DecisionPolicy) -> tuple[FloatArray, float]:
    """q-values and the level alpha* of the pairs' family (as for the features' family)."""
    finite = np.isfinite(p)
    m = int(finite.sum())
    if m == 0:
        return p.copy(), 0.0
    if policy.correction is Correction.BH:
        q = benjamini_hochberg(p)
        return q, policy.fdr_q * int(np.sum(q[finite] <= policy.fdr_q)) / m
    if policy.correction is Correction.BONFERRONI:
        return bonferroni(p), policy.fdr_q / m
    return p.copy(), policy.fdr_q


class CorrelationWindow:
    """Bucketed moment sums with the bucket numbering and ring rules of an EventTimeWindow.

    A bucket b = floor(t / bucket_seconds) holds the sums of its events; the ring has one
    slot per bucket the event-time window holds (length + allowed lateness), slot =
    b mod n_slots, recycled when a newer bucket takes it. The current window at head h is
    the sum of the held buckets in [h - n_buckets + 1, h], summed afresh from the ring at
    each evaluation (floats: no running sum, so evictions leave no rounding residue).
    The caller adds only events its EventTimeWindow admitted, so every bucket added is held.
    """

    def __init__(self, n_features: int, bucket_seconds: float, n_buckets: int, n_slots: int):
        if n_buckets < 1 or n_slots < n_buckets or bucket_seconds <= 0:
            raise ValueError("need bucket_seconds > 0 and n_slots >= n_buckets >= 1")
        self.bucket_seconds = float(bucket_seconds)
        self.n_buckets = int(n_buckets)
        self.sums: FloatArray = np.zeros((n_slots, 4, n_features, n_features))
        self.bucket_ids: IntArray = np.full(n_slots, _EMPTY_BUCKET, dtype=np.int64)

    def add(self, bucket: int, sums: FloatArray) -> None:
        """Add one bucket's sums, recycling its slot if it held an older bucket."""
        slot = bucket % self.bucket_ids.size
        if self.bucket_ids[slot] != bucket:
            self.sums[slot] = 0.0
            self.bucket_ids[slot] = bucket
        self.sums[slot] += sums

    def add_batch(
        self, reference: CorrelationReference, values: FloatArray, times: FloatArray
    ) -> None:
        """Add admitted raw values float64[G, N] at event times float64[N], bucket by bucket."""
        if values.shape[1] == 0:
            return
        u = reference.transform(values)
        buckets = np.floor(np.asarray(times, dtype=np.float64) / self.bucket_seconds)
        buckets = buckets.astype(np.int64)
        distinct = np.unique(buckets)
        for bucket in distinct.tolist():
            part = u if distinct.size == 1 else u[:, buckets == bucket]
            self.add(int(bucket), moment_sums(part))

    def current(self, head: int | None) -> FloatArray:
        """Sum of the held buckets in [head - n_buckets + 1, head] (zeros before any event)."""
        if head is None:
            return np.zeros(self.sums.shape[1:])
        held = (self.bucket_ids >= head - self.n_buckets + 1) & (self.bucket_ids <= head)
        return np.asarray(self.sums[held].sum(axis=0))

    def merge(self, other: CorrelationWindow, oldest: int, head: int) -> None:
        """Add `other`'s buckets in [oldest, head] (the buckets this window's ring holds)."""
        if other.sums.shape != self.sums.shape or other.n_buckets != self.n_buckets:
            raise ValueError("only correlation windows of the same shape can be merged")
        for slot in range(other.bucket_ids.size):
            bucket = int(other.bucket_ids[slot])
            if bucket != _EMPTY_BUCKET and oldest <= bucket <= head:
                self.add(bucket, other.sums[slot])

    def state(self) -> dict[str, npt.NDArray[np.generic]]:
        """Arrays to checkpoint."""
        return {"sums": self.sums, "bucket_ids": self.bucket_ids}

    def restore(self, state: dict[str, npt.NDArray[np.generic]]) -> None:
        """Load arrays written by `state()`; ValueError when the shapes do not match."""
        sums = np.asarray(state["sums"], dtype=np.float64)
        ids = np.asarray(state["bucket_ids"], dtype=np.int64)
        if sums.shape != self.sums.shape or ids.shape != self.bucket_ids.shape:
            raise ValueError(f"checkpointed correlation sums {sums.shape} != {self.sums.shape}")
        self.sums[...] = sums
        self.bucket_ids[...] = ids

    @property
    def nbytes(self) -> int:
        """Memory of the ring."""
        return int(self.sums.nbytes + self.bucket_ids.nbytes)


class CorrelationTracker:
    """A model's correlation group at run time: reference, bucketed sums, decision.

    `rows` index the group's features in the model's numeric matrix (float64[F, N], one row
    per numeric feature). The caller feeds exactly the events its EventTimeWindow admitted
    and evaluates at that window's head, so both windows cover the same events.
    """

    def __init__(
        self,
        reference: CorrelationReference,
        rows: Sequence[int],
        *,
        bucket_seconds: float,
        n_buckets: int,
        n_slots: int,
        floor: float = DEFAULT_CHANGE_FLOOR,
        noise_multiple: float = DEFAULT_NOISE_MULTIPLE,
    ) -> None:
        if len(rows) != len(reference.names):
            raise ValueError("one numeric row per feature of the correlation group")
        self.reference = reference
        self.rows = np.asarray(rows, dtype=np.int64)
        self.floor = float(floor)
        self.noise_multiple = float(noise_multiple)
        self.window = CorrelationWindow(len(rows), bucket_seconds, n_buckets, n_slots)

    def add(self, numeric: FloatArray, times: FloatArray, accepted: npt.NDArray[np.bool_]) -> None:
        """Add the accepted events of a batch (numeric float64[F, N], times float64[N])."""
        if not accepted.any():
            return
        values = numeric[self.rows]
        if not accepted.all():
            values, times = values[:, accepted], times[accepted]
        self.window.add_batch(self.reference, values, times)

    def evaluate(self, head: int | None, policy: DecisionPolicy) -> CorrelationResult:
        """The group's decision on the current window ending at bucket `head`."""
        return evaluate_pairs(
            self.reference,
            self.window.current(head),
            policy,
            self.floor,
            noise_multiple=self.noise_multiple,
        )
