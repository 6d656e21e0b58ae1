"""Joint drift end to end: `reference fit --config`, a real tansu broker, a real `driftmon run`.

The reference is fitted by the CLI from a CSV with the model's correlation group and
reconstruction feature enabled; the current events rotate two correlated features (both
marginals unchanged) and carry a careless producer's values (strings for numbers, nulls, a
huge number). The exported correlation equals numpy.corrcoef on the winsorised raw values
of the window, the reconstruction feature drifts while the marginals do not, and a restart
from the checkpoint exports the same correlation.
"""

from __future__ import annotations

import json
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

FEATURES = [("x", "numeric"), ("y", "numeric"), ("z", "numeric"), ("c", "categorical")]
N_REF, N_CUR = 6_000, 4_000
JOINT = {"correlation": {"enabled": True}, "reconstruction": {"enabled": True}}


def _pairs(rng: np.random.Generator, n: int, rotated: bool) -> np.ndarray:
    """x, y standard normal, correlation 0.8 (90 degree rotation: -0.8); z independent."""
    v = rng.standard_normal((3, n))
    v[1] = 0.8 * v[0] + 0.6 * v[1]
    if rotated:
        v[0], v[1] = -v[1], v[0].copy()
    return v


def _config(tmp_path: Path, bootstrap: str, topic: str, state: Path) -> Path:
    model = model_entry(
        "joint", FEATURES, {"mode": "file", "path": str(tmp_path / "ref.json")}, **JOINT
    )
    config = daemon_config(
        bootstrap=bootstrap,
        topics=[topic],
        state_dir=state,
        models=[model],
        window={"bucket": "1m", "length": "10m", "allowed_lateness": "1m"},
        evaluation={"interval": "1s", "min_samples": 500},
    )
    return write_config(tmp_path / "driftmon.yaml", config)


def _current(rng: np.random.Generator) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Current events (with hostile values) and the numeric values the daemon should see."""
    raw = _pairs(rng, N_CUR, rotated=True)
    seen = raw.copy()
    features: list[dict[str, Any]] = [
        {"x": float(a), "y": float(b), "z": float(c), "c": "k"} for a, b, c in raw.T.tolist()
    ]
    for i in range(0, 40):
        features[i]["x"] = "1.5"  # a string for a number: invalid, missing for the pairs
        seen[0, i] = np.nan
    for i in range(40, 100):
        features[i]["y"] = None
        seen[1, i] = np.nan
    for i in range(100, 103):
        features[i]["z"] = 1e300  # finite, far outside: clipped for r, large error
        seen[2, i] = 1e300
    return features, seen


def _corrcoef(profile: dict[str, Any], seen: np.ndarray, a: int, b: int) -> float:
    """numpy.corrcoef of features a, b on their complete rows, winsorised as the profile says."""
    section = profile["joint"]["correlation"]
    lo, hi = np.asarray(section["lo"]), np.asarray(section["hi"])
    both = ~np.isnan(seen[a]) & ~np.isnan(seen[b])
    wa = np.clip(seen[a, both], lo[a], hi[a])
    wb = np.clip(seen[b, both], lo[b], hi[b])
    return float(np.corrcoef(wa, wb)[0, 1])


def _coefficient(scraped: Metrics, a: str, b: str, window: str) -> float:
    return scraped.value(
        "driftmon_correlation_coefficient", model="joint", feature_a=a, feature_b=b, window=window
    )


@pytest.mark.timeout(180)
def test_joint_drift_end_to_end(broker: TansuBroker, topic: str, tmp_path: Path) -> None:
    """Correlation r = numpy.corrcoef (1e-9), rotation caught, marginals quiet, restart exact."""
    rng = np.random.default_rng(20261203)
    ref = _pairs(rng, N_REF, rotated=False)
    csv_path = tmp_path / "train.csv"
    rows = [f"{a!r},{b!r},{c!r},k" for a, b, c in ref.T.tolist()]
    csv_path.write_text("x,y,z,c\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = _config(tmp_path, broker.bootstrap, topic, tmp_path / "state")
    fit = run_cli(
        "reference", "fit", str(csv_path), "--config", str(config), "--model", "joint",
        "--no-progress", "-o", str(tmp_path / "ref.json"),
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    profile = json.loads((tmp_path / "ref.json").read_text(encoding="utf-8"))
    assert {"correlation", "reconstruction"} <= set(profile["joint"])
    assert "__reconstruction__" in [f["name"] for f in profile["features"]]

    features, seen = _current(rng)
    end = time.time() - 5.0
    messages = [
        msgspec.json.encode({"ts": end - 60.0 + 60.0 * i / N_CUR, "model": "joint", "features": f})
        for i, f in enumerate(features)
    ]
    with DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        produce(broker.bootstrap, topic, messages)
        daemon.wait_metric("driftmon_events_accepted_total", N_CUR, model="joint")
        scraped = daemon.wait_metric(
            "driftmon_feature_window_samples",
            N_CUR,
            model="joint",
            feature="__reconstruction__",
            window="current",
        )
        scraped = daemon.wait_metric("driftmon_correlation_drifted_pairs", 1, model="joint")
        status = daemon.status()
        assert daemon.stop() == 0

    assert scraped.value("driftmon_correlation_pairs", model="joint") == 3
    correlation = status["models"][0]["correlation"]
    assert correlation["drifted_pairs"] == 1 and correlation["features"] == ["x", "y", "z"]
    assert correlation["top_pairs"][0]["feature_a"] == "x"
    expected = _corrcoef(profile, seen, 0, 1)
    assert abs(_coefficient(scraped, "x", "y", "current") - expected) < 1e-9
    assert abs(_coefficient(scraped, "x", "y", "reference") - _corrcoef(profile, ref, 0, 1)) < 1e-9
    assert scraped.value("driftmon_correlation_max_change", model="joint") > 1.0
    flags = {
        name: scraped.value("driftmon_feature_drift_detected", model="joint", feature=name)
        for name in ("x", "y", "z", "c", "__reconstruction__")
    }
    assert flags == {"x": 0, "y": 0, "z": 0, "c": 0, "__reconstruction__": 1}
    assert scraped.value("driftmon_feature_invalid_values_total", model="joint", feature="x") == 40

    with DaemonProcess(config, tmp_path) as daemon:  # restart: the checkpoint holds the sums
        daemon.start()
        again = daemon.wait_metric("driftmon_correlation_drifted_pairs", 1, model="joint")
        assert daemon.stop() == 0
    assert _coefficient(again, "x", "y", "current") == _coefficient(scraped, "x", "y", "current")
