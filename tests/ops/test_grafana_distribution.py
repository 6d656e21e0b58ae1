"""The Grafana side of "what changed": the feature dashboard's reference-vs-current bar chart
and the overview's links from each flagged feature to it (static checks of the committed JSON;
the end-to-end test evaluates the queries on a live Prometheus scraping a real daemon)."""

from __future__ import annotations

from typing import Any

from monitor.metrics import bin_label

from .dashboards import dashboard_files, load, panels


def _board(uid: str) -> dict[str, Any]:
    (board,) = [b for b in map(load, dashboard_files()) if b["uid"] == uid]
    return board


def _panel(board: dict[str, Any], title: str) -> dict[str, Any]:
    (found,) = [p for p in panels(board) if p["title"] == title]
    return found


def test_feature_dashboard_draws_both_windows_per_bin_in_bin_order() -> None:
    """A bar chart of driftmon_feature_bin_ratio, reference then current, x = bin, sorted."""
    board = _board("driftmon-feature")
    chart = _panel(board, "Reference vs current distribution")
    assert chart["type"] == "barchart"
    exprs = [t["expr"] for t in chart["targets"]]
    assert exprs == [
        f'max by (bin) (driftmon_feature_bin_ratio{{model="$model",feature="$feature",'
        f'window="{window}"}})'
        for window in ("reference", "current")
    ]
    assert all(t["instant"] and t["format"] == "table" for t in chart["targets"])
    assert chart["options"]["xField"] == "bin"
    steps = {t["id"]: t["options"] for t in chart["transformations"]}
    assert steps["organize"]["renameByName"] == {"Value #A": "reference", "Value #B": "current"}
    assert steps["sortBy"]["sort"] == [{"field": "bin", "desc": False}]
    assert chart["fieldConfig"]["defaults"]["unit"] == "percentunit"
    # The chart is the first thing under the decision stats.
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows[:2] == ["Decision", "What changed: reference vs current"]


def test_sorting_bin_labels_as_text_keeps_the_bin_order() -> None:
    """The sortBy on the bin label gives bin order for the largest picture (23 bins)."""
    names = [f"c{i}" for i in range(20)] + ["(other)", "(unseen)", "(missing)"]
    labels = [bin_label(i, name) for i, name in enumerate(names)]
    assert sorted(labels) == labels


def test_overview_links_each_flagged_feature_to_the_feature_dashboard() -> None:
    """The overview's flagged-features table lists drift_detected == 1 and links each feature."""
    overview = _board("driftmon-overview")
    table = _panel(overview, "Flagged features")
    assert "driftmon_feature_drift_detected" in table["targets"][0]["expr"]
    assert table["targets"][0]["expr"].endswith("== 1)")
    (override,) = [
        o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "feature"
    ]
    (links,) = [p["value"] for p in override["properties"] if p["id"] == "links"]
    url = links[0]["url"]
    assert url.startswith("/d/driftmon-feature/")
    assert "var-model=${__data.fields.model}" in url
    assert "var-feature=${__data.fields.feature}" in url
