"""Drift per segment: each segment's window against its own reference slice, one BH family.

A model with `segment_by` (README "Segments"; docs/statistics.md, "Segments") keeps, beside
its whole-model window, one window per segment: the `max_segments` most frequent reference
values of the field and OTHER (monitor/segment_slices.py). All segments share the model's
frozen bins, so for G = segments + 1 and F features the segment windows are one count matrix
of G blocks of F rows, and the whole-model counts of a batch are the sum of its blocks
(each event is binned once).

Evaluation stacks the G x F (segment, feature) rows into one layout and runs the model's own
decision rule (`monitor.evaluate.ModelEvaluator`) on it: every test, floor and p-value is the
whole-model one computed on the segment's counts against the segment's reference slice, and
the Benjamini-Hochberg correction runs once over all G x F tests of the model (m = the
evaluated (segment, feature) pairs), so adding segments raises the bar of every test instead
of multiplying the false alarms. KS on a segment is the binned KS of that slice: a lower bound
of `scipy.stats.ks_2samp` on the segment's raw values within the slice's own `ks_error_bound`.
A segment's feature with fewer than `min_samples` values in either window is not tested.

Memory: G x F x W integers per window bucket, G <= max_segments + 1 (at most 101).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.decode import ModelColumns
from monitor.evaluate import EvaluationContext, ModelEvaluator
from monitor.histogram import (
    CategoricalBins,
    CountMatrix,
    ModelLayout,
    NumericBins,
    relayout_counts,
)
from monitor.model import (
    DecisionPolicy,
    FeatureSpec,
    SegmentPlan,
    SegmentResult,
    WindowPlan,
)
from monitor.segment_slices import (
    SegmentCoder,
    SegmentSlices,
    fit_slices,
    top_segments,
)
from monitor.window import EventTimeWindow, key_blocks

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]


class SegmentModel:
    """The segments of one reference: coder, reference slices, stacked evaluator.

    Storage order of the counts is segment-major, `[G, F, W]` (block k = segment k, rows in
    the model layout's order); the evaluator's stacked layout lists every segment's numeric
    rows, then every segment's categorical rows (`ModelLayout` wants numeric rows first), and
    `_order` maps one to the other. Segments of the profile beyond `max_segments` are folded
    into OTHER.
    """

    def __init__(
        self,
        layout: ModelLayout,
        specs: Sequence[FeatureSpec],
        slices: SegmentSlices,
        max_segments: int,
        policy: DecisionPolicy,
    ) -> None:
        names = slices.names[:max_segments]
        self.layout = layout
        self.specs = tuple(specs)
        self.coder = SegmentCoder(names)
        self.groups = groups = len(names) + 1
        n_features, width = layout.n_features, layout.width
        reference = np.zeros((groups, n_features, width), dtype=np.int64)
        for row, spec in enumerate(self.specs):
            counts = slices.of(spec.name)
            slots = int(layout.value_slots[row])
            if counts is None or any(len(c) != slots + 2 for c in counts):
                continue  # no slice for this feature's bins: never tested per segment
            for k, values in enumerate(counts):
                target = reference[min(k, groups - 1), row]
                target[:slots] += values[:slots]
                target[layout.missing_col] += values[-2]
                target[layout.invalid_col] += values[-1]
        events = [0] * groups
        for k, n in enumerate(slices.events):
            events[min(k, groups - 1)] += n
        self.reference_events = tuple(events)
        n_num = layout.n_numeric
        numeric = [
            (f"{k}:{name}", bins)
            for k in range(groups)
            for name, bins in zip(layout.numeric_names, layout.numeric_bins, strict=True)
        ]
        categorical = [
            (f"{k}:{name}", bins)
            for k in range(groups)
            for name, bins in zip(layout.categorical_names, layout.categorical_bins, strict=True)
        ]
        stacked = ModelLayout(numeric, categorical)
        by_name = {s.name: s for s in self.specs}
        stacked_specs = [
            dataclasses.replace(by_name[name.split(":", 1)[1]], name=name) for name in stacked.names
        ]
        self.evaluator = ModelEvaluator(
            stacked,
            stacked_specs,
            policy,
            distributions=False,
            names=[name.split(":", 1)[1] for name in stacked.names],
        )
        order = [k * n_features + j for k in range(groups) for j in range(n_num)]
        order += [
            k * n_features + n_num + j for k in range(groups) for j in range(n_features - n_num)
        ]
        self._order = np.asarray(order, dtype=np.int64)
        self._position = np.argsort(self._order)  # storage row -> stacked row
        self._reference = reference.reshape(groups * n_features, width)[self._order]
        self._psi_groups = self.evaluator.psi_groups(self._reference)

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one segment-window count matrix: (G x F, W)."""
        return (self.groups * self.layout.n_features, self.layout.width)

    def count(
        self,
        numeric: FloatArray,
        categorical: Sequence[ObjectArray],
        codes: IntArray,
    ) -> npt.NDArray[np.int64]:
        """Counts `[G, F, W]` of a batch whose events have segment `codes` (one binning each)."""
        return self.layout.count_grouped(numeric, categorical, codes, self.groups)

    def evaluate(
        self, current: CountMatrix, now: float, reference: CountMatrix | None = None
    ) -> tuple[SegmentResult, ...]:
        """Every segment's results (storage-order `current`, shape (G x F, W)), worst first.

        Worst first: most drifted features, then the smallest q-value, then the label.
        `reference` (storage order) replaces the slices' counts (for simulations).
        """
        stacked = np.asarray(current, dtype=np.int64).reshape(self.shape)[self._order]
        ref, groups = self._reference, self._psi_groups
        if reference is not None:
            ref = np.asarray(reference, dtype=np.int64).reshape(self.shape)[self._order]
            groups = self.evaluator.psi_groups(ref)
        evaluation = self.evaluator.evaluate(
            ref, stacked, EvaluationContext(model="", evaluated_at=now), groups
        )
        n_features = self.layout.n_features
        reference_events = self.reference_events
        if reference is not None:
            ref_blocks = np.asarray(reference).reshape(self.groups, n_features, -1)
            reference_events = tuple(ref_blocks[:, 0, :].sum(axis=1).tolist())
        blocks = np.asarray(current).reshape(self.groups, n_features, -1)
        events = blocks[:, 0, :].sum(axis=1).tolist()
        results = []
        for k, label in enumerate(self.coder.labels):
            features = tuple(
                evaluation.features[position]
                for position in self._position[k * n_features : (k + 1) * n_features].tolist()
            )
            results.append(SegmentResult(label, reference_events[k], int(events[k]), features))
        return tuple(sorted(results, key=_severity))


def _severity(segment: SegmentResult) -> tuple[int, float, str]:
    qvalues = [f.qvalue for f in segment.features if f.qvalue is not None]
    return (-segment.drifted_features, min(qvalues, default=math.inf), segment.segment)


class SegmentTracker:
    """A model runtime's segment state: the segment column, the windows, the warm-up values.

    The segment field is read as a categorical column: the configured feature of that name,
    or an extra column appended to the model's decoding schema (`schema_columns`) and split
    off again (`split`) before the model sees the batch.
    """

    def __init__(self, plan: SegmentPlan, categorical: Sequence[str]) -> None:
        self.plan = plan
        self.extra = plan.key not in categorical
        self._index = len(categorical) if self.extra else list(categorical).index(plan.key)
        self.model: SegmentModel | None = None
        self.window: EventTimeWindow | None = None
        self.unassigned = 0
        self.note = ""
        self._warm: list[ObjectArray] = []

    def schema_columns(self, categorical: Sequence[str]) -> tuple[str, ...]:
        """The categorical columns the decoder must produce for the model."""
        return (*categorical, self.plan.key) if self.extra else tuple(categorical)

    def split(self, columns: ModelColumns) -> tuple[ModelColumns, ObjectArray]:
        """(the model's own columns, the segment column) of a decoded slice."""
        column = columns.categorical[self._index]
        if not self.extra:
            return columns, column
        return dataclasses.replace(columns, categorical=columns.categorical[: self._index]), column

    # -- reference -------------------------------------------------------------------

    def activate(
        self,
        layout: ModelLayout,
        specs: Sequence[FeatureSpec],
        slices: SegmentSlices | None,
        window: WindowPlan,
        policy: DecisionPolicy,
    ) -> None:
        """Build the segments of a newly active reference; its segment windows start empty."""
        self.model = None
        self.window = None
        if slices is None or slices.field != self.plan.key:
            found = "no segment slices" if slices is None else f"slices of {slices.field!r}"
            self.note = (
                f"the reference has {found}, segment_by needs slices of {self.plan.key!r} "
                "(driftmon reference fit --segment-by)"
            )
            return
        self.note = ""
        self.model = SegmentModel(layout, specs, slices, self.plan.max_segments, policy)
        self.window = EventTimeWindow(
            self.model.shape,
            window.bucket_seconds,
            window.length_seconds,
            window.allowed_lateness_seconds,
        )

    def collect(self, column: ObjectArray, start: int, take: int) -> None:
        """Keep the segment values of the events the warm-up buffer just took."""
        if take:
            self._warm.append(column[start : start + take].copy())

    def warm_slices(
        self,
        known: SegmentSlices | None,
        fitted: Sequence[tuple[str, NumericBins | CategoricalBins]],
        numeric: Mapping[str, FloatArray],
        categorical: Mapping[str, ObjectArray],
    ) -> SegmentSlices:
        """Slices of the features just fitted from the warm-up (the buffer is consumed).

        The first warm-up picks the segments (top reference values); later ones (features
        fitted on a repeated warm-up) keep them and add the new features' slices. When the
        kept segment values do not match the buffer (a warm-up buffer restored from a
        checkpoint written before segments), the features get no slice: they are tested for
        the whole model only.
        """
        column = np.concatenate(self._warm) if self._warm else np.empty(0, dtype=object)
        self._warm = []
        names = known.names if known is not None else top_segments(column, self.plan.max_segments)
        sizes = {len(v) for v in (*numeric.values(), *categorical.values())}
        if sizes != {column.size}:  # values not kept beside this buffer (a restored old one)
            numeric, categorical = {}, {}
        fresh = fit_slices(self.plan.key, names, fitted, numeric, categorical, column)
        if known is None:
            return fresh
        new = {name for name, _ in fresh.features}
        kept = tuple(item for item in known.features if item[0] not in new)
        return dataclasses.replace(known, features=kept + fresh.features)

    def carry_over(
        self,
        old: Mapping[str, npt.NDArray[Any]] | None,
        old_layout: ModelLayout,
        new_layout: ModelLayout,
        keep: Sequence[int],
    ) -> None:
        """Restore an old segment ring (`window.state()`) into the new layout's window.

        Rows in `keep` keep their counts (their bins are unchanged); the others start empty.
        """
        if old is None or self.window is None or self.model is None:
            return
        counts = np.asarray(old["counts"])
        groups = self.model.groups
        if counts.shape[1] != groups * old_layout.n_features:
            return
        blocks = counts.reshape(counts.shape[0], groups, old_layout.n_features, old_layout.width)
        moved = relayout_counts(blocks, old_layout, new_layout, keep)
        state = dict(old)
        state["counts"] = moved.reshape(counts.shape[0], *self.model.shape)
        self.window.restore(state)

    # -- counting and evaluation ---------------------------------------------------------

    def count_batch(
        self,
        window: EventTimeWindow,
        times: FloatArray,
        accepted: npt.NDArray[np.bool_],
        numeric: FloatArray,
        categorical: Sequence[ObjectArray],
        column: ObjectArray,
    ) -> npt.NDArray[np.int64]:
        """Count the accepted events into the segment windows and the whole-model `window`.

        Like `monitor.window.count_batch`: each event is binned once, into block
        key x G + segment of one `count_grouped` call (key: the rank of its bucket among the
        batch's buckets; events not accepted in a dropped key), and a bucket's whole-model
        counts are the sum of its G segment blocks. A bucket either window has evicted since
        the events were admitted (deferred counting, `monitor.accumulate`) is not added to
        it. Returns the whole-model counts of every accepted event.
        """
        model, segments = self.model, self.window
        assert model is not None and segments is not None
        if window.watermark is not None:
            segments.advance(window.watermark)
        codes = model.coder.codes(column)
        self.unassigned += SegmentCoder.unassigned(
            column[accepted], codes[accepted], model.coder.other
        )
        layout, n_segments = model.layout, model.groups

        def count(
            select: npt.NDArray[np.bool_] | None, groups: IntArray | None, n_groups: int
        ) -> npt.NDArray[np.int64]:
            rows, columns, ids = numeric, categorical, codes
            if select is not None:
                rows, columns = numeric[:, select], [c[select] for c in categorical]
                ids = codes[select]
            if groups is not None:
                ids = groups * n_segments + ids
            blocks = layout.count_grouped(rows, columns, ids, n_groups * n_segments)
            return blocks.reshape(n_groups, *model.shape)

        buckets = window.ring.bucket_of(times)
        total = np.zeros(window.ring.shape, dtype=np.int64)
        cells = n_segments * layout.n_features * layout.width
        for event, blocks in key_blocks(count, buckets, accepted, cells):
            bucket = int(buckets[event])
            if segments.holds(bucket):
                segments.add_counts(bucket, blocks)
            counts = blocks.reshape(n_segments, *window.ring.shape).sum(axis=0)
            if window.holds(bucket):
                window.add_counts(bucket, counts)
            total += counts
        return total

    def evaluate(self, now: float) -> tuple[SegmentResult, ...]:
        """The segments' results, worst first (none before the reference has slices)."""
        if self.model is None or self.window is None:
            return ()
        return self.model.evaluate(self.window.current(), now)

    # -- checkpoint -------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
        """(arrays, JSON-able meta) to checkpoint: the segment window ring and the counters."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        if self.window is not None:
            arrays = {f"segments.window.{k}": v for k, v in self.window.state().items()}
        meta = {
            "unassigned": self.unassigned,
            "warm": [v for chunk in self._warm for v in chunk.tolist()],
        }
        return arrays, meta

    def restore(self, arrays: Mapping[str, npt.NDArray[Any]], meta: Mapping[str, Any]) -> None:
        """Load `state()` (after the reference is active); ValueError/KeyError if unusable."""
        self.unassigned = int(meta.get("unassigned", 0))
        warm = meta.get("warm", [])
        self._warm = [np.asarray(warm, dtype=object)] if warm else []
        prefix = "segments.window."
        ring = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        if self.window is not None and ring:
            self.window.restore(ring)

    @property
    def nbytes(self) -> int:
        """Memory of the segment windows."""
        return self.window.nbytes if self.window is not None else 0
