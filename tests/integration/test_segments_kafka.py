"""Drift per segment end to end: `reference fit --segment-by`, a tansu broker, `driftmon run`.

A model with `segment_by: features.country` and `max_segments: 3` exports segment-labelled
series for GB, FR, DE and `__other__` only; a shift of x in FR alone is flagged on (FR, x)
and nowhere else; events without a usable country are counted and land in `__other__`; a
model without `segment_by` reading the same stream exports no segment series at all.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from tests.support.broker import TansuBroker
from tests.support.daemon_harness import (
    DaemonProcess,
    daemon_config,
    model_entry,
    produce,
    run_cli,
    write_config,
)

FEATURES = [("x", "numeric"), ("y", "numeric"), ("channel", "categorical")]
COUNTRIES = ("GB", "FR", "DE", "ES", "IT")
SHARES = (0.4, 0.25, 0.2, 0.1, 0.05)
N_REF, N_CUR = 6_000, 6_000
NO_COUNTRY = 60  # absent, null or a number


def _rows(rng: np.random.Generator, n: int, shift_fr: float) -> list[dict[str, Any]]:
    country = rng.choice(np.array(COUNTRIES), n, p=SHARES).tolist()
    x = rng.normal(0.0, 1.0, n)
    y = rng.exponential(1.0, n)
    channel = rng.choice(np.array(["web", "app"]), n).tolist()
    return [
        {
            "x": float(x[i]) + (shift_fr if country[i] == "FR" else 0.0),
            "y": float(y[i]),
            "channel": channel[i],
            "country": country[i],
        }
        for i in range(n)
    ]


def _fit(tmp_path: Path, rows: list[dict[str, Any]], model: str, *segments: str) -> Path:
    """`driftmon reference fit` on the rows as CSV (with `segments`: the segment flags)."""
    data = tmp_path / "train.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["x", "y", "channel", "country"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "refs" / f"{model}.json"
    features = ",".join(f"{n}:{k}" for n, k in FEATURES)
    fit = run_cli(
        "reference", "fit", str(data), "--model", model, "--features", features,
        *segments, "--no-progress", "-o", str(out),
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert ("3 segments of 'country' + __other__" in fit.stdout) == bool(segments)
    return out


def _events(rows: list[dict[str, Any]]) -> list[bytes]:
    end = time.time() - 5.0
    out = []
    for i, row in enumerate(rows):
        features = dict(row)
        if i < NO_COUNTRY // 3:
            del features["country"]
        elif i < 2 * NO_COUNTRY // 3:
            features["country"] = None
        elif i < NO_COUNTRY:
            features["country"] = 44
        ts = end - 30.0 + 30.0 * i / len(rows)
        for model in ("shop", "plain"):
            out.append(msgspec.json.encode({"ts": ts, "model": model, "features": features}))
    return out


@pytest.mark.timeout(180)
def test_a_segment_drift_shows_as_a_segment_labelled_series(
    broker: TansuBroker, topic: str, tmp_path: Path
) -> None:
    """FR's shift is flagged on segment FR only; labels stay within max_segments + 1."""
    rng = np.random.default_rng(20261313)
    rows = _rows(rng, N_REF, 0.0)
    shop = _fit(tmp_path, rows, "shop", "--segment-by", "country", "--max-segments", "3")
    plain = _fit(tmp_path, rows, "plain")
    current = _rows(rng, N_CUR, 0.8)
    config = daemon_config(
        bootstrap=broker.bootstrap,
        topics=[topic],
        state_dir=tmp_path / "state",
        models=[
            model_entry(
                "shop",
                FEATURES,
                {"mode": "file", "path": str(shop)},
                segment_by="features.country",
                max_segments=3,
            ),
            model_entry("plain", FEATURES, {"mode": "file", "path": str(plain)}),
        ],
        evaluation={"interval": "1s", "min_samples": 300},
    )
    with DaemonProcess(write_config(tmp_path / "driftmon.yaml", config), tmp_path) as daemon:
        daemon.start()
        produce(broker.bootstrap, topic, _events(current))
        daemon.wait_metric("driftmon_events_accepted_total", N_CUR, model="shop")
        daemon.wait_metric("driftmon_events_accepted_total", N_CUR, model="plain")
        scraped = daemon.wait_metric(  # an evaluation that saw every event (one snapshot)
            "driftmon_feature_window_samples", N_CUR, model="shop", feature="y", window="current"
        )
        status = daemon.status()
        assert daemon.stop() == 0

    events = {
        labels["segment"]: value
        for labels, value in scraped.find(
            "driftmon_segment_window_events", model="shop", window="current"
        )
    }
    countries = [r["country"] for r in current[NO_COUNTRY:]]
    assert events == {
        "GB": countries.count("GB"),
        "FR": countries.count("FR"),
        "DE": countries.count("DE"),
        "__other__": N_CUR - sum(countries.count(c) for c in ("GB", "FR", "DE")),
    }
    flagged = {
        (labels["segment"], labels["feature"])
        for labels, value in scraped.find("driftmon_segment_feature_drift_detected")
        if value == 1.0
    }
    assert flagged == {("FR", "x")}
    assert scraped.value("driftmon_segment_drifted_features", model="shop", segment="FR") == 1
    assert scraped.value("driftmon_segment_field_missing_events_total", model="shop") == NO_COUNTRY
    segment_series = [
        dict(key) for name, key in scraped.series if name.startswith("driftmon_segment_")
    ]
    assert segment_series and all(labels["model"] == "shop" for labels in segment_series)
    assert {labels.get("segment") for labels in segment_series} <= {*events, None}
    view = next(m for m in status["models"] if m["model"] == "shop")
    assert view["segment_by"] == "features.country"
    assert view["segments"][0]["segment"] == "FR"  # worst first
