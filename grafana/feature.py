"""The "driftmon / feature" dashboard: every statistic of one feature, with its thresholds."""

from __future__ import annotations

from panels import (
    BLUE,
    DASHED,
    DRIFT_MAP,
    GREEN,
    JSON,
    PSI_STEPS,
    RED,
    YELLOW,
    Board,
    across_replicas,
    bar_chart,
    by_name,
    dashboard,
    fixed,
    fleet_target,
    query_variable,
    reference_activations,
    stat,
    target,
    threshold_line,
    threshold_style,
    thresholds,
    timeseries,
    with_thresholds,
)


def feature() -> JSON:
    """One feature of one model: every statistic, its thresholds and its data quality."""
    sel = 'model="$model",feature="$feature"'
    b = Board()
    b.row("Decision")
    b.add(
        stat(
            "Drift detected",
            "The corrected drift decision for this feature.",
            [fleet_target(f"driftmon_feature_drift_detected{{{sel}}}")],
            mappings=DRIFT_MAP,
            steps=thresholds((None, GREEN), (1, RED)),
            text_mode="value",
        ),
        4,
        4,
    )
    b.add(
        stat(
            "q-value",
            "Benjamini-Hochberg (or Bonferroni) adjusted p-value of the drift test; drift when "
            "below evaluation.fdr_q.",
            [fleet_target(f"driftmon_feature_drift_qvalue{{{sel}}}")],
            unit="sci",
            steps=thresholds((None, RED), (0.001, GREEN)),
            text_mode="value",
        ),
        4,
        4,
    )
    b.add(
        stat(
            "PSI",
            "Population stability index of the current window against the reference.",
            [fleet_target(f"driftmon_feature_psi{{{sel}}}")],
            steps=PSI_STEPS,
            decimals=3,
            text_mode="value",
        ),
        4,
        4,
    )
    b.add(
        stat(
            "KS D",
            "Kolmogorov-Smirnov statistic on the reference's fine bins (numeric features).",
            [fleet_target(f"driftmon_feature_ks_statistic{{{sel}}}")],
            steps=thresholds((None, GREEN), (0.05, YELLOW)),
            decimals=3,
            text_mode="value",
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Current window samples",
            "Values in the current window; statistics need evaluation.min_samples.",
            [fleet_target(f'driftmon_feature_window_samples{{{sel},window="current"}}')],
            steps=thresholds((None, BLUE)),
            text_mode="value",
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Reference samples",
            "Values in the reference window.",
            [fleet_target(f'driftmon_feature_window_samples{{{sel},window="reference"}}')],
            steps=thresholds((None, BLUE)),
            text_mode="value",
        ),
        4,
        4,
    )

    b.row("What changed: reference vs current")
    b.add(distribution_chart(sel), 24, 9)

    b.row("Distance statistics")
    b.add(
        timeseries(
            "PSI vs thresholds",
            'PSI with this feature\'s thresholds (driftmon_feature_threshold{signal="psi"}): '
            "the warning and critical bands (DriftmonFeaturePsiCritical pages above the "
            "critical band when the drift test agrees) and, for numeric features, the drift "
            "decision's floor.",
            **with_thresholds(
                sel,
                [fleet_target(f"driftmon_feature_psi{{{sel}}}", "PSI")],
                [
                    ("psi", "warning", "warning band"),
                    ("psi", "critical", "critical band"),
                    ("psi", "decision", "decision floor"),
                ],
            ),
            decimals=3,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "KS statistic with error bound",
            "KS D on the shared bins and the interval D +/- the largest reference mass inside "
            "one bin: the exact sample KS statistic lies within it. With this feature's "
            "thresholds (driftmon_feature_threshold): the critical one "
            "(DriftmonFeatureKsCritical pages above it when the drift test agrees) and the "
            "drift decision's KS floor (dotted).",
            [
                fleet_target(f"driftmon_feature_ks_statistic{{{sel}}}", "KS D"),
                fleet_target(
                    f"driftmon_feature_ks_statistic{{{sel}}}"
                    f" + driftmon_feature_ks_error_bound{{{sel}}}",
                    "D + bound",
                ),
                fleet_target(
                    f"clamp_min(driftmon_feature_ks_statistic{{{sel}}}"
                    f" - driftmon_feature_ks_error_bound{{{sel}}}, 0)",
                    "D - bound",
                ),
                threshold_line(sel, "ks", "critical", "critical threshold"),
                threshold_line(sel, "ks", "decision", "decision floor"),
            ],
            overrides=[
                by_name("D + bound", color=fixed(BLUE), **{"custom.lineStyle": DASHED}),
                by_name("D - bound", color=fixed(BLUE), **{"custom.lineStyle": DASHED}),
                threshold_style("critical threshold", "critical"),
                threshold_style("decision floor", "decision"),
            ],
            decimals=3,
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "p-values and q-value",
            "Raw p-values of each test and the multiple-testing-adjusted q-value (log scale), "
            "with the q the drift decision needs (evaluation.fdr_q) and, for categorical "
            "features, the p-value DriftmonFeatureNewCategories needs. Absent while a window "
            "is under min_samples.",
            **with_thresholds(
                sel,
                [
                    fleet_target(f"driftmon_feature_psi_pvalue{{{sel}}}", "PSI p"),
                    fleet_target(f"driftmon_feature_ks_pvalue{{{sel}}}", "KS p"),
                    fleet_target(f"driftmon_feature_chi2_pvalue{{{sel}}}", "chi2 p"),
                    fleet_target(
                        f"driftmon_feature_new_category_pvalue{{{sel}}}", "new-category p"
                    ),
                    fleet_target(f"driftmon_feature_drift_qvalue{{{sel}}}", "q-value"),
                ],
                [
                    ("drift_qvalue", "decision", "q threshold"),
                    ("new_category_pvalue", "warning", "new-category p threshold"),
                ],
            ),
            log=True,
            unit="sci",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Total variation distance",
            "TVD between the current and reference category distributions (categorical "
            "features), with the drift decision's TVD floor for this feature.",
            **with_thresholds(
                sel,
                [fleet_target(f"driftmon_feature_tvd{{{sel}}}", "TVD")],
                [("tvd", "decision", "decision floor")],
            ),
            decimals=3,
            min_value=0,
        ),
        12,
        8,
    )

    b.row("Data quality")
    b.add(
        timeseries(
            "Data quality ratios",
            "Missing values per window, mass outside the reference range, and unseen categories "
            "next to the share the reference itself expects unseen (its Good-Turing estimate "
            "p0; DriftmonFeatureNewCategories compares the unseen share with p0 + threshold).",
            [
                fleet_target(f"driftmon_feature_missing_ratio{{{sel}}}", "missing ({{window}})"),
                fleet_target(f"driftmon_feature_out_of_range_ratio{{{sel}}}", "out of range"),
                fleet_target(
                    f"driftmon_feature_unseen_category_ratio{{{sel}}}", "unseen categories"
                ),
                fleet_target(
                    f"driftmon_feature_reference_unseen_estimate{{{sel}}}",
                    "unseen expected by the reference (p0)",
                ),
            ],
            unit="percentunit",
            min_value=0,
        ),
        12,
        8,
    )
    for title, description, signal_target, signal in (
        (
            "Missing-value change vs threshold",
            "Current minus reference missing-value share, with the threshold above which "
            "DriftmonFeatureMissingIncrease warns and the drift decision's floor.",
            fleet_target(
                f'max without (window) (driftmon_feature_missing_ratio{{{sel},window="current"}})'
                " - max without (window) (driftmon_feature_missing_ratio"
                f'{{{sel},window="reference"}})',
                "missing change",
            ),
            "missing_ratio_change",
        ),
        (
            "Out-of-range ratio vs threshold",
            "Share of the current window outside the reference range (numeric features), with "
            "the threshold above which DriftmonFeatureOutOfRange warns.",
            fleet_target(f"driftmon_feature_out_of_range_ratio{{{sel}}}", "out of range"),
            "out_of_range_ratio",
        ),
    ):
        levels = [("warning", "warning threshold")]
        if signal != "out_of_range_ratio":
            levels.append(("decision", "decision floor"))
        b.add(
            timeseries(
                title,
                description,
                **with_thresholds(sel, [signal_target], [(signal, v, n) for v, n in levels]),
                unit="percentunit",
            ),
            8,
            8,
        )
    b.add(unseen_vs_threshold(sel), 8, 8)
    b.add(
        timeseries(
            "Window samples",
            "Values behind each statistic, per window; statistics are withheld below "
            "evaluation.min_samples.",
            [fleet_target(f"driftmon_feature_window_samples{{{sel}}}", "{{window}}")],
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Invalid values",
            "Values of the wrong type (or infinite) for this feature, per second; the rest of "
            "each record is still used.",
            [
                fleet_target(
                    f"rate(driftmon_feature_invalid_values_total{{{sel}}}[$__rate_interval])",
                    "invalid values/s",
                )
            ],
            unit="cps",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Model watermark and evaluation age",
            "Seconds since the model's watermark (largest event time seen) and since its last "
            "evaluation.",
            [
                fleet_target(
                    'time() - driftmon_model_watermark_timestamp_seconds{model="$model"}',
                    "watermark age",
                ),
                fleet_target(
                    'time() - driftmon_model_last_evaluation_timestamp_seconds{model="$model"}',
                    "last evaluation age",
                ),
            ],
            unit="s",
        ),
        12,
        8,
    )
    return dashboard(
        "driftmon-feature",
        "driftmon / feature",
        "Every drift statistic of one feature of one model, with its thresholds.",
        b,
        [
            query_variable(
                "model", "Model", "label_values(driftmon_model_features, model)", multi=False
            ),
            query_variable(
                "feature",
                "Feature",
                'label_values(driftmon_feature_drift_detected{model="$model"}, feature)',
                multi=False,
            ),
        ],
        [reference_activations('model="$model"')],
    )


def unseen_vs_threshold(sel: str) -> JSON:
    """The unseen share, the reference's p0, and p0 + each threshold of the feature.

    DriftmonFeatureNewCategories warns above p0 + the warning threshold (with the new-category
    test), and the drift decision's new-category leg needs p0 + its floor; each line is
    `max without (instance, pod) (p0) + ignoring(signal, severity) (threshold)`, absent while
    the daemon exports no p0 (before driftmon_feature_reference_unseen_estimate).
    """
    p0 = f"driftmon_feature_reference_unseen_estimate{{{sel}}}"
    lines = []
    for severity, legend in (("warning", "p0 + warning threshold"), ("decision", "p0 + floor")):
        threshold = (
            f'driftmon_feature_threshold{{{sel},signal="unseen_category_ratio",'
            f'severity="{severity}"}}'
        )
        expr = f"{across_replicas(p0)} + ignoring(signal, severity) {across_replicas(threshold)}"
        lines.append((target(expr, legend), threshold_style(legend, severity)))
    return timeseries(
        "Unseen categories vs threshold",
        "Share of the current window in categories the reference never saw (categorical "
        "features), the share the reference itself expects unseen (p0, its Good-Turing "
        "estimate), and p0 + the threshold above which DriftmonFeatureNewCategories warns "
        "(when the new-category test also agrees) and p0 + the drift decision's floor.",
        targets=[
            fleet_target(f"driftmon_feature_unseen_category_ratio{{{sel}}}", "unseen categories"),
            fleet_target(p0, "unseen expected by the reference (p0)"),
            *(line for line, _ in lines),
        ],
        overrides=[style for _, style in lines],
        unit="percentunit",
    )


def distribution_chart(sel: str) -> JSON:
    """Reference and current share per bin (driftmon_feature_bin_ratio), bins in order."""
    return bar_chart(
        "Reference vs current distribution",
        "Share of each window's values per bin (driftmon_feature_bin_ratio): numeric features "
        "show the 10 reference-decile groups the PSI uses plus values below and above the "
        "reference range and missing values; categorical features the top reference "
        "categories plus (other), (unseen) and (missing). Exported for the flagged and the "
        "most drifting features (export_distributions: drifting), for every feature with "
        "export_distributions: all.",
        [
            target(
                f'max by (bin) (driftmon_feature_bin_ratio{{{sel},window="{window}"}})',
                instant=True,
                table=True,
            )
            for window in ("reference", "current")
        ],
        x_field="bin",
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {"Value #A": "reference", "Value #B": "current"},
                    "indexByName": {"bin": 0, "reference": 1, "current": 2},
                },
            },
            {"id": "sortBy", "options": {"sort": [{"field": "bin", "desc": False}]}},
        ],
        overrides=[
            by_name("reference", color=fixed("#8e9aaf")),
            by_name("current", color=fixed(BLUE)),
        ],
        unit="percentunit",
        min_value=0,
    )
