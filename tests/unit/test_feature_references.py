"""Per-feature references of warm-up and rolling models: a feature that cannot be fitted never
stops the model, is reported, retries, and survives a checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.account import BatchAccount
from monitor.config import Settings, load_settings, model_plans
from monitor.decode import ModelColumns
from monitor.errors import RejectReason
from monitor.histogram import INVALID_CATEGORY_PREFIX
from monitor.model import ModelEvaluation
from monitor.runtime import ModelRuntime

START = 1_800_000_000.0
WARMUP = 1000


def _settings(tmp_path: Path, mode: str = "warmup", min_samples: int = 100) -> Settings:
    config = tmp_path / "driftmon.yaml"
    config.write_text(
        f"""
kafka: {{bootstrap_servers: "127.0.0.1:9", topics: [t]}}
models:
  - name: m
    reference: {{mode: {mode}, warmup_events: {WARMUP}, lag: 2h, length: 1h}}
    features:
      - {{name: a, kind: numeric}}
      - {{name: b, kind: numeric}}
      - {{name: c, kind: categorical}}
window: {{bucket: 1m, length: 1h, allowed_lateness: 5m}}
evaluation: {{min_samples: {min_samples}}}
state: {{dir: "{tmp_path / "state"}"}}
"""
    )
    return load_settings(config, env={})


def _runtime(settings: Settings) -> ModelRuntime:
    return ModelRuntime(
        model_plans(settings)[0], clock=lambda: START + 10 * 86_400, state_dir=settings.state.dir
    )


def _batch(
    rng: np.random.Generator,
    n: int,
    t0: float,
    *,
    b: float | None = 0.0,
    c: object = "ok",
    seconds: float = 60.0,
) -> ModelColumns:
    """n events over `seconds` from t0; `b` = None draws normal values, else a constant."""
    a = rng.normal(size=n)
    b_col = rng.normal(size=n) if b is None else np.full(n, b)
    c_col = (
        rng.choice(np.array(["x", "y", "z"], dtype=object), n)
        if c == "ok"
        else np.full(n, c, dtype=object)
    )
    return ModelColumns(
        model="m",
        times=t0 + np.linspace(0.0, seconds, n, endpoint=False),
        numeric=np.vstack([a, b_col]).astype(np.float64),
        categorical=(c_col.astype(object),),
        model_version="v1",
        sources=np.zeros(n, dtype=np.int32),
    )


def _by_name(evaluation: ModelEvaluation) -> dict[str, object]:
    return {f.name: f for f in evaluation.features}


@pytest.mark.parametrize(
    ("b", "c", "bad"),
    [
        (np.inf, "ok", "b"),  # "hostile": a string where a number belongs is invalid (+inf)
        (np.nan, "ok", "b"),  # null or absent
        (None, None, "c"),  # categorical all missing
        (None, INVALID_CATEGORY_PREFIX + "number", "c"),  # categorical all invalid
    ],
)
@pytest.mark.parametrize("mode", ["warmup", "rolling"])
def test_a_feature_without_usable_warmup_values_has_no_reference_and_the_rest_works(
    tmp_path: Path, mode: str, b: float | None, c: object, bad: str
) -> None:
    """1,500 events with one unusable feature: the model runs, that feature alone is unready."""
    rng = np.random.default_rng(1)
    runtime = _runtime(_settings(tmp_path, mode))
    runtime.ingest(_batch(rng, 1500, START, b=b, c=c))
    assert runtime.ready
    evaluation = runtime.evaluate(START + 100)
    features = {f.name: f for f in evaluation.features}
    assert not features[bad].reference_ready
    assert "warm-up of 1000 events" in features[bad].reference_note
    good = [name for name in ("a", "b", "c") if name != bad]
    if mode == "warmup":
        assert all(features[name].reference_ready for name in good)
        assert features[good[0]].current_samples == 500
    assert bad in runtime.pending
    assert runtime.profile is not None and runtime.profile.feature(bad) is None
    # p0 (driftmon_feature_reference_unseen_estimate) only with fitted categorical bins
    fitted_c = runtime.profile.feature("c")
    expected_p0 = None if bad == "c" else 0.0  # x, y, z: each seen hundreds of times
    assert fitted_c is None or getattr(fitted_c.bins, "singleton_fraction", None) == 0.0
    assert features["c"].reference_unseen_estimate == expected_p0


def test_the_unusable_state_survives_a_restart_from_the_checkpoint(tmp_path: Path) -> None:
    """A restored runtime has the same partial reference, pending feature and window."""
    rng = np.random.default_rng(2)
    settings = _settings(tmp_path)
    first = _runtime(settings)
    first.ingest(_batch(rng, 1500, START, b=np.inf))
    state = first.to_state()
    second = _runtime(settings)
    second.restore(state)
    second.ingest(_batch(rng, 100, START + 60, b=np.inf))
    features = {f.name: f for f in second.evaluate(START + 200).features}
    assert second.reference_id == first.reference_id
    assert not features["b"].reference_ready and features["a"].reference_ready
    assert features["a"].current_samples == 600
    assert second.warmup_progress == (600, WARMUP)


def test_a_late_feature_gets_its_reference_after_a_repeated_warmup(tmp_path: Path) -> None:
    """b absent in the warm-up, present afterwards: fitted from the next 1,000 events.

    The other features' current windows keep their counts; b's current window starts empty.
    """
    rng = np.random.default_rng(3)
    runtime = _runtime(_settings(tmp_path))
    runtime.ingest(_batch(rng, WARMUP, START, b=np.nan))
    first_id = runtime.reference_id
    runtime.ingest(_batch(rng, 999, START + 60, b=None))
    assert "b" in runtime.pending
    runtime.ingest(_batch(rng, 301, START + 120, b=None))
    assert runtime.pending == {}
    assert runtime.reference_id != first_id
    assert runtime.profile is not None
    fitted_b = runtime.profile.feature("b")
    assert fitted_b is not None and fitted_b.samples == WARMUP
    features = {f.name: f for f in runtime.evaluate(START + 300).features}
    assert all(f.reference_ready for f in features.values())
    assert features["a"].current_samples == 1300
    assert features["b"].current_samples == 0  # its reference events are not its window
    runtime.ingest(_batch(rng, 200, START + 180, b=None))
    features = {f.name: f for f in runtime.evaluate(START + 400).features}
    assert features["b"].current_samples == 200
    assert features["a"].current_samples == 1500


def test_a_feature_present_too_rarely_keeps_retrying_with_bounded_memory(tmp_path: Path) -> None:
    """Under 50 finite values per warm-up: no reference, the buffer never exceeds one warm-up."""
    rng = np.random.default_rng(4)
    runtime = _runtime(_settings(tmp_path))
    for i in range(5):
        batch = _batch(rng, WARMUP, START + 60 * i, b=None)
        batch.numeric[1, 30:] = np.nan  # 30 finite values per 1,000 events
        runtime.ingest(batch)
        assert runtime.warmup_progress[0] <= WARMUP
    assert "only 30 finite values" in runtime.pending["b"]
    assert runtime.profile is not None and runtime.profile.feature("b") is None


def test_a_repeated_warmup_buffers_only_the_features_without_reference(tmp_path: Path) -> None:
    """After the first warm-up only b's column is buffered (and checkpointed)."""
    rng = np.random.default_rng(9)
    runtime = _runtime(_settings(tmp_path))
    runtime.ingest(_batch(rng, 1200, START, b=np.nan))
    state = runtime.to_state()
    assert state.arrays["warm.numeric"].shape == (1, 200)
    assert state.meta["warm"]["numeric_rows"] == [1]
    assert state.meta["warm"]["categorical_rows"] == []


def test_a_checkpoint_from_before_per_feature_warmups_still_resumes(tmp_path: Path) -> None:
    """The old form (warm_count + every column) resumes and then fits b's reference alone."""
    rng = np.random.default_rng(10)
    settings = _settings(tmp_path)
    first = _runtime(settings)
    batch = _batch(rng, 600, START, b=np.nan)
    first.ingest(batch)
    state = first.to_state()
    warm = state.meta.pop("warm")
    state.meta["warm_count"] = warm["count"]
    state.meta["warm_categorical"] = warm["categorical"]
    second = _runtime(settings)
    second.restore(state)
    assert second.warmup_progress == (600, WARMUP)
    second.ingest(_batch(rng, 400, START + 60, b=np.nan))
    assert second.ready and set(second.pending) == {"b"}


def test_no_usable_feature_at_all_restarts_the_whole_warmup(tmp_path: Path) -> None:
    """Every feature unusable: the model is not ready and collects a new warm-up."""
    rng = np.random.default_rng(5)
    runtime = _runtime(_settings(tmp_path))
    batch = _batch(rng, WARMUP, START, b=np.nan, c=None)
    batch.numeric[0, :] = np.nan
    account = BatchAccount()
    runtime.ingest(batch, account)
    assert not runtime.ready and account.events_accepted == {"m": WARMUP}
    assert runtime.warmup_progress == (0, WARMUP)
    assert set(runtime.pending) == {"a", "b", "c"}
    pending = runtime.evaluate(START + 100)
    assert not any(f.reference_ready for f in pending.features)
    runtime.ingest(_batch(rng, WARMUP, START + 60, b=None))
    assert runtime.ready and runtime.pending == {}


def test_the_rest_of_a_batch_after_a_failed_warmup_starts_the_next_one(tmp_path: Path) -> None:
    """1,500 unusable events in one batch: 1,000 fail, the other 500 are the new warm-up."""
    rng = np.random.default_rng(8)
    runtime = _runtime(_settings(tmp_path))
    batch = _batch(rng, 1500, START, b=np.nan, c=None)
    batch.numeric[0, :] = np.nan
    account = BatchAccount()
    runtime.ingest(batch, account)
    assert account.events_accepted == {"m": 1500} and not account.rejected
    assert runtime.warmup_progress == (500, WARMUP)


def test_a_rolling_reference_is_not_ready_until_its_lagged_window_fills(tmp_path: Path) -> None:
    """Rolling, lag 2h: the features are unready after the warm-up and ready after the lag."""
    rng = np.random.default_rng(6)
    runtime = _runtime(_settings(tmp_path, "rolling", min_samples=100))
    runtime.ingest(_batch(rng, WARMUP, START, b=None))
    runtime.ingest(_batch(rng, 600, START, b=None, seconds=3600))
    early = runtime.evaluate(START + 3600)
    assert runtime.ready
    assert not any(f.reference_ready for f in early.features)
    assert all("lagged window" in f.reference_note for f in early.features)
    for minute in range(60, 240, 10):
        runtime.ingest(_batch(rng, 40, START + 60 * minute, b=None, seconds=600))
    late = runtime.evaluate(START + 4 * 3600)
    assert all(f.reference_ready for f in late.features)


def test_events_older_than_the_window_but_within_lateness_are_marked_outside(
    tmp_path: Path,
) -> None:
    """Inside allowed_lateness yet before the window start: admitted, flagged as outside."""
    rng = np.random.default_rng(7)
    runtime = _runtime(_settings(tmp_path))
    runtime.ingest(_batch(rng, WARMUP, START))
    runtime.ingest(_batch(rng, 10, START + 7200, seconds=1))
    late = _batch(rng, 3, START + 7200 - 3600 - 120, seconds=1)  # 2 min before the window
    account = BatchAccount()
    runtime.ingest(late, account)
    assert account.rejected == {("", RejectReason.OUTSIDE_WINDOW): 3}
    assert not account.events_accepted
    samples = {f.name: f.current_samples for f in runtime.evaluate(START + 7300).features}
    assert samples["a"] == 10
