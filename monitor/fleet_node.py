"""A fleet replica's side of the state topic (`state.backend: kafka`; docs/fleet.md).

The daemon hands this node its rebalances, its decoded slices and its loop turns:

- **Reader.** Every state record of the fleet is folded (`monitor.fleet.FleetFold`) into the
  models' global windows, which are the windows the runtimes evaluate and export. At start the
  node reads the state topic to its end before the source exists; then each loop turn folds
  what has arrived (`step`).
- **Contributor.** On assignment (the source's rebalance callback, while the loop is blocked
  in poll) the node reads the state topic to its end, claims each partition with
  `epoch[p] + 1`, reads on until its claims are folded and returns each accepted claim's
  start (`next[p]` as of the claim; offset 0, i.e. the reset position, when p has no chain
  yet) for the source to seek to; a claim that lost is made again. Events of owned partitions
  are admitted against the global window and counted per partition by the runtimes' taps
  (`ContributionTap`); every `publish_interval` each owned partition's counts are published
  as one commit; on revoke a last commit is published and the partition dropped. A commit
  the node sees refused for its own partition (stale epoch: the group moved on while this
  replica was paused; gap: a write whose acknowledgement was lost) means this replica's view
  is behind: the partition is dropped and claimed again, which seeks it back to the chain
  head, so nothing is lost or counted twice.
- **Group offsets.** For lag tooling only, the loop commits to the consumer group, per owned
  partition, the chain head of its current claim (the end of the last accepted commit)
  (`group_offsets`, `monitor.fleet_offsets`); never from a rebalance callback.
- **Snapshots.** The owner of the lowest source partition publishes the whole folded state
  every `snapshot_interval` to state partition 0. A starting replica scans that partition for
  the newest snapshot, restores it, seeks every state partition to the positions it covers
  and folds only what follows; without a usable snapshot it folds the whole topic.

- **References.** The fold keeps one global ring per model and reference id (`monitor.fleet`).
  Each runtime's current window is the ring of the reference it has active (`file`: the
  loaded file; `registry`: the registry's activation, which every replica folds), and its
  tap counts under that reference id; each registry shadow (`--prewarm`) counts into its own
  reference's ring, so an activation finds a full ring on every replica. Until the fold holds
  a ring of that reference and shape, an empty stand-in window is evaluated.
- **Warm-up.** A `warmup` model's reference goes through the registry: the replica owning the
  lowest source partition publishes its fitted profile and activation (`warmup_records`,
  cause `warmup`, first writer wins); every replica adopts the registry's activation (the
  daemon's registry sync) and until then counts its own fit on itself only (no tap); the
  owned partitions it counted that way are not committed and, once every warm-up model that
  counted on them has adopted, are claimed again and read again from the chain head, each
  model skipping what its warm-up buffer took (`_release`). A `rolling` model's edges go the
  same way; its lagging reference reads the fold's ring `lag:<reference id>` (hourly, the
  model's lagging template) and counts into it through a `LaggingTap`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from monitor.account import BatchAccount
from monitor.decode import ModelColumns
from monitor.errors import (
    ClaimResult,
    CommitResult,
    ReferenceDataError,
    SourceError,
    StateRejectReason,
)
from monitor.fleet import MAX_RINGS, FleetFold, FoldOutcome, carried_window, window_like
from monitor.fleet_contrib import ContributionTap, Contributor, LaggingTap
from monitor.fleet_offsets import GroupOffsets
from monitor.fleet_records import (
    LAGGING_PREFIX,
    ChunkRecord,
    SnapshotBody,
    SnapshotRecord,
    decode_record,
    encode_claim,
    encode_sample,
    encode_snapshot,
    ring_key,
    ring_reference,
    source_key,
)
from monitor.fleet_versions import version_switch
from monitor.metrics import FleetMetrics
from monitor.model import RawMessage, ReferenceMode
from monitor.registry import (
    RegistryTable,
    activate,
    encode_activation,
    extension_records,
    warmup_records,
)
from monitor.registry import Rejected as RegistryRejected
from monitor.registry_follow import RegistryView
from monitor.runtime import ROLLING_BUCKET_SECONDS, ModelRuntime
from monitor.schema_change import Row, layout_rows
from monitor.shadow import ShadowWindow
from monitor.state_log import SNAPSHOT_PARTITION, StateLog, StateRecord
from monitor.window import EventTimeWindow

TP = tuple[str, int]
#: Seconds a model's carried window (`_carried`) is reused before it is built again.
CARRY_REFRESH_S = 1.0
#: Seconds between two end-offset requests for the state lag.
LAG_INTERVAL_S = 1.0
#: Seconds between two looks of the leader at the followed models' versions.
VERSION_CHECK_S = 1.0
#: The state lag (records) above which the replica reports not ready.
MAX_READY_LAG = 10_000
#: Records folded per loop turn at most (the rest on the next turns).
MAX_RECORDS_PER_STEP = 5_000
#: Seconds a replica waits for its claims to come back before giving up until the next turn.
CLAIM_TIMEOUT_S = 10.0

SeekFn = Callable[[TP, int], None]
#: Reference modes whose reference a fleet fits from a warm-up and shares through the registry.
_FROM_WARMUP = (ReferenceMode.WARMUP, ReferenceMode.ROLLING)


class RegistryWriter(Protocol):
    """The registry topic as the fleet's warm-up needs it (`monitor.registry_log.RegistryLog`)."""

    def ensure_topic(self) -> bool: ...

    def read_to_end(self, table: RegistryTable) -> list[RegistryRejected]: ...

    def publish(self, records: Sequence[tuple[bytes, bytes]]) -> None: ...

    def close(self) -> None: ...


class FleetNode:
    """Reader, contributor and snapshotter of one replica (module docstring)."""

    def __init__(
        self,
        state_log: StateLog,
        runtimes: Mapping[str, ModelRuntime],
        *,
        member: str,
        publish_interval: float,
        snapshot_interval: float,
        metrics: FleetMetrics,
        logger: Any,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        registry_writer: Callable[[], RegistryWriter] | None = None,
        topics: frozenset[str] | None = None,
    ) -> None:
        self.log_topic = state_log
        self.topics = topics
        """The group's source topics (None: any): only their partitions elect the leader."""
        self.runtimes = runtimes
        self.member = member
        self.publish_interval = publish_interval
        self.snapshot_interval = snapshot_interval
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        self.monotonic = monotonic
        self.fold = FleetFold(clock=clock)
        self._skipped = 0  # state-topic record batches skipped unread (`fold_metrics`)
        self.contributor = Contributor(member)
        self.group = GroupOffsets(member)
        self.taps: dict[tuple[str, str], ContributionTap] = {}
        self._templates: dict[str, EventTimeWindow] = {}
        self._placeholders: dict[tuple[str, str], EventTimeWindow] = {}
        self._carried_windows: dict[tuple[str, bool], tuple[str, float, EventTimeWindow]] = {}
        """(model, lagging) -> (ring name, built at, carried window): `_carried`'s cache."""
        self._ring_keys: dict[str, tuple[tuple[Row, ...], str]] = {}
        self._shadow_keys: dict[int, tuple[ShadowWindow, tuple[Row, ...], str]] = {}
        self.registry_active: dict[str, str] = {}
        """Each model's registry activation (its reference id), set by the daemon's sync."""
        self._registry_writer = registry_writer
        self._warmups_published: set[str] = set()
        """The warm-up profiles (reference ids) this replica has offered to the registry."""
        self.seek: SeekFn | None = None
        self.assigned: set[TP] = set()
        self.unclaimed: set[TP] = set()
        self.error = "state topic not read yet"
        self.lag = 0
        self.snapshot_at: float | None = None
        self._claims: dict[tuple[str, int], int | None] = {}
        self._positions: dict[int, int] = {}
        self._next_publish = 0.0
        self._next_snapshot = 0.0
        self._next_lag = 0.0
        self._next_version_check = 0.0
        self._held: dict[str, set[str]] = {}
        """Owned sources whose records a warm-up model counted with this replica's own fit
        (not the registry's reference yet) -> those models: no commit until every one of them
        has adopted the registry's reference, then claimed again (`_release`)."""
        self._fit_from: dict[tuple[str, str], int] = {}
        """(model, source) -> the first offset the model counted with its own fit."""
        self._seen: dict[tuple[str, str], int] = {}
        """(model, source) -> the offset after the newest record a warming model was given."""
        self._skip: dict[tuple[str, str], int] = {}
        """(model, source) -> on the read again after a release, the model's records before
        this offset are not given to it again (its warm-up sample, or what it buffered)."""
        self._unwritten_samples: dict[str, dict[str, int]] = {}
        """model -> source -> where its warm-up sample ended: `sample` records not written
        yet (a failed write), written again each turn while this replica owns the source."""
        self._ingest_source: str | None = None
        """The source partition `ingest` is handing to a runtime (None between slices)."""
        self.registry_view: RegistryView | None = None
        """The registry as the daemon last folded it (set by its sync; None before)."""
        self._next_group_commit = 0.0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Create the state topic if missing and fold it to its end (errors: not ready)."""
        now = self.monotonic()
        self._next_publish = now + self.publish_interval
        self._next_snapshot = now + self.snapshot_interval
        self._attach()
        try:
            if self.log_topic.ensure_topic():
                self.logger.info("state topic created", topic=self.log_topic.topic)
            started = self.monotonic()
            loaded = self._load_snapshot()
            folded = self.log_topic.read_to_end(self._handle)
            self.logger.info(
                "state topic folded",
                from_snapshot=loaded,
                records=folded,
                seconds=round(self.monotonic() - started, 3),
            )
            self.error = ""
        except SourceError as exc:
            self.error = str(exc)
            self.logger.warning("state topic not readable", error=str(exc))
        self._report()

    def ensure_registry(self) -> None:
        """Create the registry topic when a `warmup` model will publish to it (before the
        registry is followed: a follower of a topic that does not exist yet may never see
        it). Failures are logged; the publish retries."""
        if self._registry_writer is None:
            return
        if not any(rt.mode in _FROM_WARMUP for rt in self.runtimes.values()):
            return
        writer = self._registry_writer()
        try:
            writer.ensure_topic()
        except SourceError as exc:
            self.logger.warning("registry topic not created", error=str(exc))
        finally:
            writer.close()

    def close(self) -> None:
        """Release the state topic's clients."""
        self.log_topic.close()

    def _attach(self) -> None:
        """Point every runtime and shadow at the fold's rings (module docstring)."""
        for name, runtime in self.runtimes.items():
            self._attach_model(name, runtime)

    def _attach_model(self, name: str, runtime: ModelRuntime) -> None:
        """Declare the model to the fold (from its configuration, whether or not it has a
        reference yet), make the global ring of its active reference its current window and
        tap its counting (and each shadow's) into this replica's contributions."""
        runtime.in_fleet = True
        held = self._templates.get(name)
        if held is None or held.total.shape[0] != len(runtime.specs):  # new, or reloaded
            plan = runtime.plan.window
            template = EventTimeWindow(
                (len(runtime.specs), 1),
                plan.bucket_seconds,
                plan.length_seconds,
                plan.allowed_lateness_seconds,
                plan.max_future_seconds,
            )
            self._templates[name] = template
            self.fold.declare(name, template, _lagging_template(runtime))
        if runtime.layout is None or runtime.window is None:
            runtime.tap = runtime.lagging_tap = None
            return
        if runtime.mode in _FROM_WARMUP and self.registry_active.get(name) != runtime.reference_id:
            # this replica's own fit: counted here only, until adopted
            runtime.tap = runtime.lagging_tap = None
            return
        shape = (runtime.layout.n_features, runtime.layout.width)
        rows = runtime.layout_rows()
        assert runtime.profile is not None  # it has a layout
        key = self._ring_key(runtime.profile.ring_id, rows)
        ring = self._ring(name, key, shape)
        runtime.window = self._carried(name, key, rows, ring)
        tap = runtime.tap = self._tap(name, key, ring, rows)
        if runtime.lagging is not None:  # a rolling reference reads the fold's lagging ring
            lagging = self._ring(name, LAGGING_PREFIX + key, shape)
            view = self._carried(name, LAGGING_PREFIX + key, rows, lagging)
            runtime.lagging.ring = view.ring
            runtime.lagging.watermark = view.watermark
            runtime.lagging_tap = LaggingTap(tap, lagging)
        runtime.shadows.on_add = partial(self._attach_shadow, name)
        for shadow in runtime.shadows.windows.values():
            self._attach_shadow(name, shadow)

    def _attach_shadow(self, name: str, shadow: ShadowWindow) -> None:
        """Point a shadow at the fold's ring of its reference and tap its counting (a shadow
        started while a slice is ingested counts that slice's partition at once: a model
        version's shadow starts with that version's first events)."""
        shadow_rows, shadow_key = self._shadow_key(shadow)
        ring = self._ring(name, shadow_key, shadow.window.total.shape)
        shadow.window = ring
        tap = shadow.tap = self._tap(name, shadow_key, ring, shadow_rows)
        if self._ingest_source is not None:
            tap.source = self._ingest_source

    def _ring_key(self, reference_id: str, rows: tuple[Row, ...]) -> str:
        """`ring_key`, kept for the rows object last asked for with `reference_id`."""
        held = self._ring_keys.get(reference_id)
        if held is None or held[0] is not rows:
            held = self._ring_keys[reference_id] = (rows, ring_key(reference_id, rows))
            while len(self._ring_keys) > 4 * MAX_RINGS * max(1, len(self.runtimes)):
                del self._ring_keys[next(iter(self._ring_keys))]
        return held[1]

    def _shadow_key(self, shadow: ShadowWindow) -> tuple[tuple[Row, ...], str]:
        """A shadow's rows (its profile's layout) and ring name, kept with the shadow."""
        held = self._shadow_keys.get(id(shadow))
        if held is None or held[0] is not shadow:
            rows = layout_rows(shadow.layout, {f.name for f in shadow.profile.features})
            held = self._shadow_keys[id(shadow)] = (
                shadow,
                rows,
                ring_key(shadow.reference_id, rows),
            )
            while len(self._shadow_keys) > 4 * MAX_RINGS * max(1, len(self.runtimes)):
                del self._shadow_keys[next(iter(self._shadow_keys))]
        return held[1], held[2]

    def _carried(
        self, name: str, key: str, rows: tuple[Row, ...], ring: EventTimeWindow
    ) -> EventTimeWindow:
        """The window the model evaluates: its ring `key`, plus the counts of its features
        in the rings of the same reference laid out in other rows (a configuration that
        added or removed features, before or during a rolling update; `carried_window`),
        built again at most every `CARRY_REFRESH_S`. A ring written before rows were carried
        (named by the reference id alone) is taken as laid out in `rows` when its shape is.
        The same for a rolling reference's lagging ring (`key` starting with
        `LAGGING_PREFIX`: its reference is `lag:<id>`, so only lagging rings are carried)."""
        reference = ring_reference(key)
        others: list[tuple[EventTimeWindow, tuple[Row, ...]]] = []
        for other_key, other in self.fold.rings.get(name, {}).items():
            if other_key == key or ring_reference(other_key) != reference:
                continue
            other_rows = self.fold.rows_of(name, other_key)
            if not other_rows and other_key == reference and other.total.shape == ring.total.shape:
                other_rows = rows
            if other_rows:
                others.append((other, other_rows))
        cache = (name, key.startswith(LAGGING_PREFIX))
        if not others:
            self._carried_windows.pop(cache, None)
            return ring
        now = self.monotonic()
        held = self._carried_windows.get(cache)
        if held is not None and held[0] == key and now - held[1] < CARRY_REFRESH_S:
            return held[2]
        window = carried_window(ring, rows, others)
        self._carried_windows[cache] = (key, now, window)
        return window

    def _ring(self, name: str, reference_id: str, shape: tuple[int, int]) -> EventTimeWindow:
        """The fold's ring of (model, reference), or an empty stand-in while the fold holds
        none of that shape (none yet: the first commit binned with it makes it)."""
        ring = self.fold.ring(name, reference_id)
        if ring is not None and ring.total.shape == shape:
            self._placeholders.pop((name, reference_id), None)
            return ring
        if ring is not None and (name, reference_id) not in self._placeholders:
            self.logger.warning(
                "global ring of another shape; evaluating an empty window",
                model=name,
                reference_id=reference_id,
                ring=list(ring.total.shape),
                layout=list(shape),
            )
        held = self._placeholders.get((name, reference_id))
        if held is None or held.total.shape != shape or held.watermark is not None:
            template = self.fold.template(name, reference_id) or self._templates[name]
            held = self._placeholders[(name, reference_id)] = window_like(template, shape)
        return held

    def _tap(
        self, name: str, key: str, window: EventTimeWindow, rows: tuple[Row, ...]
    ) -> ContributionTap:
        """The contribution tap of (model, ring `key`), admitting against `window`."""
        tap = self.taps.get((name, key))
        if tap is None:
            tap = ContributionTap(name, window, self.contributor, self.clock, key, rows)
            self.taps[(name, key)] = tap
        tap.window = window
        return tap

    # -- reading ---------------------------------------------------------------------

    def _handle(self, record: StateRecord) -> None:
        self._positions[record.partition] = record.offset + 1
        outcome = self.fold.apply(record.value)
        if outcome.kind == "snapshot":
            self.snapshot_at = max(self.snapshot_at or 0.0, outcome.at)
        elif outcome.member == self.member:
            self._own_outcome(outcome)

    def _own_outcome(self, outcome: FoldOutcome) -> None:
        if outcome.kind == "claim" and outcome.result is ClaimResult.ACCEPTED:
            self._claims[(outcome.source, outcome.epoch)] = outcome.start
            return
        if outcome.kind != "commit" or outcome.result is CommitResult.ACCEPTED:
            return
        owned = self.contributor.owned.get(outcome.source)
        if owned is None or owned.epoch != outcome.epoch:
            return
        self.logger.warning(
            "own commit refused; claiming the partition again",
            source=outcome.source,
            result=str(outcome.result),
            epoch=outcome.epoch,
        )
        self.contributor.drop(outcome.source)
        for tp in self.assigned:
            if source_key(*tp) == outcome.source:
                self.unclaimed.add(tp)

    def _load_snapshot(self) -> bool:
        """Restore the newest snapshot and seek the reader to the positions it covers, so
        only what follows is folded (start-up bounded by the snapshot interval). False when
        there is none or it does not fit (logged): the whole topic is folded."""
        newest: tuple[int, str] | None = None
        first_chunk: dict[str, int] = {}

        def find(record: StateRecord) -> None:
            nonlocal newest
            decoded = decode_record(record.value)
            if isinstance(decoded, ChunkRecord):
                first_chunk.setdefault(decoded.blob_id, record.offset)
            elif isinstance(decoded, SnapshotRecord):
                newest = (record.offset, decoded.blob_id)
                first_chunk.clear()

        self.log_topic.scan(SNAPSHOT_PARTITION, 0, find)
        if newest is None:
            return False
        offset, blob_id = newest
        loader = FleetFold(decode_snapshots=True)
        found: list[tuple[SnapshotRecord, SnapshotBody]] = []

        def load(record: StateRecord) -> None:
            if record.offset <= offset:
                outcome = loader.apply(record.value)
                if record.offset == offset and outcome.snapshot is not None:
                    found.append(outcome.snapshot)

        self.log_topic.scan(SNAPSHOT_PARTITION, first_chunk.get(blob_id, offset), load)
        if not found or self.fold.restore(found[0][1]) is not None:
            self.logger.warning("newest state snapshot unusable; folding the whole topic")
            return False
        manifest = found[0][0]
        positions = {p: manifest.positions.get(p, 0) for p in self.log_topic.partitions()}
        self.log_topic.seek(positions)
        self._positions = dict(positions)
        self.snapshot_at = manifest.at
        self.logger.info("state snapshot loaded", at=manifest.at, positions=positions)
        return True

    def _read_to_end(self) -> None:
        self.log_topic.read_to_end(self._handle)

    def fold_to_end(self) -> None:
        """Fold the state topic to its end (at shutdown, so the last commits' acceptance is
        seen before the group offsets are committed). SourceError when it cannot be read."""
        self._read_to_end()

    def step(self) -> None:
        """One loop turn: fold what arrived, claim what is unclaimed, publish when due."""
        self._attach()
        try:
            for record in self.log_topic.poll(0.0, MAX_RECORDS_PER_STEP):
                self._handle(record)
            if self._unwritten_samples:  # a failed write: again, without holding up the turn
                with contextlib.suppress(SourceError):
                    self._write_sample_ends()
            now = self.monotonic()
            if now >= self._next_lag:
                self._next_lag = now + LAG_INTERVAL_S
                self.lag = self.log_topic.lag()
            self._release()
            if self.unclaimed and self.seek is not None:
                for tp, start in self.claim(frozenset(self.unclaimed)).items():
                    self.seek(tp, start)
            if now >= self._next_publish:
                self._next_publish = now + self.publish_interval
                self.publish_all()
            if now >= self._next_snapshot:
                self._next_snapshot = now + self.snapshot_interval
                self._snapshot()
            self.error = ""
        except SourceError as exc:
            if not self.error:
                self.logger.warning("state topic unavailable", error=str(exc))
            self.error = str(exc)
        self._publish_warmups()
        self._publish_versions()
        self._report()

    def _leads(self) -> bool:
        """Whether this replica owns the lowest source partition (the fleet's snapshotter and
        warm-up publisher: one replica at a time, no race)."""
        heads = sorted(
            (item for item in self.fold.heads.items() if self._is_source(item[0])),
            key=lambda item: _order(item[0]),
        )
        if not heads or heads[0][1].member != self.member:
            return False
        return heads[0][0] in self.contributor.owned

    def _is_source(self, source: str) -> bool:
        """Whether `source` is a partition of one of the group's topics (a claim of another
        source, which no replica is assigned, cannot take the leadership: "!:0" sorted first
        and stopped snapshots, warm-up publication and version switches fleet-wide)."""
        topic, _, partition = source.rpartition(":")
        return partition.isdigit() and (self.topics is None or topic in self.topics)

    def _publish_warmups(self) -> None:
        """The leader publishes each `warmup` model's fitted profile and its activation to the
        registry (`monitor.registry.warmup_records`: cause `warmup`, only while the model has
        no activation), and a model's `extension` (features added to the configuration and
        warmed up since it adopted the registry's reference: `extension_records`, only while
        that reference is still active); every replica, the leader too, then adopts the
        registry's activation. A failed write is retried on the next turn."""
        if self._registry_writer is None or not self._leads():
            return
        for name, runtime in self.runtimes.items():
            if runtime.mode not in _FROM_WARMUP:
                continue
            profile, parent = runtime.profile, ""
            if runtime.extension is not None and runtime.profile is not None:
                profile, parent = runtime.extension, runtime.profile.reference_id
                if self.registry_active.get(name) != parent:
                    continue  # adopted nothing yet, or the registry moved on
            elif name in self.registry_active:
                continue
            if profile is None or profile.reference_id in self._warmups_published:
                continue
            writer = self._registry_writer()
            try:
                table = RegistryTable()
                writer.read_to_end(table)
                at = self.clock()
                records = (
                    extension_records(table, profile, parent, at=at, by=self.member)
                    if parent
                    else warmup_records(table, profile, at=at, by=self.member)
                )
                if records:
                    writer.publish(records)
                    self.logger.info(
                        "fleet warm-up reference published",
                        model=name,
                        reference_id=profile.reference_id,
                        extends=profile.extends or None,
                        events=profile.events,
                    )
                self._warmups_published.add(profile.reference_id)
            except SourceError as exc:
                self.logger.warning("fleet warm-up not published", model=name, error=str(exc))
            except ReferenceDataError as exc:  # too large for the registry: never retried
                self._warmups_published.add(profile.reference_id)
                self.logger.error(
                    "fleet warm-up reference cannot be registered; the replicas keep counting "
                    "with their own fits",
                    model=name,
                    error=str(exc)[:300],
                )
            finally:
                writer.close()

    def _publish_versions(self) -> None:
        """The leader writes each `follow_model_version` switch to the registry as an
        activation with cause `model_version` (monitor/fleet_versions.py); every replica then
        follows it. Decided on the daemon's registry view, written only when a fresh read of
        the registry still has the activation that view had (else the next turn decides
        again); a failed write is retried on the next look."""
        view = self.registry_view
        if view is None or not view.loaded or self._registry_writer is None:
            return
        now = self.monotonic()
        if now < self._next_version_check or not self._leads():
            return
        self._next_version_check = now + VERSION_CHECK_S
        for name, runtime in self.runtimes.items():
            followed = version_switch(runtime, view)
            if followed is None:
                continue
            seen = view.activations.get(name)
            version = followed.profile.model_version
            writer = self._registry_writer()
            try:
                table = RegistryTable()
                writer.read_to_end(table)
                current = table.activations.get(name)
                if (current.at if current else None) != (seen.at if seen else None):
                    continue  # the registry moved since the view: decide again next turn
                record = activate(
                    table,
                    name,
                    followed.profile.reference_id,
                    at=self.clock(),
                    by=self.member,
                    reason=f"model_version {version} carries the window",
                    cause="model_version",
                )
                writer.publish([encode_activation(record)])
                self.logger.info(
                    "fleet model version switch published",
                    model=name,
                    reference_id=followed.profile.reference_id,
                    model_version=version,
                )
            except SourceError as exc:
                self.logger.warning(
                    "fleet version switch not published", model=name, error=str(exc)
                )
            finally:
                writer.close()

    def _report(self) -> None:
        self.fold_metrics()
        age = 0.0 if self.snapshot_at is None else max(0.0, self.clock() - self.snapshot_at)
        self.metrics.set_state(self.lag, len(self.contributor.owned), age)

    def fold_metrics(self) -> None:
        """Bring the state-topic counters up to the fold's; record batches the reader skipped
        unread count as `undecodable` records (each a record or more the fold never saw)."""
        self._skipped += self.log_topic.skipped_batches()
        rejected = Counter(self.fold.rejected)
        rejected[StateRejectReason.UNDECODABLE] += self._skipped
        self.metrics.fold_counts(
            {str(k): v for k, v in self.fold.commits.items()},
            {str(k): v for k, v in self.fold.claims.items()},
            {str(k): v for k, v in rejected.items()},
        )

    def not_ready_reason(self) -> str:
        """Why the replica's global state cannot be trusted now ("" when it can)."""
        if self.error:
            return f"state topic: {self.error}"
        if self.lag > MAX_READY_LAG:
            return f"state topic lagging by {self.lag} records"
        if self.unclaimed:
            return f"{len(self.unclaimed)} assigned partitions not claimed yet"
        return ""

    # -- group offsets (lag tooling; the loop commits them, never a rebalance callback) --

    def group_offsets(self, assignment: frozenset[TP], *, force: bool = False) -> dict[TP, int]:
        """The consumer-group offsets to commit now, at most every `publish_interval` (always
        when `force`): per assigned partition this replica owns, the chain head while the
        current claim is its own (`monitor.fleet_offsets`), when it moved since the last one."""
        now = self.monotonic()
        if not force and now < self._next_group_commit:
            return {}
        self._next_group_commit = now + self.publish_interval
        owned = {source: o.epoch for source, o in self.contributor.owned.items()}
        due = self.group.due(self.fold, owned)
        return {tp: due[source_key(*tp)] for tp in sorted(assignment) if source_key(*tp) in due}

    def group_committed(self, offsets: Mapping[TP, int]) -> None:
        """The group coordinator acknowledged `offsets`."""
        self.group.committed({source_key(*tp): offset for tp, offset in offsets.items()})

    # -- claims (rebalance callbacks and the loop) -------------------------------------

    def on_assign(self, partitions: frozenset[TP]) -> Mapping[TP, int]:
        """Claim newly assigned partitions; where the source must seek each one."""
        self.assigned |= partitions
        try:
            return self.claim(partitions)
        except SourceError as exc:
            self.error = str(exc)
            self.logger.warning("claims failed; retrying", error=str(exc))
            return {}

    def claim(self, partitions: frozenset[TP]) -> dict[TP, int]:
        """Claim `partitions` until each claim is accepted (or is no longer ours); their starts.

        SourceError when the state topic cannot be read or written within CLAIM_TIMEOUT_S;
        the partitions not claimed stay in `unclaimed` (their records are not counted).
        """
        self.unclaimed |= partitions
        starts: dict[TP, int] = {}
        deadline = self.monotonic() + CLAIM_TIMEOUT_S
        pending = {tp for tp in partitions if tp in self.assigned}
        while pending:
            if self.monotonic() > deadline:
                raise SourceError(f"claims of {sorted(pending)} not accepted in time")
            self._read_to_end()
            wanted: dict[TP, int] = {}
            for tp in sorted(pending):
                source = source_key(*tp)
                epoch = self.fold.head(source).epoch + 1
                self.log_topic.publish([encode_claim(source, epoch, self.member)])
                wanted[tp] = epoch
            self._read_to_end()
            for tp, epoch in wanted.items():
                source = source_key(*tp)
                if (source, epoch) in self._claims:
                    start = self._claims.pop((source, epoch))
                    self._skip_samples(source, start)
                    self.contributor.own(source, epoch, 0 if start is None else start)
                    starts[tp] = 0 if start is None else start
                    pending.discard(tp)
                    self.unclaimed.discard(tp)
            pending &= self.assigned
        self.logger.info(
            "partitions claimed", starts={f"{t}:{p}": o for (t, p), o in starts.items()}
        )
        return starts

    def _skip_samples(self, source: str, start: int | None) -> None:
        """A source claimed from `start`: each model skips, on this read, the warm-up sample
        that ended beyond it on the source (the fold's `sample` records; a replica that lost
        the source during its warm-up hold wrote them)."""
        for model, until in self.fold.head(source).samples_beyond(start).items():
            key = (model, source)
            self._skip[key] = max(self._skip.get(key, 0), until)

    def on_revoke(self, partitions: frozenset[TP]) -> None:
        """Write the sample ends not written yet (the next owner may read a revoked source
        from a chain head before them), publish a last commit of each revoked partition,
        then drop it."""
        if self._unwritten_samples:
            try:
                self._write_sample_ends()
            except SourceError as exc:
                self.logger.warning("warm-up sample ends not written", error=str(exc))
        for tp in partitions:
            source = source_key(*tp)
            try:
                if source not in self._held:  # held: the next owner reads it again
                    self._publish(source)
            except SourceError as exc:  # its counts die here; the next owner re-reads them
                self.logger.warning("last commit failed", source=source, error=str(exc))
            self.contributor.drop(source)
            self._forget(source)
        self.assigned -= partitions
        self.unclaimed -= partitions

    # -- counting ----------------------------------------------------------------------

    def ownership(self, topic: str, partition: int) -> object | None:
        """A token of this replica's current claim of a source partition (None: not owned);
        a new claim gives a new one."""
        return self.contributor.owned.get(source_key(topic, partition))

    def owns(self, topic: str, partition: int) -> bool:
        """Whether this replica counts the records of a source partition now."""
        return source_key(topic, partition) in self.contributor.owned

    def ingest(
        self,
        runtime: ModelRuntime,
        columns: ModelColumns,
        partitions: Sequence[TP],
        account: BatchAccount,
        messages: Sequence[RawMessage],
        stale: frozenset[TP] = frozenset(),
    ) -> None:
        """Hand a model's slice to its runtime one source partition at a time, so its taps
        (the active reference's and each shadow's, attached first: a registry swap since the
        last turn changes them) count each partition's events under that partition; the
        partitions in `stale` (claimed again since the slice was polled) are left out."""
        self._attach_model(runtime.name, runtime)
        columns = self._without_rereads(runtime.name, columns, partitions, account, messages, stale)
        tap = runtime.tap
        if tap is None or not isinstance(tap, ContributionTap):
            self._ingest_untapped(runtime, columns, partitions, account, messages)
            return
        sources = columns.sources
        for index in np.unique(sources).tolist():
            if partitions[index] in stale:
                continue
            select = sources == index
            self._ingest_source = source_key(*partitions[index])
            # every shadow's tap, each partition anew: a slice may start a shadow
            for each in (tap, *(s.tap for s in runtime.shadows.windows.values())):
                if isinstance(each, ContributionTap):
                    each.source = self._ingest_source
            part = columns.select(select)
            try:
                runtime.ingest(part, account, messages)
            finally:
                self._ingest_source = None

    def _ingest_untapped(
        self,
        runtime: ModelRuntime,
        columns: ModelColumns,
        partitions: Sequence[TP],
        account: BatchAccount,
        messages: Sequence[RawMessage],
    ) -> None:
        """A model that counts on this replica only: warming up, or a warm-up model on its own
        fit until it adopts the registry's reference. The owned sources whose records its own
        fit counted are held (`_held`), and for each the first offset it counted."""
        done, need = runtime.warmup_progress
        was_ready = runtime.ready
        runtime.ingest(columns, account, messages)
        if runtime.mode not in _FROM_WARMUP or not len(columns) or not columns.messages.size:
            return
        offsets = columns.offsets(messages)
        sources = columns.sources
        own_fit = runtime.ready and not self._adopted(runtime.name)
        first = 0 if was_ready else max(0, need - done)  # the warm-up took the ones before
        completed = not was_ready and runtime.ready  # where its sample ended, per source:
        sample_ends = (
            {s: n for (m, s), n in self._seen.items() if m == runtime.name} if completed else {}
        )
        for index in np.unique(sources).tolist():
            source = source_key(*partitions[index])
            if source not in self.contributor.owned:
                continue
            where = np.flatnonzero(sources == index)
            key = (runtime.name, source)
            taken = where[where < first]
            if completed and taken.size:
                sample_ends[source] = int(offsets[taken[-1]]) + 1
            self._seen[key] = max(self._seen.get(key, 0), int(offsets[where[-1]]) + 1)
            counted = where[where >= first]
            if own_fit and counted.size:
                self._fit_from.setdefault(key, int(offsets[counted[0]]))
                self._held.setdefault(source, set()).add(runtime.name)
        if completed:
            self._publish_sample_ends(runtime.name, sample_ends)

    def _publish_sample_ends(self, model: str, ends: Mapping[str, int]) -> None:
        """Write where `model`'s warm-up sample ended on each owned source (`sample` records),
        in the turn its sources become held: whoever reads such a source again from a chain
        head that lags the sample's end (a rebalance or a crash during the hold) leaves the
        sample out, as this replica's own read again does (`_release`). A failed write is
        logged and written again on each turn (`step`) while the replica owns the source; a
        crash before it is written leaves the gap of docs/fleet.md's Known issues."""
        pending = self._unwritten_samples.setdefault(model, {})
        for source, until in ends.items():
            pending[source] = max(pending.get(source, 0), until)
        try:
            self._write_sample_ends()
        except SourceError as exc:
            self.logger.warning(
                "warm-up sample ends not written; written again on the next turns",
                model=model,
                error=str(exc),
            )

    def _write_sample_ends(self) -> None:
        """Write every unwritten sample end of an owned source under its current claim epoch
        (one publish; the fold keeps the largest end per model, so writing one twice changes
        nothing). SourceError: they all stay unwritten; those of sources revoked since go
        (`_forget`)."""
        records = [
            encode_sample(source, owned.epoch, self.member, model, until)
            for model, ends in sorted(self._unwritten_samples.items())
            for source, until in sorted(ends.items())
            if (owned := self.contributor.owned.get(source)) is not None
        ]
        if records:
            self.log_topic.publish(records)
        self._unwritten_samples.clear()

    def _without_rereads(
        self,
        name: str,
        columns: ModelColumns,
        partitions: Sequence[TP],
        account: BatchAccount,
        messages: Sequence[RawMessage],
        stale: frozenset[TP],
    ) -> ModelColumns:
        """`columns` without the records a release reads again that the model was already
        given (`_skip`); they are accepted as they were the first time. The partitions in
        `stale` (polled before the release) are left as they are: `ingest` leaves them out."""
        if not self._skip or not len(columns) or not columns.messages.size:
            return columns
        keep = np.ones(len(columns), dtype=bool)
        offsets: npt.NDArray[np.int64] | None = None
        for index in np.unique(columns.sources).tolist():
            key = (name, source_key(*partitions[index]))
            until = self._skip.get(key)
            if until is None or partitions[index] in stale:
                continue
            if offsets is None:
                offsets = columns.offsets(messages)
            here = columns.sources == index
            keep &= ~(here & (offsets < until))
            if bool(np.any(here & (offsets >= until))):
                del self._skip[key]  # the read again has passed it
        if keep.all():
            return columns
        account.accept_events(name, int(np.count_nonzero(~keep)))
        return columns.select(keep)

    def _adopted(self, name: str) -> bool:
        """Whether a model counts with the registry's reference, or never took one from a
        warm-up (or is gone)."""
        runtime = self.runtimes.get(name)
        if runtime is None or runtime.mode not in _FROM_WARMUP:
            return True
        return self.registry_active.get(name) == runtime.reference_id and runtime.ready

    def _release(self) -> None:
        """Claim again each held source whose models have all adopted the registry's
        reference: its uncommitted counts are dropped and its records read again from the
        chain head (`claim` seeks there), now counted into the registry reference's ring;
        each model skips what it was given before (its warm-up sample, `_skip`)."""
        for source, models in list(self._held.items()):
            if not all(self._adopted(m) for m in models):
                continue
            del self._held[source]
            for (model, held_source), start in list(self._fit_from.items()):
                if held_source == source:
                    self._skip[(model, source)] = start
                    del self._fit_from[(model, source)]
            for (model, seen_source), after in list(self._seen.items()):
                if seen_source != source:
                    continue
                del self._seen[(model, source)]
                if (model, source) not in self._skip:  # given to its warm-up buffer only
                    self._skip[(model, source)] = after
            self.contributor.drop(source)
            for tp in self.assigned:
                if source_key(*tp) == source:
                    self.unclaimed.add(tp)
            self.logger.info(
                "warm-up adopted; reading the partition again", source=source, models=sorted(models)
            )

    def _forget(self, source: str) -> None:
        """Drop what the warm-up hold knows of a source (revoked)."""
        self._held.pop(source, None)
        for table in (self._fit_from, self._seen, self._skip):
            for key in [k for k in table if k[1] == source]:
                del table[key]
        for model, ends in list(self._unwritten_samples.items()):
            ends.pop(source, None)
            if not ends:
                del self._unwritten_samples[model]

    def consumed(self, messages: Sequence[RawMessage]) -> None:
        """Every record of `messages` (owned partitions only) has been counted."""
        first: dict[TP, int] = {}
        last: dict[TP, int] = {}
        for m in messages:
            tp = (m.topic, m.partition)
            first.setdefault(tp, m.offset)
            last[tp] = m.offset
        for tp, offset in first.items():
            source = source_key(*tp)
            self.contributor.start_at(source, offset)
            self.contributor.consumed(source, last[tp] + 1)

    # -- publishing --------------------------------------------------------------------

    def _publish(self, source: str) -> None:
        records, to_offset = self.contributor.prepare(source)
        if records:
            self.log_topic.publish(records)
            self.contributor.confirm(source, to_offset)

    def publish_all(self) -> None:
        """Publish a commit of every owned partition with new records (SourceError: the
        counts stay for the next attempt)."""
        for source in sorted(self.contributor.owned):
            if source not in self._held:  # counted with a replica's own fit: read again
                self._publish(source)

    def _snapshot(self) -> None:
        """Publish the folded state if this replica owns the lowest source partition."""
        if not self._leads():
            return
        now = self.clock()
        records = encode_snapshot(self.fold.snapshot_body(), self._positions, self.member, now)
        self.log_topic.publish(records, partition=SNAPSHOT_PARTITION)
        self.logger.info("state snapshot published", records=len(records))


def _lagging_template(runtime: ModelRuntime) -> EventTimeWindow | None:
    """A rolling model's lagging ring template: hourly buckets over lag + length + 1, no
    lateness (`window.LaggingReference`'s ring); None for other modes."""
    if runtime.mode is not ReferenceMode.ROLLING:
        return None
    reference = runtime.plan.reference
    slots = math.ceil(reference.lag_seconds / ROLLING_BUCKET_SECONDS) + round(
        reference.length_seconds / ROLLING_BUCKET_SECONDS
    )
    return EventTimeWindow(
        (len(runtime.specs), 1),
        ROLLING_BUCKET_SECONDS,
        (slots + 1) * ROLLING_BUCKET_SECONDS,
        0.0,
        runtime.plan.window.max_future_seconds,
    )


def _order(source: str) -> tuple[str, int]:
    topic, _, partition = source.rpartition(":")
    return topic, int(partition) if partition.isdigit() else -1
