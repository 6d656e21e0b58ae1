"""Null calibration of the KS and PSI p-values on a stream sampled by `sample_rate` 0.1.

Each replicate is one partition of a null stream: M messages with values N(0, 1) at offsets
0 .. M-1; the daemon's hash (`monitor.sampling.coordinate_uniforms`) keeps the messages with
u < 0.1, and the current window is the values of the kept ones, counted in 128 equal-mass
bins. The reference is an unsampled N(0, 1) window of n_ref values (drawn as its multinomial
bin counts). KS and PSI p-values are
computed with the real monitor.stats functions and n_cur = the sampled count; their rejection
levels must stay within the bounds of tests/stats/test_calibration.py. A control shows the
bounds can fail: the same statistics with n_cur = M (the unsampled count) are far off.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from monitor.sampling import coordinate_uniforms, topic_hash
from monitor.stats import decile_groups, group_counts, ks_binned, ks_pvalue, psi
from tests.stats.sim import clopper_pearson

pytestmark = pytest.mark.slow

RATE = 0.1
MESSAGES = 20_000  # per replicate: about 2,000 sampled events
N_REF = 20_000
REPS = 4_000
FINE_BINS = 128
EDGES = np.asarray(sps.norm.ppf(np.arange(1, FINE_BINS) / FINE_BINS), dtype=np.float64)


def _counts(values: np.ndarray) -> np.ndarray:
    """Counts of the values in the 128 equal-mass bins of N(0, 1)."""
    return np.bincount(np.searchsorted(EDGES, values, side="left"), minlength=FINE_BINS)


@pytest.fixture(scope="module")
def null_pvalues() -> dict[str, np.ndarray]:
    """KS and PSI p-values of REPS sampled null windows, with the sampled and unsampled n."""
    rng = np.random.default_rng([20_261_203, 12])
    h = np.full(MESSAGES, topic_hash("null"), dtype=np.uint64)
    offsets = np.arange(MESSAGES, dtype=np.int64)
    cur = np.zeros((REPS, FINE_BINS), dtype=np.int64)
    for rep in range(REPS):
        keep = coordinate_uniforms(h, np.full(MESSAGES, rep, dtype=np.int64), offsets) < RATE
        values = rng.normal(size=MESSAGES)[keep]
        cur[rep] = _counts(values)
    # the reference's values fall into the 128 equal-mass bins with probability 1/128 each
    ref = rng.multinomial(N_REF, np.full(FINE_BINS, 1.0 / FINE_BINS), size=REPS)
    n_cur = cur.sum(axis=1).astype(np.float64)
    n_ref = np.full(REPS, float(N_REF))
    d, _ = ks_binned(ref, cur)
    groups = decile_groups(ref)
    _, psi_p = psi(group_counts(ref, groups), group_counts(cur, groups))
    return {
        "n_cur": n_cur,
        "ks": ks_pvalue(d, n_ref, n_cur),
        "ks_unsampled_n": ks_pvalue(d, n_ref, np.full(REPS, float(MESSAGES))),
        "psi": psi_p,
    }


def _overlaps(pvalues: np.ndarray, alpha: float, low: float, high: float) -> tuple[bool, str]:
    """Whether the 99.9 % Clopper-Pearson interval of P(p <= alpha) meets [low, high]."""
    k = int(np.count_nonzero(pvalues <= alpha))
    lower, upper = clopper_pearson(k, pvalues.size, 0.999)
    return upper >= low and lower <= high, f"rate {k / pvalues.size:.4f} [{lower:.4f}, {upper:.4f}]"


def test_sampled_windows_hold_the_rate_times_the_stream(
    null_pvalues: dict[str, np.ndarray],
) -> None:
    """n_cur is about 0.1 x 20,000 in every replicate (binomial, within 5 sd)."""
    sd = np.sqrt(MESSAGES * RATE * (1 - RATE))
    assert np.all(np.abs(null_pvalues["n_cur"] - MESSAGES * RATE) <= 5 * sd)


@pytest.mark.parametrize(("alpha", "low", "high"), [(0.05, 0.03, 0.05), (0.01, 0.006, 0.01)])
def test_ks_level_on_a_sampled_stream_is_within_the_calibration_bounds(
    null_pvalues: dict[str, np.ndarray], alpha: float, low: float, high: float
) -> None:
    """KS rejects 3-5 % of sampled null windows at 0.05 and 0.6-1 % at 0.01."""
    ok, text = _overlaps(null_pvalues["ks"], alpha, low, high)
    assert ok, text


def test_psi_level_on_a_sampled_stream_is_within_the_calibration_bounds(
    null_pvalues: dict[str, np.ndarray],
) -> None:
    """PSI rejects 4-6 % of sampled null windows at 0.05."""
    ok, text = _overlaps(null_pvalues["psi"], 0.05, 0.04, 0.06)
    assert ok, text


def test_the_unsampled_count_would_break_the_calibration(
    null_pvalues: dict[str, np.ndarray],
) -> None:
    """Control: with n_cur = the stream's 20,000 instead of the sample's, KS over-rejects."""
    ok, text = _overlaps(null_pvalues["ks_unsampled_n"], 0.05, 0.03, 0.05)
    assert not ok, text
    assert float(np.mean(null_pvalues["ks_unsampled_n"] <= 0.05)) > 0.2
