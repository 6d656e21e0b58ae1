"""One model's live state: reference, current window, evaluator, checkpoint form.

Reference modes (README.md, References):
- file: a profile built by `driftmon reference fit`. The file is re-read when its
  modification time changes: a valid new profile is swapped in without a restart (the
  current window restarts empty, since its counts are in the old bins); an invalid one is
  refused and the running reference kept (an error in the log, the next valid file wins).
  Restoring the previous file rolls back the same way.
- warmup: the first `warmup_events` accepted events are buffered, then edges and counts
  are fitted, frozen, persisted in the checkpoint and in `<state>/references/<model>.json`.
- rolling: edges are fitted from the warm-up as above; afterwards the reference is the
  lagging window [watermark - lag - length, watermark - lag] of hourly buckets.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.config import EvaluationSettings, ModelSettings, Settings, WindowSettings
from monitor.decode import ModelColumns, ModelSchema
from monitor.errors import ReferenceDataError, StateError
from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.histogram import CountMatrix, ModelLayout
from monitor.model import (
    DistributionExport,
    FeatureKind,
    FeatureResult,
    FeatureSpec,
    ModelEvaluation,
    ReferenceMode,
)
from monitor.reference import (
    ReferenceProfile,
    fit_profile,
    layout_for,
    profile_from_json,
    profile_to_json,
)
from monitor.state import ModelState
from monitor.window import EventTimeWindow, LaggingReference

ROLLING_BUCKET_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one batch did to a model: accepted mask and drop counts per source partition."""

    accepted: npt.NDArray[np.bool_]
    too_late: int
    too_early: int
    warmup: int
    invalid: npt.NDArray[np.int64]
    early: npt.NDArray[np.bool_]
    no_reference: bool = False


class ModelRuntime:
    """Reference, windows and evaluator of one configured model."""

    def __init__(
        self,
        settings: ModelSettings,
        window: WindowSettings,
        evaluation: EvaluationSettings,
        *,
        max_future_seconds: float,
        clock: Callable[[], float],
        state_dir: Path,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.mode = settings.reference.mode
        self.window_settings = window
        self.policy = evaluation.policy()
        self.max_future_seconds = max_future_seconds
        self.clock = clock
        self.state_dir = state_dir
        specs = settings.feature_specs()
        self.numeric_specs = tuple(s for s in specs if s.kind is FeatureKind.NUMERIC)
        self.categorical_specs = tuple(s for s in specs if s.kind is FeatureKind.CATEGORICAL)
        self.specs: tuple[FeatureSpec, ...] = self.numeric_specs + self.categorical_specs
        self.schema = ModelSchema(
            name=self.name,
            numeric=tuple(s.name for s in self.numeric_specs),
            categorical=tuple(s.name for s in self.categorical_specs),
            topics=frozenset(settings.topics) if settings.topics else None,
        )
        self.model_version = ""
        self.profile: ReferenceProfile | None = None
        self.layout: ModelLayout | None = None
        self.reference_counts: CountMatrix | None = None
        self.window: EventTimeWindow | None = None
        self.lagging: LaggingReference | None = None
        self.evaluator: ModelEvaluator | None = None
        self._groups: npt.NDArray[np.int64] | None = None
        self._file_mtime: float | None = None
        self.last_reference_error: str = ""
        self._warm_numeric: list[npt.NDArray[np.float64]] = []
        self._warm_categorical: list[tuple[npt.NDArray[np.object_], ...]] = []
        self._warm_count = 0
        self.reloads: list[tuple[bool, str]] = []

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
        """Hash of everything that shapes this model's checkpointed arrays."""
        content = {
            "features": [[s.name, s.kind.value] for s in self.specs],
            "top_k": [f.top_k for f in self.settings.features],
            "max_bins": self.settings.max_bins,
            "mode": self.mode.value,
            "warmup_events": self.settings.reference.warmup_events,
            "lag": self.settings.reference.lag,
            "length": self.settings.reference.length,
            "window": [
                self.window_settings.bucket,
                self.window_settings.length,
                self.window_settings.allowed_lateness,
            ],
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]

    def load_reference_file(self) -> bool:
        """(Re)load the file reference if it changed; True when a new reference was activated.

        Raises ReferenceDataError only when there is no active reference yet and the file
        cannot be used (the daemon reports the model as not ready and retries later).
        """
        path = self.settings.reference.path
        if self.mode is not ReferenceMode.FILE or path is None:
            return False
        try:
            mtime = os.stat(path).st_mtime
        except OSError as exc:
            self.last_reference_error = f"cannot read reference {path}: {exc.strerror}"
            if self.profile is None:
                raise ReferenceDataError(self.last_reference_error) from exc
            return False
        if self._file_mtime is not None and mtime == self._file_mtime:
            return False
        self._file_mtime = mtime
        try:
            profile = profile_from_json(Path(path).read_bytes())
            if profile.model not in ("", self.name):
                raise ReferenceDataError(
                    f"reference {path} was fitted for model {profile.model!r}, not {self.name!r}"
                )
            self._activate(profile)
        except (ReferenceDataError, OSError) as exc:
            self.last_reference_error = f"reference {path} refused: {exc}"
            self.reloads.append((False, self.last_reference_error))
            if self.profile is None:
                raise ReferenceDataError(self.last_reference_error) from exc
            return False
        self.reloads.append((True, profile.reference_id))
        self.last_reference_error = ""
        return True

    def _activate(self, profile: ReferenceProfile) -> None:
        """Make `profile` the active reference; a new window starts in its bins."""
        layout, counts, ordered = layout_for(profile, self.specs)
        if ordered != self.specs:
            raise ReferenceDataError("internal: profile order differs from the model's order")
        shape = (layout.n_features, layout.width)
        self.profile = profile
        self.layout = layout
        self.reference_counts = counts
        self.window = EventTimeWindow(
            shape,
            self.window_settings.bucket,
            self.window_settings.length,
            self.window_settings.allowed_lateness,
            self.max_future_seconds,
            self.clock,
        )
        self.evaluator = ModelEvaluator(
            layout,
            self.specs,
            self.policy,
            distributions=self.settings.export_distributions is not DistributionExport.NONE,
        )
        if self.mode is ReferenceMode.ROLLING:
            self.lagging = LaggingReference(
                shape,
                ROLLING_BUCKET_SECONDS,
                self.settings.reference.lag,
                self.settings.reference.length,
            )
            self._groups = None
        else:
            self._groups = self.evaluator.psi_groups(counts)

    def _finish_warmup(self) -> None:
        numeric = (
            np.concatenate(self._warm_numeric, axis=1)
            if self._warm_numeric
            else np.empty((len(self.numeric_specs), 0))
        )
        categorical = [
            np.concatenate([chunk[i] for chunk in self._warm_categorical])
            for i in range(len(self.categorical_specs))
        ]
        top_k = {f.name: f.top_k or 20 for f in self.settings.features}
        profile = fit_profile(
            self.name,
            self.specs,
            {s.name: numeric[i] for i, s in enumerate(self.numeric_specs)},
            {s.name: list(categorical[i]) for i, s in enumerate(self.categorical_specs)},
            max_bins=self.settings.max_bins,
            top_k=top_k,
            model_version=self.model_version,
            source=f"warm-up of {self._warm_count} events",
        )
        self._warm_numeric.clear()
        self._warm_categorical.clear()
        self._activate(profile)
        self._persist_profile(profile)

    def _persist_profile(self, profile: ReferenceProfile) -> None:
        directory = self.state_dir / "references"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            target = directory / f"{self.name}.json"
            tmp = target.with_suffix(".json.tmp")
            tmp.write_text(profile_to_json(profile), encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            self.last_reference_error = f"cannot persist the warm-up reference: {exc}"

    # -- ingest --------------------------------------------------------------------

    def ingest(self, columns: ModelColumns) -> IngestResult:
        """Add a model's decoded batch: to the warm-up buffer and/or the windows."""
        n = len(columns)
        if columns.model_version:
            self.model_version = columns.model_version
        accepted = np.zeros(n, dtype=bool)
        invalid = np.zeros(len(self.specs), dtype=np.int64)
        start = 0
        warmup = 0
        if not self.ready and self.mode is not ReferenceMode.FILE:
            need = self.settings.reference.warmup_events - self._warm_count
            take = min(need, n)
            if take > 0:
                self._warm_numeric.append(columns.numeric[:, :take].copy())
                self._warm_categorical.append(tuple(c[:take].copy() for c in columns.categorical))
                self._warm_count += take
                accepted[:take] = True
                warmup = take
                start = take
            if self._warm_count >= self.settings.reference.warmup_events:
                self._finish_warmup()
        early = np.zeros(n, dtype=bool)
        if not self.ready or start >= n:
            return IngestResult(accepted, 0, 0, warmup, invalid, early, not self.ready)
        assert self.layout is not None and self.window is not None
        numeric = columns.numeric[:, start:] if start else columns.numeric
        categorical = (
            tuple(c[start:] for c in columns.categorical) if start else columns.categorical
        )
        times = columns.times[start:] if start else columns.times
        result = self.window.admit(times)
        accepted[start:] = result.accepted
        early[start:] = result.early
        if result.accepted.any():
            invalid = self._count_accepted(numeric, categorical, times, result.accepted)
        return IngestResult(accepted, result.too_late, result.too_early, warmup, invalid, early)

    def _count_accepted(
        self,
        numeric: npt.NDArray[np.float64],
        categorical: tuple[npt.NDArray[np.object_], ...],
        times: npt.NDArray[np.float64],
        accepted: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.int64]:
        """Count the accepted events per window bucket (and lagging hour); invalid per feature."""
        assert self.layout is not None and self.window is not None
        window = self.window
        buckets = window.ring.bucket_of(times)
        hours = self.lagging.ring.bucket_of(times) if self.lagging is not None else None
        keys = buckets if hours is None else buckets * 1_000_003 + (hours - int(hours.min()))
        invalid = np.zeros(len(self.specs), dtype=np.int64)
        if self.lagging is not None:
            self.lagging.advance(window.watermark)
        distinct = np.unique(keys[accepted])
        for key in distinct.tolist():
            select = accepted if distinct.size == 1 else accepted & (keys == key)
            whole = bool(select.all())
            counts = self.layout.count(
                numeric if whole else numeric[:, select],
                categorical if whole else tuple(c[select] for c in categorical),
            )
            first = int(np.flatnonzero(select)[0])
            window.add_counts(int(buckets[first]), counts)
            if self.lagging is not None:
                self.lagging.add_counts(float(times[first]), counts)
            invalid += counts[:, self.layout.invalid_col]
        return invalid

    # -- evaluate ------------------------------------------------------------------

    def evaluate(self, now: float) -> ModelEvaluation:
        """The model's evaluation now (a not-ready model reports sample counts only)."""
        if self.evaluator is None or self.window is None or self.reference_counts is None:
            return self._pending(now)
        reference = self.lagging.reference() if self.lagging is not None else self.reference_counts
        context = EvaluationContext(
            model=self.name,
            evaluated_at=now,
            reference_id=self.reference_id,
            reference_mode=self.mode.value,
            model_version=self.model_version,
            watermark=self.window.watermark,
        )
        return self.evaluator.evaluate(reference, self.window.current(), context, self._groups)

    def _pending(self, now: float) -> ModelEvaluation:
        features = tuple(
            FeatureResult(
                name=s.name,
                kind=s.kind,
                reference_samples=0,
                current_samples=0,
                reference_missing_ratio=None,
                current_missing_ratio=None,
                evaluated=False,
                psi_warning=s.psi_warning,
                psi_critical=s.psi_critical,
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
        )

    @property
    def warmup_progress(self) -> tuple[int, int]:
        """(events buffered, events needed) for a warm-up reference."""
        return self._warm_count, self.settings.reference.warmup_events

    # -- checkpoint ------------------------------------------------------------------

    def to_state(self) -> ModelState:
        """Everything needed to resume this model exactly."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        meta: dict[str, Any] = {
            "mode": self.mode.value,
            "model_version": self.model_version,
            "warm_count": self._warm_count,
        }
        if self.profile is not None and self.window is not None:
            meta["reference_id"] = self.profile.reference_id
            if self.mode is not ReferenceMode.FILE:
                meta["profile"] = profile_to_json(self.profile)
            for key, value in self.window.state().items():
                arrays[f"window.{key}"] = value
            if self.lagging is not None:
                arrays["lagging.counts"] = self.lagging.ring.counts
                arrays["lagging.bucket_ids"] = self.lagging.ring.bucket_ids
                arrays["lagging.watermark"] = np.asarray(
                    [np.nan if self.lagging.watermark is None else self.lagging.watermark]
                )
        elif self._warm_count:
            numeric = np.concatenate(self._warm_numeric, axis=1) if self._warm_numeric else None
            if numeric is not None:
                arrays["warm.numeric"] = numeric
            # categorical warm-up values go into the JSON metadata: numpy string arrays
            # would strip trailing NUL characters (and need no pickles this way)
            meta["warm_categorical"] = [
                np.concatenate([chunk[i] for chunk in self._warm_categorical]).tolist()
                for i in range(len(self.categorical_specs))
            ]
        return ModelState(self.fingerprint(), arrays, meta)

    def restore(self, state: ModelState) -> None:
        """Resume from a checkpoint; StateError if it does not belong to this configuration."""
        if state.fingerprint != self.fingerprint():
            raise StateError(
                f"model {self.name!r}: checkpoint was written for a different configuration"
            )
        self.model_version = str(state.meta.get("model_version", ""))
        self._warm_count = int(state.meta.get("warm_count", 0))
        reference_id = state.meta.get("reference_id")
        if reference_id:
            if self.mode is ReferenceMode.FILE:
                if self.reference_id != reference_id:
                    raise StateError(
                        f"model {self.name!r}: checkpoint counted against reference "
                        f"{reference_id}, the file now holds {self.reference_id or 'nothing'}"
                    )
            else:
                self._activate(profile_from_json(str(state.meta["profile"])))
            assert self.window is not None
            try:
                self.window.restore(
                    {k[7:]: v for k, v in state.arrays.items() if k.startswith("window.")}
                )
                if self.lagging is not None:
                    self.lagging.ring.counts[...] = state.arrays["lagging.counts"]
                    self.lagging.ring.bucket_ids[...] = state.arrays["lagging.bucket_ids"]
                    mark = float(state.arrays["lagging.watermark"][0])
                    self.lagging.watermark = None if math.isnan(mark) else mark
            except (ValueError, KeyError) as exc:
                raise StateError(
                    f"model {self.name!r}: checkpointed window unusable: {exc}"
                ) from exc
        elif self._warm_count:
            if "warm.numeric" in state.arrays:
                self._warm_numeric = [np.asarray(state.arrays["warm.numeric"], dtype=np.float64)]
            columns = state.meta.get("warm_categorical", [])
            if len(columns) != len(self.categorical_specs):
                raise StateError(f"model {self.name!r}: checkpointed warm-up buffer is incomplete")
            chunk = tuple(np.asarray(column, dtype=object) for column in columns)
            self._warm_categorical = [chunk] if chunk else []
            if not self._warm_numeric:
                self._warm_numeric = [np.empty((0, self._warm_count))]

    def memory_bytes(self) -> int:
        """Bytes held by the window rings and reference counts."""
        total = 0
        if self.window is not None:
            total += self.window.nbytes
        if self.lagging is not None:
            total += self.lagging.nbytes
        if self.reference_counts is not None:
            total += int(self.reference_counts.nbytes)
        return total


def model_runtimes(settings: Settings, clock: Callable[[], float]) -> dict[str, ModelRuntime]:
    """One `ModelRuntime` per configured model, by name in configuration order.

    Each gets its model section plus the shared window and evaluation settings,
    `event.max_future_seconds`, the `clock` and `state.dir` (warm-up references are
    persisted under it).
    """
    return {
        m.name: ModelRuntime(
            m,
            settings.window,
            settings.evaluation,
            max_future_seconds=settings.event.max_future_seconds,
            clock=clock,
            state_dir=settings.state.dir,
        )
        for m in settings.models
    }
