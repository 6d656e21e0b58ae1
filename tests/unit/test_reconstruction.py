"""Tests of monitor.reconstruction: the PCA basis, the per-event error, JSON and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.reconstruction import PcaBasis, fit_basis

NAMES = ("a", "b", "c", "d")


def _sample(rng: np.random.Generator, n: int) -> np.ndarray:
    """a, b correlated 0.9; c, d independent; d on a scale of 1e6."""
    z = rng.standard_normal((4, n))
    z[1] = 0.9 * z[0] + np.sqrt(1 - 0.81) * z[1]
    z[3] = 1e6 + 1e3 * z[3]
    return z


def test_basis_keeps_ninety_percent_and_errors_match_an_svd() -> None:
    """k is the fewest components reaching 90 %; e equals the residual of numpy's SVD projection."""
    rng = np.random.default_rng(1)
    raw = _sample(rng, 20_000)
    basis = fit_basis(NAMES, raw)
    z = (raw - raw.mean(axis=1, keepdims=True)) / raw.std(axis=1, keepdims=True)
    _, singular, vt = np.linalg.svd(z.T, full_matrices=False)
    share = np.cumsum(singular**2) / np.sum(singular**2)
    k = int(np.searchsorted(share, 0.9)) + 1
    assert basis.components.shape == (4, k) and basis.explained == pytest.approx(share[k - 1])
    assert np.allclose(basis.components.T @ basis.components, np.eye(k), atol=1e-12)
    top = vt[:k].T
    residual = z - top @ (top.T @ z)
    assert np.allclose(basis.errors(raw), (residual**2).sum(axis=0), rtol=1e-9, atol=1e-9)


def test_missing_values_are_imputed_with_the_reference_mean() -> None:
    """A missing value counts as the reference mean; an event with nothing present is NaN."""
    rng = np.random.default_rng(2)
    raw = _sample(rng, 5_000)
    basis = fit_basis(NAMES, raw)
    event = raw[:, :3].copy()
    event[2, 0] = np.nan
    event[:, 1] = np.nan
    imputed = event.copy()
    imputed[2, 0] = basis.mean[2]
    errors = basis.errors(event)
    assert errors[0] == pytest.approx(basis.errors(imputed[:, :1])[0], rel=1e-12)
    assert np.isnan(errors[1]) and np.isfinite(errors[2])
    hostile = np.array([[np.inf], [-np.inf], [np.nan], [1e308]])
    assert np.isfinite(basis.errors(hostile)).all()  # inf imputed, 1e308 clipped: finite


def test_at_most_g_minus_one_components_and_json_round_trip() -> None:
    """Independent features keep G - 1 components at most; the basis survives JSON exactly."""
    rng = np.random.default_rng(3)
    basis = fit_basis(("x", "y"), rng.standard_normal((2, 1000)))
    assert basis.components.shape == (2, 1)
    back = PcaBasis.from_json(json.loads(json.dumps(basis.to_json())))
    assert np.array_equal(back.components, basis.components)
    assert np.array_equal(back.mean, basis.mean) and back.names == basis.names


def test_malformed_bases_and_unusable_data_are_refused() -> None:
    """Wrong shapes, non-orthonormal components, too few values: ValueError, never a crash."""
    rng = np.random.default_rng(4)
    good = fit_basis(NAMES, _sample(rng, 1000)).to_json()
    skewed = {**good, "components": (np.ones((4, 1))).tolist()}
    full = {**good, "components": np.eye(4).tolist()}
    hostile = (
        {**good, "mean": {"x": 1}},
        {**good, "scale": [10**400, 1, 1, 1]},
        {**good, "components": "abc"},
        {**good, "explained": 10**400},
        {**good, "explained": True},
    )  # a TypeError or OverflowError here crashed `driftmon run` at every start
    for item in (skewed, full, {**good, "scale": [1, 1, 1, -1]}, {"features": ["a"]}, None):
        with pytest.raises(ValueError):
            PcaBasis.from_json(item)
    for item in hostile:
        with pytest.raises(ValueError, match=r"not an array of numbers|share in"):
            PcaBasis.from_json(item)
    with pytest.raises(ValueError, match="no finite"):
        fit_basis(("a", "b"), np.vstack([np.ones(10), np.full(10, np.nan)]))
    with pytest.raises(ValueError, match="at least 3"):
        fit_basis(("a", "b"), np.ones((2, 2)))
