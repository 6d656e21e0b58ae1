"""Shared building blocks of driftmon's Grafana dashboards: queries, panels, layout, envelope.

Every dashboard module (`overview`, `feature`, `pipeline`) builds its panels with these helpers,
so every panel uses the one fixed datasource uid (`driftmon-prometheus`, see
grafana/provisioning/datasources/prometheus.yml), sequential ids and explicit grid positions.
Stdlib only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

DATASOURCE: JSON = {"type": "prometheus", "uid": "driftmon-prometheus"}
SCHEMA_VERSION = 39
GRID_WIDTH = 24
OUT_DIR = Path(__file__).resolve().parent / "dashboards"

# Default PSI bands (README.md, "Thresholds"), for panels over many features; where a panel
# shows a single feature, its own thresholds are drawn from driftmon_feature_threshold.
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


#: The target labels that tell the replicas of one job apart: Prometheus' `instance`, and the
#: `pod` the Kubernetes service discovery adds.
REPLICA_LABELS = "instance, pod"


def across_replicas(expr: str) -> str:
    """`expr` once per series however many replicas export it.

    The replicas of a fleet (state.backend: kafka) export the same model and feature series,
    told apart only by their target labels; `max without (instance, pod)` keeps every other
    label and draws one line where N replicas would draw N. One replica: the same series.
    """
    return f"max without ({REPLICA_LABELS}) ({expr})"


def fleet_target(
    expr: str, legend: str = "", *, instant: bool = False, table: bool = False
) -> JSON:
    """A `target` of a model or feature statistic, aggregated `across_replicas`."""
    return target(across_replicas(expr), legend, instant=instant, table=table)


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
    given = {
        "thresholds": steps,
        "mappings": mappings,
        "custom": custom,
        "decimals": decimals,
        "min": min_value,
        "max": max_value,
        "color": color,
    }
    defaults: JSON = {"unit": unit, **{k: v for k, v in given.items() if v is not None}}
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


def psi_sorted_table(exclude: Sequence[str], rename: dict[str, str]) -> list[JSON]:
    """Table transformations: merge the instant queries, drop `exclude` and Time, rename the
    value columns, most drifting (largest PSI) first."""
    hidden = {name: True for name in ("Time", *exclude)}
    return [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": hidden, "renameByName": rename}},
        {"id": "sortBy", "options": {"sort": [{"field": "PSI", "desc": True}]}},
    ]


def feature_and_psi_columns(link_title: str, link_url: str) -> list[JSON]:
    """Table overrides: the feature column links to driftmon / feature; PSI cells take the
    colour of their band."""
    return [
        by_name("feature", links=[{"title": link_title, "url": link_url}]),
        by_name(
            "PSI",
            thresholds=PSI_STEPS,
            decimals=3,
            custom={"cellOptions": {"type": "color-background"}},
        ),
    ]


def fixed(color: str) -> JSON:
    """A fixed field colour."""
    return {"mode": "fixed", "fixedColor": color}


DASHED = {"dash": [10, 10], "fill": "dash"}
DOTTED = {"dash": [0, 10], "fill": "dot"}

#: Line style of each threshold level (the `severity` label): colour and dash pattern.
LEVEL_STYLE: dict[str, tuple[str, JSON]] = {
    "warning": (YELLOW, DASHED),
    "critical": (RED, DASHED),
    "decision": (BLUE, DOTTED),
}


def threshold_line(sel: str, signal: str, severity: str, legend: str) -> JSON:
    """A query of one feature's threshold series: `driftmon_feature_threshold{signal,severity}`,
    aggregated `across_replicas`."""
    return fleet_target(
        f'driftmon_feature_threshold{{{sel},signal="{signal}",severity="{severity}"}}', legend
    )


def threshold_style(legend: str, severity: str) -> JSON:
    """The override drawing the threshold line called `legend` in its level's style."""
    color, dash = LEVEL_STYLE[severity]
    return by_name(legend, color=fixed(color), **{"custom.lineStyle": dash})


def with_thresholds(
    sel: str, signals: Sequence[JSON], lines: Sequence[tuple[str, str, str]]
) -> JSON:
    """`targets` and `overrides` keyword arguments of a panel: the signal queries, then one
    styled line per (signal, severity, legend) threshold of the feature selected by `sel`."""
    targets = [*signals, *(threshold_line(sel, s, v, legend) for s, v, legend in lines)]
    return {"targets": targets, "overrides": [threshold_style(legend, v) for _, v, legend in lines]}


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


def reference_activations(model_selector: str) -> JSON:
    """An annotation at every reference activation of the selected models (registry mode:
    operator, rollback, followed model version, warm-up), from the activation counter."""
    return {
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": "purple",
        "name": "Reference activations",
        "expr": (
            "sum by (model, cause) (changes(driftmon_reference_activations_total"
            f"{{{model_selector}}}[1m])) > 0"
        ),
        "step": "1m",
        "titleFormat": "reference activated",
        "textFormat": "{{model}}: {{cause}}",
        "tagKeys": "model,cause",
        "useValueForTime": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    board: Board,
    variables: list[JSON],
    annotations: Sequence[JSON] = (),
) -> JSON:
    """The dashboard envelope: links to its siblings (tag `driftmon`), 6h range, 30s refresh;
    `annotations` after Grafana's built-in one."""
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
                },
                *annotations,
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
