"""Static tests of the Grafana dashboards and provisioning (no Grafana server installs here).

Each dashboard is validated against Grafana's dashboard JSON schema (vendored, see
tests/ops/schemas/README.md) and round-tripped through grafana-foundation-sdk 11.6; panel ids,
grid positions and datasource uids are checked; every PromQL expression is parsed by
promtool after substituting template variables and may only use driftmon's metrics.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from monitor.model import THRESHOLD_KEYS
from tests.support.ops_services import DASHBOARDS, DEPLOY, GRAFANA, find_tool, load_yaml

from .dashboards import dashboard_files, load, panels, queries, variable_selectors
from .promql import (
    DEPRECATED_METRICS,
    DRIFTMON_METRICS,
    FLEET_STATE_METRICS,
    is_driftmon_metric,
    label_values_selector,
    metric_names,
    substitute_grafana,
    syntax_errors,
)

SCHEMA = Path(__file__).parent / "schemas" / "grafana-dashboard.schema.json"
DATASOURCE_UID = "driftmon-prometheus"
EXPECTED = {
    "driftmon-overview.json": "driftmon-overview",
    "driftmon-feature.json": "driftmon-feature",
    "driftmon-pipeline.json": "driftmon-pipeline",
}
#: Concrete values for the dashboards' template variables when checking PromQL.
VARIABLES = {"model": "fraud", "feature": "amount", "instance": "driftmon:9108"}

DASHBOARD_FILES = dashboard_files()


def exprs(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expression) of every panel query, with this module's variable values."""
    return queries(board, VARIABLES)


def test_the_three_dashboards_exist_with_fixed_uids() -> None:
    """grafana/dashboards holds exactly the overview, feature and pipeline dashboards."""
    assert {p.name: load(p)["uid"] for p in DASHBOARD_FILES} == EXPECTED


def test_dashboards_are_generated_from_the_script() -> None:
    """The committed JSON equals the output of grafana/generate.py (edit the script, not JSON)."""
    proc = subprocess.run(
        [sys.executable, str(GRAFANA / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


#: The query keys of a Prometheus annotation, which the vendored schema does not model (its
#: AnnotationTarget only knows the built-in Grafana datasource).
PROMETHEUS_ANNOTATION_KEYS = {
    "expr": str,
    "step": str,
    "titleFormat": str,
    "textFormat": str,
    "tagKeys": str,
    "useValueForTime": bool,
}


def _without_prometheus_annotation_queries(board: dict[str, Any]) -> dict[str, Any]:
    """`board` with the Prometheus query keys of its annotations checked by type and removed."""
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation.get("datasource", {}).get("type") != "prometheus":
            continue
        for key, kind in PROMETHEUS_ANNOTATION_KEYS.items():
            assert isinstance(annotation.pop(key), kind), (annotation.get("name"), key)
    return board


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_matches_grafana_json_schema(path: Path) -> None:
    """The dashboard validates against Grafana's dashboard schema (no unknown keys; the query
    keys of Prometheus annotations are checked by type)."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in validator.iter_errors(_without_prometheus_annotation_queries(load(path)))
    ]
    assert errors == []


@pytest.mark.parametrize("name", ["driftmon-overview.json", "driftmon-feature.json"])
def test_drift_dashboards_mark_every_reference_activation(name: str) -> None:
    """The overview and feature dashboards annotate each reference activation of their
    models, from a PromQL expression promtool parses."""
    board = load(DASHBOARDS / name)
    (annotation,) = [a for a in board["annotations"]["list"] if a.get("expr")]
    assert annotation["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
    assert annotation["enable"] is True
    expr = substitute_grafana(annotation["expr"], VARIABLES)
    assert metric_names(expr) == {"driftmon_reference_activations_total"}
    assert syntax_errors(find_tool("promtool"), [expr]) == []


def test_schema_rejects_an_unknown_panel_key() -> None:
    """The vendored schema is strict: a misspelt `gridpos` key is an error."""
    board = load(DASHBOARD_FILES[0])
    board["panels"][1]["gridpos"] = board["panels"][1].pop("gridPos")
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    assert any("gridpos" in e.message for e in validator.iter_errors(board))


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_round_trips_through_foundation_sdk(path: Path) -> None:
    """grafana-foundation-sdk 11.6 parses the dashboard and its panels."""
    board = load(path)
    again = json.loads(JSONEncoder().encode(Dashboard.from_json(board)))
    assert again["uid"] == board["uid"]

    def essentials(d: dict[str, Any]) -> list[Any]:
        return [
            (
                p["id"],
                p["type"],
                p["title"],
                p["gridPos"],
                [t.get("expr") for t in p.get("targets", [])],
            )
            for p in d["panels"]
        ]

    assert essentials(again) == essentials(board)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_panel_ids_unique_and_grid_positions_valid(path: Path) -> None:
    """Panel ids are unique; every panel has a gridPos inside 24 columns; none overlap."""
    board = load(path)
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], int] = {}
    for p in panels(board):
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_every_query_uses_the_provisioned_datasource(path: Path) -> None:
    """Panels, targets and variables all refer to the datasource uid driftmon-prometheus."""
    board = load(path)
    refs = [v["datasource"] for v in board["templating"]["list"]]
    for p in panels(board):
        if p["type"] != "row":
            refs.append(p["datasource"])
            refs.extend(t["datasource"] for t in p["targets"])
            assert p["targets"], f"panel {p['title']!r} has no query"
    assert refs
    assert all(r == {"type": "prometheus", "uid": DATASOURCE_UID} for r in refs)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_every_expression_parses(path: Path) -> None:
    """promtool parses every panel query and variable selector (variables substituted)."""
    board = load(path)
    checked = [e for _, e in exprs(board)] + variable_selectors(board, VARIABLES)
    assert all("$" not in q for q in checked), "an unsubstituted variable is left"
    assert syntax_errors(find_tool("promtool"), checked) == []


def test_the_syntax_check_reports_a_broken_expression() -> None:
    """The promtool-based syntax check names an expression that does not parse."""
    errors = syntax_errors(find_tool("promtool"), ["driftmon_ready", "sum(rate(x[5m])"])
    assert len(errors) == 1
    assert "sum(rate(x[5m])" in errors[0]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboards_use_only_exported_metrics(path: Path) -> None:
    """Every metric in a query or variable is one driftmon exports (histograms: _bucket)."""
    board = load(path)
    checked = [e for _, e in exprs(board)] + variable_selectors(board, VARIABLES)
    used = {name for q in checked for name in metric_names(q)}
    assert used
    assert {n for n in used if not is_driftmon_metric(n)} == set()


def test_every_exported_metric_is_shown_somewhere() -> None:
    """Taken together, the dashboards show every metric driftmon exports, the fleet's state
    series included."""
    used = set()
    for path in DASHBOARD_FILES:
        for _, expr in exprs(load(path)):
            used |= {n.removesuffix("_bucket") for n in metric_names(expr)}
    assert DRIFTMON_METRICS - DEPRECATED_METRICS - used == set()
    assert FLEET_STATE_METRICS - used == set()
    assert DEPRECATED_METRICS & used == set()


def test_feature_dashboard_draws_every_threshold_with_its_signal() -> None:
    """Each (signal, severity) threshold a feature exports is drawn in a panel that also
    queries that signal's statistic, selected for the dashboard's feature."""
    board = load(DASHBOARDS / "driftmon-feature.json")
    signal_metric = {
        "psi": "driftmon_feature_psi",
        "ks": "driftmon_feature_ks_statistic",
        "tvd": "driftmon_feature_tvd",
        "missing_ratio_change": "driftmon_feature_missing_ratio",
        "out_of_range_ratio": "driftmon_feature_out_of_range_ratio",
        "unseen_category_ratio": "driftmon_feature_unseen_category_ratio",
        "new_category_pvalue": "driftmon_feature_new_category_pvalue",
        "drift_qvalue": "driftmon_feature_drift_qvalue",
    }
    drawn = set()
    for p in panels(board):
        exprs_ = [t["expr"] for t in p.get("targets", [])]
        for expr in exprs_:
            for signal, severity in re.findall(
                r'driftmon_feature_threshold\{model="\$model",feature="\$feature",'
                r'signal="(\w+)",severity="(\w+)"\}',
                expr,
            ):
                assert any(signal_metric[signal] in e for e in exprs_), (p["title"], signal)
                drawn.add((signal, severity))
    exported = {
        (signal.value, severity.value)
        for keys in THRESHOLD_KEYS.values()
        for signal, severity in keys
    }
    assert drawn == exported | {("drift_qvalue", "decision")}


def test_feature_dashboard_variables() -> None:
    """driftmon / feature selects one model and one of that model's features via label_values."""
    board = load(DASHBOARDS / "driftmon-feature.json")
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert label_values_selector(variables["model"]["query"]) == (
        "driftmon_model_features",
        "model",
    )
    assert label_values_selector(variables["feature"]["query"]) == (
        'driftmon_feature_drift_detected{model="$model"}',
        "feature",
    )
    assert not variables["model"]["multi"] and not variables["feature"]["multi"]


def test_pipeline_quantiles_come_from_histogram_buckets() -> None:
    """Evaluation and batch duration panels compute p50/p90/p99 from the _bucket series."""
    board = load(DASHBOARDS / "driftmon-pipeline.json")
    by_title = {p["title"]: p for p in panels(board)}
    for title, histogram in [
        ("Evaluation duration", "driftmon_evaluation_duration_seconds_bucket"),
        ("Batch duration", "driftmon_batch_duration_seconds_bucket"),
    ]:
        queries = [t["expr"] for t in by_title[title]["targets"]]
        assert [q.split(",")[0] for q in queries] == [
            "histogram_quantile(0.5",
            "histogram_quantile(0.9",
            "histogram_quantile(0.99",
        ]
        assert all(histogram in q and "by (le)" in q for q in queries)


def test_datasource_provisioning_matches_dashboards() -> None:
    """The provisioned datasource has the uid the dashboards use and points at compose's
    Prometheus."""
    config = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = config["datasources"]
    assert (source["uid"], source["type"]) == (DATASOURCE_UID, "prometheus")
    assert source["url"] == "http://prometheus:9090"


def test_dashboard_provider_path_is_where_compose_mounts_the_dashboards() -> None:
    """The file provider reads the directory docker-compose mounts grafana/dashboards into."""
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "driftmon.yml")["providers"][0]
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    mounts = dict(v.rsplit(":", 2)[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["../grafana/dashboards"] == provider["options"]["path"]
    assert (DEPLOY / "../grafana/dashboards").resolve() == DASHBOARDS.resolve()
