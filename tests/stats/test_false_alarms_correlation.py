"""The correlation false-alarm simulation (bench.false_alarms_correlation): its streams, its
alert counting and its alert are what they claim (docs/statistics.md section 7)."""

from __future__ import annotations

import numpy as np
import yaml

from bench import false_alarms as fa
from bench import false_alarms_correlation as fac
from monitor.correlation import CorrelationWindow, correlations, fit_reference, moment_sums


def test_the_simulated_correlation_alert_is_the_shipped_rule() -> None:
    """DriftmonCorrelationDrift is drifted_pairs > 0 held 10 minutes: 41 evaluations."""
    rules = yaml.safe_load(fa.RULES.read_text(encoding="utf-8"))
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == fac.ALERT]
    expr = " ".join(rule["expr"].split())
    assert expr == "max by (namespace, job, model) (driftmon_correlation_drifted_pairs) > 0"
    assert fa.run_length_for(fa.rule_for_seconds(fac.ALERT)) == 41


def test_streams_have_the_documented_correlation() -> None:
    """numpy.corrcoef of 200,000 draws (of their logs for lognormal marginals) matches the
    fixed matrix to 0.01, and the matrix spans 0.2 to 0.8."""
    rng = np.random.default_rng([20_261_203, 11])
    want = fac.correlation_matrix(10)
    assert {round(float(v), 3) for v in want[np.triu_indices(10, 1)]} >= {0.2, 0.8, 0.64}
    for shape in fac.SHAPES:
        x = fac.Stream(10, shape).draw(rng, 200_000)
        z = np.log(x) if shape == "lognormal" else x
        assert np.abs(np.corrcoef(z) - want).max() < 0.01, shape


def test_runs_count_one_alert_per_run_that_reaches_the_for_duration() -> None:
    """Runs of 40, 41 and 82 flagged evaluations: three episodes, two alerts, longest 82."""
    runs = fac.Runs(41)
    for length in (40, 41, 82):
        for _ in range(length):
            runs.step(True)
        runs.step(False)
    runs.close()
    assert (runs.episodes, runs.alerts, runs.longest) == (3, 2, 82)


def test_a_window_of_slices_holds_the_last_hour_as_numpy_corrcoef_sees_it() -> None:
    """Slices added as the simulation adds them give, at the head, r = numpy.corrcoef of the
    winsorised events of the last 60 one-minute buckets (1e-9)."""
    rng = np.random.default_rng([20_261_203, 12])
    stream = fac.Stream(6, "lognormal")
    names = [f"f{i}" for i in range(6)]
    reference = fit_reference(names, stream.draw(rng, 10_000))
    window = CorrelationWindow(6, fa.BUCKET_S, 60, 61)
    kept: list[tuple[int, np.ndarray]] = []
    t = fa.START
    for _ in range(4 * 90):  # 90 minutes of 15-s slices at 100 events/min
        n = int(rng.poisson(25))
        bucket = int(t // fa.BUCKET_S)
        x = stream.draw(rng, n)
        window.add(bucket, moment_sums(reference.transform(x)))
        kept.append((bucket, x))
        t += fa.EVALUATION_S
    head = int((t - fa.EVALUATION_S) // fa.BUCKET_S)
    held = np.concatenate([x for b, x in kept if head - 60 < b <= head], axis=1)
    winsorised = np.clip(held, reference.lo[:, None], reference.hi[:, None])
    r, rows = correlations(window.current(head))
    assert rows[0, 0] == held.shape[1]
    assert np.abs(r - np.corrcoef(winsorised)).max() < 1e-9
