"""Detection power and null windows of the correlation test, with and without the noise floor.

    python -m bench.correlation_power            # the rows of docs/statistics.md section 7

Five features as in tests/stats/test_correlation_drift.py: corr(f0, f1) 0.3 in the reference
and 0.5 in the current window, corr(f2, f3) 0.5 in both, f4 independent; normal marginals or
lognormal ones (exp of the same). Per window a fresh 10,000-event reference
(`monitor.correlation.fit_reference`) and a fresh current window of n events; a detection is
(f0, f1) drifted by `evaluate_pairs` (BH at q = 1e-3, `min_samples` 1,000, floor 0.1), a null
window a window of unchanged draws with any drifted pair. Fixed seed (99), 200 windows per
cell, noise multiple 0 (off) and the default.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from monitor.correlation import DEFAULT_NOISE_MULTIPLE, evaluate_pairs, fit_reference
from monitor.model import DecisionPolicy

NAMES = ("f0", "f1", "f2", "f3", "f4")
SIZES = (1_000, 2_000, 10_000)
REFERENCE_EVENTS = 10_000


def correlated(
    rng: np.random.Generator, n: int, rho01: float, lognormal: bool = False
) -> np.ndarray:
    """float64[5, n]: corr(z0, z1) = rho01, corr(z2, z3) = 0.5, z4 independent; exp() if asked."""
    z = rng.standard_normal((5, n))
    x = z.copy()
    x[1] = rho01 * z[0] + np.sqrt(1 - rho01**2) * z[1]
    x[3] = 0.5 * z[2] + np.sqrt(0.75) * z[3]
    return np.exp(x) if lognormal else x


def cell(lognormal: bool, n: int, multiples: Sequence[float], windows: int, seed: int) -> str:
    """One markdown row: detection share and null windows with a drift per noise multiple."""
    rng = np.random.default_rng(seed)
    policy = DecisionPolicy(min_samples=1_000)
    hits = dict.fromkeys(multiples, 0)
    null = dict.fromkeys(multiples, 0)
    for _ in range(windows):
        ref = fit_reference(NAMES, correlated(rng, REFERENCE_EVENTS, 0.3, lognormal))
        changed = ref.moments(correlated(rng, n, 0.5, lognormal))
        same = ref.moments(correlated(rng, n, 0.3, lognormal))
        for m in multiples:
            result = evaluate_pairs(ref, changed, policy, noise_multiple=m)
            hits[m] += any(
                p.drifted and (p.feature_a, p.feature_b) == ("f0", "f1") for p in result.top_pairs
            )
            null[m] += evaluate_pairs(ref, same, policy, noise_multiple=m).drifted_pairs > 0
    shape = "lognormal" if lognormal else "normal"
    detected = " / ".join(f"{hits[m] / windows:.3g}" for m in multiples)
    nulls = " / ".join(str(null[m]) for m in multiples)
    return f"| {shape} | {n:,} | {detected} | {nulls} |"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table (every shape and window size)."""
    parser = argparse.ArgumentParser(prog="python -m bench.correlation_power", description=__doc__)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args(argv)
    multiples = (0.0, DEFAULT_NOISE_MULTIPLE)
    labels = " / ".join(f"m = {m:g}" for m in multiples)
    print(f"| marginals | n_cur | r 0.3 → 0.5 flagged ({labels}) | null windows with a drift |")
    print("|---|---|---|---|")
    for lognormal in (False, True):
        for n in SIZES:
            print(cell(lognormal, n, multiples, args.windows, args.seed), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
