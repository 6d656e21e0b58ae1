"""The /status document: a `Snapshot` rendered as strict JSON (no NaN, no Infinity)."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from enum import Enum
from typing import Any

from monitor.model import Distribution, ModelEvaluation, SegmentResult, Snapshot

__all__ = ["snapshot_to_json", "to_jsonable"]


def to_jsonable(value: object) -> Any:
    """Convert a model value into plain JSON types.

    Dataclasses become objects of their fields (a `ModelEvaluation` or `SegmentResult` also
    gets its `drifted_features`), a `Distribution` its bins and shares, enums their values,
    tuples lists; NaN and ±inf become None so the output is always valid JSON; numpy-style
    numbers become int or float.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        as_float = float(value)
        return as_float if math.isfinite(as_float) else None
    if isinstance(value, Distribution):
        return {
            "bins": list(value.bins),
            "reference": to_jsonable(value.reference),
            "current": to_jsonable(value.current),
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, ModelEvaluation | SegmentResult):
            out["drifted_features"] = value.drifted_features
        return out
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def snapshot_to_json(snapshot: Snapshot) -> bytes:
    """The /status body: `{"created_at": ..., "models": [{"model": ..., "features": [...]}]}`.

    Each model carries every `ModelEvaluation` field plus `drifted_features`; each feature
    every `FeatureResult` field; a model with `segment_by` its `segments`, worst first, each
    with its `drifted_features`. Non-finite floats are rendered as null.
    """
    body = json.dumps(to_jsonable(snapshot), allow_nan=False, separators=(",", ":"))
    return body.encode("utf-8")
