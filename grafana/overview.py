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
    feature_and_psi_columns,
    fleet_target,
    panel,
    psi_sorted_table,
    query_variable,
    reference_activations,
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


SEGMENT_COLUMNS: list[tuple[str, str]] = [
    ("drifting features", f"driftmon_segment_drifted_features{{{SEL_MODELS}}}"),
    ("smallest q", f"driftmon_segment_feature_drift_qvalue{{{SEL_MODELS}}}"),
    ("current events", f'driftmon_segment_window_events{{{SEL_MODELS},window="current"}}'),
    ("reference events", f'driftmon_segment_window_events{{{SEL_MODELS},window="reference"}}'),
]
"""Columns of the segment table: (header, series); the q-value column is the minimum."""


def _segments(b: Board) -> None:
    """Models with `segment_by`: segments worst first, and the flagged (segment, feature)s."""
    b.row("Segments (models with segment_by)")
    b.add(
        panel(
            "table",
            "Segments, worst first",
            "Per segment of a model with segment_by: features flagged in the segment, the "
            "smallest q-value of its tests (one BH family per model), and its events in both "
            "windows; sorted by flagged features, then q. __other__ holds every other value.",
            [
                target(
                    f"{'min' if header == 'smallest q' else 'max'} by (model, segment) ({expr})",
                    instant=True,
                    table=True,
                )
                for header, expr in SEGMENT_COLUMNS
            ],
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            f"Value #{chr(65 + i)}": header
                            for i, (header, _) in enumerate(SEGMENT_COLUMNS)
                        },
                    },
                },
                {
                    "id": "sortBy",
                    "options": {"sort": [{"field": "drifting features", "desc": True}]},
                },
            ],
            overrides=[
                by_name(
                    "drifting features",
                    thresholds=thresholds((None, GREEN), (1, RED)),
                    custom={"cellOptions": {"type": "color-background"}},
                ),
                by_name("smallest q", decimals=4),
            ],
            options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        ),
        12,
        8,
    )
    flagged = f"driftmon_segment_feature_drift_detected{{{SEL_MODELS}}} == 1"
    b.add(
        panel(
            "table",
            "Flagged segment features",
            "(segment, feature) pairs whose drift decision is positive now, with the segment's "
            "KS D and PSI (numeric) or TVD (categorical) against its own reference slice. A "
            "drift in one segment can leave the whole-model test quiet: the shift is diluted by "
            "the other segments.",
            [
                target(f"max by (model, segment, feature) ({flagged})", instant=True, table=True),
                target(
                    "max by (model, segment, feature) "
                    f"(driftmon_segment_feature_ks_statistic{{{SEL_MODELS}}})"
                    f" and on (model, segment, feature) {flagged}",
                    instant=True,
                    table=True,
                ),
                target(
                    "max by (model, segment, feature) "
                    f"(driftmon_segment_feature_psi{{{SEL_MODELS}}})"
                    f" and on (model, segment, feature) {flagged}",
                    instant=True,
                    table=True,
                ),
                target(
                    "max by (model, segment, feature) "
                    f"(driftmon_segment_feature_tvd{{{SEL_MODELS}}})"
                    f" and on (model, segment, feature) {flagged}",
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
                        "renameByName": {"Value #B": "KS D", "Value #C": "PSI", "Value #D": "TVD"},
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "KS D", "desc": True}]}},
            ],
            overrides=[by_name(name, decimals=3) for name in ("KS D", "PSI", "TVD")],
            options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        ),
        12,
        8,
    )
    b.add(
        state_timeline(
            "Drifting features by segment",
            "driftmon_segment_drifted_features of every segment over time (0: none).",
            [
                fleet_target(
                    f"driftmon_segment_drifted_features{{{SEL_MODELS}}}", "{{model}} / {{segment}}"
                )
            ],
            steps=thresholds((None, GREEN), (1, RED)),
            color={"mode": "thresholds"},
            decimals=0,
        ),
        18,
        6,
    )
    b.add(
        stat(
            "Events without the segment field",
            "Events per second whose segment field was absent, null or not a string "
            "(driftmon_segment_field_missing_events_total); they are counted in __other__.",
            [
                fleet_target(
                    f"rate(driftmon_segment_field_missing_events_total{{{SEL_MODELS}}}"
                    "[$__rate_interval])",
                    "{{model}}",
                )
            ],
            steps=thresholds((None, GREEN), (0.001, YELLOW)),
            unit="ops",
        ),
        6,
        6,
    )


CHANGE_STEPS = thresholds((None, GREEN), (0.1, RED))
"""The default correlation change floor (`correlation.change_floor`, 0.1)."""


def joint_drift(b: Board) -> None:
    """The correlation group and the reconstruction-error feature of the models with them."""
    b.row("Joint drift: correlations and reconstruction error")
    b.add(
        stat(
            "Drifted correlation pairs",
            "Pairs of the correlation group whose correlation changed (Fisher-z test and "
            "|change| >= the floor, BH over the pairs), and the pairs tested "
            "(driftmon_correlation_drifted_pairs, driftmon_correlation_pairs). Only models with "
            "correlation.enabled have them. DriftmonCorrelationDrift warns after 10 minutes.",
            [
                fleet_target(
                    f"driftmon_correlation_drifted_pairs{{{SEL_MODELS}}}", "{{model}} drifted"
                ),
                fleet_target(f"driftmon_correlation_pairs{{{SEL_MODELS}}}", "{{model}} tested"),
            ],
            steps=thresholds((None, GREEN), (1, RED)),
            decimals=0,
        ),
        6,
        8,
    )
    b.add(
        panel(
            "heatmap",
            "Correlation change of the top pairs",
            "Current minus reference correlation (winsorised values) of the 10 pairs per model "
            "that changed most (driftmon_correlation_change): blue fell, red rose; a pair drifts "
            "only at |change| >= the floor (default 0.1) with a significant Fisher-z test.",
            [
                fleet_target(
                    f"driftmon_correlation_change{{{SEL_MODELS}}}",
                    "{{model}}: {{feature_a}} x {{feature_b}}",
                )
            ],
            options={
                "calculate": False,
                "cellGap": 1,
                "color": {
                    "mode": "scheme",
                    "scheme": "RdBu",
                    "reverse": True,
                    "min": -0.5,
                    "max": 0.5,
                    "steps": 64,
                },
                "yAxis": {"axisPlacement": "left"},
                "rowsFrame": {"layout": "auto"},
                "legend": {"show": True},
                "tooltip": {"mode": "single", "yHistogram": False},
                "cellValues": {"decimals": 2},
            },
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Largest correlation change",
            "The largest |current - reference| correlation over the pairs tested "
            "(driftmon_correlation_max_change), against the default floor 0.1.",
            [fleet_target(f"driftmon_correlation_max_change{{{SEL_MODELS}}}", "{{model}}")],
            steps=CHANGE_STEPS,
            custom={"thresholdsStyle": {"mode": "line"}},
            decimals=3,
        ),
        6,
        8,
    )
    b.add(
        timeseries(
            "Correlation of the top pairs",
            "Pearson correlation of the winsorised values in each window "
            "(driftmon_correlation_coefficient), reference dashed against current.",
            [
                fleet_target(
                    f"driftmon_correlation_coefficient{{{SEL_MODELS}}}",
                    "{{model}}: {{feature_a}} x {{feature_b}} ({{window}})",
                )
            ],
            min_value=-1,
            max_value=1,
            decimals=3,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Reconstruction error: KS and PSI",
            "The virtual feature __reconstruction__ (each event's squared distance to the "
            "reference's PCA subspace): KS D and PSI against the reference errors. It catches a "
            "joint change with unchanged marginals; its drift decision, alerts and the feature "
            "dashboard are those of any feature.",
            [
                fleet_target(
                    f'driftmon_feature_ks_statistic{{{SEL_MODELS},feature="__reconstruction__"}}',
                    "{{model}} KS D",
                ),
                fleet_target(
                    f'driftmon_feature_psi{{{SEL_MODELS},feature="__reconstruction__"}}',
                    "{{model}} PSI",
                ),
            ],
            decimals=3,
        ),
        12,
        8,
    )


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
            transformations=psi_sorted_table(["Value #A"], {"Value #B": "PSI"}),
            overrides=feature_and_psi_columns("What changed: reference vs current", FEATURE_LINK),
            options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        ),
        24,
        6,
    )

    _segments(b)

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
            transformations=psi_sorted_table(
                [],
                {f"Value #{chr(ord('A') + i)}": name for i, (name, _) in enumerate(TABLE_COLUMNS)},
            ),
            overrides=[
                *feature_and_psi_columns("Open feature dashboard", FEATURE_LINK),
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
            "(categorical features). DriftmonFeatureNewCategories warns above the share the "
            "reference itself expects unseen (its p0) plus the feature's own threshold "
            "(default 1%; both drawn on driftmon / feature).",
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
    joint_drift(b)
    return dashboard(
        "driftmon-overview",
        "driftmon / overview",
        "Drift of every model and feature monitored by driftmon.",
        b,
        [MODEL_VAR],
        [reference_activations(SEL_MODELS)],
    )
