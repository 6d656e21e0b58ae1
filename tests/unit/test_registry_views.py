"""The registry reference view in /status, `driftmon status` and the status page; the
pre-warm records of the registry table."""

from __future__ import annotations

import json

import numpy as np

from monitor.errors import RegistryRejectReason
from monitor.http.jsonview import snapshot_to_json
from monitor.model import ActivationInfo, FeatureKind, FeatureSpec, ReferenceView, ShadowInfo
from monitor.reference import ReferenceProfile, fit_profile
from monitor.registry import (
    MAX_SHADOWS,
    PrewarmRecord,
    RegistryTable,
    encode_prewarm,
    encode_profile,
    prewarm,
    warmup_records,
)
from monitor.statuspage import render_status_page
from monitor.tools.statusview import render_status
from tests.support import builders

VIEW = ReferenceView(
    topic="driftmon.references",
    registry_active="sha256:aaaa",
    following=True,
    shadows=(ShadowInfo("sha256:bbbb", "v2", "model_version v2 in the stream", 1.8e9, 640),),
    activations=(
        ActivationInfo("sha256:aaaa", "v1", "rollback", 1.8e9, "ops", "v2 reverted", False),
    ),
    version_shares=(("v1", 0.75), ("v2", 0.25)),
    note="",
)


def _snapshot() -> bytes:
    model = builders.evaluation(
        "fraud",
        builders.numeric("amount"),
        reference_id="sha256:aaaa",
        reference_mode="registry",
        reference_view=VIEW,
    )
    return snapshot_to_json(builders.snapshot(model))


def test_status_json_carries_the_reference_view() -> None:
    """/status has the registry's choice, the shadows, the activations and version shares."""
    view = json.loads(_snapshot())["models"][0]["reference_view"]
    assert view["registry_active"] == "sha256:aaaa"
    assert view["shadows"][0]["reference_id"] == "sha256:bbbb"
    assert view["activations"][0]["cause"] == "rollback"
    assert view["version_shares"] == [["v1", 0.75], ["v2", 0.25]]


def test_driftmon_status_prints_the_reference_view() -> None:
    """The terminal view names the registry's choice, the shadow and the last activation."""
    text = render_status(json.loads(_snapshot()), width=200)
    assert "registry driftmon.references names sha256:aaaa" in text
    assert "following model versions (v1 75" in text
    assert "shadow sha256:bbbb (model_version v2 in the stream, 640 events)" in text
    assert "sha256:aaaa rollback" in text


def test_status_page_shows_the_reference_view_escaped() -> None:
    """The status page shows the view; operator text is HTML-escaped."""
    hostile = ActivationInfo("sha256:cccc", "v3", "operator", 1.8e9, "<b>x</b>", "<script>", True)
    model = builders.evaluation(
        "fraud",
        builders.numeric("amount"),
        reference_id="sha256:cccc",
        reference_mode="registry",
        reference_view=ReferenceView("refs", "sha256:cccc", False, (), (hostile,), (), "no shadow"),
    )
    page = render_status_page(builders.snapshot(model)).decode()
    assert "registry <code>refs</code> names <code>sha256:cccc</code>" in page
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "(from a shadow)" in page and "no shadow" in page


def _profile(model: str, seed: int, version: str = "v1") -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    specs = [FeatureSpec("x", FeatureKind.NUMERIC)]
    return fit_profile(model, specs, {"x": rng.normal(size=300)}, {}, model_version=version)


def test_prewarm_records_are_checked_against_the_table() -> None:
    """A pre-warm of registered profiles is kept (newest first, at most two); unknown ids,
    another model's profile and too long a list are refused with their reason."""
    table = RegistryTable()
    profiles = [_profile("m", seed) for seed in range(3)]
    other = _profile("o", 9)
    for p in [*profiles, other]:
        for _, value in encode_profile(p, pushed_at=1.0, pushed_by="t"):
            assert table.apply(value) is None
    for p in profiles:
        record = prewarm(table, "m", p.reference_id, at=1.0, by="t")
        assert table.apply(encode_prewarm(record)[1]) is None
    assert table.prewarm["m"].reference_ids == [
        profiles[2].reference_id,
        profiles[1].reference_id,
    ]
    bad = [
        (["sha256:" + "0" * 16], RegistryRejectReason.UNKNOWN_REFERENCE),
        ([other.reference_id], RegistryRejectReason.MODEL_MISMATCH),
        (
            [p.reference_id for p in profiles][: MAX_SHADOWS + 1],
            RegistryRejectReason.INVALID_RECORD,
        ),
    ]
    for ids, reason in bad:
        outcome = table.apply(encode_prewarm(PrewarmRecord(1, "m", ids, 2.0, "t"))[1])
        assert outcome is not None and outcome.reason is reason
    assert len(table.prewarm["m"].reference_ids) == 2


def test_warmup_records_publish_once_per_model() -> None:
    """A warm-up profile is published with a `warmup` activation only while the model has none."""
    table = RegistryTable()
    profile = _profile("m", 1)
    records = warmup_records(table, profile, at=1.0, by="replica-0")
    for _, value in records:
        assert table.apply(value) is None
    assert table.activations["m"].cause == "warmup"
    assert warmup_records(table, _profile("m", 2), at=2.0, by="replica-1") == []
