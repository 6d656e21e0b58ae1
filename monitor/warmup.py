"""The warm-up buffer of one model: raw values of the features still without a reference.

A buffer is created for a fixed set of feature rows (indices into the model's numeric and
categorical columns): every feature at the first warm-up, only the ones without a reference
when a warm-up is repeated, so a model with one absent feature buffers that one column, not
all of them. It holds at most `capacity` events; `add` takes what still fits. The checkpoint
form is `state()` (numeric values as an array; categorical ones as JSON-able lists, because
numpy string arrays drop trailing NUL characters) and `WarmupBuffer.restore`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.errors import StateError

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]


class WarmupBuffer:
    """Values of `numeric_rows` and `categorical_rows` for up to `capacity` events."""

    def __init__(
        self, capacity: int, numeric_rows: Sequence[int], categorical_rows: Sequence[int]
    ) -> None:
        self.capacity = int(capacity)
        self.numeric_rows = tuple(int(r) for r in numeric_rows)
        self.categorical_rows = tuple(int(r) for r in categorical_rows)
        self._numeric: list[FloatArray] = []
        self._categorical: list[tuple[ObjectArray, ...]] = []
        self.count = 0

    @property
    def full(self) -> bool:
        """True once the buffer holds `capacity` events."""
        return self.count >= self.capacity

    def add(self, numeric: FloatArray, categorical: Sequence[ObjectArray], start: int) -> int:
        """Buffer the events from column `start` on that still fit; returns how many."""
        take = max(0, min(self.capacity - self.count, int(numeric.shape[1]) - start))
        if take:
            part = slice(start, start + take)
            self._numeric.append(numeric[list(self.numeric_rows), part].copy())
            self._categorical.append(
                tuple(categorical[r][part].copy() for r in self.categorical_rows)
            )
            self.count += take
        return take

    def numeric(self) -> dict[int, FloatArray]:
        """Buffered values per numeric row index."""
        if not self._numeric:
            return {r: np.empty(0) for r in self.numeric_rows}
        block = np.concatenate(self._numeric, axis=1)
        return {r: block[i] for i, r in enumerate(self.numeric_rows)}

    def categorical(self) -> dict[int, ObjectArray]:
        """Buffered values per categorical row index."""
        return {
            r: np.concatenate([chunk[i] for chunk in self._categorical])
            if self._categorical
            else np.empty(0, dtype=object)
            for i, r in enumerate(self.categorical_rows)
        }

    def state(self) -> tuple[FloatArray, dict[str, Any]]:
        """(numeric values [rows, count], JSON-able metadata with the categorical values)."""
        numeric = (
            np.concatenate(self._numeric, axis=1)
            if self._numeric
            else np.empty((len(self.numeric_rows), 0))
        )
        meta = {
            "count": self.count,
            "numeric_rows": list(self.numeric_rows),
            "categorical_rows": list(self.categorical_rows),
            "categorical": [values.tolist() for values in self.categorical().values()],
        }
        return numeric, meta

    def remapped(
        self, numeric: Mapping[int, int], categorical: Mapping[int, int]
    ) -> WarmupBuffer | None:
        """The buffer with its rows renumbered (old row -> new row); rows not mapped are dropped.

        For a changed feature list (monitor.runtime, restore): the values of a feature that
        is still wanted keep their place in the warm-up, the others are forgotten. None when
        no row is left.
        """
        keep_n = [(i, numeric[r]) for i, r in enumerate(self.numeric_rows) if r in numeric]
        keep_c = [
            (i, categorical[r]) for i, r in enumerate(self.categorical_rows) if r in categorical
        ]
        if not keep_n and not keep_c:
            return None
        buffer = WarmupBuffer(self.capacity, [r for _, r in keep_n], [r for _, r in keep_c])
        buffer._numeric = [chunk[[i for i, _ in keep_n]] for chunk in self._numeric]
        buffer._categorical = [tuple(chunk[i] for i, _ in keep_c) for chunk in self._categorical]
        buffer.count = self.count
        return buffer

    @classmethod
    def restore(
        cls, capacity: int, numeric: npt.NDArray[Any] | None, meta: Mapping[str, Any]
    ) -> WarmupBuffer:
        """A buffer from `state()`; StateError when the parts do not fit together."""
        try:
            count = int(meta["count"])
            buffer = cls(capacity, meta["numeric_rows"], meta["categorical_rows"])
            values = np.empty((len(buffer.numeric_rows), 0)) if numeric is None else numeric
            block = np.asarray(values, dtype=np.float64)
            columns = [np.asarray(c, dtype=object) for c in meta["categorical"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"checkpointed warm-up buffer is unusable: {exc}") from exc
        if (
            block.shape != (len(buffer.numeric_rows), count)
            or len(columns) != len(buffer.categorical_rows)
            or any(c.shape != (count,) for c in columns)
            or not 0 <= count <= capacity
        ):
            raise StateError("checkpointed warm-up buffer is incomplete")
        if count:
            buffer._numeric = [block]
            buffer._categorical = [tuple(columns)]
        buffer.count = count
        return buffer
