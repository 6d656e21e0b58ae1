"""False alerts over time of the correlation drift test: stationary correlated streams.

    python -m bench.false_alarms_correlation                         # the documented cells
    python -m bench.false_alarms_correlation --per-minute 20 --days 30 --shape lognormal

docs/statistics.md section 7 measures the pairs' test on independent windows; the daemon
evaluates it every 15 s on a sliding 1 h window, and `DriftmonCorrelationDrift` fires when
`driftmon_correlation_drifted_pairs > 0` holds for the rule's `for:` (read from
deploy/prometheus/driftmon.rules.yml: 10m, i.e. 41 consecutive 15-s evaluations). This
module measures that over time, with the daemon's own pieces: the group's reference is
`monitor.correlation.fit_reference` on the model's first 10,000 raw events (the warm-up),
each 15-s slice's events are raw draws whose moment sums go into the daemon's
`CorrelationWindow` bucket of the slice (1-min buckets, 60 in the window), and every slice
end is judged by `evaluate_pairs` at the default policy (BH at q = 1e-3 over the pairs,
`min_samples` 1,000 complete rows, floor |change| >= 0.1, noise floor 6 standard errors of
the change). The window's head is the bucket
of the slice's end (the daemon's head is its newest event's bucket: the same bucket except
when a slice ends a bucket without an event, which at 20 events/min and more is rare).

Streams: G features (default 20) from a Gaussian copula with a fixed correlation matrix
(0.8^|i-j| within blocks of five, 0.2 across: pairs from 0.2 to 0.8), either normal
marginals or lognormal ones (exp of the same), Poisson arrivals at `per_minute` events per
minute. No raw-event shortcut exists (the statistic is a function of the raw values), so the
cost grows with the rate.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench import false_alarms as fa
from monitor.config import EvaluationSettings
from monitor.correlation import (
    DEFAULT_CHANGE_FLOOR,
    DEFAULT_NOISE_MULTIPLE,
    CorrelationWindow,
    evaluate_pairs,
    fit_reference,
    moment_sums,
)
from monitor.model import DecisionPolicy

FloatArray = npt.NDArray[np.float64]

ALERT = "DriftmonCorrelationDrift"
GROUP = 20
SHAPES = ("normal", "lognormal")


def correlation_matrix(g: int) -> FloatArray:
    """The streams' fixed correlation: AR(1)-like blocks of 5 (0.8^|i-j|), 0.2 across blocks."""
    index = np.arange(g)
    block = index // 5
    same = block[:, None] == block[None, :]
    corr = np.where(same, 0.8 ** np.abs(index[:, None] - index[None, :]), 0.2)
    np.fill_diagonal(corr, 1.0)
    return np.asarray(corr, dtype=np.float64)


class Stream:
    """Stationary correlated events: float64[G, n] draws (Gaussian copula, chosen marginals)."""

    def __init__(self, g: int, shape: str) -> None:
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}")
        self.shape = shape
        self.chol = np.linalg.cholesky(correlation_matrix(g))

    def draw(self, rng: np.random.Generator, n: int) -> FloatArray:
        """n events as float64[G, n]."""
        z = self.chol @ rng.standard_normal((self.chol.shape[0], n))
        return np.exp(z) if self.shape == "lognormal" else z


@dataclass(frozen=True, slots=True)
class Cell:
    """One simulated configuration."""

    per_minute: float
    days: float
    shape: str = "normal"
    group: int = GROUP
    models: int = 1
    seed: int = 7
    floor: float = DEFAULT_CHANGE_FLOOR
    noise_multiple: float = DEFAULT_NOISE_MULTIPLE


@dataclass
class Result:
    """What one cell measured, summed over its models."""

    cell: Cell
    model_days: float = 0.0
    evaluations: int = 0
    flagged_evaluations: int = 0
    episodes: int = 0
    longest: int = 0
    alerts: int = 0
    seconds: float = 0.0

    @property
    def per_month(self) -> float:
        """Alerts per model-month (30 days)."""
        return self.alerts / self.model_days * fa.DAYS_PER_MONTH

    @property
    def upper_per_month(self) -> float:
        """95 % one-sided Poisson upper bound on the alerts per model-month."""
        return fa.poisson_upper(self.alerts) / self.model_days * fa.DAYS_PER_MONTH


class Runs:
    """Consecutive flagged evaluations of one model: episodes, the longest, alerts (one per
    run that reaches `need`)."""

    def __init__(self, need: int) -> None:
        self.need = need
        self.run = 0
        self.episodes = 0
        self.longest = 0
        self.alerts = 0

    def step(self, flagged: bool) -> None:
        """One evaluation."""
        if flagged:
            self.run += 1
            self.alerts += self.run == self.need
            self.longest = max(self.longest, self.run)
        elif self.run:
            self.episodes += 1
            self.run = 0

    def close(self) -> None:
        """End of the stream: count an open run as an episode."""
        if self.run:
            self.episodes += 1
            self.run = 0


def simulate_model(cell: Cell, model: int, policy: DecisionPolicy, need: int, out: Result) -> None:
    """One model of `cell`: warm-up reference, then `cell.days` of 15-s evaluations."""
    rng = np.random.default_rng(np.random.SeedSequence([cell.seed, cell.group, model]))
    stream = Stream(cell.group, cell.shape)
    names = [f"f{i:02d}" for i in range(cell.group)]
    reference = fit_reference(names, stream.draw(rng, fa.WARMUP_EVENTS))
    n_buckets = round(fa.WINDOW_S / fa.BUCKET_S)
    window = CorrelationWindow(cell.group, fa.BUCKET_S, n_buckets, n_buckets + 1)
    runs = Runs(need)
    steps = round(cell.days * fa.SECONDS_PER_DAY / fa.EVALUATION_S)
    mean_slice = cell.per_minute * fa.EVALUATION_S / 60.0
    t = fa.START
    for _ in range(steps):
        n = int(rng.poisson(mean_slice))
        bucket = math.floor(t / fa.BUCKET_S)
        if n:
            window.add(bucket, moment_sums(reference.transform(stream.draw(rng, n))))
        t += fa.EVALUATION_S
        result = evaluate_pairs(
            reference,
            window.current(bucket),
            policy,
            cell.floor,
            noise_multiple=cell.noise_multiple,
        )
        flagged = result.drifted_pairs > 0
        runs.step(flagged)
        out.flagged_evaluations += flagged
    runs.close()
    out.model_days += cell.days
    out.evaluations += steps
    out.episodes += runs.episodes
    out.longest = max(out.longest, runs.longest)
    out.alerts += runs.alerts


def simulate(cell: Cell, log: Callable[[str], None] | None = None) -> Result:
    """Every model of `cell` at the default policy and the shipped rule's `for:`."""
    need = fa.run_length_for(fa.rule_for_seconds(ALERT))
    policy = EvaluationSettings().policy()
    out = Result(cell)
    began = time.process_time()
    for model in range(cell.models):
        simulate_model(cell, model, policy, need, out)
        if log is not None:
            log(f"{cell}: model {model + 1}/{cell.models}: alerts {out.alerts}")
    out.seconds = time.process_time() - began
    return out


HEADER = (
    "marginals",
    "change floor",
    "noise multiple",
    "pairs",
    "events / min",
    "model-days",
    "evaluations with a drifted pair",
    "episodes",
    "longest (min)",
    "alerts (for: 10m)",
    "alerts / model-month [95 % upper]",
    "CPU ms / evaluation",
)


def row(r: Result) -> list[str]:
    """One markdown row."""
    pairs = r.cell.group * (r.cell.group - 1) // 2
    return [
        r.cell.shape,
        f"{r.cell.floor:g}",
        f"{r.cell.noise_multiple:g}",
        str(pairs),
        f"{r.cell.per_minute:g}",
        f"{r.model_days:g}",
        f"{r.flagged_evaluations} / {r.evaluations}",
        str(r.episodes),
        f"{max(0, r.longest - 1) * fa.EVALUATION_S / 60:g}",
        str(r.alerts),
        f"{r.per_month:.2g} [{r.upper_per_month:.2g}]",
        f"{1000 * r.seconds / max(r.evaluations, 1):.2f}",
    ]


DEFAULT_CELLS = tuple(
    Cell(rate, days, shape, models=models)
    for shape in SHAPES
    for rate, days, models in ((20, 30, 2), (100, 30, 1), (1_000, 10, 1))
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the default cells, or one given on the command line; print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.false_alarms_correlation", description=__doc__
    )
    parser.add_argument("--per-minute", type=float)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--shape", choices=SHAPES, default="normal")
    parser.add_argument("--group", type=int, default=GROUP)
    parser.add_argument("--models", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--floor", type=float, default=DEFAULT_CHANGE_FLOOR, help="correlation.change_floor"
    )
    parser.add_argument(
        "--noise-multiple",
        type=float,
        default=DEFAULT_NOISE_MULTIPLE,
        help="correlation.noise_multiple (0: off)",
    )
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
        sys.stderr.flush()

    cells = (
        DEFAULT_CELLS
        if args.per_minute is None
        else (
            Cell(
                args.per_minute,
                args.days,
                args.shape,
                args.group,
                args.models,
                args.seed,
                args.floor,
                args.noise_multiple,
            ),
        )
    )
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for cell in cells:
        result = simulate(cell, log)
        log(f"  done: {row(result)}")
        lines.append("| " + " | ".join(row(result)) + " |")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
