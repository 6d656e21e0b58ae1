"""Benchmark of shadow windows (reference.mode: registry); prints a Markdown table.

    .venv/bin/python -m bench.bench_shadow [--runs 30]

A registry model of 20 numeric + 2 categorical features ingests 10,000-event slices
(`ModelRuntime.ingest`, not deferred) with 0, 1 and 2 shadow windows (pre-warmed profiles,
`monitor.shadow`). Each shadow admits and counts the slice in its own bins, so its cost is
about one more count of the slice. Reported: median ms per slice over `--runs` slices after
a warm-up, and the ratio to the 0-shadow baseline measured in the same run. One core, no I/O.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.bench_core import cpu_model
from monitor.config import load_settings
from monitor.decode import ModelColumns
from monitor.model import FeatureKind, FeatureSpec
from monitor.reference import ReferenceProfile, fit_profile
from monitor.runtime import ModelRuntime, model_runtimes

BATCH = 10_000
N_NUMERIC = 20
START = 1_800_000_000.0


def _specs() -> list[FeatureSpec]:
    numeric = [FeatureSpec(f"f{i:02d}", FeatureKind.NUMERIC) for i in range(N_NUMERIC)]
    return [*numeric, FeatureSpec("c10", FeatureKind.CATEGORICAL)]


def _profile(seed: int, shift: float) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    specs = _specs()
    numeric = {s.name: rng.normal(shift, 1.0, 20_000) for s in specs[:N_NUMERIC]}
    categorical = {"c10": [f"k{i}" for i in rng.integers(0, 10, 20_000)]}
    return fit_profile("m", specs, numeric, categorical, model_version=f"s{seed}")


def _runtime(directory: Path, clock: list[float]) -> ModelRuntime:
    features = "\n".join(f"      - {{name: {s.name}, kind: {s.kind.value}}}" for s in _specs())
    config = directory / "driftmon.yaml"
    config.write_text(
        f"""
kafka: {{bootstrap_servers: "127.0.0.1:9", topics: [t]}}
models:
  - name: m
    reference: {{mode: registry}}
    features:
{features}
window: {{bucket: 1m, length: 1h}}
state: {{dir: "{directory / "state"}"}}
"""
    )
    return model_runtimes(load_settings(config, env={}), clock=lambda: clock[0])["m"]


def _slices(runs: int) -> list[ModelColumns]:
    rng = np.random.default_rng(1)
    out = []
    for k in range(runs + 1):
        times = START + 30.0 * k + np.sort(rng.uniform(0, 30, BATCH))
        out.append(
            ModelColumns(
                model="m",
                times=times,
                numeric=rng.normal(0.2, 1.0, (N_NUMERIC, BATCH)),
                categorical=(np.array([f"k{i}" for i in rng.integers(0, 12, BATCH)], object),),
                model_version="s0",
                sources=np.zeros(BATCH, dtype=np.int32),
            )
        )
    return out


def bench(n_shadows: int, runs: int, profiles: list[ReferenceProfile]) -> float:
    """Median seconds of one slice's ingest with `n_shadows` shadow windows."""
    clock = [START + 7200]
    with tempfile.TemporaryDirectory() as tmp:
        runtime = _runtime(Path(tmp), clock)
        runtime.swap(profiles[0])
        for profile in profiles[1 : 1 + n_shadows]:
            runtime.shadows.add(profile, "prewarm", START)
        samples = []
        for columns in _slices(runs):
            started = time.perf_counter()
            runtime.ingest(columns)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples[1:])


def main() -> None:
    """Run 0, 1 and 2 shadows and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    profiles = [_profile(seed, shift) for seed, shift in ((0, 0.0), (1, 0.5), (2, 1.0))]
    results = {n: bench(n, max(args.runs, 2), profiles) for n in (0, 1, 2)}
    print(f"### driftmon shadow-window benchmark ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)")
    print()
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} cores visible (one used); Python "
        f"{platform.python_version()}, numpy {np.__version__}"
    )
    print()
    print("| shadows | ingest of 10k events x 21 features (median) | ratio to 0 shadows |")
    print("|---|---|---|")
    for n, seconds in results.items():
        print(f"| {n} | {seconds * 1e3:.2f} ms | {seconds / results[0]:.2f} x |")
    print()
    print("A shadow is at most two per model and exists only while a profile is pre-warmed")
    print("or, when following model versions, while another version is in the window.")


if __name__ == "__main__":
    main()
