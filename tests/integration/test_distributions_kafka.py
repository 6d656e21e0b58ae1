"""Distribution series end to end: a real tansu broker and a real `driftmon run` process.

The shares the daemon exports (`driftmon_feature_bin_ratio` and the /status `distribution`
field) equal shares computed from the raw events of each window in plain Python
(`tests/support/raw_shares.py`), bin by bin, to 1e-12, for numeric and categorical features;
only the features the model's `export_distributions` picks export series; bin labels never
carry a value from an event.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from tests.support.broker import TansuBroker
from tests.support.daemon_harness import (
    DaemonProcess,
    Metrics,
    daemon_config,
    model_entry,
    produce,
    run_cli,
    write_config,
)
from tests.support.raw_shares import categorical_shares, numeric_groups, numeric_shares

FEATURES = [("x", "numeric"), ("y", "numeric"), ("c", "categorical")]
HOSTILE = '<img src=x onerror=alert(1)> "quoted"\nnew line'
N_REF, N_CUR = 4_000, 3_000


def _data(rng: np.random.Generator) -> dict[str, dict[str, list[Any]]]:
    """Raw reference and current values: x drifts, y has missing values, c a long tail."""
    cats = [f"k{i:02d}" for i in range(30)]
    weights = 1.0 / np.arange(1, 31) ** 1.1
    ref_c: list[Any] = rng.choice(cats, N_REF, p=weights / weights.sum()).tolist()
    ref_c[:60] = [None] * 60
    cur_c: list[Any] = rng.choice(cats, N_CUR, p=np.roll(weights, 2) / weights.sum()).tolist()
    cur_c[:90] = [f"payload-{i}" for i in range(90)]  # unseen, must not become labels
    cur_c[90:100] = [HOSTILE] * 10
    cur_c[100:120] = [None] * 20
    cur_c[120:130] = [7] * 10  # a number for a categorical feature: invalid
    cur_x: list[Any] = rng.normal(0.6, 1.3, N_CUR).tolist()
    cur_x[:25] = ["1.5"] * 25  # a string for a numeric feature: invalid
    cur_x[25:40] = [-50.0] * 15  # below the reference range
    cur_y: list[Any] = rng.exponential(1.0, N_CUR).tolist()
    cur_y[::9] = [None] * len(cur_y[::9])
    ref_y: list[Any] = rng.exponential(1.0, N_REF).tolist()
    ref_y[::13] = [None] * len(ref_y[::13])
    return {
        "ref": {"x": rng.normal(0, 1, N_REF).tolist(), "y": ref_y, "c": ref_c},
        "cur": {"x": cur_x, "y": cur_y, "c": cur_c},
    }


def _fit(tmp_path: Path, model: str, ref: dict[str, list[Any]]) -> dict[str, Any]:
    """`driftmon reference fit` on the reference rows as CSV; returns the profile as JSON."""
    csv_path = tmp_path / f"{model}.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "c"])
        for x, y, c in zip(ref["x"], ref["y"], ref["c"], strict=True):
            writer.writerow([repr(x), "" if y is None else repr(y), c or ""])
    out = tmp_path / "refs" / f"{model}.json"
    features = ",".join(f"{n}:{k}" for n, k in FEATURES)
    fit = run_cli(
        "reference", "fit", str(csv_path), "--model", model, "--features", features,
        "--no-progress", "-o", str(out),
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    profile: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return profile


def _events(model: str, cur: dict[str, list[Any]]) -> list[bytes]:
    end = time.time() - 5.0
    return [
        msgspec.json.encode(
            {
                "ts": end - 30.0 + 30.0 * i / N_CUR,
                "model": model,
                "features": {"x": cur["x"][i], "y": cur["y"][i], "c": cur["c"][i], "u": "z"},
            }
        )
        for i in range(N_CUR)
    ]


def _expected(profile: dict[str, Any], data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per feature: bin names and both windows' shares computed from the raw values."""
    out: dict[str, dict[str, Any]] = {}
    for feature in profile["features"]:
        name = feature["name"]
        ref, cur = data["ref"][name], data["cur"][name]
        if feature["kind"] == "numeric":
            edges = feature["edges"]
            groups = numeric_groups(edges, ref)
            bins = ["(below)", *(f"p{10 * g}-{10 * g + 10}" for g in range(10))]
            out[name] = {
                "bins": [*bins, "(above)", "(missing)"],
                "reference": numeric_shares(edges, groups, ref),
                "current": numeric_shares(edges, groups, cur),
            }
        else:
            top, vocabulary = feature["categories"], feature["vocabulary"]
            out[name] = {
                "bins": [*top[:20], "(other)", "(unseen)", "(missing)"],
                "reference": categorical_shares(top, vocabulary, ref),
                "current": categorical_shares(top, vocabulary, cur),
            }
    return out


def _exported(scraped: Metrics, model: str) -> dict[str, dict[str, dict[str, float]]]:
    """feature -> window -> bin label -> share, from driftmon_feature_bin_ratio."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for labels, value in scraped.find("driftmon_feature_bin_ratio", model=model):
        out.setdefault(labels["feature"], {}).setdefault(labels["window"], {})[labels["bin"]] = (
            value
        )
    return out


@pytest.mark.timeout(180)
def test_exported_shares_equal_shares_of_the_raw_events(
    broker: TansuBroker, topic: str, tmp_path: Path
) -> None:
    """Every exported share equals the raw-event share to 1e-12; only picked features export."""
    data = _data(np.random.default_rng(20261203))
    profiles = {m: _fit(tmp_path, m, data["ref"]) for m in ("pics", "some", "dark")}
    policies: dict[str, dict[str, object]] = {
        "pics": {"export_distributions": "all"},
        "some": {"export_distributions": "drifting", "export_distributions_top": 1},
        "dark": {"export_distributions": "none"},
    }
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        state_dir=tmp_path / "state",
        models=[
            model_entry(
                m,
                FEATURES,
                {"mode": "file", "path": str(tmp_path / "refs" / f"{m}.json")},
                **policies[m],
            )
            for m in profiles
        ],
        evaluation={"interval": "1s", "min_samples": 500},
    )
    with DaemonProcess(write_config(tmp_path / "driftmon.yaml", config), tmp_path) as daemon:
        daemon.start()
        produce(broker.bootstrap, topic, [e for m in profiles for e in _events(m, data["cur"])])
        for model in profiles:
            daemon.wait_metric("driftmon_events_accepted_total", N_CUR, model=model)
        valid_c = N_CUR - 20 - 10  # 20 missing, 10 invalid
        scraped = daemon.wait_metric(
            "driftmon_feature_window_samples", valid_c, model="dark", feature="c", window="current"
        )
        for model in profiles:  # one evaluation covers every model
            samples = scraped.value(
                "driftmon_feature_window_samples", model=model, feature="c", window="current"
            )
            assert samples == valid_c
        status = daemon.status()
        histogram = run_cli("status", "--url", daemon.url, "--feature", "c")
        unknown = run_cli("status", "--url", daemon.url, "--feature", "payload-1")
        assert daemon.stop() == 0

    expected = _expected(profiles["pics"], data)
    assert len(expected["c"]["bins"]) == 23  # 30 reference categories: 20 shown + the tail
    series = _exported(scraped, "pics")
    assert set(series) == {"x", "y", "c"}
    by_model = {m["model"]: {f["name"]: f for f in m["features"]} for m in status["models"]}
    for name, want in expected.items():
        for window in ("reference", "current"):
            labels = [f"{i:02d} {b}" for i, b in enumerate(want["bins"])]
            got = series[name][window]
            assert sorted(got) == labels, (name, window)
            for label, share in zip(labels, want[window], strict=True):
                assert abs(got[label] - share) <= 1e-12, (name, window, label, got[label], share)
            picture = by_model["pics"][name]["distribution"]
            assert picture["bins"] == want["bins"]
            for a, b in zip(picture[window], want[window], strict=True):
                assert abs(a - b) <= 1e-12, (name, window)
        assert abs(sum(want["current"]) - 1.0) < 1e-12
    x_current = series["x"]["current"]
    assert x_current["00 (below)"] >= 15 / (N_CUR - 25)  # the -50.0 values, and a few more
    assert series["c"]["current"]["21 (unseen)"] == pytest.approx(100 / (N_CUR - 10), abs=1e-12)

    # driftmon status --feature: one row per bin with both shares, from the same /status.
    assert histogram.returncode == 0, histogram.stderr
    rows = {line.split()[0]: line for line in histogram.stdout.splitlines()[3:] if line}
    assert rows.keys() >= {"(other)", "(unseen)", "(missing)", "k00"}
    unseen = [c for c in rows["(unseen)"].split() if c.endswith("%")]
    assert unseen == ["0.0%", f"{100 * expected['c']['current'][-2]:.1f}%"]
    assert unknown.returncode == 2 and "no feature 'payload-1'" in unknown.stderr

    # No label value comes from an event.
    all_bins = {labels["bin"] for labels, _ in scraped.find("driftmon_feature_bin_ratio")}
    assert not any("payload" in b or "onerror" in b or b[3:] == "u" for b in all_bins)
    assert {labels["feature"] for labels, _ in scraped.find("driftmon_feature_bin_ratio")} <= {
        "x",
        "y",
        "c",
    }

    # drifting: flagged features plus the single most drifting other one, by the /status view.
    some = list(by_model["some"].values())
    flagged = {f["name"] for f in some if f["drift_detected"]}
    assert "x" in flagged
    others = sorted(
        (f for f in some if not f["drift_detected"] and f["psi"] is not None),
        key=lambda f: (-f["psi"], f["name"]),
    )
    assert set(_exported(scraped, "some")) == flagged | {f["name"] for f in others[:1]}
    assert len(_exported(scraped, "some")) < 3 or len(flagged) >= 2

    # none: no series and no distribution in /status.
    assert _exported(scraped, "dark") == {}
    assert all(f["distribution"] is None for f in by_model["dark"].values())
    assert not math.isnan(scraped.value("driftmon_feature_psi", model="dark", feature="x"))
