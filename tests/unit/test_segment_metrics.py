"""Per-segment output: series only on models with `segment_by` (bounded), /status views."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from monitor import metrics
from monitor.http.jsonview import snapshot_to_json
from monitor.metrics import DriftCollector
from monitor.runtime import model_runtimes
from monitor.segment_slices import OTHER_SEGMENT, top_segments
from monitor.statuspage import render_status_page
from monitor.tools.statusview import render_status
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


def test_status_views_list_the_worst_segment_first() -> None:
    """/status JSON, the terminal view and the HTML page list segments worst first."""
    snap = snapshot(*fixed_snapshot().models, segmented_model())
    document = json.loads(snapshot_to_json(snap))
    shop = next(m for m in document["models"] if m["model"] == "shop")
    assert [s["segment"] for s in shop["segments"]] == ["GB", OTHER_SEGMENT]
    assert shop["segments"][0]["drifted_features"] == 1 and shop["segment_field_missing"] == 4
    fraud = next(m for m in document["models"] if m["model"] == "fraud")
    assert fraud["segments"] == [] and fraud["segment_by"] == ""
    text = render_status(document, width=120)
    assert "segments by features.country, worst first (4 events without the field" in text
    assert text.index("    GB ") < text.index(f"    {OTHER_SEGMENT} ")
    assert "drifted 1/1  basket (" in text
    assert text.count("segments by") == 1  # fraud and churn have none
    page = render_status_page(snap).decode()
    assert page.index("<td>GB</td>") < page.index(f"<td>{OTHER_SEGMENT}</td>")


def test_segment_values_that_cannot_be_labels_go_to_other() -> None:
    """Control characters, over-long values and the OTHER label itself never become segments."""
    column = np.asarray(
        ["\x1b[31mred"] * 50 + ["x" * 200] * 40 + [OTHER_SEGMENT] * 30 + ["ok"] * 5, dtype=object
    )
    assert top_segments(column, 10) == ("ok",)
