"""A model's admitted events waiting to be counted, gathered into a minimum batch (pure core).

At width a poll holds few events (about 94 at 2,200 features with 1 MiB fetches) and counting
a batch costs a fixed amount per feature (a numpy call each), so counting every poll spreads
that cost over very few events. `PendingEvents` keeps the columns of events the window has
already *admitted* (the accept / reject decision and the watermark are taken per poll, so
every count in the batch's account is final) until they hold `min_values` values
(events x features) or the oldest is `max_age_s` old, then hands them out as one batch.

Counting later gives the same window, bin by bin: admission never depends on counts, and a
bucket the window evicted in between would have been added and subtracted again
(`window.count_batch` skips it for the window; a rolling reference's hourly ring still
takes it). The caller must count the pending events before anything reads or replaces the
window: evaluation, checkpoint, a new reference. Memory: at most `min_values` values plus one
batch (float64 numeric values and references to the categorical strings).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
Columns = tuple[FloatArray, tuple[ObjectArray, ...], FloatArray]
"""numeric float64[Fn, N], one object array [N] per categorical feature, times float64[N]."""


class PendingEvents:
    """Admitted, not yet counted events of one model (see the module docstring)."""

    __slots__ = ("_blocks", "_since", "events", "max_age_s", "min_values", "n_features")

    def __init__(self, n_features: int, min_values: int, max_age_s: float) -> None:
        if min_values < 0 or max_age_s < 0 or math.isnan(max_age_s):
            raise ValueError("min_values and max_age_s must be >= 0")
        self.n_features = max(1, n_features)
        self.min_values = min_values
        self.max_age_s = max_age_s
        self.events = 0
        self._blocks: list[Columns] = []
        self._since = math.inf

    def add(
        self,
        numeric: FloatArray,
        categorical: tuple[ObjectArray, ...],
        times: FloatArray,
        now: float,
    ) -> None:
        """Keep one admitted slice (columns of equal length N; numeric may have 0 rows)."""
        n = int(times.shape[0])
        if n == 0:
            return
        if not self._blocks:
            self._since = now
        self._blocks.append((numeric, categorical, times))
        self.events += n

    def due(self, now: float) -> bool:
        """True when the pending events fill a batch or the oldest has waited long enough."""
        if not self.events:
            return False
        return self.events * self.n_features >= self.min_values or now - self._since >= (
            self.max_age_s
        )

    def take(self) -> Columns | None:
        """Every pending event as one batch in arrival order (None when empty); clears."""
        blocks, self._blocks = self._blocks, []
        self.events = 0
        self._since = math.inf
        if not blocks:
            return None
        if len(blocks) == 1:
            return blocks[0]
        numeric = np.concatenate([b[0] for b in blocks], axis=1)
        categorical = tuple(
            np.concatenate(columns) for columns in zip(*(b[1] for b in blocks), strict=True)
        )
        times = np.concatenate([b[2] for b in blocks])
        return numeric, categorical, times
