"""Inhibition scenarios for the shipped Alertmanager config, shared by the static and live tests.

Each scenario is a set of alerts firing at once (labels built from the shipped rules, so a
changed severity or category changes the alert) and the ids of those that must be muted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.support.ops_services import alert_labels

_BASE = {"job": "driftmon", "instance": "driftmon-0:9108"}


@dataclass(frozen=True)
class Scenario:
    """Alerts firing together (id -> labels) and the ids the inhibit rules must mute."""

    name: str
    firing: dict[str, dict[str, str]]
    muted: frozenset[str] = field(default_factory=frozenset)


#: Alerts about one replica (a process); every other alert aggregates over the replicas of
#: its job and carries no instance label.
_PER_REPLICA = {
    "DriftmonDown",
    "DriftmonNotEvaluating",
    "DriftmonNotReady",
    "DriftmonConsumerLagGrowing",
    "DriftmonCheckpointFailing",
    "DriftmonOffsetCommitFailing",
    "DriftmonDecodeWorkerFailing",
    "DriftmonCheckpointCorrupt",
    "DriftmonConfigReloadFailed",
    "DriftmonStateLagHigh",
    "DriftmonReplicaIdle",
}


def _alert(alertname: str, **labels: str) -> dict[str, str]:
    if alertname in _PER_REPLICA:
        base = _BASE
    else:
        base = {"job": _BASE["job"]}
        labels = {k: v for k, v in labels.items() if k != "instance"}
    return alert_labels(alertname, **{**base, **labels})


def scenarios() -> list[Scenario]:
    """The scenarios, each proving one or more of the three inhibit rules."""
    return [
        Scenario(
            "a critical feature alert and a model-wide drift, daemon up",
            {
                "psi_amount": _alert("DriftmonFeaturePsiCritical", model="fraud", feature="amount"),
                "drift_amount": _alert("DriftmonFeatureDrift", model="fraud", feature="amount"),
                "range_amount": _alert(
                    "DriftmonFeatureOutOfRange", model="fraud", feature="amount"
                ),
                "drift_age": _alert("DriftmonFeatureDrift", model="fraud", feature="age"),
                "wide_churn": _alert("DriftmonModelWideDrift", model="churn"),
                "drift_tenure": _alert("DriftmonFeatureDrift", model="churn", feature="tenure"),
                "newcat_plan": _alert(
                    "DriftmonFeatureNewCategories", model="churn", feature="plan"
                ),
                "rejects": _alert("DriftmonHighRejectRate", topic="features"),
            },
            frozenset({"drift_amount", "range_amount", "drift_tenure"}),
        ),
        Scenario(
            "driftmon down: drift and data-quality alerts of its job are muted",
            {
                "down": _alert("DriftmonDown", replicas_up="none"),
                "drift_amount": _alert("DriftmonFeatureDrift", model="fraud", feature="amount"),
                "psi_amount": _alert("DriftmonFeaturePsiCritical", model="fraud", feature="amount"),
                "wide_fraud": _alert("DriftmonModelWideDrift", model="fraud"),
                "missing_age": _alert(
                    "DriftmonFeatureMissingIncrease", model="fraud", feature="age"
                ),
                "stalled": _alert("DriftmonStreamStalled", topic="features"),
                "not_ready": _alert("DriftmonNotReady"),
                "other_job": _alert(
                    "DriftmonFeatureDrift",
                    job="driftmon-eu",
                    instance="driftmon-eu-0:9108",
                    model="ads",
                    feature="clicks",
                ),
            },
            frozenset({"drift_amount", "psi_amount", "wide_fraud", "missing_age"}),
        ),
        Scenario(
            "one replica of a fleet down, the others up: nothing is muted",
            {
                "down": _alert("DriftmonDown", replicas_up="some"),
                "drift_amount": _alert("DriftmonFeatureDrift", model="fraud", feature="amount"),
                "missing_age": _alert(
                    "DriftmonFeatureMissingIncrease", model="fraud", feature="age"
                ),
            },
            frozenset(),
        ),
        Scenario(
            "no driftmon target at all (absent up): DriftmonDown has no instance label",
            {
                "down": {**alert_labels("DriftmonDown"), "job": "driftmon"},
                "drift_amount": _alert("DriftmonFeatureDrift", model="fraud", feature="amount"),
                "lag": _alert("DriftmonConsumerLagGrowing", topic="features"),
            },
            frozenset({"drift_amount"}),
        ),
    ]
