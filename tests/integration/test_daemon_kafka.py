"""`driftmon run` end to end on the real tansu broker: counts, statistics, drift, bad input.

Acceptance criteria 1 to 3 of the daemon issue, each against a real daemon subprocess:

1. Events produced to the broker appear in /metrics with exact counts; the exported KS
   statistic agrees with `scipy.stats.ks_2samp` on the same raw events within the exported
   error bound, and the exported PSI (numeric and categorical) equals a computation from first
   principles on the reference profile written by `driftmon reference fit`, to 1e-9.
2. Every `simulate` drift scenario is detected on exactly its affected features within two
   evaluations of its events being in the window (all scenarios in one daemon, one model per
   scenario on one topic), and a clean stream of 200,000 events never is.
3. A stream mixing valid events with every kind of bad record: each bad record is counted once
   under its reason, each valid record once, the metric series count does not grow, and the
   daemon stays live and ready.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats as sps

from monitor.errors import RejectReason
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import fit_profile, profile_to_json
from monitor.source import KafkaSink
from monitor.tools.scenarios import DEMO_FEATURES, SCENARIOS, affected_features
from monitor.tools.simulate import run_simulation
from tests.support.broker import TansuBroker
from tests.support.daemon_harness import (
    DaemonProcess,
    daemon_config,
    model_entry,
    produce,
    run_cli,
    write_config,
)
from tests.support.waiting import wait_until

FloatArray = npt.NDArray[np.float64]
PSI_GROUPS = 10
SMOOTHING = 0.5


# -- statistics from first principles (independent of monitor.stats) ------------------------


def numeric_slot_counts(values: FloatArray, edges: FloatArray) -> npt.NDArray[np.int64]:
    """Counts per value slot by the documented rule (monitor/edges.py), finite values only.

    Slot 0: x < e_0; slot 1: x == e_0; slot k+1: e_{k-1} < x <= e_k; slot m+1: x > e_{m-1}.
    Written as (x >= e_0) + #{edges strictly below x}, without searchsorted.
    """
    finite = values[np.isfinite(values)]
    slots = (finite >= edges[0]).astype(np.int64) + (finite[:, None] > edges[None, :]).sum(axis=1)
    return np.bincount(slots, minlength=edges.size + 2).astype(np.int64)


def decile_groups(reference: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Group of every fine slot: floor(10 * mid-point of its cumulative reference mass), <= 9."""
    n = reference.sum()
    groups = []
    before = 0
    for count in reference.tolist():
        mid = (before + (before + count)) / 2.0 / n
        groups.append(min(math.floor(PSI_GROUPS * mid), PSI_GROUPS - 1))
        before += count
    return np.asarray(groups, dtype=np.int64)


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """sum (c - r) ln(c / r) over buckets non-empty in the pooled data, each count + 0.5."""
    pairs = [(r, c) for r, c in zip(reference, current, strict=True) if r + c > 0]
    r_total = sum(r + SMOOTHING for r, _ in pairs)
    c_total = sum(c + SMOOTHING for _, c in pairs)
    value = 0.0
    for r, c in pairs:
        rp, cp = (r + SMOOTHING) / r_total, (c + SMOOTHING) / c_total
        value += (cp - rp) * math.log(cp / rp)
    return value


def grouped(counts: npt.NDArray[np.int64], groups: npt.NDArray[np.int64]) -> list[float]:
    """Fine-slot counts summed into the 10 PSI groups."""
    out = [0.0] * PSI_GROUPS
    for count, group in zip(counts.tolist(), groups.tolist(), strict=True):
        out[group] += count
    return out


def category_counts(values: Sequence[str | None], top: Sequence[str]) -> list[int]:
    """Counts of each top category, then one bucket for every other present value.

    The daemon's categorical PSI merges OTHER (in the reference vocabulary, not top-K) and
    UNSEEN (not in the vocabulary) into one bucket.
    """
    index = {c: i for i, c in enumerate(top)}
    out = [0] * (len(top) + 1)
    for value in values:
        if value is not None:
            out[index.get(value, len(top))] += 1
    return out


# -- acceptance criterion 1 ----------------------------------------------------------------


def _e2e_data(rng: np.random.Generator) -> dict[str, Any]:
    """Reference rows (for the CSV) and current events for model `e2e` (x, y numeric; c cat)."""
    cats = [f"k{i:02d}" for i in range(30)]
    weights = 1.0 / np.arange(1, 31) ** 1.2
    n_ref, n_cur = 5_000, 3_000
    ref_x = rng.normal(0.0, 1.0, n_ref)
    ref_y = np.where(rng.random(n_ref) < 0.1, np.nan, rng.exponential(1.0, n_ref))
    ref_c: list[str | None] = [
        None if u < 0.02 else str(c)
        for u, c in zip(
            rng.random(n_ref), rng.choice(cats, n_ref, p=weights / weights.sum()), strict=True
        )
    ]
    cur_x = rng.normal(0.15, 1.1, n_cur)
    cur_y = np.where(rng.random(n_cur) < 0.05, np.nan, rng.exponential(1.2, n_cur))
    shifted = np.roll(weights, 3)
    cur_c: list[str | None] = [
        "NEW" if u < 0.02 else str(c)
        for u, c in zip(
            rng.random(n_cur), rng.choice(cats, n_cur, p=shifted / shifted.sum()), strict=True
        )
    ]
    end = time.time() - 5.0
    ts = end - 30.0 + 30.0 * np.arange(n_cur) / n_cur  # spread over 30 s, all in the window
    events = [
        {
            "ts": float(t),
            "model": "e2e",
            "model_version": "v3",
            "features": {
                "x": float(x),
                "y": None if math.isnan(y) else float(y),
                "c": c,
                "unused": "ignored",
            },
        }
        for t, x, y, c in zip(ts.tolist(), cur_x.tolist(), cur_y.tolist(), cur_c, strict=True)
    ]
    return {
        "ref": {"x": ref_x, "y": ref_y, "c": ref_c},
        "cur": {"x": cur_x, "y": cur_y, "c": cur_c},
        "events": events,
    }


def _write_reference_csv(path: Path, ref: dict[str, Any]) -> None:
    """The reference rows as CSV: repr() keeps every float exact; empty cell = missing."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "c", "note"])
        for x, y, c in zip(ref["x"].tolist(), ref["y"].tolist(), ref["c"], strict=True):
            writer.writerow([repr(x), "" if math.isnan(y) else repr(y), c or "", "n/a"])


@pytest.mark.timeout(120)
def test_end_to_end_counts_and_statistics_match_first_principles(
    broker: TansuBroker, topic: str, tmp_path: Path
) -> None:
    """Counts are exact, KS agrees with ks_2samp within the bound, PSI equals the formula."""
    data = _e2e_data(np.random.default_rng(20261126))
    csv_path = tmp_path / "reference.csv"
    _write_reference_csv(csv_path, data["ref"])
    ref_path = tmp_path / "refs" / "e2e.json"
    fit = run_cli(
        "reference",
        "fit",
        str(csv_path),
        "--model",
        "e2e",
        "--model-version",
        "v3",
        "--features",
        "x:numeric,y:numeric,c:categorical",
        "--no-progress",
        "-o",
        str(ref_path),
    )
    assert fit.returncode == 0, fit.stderr
    profile = json.loads(ref_path.read_text(encoding="utf-8"))
    features = {f["name"]: f for f in profile["features"]}

    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        state_dir=tmp_path / "state",
        models=[
            model_entry(
                "e2e",
                [("x", "numeric"), ("y", "numeric"), ("c", "categorical")],
                {"mode": "file", "path": str(ref_path)},
            )
        ],
        evaluation={"interval": "1s", "min_samples": 500},
    )
    events = data["events"]
    singles = [msgspec.json.encode(e) for e in events[:2_000]]
    arrays = [msgspec.json.encode(events[i : i + 10]) for i in range(2_000, len(events), 10)]
    with DaemonProcess(write_config(tmp_path / "driftmon.yaml", config), tmp_path) as daemon:
        daemon.start()
        produce(broker.bootstrap, topic, singles + arrays)
        daemon.wait_metric("driftmon_events_accepted_total", 3_000, model="e2e")
        # The window samples gauge comes from the next evaluation after the last event.
        scraped = daemon.wait_metric(
            "driftmon_feature_window_samples", 3_000, model="e2e", feature="x", window="current"
        )
        status = daemon.status()
        daemon.wait_ready(10)
        assert daemon.stop() == 0

    # counts
    assert scraped.value("driftmon_records_consumed_total", topic=topic) == 2_000 + 100
    assert scraped.value("driftmon_events_accepted_total", model="e2e") == 3_000
    assert scraped.total("driftmon_records_rejected_total") == 0
    cur, ref = data["cur"], data["ref"]
    n_y = int(np.isfinite(cur["y"]).sum())
    expected_current = {"x": 3_000, "y": n_y, "c": 3_000}
    expected_reference = {
        "x": 5_000,
        "y": int(np.isfinite(ref["y"]).sum()),
        "c": sum(c is not None for c in ref["c"]),
    }
    for name in ("x", "y", "c"):
        assert (
            scraped.value(
                "driftmon_feature_window_samples", model="e2e", feature=name, window="current"
            )
            == expected_current[name]
        )
        assert (
            scraped.value(
                "driftmon_feature_window_samples", model="e2e", feature=name, window="reference"
            )
            == expected_reference[name]
        )
    assert scraped.value(
        "driftmon_feature_missing_ratio", model="e2e", feature="y", window="current"
    ) == pytest.approx((3_000 - n_y) / 3_000, abs=1e-12)
    info = scraped.find("driftmon_reference_info", model="e2e")
    assert [labels["reference_id"] for labels, _ in info] == [profile["reference_id"]]
    assert info[0][0]["model_version"] == "v3" and info[0][0]["mode"] == "file"

    by_name = {f["name"]: f for f in status["models"][0]["features"]}
    for name in ("x", "y"):
        edges = np.asarray(features[name]["edges"], dtype=np.float64)
        ref_values, cur_values = ref[name], cur[name]
        ref_slots = numeric_slot_counts(ref_values, edges)
        # The profile's counts are the raw reference sample binned by the documented rule.
        assert ref_slots.tolist() == features[name]["counts"][:-2]
        cur_slots = numeric_slot_counts(cur_values, edges)

        exact = sps.ks_2samp(
            ref_values[np.isfinite(ref_values)], cur_values[np.isfinite(cur_values)]
        )
        d = scraped.value("driftmon_feature_ks_statistic", model="e2e", feature=name)
        bound = scraped.value("driftmon_feature_ks_error_bound", model="e2e", feature=name)
        assert 0 <= exact.statistic - d <= bound + 1e-12, (name, exact.statistic, d, bound)
        assert bound < 0.05  # 128 reference-quantile bins: ~1/128 of the reference per bin
        assert d == by_name[name]["ks_statistic"] and bound == by_name[name]["ks_error_bound"]

        groups = decile_groups(ref_slots)
        expected_psi = psi(grouped(ref_slots, groups), grouped(cur_slots, groups))
        exported = scraped.value("driftmon_feature_psi", model="e2e", feature=name)
        assert abs(exported - expected_psi) <= 1e-9, (name, exported, expected_psi)
        assert exported == by_name[name]["psi"]

        outside = int(cur_slots[0] + cur_slots[-1])
        assert scraped.value(
            "driftmon_feature_out_of_range_ratio", model="e2e", feature=name
        ) == pytest.approx(outside / cur_slots.sum(), abs=1e-12)

    top = features["c"]["categories"]
    assert len(top) == 20 and "NEW" not in features["c"]["vocabulary"]
    ref_cat = category_counts(ref["c"], top)
    assert ref_cat[:-1] == features["c"]["counts"][: len(top)]
    expected_psi = psi(ref_cat, category_counts(cur["c"], top))
    exported = scraped.value("driftmon_feature_psi", model="e2e", feature="c")
    assert abs(exported - expected_psi) <= 1e-9, (exported, expected_psi)
    assert scraped.value(
        "driftmon_feature_unseen_category_ratio", model="e2e", feature="c"
    ) == pytest.approx(sum(c == "NEW" for c in cur["c"]) / 3_000, abs=1e-12)
    # p0, the reference's Good-Turing unseen mass: categories seen once over the reference's
    # values (30 levels in 5,000 values: none seen once), exported for categorical features only
    seen = Counter(c for c in ref["c"] if c is not None)
    p0 = sum(1 for k in seen.values() if k == 1) / sum(seen.values())
    assert scraped.value(
        "driftmon_feature_reference_unseen_estimate", model="e2e", feature="c"
    ) == pytest.approx(p0, abs=1e-12)
    assert scraped.find("driftmon_feature_reference_unseen_estimate", feature="x") == []


# -- acceptance criterion 2 ----------------------------------------------------------------

WARMUP = 5_000
DRIFTED_EVENTS = 5_000
CLEAN_EVENTS = 200_000


def _simulate(bootstrap: str, topic: str, model: str, scenario: str, n: int, **kw: Any) -> None:
    """Produce `n` events of `model` as fast as possible, 100 events per message."""
    sink = KafkaSink({"bootstrap_servers": bootstrap})
    try:
        report = run_simulation(
            sink,
            topic,
            models=[model],
            scenario=scenario,
            rate=0.0,
            total_events=n,
            array=100,
            **kw,
        )
    finally:
        sink.close()
    assert report.events == n and sink.failed == 0


@pytest.mark.timeout(240)
@pytest.mark.slow
def test_every_scenario_is_detected_on_its_features_only_and_clean_stream_never(
    broker: TansuBroker, topic: str, tmp_path: Path
) -> None:
    """One daemon, one model per scenario: drift found on the affected features only, fast."""
    interval = 1.0
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        state_dir=tmp_path / "state",
        models=[
            model_entry(
                name,
                [(s.name, s.kind.value) for s in DEMO_FEATURES],
                {"mode": "warmup", "warmup_events": WARMUP},
            )
            for name in SCENARIOS  # the model is named after its scenario
        ],
        evaluation={"interval": f"{interval}s", "min_samples": 1000},
        checkpoint_interval="30s",
    )
    drifting = [s for s in SCENARIOS if s != "none"]
    assert "none" in SCENARIOS and len(drifting) == 5
    with DaemonProcess(write_config(tmp_path / "driftmon.yaml", config), tmp_path) as daemon:
        daemon.start()
        now = time.time()
        for name in SCENARIOS:  # clean warm-up: the reference of every model
            _simulate(broker.bootstrap, topic, name, "none", WARMUP, start_ts=now - 120, seed=1)
        daemon.wait_ready(60)
        for name in drifting:  # every event of the second phase is drifted
            _simulate(
                broker.bootstrap,
                topic,
                name,
                name,
                DRIFTED_EVENTS,
                start_ts=now - 60,
                drift_after_s=0.0,
                seed=2,
            )
        _simulate(broker.bootstrap, topic, "none", "none", CLEAN_EVENTS, start_ts=now - 60, seed=2)
        for name in SCENARIOS:
            total = WARMUP + (CLEAN_EVENTS if name == "none" else DRIFTED_EVENTS)
            daemon.wait_metric("driftmon_events_accepted_total", total, timeout=60, model=name)
        count = len(daemon.evaluations())
        wait_until(
            lambda: len(daemon.evaluations()) >= count + 3,
            10,
            message="three more evaluations",
        )
        final = daemon.metrics()
        assert daemon.stop() == 0
        evaluations = daemon.evaluations()

    for name in SCENARIOS:
        affected = affected_features(name)
        detected = {
            labels["feature"]
            for labels, value in final.find("driftmon_feature_drift_detected", model=name)
            if value == 1
        }
        assert detected == affected, (name, detected, affected)
        want = CLEAN_EVENTS if name == "none" else DRIFTED_EVENTS
        assert (
            final.value(
                "driftmon_feature_window_samples", model=name, feature="amount", window="current"
            )
            == want
        )
        seen = [set(e["models"][name]["drifted"]) for e in evaluations]
        # Never a feature outside the scenario's ground truth, at any evaluation.
        assert all(s <= affected for s in seen), (name, seen)
        if name == "none":
            continue
        complete = [
            i for i, e in enumerate(evaluations) if e["models"][name]["current_samples"] == want
        ]
        assert complete, name
        first_full = complete[0]
        hits = [i for i in range(first_full, len(seen)) if seen[i] == affected]
        # Detected at the first or second evaluation over the complete window, and it stays.
        assert hits and hits[0] <= first_full + 1, (name, first_full, seen[first_full:])
        assert all(s == affected for s in seen[hits[0] :]), (name, seen[hits[0] :])


# -- acceptance criterion 3 ----------------------------------------------------------------

MAX_MESSAGE_BYTES = 2 * 1024 * 1024
ABSENT = object()


def _state(value: object, kind: FeatureKind) -> str:
    """How the event contract classifies a feature value: sample, missing or invalid."""
    if value is ABSENT or value is None:
        return "missing"
    if kind is FeatureKind.NUMERIC:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return "sample" if ok and math.isfinite(value) else "invalid"  # type: ignore[arg-type]
    return "sample" if isinstance(value, str | bool) else "invalid"


class Stream:
    """Messages for model `bad` plus what the daemon must count for each of them."""

    def __init__(self, ts: float) -> None:
        self.ts = ts
        self.messages: list[bytes] = []
        self.rejected: dict[str, int] = dict.fromkeys((r.value for r in RejectReason), 0)
        self.accepted = 0
        self.samples = {"x": 0, "c": 0}
        self.invalid = {"x": 0, "c": 0}

    def event(self, x: object = 0.5, c: object = "a", **envelope: object) -> dict[str, Any]:
        """A valid event unless `envelope` overrides ts/model/features; ABSENT drops a key."""
        self.ts += 0.001
        features = {k: v for k, v in (("x", x), ("c", c)) if v is not ABSENT}
        doc: dict[str, Any] = {"ts": self.ts, "model": "bad", "features": features}
        doc.update(envelope)
        return {k: v for k, v in doc.items() if v is not ABSENT}

    def count_valid(self, x: object = 0.5, c: object = "a") -> None:
        """Record the expectation of one accepted event with these feature values."""
        self.accepted += 1
        for name, value, kind in (("x", x, FeatureKind.NUMERIC), ("c", c, FeatureKind.CATEGORICAL)):
            state = _state(value, kind)
            if state == "sample":
                self.samples[name] += 1
            elif state == "invalid":
                self.invalid[name] += 1

    def valid(self, x: object = 0.5, c: object = "a") -> None:
        """One message holding one accepted event."""
        self.messages.append(msgspec.json.encode(self.event(x, c)))
        self.count_valid(x, c)

    def raw(self, value: bytes, reason: RejectReason, records: int = 1) -> None:
        """One message whose `records` records are all rejected for `reason`."""
        self.messages.append(value)
        self.rejected[reason.value] += records

    def doc(self, doc: object, reason: RejectReason) -> None:
        """One JSON document rejected whole for `reason`."""
        self.raw(msgspec.json.encode(doc), reason)


def _bad_stream(ts: float, rng: np.random.Generator) -> Stream:
    """Valid events interleaved with every kind of bad record (see the test docstring)."""
    s = Stream(ts)
    xs = rng.normal(0.0, 1.0, 1_000).tolist()
    for i, x in enumerate(xs):  # valid events, some with missing values
        s.valid(None if i % 10 == 0 else x, ABSENT if i % 15 == 0 else "abcd"[i % 4])
        if i % 40 == 0:  # wrong feature types: the record counts, the value is invalid
            wrong_x: tuple[object, ...] = ("NaN", "1.5", True, {}, [1.0])
            for bad_x in wrong_x:
                s.valid(x=bad_x)
            wrong_c: tuple[object, ...] = (5, {}, [1], 1.5)
            for bad_c in wrong_c:
                s.valid(c=bad_c)
            s.valid(c=True)  # a bool is a category ("true")
            template = '{"ts": %r, "model": "bad", "features": {"x": %s, "c": "a"}}'
            for literal in ("1e999", "-1e999", "1" + "0" * 400):  # +-inf, beyond float range
                s.ts += 0.001
                s.messages.append((template % (s.ts, literal)).encode())
                s.count_valid(x=math.inf)
        if i % 100 == 50:  # records rejected whole
            for value in (b'{"ts": 1', b"not json", b"\xff\xfe\x00garbage", b"", b"{} trailing"):
                s.raw(value, RejectReason.INVALID_JSON)
            nan_literal = b'{"ts": %r, "model": "bad", "features": {"x": NaN}}' % s.ts
            s.raw(nan_literal, RejectReason.INVALID_JSON)  # JSON has no NaN
            for value in (b"42", b'"text"', b"null", b"true"):
                s.raw(value, RejectReason.NOT_AN_OBJECT)
            for features in ("str", [1, 2], ABSENT, None):
                s.doc(s.event(features=features), RejectReason.NOT_AN_OBJECT)
            for bad_ts in (
                ABSENT,
                "garbage",
                True,
                -5,
                0,
                1.7e12,  # epoch milliseconds are refused, not guessed
                "2026-13-45T00:00:00Z",
                "2026-11-26T10:00:00",  # no offset
                None,
                {},
            ):
                s.doc(s.event(ts=bad_ts), RejectReason.BAD_TIMESTAMP)
            s.raw(
                b'{"ts": 1e999, "model": "bad", "features": {"x": 1}}', RejectReason.BAD_TIMESTAMP
            )
            for model in ("nope", ABSENT, 5, None, ""):
                s.doc(s.event(model=model), RejectReason.UNKNOWN_MODEL)
            # An array of mixed validity: 3 events, 3 non-objects, 1 unknown model.
            mixed = [s.event(), 7, s.event(), "s", [s.event()], s.event(model="nope"), s.event()]
            s.messages.append(msgspec.json.encode(mixed))
            for _ in range(3):
                s.count_valid()
            s.rejected[RejectReason.NOT_AN_OBJECT.value] += 3
            s.rejected[RejectReason.UNKNOWN_MODEL.value] += 1
    # 10,000 distinct unexpected feature names: 100 events x 100 names, and one event with all.
    for i in range(100):
        event = s.event()
        event["features"].update({f"zz_{i}_{j}": j for j in range(100)})
        s.messages.append(msgspec.json.encode(event))
        s.count_valid()
    event = s.event()
    event["features"].update({f"yy_{j}": "v" for j in range(10_000)})
    s.messages.append(msgspec.json.encode(event))
    s.count_valid()
    # Big messages: one array just under max_message_bytes (used), one of 10 MiB (too_large).
    # Event sizes vary with the float repr of `ts`, so the array is filled by measured size.
    one = len(msgspec.json.encode(s.event()))
    events: list[dict[str, Any]] = []
    size = 2  # the brackets
    while True:
        event_bytes = len(msgspec.json.encode(candidate := s.event())) + 1  # + the comma
        if size + event_bytes > MAX_MESSAGE_BYTES - 1_000:
            break
        events.append(candidate)
        size += event_bytes
    n_big = len(events)
    big = msgspec.json.encode(events)
    assert MAX_MESSAGE_BYTES - 2_000 <= len(big) <= MAX_MESSAGE_BYTES
    s.messages.append(big)
    for _ in range(n_big):
        s.count_valid()
    huge = msgspec.json.encode([s.event() for _ in range((10 * 1024 * 1024) // one + 1)])
    assert len(huge) >= 10 * 1024 * 1024
    s.raw(huge, RejectReason.TOO_LARGE)
    return s


@pytest.mark.timeout(120)
def test_bad_input_is_counted_by_reason_and_never_stops_the_daemon(
    broker: TansuBroker, topic: str, tmp_path: Path
) -> None:
    """Every bad record under its reason, every valid one once, bounded series, still ready."""
    rng = np.random.default_rng(7)
    reference = tmp_path / "bad.json"
    profile = fit_profile(
        "bad",
        (FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("c", FeatureKind.CATEGORICAL)),
        {"x": rng.normal(0.0, 1.0, 2_000)},
        {"c": list(rng.choice(list("abcd"), 2_000))},
    )
    reference.write_text(profile_to_json(profile), encoding="utf-8")
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        state_dir=tmp_path / "state",
        models=[
            model_entry(
                "bad",
                [("x", "numeric"), ("c", "categorical")],
                {"mode": "file", "path": str(reference)},
            )
        ],
        evaluation={"interval": "1s", "min_samples": 100},
        kafka={"max_message_bytes": MAX_MESSAGE_BYTES},
        event={"max_array_elements": 100_000},  # the ~25,000-event array below is used whole
    )
    now = time.time()
    baseline = Stream(now - 50)
    for x in rng.normal(0.0, 1.0, 500).tolist():
        baseline.valid(x, "abcd"[int(abs(x * 100)) % 4])
    stream = _bad_stream(now - 40, rng)
    late = Stream(now)
    late.doc(late.event(ts=now - 86_400), RejectReason.TOO_LATE)  # older than the window
    late.doc(late.event(ts=now - 86_400 + 1), RejectReason.TOO_LATE)
    late.doc(late.event(ts=now + 86_400), RejectReason.TOO_EARLY)  # a day in the future

    with DaemonProcess(write_config(tmp_path / "driftmon.yaml", config), tmp_path) as daemon:
        daemon.start()
        produce(broker.bootstrap, topic, baseline.messages)
        daemon.wait_metric(
            "driftmon_feature_window_samples", 500, model="bad", feature="x", window="current"
        )
        daemon.wait_ready(30)
        before = daemon.metrics()
        assert before.get("driftmon_feature_psi", model="bad", feature="x") is not None

        produce(broker.bootstrap, topic, stream.messages)
        produce(broker.bootstrap, topic, [None], key=b"tombstone")  # type: ignore[list-item]
        stream.rejected[RejectReason.INVALID_JSON.value] += 1
        accepted = baseline.accepted + stream.accepted
        daemon.wait_metric("driftmon_events_accepted_total", accepted, timeout=60, model="bad")
        settled = daemon.wait_metric(  # a snapshot with every accepted event: the final watermark
            "driftmon_feature_window_samples",
            baseline.samples["x"] + stream.samples["x"],
            model="bad",
            feature="x",
            window="current",
        )
        mark = settled.value("driftmon_model_watermark_timestamp_seconds", model="bad")
        # the middle of the minute just before the 10-minute window: inside the 1m lateness
        outside = (math.floor(mark / 60) - 10) * 60 + 30
        late.doc(late.event(ts=outside), RejectReason.OUTSIDE_WINDOW)
        produce(broker.bootstrap, topic, late.messages)  # once the watermark is established
        n_messages = len(baseline.messages) + len(stream.messages) + 1 + len(late.messages)
        daemon.wait_metric("driftmon_records_consumed_total", n_messages, timeout=30, topic=topic)
        after = daemon.wait_metric(
            "driftmon_feature_window_samples",
            baseline.samples["x"] + stream.samples["x"],
            timeout=10,
            model="bad",
            feature="x",
            window="current",
        )
        assert daemon.running and daemon.live() and daemon.ready(), daemon.tail()
        assert daemon.stop() == 0

    expected = {
        reason: stream.rejected[reason] + late.rejected[reason] for reason in stream.rejected
    }
    got = {
        labels["reason"]: value
        for labels, value in after.find("driftmon_records_rejected_total", topic=topic)
    }
    assert got == expected
    assert all(expected[r.value] > 0 for r in RejectReason if r is not RejectReason.NO_REFERENCE)
    assert after.value("driftmon_events_accepted_total", model="bad") == accepted
    for name in ("x", "c"):
        assert (
            after.value(
                "driftmon_feature_window_samples", model="bad", feature=name, window="current"
            )
            == baseline.samples[name] + stream.samples[name]
        )
        assert (
            after.value("driftmon_feature_invalid_values_total", model="bad", feature=name)
            == stream.invalid[name]
        )
    # Content never becomes labels: the same series before and after the bad stream.
    assert set(after.series) == set(before.series)
    for fragment in ("zz_", "yy_", "nope", "garbage"):
        assert fragment not in after.text
