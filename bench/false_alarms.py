"""False alarms over time: stationary streams through the daemon's evaluator and alert `for:`.

    python -m bench.false_alarms                        # the docs/statistics.md runs (~30 min CPU)
    python -m bench.false_alarms --features 22 --per-minute 20 --days 30 --models 4

Set-up (docs/statistics.md, "False alarms over time"). A model has the benchmark workload's
features (bench.workload: 22 = 20 numeric + 2 categorical, or wider, e.g. 1,000 = 910 + 90).
Like the daemon in its default `reference.mode: warmup`, each simulated model fits its
reference (edges, top-K categories, counts) with `fit_profile` on its own first 10,000 raw
workload events. Afterwards the stream is stationary: events arrive as a Poisson stream of
`per_minute` events per minute, every 15-s slice lies in one 1-min bucket of the daemon's
`EventTimeWindow` (1 h = 60 buckets), and the model is judged by the daemon's
`ModelEvaluator` (default `DecisionPolicy`, BH over the model's features) at the end of
every slice, as the daemon does on its default 15 s interval.

The shortcut: every statistic is a function of the window's counts, and the counts of a
slice of n i.i.d. events are Multinomial(n, p) per feature, with p the exact probability of
each slot (value bins, missing) under the workload's clean distribution (closed-form CDFs
at the frozen edges; category probabilities summed per top-K/OTHER slot). So a slice is
drawn directly as counts (vectorised conditional binomials), never as raw events.
tests/stats/test_false_alarms.py checks the slot probabilities against binning raw events.

An alert is what the shipped rule `DriftmonFeatureDrift` (`driftmon_feature_drift_detected
== 1`, `for:` read from deploy/prometheus/driftmon.rules.yml) does with a 15 s scrape and
rule evaluation: a feature's flag held at every evaluation over the `for:` duration, i.e. a
run of for/15 + 1 consecutive flagged evaluations; one alert per run. The PSI-critical and
model-wide alerts also need the decision (plus PSI above its band, or 30 % of the features),
so they can only fire inside these runs; the data-quality alerts that do not use the
decision (missing increase, out of range, new categories) are counted from the same
evaluations with the rules' thresholds.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml
from scipy import stats as sps

from bench import delay, workload
from monitor.config import EvaluationSettings
from monitor.evaluate import LEGS, EvaluationContext, ModelEvaluator
from monitor.histogram import CategoricalBins, CountMatrix, ModelLayout
from monitor.model import (
    Correction,
    DecisionPolicy,
    FeatureKind,
    FeatureSpec,
    ModelEvaluation,
    Thresholds,
)
from monitor.reference import fit_profile, layout_for
from monitor.window import EventTimeWindow

FloatArray = npt.NDArray[np.float64]

EVALUATION_S = 15.0
BUCKET_S = 60.0
WINDOW_S = 3_600.0
WARMUP_EVENTS = 10_000
SECONDS_PER_DAY = 86_400.0
DAYS_PER_MONTH = 30.0
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z (event time)
RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "driftmon.rules.yml"

_OUTLIER_RATE = 0.01
_MISSING_RATE = 0.05

# -- the shipped alert rules ---------------------------------------------------------------


def _duration(text: str) -> float:
    """Seconds of a Prometheus duration such as '10m', '1h30m' or '45s'."""
    units = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0, "w": 604_800.0}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


def rule_for_seconds(alert: str = "DriftmonFeatureDrift", rules: Path = RULES) -> float:
    """The `for:` of a shipped alert rule, in seconds."""
    document = yaml.safe_load(rules.read_text(encoding="utf-8"))
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                return _duration(str(rule.get("for", "0s")))
    raise KeyError(f"alert {alert!r} is not in {rules}")


def run_length_for(for_seconds: float, interval: float = EVALUATION_S) -> int:
    """Consecutive flagged evaluations that make an alert fire: for / interval + 1."""
    return math.ceil(for_seconds / interval - 1e-9) + 1


# -- the workload's exact slot probabilities ----------------------------------------------


def _numeric_cdf(index: int) -> Callable[[FloatArray], FloatArray]:
    """CDF of workload numeric feature `index` (base shape index % 20, see bench.workload)."""
    shape = index % workload.BASE_NUMERIC
    if shape < 8:
        dist = sps.norm(loc=10.0 * shape, scale=1.0 + shape / 2)
        return lambda x: np.asarray(dist.cdf(x), dtype=np.float64)
    if shape < 14:
        j = shape - 8
        lognormal = sps.lognorm(s=0.4 + 0.1 * j, scale=math.exp(j / 2))
        return lambda x: np.asarray(lognormal.cdf(x), dtype=np.float64)
    if shape < 19:
        scale = 1.0 + (shape - 14)
        magnitude = sps.uniform(loc=50.0 * scale, scale=450.0 * scale)

        def heavy(x: FloatArray) -> FloatArray:
            outlier = 0.5 * (1.0 - magnitude.cdf(-x)) + 0.5 * magnitude.cdf(x)
            body = sps.t.cdf(x / scale, 2)
            return np.asarray((1 - _OUTLIER_RATE) * body + _OUTLIER_RATE * outlier)

        return heavy
    return lambda x: np.asarray(sps.norm.cdf(x), dtype=np.float64)


def _numeric_missing(index: int) -> float:
    return _MISSING_RATE if index % workload.BASE_NUMERIC == 19 else 0.0


def slot_probabilities(layout: ModelLayout) -> FloatArray:
    """float64[F, W]: probability of every slot of every feature under the clean workload.

    Numeric (monitor.edges layout): x < e_0, x == e_0 (0 for continuous data), (e_{k-1}, e_k],
    x > e_{m-1}, times (1 - missing rate); the MISSING column holds the missing rate.
    Categorical: the Zipf level probabilities summed over the slot the layout bins each
    reference level into (top-K, OTHER). Rows sum to 1.
    """
    out = np.zeros((layout.n_features, layout.width), dtype=np.float64)
    for i, bins in enumerate(layout.numeric_bins):
        cdf = _numeric_cdf(i)(bins.edges)
        values = np.concatenate([[cdf[0], 0.0], np.diff(cdf), [1.0 - cdf[-1]]])
        values = np.clip(values, 0.0, None)
        missing = _numeric_missing(i)
        out[i, : values.size] = values / values.sum() * (1.0 - missing)
        out[i, layout.missing_col] = missing
    for j, cat_bins in enumerate(layout.categorical_bins):
        row = layout.n_numeric + j
        out[row, : cat_bins.value_slots] = _category_slot_probs(cat_bins, j)
    return out


def _category_slot_probs(bins: CategoricalBins, column: int) -> FloatArray:
    shape = column % 2
    levels = workload.REFERENCE_LEVELS[shape]
    weights = 1.0 / np.arange(1, levels + 1, dtype=np.float64) ** (1.0, 1.1)[shape]
    names = workload.category_strings(np.arange(levels), shape)
    single = ModelLayout([], [("c", bins)])
    slots = single.bin_batch(np.empty((0, levels)), [names])[0]
    probs = np.bincount(slots, weights=weights / weights.sum(), minlength=bins.value_slots)
    return np.asarray(probs[: bins.value_slots], dtype=np.float64)


class SliceSampler:
    """Draws one Multinomial(n, p_f) count row per feature f (p: rows of slot probabilities).

    Each of the n events of row f falls in the first slot k with u < cdf[f, k] (u uniform on
    [0, 1), cdf the row's cumulative probabilities), which has probability
    cdf[f, k] - cdf[f, k - 1] = p_f[k]: an exact multinomial draw. Vectorised over rows with
    one searchsorted, row f's cdf offset by 2 f.
    """

    def __init__(self, probs: FloatArray) -> None:
        n_rows, width = probs.shape
        cdf = np.minimum(np.cumsum(probs, axis=1), 1.0)
        cdf[:, -1] = 1.0
        self.shape = (n_rows, width)
        self._offsets = 2.0 * np.arange(n_rows, dtype=np.float64)[:, None]
        self._flat = (cdf + self._offsets).ravel()

    def draw(self, rng: np.random.Generator, n: int) -> CountMatrix:
        """int64[F, W] counts of n events."""
        n_rows, width = self.shape
        u = rng.random((n_rows, n))
        u += self._offsets
        index = np.searchsorted(self._flat, u.ravel(), side="right")
        return np.bincount(index, minlength=n_rows * width).reshape(self.shape).astype(np.int64)


# -- one simulated model -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setup:
    """One simulated configuration."""

    n_numeric: int
    n_categorical: int
    per_minute: float
    days: float
    models: int = 1
    seed: int = 13

    @property
    def features(self) -> int:
        """Features per model."""
        return self.n_numeric + self.n_categorical


@dataclass(frozen=True, slots=True)
class Episode:
    """A run of consecutive flagged evaluations of one feature (start: days into the run)."""

    model: int
    feature: str
    start_day: float
    evaluations: int
    legs: tuple[str, ...]
    smallest_p: float
    largest_psi: float | None


@dataclass
class Outcome:
    """What one configuration measured under one decision policy, summed over its models."""

    setup: Setup
    rule: str
    policy: DecisionPolicy
    for_seconds: float
    evaluations: int = 0
    model_days: float = 0.0
    alerts: int = 0
    episodes: list[Episode] = field(default_factory=list)
    quality_alerts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    window_events: list[int] = field(default_factory=list)

    @property
    def longest_minutes(self) -> float:
        """Longest flagged run, in minutes from its first to its last evaluation."""
        longest = max((e.evaluations for e in self.episodes), default=0)
        return max(0, longest - 1) * EVALUATION_S / 60.0

    @property
    def alerts_per_month(self) -> float:
        """Alerts per model-month (30 days)."""
        return self.alerts / self.model_days * DAYS_PER_MONTH

    @property
    def upper_per_month(self) -> float:
        """95 % one-sided Poisson upper bound on the alerts per model-month."""
        return poisson_upper(self.alerts) / self.model_days * DAYS_PER_MONTH


def poisson_upper(count: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a Poisson mean after observing `count` events."""
    return float(sps.chi2.ppf(confidence, 2 * (count + 1)) / 2.0)


def fit_warmup(
    rng: np.random.Generator, n_numeric: int, n_categorical: int, events: int = WARMUP_EVENTS
) -> tuple[ModelLayout, CountMatrix, tuple[FeatureSpec, ...]]:
    """A model's reference as the daemon's warm-up fits it: `fit_profile` on its raw events."""
    batch = workload.draw(rng, events, n_numeric=n_numeric, n_categorical=n_categorical)
    numeric = workload.numeric_names(n_numeric)
    categorical = workload.categorical_names(n_categorical)
    specs = [FeatureSpec(n, FeatureKind.NUMERIC) for n in numeric] + [
        FeatureSpec(n, FeatureKind.CATEGORICAL) for n in categorical
    ]
    profile = fit_profile(
        "sim",
        specs,
        {name: batch.numeric[:, i] for i, name in enumerate(numeric)},
        {
            name: list(workload.category_strings(batch.categorical[:, j], j))
            for j, name in enumerate(categorical)
        },
    )
    return layout_for(profile, specs)


class _Runs:
    """Consecutive-flag bookkeeping per feature of one model: episodes and alerts."""

    def __init__(self, model: int, names: Sequence[str], need: int) -> None:
        self.model = model
        self.names = tuple(names)
        self.need = need
        self.run = np.zeros(len(names), dtype=np.int64)
        self.start: dict[int, float] = {}
        self.legs: dict[int, set[str]] = {}
        self.smallest: dict[int, float] = {}
        self.psi: dict[int, float] = {}
        self.alerts = 0
        self.episodes: list[Episode] = []

    def step(
        self, day: float, flags: npt.NDArray[np.bool_], evaluation: ModelEvaluation | None
    ) -> None:
        """One evaluation's flags (evaluation None: nothing flagged)."""
        for row in np.flatnonzero(~flags & (self.run > 0)).tolist():
            self._close(row)
        if evaluation is None:
            self.run[:] = 0
            return
        self.run = np.where(flags, self.run + 1, 0)
        self.alerts += int(np.count_nonzero(self.run == self.need))
        for row in np.flatnonzero(flags).tolist():
            result = evaluation.features[row]
            self.start.setdefault(row, day)
            self.legs.setdefault(row, set()).update(result.drift_reasons)
            legs = [result.ks_pvalue, result.psi_pvalue, result.chi2_pvalue]
            legs += [result.new_category_pvalue, result.missing_pvalue]
            smallest = min(p for p in legs if p is not None)
            self.smallest[row] = min(self.smallest.get(row, 1.0), smallest)
            if result.psi is not None:
                self.psi[row] = max(self.psi.get(row, 0.0), result.psi)

    def close_all(self) -> None:
        for row in np.flatnonzero(self.run > 0).tolist():
            self._close(row)
        self.run[:] = 0

    def _close(self, row: int) -> None:
        self.episodes.append(
            Episode(
                self.model,
                self.names[row],
                self.start.pop(row, 0.0),
                int(self.run[row]),
                tuple(sorted(self.legs.pop(row, set()))),
                self.smallest.pop(row, 1.0),
                self.psi.pop(row, None),
            )
        )


QUALITY_ALERTS = (
    "DriftmonFeatureMissingIncrease",
    "DriftmonFeatureOutOfRange",
    "DriftmonFeatureNewCategories",
)
_DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True, slots=True)
class NewCategoriesVariant:
    """A variant of the NewCategories rule counted on the same streams as the shipped one:
    whether its floor adds p0, and its `new_category_pvalue` level."""

    adds_p0: bool
    level: float

    @property
    def name(self) -> str:
        """The variant's name in the bench tables."""
        floor = "p0 + 1 %" if self.adds_p0 else "1 %"
        return f"DriftmonFeatureNewCategories(unseen > {floor}, p < {self.level:g})"


NEW_CATEGORIES_VARIANTS = (
    NewCategoriesVariant(adds_p0=False, level=1e-3),
    *(NewCategoriesVariant(adds_p0=True, level=level) for level in (1e-3, 1e-4, 1e-5, 1e-6)),
)
"""The rule before it compared with p0 (unseen > 1 %, p < 0.001), and the p0 rule at the
levels 1e-3 to 1e-6 (the trade-off of docs/statistics.md, 5)."""
NEW_CATEGORIES_BEFORE = NEW_CATEGORIES_VARIANTS[0].name
QUALITY_COUNTED = (*QUALITY_ALERTS, *(v.name for v in NEW_CATEGORIES_VARIANTS))


def new_categories_rule(
    unseen: FloatArray,
    p0: FloatArray,
    pvalue: FloatArray,
    unseen_threshold: float = _DEFAULT_THRESHOLDS.unseen_category_ratio_warning,
    pvalue_threshold: float = _DEFAULT_THRESHOLDS.new_category_pvalue_warning,
) -> npt.NDArray[np.bool_]:
    """The shipped `DriftmonFeatureNewCategories` expression on arrays (NaN: not exported).

    unseen_category_ratio > reference_unseen_estimate (p0) + threshold{unseen_category_ratio}
    and new_category_pvalue < threshold{new_category_pvalue}; a NaN p0 (a daemon that does
    not export it) counts as 0, as the rule's `or` default does
    (`tests/ops/test_new_categories_rule.py` checks this against promtool).
    """
    p0 = np.where(np.isnan(p0), 0.0, p0)
    with np.errstate(invalid="ignore"):
        return np.asarray(
            (unseen > p0 + unseen_threshold) & (pvalue < pvalue_threshold), dtype=np.bool_
        )


_SCREEN_ROWS = 6_000


class Screen:
    """The windows of a block of evaluations in one stacked call of the real evaluator.

    Every leg p-value and ratio is computed row by row (only the correction couples the
    features of a model), so a ModelLayout holding `block` copies of the model's features,
    evaluated with correction none, gives each window's exact leg p-values at once. A
    feature can only be flagged when one of its legs has p <= alpha*/2 <= q/2 (alpha* <= q
    under every correction), so evaluations whose smallest leg p-value is above q/2 cannot
    flag anything; the others are judged by the model's own evaluator. The data-quality
    alert expressions are read from the same rows.
    """

    def __init__(
        self,
        layout: ModelLayout,
        reference: CountMatrix,
        groups: npt.NDArray[np.int64],
        policy: DecisionPolicy,
        block: int,
    ) -> None:
        self.block = block
        self.n_numeric = layout.n_numeric
        copies = range(block)
        numeric = [
            (f"{name}@{k}", bins)
            for k in copies
            for name, bins in zip(layout.numeric_names, layout.numeric_bins, strict=True)
        ]
        categorical = [
            (f"{name}@{k}", bins)
            for k in copies
            for name, bins in zip(layout.categorical_names, layout.categorical_bins, strict=True)
        ]
        stacked = ModelLayout(numeric, categorical)
        specs = [FeatureSpec(n, FeatureKind.NUMERIC) for n, _ in numeric] + [
            FeatureSpec(n, FeatureKind.CATEGORICAL) for n, _ in categorical
        ]
        self.evaluator = ModelEvaluator(
            stacked, specs, replace(policy, correction=Correction.NONE), distributions=False
        )
        self.groups = np.tile(groups, (block, 1))
        self.reference = self._stack(np.broadcast_to(reference, (block, *reference.shape)))
        self.p0 = np.full(stacked.n_features, np.nan)
        self.p0[stacked.n_numeric :] = [b.singleton_fraction for _, b in categorical]

    def _stack(self, windows: npt.NDArray[np.int64]) -> CountMatrix:
        width = windows.shape[2]
        return np.concatenate(
            [
                windows[:, : self.n_numeric].reshape(-1, width),
                windows[:, self.n_numeric :].reshape(-1, width),
            ]
        )

    def _unstack(self, values: FloatArray) -> FloatArray:
        split = self.block * self.n_numeric
        numeric = values[:split].reshape(self.block, -1)
        categorical = values[split:].reshape(self.block, -1)
        return np.concatenate([numeric, categorical], axis=1)

    def evaluate(
        self, windows: npt.NDArray[np.int64]
    ) -> tuple[FloatArray, dict[str, npt.NDArray[np.bool_]]]:
        """Smallest leg p-value float64[block, F] (inf: no leg) and the quality alert flags."""
        values = self.evaluator.legs(self.reference, self._stack(windows), self.groups)
        legs = np.vstack([values.leg_p[leg] for leg in LEGS])
        smallest = np.min(np.where(np.isnan(legs), math.inf, legs), axis=0)
        stat = values.stat
        unseen, pvalue = stat["unseen_category_ratio"], stat["new_category_pvalue"]
        with np.errstate(invalid="ignore"):
            flags = (
                values.missing_ratio_c - values.missing_ratio_r > 0.1,
                stat["out_of_range_ratio"] > 0.05,
                new_categories_rule(unseen, self.p0, pvalue),
                *(
                    new_categories_rule(
                        unseen,
                        self.p0 if v.adds_p0 else np.zeros_like(self.p0),
                        pvalue,
                        pvalue_threshold=v.level,
                    )
                    for v in NEW_CATEGORIES_VARIANTS
                ),
            )
        quality = {
            name: self._unstack(np.asarray(flag, dtype=np.float64)) > 0
            for name, flag in zip(QUALITY_COUNTED, flags, strict=True)
        }
        return self._unstack(smallest), quality


_CONTEXT = EvaluationContext(model="sim", evaluated_at=0.0)


def screen_level(smallest: FloatArray, policy: DecisionPolicy) -> float:
    """A leg p-value no flagged feature of this evaluation can exceed.

    A flag needs a leg with p <= alpha*/2. Without correction alpha* = q. Otherwise alpha*
    <= q K / m: m features have a family p-value (2 min p_leg), Bonferroni's alpha* = q / m,
    and BH's q k* / m has k* <= K, the number of features with family p <= q (BH never
    rejects a feature above q).
    """
    if policy.correction is Correction.NONE:
        return policy.fdr_q / 2.0
    finite = np.isfinite(smallest)
    m = int(finite.sum())
    if m == 0:
        return 0.0
    k = int(np.count_nonzero(2.0 * smallest[finite] <= policy.fdr_q))
    return policy.fdr_q * max(k, 1) / m / 2.0


def simulate_model(
    setup: Setup,
    model: int,
    outcomes: Sequence[Outcome],
    log: Callable[[str], None] | None = None,
) -> None:
    """Simulate model `model` of `setup` for `setup.days`; each outcome's policy judges the
    same stream, and what it measured is added to that outcome (`log`: each NewCategories
    alert as it fires)."""
    rng = np.random.default_rng(np.random.SeedSequence([setup.seed, setup.features, model]))
    layout, reference, specs = fit_warmup(rng, setup.n_numeric, setup.n_categorical)
    sampler = SliceSampler(slot_probabilities(layout))
    evaluators = [ModelEvaluator(layout, specs, o.policy) for o in outcomes]
    groups = evaluators[0].psi_groups(reference)
    shape = (layout.n_features, layout.width)
    window = EventTimeWindow(shape, BUCKET_S, WINDOW_S, BUCKET_S)
    block = max(1, min(240, _SCREEN_ROWS // layout.n_features))
    screen = Screen(layout, reference, groups, outcomes[0].policy, block)
    policy = outcomes[0].policy
    if any(
        (o.policy.fdr_q, o.policy.correction) != (policy.fdr_q, policy.correction) for o in outcomes
    ):
        raise ValueError("the compared policies must share fdr_q and correction")
    need = run_length_for(outcomes[0].for_seconds)
    runs = [_Runs(model, layout.names, need) for _ in outcomes]
    quality = {name: np.zeros(layout.n_features, dtype=np.int64) for name in QUALITY_COUNTED}
    quality_alerts = dict.fromkeys(QUALITY_COUNTED, 0)
    mean_slice = setup.per_minute * EVALUATION_S / 60.0
    steps = round(setup.days * SECONDS_PER_DAY / EVALUATION_S)
    quiet = np.zeros(layout.n_features, dtype=bool)
    windows = np.zeros((block, *shape), dtype=np.int64)
    t = START
    for first in range(0, steps, block):
        size = min(block, steps - first)
        times = []
        for k in range(size):
            n = int(rng.poisson(mean_slice))
            if n:
                window.advance(t + EVALUATION_S * 0.999)
                window.add_counts(math.floor(t / BUCKET_S), sampler.draw(rng, n))
            t += EVALUATION_S
            times.append(t)
            windows[k] = window.total
        smallest, flags_of = screen.evaluate(windows)
        for k in range(size):
            day = (times[k] - START) / SECONDS_PER_DAY
            candidate = bool((smallest[k] <= screen_level(smallest[k], policy)).any())
            context = EvaluationContext(
                model="sim", evaluated_at=times[k], watermark=window.watermark
            )
            for evaluator, run in zip(evaluators, runs, strict=True):
                if not candidate:
                    run.step(day, quiet, None)
                    continue
                evaluation = evaluator.evaluate(reference, windows[k], context, groups)
                flags = np.fromiter((f.drift_detected for f in evaluation.features), dtype=bool)
                run.step(day, flags, evaluation)
            for name in QUALITY_COUNTED:
                quality[name] = np.where(flags_of[name][k], quality[name] + 1, 0)
                fired = np.flatnonzero(quality[name] == need)
                quality_alerts[name] += fired.size
                if log is not None and name == "DriftmonFeatureNewCategories":
                    for row in fired.tolist():
                        log(f"  {setup} model {model}: {name} on {layout.names[row]} day {day:.2f}")
        outcomes[0].window_events.append(int(windows[size - 1, 0, : layout.width - 2].sum()))
    for outcome, run in zip(outcomes, runs, strict=True):
        run.close_all()
        outcome.alerts += run.alerts
        outcome.episodes += run.episodes
        outcome.model_days += setup.days
        outcome.evaluations += steps
        for name, count in quality_alerts.items():
            outcome.quality_alerts[name] = outcome.quality_alerts.get(name, 0) + count


def rules() -> dict[str, DecisionPolicy]:
    """The decision rules compared: the shipped default and the same with the KS noise floor.

    (The rules before the PSI noise floor and before the Good-Turing uncertainty of the
    new-category p0 are in docs/statistics.md; the streams of a seed are the same.)
    """
    default = EvaluationSettings().policy()
    return {"default": default, "KS floor 3.1": replace(default, ks_noise_multiple=3.1)}


def simulate(
    setup: Setup,
    policies: dict[str, DecisionPolicy] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Every model of `setup`, judged by every policy on the same streams."""
    for_seconds = rule_for_seconds()
    chosen = policies if policies is not None else rules()
    outcomes = [Outcome(setup, name, policy, for_seconds) for name, policy in chosen.items()]
    began = time.process_time()
    for model in range(setup.models):
        simulate_model(setup, model, outcomes, log)
        if log is not None:
            counts = ", ".join(f"{o.rule} {o.alerts}" for o in outcomes)
            log(f"{setup}: model {model + 1}/{setup.models}: alerts so far {counts}")
    spent = (time.process_time() - began) / len(outcomes)
    for outcome in outcomes:
        outcome.seconds = spent
    return outcomes


# -- report ------------------------------------------------------------------------------

HEADER = (
    "rule",
    "features",
    "events / min",
    "model-days",
    "flag episodes",
    "episodes by leg",
    "longest (min)",
    "alerts (for: 10m)",
    "alerts / model-month [95 % upper]",
    "data-quality alerts",
    "CPU ms / evaluation",
)


def row(outcome: Outcome) -> list[str]:
    """One markdown table row for an outcome."""
    legs: dict[str, int] = {}
    for episode in outcome.episodes:
        for leg in episode.legs:
            legs[leg] = legs.get(leg, 0) + 1
    by_leg = ", ".join(f"{k} {v}" for k, v in sorted(legs.items())) or "-"
    quality = ", ".join(
        f"{name.removeprefix('DriftmonFeature')} {count}"
        for name, count in sorted(outcome.quality_alerts.items())
        if count
    )
    return [
        outcome.rule,
        str(outcome.setup.features),
        f"{outcome.setup.per_minute:g}",
        f"{outcome.model_days:g}",
        str(len(outcome.episodes)),
        by_leg,
        f"{outcome.longest_minutes:g}",
        str(outcome.alerts),
        f"{outcome.alerts_per_month:.2g} [{outcome.upper_per_month:.2g}]",
        quality or "0",
        f"{1000 * outcome.seconds / max(outcome.evaluations, 1):.2f}",
    ]


def markdown(outcomes: Sequence[Outcome]) -> str:
    """The results as a markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(row(o)) + " |" for o in outcomes]
    return "\n".join(lines)


#: The runs behind docs/statistics.md section 5 (22 features): its 20 events/min row pools the
#: first eight cells (10 models). The 1,000-feature cells: bench.false_alarms_minutes.
DEFAULT_CELLS: tuple[Setup, ...] = (
    Setup(20, 2, 20, 30, models=4, seed=13),
    *(Setup(20, 2, 20, 30, models=1, seed=seed) for seed in range(14, 21)),
    Setup(20, 2, 100, 30),
    Setup(20, 2, 1_000, 30),
)


LOW_RATE_DELAY_CELLS: tuple[delay.Cell, ...] = tuple(
    delay.Cell(scenario, rate, 60)
    for scenario in ("small-shift", "large-shift")
    for rate in (20, 100)
)


def delay_markdown(cells: Sequence[delay.Cell], log: Callable[[str], None]) -> str:
    """bench.delay's detection delay per cell at the default and with the KS noise floor."""
    header = ["rule", "shift (f00-f03)", "events / min", "window", "first flag (min)"]
    header += ["all 4 flagged (min)", "clean-phase evaluations with a flag"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    settings = {
        "default": EvaluationSettings(),
        "KS floor 3.1": EvaluationSettings(ks_noise_multiple=3.1),
    }
    with tempfile.TemporaryDirectory(prefix="driftmon-false-alarms-") as tmp:
        reference = delay.reference_file(Path(tmp))
        for cell in cells:
            for name, evaluation in settings.items():
                out = delay.simulate(cell, reference, Path(tmp) / "state", evaluation)
                log(f"delay {name} {cell}: {out}")
                first, every = (
                    "-" if v is None else f"{v / 60:g}"
                    for v in (out.first_flag_s, out.all_flagged_s)
                )
                row = [name, workload.scenario(cell.scenario).description, str(cell.per_minute)]
                row += [f"{cell.window_minutes} min", first, every]
                row.append(f"{out.clean_alarms}/{out.clean_evaluations}")
                lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def split_features(features: int) -> tuple[int, int]:
    """The workload's numeric/categorical split of a width: 20 + 2 for 22, 91 % numeric above."""
    if features == workload.BASE_NUMERIC + workload.BASE_CATEGORICAL:
        return workload.BASE_NUMERIC, workload.BASE_CATEGORICAL
    categorical = max(1, round(features * 0.09))
    return features - categorical, categorical


def main(argv: Sequence[str] | None = None) -> int:
    """Run the default cells, or one cell given on the command line; print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.false_alarms", description=__doc__)
    parser.add_argument("--features", type=int, help="features per model (22, 1000, ...)")
    parser.add_argument("--per-minute", type=float, default=20.0)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--models", type=int, default=1)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--rules",
        choices=("default", "both"),
        default="both",
        help="the default decision only, or also with the KS noise floor (twice the time)",
    )
    parser.add_argument(
        "--delay",
        choices=("low-rate", "all"),
        help="instead: bench.delay's detection delay under both rules (low-rate cells, or all)",
    )
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
        sys.stderr.flush()

    if args.delay:
        cells = LOW_RATE_DELAY_CELLS + (delay.CELLS if args.delay == "all" else ())
        print(delay_markdown(cells, log))
        return 0
    if args.features is None:
        setups = DEFAULT_CELLS
    else:
        n_numeric, n_categorical = split_features(args.features)
        setups = (
            Setup(n_numeric, n_categorical, args.per_minute, args.days, args.models, args.seed),
        )

    policies = rules() if args.rules == "both" else {"default": EvaluationSettings().policy()}
    outcomes: list[Outcome] = []
    for setup in setups:
        for outcome in simulate(setup, policies, log=log):
            outcomes.append(outcome)
            for episode in sorted(outcome.episodes, key=lambda e: -e.evaluations)[:8]:
                log(f"  {outcome.rule}: longest episodes: {episode}")
            log(f"  done: {row(outcome)}")
        print(markdown(outcomes), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
