"""The "driftmon / overview" dashboard: drift of every model and feature."""

from __future__ import annotations

from panels import (
    DRIFT_MAP,
    GREEN,
    JSON,
    PSI_CRITICAL,
    PSI_STEPS,
    PSI_WARNING,
    RED,
    YELLOW,
    YES_NO,
    Board,
    across_replicas,
    by_name,
    dashboard,
    fleet_target,
    panel,
    query_variable,
    stat,
    state_timeline,
    target,
    thresholds,
    timeseries,
)

MODEL_VAR = query_variable(
    "model", "Model", "label_values(driftmon_model_features, model)", multi=True
)
SEL_MODELS = 'model=~"$model"'

FEATURE_LINK = (
    "/d/driftmon-feature/driftmon-feature?var-model=${__data.fields.model}"
    "&var-feature=${__data.fields.feature}&${__url_time_range}"
)

FLAGGED = f"driftmon_feature_drift_detected{{{SEL_MODELS}}} == 1"

TABLE_COLUMNS: list[tuple[str, str]] = [
    ("PSI", f"driftmon_feature_psi{{{SEL_MODELS}}}"),
    ("KS D", f"driftmon_feature_ks_statistic{{{SEL_MODELS}}}"),
    ("PSI p-value", f"driftmon_feature_psi_pvalue{{{SEL_MODELS}}}"),
    ("KS p-value", f"driftmon_feature_ks_pvalue{{{SEL_MODELS}}}"),
    ("chi2 p-value", f"driftmon_feature_chi2_pvalue{{{SEL_MODELS}}}"),
    ("q-value", f"driftmon_feature_drift_qvalue{{{SEL_MODELS}}}"),
    ("current samples", f'driftmon_feature_window_samples{{{SEL_MODELS},window="current"}}'),
    ("reference samples", f'driftmon_feature_window_samples{{{SEL_MODELS},window="reference"}}'),
    ("drift", f"driftmon_feature_drift_detected{{{SEL_MODELS}}}"),
]


def overview() -> JSON:
    """Per model: drifted features, PSI and decisions by feature over time, top features."""
    b = Board()
    b.row("Models")
    b.add(
        stat(
            "Drifted features",
            "Features whose corrected drift decision is positive, per model "
            "(driftmon_model_drifted_features).",
            [fleet_target(f"driftmon_model_drifted_features{{{SEL_MODELS}}}", "{{model}}")],
            steps=thresholds((None, GREEN), (1, RED)),
            decimals=0,
        ),
        6,
        5,
    )
    b.add(
        stat(
            "Share of features drifting",
            "Drifted features / configured features per model. DriftmonModelWideDrift pages "
            "above 30%.",
            [
                fleet_target(
                    f"driftmon_model_drifted_features{{{SEL_MODELS}}}"
                    f" / driftmon_model_features{{{SEL_MODELS}}}",
                    "{{model}}",
                )
            ],
            unit="percentunit",
            steps=thresholds((None, GREEN), (0.0001, YELLOW), (0.3, RED)),
        ),
        6,
        5,
    )
    b.add(
        stat(
            "Reference ready",
            "Whether each model has a usable reference (driftmon_model_reference_ready); "
            "without one nothing is tested.",
            [fleet_target(f"driftmon_model_reference_ready{{{SEL_MODELS}}}", "{{model}}")],
            mappings=YES_NO,
            steps=thresholds((None, RED), (1, GREEN)),
        ),
        6,
        5,
    )
    b.add(
        stat(
            "Features without a reference",
            "Features per model whose reference is not usable (driftmon_feature_reference_ready "
            "0): no finite warm-up value yet, or a rolling reference's lagged window under "
            "min_samples. /status says why per feature.",
            [
                fleet_target(
                    "sum by (model) (1 - "
                    + across_replicas(f"driftmon_feature_reference_ready{{{SEL_MODELS}}}")
                    + ")",
                    "{{model}}",
                )
            ],
            steps=thresholds((None, GREEN), (1, YELLOW)),
        ),
        6,
        5,
    )
    b.add(
        panel(
            "table",
            "Reference in use",
            "driftmon_reference_info: the reference profile (content hash), how it was obtained "
            "and the model version it was fitted for.",
            [
                target(
                    f"max by (model, reference_id, mode, model_version) "
                    f"(driftmon_reference_info{{{SEL_MODELS}}})",
                    instant=True,
                    table=True,
                )
            ],
            transformations=[
                {
                    "id": "organize",
                    "options": {"excludeByName": {"Time": True, "Value": True}},
                }
            ],
            options={"showHeader": True, "cellHeight": "sm"},
        ),
        6,
        5,
    )

    b.row("Flagged features: what changed")
    b.add(
        panel(
            "table",
            "Flagged features",
            "Features whose drift decision is positive now. Click a feature to open driftmon / "
            "feature: its reference and current distributions side by side, then every "
            "statistic.",
            [
                target(f"max by (model, feature) ({FLAGGED})", instant=True, table=True),
                target(
                    f"max by (model, feature) (driftmon_feature_psi{{{SEL_MODELS}}})"
                    f" and on (model, feature) {FLAGGED}",
                    instant=True,
                    table=True,
                ),
            ],
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Value #A": True},
                        "renameByName": {"Value #B": "PSI"},
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "PSI", "desc": True}]}},
            ],
            overrides=[
                by_name(
                    "feature",
                    links=[{"title": "What changed: reference vs current", "url": FEATURE_LINK}],
                ),
                by_name(
                    "PSI",
                    thresholds=PSI_STEPS,
                    decimals=3,
                    custom={"cellOptions": {"type": "color-background"}},
                ),
            ],
            options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        ),
        24,
        6,
    )

    b.row("Drift by feature")
    b.add(
        state_timeline(
            "Drift decision by feature",
            "The corrected drift decision (driftmon_feature_drift_detected) of every feature "
            "over time.",
            [
                fleet_target(
                    f"driftmon_feature_drift_detected{{{SEL_MODELS}}}", "{{model}} / {{feature}}"
                )
            ],
            mappings=DRIFT_MAP,
            steps=thresholds((None, GREEN), (1, RED)),
            color={"mode": "thresholds"},
        ),
        24,
        8,
    )
    b.add(
        state_timeline(
            "PSI by feature",
            f"PSI of the current window against the reference, coloured by the default bands "
            f"(green < {PSI_WARNING}, yellow < {PSI_CRITICAL}, red above; each feature's own "
            "bands are on driftmon / feature). Gaps: a window had "
            "fewer than min_samples values.",
            [fleet_target(f"driftmon_feature_psi{{{SEL_MODELS}}}", "{{model}} / {{feature}}")],
            steps=PSI_STEPS,
            color={"mode": "thresholds"},
            decimals=3,
        ),
        24,
        8,
    )
    b.add(
        panel(
            "table",
            "Features, most drifting first",
            "The latest statistics of every feature, sorted by PSI. Click a feature to open "
            "driftmon / feature. Empty statistics: a window is under min_samples.",
            [
                target(f"max by (model, feature) ({expr})", instant=True, table=True)
                for _, expr in TABLE_COLUMNS
            ],
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            f"Value #{chr(ord('A') + i)}": name
                            for i, (name, _) in enumerate(TABLE_COLUMNS)
                        },
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "PSI", "desc": True}]}},
            ],
            overrides=[
                by_name(
                    "feature",
                    links=[{"title": "Open feature dashboard", "url": FEATURE_LINK}],
                ),
                by_name(
                    "PSI",
                    thresholds=PSI_STEPS,
                    decimals=3,
                    custom={"cellOptions": {"type": "color-background"}},
                ),
                by_name("KS D", decimals=3),
                by_name("PSI p-value", unit="sci"),
                by_name("KS p-value", unit="sci"),
                by_name("chi2 p-value", unit="sci"),
                by_name("q-value", unit="sci"),
                by_name(
                    "drift",
                    mappings=DRIFT_MAP,
                    custom={"cellOptions": {"type": "color-text"}},
                ),
            ],
            options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        ),
        24,
        10,
    )

    b.row("Data quality")
    b.add(
        timeseries(
            "Missing values: current minus reference",
            "Increase of the missing-value share over the reference, in points. "
            "DriftmonFeatureMissingIncrease warns above the feature's own threshold (default 0.1; "
            "drawn on driftmon / feature).",
            [
                fleet_target(
                    "max without (window) (driftmon_feature_missing_ratio"
                    f'{{{SEL_MODELS},window="current"}})'
                    " - max without (window) (driftmon_feature_missing_ratio"
                    f'{{{SEL_MODELS},window="reference"}})',
                    "{{model}} / {{feature}}",
                )
            ],
            unit="percentunit",
        ),
        8,
        8,
    )
    b.add(
        timeseries(
            "Out-of-range ratio",
            "Share of the current window outside the reference's range (numeric features). "
            "DriftmonFeatureOutOfRange warns above the feature's own threshold (default 5%; drawn "
            "on driftmon / feature).",
            [
                fleet_target(
                    f"driftmon_feature_out_of_range_ratio{{{SEL_MODELS}}}",
                    "{{model}} / {{feature}}",
                )
            ],
            unit="percentunit",
        ),
        8,
        8,
    )
    b.add(
        timeseries(
            "Unseen category ratio",
            "Share of the current window made of categories the reference never saw "
            "(categorical features). DriftmonFeatureNewCategories warns above the feature's own "
            "threshold (default 1%; drawn on driftmon / feature).",
            [
                fleet_target(
                    f"driftmon_feature_unseen_category_ratio{{{SEL_MODELS}}}",
                    "{{model}} / {{feature}}",
                )
            ],
            unit="percentunit",
        ),
        8,
        8,
    )
    return dashboard(
        "driftmon-overview",
        "driftmon / overview",
        "Drift of every model and feature monitored by driftmon.",
        b,
        [MODEL_VAR],
    )
