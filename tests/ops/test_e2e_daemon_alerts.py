"""The alerting chain with real processes: tansu -> `driftmon run` -> Prometheus -> Alertmanager.

Everything listens on 127.0.0.1 on free ports, and every process is stopped by a `with` block.
Prometheus loads a generated copy of the shipped rules with `for: 1s`. Alertmanager runs the
shipped routes and inhibit rules with local webhook URLs (one path per receiver), a 1 s
`group_wait` and a 6 s `group_interval`. The shipped files are not modified.

Timeline (two models on one single-partition topic, both with the demo feature set):

1. 2,000 clean warm-up events per model are produced at full speed (rate 0). They become each
   model's reference. A clean stream (1,000 events/s, event time = wall time) starts with the
   daemon. The window is 5 buckets of 1 s, evaluated every second, with min_samples 1,000.
   The allowed lateness is 15 s (see step 3).
2. Prometheus starts with a scrape-only config. Once it has itself scraped a ready daemon, a
   few bad records are produced (one each of invalid JSON, unknown model and bad timestamp,
   plus fraud events whose `amount` is a string). These give the reject and invalid-value
   panels real nonzero rates, far below DriftmonHighRejectRate's 1 %. Then a reload loads the
   rules and the Alertmanager, and the test waits until Prometheus lists that Alertmanager
   again. Why not load everything at start: Prometheus 2.42 scrapes first ~5 s after start
   (docs/architecture.md, Test components), and with `for: 1s` the
   `absent(up{job="driftmon"})` branch of DriftmonDown would fire in that gap. That is an
   artefact of the shortened `for:` (the shipped 5 m covers the gap), not an alert the daemon
   causes. Why wait: a reload empties
   the notifier's Alertmanager list for up to 5 s, and an alert that fires meanwhile would be
   dropped, or would reach Alertmanager with a past start and be flushed at once, before the
   alerts that inhibit it.
3. On the clean stream, no rule is pending or firing. Then the stream switches: model `fraud`
   follows scenario `mean-shift` (features `scenarios.affected_features("mean-shift")`, i.e.
   amount and score, drift) and `churn` stays clean. The drifting events' event time starts
   10 s ahead of the wall clock, a jump larger than the window. So the first window with
   min_samples values is entirely drifted, and every alert of a feature starts at the same
   rule evaluation, as it would in steady state. The drifted events are produced only once
   the daemon's watermark has reached the last clean event, so no clean event is polled
   after the jump: it would be older than the window's start (`outside_window`, a reject)
   and would feed DriftmonHighRejectRate in this short test.

Expected and checked:

- At the webhook: DriftmonFeatureDrift for fraud/amount at `driftmon-chat` (warning) and
  DriftmonFeaturePsiCritical for fraud/score at `driftmon-pager` (critical), with rendered
  annotations. Nothing else is notified. Prometheus has exactly these alerts plus
  DriftmonFeatureDrift for fraud/score, which Alertmanager holds back (inhibit rule 2: a
  critical alert on a feature mutes the warnings on that feature). There is no pipeline or
  data-quality alert and nothing for churn, whose features were evaluated on full windows.
  Feature amount gets PSI bands 0.1/0.5 in the daemon config: its PSI under this shift is
  ~0.2 (measured 0.17-0.23), too close to the default critical band of 0.25 for a
  deterministic split. Score's PSI (~1.7) is far above its default 0.25.
- Every Grafana panel query returns data from the live Prometheus, with the variables set to
  the drifting model and feature and the real instance. The only allowed exception is a query
  that reads a statistic the daemon exports for categorical features only (no series at all
  for the numeric feature amount); that query must then return data for fraud's categorical
  feature `country`. Every dashboard variable's `label_values` selector returns series.
- SIGTERM: the daemon exits 0, and DriftmonDown for its instance reaches `driftmon-pager`.
  Prometheus marks the daemon's series stale at the first failed scrape, so the drift alerts
  resolve at once, about a second before DriftmonDown fires. What inhibit rule 1 ("driftmon
  down: its drift and data-quality statistics are stale, so only DriftmonDown is worth a
  notification") changes in this single-instance case is that the drift alerts' "resolved"
  notifications are muted. The SIGTERM is timed just after a flush of the drift groups, so
  their next flush comes after DriftmonDown has reached Alertmanager. Without rule 1, that
  flush would deliver "resolved" for both drift alerts. The test checks that it delivers
  nothing.

If inhibit rule 1 or rule 2 is deleted from the Alertmanager copy, this test fails (checked
by hand).

A second test proves per-feature thresholds end to end. Model `sensors` has two numeric
features, `inlet` and `outlet`, that carry the same value in every event, so they have the same
out-of-range ratio (about 10 %: one value in ten is far above the warm-up reference's range).
Their configured out-of-range thresholds differ (5 % and 20 %): the same shipped rule sends
DriftmonFeatureOutOfRange for `inlet` to the webhook and nothing for `outlet`. Their drift
decision floors are set out of reach (KS D 1, PSI 100), so no drift alert muddies the picture:
the decision floors, too, are per feature.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pytest

from monitor.errors import RejectReason
from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.histogram import ModelLayout
from monitor.model import DecisionPolicy, FeatureKind, FeatureSpec
from monitor.reference import fit_profile, layout_for
from monitor.source import KafkaSink
from monitor.tools.scenarios import DEMO_FEATURES, EventGenerator, affected_features
from monitor.tools.simulate import run_simulation
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import DaemonProcess, Metrics, daemon_config, write_config
from tests.support.ops_services import (
    AlertmanagerServer,
    PrometheusServer,
    WebhookReceiver,
    alert_labels,
    write_alertmanager_config,
    write_fast_rules,
    write_prometheus_config,
)
from tests.support.waiting import holds_for, sleep_until, wait_until

from .dashboards import dashboard_files, evaluate, load, queries, variable_selectors
from .promql import FLEET_STATE_METRICS, metric_names, reads_only_opt_in_series

pytestmark = pytest.mark.e2e

DRIFTING, CLEAN = "fraud", "churn"
MODELS = (DRIFTING, CLEAN)
SCENARIO = "mean-shift"
DRIFTED = affected_features(SCENARIO)  # {"amount", "score"}
PSI_BANDS = {"amount": (0.1, 0.5)}  # (warning, critical); the other features keep the defaults
KS_CRITICAL = 0.95  # out of reach: DriftmonFeatureKsCritical is left to the promtool tests
CRITICAL = frozenset({"score"})  # PSI above its critical band: DriftmonFeaturePsiCritical
WARNING = DRIFTED - CRITICAL  # a drift below the critical band: DriftmonFeatureDrift only
PANEL_FEATURE = "amount"  # the drifting (numeric) feature the feature dashboard is shown for
CATEGORICAL = next(s.name for s in DEMO_FEATURES if s.kind is FeatureKind.CATEGORICAL)

WARMUP_EVENTS = 2_000
RATE = 1_000.0  # events/s over both models
# The events are deterministic (seeded generators, fixed chunking): only which slice of them a
# window holds depends on timing. A warm-up reference is one sample whose error lasts as long as
# it does: WARMUP_SEED's `age` reference of churn is a 1-in-128 draw (KS p = 0.0078 against the
# true law), and without the KS noise floor, windows of the clean streams reached q = 8e-4 < 1e-3
# on the KS leg (D = 0.07 > ks_floor 0.05), so the clean model drifted in runs whose timing hit
# them. test_no_window_of_the_clean_streams_is_near_the_decision_level pins the fix.
WARMUP_SEED = 1
CLEAN_SEED, DRIFT_SEED = 2, 3  # the stream's phases (the drifting phase: churn is clean)
EVENT_TIME_JUMP_S = 10.0  # > window length: the first drifted window holds no clean event
# Lateness > the jump (kept from before the drift gate): a clean straggler would be
# outside_window rather than too_late.
WINDOW = {"bucket": "1s", "length": "5s", "allowed_lateness": "15s"}
# Windows of 1,000-2,500 events evaluated every second, alerts `for: 1s`: the KS noise floor
# (docs/statistics.md, 5) keeps the clean model's maximum over time below the decision.
KS_NOISE_MULTIPLE = 3.1
MIN_SAMPLES = 1000
EVALUATION = {"interval": "1s", "min_samples": MIN_SAMPLES, "ks_noise_multiple": KS_NOISE_MULTIPLE}

GROUP_INTERVAL_S = 6.0  # Alertmanager group_interval: how often a group flushes changes
TICK_MARGIN_S = 0.3  # SIGTERM this long after a drift-group flush
SETTLE_S = 2.0  # after the expected notifications, time for anything unexpected to show

BAD_REASONS = (RejectReason.INVALID_JSON, RejectReason.UNKNOWN_MODEL, RejectReason.BAD_TIMESTAMP)
INVALID_AMOUNT_EVENTS = 3
REJECTED_BY_REASON = "sum by (reason) (increase(driftmon_records_rejected_total[1m])) > 0"

RUNBOOK = "https://github.com/driftmon/driftmon/blob/main/docs/runbook.md"
# The numbers DriftmonFeatureDrift's description reads by template queries ("n/a" if missing).
DRIFT_NUMBERS = r"\(q-value \S+; PSI \d\.\d{3} against the warning band 0\.10; KS D \d\.\d{3}\)"
PSI_CRITICAL_START = r"Feature score of model fraud has had a PSI of \d+\.\d{3}, above its "
PSI_CRITICAL_START += r"critical band of 0\.25,"


# ----------------------------------------------------------------------------- inputs
def model_config(name: str) -> dict[str, Any]:
    """A `models:` item: the demo features, a warm-up reference, PSI_BANDS where given, and
    KS_CRITICAL on the numeric features."""
    features = []
    for spec in DEMO_FEATURES:
        feature: dict[str, Any] = {"name": spec.name, "kind": spec.kind.value}
        if spec.kind is FeatureKind.NUMERIC:  # the PSI alerts tell the story: no KS page
            feature["thresholds"] = {"ks": {"critical": KS_CRITICAL}}
        if spec.name in PSI_BANDS:
            feature["psi_warning"], feature["psi_critical"] = PSI_BANDS[spec.name]
        features.append(feature)
    return {
        "name": name,
        "reference": {"mode": "warmup", "warmup_events": WARMUP_EVENTS},
        "features": features,
    }


class Stream:
    """The paced stream in a background thread: clean until `drift()`, then `fraud` drifts.

    After `drift()` the clean phase ends (`last_clean_ts` is its newest event time); the
    drifting phase starts at `release()`, with event time EVENT_TIME_JUMP_S ahead of the wall
    clock. Both phases share one producer, so every drifted event follows every clean one in
    the partition.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.sink = KafkaSink({"bootstrap_servers": bootstrap})
        self.topic = topic
        self.error: BaseException | None = None
        self._drift = threading.Event()
        self._release = threading.Event()
        self._stop = threading.Event()
        self.clean_done = threading.Event()
        self.last_clean_ts = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        common: dict[str, Any] = {"models": list(MODELS), "rate": RATE, "array": 5}
        try:
            clean = run_simulation(
                self.sink,
                self.topic,
                seed=CLEAN_SEED,  # not the warm-up's: the stream must not replay the reference
                stop=lambda: self._drift.is_set() or self._stop.is_set(),
                **common,
            )
            self.last_clean_ts = clean.last_ts or 0.0
            self.clean_done.set()
            while not (self._release.is_set() or self._stop.is_set()):
                self._release.wait(0.1)
            if not self._stop.is_set():
                run_simulation(
                    self.sink,
                    self.topic,
                    scenario=SCENARIO,
                    drift_models=[DRIFTING],
                    start_ts=time.time() + EVENT_TIME_JUMP_S,
                    seed=DRIFT_SEED,
                    stop=self._stop.is_set,
                    **common,
                )
        except BaseException as exc:  # reported by the test through `error`
            self.error = exc

    def start(self) -> None:
        """Start producing clean events."""
        self._thread.start()

    def drift(self) -> None:
        """End the clean phase (the drifting one waits for `release()`)."""
        self._drift.set()

    def release(self) -> None:
        """Start the drifting phase."""
        self._release.set()

    def stop(self) -> None:
        """Stop producing, wait for the thread, close the producer (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.sink.close()


def produce_bad_records(broker: TansuBroker, topic: str) -> None:
    """One record per reason in BAD_REASONS, and fraud events whose amount is a string."""
    events = EventGenerator(DRIFTING, seed=4).events(INVALID_AMOUNT_EVENTS + 2, time.time(), 1e3)
    bad = {
        RejectReason.INVALID_JSON: b'{"ts": 1, "model": "fraud", "features": {',
        RejectReason.UNKNOWN_MODEL: msgspec.json.encode({**events[0], "model": "ghost"}),
        RejectReason.BAD_TIMESTAMP: msgspec.json.encode({**events[1], "ts": "yesterday"}),
    }
    assert tuple(bad) == BAD_REASONS
    invalid = [
        msgspec.json.encode({**e, "features": {**e["features"], "amount": "n/a"}})
        for e in events[2:]
    ]
    broker.produce(topic, [*bad.values(), *invalid], key=DRIFTING.encode())


# ----------------------------------------------------------------------------- the chain
@dataclass
class Chain:
    """The running processes of the test and a timeline of what happened when."""

    hook: WebhookReceiver
    am: AlertmanagerServer
    prom: PrometheusServer
    daemon: DaemonProcess
    instance: str
    t0: float = field(default_factory=time.monotonic)
    timeline: list[str] = field(default_factory=list)

    def mark(self, event: str) -> None:
        """Add `event` to the timeline, with the seconds since the test started."""
        self.timeline.append(f"{time.monotonic() - self.t0:5.1f}s {event}")

    def alerts(self) -> set[tuple[str, str, str, str]]:
        """(alertname, model, feature, state) of every pending or firing alert in Prometheus."""
        return {
            (
                a["labels"]["alertname"],
                a["labels"].get("model", ""),
                a["labels"].get("feature", ""),
                a["state"],
            )
            for a in self.prom.alerts()
        }

    def values(self, expr: str, label: str) -> dict[str, float]:
        """label value -> sample value, for an instant query on the live Prometheus."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.prom.query(expr)}

    def state(self) -> str:
        """A readable dump of the timeline, the alerts at every stage and the logs' tails."""
        parts = ["--- timeline ---", *self.timeline, "--- Prometheus alerts ---"]
        parts += [f"{a['state']} {a['labels']}" for a in self.prom.alerts()]
        parts.append("--- Alertmanager alerts ---")
        parts += [f"{a['status']['state']} {a['labels']}" for a in self.am.alerts()]
        parts.append("--- webhook ---")
        parts += [
            f"{t - self.t0:5.1f}s {p} {n['status']} {[a['labels'] for a in n['alerts']]}"
            for t, p, n in self.hook.received_timed()
        ]
        parts += ["--- the clean model's features at the daemon ---", self._clean_features()]
        parts += [self.daemon.tail(2000), "--- prometheus log ---", self.prom.log_tail(1500)]
        return "\n".join(parts)

    def _clean_features(self) -> str:
        """The clean model's per-feature statistics from the daemon's /status (or why not)."""
        try:
            models = self.daemon.status()["models"]
            clean = next(m for m in models if m["model"] == CLEAN)
            return json.dumps(clean["features"], default=str)[:6000]
        except Exception as exc:  # the daemon may be down already
            return f"(no /status: {exc!r})"


@contextlib.contextmanager
def alerting_chain(
    tmp_path: Path,
    config: dict[str, Any],
    started: float,
    on_daemon_start: Callable[[], None] | None = None,
) -> Iterator[Chain]:
    """A webhook receiver, the daemon of `config` (started; then `on_daemon_start`), an
    Alertmanager routing to the receiver and a Prometheus scraping the daemon (no rules yet:
    `load_rules_when_healthy`); everything is stopped on exit."""
    config_path = write_config(tmp_path / "driftmon.yaml", config)
    am_config = tmp_path / "alertmanager.yml"
    with (
        WebhookReceiver() as hook,
        DaemonProcess(config_path, tmp_path / "daemon") as daemon,
    ):
        write_alertmanager_config(am_config, hook.url, group_interval=f"{GROUP_INTERVAL_S:g}s")
        daemon.start()
        if on_daemon_start is not None:
            on_daemon_start()
        instance = f"127.0.0.1:{daemon.port}"
        scrape_only = write_prometheus_config(tmp_path / "prometheus.yml", None, [instance], None)
        with (
            AlertmanagerServer(am_config, tmp_path) as am,
            PrometheusServer(scrape_only, tmp_path) as prom,
        ):
            yield Chain(hook, am, prom, daemon, instance, t0=started)


@contextlib.contextmanager
def explained(describe: Callable[[], str]) -> Iterator[None]:
    """Append `describe()` (the state of the chain) to an AssertionError raised in the block."""
    try:
        yield
    except AssertionError as exc:
        try:
            detail = describe()
        except Exception as describe_error:  # the chain may be half down
            detail = f"(state unavailable: {describe_error!r})"
        raise AssertionError(f"{exc}\n{detail}") from None


def alerts_named(payload: dict[str, Any], alertname: str) -> list[dict[str, Any]]:
    """The alerts of a webhook payload with the given alertname."""
    return [a for a in payload["alerts"] if a["labels"]["alertname"] == alertname]


def firing_with(alertname: str) -> Callable[[str, dict[str, Any]], bool]:
    """Webhook predicate: a firing notification that holds an alert named `alertname`."""
    return lambda _path, n: n["status"] == "firing" and bool(alerts_named(n, alertname))


def only_alert(am: AlertmanagerServer, alertname: str) -> list[dict[str, Any]]:
    """Alertmanager's active alerts if all are named `alertname`, else an empty list."""
    held = am.alerts()
    return held if {a["labels"]["alertname"] for a in held} == {alertname} else []


# ----------------------------------------------------------------------------- phases
def load_rules_when_healthy(chain: Chain, rules: Path, broker: TansuBroker, topic: str) -> None:
    """Wait until Prometheus scrapes a ready daemon, send the bad records, load the rules and
    the Alertmanager, and wait until Prometheus sends to that Alertmanager again."""
    healthy = [
        "driftmon_ready == 1",
        f"count(driftmon_model_reference_ready == 1) == {len(MODELS)}",
        "sum(increase(driftmon_events_accepted_total[1m])) > 1000",
    ]
    wait_until(
        lambda: all(chain.prom.query(expr) for expr in healthy),
        40,
        message="Prometheus to scrape a ready daemon",
    )
    chain.mark("Prometheus scraped a ready daemon")
    produce_bad_records(broker, topic)
    write_prometheus_config(chain.prom.config, rules, [chain.instance], chain.am.address)
    chain.prom.reload()
    assert chain.prom.rule_groups(), "the reload loaded no rule group"
    wait_until(chain.prom.alertmanagers, 15, message="Prometheus to list the Alertmanager")
    chain.mark("bad records sent; rules and Alertmanager loaded")


def check_drift_notifications(
    chain: Chain, chat: tuple[str, dict[str, Any]], pager: tuple[str, dict[str, Any]]
) -> None:
    """The two expected notifications: receivers, group labels, alert labels, annotations."""
    # The drift alerts aggregate over the job's replicas: no instance label.
    labels = {"job": "driftmon", "model": DRIFTING}
    chat_path, chat_note = chat
    assert (chat_path, chat_note["receiver"]) == ("driftmon-chat", "driftmon-chat")
    assert chat_note["groupLabels"] == {"alertname": "DriftmonFeatureDrift", "model": DRIFTING}
    assert [a["labels"] for a in chat_note["alerts"]] == [
        alert_labels("DriftmonFeatureDrift", **labels, feature=f) for f in sorted(WARNING)
    ]
    (drift,) = chat_note["alerts"]
    annotations = drift["annotations"]
    assert annotations["summary"] == f"Feature amount of model {DRIFTING} is drifting"
    # Every number comes from a template query on the daemon's live series.
    assert re.search(DRIFT_NUMBERS, annotations["description"]), annotations["description"]
    assert annotations["runbook_url"] == f"{RUNBOOK}#driftmonfeaturedrift"

    pager_path, pager_note = pager
    assert (pager_path, pager_note["receiver"]) == ("driftmon-pager", "driftmon-pager")
    assert [a["labels"] for a in pager_note["alerts"]] == [
        alert_labels("DriftmonFeaturePsiCritical", **labels, feature=f) for f in sorted(CRITICAL)
    ]
    description = pager_note["alerts"][0]["annotations"]["description"]
    assert re.match(PSI_CRITICAL_START, description), description


def check_nothing_else(chain: Chain) -> None:
    """Prometheus holds exactly the drift alerts; Alertmanager mutes the warnings of critical
    features by inhibit rule 2; the PSI agrees with the split; churn is evaluated and clean."""
    assert chain.alerts() == {
        *(("DriftmonFeatureDrift", DRIFTING, f, "firing") for f in DRIFTED),
        *(("DriftmonFeaturePsiCritical", DRIFTING, f, "firing") for f in CRITICAL),
    }
    held = {(a["labels"]["alertname"], a["labels"]["feature"]): a for a in chain.am.alerts()}
    for f in CRITICAL:
        status = held[("DriftmonFeatureDrift", f)]["status"]
        assert status["state"] == "suppressed"
        assert status["inhibitedBy"] == [held[("DriftmonFeaturePsiCritical", f)]["fingerprint"]]
    for f in WARNING:
        assert held[("DriftmonFeatureDrift", f)]["status"]["state"] == "active"

    psi = chain.values(f'driftmon_feature_psi{{model="{DRIFTING}"}}', "feature")
    bands = {
        (r["metric"]["feature"], r["metric"]["severity"]): float(r["value"][1])
        for r in chain.prom.query(f'driftmon_feature_threshold{{model="{DRIFTING}",signal="psi"}}')
    }
    for f in WARNING:
        assert bands[(f, "warning")] < psi[f] <= bands[(f, "critical")], psi
    for f in CRITICAL:
        assert psi[f] > bands[(f, "critical")], psi

    full = f'driftmon_feature_window_samples{{model="{CLEAN}",window="current"}} >= 1000'
    assert set(chain.values(full, "feature")) == {s.name for s in DEMO_FEATURES}
    assert chain.prom.query(f'driftmon_feature_drift_detected{{model="{CLEAN}"}} == 1') == []


def check_panels(chain: Chain, exported: Metrics) -> None:
    """Every panel query has data for model fraud, feature amount and the real instance
    (categorical-only statistics: for feature country instead); every variable resolves."""
    variables = {"model": DRIFTING, "feature": PANEL_FEATURE, "instance": chain.instance}
    boards = [load(path) for path in dashboard_files()]
    main = [q for board in boards for q in queries(board, variables)]
    categorical = [
        q
        for board in boards
        if any(v["name"] == "feature" for v in board["templating"]["list"])
        for q in queries(board, {**variables, "feature": CATEGORICAL})
    ]
    results = evaluate(chain.prom.url, main)
    categorical_results = evaluate(chain.prom.url, categorical)
    failed = {
        w: r for w, r in [*results.items(), *categorical_results.items()] if isinstance(r, str)
    }
    assert failed == {}

    expressions = dict(main)
    empty = sorted(w for w, r in results.items() if not r)
    chain.mark(f"queries without data for {PANEL_FEATURE}: {empty}")
    for where in empty:
        read = metric_names(expressions[where])
        if set(read) <= FLEET_STATE_METRICS:
            continue  # the fleet's state series: a file-backend daemon has none
        if reads_only_opt_in_series(expressions[where]):
            continue  # segments, correlation, reconstruction, discovery: not configured here
        # Allowed only for a statistic with no series for fraud/amount at all (one that
        # exists for categorical features only); `queries` names a query by board, panel
        # and ref, so the categorical variant has the same name.
        assert not any(exported.find(n, **selector_labels(expressions[where], n)) for n in read), (
            f"no data for {where}: {expressions[where]}"
        )
        assert categorical_results.get(where), f"no data for {where}, feature {CATEGORICAL}"

    selectors = [s for board in boards for s in variable_selectors(board, variables)]
    assert [s for s in selectors if not chain.prom.query(s)] == []

    def positive(title: str, *labels: str) -> set[tuple[str, ...]]:
        (result,) = [r for w, r in results.items() if f"{title!r}" in w]
        return {tuple(r["metric"][k] for k in labels) for r in result if float(r["value"][1]) > 0}

    assert positive("Rejected records by reason", "reason") == {(r.value,) for r in BAD_REASONS}
    assert positive("Invalid feature values", "model", "feature") == {(DRIFTING, "amount")}
    assert positive("Invalid values") == {()}


def selector_labels(expr: str, name: str) -> dict[str, str]:
    """The `label="value"` matchers of the first selector of metric `name` in `expr` (a
    threshold series of a signal the feature's kind lacks has none for that signal only)."""
    m = re.search(re.escape(name) + r"\{([^}]*)\}", expr)
    return dict(re.findall(r'(\w+)="([^"]*)"', m[1])) if m else {}


def stop_just_after_a_flush(chain: Chain, drift_notes: list[float]) -> tuple[float, float]:
    """SIGTERM the daemon TICK_MARGIN_S after a flush of the drift groups (whose flushes
    follow their first notification every GROUP_INTERVAL_S); returns the time of the signal
    and of the groups' next flush."""
    first, last = min(drift_notes), max(drift_notes)
    assert last - first < 0.5, drift_notes  # both groups were created by one rule evaluation
    ticks = math.floor((time.monotonic() - last - TICK_MARGIN_S) / GROUP_INTERVAL_S) + 1
    sleep_until(last + ticks * GROUP_INTERVAL_S + TICK_MARGIN_S)
    stopped = time.monotonic()
    chain.mark("SIGTERM")
    assert chain.daemon.stop() == 0, chain.daemon.tail()
    chain.mark("daemon exited")
    return stopped, first + (ticks + 1) * GROUP_INTERVAL_S


# ----------------------------------------------------------------------------- the data
class ListSink:
    """A `Sink` that keeps the messages (for replaying the stream's events offline)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Keep `value`."""
        self.messages.append(value)

    def flush(self, timeout_s: float | None = None) -> None:
        """Nothing is queued."""


def simulated_events(seed: int, total: int, rate: float) -> dict[str, list[dict[str, Any]]]:
    """The events `run_simulation` sends with these arguments (and the stream's `array`), per
    model, produced at once: the content does not depend on pacing, only the event times do."""
    sink = ListSink()
    ticks = itertools.count()
    run_simulation(
        sink,
        "offline",
        models=list(MODELS),
        rate=rate,
        total_events=total,
        seed=seed,
        array=5 if rate else None,
        clock=lambda: next(ticks) * 1e-3,
        sleep=lambda _: None,
    )
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in MODELS}
    for message in sink.messages:
        decoded = msgspec.json.decode(message)
        for event in decoded if isinstance(decoded, list) else [decoded]:
            out[event["model"]].append(event)
    return out


def slot_matrix(
    layout: ModelLayout, specs: Sequence[FeatureSpec], events: list[dict[str, Any]]
) -> npt.NDArray[np.int64]:
    """Every event binned with `layout`: int64[F, N] slots (`ModelLayout.bin_batch`)."""
    numeric = np.asarray(
        [
            [np.nan if e["features"][s.name] is None else e["features"][s.name] for e in events]
            for s in specs
            if s.kind is FeatureKind.NUMERIC
        ],
        dtype=np.float64,
    )
    categorical = [
        np.asarray([e["features"][s.name] for e in events], dtype=object)
        for s in specs
        if s.kind is FeatureKind.CATEGORICAL
    ]
    return layout.bin_batch(numeric, categorical)


def test_no_window_of_the_clean_streams_is_near_the_decision_level() -> None:
    """Against WARMUP_SEED's references no window of the clean events drifts, even at 10x q."""
    warmup = simulated_events(WARMUP_SEED, 2 * WARMUP_EVENTS, 0)
    streams = [simulated_events(seed, 60_000, RATE) for seed in (CLEAN_SEED, DRIFT_SEED)]
    fired: dict[tuple[str, str], tuple[str, ...]] = {}
    for model in MODELS:
        events = warmup[model]
        assert len(events) == WARMUP_EVENTS
        columns = {s.name: [e["features"][s.name] for e in events] for s in DEMO_FEATURES}
        profile = fit_profile(
            model,
            DEMO_FEATURES,
            {
                s.name: np.asarray([math.nan if v is None else v for v in columns[s.name]], float)
                for s in DEMO_FEATURES
                if s.kind is FeatureKind.NUMERIC
            },
            {
                s.name: np.asarray(columns[s.name], dtype=object)
                for s in DEMO_FEATURES
                if s.kind is FeatureKind.CATEGORICAL
            },
        )
        layout, reference, specs = layout_for(profile, DEMO_FEATURES)
        policy = DecisionPolicy(
            fdr_q=10 * DecisionPolicy().fdr_q, ks_noise_multiple=KS_NOISE_MULTIPLE
        )
        evaluator = ModelEvaluator(layout, specs, policy, distributions=False)
        for stream in streams:
            slots = slot_matrix(layout, specs, stream[model])
            for size in (MIN_SAMPLES, 2_500):  # the daemon's windows: 1,000-2,500
                for start in range(0, slots.shape[1] - size, 250):
                    current = layout.histogram(slots[:, start : start + size])
                    result = evaluator.evaluate(reference, current, EvaluationContext(model, 0.0))
                    for feature in result.features:
                        if feature.drift_detected:
                            fired.setdefault((model, feature.name), feature.drift_reasons)
    assert fired == {}, f"clean windows drift at 10x q (see WARMUP_SEED): {fired}"


# ----------------------------------------------------------------------------- the test
@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    """A broker of this module's own, fresh for each test (overrides the shared session one):
    the chain's timing is measured in seconds, and the shared broker holds every earlier test's
    records in memory (tansu keeps no disk)."""
    with TansuBroker() as fresh:
        yield fresh


@pytest.fixture
def stream(broker: TansuBroker, topic: str) -> Iterator[Stream]:
    """The warm-up events, already in the topic, and the stream (started by the test)."""
    sink = KafkaSink({"bootstrap_servers": broker.bootstrap})
    try:
        warmup = run_simulation(
            sink,
            topic,
            models=list(MODELS),
            rate=0,
            total_events=2 * WARMUP_EVENTS,
            seed=WARMUP_SEED,
        )
    finally:
        sink.close()
    assert warmup.sent == dict.fromkeys(MODELS, WARMUP_EVENTS)
    s = Stream(broker.bootstrap, topic)
    try:
        yield s
    finally:
        s.stop()


def test_real_daemon_drift_alerts_reach_their_receivers_and_driftmon_down_mutes_them(
    tmp_path: Path, broker: TansuBroker, topic: str, stream: Stream
) -> None:
    """A drifting model's alerts, and only those, reach the right receivers from a real daemon;
    every dashboard query has live data; SIGTERM brings DriftmonDown, which mutes the drift
    alerts' resolved notifications."""
    started = time.monotonic()
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        models=[model_config(m) for m in MODELS],
        state_dir=tmp_path / "state",
        window=WINDOW,
        evaluation=EVALUATION,
        checkpoint_interval="1s",
    )
    rules = write_fast_rules(tmp_path / "driftmon.rules.yml")
    with (
        alerting_chain(tmp_path, config, started, on_daemon_start=stream.start) as chain,
        explained(chain.state),
    ):
        hook, am, daemon, instance = chain.hook, chain.am, chain.daemon, chain.instance
        chain.mark(f"daemon serving on {instance}; Prometheus and Alertmanager up")
        load_rules_when_healthy(chain, rules, broker, topic)
        holds_for(
            lambda: chain.alerts() == set(),
            SETTLE_S,
            message="no alert on the clean stream",
        )

        stream.drift()
        wait_until(stream.clean_done.is_set, 10, message="the clean phase to end")
        wait_until(
            lambda: (
                max(
                    daemon.metrics().value(
                        "driftmon_model_watermark_timestamp_seconds", model=model
                    )
                    for model in MODELS
                )
                >= stream.last_clean_ts
            ),
            20,
            message="the daemon to reach the last clean event",
            on_timeout=daemon.tail,
        )
        stream.release()
        chain.mark("stream drifts")
        chat = hook.wait_for(firing_with("DriftmonFeatureDrift"), 25, "the drift warning")
        pager = hook.wait_for(firing_with("DriftmonFeaturePsiCritical"), 10, "the page")
        chain.mark("drift notifications received")
        holds_for(
            lambda: len(hook.received()) == 2,
            SETTLE_S,
            message="no notification beyond the two expected ones",
        )
        drift_notes = hook.received_timed()
        assert sorted((p, n["status"]) for _, p, n in drift_notes) == [
            ("driftmon-chat", "firing"),
            ("driftmon-pager", "firing"),
        ], "a notification other than the two expected ones arrived"
        check_drift_notifications(chain, chat, pager)
        check_nothing_else(chain)
        check_panels(chain, daemon.metrics())
        chain.mark("alerts and panels checked")

        stopped, next_flush = stop_just_after_a_flush(chain, [t for t, _, _ in drift_notes])
        # Alertmanager lists active alerts only: the drift alerts are gone once their
        # resolution arrived, so their groups have "resolved" to flush next.
        (down,) = wait_until(
            lambda: only_alert(am, "DriftmonDown"),
            15,
            0.05,
            "DriftmonDown, and nothing else, active at Alertmanager",
        )
        chain.mark("DriftmonDown at Alertmanager, drift alerts resolved there")
        assert time.monotonic() < next_flush - 0.1, (
            "test timing broken: DriftmonDown reached Alertmanager after the drift "
            "groups' next flush; raise GROUP_INTERVAL_S"
        )
        down_path, down_note = hook.wait_for(firing_with("DriftmonDown"), 10, "the down")
        chain.mark("DriftmonDown at the webhook")
        sleep_until(next_flush + 1.0)
        chain.mark("drift groups flushed after DriftmonDown")

        assert down["labels"] == alert_labels(
            "DriftmonDown", job="driftmon", instance=instance, replicas_up="none"
        )
        assert (down_path, down_note["receiver"]) == ("driftmon-pager", "driftmon-pager")
        assert [a["labels"] for a in down_note["alerts"]] == [down["labels"]]
        # The drift alerts resolved (stale series), DriftmonDown is all that fires ...
        assert chain.alerts() == {("DriftmonDown", "", "", "firing")}
        # ... and their resolved notifications, due at the drift groups' flush after
        # DriftmonDown reached Alertmanager, were muted by inhibit rule 1.
        assert [
            (p, n["status"], n["groupLabels"]) for t, p, n in hook.received_timed() if t > stopped
        ] == [("driftmon-pager", "firing", {"alertname": "DriftmonDown"})]
        assert stream.error is None, repr(stream.error)
        chain.mark("done")
    print("\n".join(chain.timeline))  # the timings, shown by `pytest -rP`


# ---------------------------------------------------------------- per-feature thresholds
SENSORS = "sensors"
OUT_OF_RANGE_THRESHOLDS = {"inlet": 0.05, "outlet": 0.2}  # both see ~10 % out of range
UNREACHABLE_FLOORS = {"ks": {"decision": 1.0}, "psi": {"decision": 100.0}}
SENSOR_EVENTS = 2_000
OUT_OF_RANGE_EVERY = 10  # one current value in ten lies far above the reference's range


def sensor_events(n: int, ts: float, seed: int, *, out_of_range: bool) -> list[bytes]:
    """`n` sensors events at event time `ts`; inlet and outlet carry the same value."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        value = rng.random()
        if out_of_range and i % OUT_OF_RANGE_EVERY == 0:
            value = 2.0 + rng.random()
        features = {name: value for name in OUT_OF_RANGE_THRESHOLDS}
        events.append(msgspec.json.encode({"ts": ts, "model": SENSORS, "features": features}))
    return events


def test_same_out_of_range_ratio_alerts_only_the_feature_with_the_lower_threshold(
    tmp_path: Path, broker: TansuBroker, topic: str
) -> None:
    """Two features with the same out-of-range ratio and thresholds of 5 % and 20 %: only the
    5 % one reaches the webhook, through the unmodified rule expression."""
    started = time.monotonic()
    features = [
        {
            "name": name,
            "kind": "numeric",
            "thresholds": {"out_of_range_ratio": {"warning": value}, **UNREACHABLE_FLOORS},
        }
        for name, value in OUT_OF_RANGE_THRESHOLDS.items()
    ]
    model = {
        "name": SENSORS,
        "reference": {"mode": "warmup", "warmup_events": SENSOR_EVENTS},
        "features": features,
    }
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        models=[model],
        state_dir=tmp_path / "state",
        window={"bucket": "1s", "length": "5s", "allowed_lateness": "15s"},
        evaluation=EVALUATION,
    )
    rules = write_fast_rules(tmp_path / "driftmon.rules.yml")
    with alerting_chain(tmp_path, config, started) as chain, explained(chain.state):
        hook, am, prom, instance = chain.hook, chain.am, chain.prom, chain.instance
        # The warm-up events are produced once Prometheus scrapes the daemon, so the
        # consumed-records rate it sees is not 0 (no DriftmonStreamStalled); the rules
        # and the Alertmanager are loaded before the out-of-range burst, so no alert
        # fires while a reload empties the notifier's Alertmanager list.
        wait_until(lambda: prom.query('up{job="driftmon"} == 1'), 20, message="a first scrape")
        warmup_ts = time.time() - 30  # the burst's event time is later by > the window
        broker.produce(topic, sensor_events(SENSOR_EVENTS, warmup_ts, 1, out_of_range=False))
        healthy = [
            "driftmon_ready == 1",
            "increase(driftmon_records_consumed_total[1m]) > 0",
        ]
        wait_until(
            lambda: all(prom.query(expr) for expr in healthy),
            40,
            message="Prometheus to scrape a ready daemon that consumed the warm-up",
        )
        write_prometheus_config(prom.config, rules, [instance], am.address)
        prom.reload()
        wait_until(prom.alertmanagers, 15, message="Prometheus to list the Alertmanager")
        chain.mark("rules and Alertmanager loaded")
        assert chain.alerts() == set(), "an alert is pending before the burst"
        broker.produce(topic, sensor_events(SENSOR_EVENTS, time.time(), 2, out_of_range=True))
        chain.mark("out-of-range burst produced")
        ratio = f'driftmon_feature_out_of_range_ratio{{model="{SENSORS}"}}'

        _, note = hook.wait_for(
            firing_with("DriftmonFeatureOutOfRange"), 25, "the out-of-range warning"
        )
        chain.mark("out-of-range notification received")
        holds_for(
            lambda: len(hook.received()) == 1,
            SETTLE_S,
            message="no notification beyond the out-of-range warning",
        )

        ratios = chain.values(ratio, "feature")
        assert ratios["inlet"] == ratios["outlet"]
        assert 0.09 < ratios["inlet"] < 0.12, ratios
        thresholds = chain.values(
            f'driftmon_feature_threshold{{model="{SENSORS}",'
            'signal="out_of_range_ratio",severity="warning"}',
            "feature",
        )
        assert thresholds == OUT_OF_RANGE_THRESHOLDS
        assert (note["receiver"], note["groupLabels"]) == (
            "driftmon-chat",
            {"alertname": "DriftmonFeatureOutOfRange", "model": SENSORS},
        )
        notified = [(p, a["labels"]) for _, p, n in hook.received_timed() for a in n["alerts"]]
        labels = {"job": "driftmon", "model": SENSORS}
        assert notified == [
            (
                "driftmon-chat",
                alert_labels("DriftmonFeatureOutOfRange", **labels, feature="inlet"),
            )
        ]
        description = note["alerts"][0]["annotations"]["description"]
        assert "(threshold 5%)" in description, description
        assert chain.alerts() == {("DriftmonFeatureOutOfRange", SENSORS, "inlet", "firing")}
        detected = f'driftmon_feature_drift_detected{{model="{SENSORS}"}} == 1'
        assert prom.query(detected) == []  # the per-feature floors held the decision
        chain.mark("done")
    print("\n".join(chain.timeline))
