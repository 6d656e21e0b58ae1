"""Per-segment series: only on models with `segment_by`, bounded by max_segments + 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from monitor import metrics
from monitor.metrics import DriftCollector
from monitor.runtime import model_runtimes
from monitor.segment_slices import OTHER_SEGMENT
from tests.support.builders import snapshot
from tests.unit.test_metrics import fixed_snapshot, segmented_model
from tests.unit.test_segments import START, _columns, _config, _data, _write_reference

SEGMENT_FAMILIES = {d.name for d in metrics.CATALOGUE if d.name.startswith("driftmon_segment_")}


def _lines(snap: object) -> list[str]:
    registry = CollectorRegistry()
    DriftCollector(registry).publish(snap)  # type: ignore[arg-type]
    return generate_latest(registry).decode().splitlines()


def test_a_model_without_segment_by_keeps_exactly_its_series() -> None:
    """Adding a segmented model changes no series of the others and gives them no segment one."""
    plain = [line for line in _lines(fixed_snapshot()) if not line.startswith("#")]
    both = _lines(snapshot(*fixed_snapshot().models, segmented_model()))
    others = [line for line in both if not line.startswith("#") and 'model="shop"' not in line]
    assert others == plain
    segment_samples = [
        line
        for line in both
        if line.split("{")[0].removesuffix("_total")
        in {n.removesuffix("_total") for n in SEGMENT_FAMILIES}
    ]
    assert segment_samples and all('model="shop"' in line for line in segment_samples)


def test_segment_label_values_stay_within_max_segments_plus_one(tmp_path: Path) -> None:
    """A stream with 5,000 distinct segment values exports at most max_segments + 1 of them."""
    rng = np.random.default_rng(21)
    _write_reference(tmp_path, rng, 20_000)
    runtime = model_runtimes(_config(tmp_path, "file"), clock=lambda: START + 3600)["m"]
    runtime.load_reference_file()
    numeric, categorical, _ = _data(rng, 5_000)
    hostile = np.asarray([f"attacker-{i}" for i in range(5_000)], dtype=object)
    runtime.ingest(_columns(numeric, categorical, hostile))
    lines = _lines(snapshot(runtime.evaluate(START + 3600)))
    values = {
        part.split('"')[1]
        for line in lines
        if line.startswith("driftmon_segment_")
        for part in line.split(",")
        if part.startswith("segment=")
    }
    assert len(values) <= 11 and OTHER_SEGMENT in values
    assert not any(v.startswith("attacker") for v in values)
    events = {s.segment: s.current_events for s in runtime.evaluate(START + 3600).segments}
    assert events[OTHER_SEGMENT] == 5_000
