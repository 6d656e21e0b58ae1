"""A threshold change in the daemon's config changes which features alert, same rule file.

Two configs differ only in feature thresholds. For each, the daemon's own metric path
(`load_settings` -> `feature_specs` -> `DriftCollector` -> the text exposition /metrics
serves) renders one evaluation in which `amount` and `latency` have the same out-of-range
ratio (8 %), missing-value change (+15 points), PSI (0.4) and KS D (0.35), drift detected.
The exposition becomes the input series of a `promtool test rules` case against the shipped
rules file, and the `ALERTS` series say which features alert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import load_settings
from monitor.metrics import DriftCollector
from monitor.model import Correction, FeatureResult, ModelEvaluation, Snapshot
from tests.support.ops_services import RULES_FILE, assert_tool_ok, run_tool

SCRAPE = {"job": "driftmon", "instance": "driftmon:9108"}
FEATURES = ("amount", "latency")
STEPS = 15  # one sample a minute; every threshold alert has `for: 10m`

#: alertname -> the signal whose threshold each config sets per feature.
ALERT_SIGNALS = {
    "DriftmonFeatureOutOfRange": ("out_of_range_ratio", "warning"),
    "DriftmonFeatureMissingIncrease": ("missing_ratio_change", "warning"),
    "DriftmonFeaturePsiCritical": ("psi", "critical"),
    "DriftmonFeatureKsCritical": ("ks", "critical"),
}
#: (amount, latency) thresholds of each config: each config alerts on the other feature.
CONFIGS = {
    "amount-low": {"out_of_range_ratio": (0.05, 0.2), "missing_ratio_change": (0.1, 0.2),
                   "psi": (0.25, 0.5), "ks": (0.2, 0.5)},
    "latency-low": {"out_of_range_ratio": (0.2, 0.05), "missing_ratio_change": (0.2, 0.1),
                    "psi": (0.5, 0.25), "ks": (0.5, 0.2)},
}  # fmt: skip


def config(tmp_path: Path, name: str) -> Path:
    """A daemon config whose features carry the CONFIGS[name] thresholds."""
    features = []
    for i, feature in enumerate(FEATURES):
        levels = {s: {v: CONFIGS[name][s][i]} for s, v in ALERT_SIGNALS.values()}
        features.append({"name": feature, "kind": "numeric", "thresholds": levels})
    data = {
        "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["features"]},
        "models": [{"name": "fraud", "features": features}],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def exposition(config_path: Path) -> str:
    """The /metrics text of one evaluation with equal statistics for both features."""
    settings = load_settings(config_path, {})
    (model,) = settings.models
    results = tuple(
        FeatureResult(
            name=spec.name,
            kind=spec.kind,
            reference_samples=20_000,
            current_samples=5_000,
            reference_missing_ratio=0.1,
            current_missing_ratio=0.25,
            evaluated=True,
            psi=0.4,
            ks_statistic=0.35,
            out_of_range_ratio=0.08,
            qvalue=1e-9,
            drift_detected=True,
            drift_reasons=("ks", "psi"),
            thresholds=spec.thresholds,
        )
        for spec in model.feature_specs(settings.evaluation)
    )
    evaluation = ModelEvaluation("fraud", 1.0, results, Correction.BH, 1e-3, reference_id="r")
    registry = CollectorRegistry()
    DriftCollector(registry, Snapshot(created_at=1.0, models=(evaluation,)))
    return generate_latest(registry).decode()


def input_series(text: str) -> list[dict[str, str]]:
    """Every sample of the exposition as a promtool input series with the scrape's labels."""
    series = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {**sample.labels, **SCRAPE}
            matchers = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            series.append(
                {"series": f"{sample.name}{{{matchers}}}", "values": f"{sample.value}x{STEPS}"}
            )
    return series


def promtool_case(text: str, alerting: str) -> dict[str, Any]:
    """A promtool test: at 11m each threshold alert fires for `alerting` only (promtool
    compares the whole result, so an alert on the other feature fails it)."""
    return {
        "interval": "1m",
        "input_series": input_series(text),
        "promql_expr_test": [
            {
                "expr": f'ALERTS{{alertname="{alertname}",alertstate="firing"}}',
                "eval_time": "11m",
                "exp_samples": [{"labels": alert_series(alertname, alerting), "value": 1}],
            }
            for alertname in ALERT_SIGNALS
        ],
    }


def alert_series(alertname: str, feature: str) -> str:
    """The ALERTS series of `alertname` firing for fraud/`feature` in the scraped job (the
    per-feature alerts aggregate over replicas, so they carry no instance)."""
    critical = alertname in ("DriftmonFeaturePsiCritical", "DriftmonFeatureKsCritical")
    labels = {
        "alertname": alertname,
        "alertstate": "firing",
        "category": "drift" if critical else "data_quality",
        "severity": "critical" if critical else "warning",
        "model": "fraud",
        "feature": feature,
        "job": SCRAPE["job"],
    }
    return "ALERTS{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


@pytest.mark.parametrize(
    ("name", "alerting"), [("amount-low", "amount"), ("latency-low", "latency")]
)
def test_the_config_decides_which_feature_alerts_with_the_same_rules(
    tmp_path: Path, name: str, alerting: str
) -> None:
    """Equal statistics; each config's lower thresholds make exactly its feature alert."""
    text = exposition(config(tmp_path, name))
    (tmp_path / RULES_FILE.name).write_text(RULES_FILE.read_text())
    test_file = tmp_path / "config.test.yml"
    case = promtool_case(text, alerting)
    test_file.write_text(yaml.safe_dump({"rule_files": [RULES_FILE.name], "tests": [case]}))
    assert "SUCCESS" in assert_tool_ok(
        run_tool(["promtool", "test", "rules", test_file.name], cwd=tmp_path)
    )


def test_the_promtool_case_fails_for_the_other_feature(tmp_path: Path) -> None:
    """The same exposition checked against the other feature fails, so the case can fail."""
    text = exposition(config(tmp_path, "amount-low"))
    (tmp_path / RULES_FILE.name).write_text(RULES_FILE.read_text())
    test_file = tmp_path / "config.test.yml"
    case = promtool_case(text, "latency")
    test_file.write_text(yaml.safe_dump({"rule_files": [RULES_FILE.name], "tests": [case]}))
    proc = run_tool(["promtool", "test", "rules", test_file.name], cwd=tmp_path)
    assert proc.returncode != 0
    assert 'feature="amount"' in proc.stdout + proc.stderr
