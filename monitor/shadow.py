"""Shadow windows: a current window counted in the bins of a profile that is not active yet.

A registered profile that is about to become active (pre-warmed with `driftmon reference
push --prewarm`, or fitted for a model version the stream carries while the model follows
versions) gets a `ShadowWindow`: the same event-time window as the model's (bucket, length,
lateness, future tolerance), fed the same events, binned in the profile's own edges. When
the profile is activated the shadow's window becomes the model's current window, so the
first evaluation after the swap already has everything the shadow counted: the counts equal
a fresh window binned in the new edges from the same events, bin by bin (a shadow admits
events exactly as the model's window does, because it sees them in the same order with the
same clock). In a fleet (docs/fleet.md) the replica sets `tap`: the shadow's events are then
admitted against and counted into the fleet's global ring of the shadowed reference instead.

Pure: numpy and the core modules only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from monitor.errors import ReferenceDataError
from monitor.histogram import CountMatrix, ModelLayout
from monitor.model import FeatureSpec, WindowPlan
from monitor.reference import ReferenceProfile, layout_for
from monitor.window import CountTarget, EventTimeWindow, count_batch, layout_counter


class ShadowWindow:
    """One profile's layout and reference counts, and a window counted in its bins.

    Raises ReferenceDataError (from `layout_for`) when the profile does not fit the model's
    configured features.
    """

    def __init__(
        self,
        profile: ReferenceProfile,
        specs: Sequence[FeatureSpec],
        window: WindowPlan,
        clock: Callable[[], float] | None,
        *,
        reason: str,
        since: float,
    ) -> None:
        layout, counts, _ = layout_for(profile, specs)
        self.profile = profile
        self.layout: ModelLayout = layout
        self.reference_counts: CountMatrix = counts
        self.reason = reason
        self.since = since
        self.events = 0
        self.window = EventTimeWindow(
            (layout.n_features, layout.width),
            window.bucket_seconds,
            window.length_seconds,
            window.allowed_lateness_seconds,
            window.max_future_seconds,
            clock,
        )
        self.tap: CountTarget | None = None
        """Fleet mode: where `ingest` admits and counts instead of `window`."""

    @property
    def reference_id(self) -> str:
        """The shadowed profile's id."""
        return self.profile.reference_id

    def ingest(
        self,
        numeric: npt.NDArray[np.float64],
        categorical: tuple[npt.NDArray[np.object_], ...],
        times: npt.NDArray[np.float64],
    ) -> None:
        """Admit and count a decoded slice (numeric rows and categorical columns in the
        model's layout order, as `ModelLayout.count` takes them)."""
        target = self.window if self.tap is None else self.tap
        result = target.admit(times)
        accepted = result.accepted
        if not accepted.any():
            return
        count_batch(
            target, None, times, accepted, layout_counter(self.layout, numeric, categorical)
        )
        self.events += int(np.count_nonzero(accepted & ~result.outside))


class ShadowSet:
    """The shadow windows of one model, at most `limit`, by reference id."""

    def __init__(
        self,
        specs: Sequence[FeatureSpec],
        window: WindowPlan,
        clock: Callable[[], float] | None,
        limit: int = 2,
    ) -> None:
        self._specs = tuple(specs)
        self._window = window
        self._clock = clock
        self.limit = limit
        self.windows: dict[str, ShadowWindow] = {}
        self.on_add: Callable[[ShadowWindow], None] | None = None
        """Called with every shadow `add` starts (a fleet points its counting at the fleet's
        ring at once: `add` runs in the middle of ingesting a slice)."""

    def __len__(self) -> int:
        return len(self.windows)

    def keep(self, wanted: Sequence[tuple[ReferenceProfile, str]], now: float) -> list[str]:
        """Hold shadows for exactly the first `limit` of `wanted` (profile, why), keeping the
        counts of those already held; the ids whose profile does not fit the model are
        returned (they get no shadow)."""
        refused: list[str] = []
        held: dict[str, ShadowWindow] = {}
        for profile, reason in wanted:
            if len(held) >= self.limit:
                break
            rid = profile.reference_id
            if rid in held:
                continue
            shadow = self.windows.get(rid)
            if shadow is None:
                try:
                    shadow = ShadowWindow(
                        profile, self._specs, self._window, self._clock, reason=reason, since=now
                    )
                except ReferenceDataError:
                    refused.append(rid)
                    continue
            shadow.reason = reason
            held[rid] = shadow
        self.windows = held
        return refused

    def add(self, profile: ReferenceProfile, reason: str, now: float) -> bool:
        """Start a shadow for `profile` if there is room and it fits; True when one is held."""
        if profile.reference_id in self.windows:
            return True
        if len(self.windows) >= self.limit:
            return False
        try:
            shadow = ShadowWindow(
                profile, self._specs, self._window, self._clock, reason=reason, since=now
            )
        except ReferenceDataError:
            return False
        self.windows[profile.reference_id] = shadow
        if self.on_add is not None:
            self.on_add(shadow)
        return True

    def take(self, reference_id: str) -> ShadowWindow | None:
        """Remove and return the shadow of `reference_id` (None when there is none)."""
        return self.windows.pop(reference_id, None)

    def ingest(
        self,
        numeric: npt.NDArray[np.float64],
        categorical: tuple[npt.NDArray[np.object_], ...],
        times: npt.NDArray[np.float64],
    ) -> None:
        """Feed a decoded slice to every shadow."""
        for shadow in self.windows.values():
            shadow.ingest(numeric, categorical, times)
