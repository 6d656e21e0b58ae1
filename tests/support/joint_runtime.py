"""The one-model runtime set-up that the correlation and reconstruction unit tests share.

A model `m` with numeric x, y, z and categorical c, a 1 h window of 1 min buckets, a warm-up
(or `file`) reference of `WARMUP` events and `min_samples` 500; `groups` is the YAML of the
model's joint groups (e.g. `correlation: {enabled: true}`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from monitor.config import Settings, load_settings
from monitor.decode import ModelColumns
from monitor.runtime import ModelRuntime, model_runtimes

START = 1_800_000_000.0
WARMUP = 5_000


def joint_settings(tmp_path: Path, groups: str, mode: str = "warmup") -> Settings:
    """Settings of model `m` with the joint `groups` (YAML lines at the model's indentation);
    a `file` reference is read from `tmp_path / "ref.json"`."""
    config = tmp_path / "driftmon.yaml"
    path = f", path: {tmp_path / 'ref.json'}" if mode == "file" else ""
    config.write_text(
        f"""
kafka: {{bootstrap_servers: "127.0.0.1:9", topics: [t]}}
models:
  - name: m
    reference: {{mode: {mode}, warmup_events: {WARMUP}{path}}}
{groups}
    features:
      - {{name: x, kind: numeric}}
      - {{name: c, kind: categorical}}
      - {{name: y, kind: numeric}}
      - {{name: z, kind: numeric}}
window: {{bucket: 1m, length: 1h, allowed_lateness: 0s}}
evaluation: {{min_samples: 500}}
state: {{dir: "{tmp_path / "state"}"}}
"""
    )
    return load_settings(config, env={})


def columns(rng: np.random.Generator, numeric: npt.NDArray[np.float64], t0: float) -> ModelColumns:
    """Events of model `m` with these x, y, z rows, random times in [t0, t0 + 30 min) and c."""
    n = numeric.shape[1]
    return ModelColumns(
        model="m",
        times=t0 + np.sort(rng.uniform(0, 1800, n)),
        numeric=numeric,
        categorical=(rng.choice(np.array(["a", "b"]), n).astype(object),),
        model_version="v1",
        sources=np.zeros(n, dtype=np.int32),
    )


def runtime_of(settings: Settings) -> ModelRuntime:
    """Model `m`'s runtime, with a clock far after every event of the tests."""
    return model_runtimes(settings, clock=lambda: START + 10**6)["m"]
