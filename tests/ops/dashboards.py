"""Read the Grafana dashboards' queries, for static checks and for evaluation on a live Prometheus.

`queries` substitutes template variables and Grafana's interval macros, so every expression
can be parsed by promtool or sent to Prometheus's /api/v1/query; `evaluate` does the latter
(the end-to-end tests use it to prove each panel returns data from a real driftmon).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.ops_services import DASHBOARDS, http_json

from .promql import label_values_selector, substitute_grafana

#: Concrete values for the dashboards' template variables.
DEFAULT_VARIABLES: Mapping[str, str] = {
    "model": "fraud",
    "feature": "amount",
    "instance": ".+",
}


def dashboard_files() -> list[Path]:
    """The committed dashboard JSON files, sorted."""
    return sorted(DASHBOARDS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    """A dashboard's JSON."""
    return dict(json.loads(path.read_text()))


def panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for p in board["panels"]:
        yield p
        yield from p.get("panels", [])


def queries(
    board: Mapping[str, Any], variables: Mapping[str, str] = DEFAULT_VARIABLES
) -> list[tuple[str, str]]:
    """(where, expression) of every panel query, variables and macros substituted."""
    return [
        (
            f"{board['uid']}: panel {p['id']} {p['title']!r} ref {t['refId']}",
            substitute_grafana(t["expr"], variables),
        )
        for p in panels(board)
        for t in p.get("targets", [])
    ]


def variable_selectors(
    board: Mapping[str, Any], variables: Mapping[str, str] = DEFAULT_VARIABLES
) -> list[str]:
    """The series selectors of the dashboard's `label_values(selector, label)` variables."""
    selectors = []
    for v in board["templating"]["list"]:
        selector, _label = label_values_selector(v["query"])
        if selector:
            selectors.append(substitute_grafana(selector, variables))
    return selectors


def evaluate(prometheus_url: str, exprs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Instant-query each expression; where -> result list, or the error message (a str)."""
    results: dict[str, Any] = {}
    for where, expr in exprs:
        url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            body = http_json(url)
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") == "success":
            results[where] = body["data"]["result"]
        else:
            results[where] = f"{body.get('errorType')}: {body.get('error')} in {expr}"
    return results
