"""Distribution shares computed from raw values in plain Python, independently of monitor/.

The tests compare what driftmon exports (`driftmon_feature_bin_ratio`, /status) with these.
The rules restate the contract of `monitor.distribution` from the raw values:

- numeric: a value's fine slot from the reference edges (slot 0 below e_0, slot 1 equal to
  e_0, slot k+1 for e_{k-1} < v <= e_k, the last slot above e_{m-1}); a slot's decile group
  is floor(10 * mid) capped at 9, mid = the middle of the slot's cumulative reference mass
  interval; bins: below, 10 groups, above, missing;
- categorical: the first 20 reference categories, other (rest of the vocabulary), unseen,
  missing;
- share = count / (valid + missing values); a None or NaN is missing; an infinite number or a
  value of the wrong type is invalid and counted nowhere.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

MAX_CATEGORIES = 20


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _numeric_slot(value: float, edges: Sequence[float]) -> int:
    if value < edges[0]:
        return 0
    if value == edges[0]:
        return 1
    if value > edges[-1]:
        return len(edges) + 1
    return bisect.bisect_left(edges, value) + 1


def _numbers(values: Iterable[object]) -> tuple[list[float], int]:
    """The finite numbers among `values` and the number of missing ones."""
    finite: list[float] = []
    missing = 0
    for value in values:
        if _is_missing(value):
            missing += 1
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            finite.append(float(value))
    return finite, missing


def numeric_groups(edges: Sequence[float], reference: Iterable[object]) -> list[int]:
    """Decile group of every fine slot, from the raw reference values."""
    values, _ = _numbers(reference)
    counts = [0] * (len(edges) + 2)
    for value in values:
        counts[_numeric_slot(value, edges)] += 1
    total = sum(counts)
    groups = []
    before = 0
    for count in counts:
        cum = before + count
        mid = ((cum + before) / 2.0) / total if total else 0.0
        groups.append(min(math.floor(mid * 10), 9))
        before = cum
    return groups


def numeric_shares(
    edges: Sequence[float], groups: Sequence[int], values: Iterable[object]
) -> list[float] | None:
    """Shares over below, p0-10 ... p90-100, above, missing (None for no value)."""
    finite, missing = _numbers(values)
    counts = [0] * 13
    for value in finite:
        slot = _numeric_slot(value, edges)
        if slot == 0:
            counts[0] += 1
        elif slot == len(edges) + 1:
            counts[11] += 1
        else:
            counts[1 + groups[slot]] += 1
    counts[12] = missing
    total = sum(counts)
    return [c / total for c in counts] if total else None


def categorical_shares(
    categories: Sequence[str], vocabulary: Iterable[str], values: Iterable[object]
) -> list[float] | None:
    """Shares over the first 20 categories, other, unseen, missing (None for no value)."""
    shown = list(categories[:MAX_CATEGORIES])
    index = {c: i for i, c in enumerate(shown)}
    known = set(vocabulary)
    counts = [0] * (len(shown) + 3)
    for raw in values:
        if _is_missing(raw):
            counts[-1] += 1
            continue
        value = ("true" if raw else "false") if isinstance(raw, bool) else raw
        if not isinstance(value, str):
            continue  # invalid
        if value in index:
            counts[index[value]] += 1
        elif value in known:
            counts[len(shown)] += 1
        else:
            counts[len(shown) + 1] += 1
    total = sum(counts)
    return [c / total for c in counts] if total else None
