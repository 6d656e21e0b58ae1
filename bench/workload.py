"""The benchmark workload: one labelled, deterministic stream of feature events (numpy only).

Every benchmark (driftmon and each peer, in-memory or through Kafka) reads this workload, so
every table is about the same data. It needs nothing but numpy, because the peers import it
from their own virtualenvs (through `bench.dataset`, which writes it to an .npz file once).

Features of one event (the base width: 20 numeric + 2 categorical):

=========  ============  ===================================================================
feature    shape         clean distribution
=========  ============  ===================================================================
f00-f07    normal        N(10 i, 1 + i/2) for i = 0..7
f08-f13    lognormal     exp(N(j/2, 0.4 + 0.1 j)) for j = 0..5
f14-f18    heavy-tailed  Student-t(df=2) * (1 + k), k = 0..4, plus 1 % outliers drawn from
                         +-U(50, 500) * (1 + k)
f19        missing       N(0, 1) with 5 % missing values (NaN; JSON null)
c10        categorical   10 levels a0..a9, p(rank r) ~ 1/r
c1000      categorical   1000 levels b000..b999, p(rank r) ~ 1/r^1.1
=========  ============  ===================================================================

Reference: 100,000 clean events. Current stream: 60 windows of 10,000 events. Windows 0-9
are clean; then each of the 7 scenarios below drifts 5 consecutive windows, followed by 2
clean windows; window 59 is clean (35 drifted windows, 25 clean ones):

==============  ===========  ==================================================  ========
scenario        windows      change (only these features change)                 features
==============  ===========  ==================================================  ========
small-shift     10-14        mean + 0.25 sd                                      f00-f03
large-shift     17-21        mean + 1 sd                                         f00-f03
variance        24-28        sd x 1.5 (f04, f05, normal); sigma x 1.5 (f08,      f04 f05
                             f09, lognormal)                                     f08 f09
category-mix    31-35        c10 probabilities reversed; c1000 probabilities     c10
                             rotated by 500 ranks                                c1000
new-category    38-42        c10: 5 % become the unseen level a10; c1000: 3 %    c10
                             become one of 50 unseen levels n000-n049            c1000
missing-spike   45-49        f19 missing 5 % -> 30 %; f06 missing 0 % -> 10 %    f06 f19
outlier-burst   52-56        f14 outliers 1 % -> 10 %; f10: 5 % of values x 20   f10 f14
==============  ===========  ==================================================  ========

Ground truth (`ground_truth()`): a (window, feature) pair is drifted iff its window runs a
scenario that lists the feature: 5 x (4 + 4 + 4 + 2 + 2 + 2 + 2) = 100 drifted pairs (80
numeric, 20 categorical) and 60 x 22 - 100 = 1,220 clean pairs.

Wider events (`draw(..., n_numeric, n_categorical)`, used for 200 and 2000 features): numeric
feature i has the shape of base feature i mod 20 and categorical feature j the shape of
c10 (j even) or c1000 (j odd); scenarios only touch the first block (the base features).

Determinism: the reference is drawn from child 0 of `SeedSequence(SEED).spawn(61)` and window
w from child w + 1, so any window can be drawn alone. Each column always draws the same
random numbers in the same order whatever the scenario (effects only transform them), so a
drifted window and its clean twin share every unaffected column.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
CodeArray = npt.NDArray[np.int32]
ObjectArray = npt.NDArray[np.object_]

SEED = 20240601
REFERENCE_EVENTS = 100_000
WINDOW_EVENTS = 10_000
BASE_NUMERIC = 20
BASE_CATEGORICAL = 2

NUMERIC_FEATURES: tuple[str, ...] = tuple(f"f{i:02d}" for i in range(BASE_NUMERIC))
CATEGORICAL_FEATURES: tuple[str, ...] = ("c10", "c1000")
FEATURES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES

#: Levels of each categorical shape (c10, c1000): the reference levels, then the unseen ones
#: that only the new-category scenario emits. Codes index into these tuples.
LEVELS: tuple[tuple[str, ...], tuple[str, ...]] = (
    tuple(f"a{i}" for i in range(11)),
    tuple(f"b{i:03d}" for i in range(1000)) + tuple(f"n{i:03d}" for i in range(50)),
)
REFERENCE_LEVELS = (10, 1000)
_ZIPF_POWER = (1.0, 1.1)

_OUTLIER_RATE = 0.01
_MISSING_RATE = 0.05


@dataclass(frozen=True, slots=True)
class Scenario:
    """One injected drift: its name, the features it changes and what it does to them."""

    name: str
    features: tuple[str, ...]
    description: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("small-shift", ("f00", "f01", "f02", "f03"), "mean + 0.25 sd"),
    Scenario("large-shift", ("f00", "f01", "f02", "f03"), "mean + 1 sd"),
    Scenario(
        "variance",
        ("f04", "f05", "f08", "f09"),
        "sd x 1.5 (f04, f05 normal); sigma x 1.5 (f08, f09 lognormal)",
    ),
    Scenario(
        "category-mix",
        ("c10", "c1000"),
        "c10 probabilities reversed; c1000 probabilities rotated by 500 ranks",
    ),
    Scenario(
        "new-category",
        ("c10", "c1000"),
        "c10: 5 % unseen level a10; c1000: 3 % over 50 unseen levels n000-n049",
    ),
    Scenario("missing-spike", ("f06", "f19"), "f19 missing 5 % -> 30 %; f06 missing 0 % -> 10 %"),
    Scenario("outlier-burst", ("f10", "f14"), "f14 outliers 1 % -> 10 %; f10: 5 % of values x 20"),
)
SCENARIO_NAMES: tuple[str, ...] = tuple(s.name for s in SCENARIOS)
_BY_NAME = {s.name: s for s in SCENARIOS}

DRIFT_WINDOWS_PER_SCENARIO = 5
CLEAN_AFTER_SCENARIO = 2
LEADING_CLEAN = 10


def _schedule() -> tuple[str | None, ...]:
    plan: list[str | None] = [None] * LEADING_CLEAN
    for scenario in SCENARIOS:
        plan += [scenario.name] * DRIFT_WINDOWS_PER_SCENARIO + [None] * CLEAN_AFTER_SCENARIO
    return (*plan, None)


#: Scenario of each current window (None = clean), in stream order.
SCHEDULE: tuple[str | None, ...] = _schedule()
N_WINDOWS = len(SCHEDULE)


class Batch(NamedTuple):
    """Events as columns: numeric float64[N, n_numeric] (NaN = missing) and categorical
    int32[N, n_categorical] codes into `LEVELS[j % 2]` for categorical column j."""

    numeric: FloatArray
    categorical: CodeArray

    def __len__(self) -> int:
        """Number of events."""
        return int(self.numeric.shape[0])


def scenario(name: str) -> Scenario:
    """The named scenario (ValueError listing the valid names if unknown)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; valid: {', '.join(SCENARIO_NAMES)}") from None


def numeric_names(n: int) -> tuple[str, ...]:
    """Names of n numeric features: f00..f19 for the base width, f0000.. beyond 100."""
    digits = 2 if n <= 100 else 4
    return tuple(f"f{i:0{digits}d}" for i in range(n))


def categorical_names(n: int) -> tuple[str, ...]:
    """Names of n categorical features: c10, c1000, then c10_001, c1000_001, ..."""
    names = []
    for j in range(n):
        base = ("c10", "c1000")[j % 2]
        names.append(base if j < 2 else f"{base}_{j // 2:03d}")
    return tuple(names)


def _effects(name: str | None) -> frozenset[str]:
    return frozenset() if name is None else frozenset(scenario(name).features)


def _numeric_column(
    rng: np.random.Generator, index: int, n: int, active: str | None, rows: npt.NDArray[np.bool_]
) -> FloatArray:
    """Base feature `index % 20` for n events; `active` scenario applied where `rows`."""
    shape = index % BASE_NUMERIC
    name = NUMERIC_FEATURES[shape]
    hit = active is not None and index < BASE_NUMERIC and name in _effects(active)
    on = rows if hit else np.zeros(n, dtype=bool)
    if shape < 8:
        mu, sd = 10.0 * shape, 1.0 + shape / 2
        z = rng.standard_normal(n)
        u = rng.random(n)
        shift = {"small-shift": 0.25, "large-shift": 1.0}.get(active or "", 0.0)
        scale = 1.5 if active == "variance" else 1.0
        column = mu + sd * np.where(on, z * scale + shift, z)
        missing = on & (u < 0.10) if active == "missing-spike" else np.zeros(n, dtype=bool)
        column[missing] = np.nan
        return column
    if shape < 14:
        j = shape - 8
        z = rng.standard_normal(n)
        u = rng.random(n)
        sigma = 0.4 + 0.1 * j
        factor = 1.5 if active == "variance" else 1.0
        column = np.exp(j / 2 + sigma * np.where(on, z * factor, z))
        if active == "outlier-burst":
            column = np.where(on & (u < 0.05), column * 20.0, column)
        return column
    if shape < 19:
        k = shape - 14
        t = rng.standard_t(2, n) * (1.0 + k)
        u = rng.random(n)
        magnitude = rng.uniform(50.0, 500.0, n) * (1.0 + k)
        sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        rate = np.where(on & (active == "outlier-burst"), 0.10, _OUTLIER_RATE)
        return np.where(u < rate, sign * magnitude, t)
    z = rng.standard_normal(n)
    u = rng.random(n)
    rate = np.where(on & (active == "missing-spike"), 0.30, _MISSING_RATE)
    return np.where(u < rate, np.nan, z)


def _probabilities(shape: int) -> FloatArray:
    levels = REFERENCE_LEVELS[shape]
    p = 1.0 / np.arange(1, levels + 1) ** _ZIPF_POWER[shape]
    return np.asarray(p / p.sum(), dtype=np.float64)


def _draw_codes(u: FloatArray, p: FloatArray) -> CodeArray:
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    return np.searchsorted(cdf, u, side="right").astype(np.int32)


def _categorical_column(
    rng: np.random.Generator, index: int, n: int, active: str | None, rows: npt.NDArray[np.bool_]
) -> CodeArray:
    """Categorical feature `index` (shape index % 2) for n events; scenario applied where rows."""
    shape = index % 2
    name = CATEGORICAL_FEATURES[shape]
    hit = active is not None and index < BASE_CATEGORICAL and name in _effects(active)
    on = rows if hit else np.zeros(n, dtype=bool)
    u = rng.random(n)
    u_new = rng.random(n)
    k_new = rng.integers(0, 50, n)
    p = _probabilities(shape)
    codes = _draw_codes(u, p)
    if active == "category-mix" and on.any():
        mixed = p[::-1].copy() if shape == 0 else np.roll(p, 500)
        codes = np.where(on, _draw_codes(u, mixed), codes).astype(np.int32)
    if active == "new-category":
        rate, new = (0.05, np.full(n, 10)) if shape == 0 else (0.03, 1000 + k_new)
        codes = np.where(on & (u_new < rate), new, codes).astype(np.int32)
    return codes


def draw(
    rng: np.random.Generator,
    n: int,
    *,
    n_numeric: int = BASE_NUMERIC,
    n_categorical: int = BASE_CATEGORICAL,
    active: str | None = None,
    rows: npt.NDArray[np.bool_] | None = None,
) -> Batch:
    """n events of the given width; scenario `active` applied to `rows` (default: all rows)."""
    if active is not None:
        scenario(active)
    where = np.ones(n, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    numeric = np.empty((n, n_numeric), dtype=np.float64)
    for i in range(n_numeric):
        numeric[:, i] = _numeric_column(rng, i, n, active, where)
    categorical = np.empty((n, n_categorical), dtype=np.int32)
    for j in range(n_categorical):
        categorical[:, j] = _categorical_column(rng, j, n, active, where)
    return Batch(numeric, categorical)


def _children() -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(SEED).spawn(N_WINDOWS + 1)


def reference() -> Batch:
    """The 100,000 clean reference events."""
    return draw(np.random.default_rng(_children()[0]), REFERENCE_EVENTS)


def window(w: int) -> Batch:
    """Current window w (0..59): 10,000 events, drifted as `SCHEDULE[w]` says."""
    if not 0 <= w < N_WINDOWS:
        raise ValueError(f"window must be in 0..{N_WINDOWS - 1}, got {w}")
    return draw(np.random.default_rng(_children()[w + 1]), WINDOW_EVENTS, active=SCHEDULE[w])


def windows() -> Iterator[tuple[int, Batch]]:
    """Every current window in stream order."""
    children = _children()
    for w in range(N_WINDOWS):
        yield w, draw(np.random.default_rng(children[w + 1]), WINDOW_EVENTS, active=SCHEDULE[w])


def ground_truth() -> npt.NDArray[np.bool_]:
    """bool[N_WINDOWS, 22]: True where window w really changed feature f (FEATURES order)."""
    truth = np.zeros((N_WINDOWS, len(FEATURES)), dtype=bool)
    for w, name in enumerate(SCHEDULE):
        for feature in _effects(name):
            truth[w, FEATURES.index(feature)] = True
    return truth


def stream_rng(*key: int) -> np.random.Generator:
    """A generator for other draws of this workload (wide events, delay streams), by key."""
    return np.random.default_rng(np.random.SeedSequence([SEED, *key]))


def category_strings(codes: npt.ArrayLike, column: int) -> ObjectArray:
    """The level names (Python str objects) of categorical column `column`'s codes."""
    levels = np.asarray(LEVELS[column % 2], dtype=object)
    return np.asarray(levels[np.asarray(codes, dtype=np.int64)], dtype=object)
