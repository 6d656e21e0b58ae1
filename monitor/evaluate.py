"""Evaluate every feature of a model in one vectorised call (numpy/scipy only).

Decision rule (docs/architecture.md, Statistics; measured in docs/statistics.md). Each feature has
up to three tests ("legs"), each with an effect-size floor:

    numeric      KS      p_ks  and D       >= max(ks_decision, ks_noise_floor)  (0 by default)
                 PSI     p_psi and PSI_10  >= max(psi_decision, psi_noise_floor)
    categorical  chi2    p_chi2 and TVD    >= tvd_decision
                 new     p_new and unseen share > p0 + unseen_category_ratio_decision
    both         missing p_miss and |missing ratio change| >= missing_ratio_change_decision

The floors are per feature (`FeatureSpec.thresholds`, a `monitor.model.Thresholds`); q, the
correction, `min_samples` and `psi_noise_multiple` are per model (`DecisionPolicy`).

The feature's family p-value is p_f = min(1, 2 min(p_legs)). The family over all evaluated
features of the model is corrected (Benjamini-Hochberg at q, Bonferroni, or none), giving the
per-feature q-value and a per-evaluation level alpha* (BH: q k*/m for k* rejections;
Bonferroni: q/m; none: q). A feature drifts iff some leg has p_leg <= alpha*/2 and meets its
floor. No value statistic is computed for a window with fewer than `min_samples` non-missing
values; the missing leg needs `min_samples` values including missing ones.

psi_noise_floor = psi_noise_multiple (B_eff - 1)(1/n_r + 1/n_c) and ks_noise_floor =
ks_noise_multiple 0.8687 / sqrt(n_eff) (monitor.stats; off by default): the PSI and KS legs
also need their statistic above a multiple of its own null mean. Evaluations repeat every 15 s on an
overlapping window, and the maximum of the statistic over time crosses a per-window level far
more often than disjoint windows do; on small windows, where the fixed floors are below the
noise, these floors remove the false alerts over time (docs/statistics.md, 5). The
new-category leg's p-value counts the uncertainty of the Good-Turing p0 (stats.
new_category_pvalue), for the same reason: one warm-up's error lasts as long as its reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt

from monitor.distribution import DistributionBins
from monitor.histogram import CountMatrix, ModelLayout
from monitor.model import (
    Correction,
    DecisionPolicy,
    FeatureResult,
    FeatureSpec,
    ModelEvaluation,
)
from monitor.stats import (
    benjamini_hochberg,
    bonferroni,
    chi2_homogeneity,
    cochran_merge,
    decile_groups,
    good_turing_variance,
    group_counts,
    ks_binned,
    ks_noise_floor,
    ks_pvalue,
    new_category_pvalue,
    psi,
    psi_noise_floor,
    total_variation,
    two_proportion_pvalue,
)

FloatArray = npt.NDArray[np.float64]

LEGS = ("ks", "psi", "chi2", "new_category", "missing")


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    """Descriptive fields copied into the ModelEvaluation."""

    model: str
    evaluated_at: float
    reference_id: str = ""
    reference_mode: str = ""
    model_version: str = ""
    watermark: float | None = None


@dataclass(frozen=True, slots=True)
class LegValues:
    """One evaluation's statistics and legs as arrays over the features (`ModelEvaluator.legs`).

    `stat` holds the `_STAT_NAMES` columns (NaN: not computed), `leg_p` each leg's p-value
    (NaN: the leg does not apply or the window is too small), `leg_effect_ok` whether the
    leg's effect floor holds; n_r and n_c count non-missing values.
    """

    stat: dict[str, FloatArray]
    leg_p: dict[str, FloatArray]
    leg_effect_ok: dict[str, npt.NDArray[np.bool_]]
    n_r: FloatArray
    n_c: FloatArray
    evaluated: npt.NDArray[np.bool_]
    missing_ratio_r: FloatArray
    missing_ratio_c: FloatArray


class ModelEvaluator:
    """Evaluates a model's current histogram against its reference histogram.

    Built once per (layout, reference): the PSI decile groups of a frozen reference are
    computed once and reused on every evaluation (`groups=None` recomputes them each time,
    for a rolling reference). With `distributions`, every `FeatureResult` also carries the
    shares of both windows over the picture's bins (`monitor.distribution`). `names`, when
    given, are the `FeatureResult` names in layout order (default: the specs' names; the
    segments' stacked layout names its rows per segment but reports the feature names).
    """

    def __init__(
        self,
        layout: ModelLayout,
        specs: Sequence[FeatureSpec],
        policy: DecisionPolicy,
        *,
        distributions: bool = True,
        names: Sequence[str] | None = None,
    ) -> None:
        if tuple(s.name for s in specs) != layout.names:
            raise ValueError("feature specs must follow the layout's feature order")
        if names is not None and len(names) != len(layout.names):
            raise ValueError("one result name per feature of the layout")
        self.layout = layout
        self.specs = tuple(specs)
        self.names = tuple(names) if names is not None else layout.names
        self.policy = policy
        n_num = layout.n_numeric
        self._over_slot = layout.value_slots[:n_num] - 1
        cats = layout.categorical_bins
        self._other_slot = np.asarray([b.other_slot for b in cats], dtype=np.int64)
        self._unseen_slot = np.asarray([b.unseen_slot for b in cats], dtype=np.int64)
        self._singleton = np.asarray([b.singleton_fraction for b in cats], dtype=np.float64)
        self._doubleton = np.asarray(
            [math.nan if b.doubleton_fraction is None else b.doubleton_fraction for b in cats],
            dtype=np.float64,
        )
        self._bins = DistributionBins(layout) if distributions else None
        self._floor = {
            name: np.asarray([getattr(s.thresholds, name) for s in self.specs], dtype=np.float64)
            for name in _FLOORS
        }

    def legs(
        self,
        reference: CountMatrix,
        current: CountMatrix,
        groups: npt.NDArray[np.int64] | None = None,
    ) -> LegValues:
        """Every statistic and leg of one evaluation as arrays, before the correction.

        `evaluate` decides from these; a simulation that only needs the leg p-values of many
        windows calls this without building the per-feature results.
        """
        layout = self.layout
        policy = self.policy
        floor = self._floor
        n_features = layout.n_features
        n_num = layout.n_numeric
        value_cols = layout.width - 2
        ref = np.asarray(reference, dtype=np.int64)
        cur = np.asarray(current, dtype=np.int64)
        ref_v, cur_v = ref[:, :value_cols], cur[:, :value_cols]
        n_r = ref_v.sum(axis=1).astype(np.float64)
        n_c = cur_v.sum(axis=1).astype(np.float64)
        miss_r = ref[:, layout.missing_col].astype(np.float64)
        miss_c = cur[:, layout.missing_col].astype(np.float64)
        evaluated = (n_r >= policy.min_samples) & (n_c >= policy.min_samples)

        stat = {name: np.full(n_features, np.nan) for name in _STAT_NAMES}
        leg_p = {leg: np.full(n_features, np.nan) for leg in LEGS}
        leg_effect_ok = {leg: np.zeros(n_features, dtype=bool) for leg in LEGS}

        if n_num and groups is None:
            groups = decile_groups(ref_v[:n_num])
        if n_num:
            assert groups is not None
            used = self._numeric(
                ref_v[:n_num], cur_v[:n_num], n_r[:n_num], n_c[:n_num], groups, stat
            )
            rows = slice(0, n_num)
            leg_p["ks"][rows] = stat["ks_pvalue"][rows]
            ks_floor = np.maximum(
                floor["ks_decision"][rows],
                ks_noise_floor(n_r[rows], n_c[rows], policy.ks_noise_multiple),
            )
            leg_effect_ok["ks"][rows] = stat["ks_statistic"][rows] >= ks_floor
            leg_p["psi"][rows] = stat["psi_pvalue"][rows]
            noise = psi_noise_floor(n_r[rows], n_c[rows], used, policy.psi_noise_multiple)
            psi_floor = np.maximum(floor["psi_decision"][rows], noise)
            leg_effect_ok["psi"][rows] = stat["psi"][rows] >= psi_floor
        if n_features > n_num:
            rows = slice(n_num, n_features)
            self._categorical(ref_v[rows], cur_v[rows], n_r[rows], n_c[rows], stat, rows)
            leg_p["chi2"][rows] = stat["chi2_pvalue"][rows]
            leg_effect_ok["chi2"][rows] = stat["tvd"][rows] >= floor["tvd_decision"][rows]
            leg_p["new_category"][rows] = stat["new_category_pvalue"][rows]
            leg_effect_ok["new_category"][rows] = stat["unseen_category_ratio"][rows] > (
                self._singleton + floor["unseen_category_ratio_decision"][rows]
            )
        for name in _STAT_NAMES:
            stat[name] = np.where(evaluated, stat[name], np.nan)
        for leg in ("ks", "psi", "chi2", "new_category"):
            leg_p[leg] = np.where(evaluated, leg_p[leg], np.nan)

        total_r = n_r + miss_r
        total_c = n_c + miss_c
        missing_ratio_r = _ratio(miss_r, total_r)
        missing_ratio_c = _ratio(miss_c, total_c)
        missing_ok = (total_r >= policy.min_samples) & (total_c >= policy.min_samples)
        leg_p["missing"] = np.where(
            missing_ok, two_proportion_pvalue(miss_r, total_r, miss_c, total_c), np.nan
        )
        leg_effect_ok["missing"] = (
            np.abs(missing_ratio_c - missing_ratio_r) >= floor["missing_ratio_change_decision"]
        ) & missing_ok
        return LegValues(
            stat, leg_p, leg_effect_ok, n_r, n_c, evaluated, missing_ratio_r, missing_ratio_c
        )

    def evaluate(
        self,
        reference: CountMatrix,
        current: CountMatrix,
        context: EvaluationContext,
        groups: npt.NDArray[np.int64] | None = None,
    ) -> ModelEvaluation:
        """All statistics and decisions of one evaluation (see the module docstring)."""
        policy = self.policy
        n_features = self.layout.n_features
        if self.layout.n_numeric and groups is None:
            groups = self.psi_groups(reference)
        pictures = (
            self._bins.distributions(
                np.asarray(reference, dtype=np.int64), np.asarray(current, dtype=np.int64), groups
            )
            if self._bins is not None
            else (None,) * n_features
        )
        values = self.legs(reference, current, groups)
        stat, leg_p, leg_effect_ok = values.stat, values.leg_p, values.leg_effect_ok
        n_r, n_c, evaluated = values.n_r, values.n_c, values.evaluated
        missing_ratio_r, missing_ratio_c = values.missing_ratio_r, values.missing_ratio_c

        p_legs = np.vstack([leg_p[leg] for leg in LEGS])
        has_leg = np.isfinite(p_legs).any(axis=0)
        p_min = np.where(has_leg, np.nanmin(np.where(np.isfinite(p_legs), p_legs, 2.0), axis=0), 0)
        family_p = np.where(has_leg, np.minimum(1.0, 2.0 * p_min), np.nan)
        qvalues, alpha_star = _correct(family_p, policy)
        fires = np.zeros(n_features, dtype=bool)
        reasons: list[list[str]] = [[] for _ in range(n_features)]
        for leg in LEGS:
            with np.errstate(invalid="ignore"):
                leg_fires = (
                    np.isfinite(leg_p[leg]) & (2.0 * leg_p[leg] <= alpha_star) & leg_effect_ok[leg]
                )
            fires |= leg_fires
            for row in np.flatnonzero(leg_fires):
                reasons[row].append(leg)
        with np.errstate(invalid="ignore"):
            detected = fires & (qvalues <= policy.fdr_q)

        column = {name: _optional_list(values) for name, values in stat.items()}
        ref_missing = _optional_list(missing_ratio_r)
        cur_missing = _optional_list(missing_ratio_c)
        missing_p = _optional_list(leg_p["missing"])
        q_list = _optional_list(qvalues)
        p0_list: list[float | None] = [None] * self.layout.n_numeric
        p0_list += self._singleton.tolist()
        n_r_list = n_r.astype(np.int64).tolist()
        n_c_list = n_c.astype(np.int64).tolist()
        evaluated_list = evaluated.tolist()
        detected_list = detected.tolist()
        names = self.names
        kinds = [spec.kind for spec in self.specs]
        thresholds = [spec.thresholds for spec in self.specs]
        reasons_list = [tuple(reasons[i]) if detected_list[i] else () for i in range(n_features)]
        # positional, column by column in RESULT_FIELDS order (FeatureResult's; pinned by a
        # test): at thousands of features a keyword call and 25 lookups per feature cost more
        # than the statistics
        results = tuple(
            map(
                FeatureResult,
                names,
                kinds,
                n_r_list,
                n_c_list,
                ref_missing,
                cur_missing,
                evaluated_list,
                *(column[name] for name in _STAT_NAMES),
                p0_list,
                missing_p,
                q_list,
                detected_list,
                reasons_list,
                thresholds,
                repeat(True, n_features),
                repeat("", n_features),
                pictures,
            )
        )
        return ModelEvaluation(
            model=context.model,
            evaluated_at=context.evaluated_at,
            features=results,
            correction=policy.correction,
            fdr_q=policy.fdr_q,
            reference_id=context.reference_id,
            reference_mode=context.reference_mode,
            model_version=context.model_version,
            watermark=context.watermark,
        )

    def psi_groups(self, reference: CountMatrix) -> npt.NDArray[np.int64]:
        """PSI decile groups of the numeric rows of a reference (cache for a frozen one)."""
        value_cols = self.layout.width - 2
        return decile_groups(np.asarray(reference)[: self.layout.n_numeric, :value_cols])

    def _numeric(
        self,
        ref: CountMatrix,
        cur: CountMatrix,
        n_r: FloatArray,
        n_c: FloatArray,
        groups: npt.NDArray[np.int64],
        stat: dict[str, FloatArray],
    ) -> npt.NDArray[np.int64]:
        """Fill the numeric statistics; returns the PSI groups non-empty in the pooled data."""
        rows = slice(0, ref.shape[0])
        d, err = ks_binned(ref, cur)
        stat["ks_statistic"][rows] = d
        stat["ks_error_bound"][rows] = err
        stat["ks_pvalue"][rows] = ks_pvalue(d, n_r, n_c)
        grouped_r, grouped_c = group_counts(ref, groups), group_counts(cur, groups)
        value, p = psi(grouped_r, grouped_c)
        stat["psi"][rows] = value
        stat["psi_pvalue"][rows] = p
        index = np.arange(ref.shape[0])
        outside = cur[:, 0] + cur[index, self._over_slot]
        stat["out_of_range_ratio"][rows] = _ratio(outside.astype(np.float64), n_c)
        return np.asarray(((grouped_r + grouped_c) > 0).sum(axis=1), dtype=np.int64)

    def _categorical(
        self,
        ref: CountMatrix,
        cur: CountMatrix,
        n_r: FloatArray,
        n_c: FloatArray,
        stat: dict[str, FloatArray],
        rows: slice,
    ) -> None:
        index = np.arange(ref.shape[0])
        unseen_c = cur[index, self._unseen_slot].astype(np.float64)
        merged_r = ref.astype(np.float64)
        merged_c = cur.astype(np.float64)
        merged_r[index, self._other_slot] += merged_r[index, self._unseen_slot]
        merged_c[index, self._other_slot] += merged_c[index, self._unseen_slot]
        merged_r[index, self._unseen_slot] = 0.0
        merged_c[index, self._unseen_slot] = 0.0
        value, _ = psi(merged_r, merged_c)
        stat["psi"][rows] = value
        stat["tvd"][rows] = total_variation(merged_r, merged_c)
        cochran_r, cochran_c = cochran_merge(merged_r, merged_c, self._other_slot)
        _, p_chi2 = chi2_homogeneity(cochran_r, cochran_c)
        stat["chi2_pvalue"][rows] = p_chi2
        stat["unseen_category_ratio"][rows] = _ratio(unseen_c, n_c)
        variance = good_turing_variance(self._singleton, self._doubleton, n_r)
        stat["new_category_pvalue"][rows] = new_category_pvalue(
            unseen_c, n_c, self._singleton, variance
        )


_FLOORS = (
    "ks_decision",
    "psi_decision",
    "tvd_decision",
    "unseen_category_ratio_decision",
    "missing_ratio_change_decision",
)
"""The `Thresholds` attributes the decision rule reads, as per-feature arrays."""

_STAT_NAMES = (
    "psi",
    "psi_pvalue",
    "ks_statistic",
    "ks_error_bound",
    "ks_pvalue",
    "chi2_pvalue",
    "tvd",
    "out_of_range_ratio",
    "unseen_category_ratio",
    "new_category_pvalue",
)

RESULT_FIELDS = (
    "name",
    "kind",
    "reference_samples",
    "current_samples",
    "reference_missing_ratio",
    "current_missing_ratio",
    "evaluated",
    *_STAT_NAMES,
    "reference_unseen_estimate",
    "missing_pvalue",
    "qvalue",
    "drift_detected",
    "drift_reasons",
    "thresholds",
    "reference_ready",
    "reference_note",
    "distribution",
)
"""The order `ModelEvaluator.evaluate` passes a `FeatureResult`'s values in (its fields')."""


def _correct(family_p: FloatArray, policy: DecisionPolicy) -> tuple[FloatArray, float]:
    """Adjusted p-values and the per-leg level alpha* of this evaluation's family."""
    finite = np.isfinite(family_p)
    m = int(finite.sum())
    if m == 0:
        return family_p.copy(), 0.0
    if policy.correction is Correction.BH:
        q = benjamini_hochberg(family_p)
        k_star = int(np.sum(q[finite] <= policy.fdr_q))
        return q, policy.fdr_q * k_star / m
    if policy.correction is Correction.BONFERRONI:
        return bonferroni(family_p), policy.fdr_q / m
    return family_p.copy(), policy.fdr_q


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.full(np.broadcast_shapes(num.shape, den.shape), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _optional_list(values: FloatArray) -> list[float | None]:
    """Python floats, with None where the value is NaN or infinite (not computed)."""
    array = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(array)
    if finite.all():
        return array.tolist()  # type: ignore[no-any-return]
    boxed = array.astype(object)
    boxed[~finite] = None
    return boxed.tolist()  # type: ignore[no-any-return]
