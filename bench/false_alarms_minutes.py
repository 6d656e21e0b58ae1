"""False alerts over time on wide models, bounded from the evaluations at bucket ends.

    python -m bench.false_alarms_minutes --features 1000 --per-minute 1000 --days 30

`bench.false_alarms` simulates every 15-s evaluation. At 1,000 features that costs about
10 ms per evaluation (30 model-days: half an hour per cell), and drawing the events of every
15-s slice costs as much again at 1,000 events/min. This module simulates only the
evaluations at the end of each 1-min bucket, which are a subset of the daemon's evaluations,
and turns their flags into an upper bound on the alerts:

* **Same windows.** At the end of bucket m the daemon's window holds buckets m-59..m, all
  complete, whatever the 15-s slices were; so adding the bucket's counts at once gives the
  same window total (`test_bucket_end_windows_equal_the_sliced_ones`).
* **Same counts.** The events of one bucket are Poisson(r) in number (the sum of its four
  Poisson(r/4) slices) and each feature's counts are Multinomial(n, p_f) given n (the sum of
  independent multinomials with the same p); `numpy.random.Generator.multinomial` draws all
  rows at once, exactly. p is `bench.false_alarms.slot_probabilities` (the exact slot
  probabilities of the workload under the frozen bins).
* **A bound.** `DriftmonFeatureDrift` fires after a run of R = for/15 s + 1 consecutive
  flagged 15-s evaluations (41 for `for: 10m`), spanning (R - 1) 15 s = 600 s. Every span of
  600 s holds at least k = floor((R - 1) / 4) = 10 bucket ends, all flagged. Two alerts come
  from disjoint runs, so disjoint sets of bucket ends: a run of L consecutive flagged bucket
  ends holds at most floor(L / k) alerts, and the sum over runs bounds the alerts
  (`test_bucket_end_bound_holds_for_any_flag_sequence`). The same holds for the data-quality
  rules with their `for:`. A bound of 0 is exact: no alert.

The flags themselves come from the same screen and the same `ModelEvaluator` as in
`bench.false_alarms` (a bucket end whose leg p-values cannot reach the correction's level is
not flagged; every other one is judged by the model's own evaluator).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bench import false_alarms as fa
from monitor.config import EvaluationSettings
from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.model import DecisionPolicy
from monitor.window import EventTimeWindow

SLICES_PER_BUCKET = round(fa.BUCKET_S / fa.EVALUATION_S)


def bucket_end_run(run_length: int, per_bucket: int = SLICES_PER_BUCKET) -> int:
    """Bucket ends inside any run of `run_length` consecutive 15-s evaluations (at least)."""
    return max(1, (run_length - 1) // per_bucket)


def alerts_bound(run_lengths: Sequence[int], need: int) -> int:
    """Upper bound on the alerts of runs of consecutive flagged bucket ends: sum floor(L / k)."""
    return sum(length // need for length in run_lengths)


def runs_of(flags: npt.NDArray[np.bool_]) -> list[int]:
    """Lengths of the runs of True in a boolean sequence."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return (edges[1::2] - edges[::2]).tolist()  # type: ignore[no-any-return]


@dataclass
class Bound:
    """What one configuration measured at the bucket ends, summed over its models."""

    setup: fa.Setup
    rule: str
    need: int
    model_days: float = 0.0
    bucket_ends: int = 0
    flagged_bucket_ends: int = 0
    longest_run: int = 0
    alerts_bound: int = 0
    quality_bound: dict[str, int] = field(default_factory=dict)
    legs: dict[str, int] | None = None
    seconds: float = 0.0

    @property
    def upper_per_month(self) -> float:
        """95 % upper bound on the alerts per model-month (Poisson bound of the alert bound)."""
        return fa.poisson_upper(self.alerts_bound) / self.model_days * fa.DAYS_PER_MONTH


class _RunCounter:
    """Consecutive flagged bucket ends per feature: closed run lengths and the longest one."""

    def __init__(self, features: int) -> None:
        self.run = np.zeros(features, dtype=np.int64)
        self.closed: list[int] = []

    def step(self, flags: npt.NDArray[np.bool_]) -> None:
        ended = ~flags & (self.run > 0)
        self.closed += self.run[ended].tolist()
        self.run = np.where(flags, self.run + 1, 0)

    def close(self) -> list[int]:
        self.closed += self.run[self.run > 0].tolist()
        self.run[:] = 0
        return self.closed


def bound_model(setup: fa.Setup, model: int, policy: DecisionPolicy, out: Bound) -> None:
    """Simulate model `model` of `setup` bucket by bucket; add its bound to `out`."""
    rng = np.random.default_rng(np.random.SeedSequence([setup.seed, setup.features, model]))
    layout, reference, specs = fa.fit_warmup(rng, setup.n_numeric, setup.n_categorical)
    probs = fa.slot_probabilities(layout)
    probs /= probs.sum(axis=1, keepdims=True)
    evaluator = ModelEvaluator(layout, specs, policy, distributions=False)
    groups = evaluator.psi_groups(reference)
    shape = (layout.n_features, layout.width)
    window = EventTimeWindow(shape, fa.BUCKET_S, fa.WINDOW_S, fa.BUCKET_S)
    block = max(1, min(240, 6_000 // layout.n_features))
    screen = fa.Screen(layout, reference, groups, policy, block)
    drift = _RunCounter(layout.n_features)
    quality = {name: _RunCounter(layout.n_features) for name in fa.QUALITY_COUNTED}
    legs: dict[str, int] = out.legs if out.legs is not None else {}
    buckets = round(setup.days * fa.SECONDS_PER_DAY / fa.BUCKET_S)
    windows = np.zeros((block, *shape), dtype=np.int64)
    t = fa.START
    for first in range(0, buckets, block):
        size = min(block, buckets - first)
        for k in range(size):
            n = int(rng.poisson(setup.per_minute))
            if n:  # the watermark moves with events only
                window.advance(t + fa.BUCKET_S * 0.99975)
                window.add_counts(math.floor(t / fa.BUCKET_S), rng.multinomial(n, probs))
            t += fa.BUCKET_S
            windows[k] = window.total
        smallest, quality_flags = screen.evaluate(windows)
        for k in range(size):
            flags = np.zeros(layout.n_features, dtype=bool)
            if (smallest[k] <= fa.screen_level(smallest[k], policy)).any():
                context = EvaluationContext(model="sim", evaluated_at=t)
                evaluation = evaluator.evaluate(reference, windows[k], context, groups)
                flags = np.fromiter((f.drift_detected for f in evaluation.features), dtype=bool)
                for f in evaluation.features:
                    for leg in f.drift_reasons:
                        legs[leg] = legs.get(leg, 0) + 1
            drift.step(flags)
            for name in fa.QUALITY_COUNTED:
                quality[name].step(quality_flags[name][k])
            out.flagged_bucket_ends += int(flags.sum())
    runs = drift.close()
    out.alerts_bound += alerts_bound(runs, out.need)
    out.longest_run = max([out.longest_run, *runs])
    for name, counter in quality.items():
        bound = alerts_bound(counter.close(), out.need)
        out.quality_bound[name] = out.quality_bound.get(name, 0) + bound
    out.model_days += setup.days
    out.bucket_ends += buckets
    out.legs = legs


def simulate(
    setup: fa.Setup,
    policies: dict[str, DecisionPolicy] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Bound]:
    """Every model of `setup` under every policy (each policy on the same streams)."""
    need = bucket_end_run(fa.run_length_for(fa.rule_for_seconds()))
    chosen = policies if policies is not None else {"default": EvaluationSettings().policy()}
    bounds = []
    for name, policy in chosen.items():
        out = Bound(setup, name, need)
        began = time.process_time()
        for model in range(setup.models):
            bound_model(setup, model, policy, out)
            if log is not None:
                log(f"{setup} {name}: model {model + 1}/{setup.models}: bound {out.alerts_bound}")
        out.seconds = time.process_time() - began
        bounds.append(out)
    return bounds


HEADER = (
    "rule",
    "features",
    "events / min",
    "model-days",
    "flagged feature-bucket-ends",
    "flags by leg",
    "longest run (bucket ends)",
    "alerts (upper bound)",
    "alerts / model-month [95 % upper]",
    "data-quality alerts (upper bound, by rule)",
    "CPU s",
)


def row(b: Bound) -> list[str]:
    """One markdown table row."""
    legs = ", ".join(f"{k} {v}" for k, v in sorted((b.legs or {}).items())) or "-"
    return [
        b.rule,
        str(b.setup.features),
        f"{b.setup.per_minute:g}",
        f"{b.model_days:g}",
        str(b.flagged_bucket_ends),
        legs,
        str(b.longest_run),
        f"≤ {b.alerts_bound}",
        f"≤ {b.alerts_bound / b.model_days * fa.DAYS_PER_MONTH:.2g} [{b.upper_per_month:.2g}]",
        ", ".join(
            f"{name.removeprefix('DriftmonFeature')} ≤ {bound}"
            for name, bound in b.quality_bound.items()
        ),
        f"{b.seconds:.0f}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one cell given on the command line; print its table row."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.false_alarms_minutes", description=__doc__
    )
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--per-minute", type=float, default=20.0)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--models", type=int, default=1)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--rules",
        choices=("default", "both"),
        default="default",
        help="the default rule only, or also with the KS noise floor (twice the time)",
    )
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
        sys.stderr.flush()

    n_numeric, n_categorical = fa.split_features(args.features)
    setup = fa.Setup(n_numeric, n_categorical, args.per_minute, args.days, args.models, args.seed)
    rules = fa.rules() if args.rules == "both" else {"default": EvaluationSettings().policy()}
    bounds = simulate(setup, rules, log=log)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(row(b)) + " |" for b in bounds]
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
