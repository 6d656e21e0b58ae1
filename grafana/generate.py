"""Generate driftmon's Grafana dashboards: `python grafana/generate.py` writes grafana/dashboards/.

The JSON files are committed (Grafana provisioning reads them as they are); this script is
their source, so that every panel is built the same way: one fixed datasource uid
(`driftmon-prometheus`, see grafana/provisioning/datasources/prometheus.yml), sequential
panel ids, explicit grid positions, and PromQL that uses only the metrics driftmon exports
(README.md, Metrics). `--check` exits 1 when the committed files differ from the output.

Stdlib only. tests/ops/test_grafana.py validates the output against Grafana's dashboard JSON
schema and checks every expression with promtool.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

DATASOURCE: JSON = {"type": "prometheus", "uid": "driftmon-prometheus"}
SCHEMA_VERSION = 39
GRID_WIDTH = 24
OUT_DIR = Path(__file__).resolve().parent / "dashboards"

# Classic PSI bands (docs/architecture.md, Statistics); per-feature bands are drawn from
# driftmon_feature_psi_threshold where the panel shows a single feature.
PSI_WARNING = 0.1
PSI_CRITICAL = 0.25

GREEN, YELLOW, RED, BLUE = "green", "yellow", "red", "blue"


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> JSON:
    """One Prometheus query of a panel (refId is filled in by `panel`)."""
    t: JSON = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
    }
    if table:
        t["format"] = "table"
    return t


def rate(counter: str, selector: str) -> str:
    """`rate(counter{selector}[$__rate_interval])`: Grafana picks the range from the step."""
    return f"rate({counter}{{{selector}}}[$__rate_interval])"


def thresholds(*steps: tuple[float | None, str]) -> JSON:
    """An absolute thresholds config; the first step's value must be None (-Infinity)."""
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


def value_map(mapping: dict[str, tuple[str, str]]) -> list[JSON]:
    """A value mapping: raw value -> (display text, colour)."""
    options = {
        raw: {"text": text, "color": color, "index": i}
        for i, (raw, (text, color)) in enumerate(mapping.items())
    }
    return [{"type": "value", "options": options}]


YES_NO = value_map({"0": ("no", RED), "1": ("yes", GREEN)})
DRIFT_MAP = value_map({"0": ("no drift", GREEN), "1": ("drift", RED)})
PSI_STEPS = thresholds((None, GREEN), (PSI_WARNING, YELLOW), (PSI_CRITICAL, RED))


def panel(
    kind: str,
    title: str,
    description: str,
    targets: Sequence[JSON],
    *,
    unit: str = "short",
    steps: JSON | None = None,
    mappings: list[JSON] | None = None,
    custom: JSON | None = None,
    overrides: list[JSON] | None = None,
    options: JSON | None = None,
    transformations: list[JSON] | None = None,
    decimals: int | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
    color: JSON | None = None,
) -> JSON:
    """A panel without id and gridPos (the `Board` assigns both)."""
    defaults: JSON = {"unit": unit}
    if steps is not None:
        defaults["thresholds"] = steps
    if mappings is not None:
        defaults["mappings"] = mappings
    if custom is not None:
        defaults["custom"] = custom
    if decimals is not None:
        defaults["decimals"] = decimals
    if min_value is not None:
        defaults["min"] = min_value
    if max_value is not None:
        defaults["max"] = max_value
    if color is not None:
        defaults["color"] = color
    p: JSON = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        p["transformations"] = transformations
    return p


def stat(title: str, description: str, targets: Sequence[JSON], **kw: Any) -> JSON:
    """A stat panel showing the last value of each series, coloured by thresholds/mappings."""
    text_mode = kw.pop("text_mode", "value_and_name")
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background",
        "graphMode": "none",
        "textMode": text_mode,
        "justifyMode": "auto",
        "orientation": "auto",
    }
    return panel("stat", title, description, targets, options=options, **kw)


def timeseries(
    title: str, description: str, targets: Sequence[JSON], *, log: bool = False, **kw: Any
) -> JSON:
    """A time series panel with a table legend showing last and max values."""
    custom: JSON = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "showPoints": "never"}
    if log:
        custom["scaleDistribution"] = {"type": "log", "log": 10}
    custom.update(kw.pop("custom", {}))
    options = {
        "legend": {
            "displayMode": "table",
            "placement": "bottom",
            "showLegend": True,
            "calcs": ["lastNotNull", "max"],
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel("timeseries", title, description, targets, custom=custom, options=options, **kw)


def state_timeline(title: str, description: str, targets: Sequence[JSON], **kw: Any) -> JSON:
    """A state timeline: one lane per series, coloured by thresholds or value mappings."""
    options = {
        "showValue": "never",
        "mergeValues": True,
        "rowHeight": 0.85,
        "alignValue": "left",
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return panel(
        "state-timeline",
        title,
        description,
        targets,
        options=options,
        custom={"fillOpacity": 80, "lineWidth": 0},
        **kw,
    )


def bar_chart(
    title: str, description: str, targets: Sequence[JSON], *, x_field: str, **kw: Any
) -> JSON:
    """A bar chart of table rows: one group of bars per value of `x_field`, in row order."""
    options = {
        "orientation": "vertical",
        "xField": x_field,
        "xTickLabelRotation": -45,
        "xTickLabelSpacing": 0,
        "showValue": "never",
        "stacking": "none",
        "groupWidth": 0.75,
        "barWidth": 0.9,
        "barRadius": 0,
        "fullHighlight": False,
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
        "tooltip": {"mode": "multi", "sort": "none"},
    }
    custom = {"fillOpacity": 85, "lineWidth": 0, "gradientMode": "none", "axisSoftMin": 0}
    return panel("barchart", title, description, targets, custom=custom, options=options, **kw)


def by_name(name: str, **properties: Any) -> JSON:
    """A field override matching the series/field called `name`."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": k, "value": v} for k, v in properties.items()],
    }


def fixed(color: str) -> JSON:
    """A fixed field colour."""
    return {"mode": "fixed", "fixedColor": color}


DASHED = {"dash": [10, 10], "fill": "dash"}


class Board:
    """Lays panels out left to right on Grafana's 24-column grid and numbers them 1, 2, ..."""

    def __init__(self) -> None:
        self.panels: list[JSON] = []
        self._x = 0
        self._y = 0
        self._row_height = 0

    def row(self, title: str) -> None:
        """Start a new (always expanded) row below everything placed so far."""
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "id": len(self.panels) + 1,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": self._y},
            }
        )
        self._y += 1

    def add(self, p: JSON, w: int, h: int) -> None:
        """Place `p` (w columns by h rows) at the next free position of the current line."""
        if self._x + w > GRID_WIDTH:
            self._newline()
        p["id"] = len(self.panels) + 1
        p["gridPos"] = {"h": h, "w": w, "x": self._x, "y": self._y}
        self.panels.append(p)
        self._x += w
        self._row_height = max(self._row_height, h)

    def _newline(self) -> None:
        self._y += self._row_height
        self._x = 0
        self._row_height = 0


def query_variable(name: str, label: str, query: str, *, multi: bool) -> JSON:
    """A Prometheus `label_values(...)` template variable, refreshed on time-range change."""
    v: JSON = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "refresh": 2,
        "sort": 1,
        "includeAll": multi,
        "multi": multi,
        "hide": 0,
    }
    if multi:
        v["allValue"] = ".*"
    return v


def dashboard(uid: str, title: str, description: str, board: Board, variables: list[JSON]) -> JSON:
    """The dashboard envelope: links to its siblings (tag `driftmon`), 6h range, 30s refresh."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["driftmon"],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "driftmon dashboards",
                "type": "dashboards",
                "tags": ["driftmon"],
                "asDropdown": False,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "targetBlank": False,
                "tooltip": "",
            }
        ],
        "templating": {"list": variables},
        "panels": board.panels,
    }


# ------------------------------------------------------------------------------- overview
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
            [target(f"driftmon_model_drifted_features{{{SEL_MODELS}}}", "{{model}}")],
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
                target(
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
            [target(f"driftmon_model_reference_ready{{{SEL_MODELS}}}", "{{model}}")],
            mappings=YES_NO,
            steps=thresholds((None, RED), (1, GREEN)),
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
            [target(f"driftmon_feature_drift_detected{{{SEL_MODELS}}}", "{{model}} / {{feature}}")],
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
            f"PSI of the current window against the reference, coloured by the classic bands "
            f"(green < {PSI_WARNING}, yellow < {PSI_CRITICAL}, red above). Gaps: a window had "
            "fewer than min_samples values.",
            [target(f"driftmon_feature_psi{{{SEL_MODELS}}}", "{{model}} / {{feature}}")],
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
            "DriftmonFeatureMissingIncrease warns above 0.1.",
            [
                target(
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
            "DriftmonFeatureOutOfRange warns above 5%.",
            [
                target(
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
            "(categorical features). DriftmonFeatureNewCategories warns above 1%.",
            [
                target(
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


# -------------------------------------------------------------------------------- feature
def feature() -> JSON:
    """One feature of one model: every statistic, its thresholds and its data quality."""
    sel = 'model="$model",feature="$feature"'
    b = Board()
    b.row("Decision")
    b.add(
        stat(
            "Drift detected",
            "The corrected drift decision for this feature.",
            [target(f"driftmon_feature_drift_detected{{{sel}}}")],
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
            [target(f"driftmon_feature_drift_qvalue{{{sel}}}")],
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
            [target(f"driftmon_feature_psi{{{sel}}}")],
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
            [target(f"driftmon_feature_ks_statistic{{{sel}}}")],
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
            [target(f'driftmon_feature_window_samples{{{sel},window="current"}}')],
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
            [target(f'driftmon_feature_window_samples{{{sel},window="reference"}}')],
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
            "PSI with this feature's warning and critical bands "
            "(driftmon_feature_psi_threshold). DriftmonFeaturePsiCritical pages above the "
            "critical band when the drift test agrees.",
            [
                target(f"driftmon_feature_psi{{{sel}}}", "PSI"),
                target(
                    f'driftmon_feature_psi_threshold{{{sel},severity="warning"}}', "warning band"
                ),
                target(
                    f'driftmon_feature_psi_threshold{{{sel},severity="critical"}}', "critical band"
                ),
            ],
            overrides=[
                by_name("warning band", color=fixed(YELLOW), **{"custom.lineStyle": DASHED}),
                by_name("critical band", color=fixed(RED), **{"custom.lineStyle": DASHED}),
            ],
            decimals=3,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "KS statistic with error bound",
            "KS D on the shared bins and the interval D +/- the largest reference mass inside "
            "one bin: the exact sample KS statistic lies within it.",
            [
                target(f"driftmon_feature_ks_statistic{{{sel}}}", "KS D"),
                target(
                    f"driftmon_feature_ks_statistic{{{sel}}}"
                    f" + driftmon_feature_ks_error_bound{{{sel}}}",
                    "D + bound",
                ),
                target(
                    f"clamp_min(driftmon_feature_ks_statistic{{{sel}}}"
                    f" - driftmon_feature_ks_error_bound{{{sel}}}, 0)",
                    "D - bound",
                ),
            ],
            overrides=[
                by_name("D + bound", color=fixed(BLUE), **{"custom.lineStyle": DASHED}),
                by_name("D - bound", color=fixed(BLUE), **{"custom.lineStyle": DASHED}),
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
            "Raw p-values of each test and the multiple-testing-adjusted q-value (log scale). "
            "Absent while a window is under min_samples.",
            [
                target(f"driftmon_feature_psi_pvalue{{{sel}}}", "PSI p"),
                target(f"driftmon_feature_ks_pvalue{{{sel}}}", "KS p"),
                target(f"driftmon_feature_chi2_pvalue{{{sel}}}", "chi2 p"),
                target(f"driftmon_feature_new_category_pvalue{{{sel}}}", "new-category p"),
                target(f"driftmon_feature_drift_qvalue{{{sel}}}", "q-value"),
            ],
            log=True,
            unit="sci",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Total variation distance",
            "TVD between the current and reference category distributions (categorical features).",
            [target(f"driftmon_feature_tvd{{{sel}}}", "TVD")],
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
            "Missing values per window, mass outside the reference range, and unseen categories.",
            [
                target(f"driftmon_feature_missing_ratio{{{sel}}}", "missing ({{window}})"),
                target(f"driftmon_feature_out_of_range_ratio{{{sel}}}", "out of range"),
                target(f"driftmon_feature_unseen_category_ratio{{{sel}}}", "unseen categories"),
            ],
            unit="percentunit",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Window samples",
            "Values behind each statistic, per window; statistics are withheld below "
            "evaluation.min_samples.",
            [target(f"driftmon_feature_window_samples{{{sel}}}", "{{window}}")],
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
                target(
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
                target(
                    'time() - driftmon_model_watermark_timestamp_seconds{model="$model"}',
                    "watermark age",
                ),
                target(
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


# ------------------------------------------------------------------------------- pipeline
def quantiles(histogram: str, sel: str) -> list[JSON]:
    """p50/p90/p99 of a histogram over the panel's rate interval."""
    return [
        target(
            f"histogram_quantile({q}, sum by (le) "
            f"(rate({histogram}_bucket{{{sel}}}[$__rate_interval])))",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    ]


def pipeline() -> JSON:
    """The daemon itself: health, throughput, rejects, lag, evaluation cost, durability."""
    sel = 'instance=~"$instance"'
    b = Board()
    b.row("Health")
    b.add(
        stat(
            "Ready",
            "driftmon_ready: partitions assigned, references loaded, first evaluation done.",
            [target(f"driftmon_ready{{{sel}}}", "{{instance}}")],
            mappings=YES_NO,
            steps=thresholds((None, RED), (1, GREEN)),
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Kafka connected",
            "driftmon_kafka_connected: the consumer can reach the brokers.",
            [target(f"driftmon_kafka_connected{{{sel}}}", "{{instance}}")],
            mappings=YES_NO,
            steps=thresholds((None, RED), (1, GREEN)),
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Version",
            "driftmon_build_info: the running version.",
            [target(f"driftmon_build_info{{{sel}}}", "{{version}}")],
            steps=thresholds((None, BLUE)),
            text_mode="name",
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Last evaluation age",
            "Seconds since the last finished evaluation. DriftmonNotEvaluating pages above 3 "
            "evaluation intervals.",
            [
                target(
                    f"time() - driftmon_last_evaluation_timestamp_seconds{{{sel}}}", "{{instance}}"
                )
            ],
            unit="s",
            steps=thresholds((None, GREEN), (60, YELLOW), (180, RED)),
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Evaluation interval",
            "driftmon_evaluation_interval_seconds: how often statistics are recomputed.",
            [target(f"driftmon_evaluation_interval_seconds{{{sel}}}", "{{instance}}")],
            unit="s",
            steps=thresholds((None, BLUE)),
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Total consumer lag",
            "Records behind the partitions' high watermarks, summed.",
            [target(f"sum(driftmon_consumer_lag{{{sel}}})", "lag")],
            steps=thresholds((None, GREEN), (10000, YELLOW)),
        ),
        4,
        4,
    )

    b.row("Throughput")
    b.add(
        timeseries(
            "Records consumed",
            "Records read from Kafka per second, per topic.",
            [
                target(
                    f"sum by (topic) ({rate('driftmon_records_consumed_total', sel)})",
                    "{{topic}}",
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
            "Events accepted per model",
            "Events routed to a model's windows per second.",
            [
                target(
                    f"sum by (model) ({rate('driftmon_events_accepted_total', sel)})",
                    "{{model}}",
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
            "Rejected records by reason",
            "Records rejected whole, per second, by topic and reason. DriftmonHighRejectRate "
            "warns above 1% of the records consumed.",
            [
                target(
                    f"sum by (topic, reason) "
                    f"(rate(driftmon_records_rejected_total{{{sel}}}[$__rate_interval]))",
                    "{{topic}}: {{reason}}",
                )
            ],
            unit="cps",
            min_value=0,
            custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}},
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Consumer lag",
            "Records behind the high watermark, per topic and partition.",
            [target(f"driftmon_consumer_lag{{{sel}}}", "{{topic}}/{{partition}}")],
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Event-time freshness",
            "Seconds since the event time of the newest applied record (per topic) and since "
            "each model's watermark.",
            [
                target(f"time() - driftmon_last_record_timestamp_seconds{{{sel}}}", "{{topic}}"),
                target(
                    f"time() - driftmon_model_watermark_timestamp_seconds{{{sel}}}",
                    "watermark {{model}}",
                ),
            ],
            unit="s",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Invalid feature values",
            "The 10 features receiving the most values of the wrong type, per second.",
            [
                target(
                    f"topk(10, sum by (model, feature) "
                    f"(rate(driftmon_feature_invalid_values_total{{{sel}}}[$__rate_interval])))",
                    "{{model}} / {{feature}}",
                )
            ],
            unit="cps",
            min_value=0,
        ),
        12,
        8,
    )

    b.row("Evaluation and durability")
    b.add(
        timeseries(
            "Evaluation duration",
            "Time to compute every statistic of every model once (quantiles of "
            "driftmon_evaluation_duration_seconds).",
            quantiles("driftmon_evaluation_duration_seconds", sel),
            unit="s",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Batch duration",
            "Time to decode and apply one polled batch (quantiles of "
            "driftmon_batch_duration_seconds).",
            quantiles("driftmon_batch_duration_seconds", sel),
            unit="s",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Time since last evaluation",
            "Seconds since the last evaluation, for the daemon and for each model.",
            [
                target(f"time() - driftmon_last_evaluation_timestamp_seconds{{{sel}}}", "daemon"),
                target(
                    f"time() - driftmon_model_last_evaluation_timestamp_seconds{{{sel}}}",
                    "{{model}}",
                ),
            ],
            unit="s",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Evaluations",
            "Evaluation cycles completed per second.",
            [
                target(
                    f"sum(rate(driftmon_evaluations_total{{{sel}}}[$__rate_interval]))",
                    "evaluations/s",
                )
            ],
            unit="ops",
            min_value=0,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Checkpoints and offset commits",
            "Checkpoint writes and Kafka offset commits per second, by result. Offsets are "
            "committed only after a successful checkpoint.",
            [
                target(
                    f"sum by (result) ({rate('driftmon_checkpoints_total', sel)})",
                    "checkpoint {{result}}",
                ),
                target(
                    f"sum by (result) "
                    f"(rate(driftmon_offset_commits_total{{{sel}}}[$__rate_interval]))",
                    "offset commit {{result}}",
                ),
            ],
            unit="ops",
            min_value=0,
            overrides=[
                by_name("checkpoint failure", color=fixed(RED)),
                by_name("offset commit failure", color=fixed("orange")),
            ],
        ),
        24,
        8,
    )
    return dashboard(
        "driftmon-pipeline",
        "driftmon / pipeline",
        "The driftmon daemon: health, throughput, rejects, consumer lag, evaluation cost, "
        "checkpoints.",
        b,
        [
            query_variable(
                "instance", "Instance", "label_values(driftmon_build_info, instance)", multi=True
            )
        ],
    )


DASHBOARDS = {
    "driftmon-overview.json": overview,
    "driftmon-feature.json": feature,
    "driftmon-pipeline.json": pipeline,
}


def render() -> dict[str, str]:
    """File name -> JSON text (2-space indent, trailing newline) of every dashboard."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboards to grafana/dashboards/, or with --check report stale files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}; run python grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
