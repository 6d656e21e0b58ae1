"""The false-alarm simulation's NewCategories rule is the shipped rule, checked by promtool.

`bench.false_alarms.new_categories_rule` counts the `DriftmonFeatureNewCategories` alerts of
the simulated streams (docs/statistics.md, 5). Here a grid of categorical features (unseen
share, the reference's p0 or no p0 series at all, new-category p-value, per-feature
thresholds; values on and just around every boundary) goes through the daemon's own metric
path (`FeatureResult` -> `DriftCollector` -> the text exposition /metrics serves) into a
`promtool test rules` case against the shipped rules file, which must fire for exactly the
features the simulation's predicate flags.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench.false_alarms import new_categories_rule
from monitor.metrics import DriftCollector
from monitor.model import (
    Correction,
    FeatureKind,
    FeatureResult,
    ModelEvaluation,
    Snapshot,
    Thresholds,
)
from tests.support.ops_services import RULES_FILE, assert_tool_ok, run_tool

SCRAPE = {"job": "driftmon", "instance": "driftmon:9108"}
STEPS = 15  # one sample a minute; the rule has `for: 10m`
ALERT = "DriftmonFeatureNewCategories"

#: p0 = None: the feature exports no p0 series (a daemon from before it existed).
P0S = (None, 0.0, 0.0216, 0.04)
THRESHOLDS = (0.01, 0.02)
PVALUES = (1e-6, 9.99e-6, 1e-5, 1e-4, 0.000999, 0.5)


def grid() -> list[tuple[str, float, float | None, float, float]]:
    """(feature, unseen share, p0, p-value, unseen threshold) around every boundary."""
    rows: list[tuple[str, float, float | None, float, float]] = []
    for p0, threshold, pvalue in itertools.product(P0S, THRESHOLDS, PVALUES):
        edge = (p0 or 0.0) + threshold
        for unseen in (0.005, edge - 1e-4, edge, edge + 1e-4, 0.2):
            rows.append((f"c{len(rows):03d}", unseen, p0, pvalue, threshold))
    return rows


def exposition(rows: list[tuple[str, float, float | None, float, float]]) -> str:
    """The /metrics text of one evaluation holding every row as a categorical feature."""
    results = tuple(
        FeatureResult(
            name=name,
            kind=FeatureKind.CATEGORICAL,
            reference_samples=10_000,
            current_samples=1_200,
            reference_missing_ratio=0.0,
            current_missing_ratio=0.0,
            evaluated=True,
            unseen_category_ratio=unseen,
            new_category_pvalue=pvalue,
            reference_unseen_estimate=p0,
            thresholds=Thresholds(unseen_category_ratio_warning=threshold),
        )
        for name, unseen, p0, pvalue, threshold in rows
    )
    evaluation = ModelEvaluation("fraud", 1.0, results, Correction.BH, 1e-3, reference_id="r")
    registry = CollectorRegistry()
    DriftCollector(registry, Snapshot(created_at=1.0, models=(evaluation,)))
    return generate_latest(registry).decode()


def simulated(
    rows: list[tuple[str, float, float | None, float, float]], *, p0_known: bool = True
) -> list[str]:
    """The features the simulation's predicate flags (p0_known=False: the rule before p0)."""
    flagged = []
    for name, unseen, p0, pvalue, threshold in rows:
        p0_value = math.nan if p0 is None or not p0_known else p0
        fires = new_categories_rule(
            np.asarray([unseen]), np.asarray([p0_value]), np.asarray([pvalue]), threshold
        )
        if bool(fires[0]):
            flagged.append(name)
    return flagged


def promtool_case(text: str, alerting: list[str]) -> dict[str, Any]:
    """At 11m the alert fires for exactly `alerting` (promtool compares the whole result)."""
    series = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {**sample.labels, **SCRAPE}
            matchers = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            series.append(
                {"series": f"{sample.name}{{{matchers}}}", "values": f"{sample.value!r}x{STEPS}"}
            )
    expected = [
        {
            "labels": (
                f'ALERTS{{alertname="{ALERT}",alertstate="firing",category="data_quality",'
                f'feature="{feature}",job="driftmon",model="fraud",severity="warning"}}'
            ),
            "value": 1,
        }
        for feature in alerting
    ]
    return {
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            {
                "expr": f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}',
                "eval_time": "11m",
                "exp_samples": expected,
            }
        ],
    }


def run_case(tmp_path: Path, case: dict[str, Any]) -> Any:
    """Run one promtool case against a copy of the shipped rules file."""
    (tmp_path / RULES_FILE.name).write_text(RULES_FILE.read_text())
    test_file = tmp_path / "new_categories.test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [RULES_FILE.name], "tests": [case]}))
    return run_tool(["promtool", "test", "rules", test_file.name], cwd=tmp_path)


def test_the_simulated_new_categories_rule_is_the_shipped_rule(tmp_path: Path) -> None:
    """promtool fires the shipped rule for exactly the grid features the simulation flags."""
    rows = grid()
    flagged = simulated(rows)
    assert 20 < len(flagged) < len(rows) / 2  # the grid has both outcomes in plenty
    text = exposition(rows)
    assert "driftmon_feature_reference_unseen_estimate" in text
    assert "SUCCESS" in assert_tool_ok(run_case(tmp_path, promtool_case(text, flagged)))


def test_the_rule_before_p0_is_not_the_shipped_rule(tmp_path: Path) -> None:
    """The old predicate (unseen > threshold, p0 ignored) flags features the shipped rule
    does not, and promtool says so: the case above can fail."""
    rows = grid()
    old = simulated(rows, p0_known=False)
    new = simulated(rows)
    assert set(new) < set(old)
    proc = run_case(tmp_path, promtool_case(exposition(rows), old))
    assert proc.returncode != 0
    assert ALERT in proc.stdout + proc.stderr
