"""Multivariate reconstruction error: a PCA basis of the reference and each event's residual.

A model's reconstruction group is up to `MAX_GROUP` numeric features (configured, or the
first 64). numpy only.

Fit (on the reference events): impute each missing value (NaN) with the feature's reference
mean m_a, standardise with the reference standard deviation s_a (s_a = 1 for a constant
feature): z_a = (x_a - m_a) / s_a. Eigen-decompose the covariance of z (the correlation
matrix) and keep the k leading eigenvectors V (G x k), with k the fewest whose eigenvalues
reach `variance` (0.9) of the total, and at most G - 1 (k = G would reconstruct every event
exactly).

Error of an event: e = |z - V V^T z|^2 (the squared distance to the k-dimensional subspace),
with the event's missing values (NaN, +-inf) imputed by the reference mean (z_a = 0) and z
clipped to +-Z_LIMIT (so e is finite whatever a producer sends); an event with every
feature of the group missing has no error (NaN, a missing value). The errors form a virtual
numeric feature, `VIRTUAL_FEATURE`, binned and tested like any other: its reference histogram
is fitted from the reference events' errors, so KS, PSI, the decision rule, the alerts and
the dashboards apply unchanged. A joint change that keeps every marginal (a rotation of two
correlated features) moves events off the reference subspace and raises the errors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.model import RECONSTRUCTION_FEATURE

FloatArray = npt.NDArray[np.float64]

VIRTUAL_FEATURE = RECONSTRUCTION_FEATURE
"""The name of the reconstruction-error feature in metrics, /status and the profile."""
MAX_GROUP = 64
DEFAULT_VARIANCE = 0.9
Z_LIMIT = 1e6
"""Standardised values are clipped to +-Z_LIMIT, so an error is finite (<= 64 x 4e12)."""


@dataclass(frozen=True, slots=True, eq=False)
class PcaBasis:
    """The reference's standardisation and its k leading principal directions."""

    names: tuple[str, ...]
    mean: FloatArray
    scale: FloatArray
    components: FloatArray
    """float64[G, k], orthonormal columns."""
    explained: float
    """Share of the reference variance the k components keep."""

    def errors(self, values: FloatArray) -> FloatArray:
        """e = |z - V V^T z|^2 per event of raw values float64[G, N]; NaN when all missing."""
        x = np.asarray(values, dtype=np.float64)
        present = np.isfinite(x)
        with np.errstate(over="ignore", invalid="ignore"):
            z = np.where(present, (x - self.mean[:, None]) / self.scale[:, None], 0.0)
        z = np.clip(z, -Z_LIMIT, Z_LIMIT)
        residual = z - self.components @ (self.components.T @ z)
        error = np.einsum("ij,ij->j", residual, residual)
        return np.where(present.any(axis=0), error, np.nan)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (floats round-trip exactly through `json`)."""
        return {
            "features": list(self.names),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "components": self.components.tolist(),
            "explained": self.explained,
        }

    @classmethod
    def from_json(cls, data: object) -> PcaBasis:
        """Inverse of `to_json`; ValueError when shapes or values do not fit."""
        if not isinstance(data, dict):
            raise ValueError("reconstruction basis must be an object")
        names = data.get("features")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("reconstruction basis: features must be a list of names")
        g = len(names)
        if not 2 <= g <= MAX_GROUP or len(set(names)) != g:
            raise ValueError(f"reconstruction basis: 2 to {MAX_GROUP} distinct features")
        mean, scale, components = (_floats(data, k) for k in ("mean", "scale", "components"))
        explained = data.get("explained")
        if mean.shape != (g,) or scale.shape != (g,) or components.ndim != 2:
            raise ValueError("reconstruction basis: array shapes do not match the features")
        if not 1 <= components.shape[1] < g or components.shape[0] != g:
            raise ValueError("reconstruction basis: needs 1 to G - 1 components of length G")
        arrays_ok = all(np.isfinite(a).all() for a in (mean, scale, components))
        if not arrays_ok or (scale <= 0).any() or not isinstance(explained, float | int):
            raise ValueError("reconstruction basis: non-finite value or scale <= 0")
        if isinstance(explained, bool) or not 0.0 <= explained <= 1.0 + 1e-9:
            raise ValueError("reconstruction basis: explained must be a share in [0, 1]")
        gram = components.T @ components
        if not np.allclose(gram, np.eye(components.shape[1]), atol=1e-6):
            raise ValueError("reconstruction basis: components are not orthonormal")
        return cls(tuple(names), mean, scale, components, float(explained))


def _floats(data: dict[str, object], key: str) -> FloatArray:
    """`data[key]` as a float64 array; ValueError for anything that is not numbers."""
    try:
        return np.asarray(data.get(key), dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"reconstruction basis: {key} is not an array of numbers") from exc


def fit_basis(
    names: Sequence[str], values: FloatArray, variance: float = DEFAULT_VARIANCE
) -> PcaBasis:
    """Fit the basis (module docstring) from raw reference values float64[G, N].

    ValueError when the group is not 2..MAX_GROUP wide, a feature has no finite value, or
    fewer than 3 events have a value.
    """
    x = np.asarray(values, dtype=np.float64)
    g = len(names)
    if not 2 <= g <= MAX_GROUP or x.ndim != 2 or x.shape[0] != g:
        raise ValueError(f"a reconstruction group has 2 to {MAX_GROUP} features, one row each")
    if not 0 < variance < 1:
        raise ValueError("variance must be in (0, 1)")
    present = np.isfinite(x)
    if not present.any(axis=1).all():
        raise ValueError("a feature of the reconstruction group has no finite value")
    if int(present.any(axis=0).sum()) < 3:
        raise ValueError("the reconstruction group needs at least 3 events with a value")
    counts = present.sum(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = np.where(present, x, 0.0).sum(axis=1) / counts
        imputed = np.where(present, x, mean[:, None])
        std = imputed.std(axis=1)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        mean, std = _scaled_mean_std(x, present, counts)  # values near the float range
        imputed = np.where(present, x, mean[:, None])
    scale = np.where((std > 0) & np.isfinite(std), std, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        z = np.clip((imputed - mean[:, None]) / scale[:, None], -Z_LIMIT, Z_LIMIT)
    covariance = (z @ z.T) / max(1, z.shape[1] - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    total = float(eigenvalues.sum())
    share = np.cumsum(eigenvalues) / total if total > 0 else np.ones(g)
    k = min(int(np.searchsorted(share, variance - 1e-12)) + 1, g - 1)
    explained = float(share[k - 1]) if math.isfinite(float(share[k - 1])) else 0.0
    components = np.ascontiguousarray(eigenvectors[:, order[:k]])
    if not (np.isfinite(mean).all() and np.isfinite(components).all()):
        raise ValueError("the group's reference values do not give a finite basis")
    return PcaBasis(tuple(names), mean, scale, components, explained)


def _scaled_mean_std(
    x: FloatArray, present: npt.NDArray[np.bool_], counts: npt.NDArray[np.intp]
) -> tuple[FloatArray, FloatArray]:
    """Per row, the mean and standard deviation of the present values (missing ones imputed
    with the mean) computed on the values divided by the row's largest |value|, so a row
    near the float range (a producer's 1.8e308 sentinel) does not overflow."""
    magnitude = np.where(present, np.abs(x), 0.0).max(axis=1)
    magnitude = np.where((magnitude > 0) & np.isfinite(magnitude), magnitude, 1.0)
    scaled = np.where(present, x / magnitude[:, None], 0.0)
    mean = scaled.sum(axis=1) / counts
    std = np.where(present, scaled, mean[:, None]).std(axis=1)
    return mean * magnitude, std * magnitude
