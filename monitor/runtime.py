"""One model's live state: reference, current window, evaluator, checkpoint form.

Reference modes (README.md, References):
- file: a profile built by `driftmon reference fit`. The file is re-read when its
  modification time changes: a valid new profile is swapped in without a restart (a
  feature whose bins changed restarts its current window empty, since its counts are in the
  old bins; a feature with the same bins keeps its counts); an invalid one is
  refused and the running reference kept (an error in the log, the next valid file wins).
  Restoring the previous file rolls back the same way.
- warmup: the first `warmup_events` accepted events are buffered, then edges and counts
  are fitted, frozen, persisted in the checkpoint and in `<state>/references/<model>.json`.
- rolling: edges are fitted from the warm-up as above; afterwards the reference is the
  lagging window [watermark - lag - length, watermark - lag] of hourly buckets.
- registry: the profile the reference registry makes active (docs/registry.md). The daemon
  decides which one (`monitor.reference_registry`) and calls `swap`; a profile with a
  shadow window (`monitor.shadow`, fed by `ingest`) takes over the shadow's counts, any
  other starts an empty window, as a `file` swap does. `versions` counts the model
  versions of the current window (`monitor.follow`) for `reference.follow_model_version`.

Each feature is fitted on its own (`fit_features`). A feature whose warm-up values cannot
make a reference (no finite value, no category, fewer than MIN_NUMERIC_VALUES finite values)
gets none: it keeps a placeholder row (zero reference counts, never tested) while every other
feature is monitored, and its warm-up is repeated over the model's next `warmup_events`
events (which also feed the current window) until it succeeds; then its row gets real bins
and its current window starts empty. When no feature can be fitted the model's whole warm-up
starts again. A reference that cannot be built is reported (`reference_ready` false with
the reason in the evaluation), never raised.

Schema evolution: the checkpoint is matched to the configuration feature by feature
(`restore`, monitor.schema_change), so a restart or a SIGHUP reload with added, removed or
changed features keeps every unchanged feature's reference, window and warm-up values.

A feature's reference is *ready* when it has bins and, for a rolling reference, when the
lagged window holds at least `evaluation.min_samples` of its values (for the first `lag`
after the warm-up it holds none).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from monitor.account import BatchAccount
from monitor.accumulate import PendingEvents
from monitor.config import Settings, model_plans
from monitor.correlation import CorrelationReference, CorrelationTracker, fit_reference
from monitor.decode import MAX_VERSION_CHARS, ModelColumns, ModelSchema
from monitor.errors import ReferenceDataError, RejectReason, StateError
from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.follow import VersionShares
from monitor.histogram import CountMatrix, ModelLayout, relayout_counts
from monitor.model import (
    FeatureKind,
    FeatureResult,
    FeatureSpec,
    ModelEvaluation,
    ModelPlan,
    RawMessage,
    ReferenceMode,
)
from monitor.reconstruction import VIRTUAL_FEATURE, PcaBasis, fit_basis
from monitor.reference import (
    MIN_NUMERIC_VALUES,
    FeatureProfile,
    ReferenceProfile,
    build_profile,
    check_limits,
    fit_features,
    joint_section,
    layout_for,
    profile_from_json,
    profile_to_json,
)
from monitor.reference_files import ReferenceFile, ReferenceFileError, persist_profile
from monitor.schema_change import Row, carry_counts, layout_rows, rows_from_meta, rows_to_meta
from monitor.segment_slices import SegmentSlices
from monitor.segments import SegmentTracker
from monitor.shadow import ShadowSet
from monitor.state import ModelState
from monitor.warmup import WarmupBuffer
from monitor.window import (
    CountTarget,
    EventTimeWindow,
    LaggingReference,
    LaggingTarget,
    count_batch,
    layout_counter,
)

ROLLING_BUCKET_SECONDS = 3600.0
_DROP_WHY: Final = {
    RejectReason.TOO_LATE: "event time older than the window's allowed lateness",
    RejectReason.TOO_EARLY: "event time beyond window.max_future ahead of the clock",
    RejectReason.OUTSIDE_WINDOW: "within the allowed lateness, older than the current window",
    RejectReason.NO_REFERENCE: "the model has no reference yet",
}
"""The detail of a window drop's log sample (no value from the event)."""
MIN_BATCH_VALUES = 1 << 20
"""Deferred ingest (`ingest(..., defer=True)`) counts a model's admitted events once they hold
this many values (events x features; 8 MiB of float64): about 480 events at 2,200 features."""
MAX_PENDING_SECONDS = 1.0
"""... or once the oldest pending event was admitted this long ago (wall clock)."""


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a changed `file` reference did: activated (`detail` = its id) or refused (why)."""

    activated: bool
    detail: str


class ModelRuntime:
    """Reference, windows and evaluator of one configured model."""

    def __init__(
        self,
        plan: ModelPlan,
        *,
        clock: Callable[[], float],
        state_dir: Path,
    ) -> None:
        self.plan = plan
        self.name = plan.name
        self.mode = plan.reference.mode
        self.policy = plan.policy
        self.clock = clock
        self.state_dir = state_dir
        specs = plan.features
        self.numeric_specs = tuple(s for s in specs if s.kind is FeatureKind.NUMERIC)
        self.categorical_specs = tuple(s for s in specs if s.kind is FeatureKind.CATEGORICAL)
        self.specs: tuple[FeatureSpec, ...] = self.numeric_specs + self.categorical_specs
        categorical = tuple(s.name for s in self.categorical_specs)
        self.segments = (
            SegmentTracker(plan.segments, categorical) if plan.segments is not None else None
        )
        """Drift per segment (`segment_by`; monitor/segments.py), None when not configured."""
        self.schema = ModelSchema(
            name=self.name,
            numeric=tuple(s.name for s in self.numeric_specs if s.name != VIRTUAL_FEATURE),
            categorical=self.segments.schema_columns(categorical) if self.segments else categorical,
            topics=plan.topics,
        )
        path = plan.reference.path
        self._file = (
            ReferenceFile(path) if self.mode is ReferenceMode.FILE and path is not None else None
        )
        self.model_version = ""
        self.profile: ReferenceProfile | None = None
        self.layout: ModelLayout | None = None
        self.reference_counts: CountMatrix | None = None
        self.window: EventTimeWindow | None = None
        self.tap: CountTarget | None = None
        """Fleet mode: where `ingest` admits and counts instead of `window` (docs/fleet.md)."""
        self.in_fleet = False
        """True in a fleet replica: a warm-up profile goes to the registry, not to `state_dir`,
        and features fitted after the model has a reference are not activated here but wait
        in `extension` for the registry (every replica activates them at once)."""
        self.extension: ReferenceProfile | None = None
        """The active profile plus features fitted since, waiting for the registry (fleet)."""
        self.lagging: LaggingReference | None = None
        self.lagging_tap: LaggingTarget | None = None
        """Fleet mode: where a rolling reference's hour counts go instead of `lagging`."""
        self.evaluator: ModelEvaluator | None = None
        self._groups: npt.NDArray[np.int64] | None = None
        self.last_reference_error: str = ""
        self.pending: dict[str, str] = {}
        """Why each feature without bins has none (the last failed warm-up's verdict)."""
        self._fitted: frozenset[str] = frozenset()
        self._layout_rows: tuple[ModelLayout, frozenset[str], tuple[Row, ...]] | None = None
        self._warm: WarmupBuffer | None = None
        self.correlation: CorrelationTracker | None = None
        """The correlation group's reference and sums (None: not configured or not fitted)."""
        self.basis: PcaBasis | None = None
        """The reconstruction group's PCA basis (None: not configured or not fitted)."""
        self.shadows = ShadowSet(self.specs, plan.window, clock)
        self._profile_json: tuple[ReferenceProfile, str] | None = None
        self.versions = VersionShares()
        self.follow_profiles: dict[str, ReferenceProfile] = {}
        """Registry profiles by the model version they were fitted for (set by the daemon)."""
        self._pending = PendingEvents(len(self.specs), MIN_BATCH_VALUES, MAX_PENDING_SECONDS)
        self._unreported: npt.NDArray[np.int64] | None = None
        """Invalid values per feature counted by a deferred flush, not yet in an account."""

    # -- reference ---------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once the model has a reference and a window."""
        return self.layout is not None

    @property
    def reference_id(self) -> str:
        """The active reference's id ("" before there is one)."""
        return self.profile.reference_id if self.profile is not None else ""

    def fingerprint(self) -> str:
        """Hash of the model-wide settings that shape its checkpointed rings.

        The features are not part of it: a checkpoint is restored feature by feature
        (`restore`, monitor.schema_change), so adding, removing or changing one feature
        resets that feature only. A change of this hash (reference mode, warm-up size,
        rolling lag or length, window geometry, `segment_by` and `max_segments`, and for
        `features: auto` its `max_features` and `exclude`) resets the whole model.
        """
        content: dict[str, Any] = {
            "mode": self.mode.value,
            "warmup_events": self.plan.reference.warmup_events,
            "lag": self.plan.reference.lag_seconds,
            "length": self.plan.reference.length_seconds,
            "window": [
                self.plan.window.bucket_seconds,
                self.plan.window.length_seconds,
                self.plan.window.allowed_lateness_seconds,
            ],
        }
        if self.plan.segments is not None:
            content["segments"] = [self.plan.segments.key, self.plan.segments.max_segments]
        if self.plan.discovery is not None:  # features: auto: new rules discover again
            content["discovery"] = [self.plan.discovery.max_features, self.plan.discovery.exclude]
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]

    def _legacy_fingerprint(self) -> str:
        """The whole-model hash of checkpoints written before per-feature restore."""
        content = {
            "features": [[s.name, s.kind.value] for s in self.specs],
            "top_k": [k for _, k in self.plan.top_k],
            "max_bins": self.plan.max_bins,
            "mode": self.mode.value,
            "warmup_events": self.plan.reference.warmup_events,
            "lag": self.plan.reference.lag_seconds,
            "length": self.plan.reference.length_seconds,
            "window": [
                self.plan.window.bucket_seconds,
                self.plan.window.length_seconds,
                self.plan.window.allowed_lateness_seconds,
            ],
        }
        if self.plan.correlation is not None:
            content["correlation"] = list(self.plan.correlation.features)
        if self.plan.reconstruction is not None:
            content["reconstruction"] = list(self.plan.reconstruction.features)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]

    def feature_signatures(self) -> list[list[Any]]:
        """[name, kind, fit parameter] per feature, in layout order (the checkpoint's `features`).

        The fit parameter is what a warm-up fits the feature's bins with: `max_bins` for a
        numeric feature, its `top_k` for a categorical one. A feature whose signature changed
        gets a new reference (warm-up/rolling) and an empty window.
        """
        return [
            [
                s.name,
                s.kind.value,
                self.plan.max_bins if s.kind is FeatureKind.NUMERIC else self.plan.top_k_of(s.name),
            ]
            for s in self.specs
        ]

    def load_reference_file(self) -> ReloadOutcome | None:
        """(Re)load the file reference if it changed; what happened, or None (nothing new).

        Raises ReferenceDataError only when there is no active reference yet and the file
        cannot be used (the daemon reports the model as not ready and retries later). A
        refused file leaves the active reference in place.
        """
        if self._file is None:
            return None
        try:
            data = self._file.changed()
            if data is None:
                return None
            profile = profile_from_json(data)
            if profile.model not in ("", self.name):
                raise ReferenceDataError(
                    f"reference {self._file.path} was fitted for model {profile.model!r}, "
                    f"not {self.name!r}"
                )
            check_limits(profile, max_bins=self.plan.max_bins, min_values=MIN_NUMERIC_VALUES)
            self._activate_carrying(profile)
        except ReferenceFileError as exc:
            self.last_reference_error = str(exc)
            if self.profile is None:
                raise
            return None
        except ReferenceDataError as exc:
            message = str(exc)
            if not message.startswith(f"reference {self._file.path}"):
                message = f"reference {self._file.path} refused: {message}"
            self.last_reference_error = message
            if self.profile is None:
                raise ReferenceDataError(message) from exc
            return ReloadOutcome(False, message)
        self.last_reference_error = ""
        return ReloadOutcome(True, profile.reference_id)

    def _activate(self, profile: ReferenceProfile) -> None:
        """Make `profile` the active reference; a new window starts in its bins.

        A warm-up or rolling profile may lack features (their rows get placeholder bins).
        Pending events are counted into the window they were admitted to first.
        """
        self._flush_pending()
        self.extension = None
        partial = self.mode in (ReferenceMode.WARMUP, ReferenceMode.ROLLING)
        correlation = self._correlation_reference(profile)
        basis = self._reconstruction_basis(profile)
        layout, counts, ordered = layout_for(profile, self.specs, partial=partial)
        if ordered != self.specs:
            raise ReferenceDataError("internal: profile order differs from the model's order")
        shape = (layout.n_features, layout.width)
        self.profile = profile
        kinds = {s.name: s.kind for s in self.specs}
        self._fitted = frozenset(f.name for f in profile.features if kinds.get(f.name) is f.kind)
        self.layout = layout
        self.reference_counts = counts
        window = self.plan.window
        self.window = EventTimeWindow(
            shape,
            window.bucket_seconds,
            window.length_seconds,
            window.allowed_lateness_seconds,
            window.max_future_seconds,
            self.clock,
        )
        self.evaluator = ModelEvaluator(
            layout,
            self.specs,
            self.policy,
            distributions=self.plan.distributions,
        )
        if self.mode is ReferenceMode.ROLLING:
            self.lagging = LaggingReference(
                shape,
                ROLLING_BUCKET_SECONDS,
                self.plan.reference.lag_seconds,
                self.plan.reference.length_seconds,
            )
            self._groups = None
        else:
            self._groups = self.evaluator.psi_groups(counts)
        if self.segments is not None:
            self.segments.activate(layout, self.specs, profile.segments, window, self.policy)
        self.basis = basis
        self.correlation = None
        if correlation is not None and self.plan.correlation is not None:
            numeric = [s.name for s in self.numeric_specs]
            self.correlation = CorrelationTracker(
                correlation,
                [numeric.index(name) for name in correlation.names],
                bucket_seconds=self.window.bucket_seconds,
                n_buckets=self.window.n_buckets,
                n_slots=self.window.ring.n_slots,
                floor=self.plan.correlation.change_floor,
                noise_multiple=self.plan.correlation.noise_multiple,
            )

    def _correlation_reference(self, profile: ReferenceProfile) -> CorrelationReference | None:
        """The profile's reference of the configured correlation group (None: none to use).

        ReferenceDataError when the profile's correlation section is malformed. A section
        fitted for another group (the configuration changed) is ignored.
        """
        plan = self.plan.correlation
        section = joint_section(profile, "correlation")
        if plan is None or section is None:
            return None
        try:
            reference = CorrelationReference.from_json(section)
        except ValueError as exc:
            raise ReferenceDataError(str(exc)) from exc  # "correlation reference: ..."
        return reference if reference.names == plan.features else None

    def _reconstruction_basis(self, profile: ReferenceProfile) -> PcaBasis | None:
        """The profile's PCA basis of the configured reconstruction group (None: none to use).

        ReferenceDataError when the profile's reconstruction section is malformed; a basis
        fitted for another group is ignored (the virtual feature then stays missing).
        """
        plan = self.plan.reconstruction
        section = joint_section(profile, "reconstruction")
        if plan is None or section is None:
            return None
        try:
            basis = PcaBasis.from_json(section)
        except ValueError as exc:
            raise ReferenceDataError(str(exc)) from exc  # "reconstruction basis: ..."
        return basis if basis.names == plan.features else None

    def _fit_joint(self, numeric: dict[int, npt.NDArray[np.float64]]) -> dict[str, object] | None:
        """The multivariate references fitted from a warm-up buffer (None: nothing new).

        Each group (correlation, reconstruction) is fitted from the first warm-up that holds
        every feature of the group with a finite value and gives a fit its reader accepts
        (`from_json` of the fitted section: a fit it would refuse made the whole profile
        unusable, and the model silent, at every warm-up); the active profile's sections are
        kept. A new PCA basis also fills the virtual feature's row of `numeric` (the
        buffered events' errors), so its histogram is fitted in the same warm-up.
        """
        known = json.loads(self.profile.joint) if self.profile and self.profile.joint else {}
        joint = dict(known)
        rows = [s.name for s in self.numeric_specs]

        def group_values(features: tuple[str, ...]) -> npt.NDArray[np.float64] | None:
            wanted = [rows.index(name) for name in features]
            if not all(r in numeric for r in wanted):
                return None
            return np.vstack([numeric[r] for r in wanted])

        correlation = self.plan.correlation
        if correlation is not None and "correlation" not in known:
            values = group_values(correlation.features)
            with contextlib.suppress(ValueError):
                if values is not None:
                    section = fit_reference(correlation.features, values).to_json()
                    CorrelationReference.from_json(section)
                    joint["correlation"] = section
        reconstruction = self.plan.reconstruction
        if reconstruction is not None and "reconstruction" not in known:
            values = group_values(reconstruction.features)
            with contextlib.suppress(ValueError):
                if values is not None:
                    basis = fit_basis(reconstruction.features, values, reconstruction.variance)
                    PcaBasis.from_json(basis.to_json())
                    joint["reconstruction"] = basis.to_json()
                    virtual = rows.index(VIRTUAL_FEATURE)
                    if virtual in numeric:
                        numeric[virtual] = basis.errors(values)
        return joint if joint != known else None

    def _with_reconstruction(self, columns: ModelColumns) -> ModelColumns:
        """`columns` with the virtual feature's row appended (NaN until a basis is fitted)."""
        plan = self.plan.reconstruction
        if plan is None:
            return columns
        if self.basis is None:
            errors = np.full(len(columns), np.nan)
        else:
            rows = [s.name for s in self.numeric_specs]
            errors = self.basis.errors(columns.numeric[[rows.index(n) for n in plan.features]])
        numeric = np.vstack([columns.numeric, errors[None, :]])
        return dataclasses.replace(columns, numeric=numeric)

    def swap(self, profile: ReferenceProfile) -> bool:
        """Make a registry `profile` active; True when a shadow window's counts carried over.

        Raises ReferenceDataError (the active reference unchanged) when the profile does not
        fit the configured features.
        """
        if profile.model not in ("", self.name):
            raise ReferenceDataError(
                f"reference {profile.reference_id} was fitted for model {profile.model!r}, "
                f"not {self.name!r}"
            )
        shadow = self.shadows.take(profile.reference_id)
        self._activate(profile)
        if shadow is None:
            return False
        self.window = shadow.window
        return True

    def layout_rows(self) -> tuple[Row, ...]:
        """The active layout's rows (monitor.schema_change); () without a layout. Kept until
        the layout or the fitted features change (a fleet replica asks on every loop turn)."""
        if self.layout is None:
            return ()
        held = self._layout_rows
        if held is None or held[0] is not self.layout or held[1] != self._fitted:
            held = self._layout_rows = (
                self.layout,
                self._fitted,
                layout_rows(self.layout, self._fitted),
            )
        return held[2]

    def _activate_carrying(self, profile: ReferenceProfile) -> None:
        """`_activate(profile)`, keeping the counts of every feature whose bins are unchanged."""
        self._flush_pending()  # before the window's state is taken
        rows = self.layout_rows()
        window = self.window.state() if self.window is not None else None
        lagging = self.lagging.state() if self.lagging is not None else None
        self._activate(profile)
        if window is not None:
            self._carry(rows, window, lagging)

    def _carry(
        self,
        rows: Sequence[Row],
        window: dict[str, npt.NDArray[Any]],
        lagging: dict[str, npt.NDArray[Any]] | None,
    ) -> None:
        """Load ring states laid out as `rows` into the active windows, feature by feature.

        Rows of the same name and bins keep their counts bucket by bucket (the watermark and
        bucket ids are the old ones); every other row starts empty (monitor.schema_change).
        ValueError when the states do not fit.
        """
        assert self.layout is not None and self.window is not None
        new_rows = self.layout_rows()
        width = self.layout.width
        self.window.restore(
            {**window, "counts": carry_counts(window["counts"], rows, new_rows, width)}
        )
        if lagging is not None and self.lagging is not None:
            self.lagging.restore(
                {**lagging, "counts": carry_counts(lagging["counts"], rows, new_rows, width)}
            )

    def _finish_warmup(self) -> None:
        """Fit every feature still without a reference from the full warm-up buffer.

        The fitted ones join the profile (activated, or extended in place); the others stay
        in `pending` with the reason and are retried over the next `warmup_events` events.
        """
        warm = self._warm
        self._warm = None
        if warm is None:
            return
        events = warm.count
        numeric, categorical = warm.numeric(), warm.categorical()
        joint = self._fit_joint(numeric)
        wanted = [self.numeric_specs[r] for r in warm.numeric_rows] + [
            self.categorical_specs[r] for r in warm.categorical_rows
        ]
        top_k = {s.name: self.plan.top_k_of(s.name) for s in self.categorical_specs}
        fitted, errors = fit_features(
            wanted,
            {self.numeric_specs[r].name: values for r, values in numeric.items()},
            {self.categorical_specs[r].name: values for r, values in categorical.items()},
            max_bins=self.plan.max_bins,
            top_k=top_k,
            min_values=min(MIN_NUMERIC_VALUES, self.plan.reference.warmup_events),
        )
        where = f"warm-up of {events} events"
        pending = {name: f"{where}: {why}" for name, why in errors.items()}
        segments = None
        if self.segments is not None and fitted:
            segments = self.segments.warm_slices(
                self.profile.segments if self.profile is not None else None,
                [(f.name, f.bins) for f in fitted],
                {self.numeric_specs[r].name: values for r, values in numeric.items()},
                {self.categorical_specs[r].name: values for r, values in categorical.items()},
            )
        if fitted:
            try:
                profile = self._with_features(fitted, events, segments, joint)
            except (ReferenceDataError, ValueError) as exc:
                fitted = []
                pending = {s.name: f"{where}: {exc}" for s in wanted}
        self.pending = pending
        self.last_reference_error = "; ".join(pending.values())
        if fitted and not self.in_fleet:
            self._persist_profile(profile)

    def _with_features(
        self,
        fitted: list[FeatureProfile],
        events: int,
        segments: SegmentSlices | None = None,
        joint: dict[str, object] | None = None,
    ) -> ReferenceProfile:
        """Activate a profile holding the active features plus `fitted`; return it.

        The current window (and lagging ring) keep the counts of the features that already
        had bins; the rows of the newly fitted features start empty. `joint` replaces the
        multivariate references (default: the active profile's). The correlation sums are
        kept when the group's reference is unchanged.

        In a fleet (`in_fleet`) with an active profile, the new profile is not
        activated: it is kept in `extension`, marked as continuing the active profile's window
        (`ReferenceProfile.extends`), for the fleet to publish to the registry.
        """
        known = self.profile.features if self.profile is not None else ()
        known = tuple(f for f in known if f.name in self._fitted)
        by_name = {f.name: f for f in (*known, *fitted)}
        held = self.in_fleet and self.profile is not None
        profile = build_profile(
            self.name,
            [by_name[s.name] for s in self.specs if s.name in by_name],
            events if self.profile is None else max(self.profile.events, events),
            model_version=self.model_version,
            source=f"warm-up of {events} events",
            segments=segments if segments is not None else _segments_of(self.profile),
            joint=joint if joint is not None else _joint_of(self.profile),
            extends=self.profile.ring_id if held and self.profile is not None else "",
        )
        if held:
            self.extension = profile
            return profile
        old_layout, old_window, old_lagging = self.layout, self.window, self.lagging
        old_correlation = self.correlation
        old_segments = (
            self.segments.window.state()
            if self.segments is not None and self.segments.window is not None
            else None
        )
        self._activate(profile)
        if old_correlation is not None and self.correlation is not None:
            self.correlation.window.restore(old_correlation.window.state())
        if old_layout is None or old_window is None:
            return profile
        assert self.layout is not None and self.window is not None
        fresh = {f.name for f in fitted}
        keep = [i for i, s in enumerate(self.specs) if s.name not in fresh]
        state = old_window.state()
        state["counts"] = relayout_counts(state["counts"], old_layout, self.layout, keep)
        self.window.restore(state)
        if self.segments is not None:
            self.segments.carry_over(old_segments, old_layout, self.layout, keep)
        if old_lagging is not None and self.lagging is not None:
            lagging = old_lagging.state()
            lagging["counts"] = relayout_counts(lagging["counts"], old_layout, self.layout, keep)
            self.lagging.restore(lagging)
        return profile

    def _collect(
        self, columns: ModelColumns, start: int, segment_column: npt.NDArray[np.object_] | None
    ) -> int:
        """Buffer the batch's events from `start` until the warm-up holds `warmup_events`.

        A new buffer holds the features without bins at that moment (all at first); the
        segment values of the buffered events are kept beside it (`segment_by`).
        """
        if self._warm is None:
            self._warm = WarmupBuffer(
                self.plan.reference.warmup_events,
                [i for i, s in enumerate(self.numeric_specs) if s.name not in self._fitted],
                [i for i, s in enumerate(self.categorical_specs) if s.name not in self._fitted],
            )
        take = self._warm.add(columns.numeric, columns.categorical, start)
        if self.segments is not None and segment_column is not None:
            self.segments.collect(segment_column, start, take)
        return take

    @property
    def _warm_full(self) -> bool:
        return self._warm is not None and self._warm.full

    def _persist_profile(self, profile: ReferenceProfile) -> None:
        try:
            persist_profile(self.state_dir / "references", self.name, profile)
        except OSError as exc:
            self.last_reference_error = f"cannot persist the warm-up reference: {exc}"

    # -- ingest --------------------------------------------------------------------

    def ingest(
        self,
        columns: ModelColumns,
        account: BatchAccount | None = None,
        messages: Sequence[RawMessage] = (),
        *,
        defer: bool = False,
    ) -> None:
        """Add a model's decoded slice to the warm-up buffer and/or the windows.

        Every event ends in `account` (a throwaway one when None): accepted into the window
        or the warm-up buffer (`events_accepted`, the invalid values per feature, the newest
        event time per topic), or rejected as `too_late`, `too_early`, `outside_window` or
        `no_reference` under the topic of its message, which is marked for the dead-letter
        topic. An `outside_window` event (within the allowed lateness, older than the current
        window's start) still counts in a rolling reference's lagging hours.
        `messages` are the batch's messages that `columns.messages` index (without them,
        drops are counted under topic "" and no message is marked).

        With `defer`, the admitted events are only counted into the windows once a minimum
        batch has gathered (`monitor.accumulate`: MIN_BATCH_VALUES values or
        MAX_PENDING_SECONDS); every decision and count of the account is still made now, except
        the invalid values of events still pending, which go into the account of the call
        that counts them (a later `ingest` or `flush`). Call `flush` before reading the window.
        """
        account = BatchAccount() if account is None else account
        segment_column = None
        if self.segments is not None:
            columns, segment_column = self.segments.split(columns)
        plain, basis = columns, self.basis
        columns = self._with_reconstruction(columns)
        now = self.clock()
        n = len(columns)
        if not self.specs:  # `features: auto` still discovering: the events fed the discovery
            account.accept_events(self.name, n)
            return
        if columns.model_version:
            self.model_version = columns.model_version
        accepted = np.zeros(n, dtype=bool)
        start = 0
        outside = np.zeros(n, dtype=bool)
        warming = self.mode in (ReferenceMode.WARMUP, ReferenceMode.ROLLING)
        while warming and not self.ready and start < n:
            take = self._collect(columns, start, segment_column)
            accepted[start : start + take] = True
            start += take
            if not self._warm_full:
                break
            self._finish_warmup()  # a failed one starts over with the rest of the batch
            if self.basis is not basis:  # fitted now: the rest of the batch gets its errors
                basis = self.basis
                columns = self._with_reconstruction(plain)
        if not self.ready:
            self._drop(account, columns, messages, slice(start, n), RejectReason.NO_REFERENCE)
        elif start < n:
            assert self.layout is not None and self.window is not None
            numeric = columns.numeric[:, start:] if start else columns.numeric
            categorical = (
                tuple(c[start:] for c in columns.categorical) if start else columns.categorical
            )
            times = columns.times[start:] if start else columns.times
            result = (self.window if self.tap is None else self.tap).admit(times)
            accepted[start:] = result.accepted
            outside[start:] = result.outside
            if result.accepted.any():
                picked = (
                    categorical
                    if segment_column is None
                    else (*categorical, segment_column[start:])
                )
                self._pending.add(*_select(numeric, picked, times, result.accepted), now)
            if not defer or self._pending.due(now):
                self._flush_pending()
            early = np.zeros(n, dtype=bool)
            early[start:] = result.early
            late = ~accepted & ~early
            late[:start] = False
            self._drop(account, columns, messages, late, RejectReason.TOO_LATE)
            self._drop(account, columns, messages, early, RejectReason.TOO_EARLY)
            self._drop(account, columns, messages, outside, RejectReason.OUTSIDE_WINDOW)
            self._follow(columns.model_version, numeric, categorical, times, result.accepted)
            if warming and len(self._fitted) < len(self.specs) and self.extension is None:
                self._collect(columns, start, segment_column)
                if self._warm_full:
                    self._finish_warmup()
        self._report_invalid(account)
        account.accept_events(self.name, int(np.count_nonzero(accepted & ~outside)))
        _newest_times(account, columns, messages, accepted)

    def _follow(
        self,
        version: str,
        numeric: npt.NDArray[np.float64],
        categorical: tuple[npt.NDArray[np.object_], ...],
        times: npt.NDArray[np.float64],
        accepted: npt.NDArray[np.bool_],
    ) -> None:
        """Registry hooks: count the slice's version, start a shadow for a version that has
        a registered profile before its first events are counted, feed the shadows."""
        if self.mode is not ReferenceMode.REGISTRY or self.window is None:
            return
        if self.plan.reference.follow_model_version:
            self.versions.add(version, self.window.ring.bucket_of(times[accepted]))
            followed = self.follow_profiles.get(version)
            if followed is not None and followed.reference_id != self.reference_id:
                self.shadows.add(followed, f"model_version {version} in the stream", self.clock())
        if len(self.shadows):
            self.shadows.ingest(numeric, categorical, times)

    def version_shares(self) -> dict[str, float]:
        """Each model version's share of the current window (`monitor.follow`).

        A window that has counted nothing yet (just swapped in without a shadow: in a fleet,
        the registry's switch reached a replica before any event of the new version) ends
        at the newest bucket a version was counted in, so the versions still in the window
        keep their shadows from the swap on."""
        if self.window is None:
            return {}
        head = self.window.head
        if head is None:
            head = self.versions.newest_bucket
        if head is None:
            return {}
        return self.versions.shares(head - self.window.n_buckets + 1)

    def flush(self, account: BatchAccount) -> None:
        """Count every pending event into the windows; their invalid values into `account`."""
        self._flush_pending()
        self._report_invalid(account)

    @property
    def pending_events(self) -> int:
        """Admitted events not yet counted into the windows (deferred ingest)."""
        return self._pending.events

    def _flush_pending(self) -> None:
        """Count the pending events (if any) into the active window."""
        batch = self._pending.take()
        if batch is None or self.layout is None or self.window is None:
            return
        numeric, categorical, times = batch
        segment_column = None
        if self.segments is not None:  # ingest keeps the segment column last (segment_by)
            categorical, segment_column = categorical[:-1], categorical[-1]
        invalid = self._count_accepted(
            numeric, categorical, times, np.ones(times.size, bool), segment_column
        )
        self._unreported = invalid if self._unreported is None else self._unreported + invalid

    def _report_invalid(self, account: BatchAccount) -> None:
        """Move the invalid values counted so far into `account`."""
        if self._unreported is None:
            return
        for spec, count in zip(self.specs, self._unreported.tolist(), strict=True):
            account.add_invalid(self.name, spec.name, int(count))
        self._unreported = None

    @staticmethod
    def _drop(
        account: BatchAccount,
        columns: ModelColumns,
        messages: Sequence[RawMessage],
        select: slice | npt.NDArray[np.bool_],
        reason: RejectReason,
    ) -> None:
        """Count the selected events as rejected for `reason`, per message; the first such
        message is offered as a log sample (its position and count, never its event time)."""
        if not messages:
            account.reject("", reason, int(columns.times[select].size))
            return
        indices = columns.messages[select]
        if indices.size == 0:
            return
        distinct, counts = np.unique(indices, return_counts=True)
        for index, count in zip(distinct.tolist(), counts.tolist(), strict=True):
            message = messages[index]
            account.reject(message.topic, reason, count)
            account.dead_letter(message, reason)
        events = int(counts[0])
        detail = f"{events} event{'s' if events > 1 else ''} of model {columns.model}: "
        account.sample(messages[int(distinct[0])], reason, detail + _DROP_WHY.get(reason, ""))

    def _count_accepted(
        self,
        numeric: npt.NDArray[np.float64],
        categorical: tuple[npt.NDArray[np.object_], ...],
        times: npt.NDArray[np.float64],
        accepted: npt.NDArray[np.bool_],
        segment_column: npt.NDArray[np.object_] | None = None,
    ) -> npt.NDArray[np.int64]:
        """Count the accepted events into the window (and lagging hours); invalid per feature.

        With segments, each event is binned once into its segment's window and the
        whole-model window gets the sum of the segment blocks (monitor/segments.py).
        """
        assert self.layout is not None and self.window is not None
        layout = self.layout
        segments = self.segments
        if segments is not None and segments.model is not None and segment_column is not None:
            assert self.lagging is None  # config: segment_by needs a file or warm-up reference
            total = segments.count_batch(
                self.window, times, accepted, numeric, categorical, segment_column
            )
            return np.asarray(total[:, layout.invalid_col], dtype=np.int64)

        count = layout_counter(layout, numeric, categorical)
        if self.tap is not None:
            total = count_batch(self.tap, self.lagging_tap, times, accepted, count)
        else:
            total = count_batch(self.window, self.lagging, times, accepted, count)
        if self.correlation is not None:
            self.correlation.add(numeric, times, accepted)
        return np.asarray(total[:, layout.invalid_col], dtype=np.int64)

    # -- evaluate ------------------------------------------------------------------

    def evaluate(self, now: float) -> ModelEvaluation:
        """The model's evaluation now (a not-ready model reports sample counts only).

        Its `model_version` (a metric label) is the reference profile's, fixed for the life of
        the reference: the versions a stream carries never mint label values.
        """
        if (
            self.evaluator is None
            or self.window is None
            or self.reference_counts is None
            or self.profile is None
        ):
            return self._pending_evaluation(now)
        self._flush_pending()
        reference = self.lagging.reference() if self.lagging is not None else self.reference_counts
        unfitted = self._unfitted_rows()
        if unfitted and self.lagging is not None:
            reference = reference.copy()
            reference[unfitted] = 0  # counted in placeholder bins: no reference
        context = EvaluationContext(
            model=self.name,
            evaluated_at=now,
            reference_id=self.reference_id,
            reference_mode=self.mode.value,
            model_version=self.profile.model_version[:MAX_VERSION_CHARS],
            watermark=self.window.watermark,
        )
        current = self.window.current()
        evaluation = self.evaluator.evaluate(reference, current, context, self._groups)
        correlation = (
            self.correlation.evaluate(self.window.head, self.policy)
            if self.correlation is not None
            else None
        )
        evaluation = dataclasses.replace(
            evaluation,
            features=(
                tuple(self._readiness(f) for f in evaluation.features)
                if unfitted or self.lagging is not None
                else evaluation.features  # every feature fitted: ready as the evaluator says
            ),
            correlation=correlation,
            sample_rate=self.plan.sample_rate,
            window_digest=hashlib.sha256(current.astype("<i8").tobytes()).hexdigest(),
        )
        if self.segments is None:
            return evaluation
        return dataclasses.replace(
            evaluation,
            segment_by=self.segments.plan.field,
            segments=self.segments.evaluate(now),
            segment_field_missing=self.segments.unassigned,
        )

    def _unfitted_rows(self) -> list[int]:
        """Rows (layout order) of the features the active profile has no bins for."""
        return [i for i, s in enumerate(self.specs) if s.name not in self._fitted]

    def _no_reference_reason(self, name: str) -> str:
        """Why a feature has no bins yet (the warm-up's verdict, or its progress)."""
        if self.mode is ReferenceMode.FILE:
            return self.last_reference_error or "reference file not loaded yet"
        if self.mode is ReferenceMode.REGISTRY:
            return self.last_reference_error or "no active reference in the registry yet"
        done, need = self.warmup_progress
        if self.extension is not None and self.extension.feature(name) is not None:
            return (
                f"warmed up: reference {self.extension.reference_id} waits for the registry "
                "to activate it (fleet)"
            )
        if name in self.pending:
            return f"{self.pending[name]}; retrying: {done}/{need} events"
        return f"warm-up in progress: {done}/{need} events"

    def _readiness(self, feature: FeatureResult) -> FeatureResult:
        """`feature` with `reference_ready` and `reference_note` set (see the module doc)."""
        if feature.name not in self._fitted:
            note = self._no_reference_reason(feature.name)
            return dataclasses.replace(
                feature, reference_ready=False, reference_note=note, reference_unseen_estimate=None
            )
        if self.lagging is not None and feature.reference_samples < self.policy.min_samples:
            note = (
                f"rolling reference: {feature.reference_samples} values in the lagged window "
                f"[watermark - lag - length, watermark - lag], {self.policy.min_samples} needed"
            )
            return dataclasses.replace(feature, reference_ready=False, reference_note=note)
        if feature.reference_ready and not feature.reference_note:
            return feature  # already so: no copy (dataclasses.replace costs ~20 us a feature)
        return dataclasses.replace(feature, reference_ready=True, reference_note="")

    def _pending_evaluation(self, now: float) -> ModelEvaluation:
        features = tuple(
            FeatureResult(
                name=s.name,
                kind=s.kind,
                reference_samples=0,
                current_samples=0,
                reference_missing_ratio=None,
                current_missing_ratio=None,
                evaluated=False,
                thresholds=s.thresholds,
                reference_ready=False,
                reference_note=self._no_reference_reason(s.name),
            )
            for s in self.specs
        )
        return ModelEvaluation(
            model=self.name,
            evaluated_at=now,
            features=features,
            correction=self.policy.correction,
            fdr_q=self.policy.fdr_q,
            reference_mode=self.mode.value,
            model_version=self.model_version,
            segment_by=self.segments.plan.field if self.segments is not None else "",
            segment_field_missing=self.segments.unassigned if self.segments is not None else 0,
            sample_rate=self.plan.sample_rate,
        )

    @property
    def warmup_progress(self) -> tuple[int, int]:
        """(events buffered, events needed) for a warm-up reference."""
        done = self._warm.count if self._warm is not None else 0
        return done, self.plan.reference.warmup_events

    # -- checkpoint ------------------------------------------------------------------

    def to_state(self) -> ModelState:
        """Everything needed to resume this model exactly (warm-up buffers included; pending
        events are counted into the window first).

        `features` (`feature_signatures`) and `rows` (the layout's rows with their bins
        digests) let `restore` match the checkpoint to a changed configuration feature by
        feature.
        """
        self._flush_pending()
        arrays: dict[str, npt.NDArray[Any]] = {}
        meta: dict[str, Any] = {
            "mode": self.mode.value,
            "model_version": self.model_version,
            "pending": dict(self.pending),
            "features": self.feature_signatures(),
            "rows": rows_to_meta(self.layout_rows()),
        }
        if self.profile is not None and self.window is not None:
            meta["reference_id"] = self.profile.reference_id
            if self.mode is not ReferenceMode.FILE:
                meta["profile"] = self._serialised_profile(self.profile)
            for key, value in self.window.state().items():
                arrays[f"window.{key}"] = value
            if self.lagging is not None:
                for key, value in self.lagging.state().items():
                    arrays[f"lagging.{key}"] = value
            if self.correlation is not None:
                for key, value in self.correlation.window.state().items():
                    arrays[f"correlation.{key}"] = value
        if self._warm is not None and self._warm.count:
            arrays["warm.numeric"], meta["warm"] = self._warm.state()
        if self.segments is not None:
            segment_arrays, meta["segments"] = self.segments.state()
            arrays.update(segment_arrays)
        return ModelState(self.fingerprint(), arrays, meta)

    def _serialised_profile(self, profile: ReferenceProfile) -> str:
        """`profile_to_json(profile)`, kept for the active profile: a wide profile takes
        seconds to serialise, and every checkpoint writes it."""
        if self._profile_json is None or self._profile_json[0] is not profile:
            self._profile_json = (profile, profile_to_json(profile))
        return self._profile_json[1]

    def restore(self, state: ModelState) -> None:
        """Resume from a checkpoint, feature by feature; StateError if it cannot be used.

        The model-wide `fingerprint` must match. Then every feature whose signature
        (`feature_signatures`) and bins are unchanged keeps its reference (warm-up/rolling),
        its window counts, its lagging ring and its warm-up values; an added feature, or one
        whose kind, fit parameter or `file` bins changed, starts fresh; a removed one is
        dropped. Checkpoints written before per-feature restore (no `features`) are accepted
        when their whole-model fingerprint matches.
        """
        meta = state.meta
        legacy = "features" not in meta
        expected = self._legacy_fingerprint() if legacy else self.fingerprint()
        if state.fingerprint != expected:
            raise StateError(
                f"model {self.name!r}: checkpoint was written for a different configuration"
            )
        signatures = self.feature_signatures() if legacy else meta["features"]
        if not isinstance(signatures, list):
            raise StateError(f"model {self.name!r}: checkpointed features are not a list")
        old_sig = {str(sig[0]): list(sig[1:]) for sig in signatures}
        same = {name for name, *sig in self.feature_signatures() if old_sig.get(name) == sig}
        self.model_version = str(meta.get("model_version", ""))
        pending = meta.get("pending", {})
        self.pending = (
            {str(k): str(v) for k, v in pending.items() if str(k) in same}
            if isinstance(pending, dict)
            else {}
        )
        reference_id = meta.get("reference_id")
        if reference_id:
            self._restore_windows(state, str(reference_id), same, legacy)
        self._restore_warmup(state, signatures, same)
        if self.segments is not None:
            self._restore_segments(state, same, legacy)

    def _restore_segments(self, state: ModelState, same: set[str], legacy: bool) -> None:
        """The segment windows come back only when no feature changed (else they start
        empty); the count of events without the segment field and the warm-up's segment
        values always do."""
        assert self.segments is not None
        old_rows = self.layout_rows() if legacy else rows_from_meta(state.meta.get("rows"))
        unchanged = same == {s.name for s in self.specs} and old_rows == self.layout_rows()
        try:
            self.segments.restore(state.arrays if unchanged else {}, state.meta.get("segments", {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"model {self.name!r}: checkpointed segment windows unusable: {exc}"
            ) from exc

    def _restore_windows(
        self, state: ModelState, reference_id: str, same: set[str], legacy: bool
    ) -> None:
        """Re-activate the kept features' reference (warm-up/rolling) and carry their counts."""
        if self.mode is ReferenceMode.FILE:
            if self.profile is None or (legacy and self.reference_id != reference_id):
                raise StateError(
                    f"model {self.name!r}: checkpoint counted against reference "
                    f"{reference_id}, the file now holds {self.reference_id or 'nothing'}"
                )
        else:
            text = str(state.meta["profile"])
            old = profile_from_json(text)
            kept = [f for f in old.features if f.name in same]
            if not kept:
                return
            full = len(kept) == len(old.features)
            if not full:
                old = build_profile(
                    self.name,
                    kept,
                    old.events,
                    model_version=old.model_version,
                    created_at=old.created_at,
                    source=old.source,
                    joint=_joint_of(old),
                )
            self._activate(old)
            if full and self.profile is not None:
                self._profile_json = (self.profile, text)
        try:
            rows = self.layout_rows() if legacy else rows_from_meta(state.meta.get("rows"))
            self._carry(
                rows,
                {k[7:]: v for k, v in state.arrays.items() if k.startswith("window.")},
                {k[8:]: v for k, v in state.arrays.items() if k.startswith("lagging.")}
                if self.lagging is not None
                else None,
            )
            correlation = {
                k[12:]: v for k, v in state.arrays.items() if k.startswith("correlation.")
            }
            if self.correlation is not None and correlation:
                self.correlation.window.restore(correlation)
        except (ValueError, KeyError) as exc:
            raise StateError(f"model {self.name!r}: checkpointed window unusable: {exc}") from exc

    def _restore_warmup(self, state: ModelState, signatures: list[Any], same: set[str]) -> None:
        """Restore the warm-up buffer, keeping the values of unchanged features still pending."""
        warm = state.meta.get("warm")
        count = int(state.meta.get("warm_count", 0))
        if warm is None and count:  # written before per-feature warm-ups: every feature
            warm = {
                "count": count,
                "numeric_rows": list(range(len(self.numeric_specs))),
                "categorical_rows": list(range(len(self.categorical_specs))),
                "categorical": state.meta.get("warm_categorical", []),
            }
        if warm is None:
            return
        buffer = WarmupBuffer.restore(
            self.plan.reference.warmup_events, state.arrays.get("warm.numeric"), warm
        )
        old_numeric = [str(s[0]) for s in signatures if s[1] == FeatureKind.NUMERIC.value]
        old_categorical = [str(s[0]) for s in signatures if s[1] == FeatureKind.CATEGORICAL.value]
        numeric = {s.name: i for i, s in enumerate(self.numeric_specs)}
        categorical = {s.name: i for i, s in enumerate(self.categorical_specs)}
        wanted = same - self._fitted
        self._warm = buffer.remapped(
            {r: numeric[n] for r, n in enumerate(old_numeric) if n in wanted and n in numeric},
            {
                r: categorical[n]
                for r, n in enumerate(old_categorical)
                if n in wanted and n in categorical
            },
        )

    def memory_bytes(self) -> int:
        """Bytes held by the window rings and reference counts."""
        total = 0
        if self.window is not None:
            total += self.window.nbytes
        if self.lagging is not None:
            total += self.lagging.nbytes
        if self.reference_counts is not None:
            total += int(self.reference_counts.nbytes)
        if self.correlation is not None:
            total += self.correlation.window.nbytes
        if self.segments is not None:
            total += self.segments.nbytes
        return total


def model_runtimes(settings: Settings, clock: Callable[[], float]) -> dict[str, ModelRuntime]:
    """One `ModelRuntime` per configured model (`config.model_plans`), by name in order.

    Warm-up references are persisted under `state.dir`.
    """
    return {
        plan.name: ModelRuntime(plan, clock=clock, state_dir=settings.state.dir)
        for plan in model_plans(settings)
    }


def _joint_of(profile: ReferenceProfile | None) -> dict[str, object] | None:
    """The multivariate references of `profile` as a dict (None: it has none)."""
    if profile is None or not profile.joint:
        return None
    value = json.loads(profile.joint)
    return value if isinstance(value, dict) else None


def _select(
    numeric: npt.NDArray[np.float64],
    categorical: tuple[npt.NDArray[np.object_], ...],
    times: npt.NDArray[np.float64],
    keep: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.float64], tuple[npt.NDArray[np.object_], ...], npt.NDArray[np.float64]]:
    """The columns of the events in `keep` (the arrays themselves when it keeps every one)."""
    if bool(keep.all()):
        return numeric, categorical, times
    return numeric[:, keep], tuple(c[keep] for c in categorical), times[keep]


def _segments_of(profile: ReferenceProfile | None) -> SegmentSlices | None:
    """The segment slices of the active profile, if any (kept when features are added)."""
    return profile.segments if profile is not None else None


def _newest_times(
    account: BatchAccount,
    columns: ModelColumns,
    messages: Sequence[RawMessage],
    accepted: npt.NDArray[np.bool_],
) -> None:
    """Fold the newest accepted event time of each topic into `account`."""
    if not messages or not accepted.any():
        return
    times = columns.times[accepted]
    if len(account.consumed) == 1:  # one topic in the batch: no per-message lookup
        account.event_time(next(iter(account.consumed)), float(times.max()))
        return
    indices = columns.messages[accepted]
    topics = {messages[i].topic for i in np.unique(indices).tolist()}
    topic_of = np.array([messages[i].topic for i in indices.tolist()], dtype=object)
    for topic in topics:
        account.event_time(topic, float(times[topic_of == topic].max()))
