"""Synthetic feature events with named drift scenarios, for demos, tests and benchmarks.

Layer 1 (numpy and msgspec only). Every model name gets the same demo feature set
(`DEMO_FEATURES`), drawn independently per row:

=============  ===========  =====================================================================
feature        kind         clean distribution
=============  ===========  =====================================================================
amount         numeric      lognormal(mu=3.0, sigma=1.0), rounded to cents
age            numeric      round(normal(40, 12)) clipped to 18..90 (integer-valued)
score          numeric      beta(2, 5), rounded to 4 decimals
latency_ms     numeric      gamma(shape=2, scale=40), rounded to 0.1
balance        numeric      normal(5000, 2000), rounded to cents; 3 % missing (null)
country        categorical  12 codes (`COUNTRIES`), Zipf-like weights 1/k^1.1
device         categorical  ios / android / web / other with weights 0.40 / 0.35 / 0.20 / 0.05
=============  ===========  =====================================================================

Scenarios (`SCENARIOS`; `affected_features` gives the ground truth, i.e. the only features whose
distribution changes) apply to the events whose time is >= `drift_start`:

- `none`: nothing changes.
- `mean-shift`: amount x1.6 (a shift of ln 1.6 = 0.47 sigma in log space) and score + 0.15
  (not clipped, so some scores exceed 1). KS D is about 0.19 on amount: a window of ~1,000
  events is enough to detect it.
- `variance`: age standard deviation x2 (normal(40, 24), same rounding and clipping).
- `new-category`: country is the brand-new code "ZZ" with probability 0.08; the other codes
  keep their relative weights.
- `missing-spike`: balance missing with probability 0.35 instead of 0.03 (the values that are
  present keep their distribution).
- `outliers`: latency_ms multiplied by 50 with probability 0.08.

Determinism: a generator draws from `numpy.random.Generator(PCG64(SeedSequence([seed,
crc32(model)])))` and always draws the same random numbers in the same order whatever the
scenario, so the same (model, seed) and the same sequence of calls give the same events, and a
drifted and a clean generator with the same seed produce identical unaffected columns.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from monitor.model import FeatureKind, FeatureSpec

__all__ = [
    "COUNTRIES",
    "DEMO_FEATURES",
    "DEVICES",
    "MODEL_VERSION",
    "NEW_CATEGORY",
    "SCENARIOS",
    "Columns",
    "EventGenerator",
    "affected_features",
    "encode",
    "encode_array",
]

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]

DEMO_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("amount", FeatureKind.NUMERIC),
    FeatureSpec("age", FeatureKind.NUMERIC),
    FeatureSpec("score", FeatureKind.NUMERIC),
    FeatureSpec("latency_ms", FeatureKind.NUMERIC),
    FeatureSpec("balance", FeatureKind.NUMERIC),
    FeatureSpec("country", FeatureKind.CATEGORICAL),
    FeatureSpec("device", FeatureKind.CATEGORICAL),
)
"""The demo feature set every model name gets, in the order the events list them."""

COUNTRIES: tuple[str, ...] = (
    "US", "GB", "DE", "FR", "IN", "BR", "CA", "AU", "JP", "ES", "IT", "NL",
)  # fmt: skip
DEVICES: tuple[str, ...] = ("ios", "android", "web", "other")
NEW_CATEGORY = "ZZ"
MODEL_VERSION = "v1"

_COUNTRY_P = 1.0 / np.arange(1, len(COUNTRIES) + 1) ** 1.1
_COUNTRY_P = _COUNTRY_P / _COUNTRY_P.sum()
_DEVICE_P = np.array([0.40, 0.35, 0.20, 0.05])

_AFFECTED: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "mean-shift": frozenset({"amount", "score"}),
    "variance": frozenset({"age"}),
    "new-category": frozenset({"country"}),
    "missing-spike": frozenset({"balance"}),
    "outliers": frozenset({"latency_ms"}),
}
SCENARIOS: tuple[str, ...] = tuple(_AFFECTED)
"""Every valid scenario name (a closed set)."""

_BALANCE_MISSING = 0.03
_BALANCE_MISSING_SPIKE = 0.35
_NEW_CATEGORY_P = 0.08
_OUTLIER_P = 0.08
_OUTLIER_FACTOR = 50.0
_AMOUNT_FACTOR = 1.6
_SCORE_SHIFT = 0.15
_AGE_MEAN, _AGE_SD, _AGE_MIN, _AGE_MAX = 40.0, 12.0, 18.0, 90.0


def _check_scenario(scenario: str) -> None:
    if scenario not in _AFFECTED:
        raise ValueError(f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")


def affected_features(scenario: str) -> frozenset[str]:
    """The names of the features whose distribution `scenario` changes (ValueError if unknown)."""
    _check_scenario(scenario)
    return _AFFECTED[scenario]


class Columns(NamedTuple):
    """Generated events as columns: event times, numeric (NaN = missing) and categorical ones.

    The numeric and categorical mappings have the shape `monitor.reference.fit_profile` takes.
    """

    ts: FloatArray
    numeric: dict[str, FloatArray]
    categorical: dict[str, ObjectArray]


class EventGenerator:
    """Draws demo events for one model, with `scenario` applied from event time `drift_start`.

    `drift_start=None` means the drift never starts (the events stay clean); use
    `-math.inf` to drift every event. The scenario is validated here (ValueError listing the
    valid ones).
    """

    def __init__(
        self, model: str, scenario: str = "none", *, seed: int, drift_start: float | None = None
    ) -> None:
        _check_scenario(scenario)
        self.model = model
        self.scenario = scenario
        self.drift_start = drift_start
        entropy = [int(seed) & 0xFFFFFFFF, zlib.crc32(model.encode("utf-8"))]
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))

    def columns(self, n: int, start_ts: float, rate: float) -> Columns:
        """Draw `n` events as columns; event i has time `start_ts + i / rate`.

        `rate` is in events per second of event time and must be > 0; `math.inf` gives every
        event the time `start_ts`.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if not rate > 0:
            raise ValueError("rate must be > 0 (math.inf: all events at start_ts)")
        rng = self._rng
        ts = start_ts + np.arange(n, dtype=np.float64) / rate
        if self.scenario == "none" or self.drift_start is None:
            drifted = np.zeros(n, dtype=bool)
        else:
            drifted = ts >= self.drift_start
        s = self.scenario

        # The same draws in the same order for every scenario (see the module docstring).
        amount = rng.lognormal(3.0, 1.0, n)
        age_z = rng.standard_normal(n)
        score = rng.beta(2.0, 5.0, n)
        latency = rng.gamma(2.0, 40.0, n)
        balance = rng.normal(5000.0, 2000.0, n)
        balance_u = rng.random(n)
        country_idx = rng.choice(len(COUNTRIES), size=n, p=_COUNTRY_P)
        country_u = rng.random(n)
        device_idx = rng.choice(len(DEVICES), size=n, p=_DEVICE_P)
        outlier_u = rng.random(n)

        if s == "mean-shift":
            amount = np.where(drifted, amount * _AMOUNT_FACTOR, amount)
            score = np.where(drifted, score + _SCORE_SHIFT, score)
        age_sd = np.where(drifted & (s == "variance"), 2.0 * _AGE_SD, _AGE_SD)
        age = np.clip(np.rint(_AGE_MEAN + age_sd * age_z), _AGE_MIN, _AGE_MAX)
        missing_p = np.where(
            drifted & (s == "missing-spike"), _BALANCE_MISSING_SPIKE, _BALANCE_MISSING
        )
        balance = np.where(balance_u < missing_p, np.nan, np.round(balance, 2))
        if s == "outliers":
            latency = np.where(
                drifted & (outlier_u < _OUTLIER_P), latency * _OUTLIER_FACTOR, latency
            )
        country = np.asarray(COUNTRIES, dtype=object)[country_idx]
        if s == "new-category":
            country[drifted & (country_u < _NEW_CATEGORY_P)] = NEW_CATEGORY
        device = np.asarray(DEVICES, dtype=object)[device_idx]

        numeric = {
            "amount": np.round(amount, 2),
            "age": age,
            "score": np.round(score, 4),
            "latency_ms": np.round(latency, 1),
            "balance": balance,
        }
        return Columns(ts, numeric, {"country": country, "device": device})

    def events(self, n: int, start_ts: float, rate: float) -> list[dict[str, Any]]:
        """Draw `n` events of the documented shape (see `columns` for the times).

        Each event is `{"ts": float, "model": str, "model_version": "v1", "features": {...}}`;
        age is an int, a missing balance is None (JSON null).
        """
        cols = self.columns(n, start_ts, rate)
        balance = cols.numeric["balance"]
        balance_obj = balance.astype(object)
        balance_obj[np.isnan(balance)] = None
        balance_list: list[Any] = balance_obj.tolist()
        values: list[Sequence[Any]] = [
            cols.numeric["amount"].tolist(),
            cols.numeric["age"].astype(np.int64).tolist(),
            cols.numeric["score"].tolist(),
            cols.numeric["latency_ms"].tolist(),
            balance_list,
            cols.categorical["country"].tolist(),
            cols.categorical["device"].tolist(),
        ]
        names = [spec.name for spec in DEMO_FEATURES]
        model = self.model
        return [
            {
                "ts": t,
                "model": model,
                "model_version": MODEL_VERSION,
                "features": dict(zip(names, row, strict=True)),
            }
            for t, row in zip(cols.ts.tolist(), zip(*values, strict=True), strict=True)
        ]

    @staticmethod
    def encode(events: Sequence[dict[str, Any]]) -> list[bytes]:
        """Same as the module-level `encode`."""
        return encode(events)


def encode(events: Sequence[dict[str, Any]]) -> list[bytes]:
    """One compact JSON object (UTF-8 bytes) per event, with msgspec (one Encoder per call)."""
    enc = msgspec.json.Encoder().encode
    return [enc(e) for e in events]


def encode_array(events: Sequence[dict[str, Any]]) -> bytes:
    """All `events` as one JSON array (the "several events in one message" form)."""
    return msgspec.json.encode(list(events))
