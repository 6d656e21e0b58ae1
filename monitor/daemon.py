"""The daemon loop and its lifecycle.

    poll -> decode -> route to models -> update windows -> evaluate every interval ->
    publish snapshot -> checkpoint every checkpoint_interval -> commit offsets

One thread owns the consumer. Scrapes read the immutable Snapshot the loop publishes.
Delivery: the checkpoint holds the windows *and* the next offset of every partition they
include; on start and on every assignment the source seeks to those offsets, so after a
crash the events after the checkpoint are read again and counted once. Kafka offsets are
committed after each successful checkpoint (for lag tooling), never before it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import structlog

from monitor.config import Settings
from monitor.decode import BatchDecoder, DecodedBatch, EventFields, ModelColumns
from monitor.errors import (
    CheckpointResult,
    ReferenceDataError,
    RejectReason,
    SourceError,
    StateError,
)
from monitor.metrics import DriftCollector, PipelineMetrics
from monitor.model import ModelEvaluation, RawMessage, ReferenceMode, Snapshot
from monitor.ratelimit import RateLimitedSampler
from monitor.runtime import ModelRuntime, model_runtimes
from monitor.source import RecordSource
from monitor.state import Checkpoint, CheckpointStore

TP = tuple[str, int]
AssignCallback = Callable[[frozenset[TP]], Mapping[TP, int]]
RevokeCallback = Callable[[frozenset[TP]], None]
SourceFactory = Callable[[AssignCallback, RevokeCallback], RecordSource]

POLL_TIMEOUT_S = 0.2
LIVENESS_TIMEOUT_S = 60.0
GC_GEN0_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Collect the young generation every 50k allocations instead of every 700.

    The loop allocates several short-lived objects per record (kafka-python's records, the
    decoded events) and almost none of them are in cycles, so the default threshold spends a
    measured ~20 % of the loop in the collector. Objects alive after start-up (config,
    references, windows) are frozen out of future collections. Process-wide.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


class DeadLetterSink(Protocol):
    """Where rejected messages are copied (a Kafka producer in production)."""

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Queue one message."""

    def flush(self, timeout_s: float | None = None) -> None:
        """Deliver queued messages."""

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush and release the producer."""


@dataclass
class LoopStats:
    """Counters of the loop, for the evaluation summary log line."""

    batches: int = 0
    records: int = 0
    rejected: int = 0
    evaluations: int = 0
    since_last_eval: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)


class Daemon:
    """Owns the loop, the model runtimes and the ordered shutdown."""

    def __init__(
        self,
        settings: Settings,
        source_factory: SourceFactory,
        metrics: PipelineMetrics,
        collector: DriftCollector,
        store: CheckpointStore,
        *,
        dead_letter: DeadLetterSink | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        logger: Any = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.collector = collector
        self.store = store
        self.dead_letter = dead_letter
        self.clock = clock
        self.monotonic = monotonic
        self.log = logger if logger is not None else structlog.get_logger("driftmon.daemon")
        self.runtimes: dict[str, ModelRuntime] = model_runtimes(settings, clock)
        event = settings.event
        self.decoder = BatchDecoder(
            EventFields(
                timestamp_field=event.timestamp_field,
                timestamp_fallback_to_kafka=event.timestamp_fallback_to_kafka,
                model_field=event.model_field,
                model_version_field=event.model_version_field or "",
                features_path=event.features_path,
                default_model=event.default_model,
                max_message_bytes=settings.kafka.max_message_bytes,
            ),
            [rt.schema for rt in self.runtimes.values()],
        )
        self.sampler = RateLimitedSampler(settings.log.sample_rejects_per_minute, monotonic)
        self.offsets: dict[TP, int] = {}
        self.stats = LoopStats()
        self._stop = False
        self._heartbeat = monotonic()
        self._evaluated_once = False
        self._next_eval = 0.0
        self._next_checkpoint = 0.0
        self._source_factory = source_factory
        self.source: RecordSource | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Load references, restore the checkpoint, create the source."""
        self._load_references()
        self._restore()
        self.source = self._source_factory(self._on_assign, self._on_revoke)
        now = self.monotonic()
        self._next_eval = now + self.settings.evaluation.interval
        self._next_checkpoint = now + self.settings.state.checkpoint_interval
        self._publish(self.clock())

    def request_stop(self) -> None:
        """Ask the loop to finish the batch in hand and shut down in order."""
        self._stop = True

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop

    def run(self) -> int:
        """Run until a stop is requested; returns the process exit code (0 clean)."""
        if self.source is None:
            self.start()
        self.log.info(
            "started",
            models=list(self.runtimes),
            topics=list(self.settings.kafka.topics),
            resumed_partitions=len(self.offsets),
        )
        try:
            while not self._stop:
                self.step()
        finally:
            self.shutdown()
        return 0

    def step(self) -> None:
        """One loop turn: poll a batch, process it, evaluate and checkpoint when due."""
        assert self.source is not None
        messages = self.source.poll(POLL_TIMEOUT_S, self.settings.kafka.max_poll_records)
        self._heartbeat = self.monotonic()
        if messages:
            self.process(messages)
        self.metrics.set_kafka_connected(self.source.is_connected())
        # Also before evaluate/checkpoint: an offset commit during an outage can block for the
        # request timeout, and driftmon_ready must not claim "ready" meanwhile.
        self.metrics.set_ready(self.ready())
        now = self.monotonic()
        if now >= self._next_eval:
            self._next_eval = now + self.settings.evaluation.interval
            self.evaluate()
        if now >= self._next_checkpoint:
            self._next_checkpoint = now + self.settings.state.checkpoint_interval
            self.checkpoint()
        self.metrics.set_ready(self.ready())

    def shutdown(self) -> None:
        """Evaluate, checkpoint, commit, close the source (the batch in hand is applied)."""
        self.log.info("stopping")
        try:
            self.evaluate()
            self.checkpoint()
        finally:
            if self.source is not None:
                self.source.close()
            if self.dead_letter is not None:
                try:
                    self.dead_letter.close()
                except Exception as exc:  # the sink is best effort at shutdown
                    self.log.warning("dead-letter close failed", error=str(exc))
        self.log.info("stopped", records=self.stats.records, evaluations=self.stats.evaluations)

    # -- health --------------------------------------------------------------------

    def live(self) -> bool:
        """The loop turned recently."""
        return self.monotonic() - self._heartbeat < LIVENESS_TIMEOUT_S

    def ready(self) -> bool:
        """Connected, partitions assigned, references loaded, evaluated once."""
        return not self.not_ready_reason()

    def not_ready_reason(self) -> str:
        """Why the daemon is not ready ("" when it is)."""
        if self.source is None:
            return "starting"
        if not self.source.is_connected():
            return "not connected to Kafka"
        if not self.source.assignment():
            return "no partitions assigned"
        missing = [name for name, rt in self.runtimes.items() if not rt.ready]
        if missing:
            return "no reference yet for: " + ", ".join(missing)
        if not self._evaluated_once:
            return "no evaluation yet"
        return ""

    # -- the hot path ----------------------------------------------------------------

    def process(self, messages: Sequence[RawMessage]) -> None:
        """Decode a batch, route it to the models, account for every record."""
        started = time.perf_counter()
        decoded = self.decoder.decode(messages)
        for topic, n in decoded.consumed.items():
            self.metrics.record_consumed(topic, n)
        rejected = dict(decoded.rejected)
        newest: dict[str, float] = {}
        for name, columns in decoded.models.items():
            runtime = self.runtimes[name]
            result = runtime.ingest(columns)
            n_accepted = int(result.accepted.sum())
            if n_accepted:
                self.metrics.record_accepted(name, n_accepted)
            dropped = ~result.accepted
            if dropped.any():
                if result.no_reference:
                    self._count_by_topic(
                        rejected, decoded, columns.sources[dropped], RejectReason.NO_REFERENCE
                    )
                else:
                    early = result.early
                    late = dropped & ~early
                    self._count_by_topic(
                        rejected, decoded, columns.sources[late], RejectReason.TOO_LATE
                    )
                    self._count_by_topic(
                        rejected, decoded, columns.sources[early], RejectReason.TOO_EARLY
                    )
            if n_accepted:
                self._newest_event_times(newest, decoded, columns, result.accepted)
            if result.invalid.any():
                for feature, n in zip(runtime.specs, result.invalid.tolist(), strict=True):
                    if n:
                        self.metrics.add_invalid_values(name, feature.name, int(n))
        for (topic, reason), n in rejected.items():
            if n:
                self.metrics.record_rejected(topic, reason, n)
                self.stats.reject_reasons[reason.value] = (
                    self.stats.reject_reasons.get(reason.value, 0) + n
                )
                self.stats.rejected += n
        for topic, ts in newest.items():
            self.metrics.last_record_timestamp(topic, ts)
        for message in messages:
            self.offsets[(message.topic, message.partition)] = message.offset + 1
        self._dead_letters(decoded)
        self._log_samples(decoded)
        self.stats.batches += 1
        self.stats.records += len(messages)
        self.stats.since_last_eval += len(messages)
        self.metrics.observe_batch(time.perf_counter() - started)

    @staticmethod
    def _newest_event_times(
        newest: dict[str, float],
        decoded: DecodedBatch,
        columns: ModelColumns,
        accepted: np.ndarray[Any, Any],
    ) -> None:
        """Fold the newest accepted event time per topic of one model's columns into `newest`."""
        times = columns.times[accepted]
        sources = columns.sources[accepted].astype(np.int64)
        for index in np.unique(sources).tolist():
            topic = decoded.partitions[index][0]
            latest = float(times[sources == index].max())
            if latest > newest.get(topic, -np.inf):
                newest[topic] = latest

    @staticmethod
    def _count_by_topic(
        rejected: dict[tuple[str, RejectReason], int],
        decoded: DecodedBatch,
        sources: np.ndarray[Any, Any],
        reason: RejectReason,
    ) -> None:
        if sources.size == 0:
            return
        counts = np.bincount(sources.astype(np.int64), minlength=len(decoded.partitions))
        for index in np.flatnonzero(counts).tolist():
            topic = decoded.partitions[index][0]
            rejected[(topic, reason)] = rejected.get((topic, reason), 0) + int(counts[index])

    def _dead_letters(self, decoded: DecodedBatch) -> None:
        topic = self.settings.kafka.dead_letter_topic
        if self.dead_letter is None or topic is None or not decoded.rejected_messages:
            return
        try:
            for message in decoded.rejected_messages:
                self.dead_letter.send(topic, message.value)
        except Exception as exc:  # a broken DLQ must never stop the monitor
            self.log.warning("dead-letter send failed", error=str(exc))

    def _log_samples(self, decoded: DecodedBatch) -> None:
        for topic, reason, detail in decoded.samples:
            if not self.sampler.allow():
                break
            self.log.warning("record rejected", topic=topic, reason=reason.value, detail=detail)

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self) -> tuple[ModelEvaluation, ...]:
        """Evaluate every model, publish the snapshot, log one summary line."""
        started = time.perf_counter()
        now = self.clock()
        self._load_references()
        evaluations = self._publish(now)
        elapsed = time.perf_counter() - started
        self.metrics.observe_evaluation(elapsed)
        self.metrics.evaluation_done(now)
        if self.source is not None:
            try:
                self.metrics.set_lag(self.source.lag())
            except SourceError as exc:
                self.log.debug("lag unavailable", error=str(exc))
        self._evaluated_once = True
        self.stats.evaluations += 1
        self.log.info(
            "evaluation",
            duration_ms=round(elapsed * 1000, 2),
            records=self.stats.since_last_eval,
            rejected=self.stats.rejected,
            models={
                e.model: {
                    "drifted": [f.name for f in e.features if f.drift_detected],
                    "current_samples": max((f.current_samples for f in e.features), default=0),
                    "reference": e.reference_id or "pending",
                }
                for e in evaluations
            },
        )
        self.stats.since_last_eval = 0
        return evaluations

    def _publish(self, now: float) -> tuple[ModelEvaluation, ...]:
        evaluations = tuple(rt.evaluate(now) for rt in self.runtimes.values())
        self.collector.publish(Snapshot(created_at=now, models=evaluations))
        return evaluations

    def _load_references(self) -> None:
        for runtime in self.runtimes.values():
            if runtime.mode is not ReferenceMode.FILE:
                continue
            try:
                swapped = runtime.load_reference_file()
            except ReferenceDataError as exc:
                self.log.error("reference not loaded", model=runtime.name, error=str(exc))
                continue
            for ok, detail in runtime.reloads:
                if ok:
                    self.log.info("reference loaded", model=runtime.name, reference_id=detail)
                else:
                    self.log.error(
                        "reference refused, keeping the active one",
                        model=runtime.name,
                        error=detail,
                    )
            runtime.reloads.clear()
            if swapped:
                self.log.info(
                    "reference active", model=runtime.name, reference_id=runtime.reference_id
                )

    # -- state ----------------------------------------------------------------------------

    def checkpoint(self, *, commit: bool = True) -> bool:
        """Write the checkpoint, then (if `commit`) commit the offsets it contains.

        Returns True when the checkpoint file was written. `commit=False` is for rebalance
        callbacks, which run on kafka-python's IO thread where a blocking commit is refused.
        """
        checkpoint = Checkpoint(
            offsets=dict(self.offsets),
            models={name: rt.to_state() for name, rt in self.runtimes.items()},
            created_at=self.clock(),
        )
        try:
            self.store.save(checkpoint)
        except OSError as exc:
            self.metrics.checkpoint(CheckpointResult.FAILURE)
            self.log.error("checkpoint failed", error=str(exc), path=str(self.store.path))
            return False
        self.metrics.checkpoint(CheckpointResult.SUCCESS)
        if self.source is None or not commit:
            return True
        if not self.source.is_connected():
            # a commit would block for the request timeout and fail; the checkpoint is what
            # resumes counting, commits only feed lag tooling: the next checkpoint commits
            return True
        assigned = self.source.assignment()
        to_commit = {tp: off for tp, off in self.offsets.items() if tp in assigned}
        if not to_commit:
            return True
        try:
            self.source.commit(to_commit)
        except SourceError as exc:
            self.metrics.offset_commit(CheckpointResult.FAILURE)
            self.log.warning("offset commit failed", error=str(exc))
            return True
        self.metrics.offset_commit(CheckpointResult.SUCCESS)
        return True

    def _restore(self) -> None:
        try:
            checkpoint = self.store.load()
        except StateError as exc:
            moved = self.store.set_aside(str(exc))
            self.log.error(
                "checkpoint set aside, starting empty", error=str(exc), moved_to=str(moved)
            )
            return
        if checkpoint is None:
            return
        self.offsets = dict(checkpoint.offsets)
        for name, runtime in self.runtimes.items():
            state = checkpoint.models.get(name)
            if state is None:
                continue
            try:
                runtime.restore(state)
            except (StateError, ReferenceDataError) as exc:
                self.log.error(
                    "model state not restored; its window restarts empty",
                    model=name,
                    error=str(exc),
                )
        self.log.info(
            "checkpoint restored", partitions=len(self.offsets), created_at=checkpoint.created_at
        )

    def _on_assign(self, partitions: frozenset[TP]) -> Mapping[TP, int]:
        """Seek assigned partitions to the offsets the in-memory state has counted up to."""
        seek = {tp: self.offsets[tp] for tp in partitions if tp in self.offsets}
        self.log.info("partitions assigned", partitions=sorted(partitions), seek=len(seek))
        return seek

    def _on_revoke(self, partitions: frozenset[TP]) -> None:
        """Checkpoint before partitions move, so a restart resumes exactly at our offsets.

        No offset commit here: this runs on kafka-python's IO thread (inside poll()), where
        a synchronous commit raises RuntimeError ("Cannot block on net.run() from the IO
        thread"), which used to kill the daemon on every rebalance that revoked partitions,
        e.g. the rejoin after a broker outage. The next regular checkpoint commits the
        offsets of the partitions still assigned; Kafka commits only serve lag tooling.
        """
        self.log.info("partitions revoked", partitions=sorted(partitions))
        if partitions:
            self.checkpoint(commit=False)


class DaemonHealth:
    """The probes' view of a daemon (what monitor.http.Health asks)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def live(self) -> bool:
        """The loop turned recently."""
        return self._daemon.live()

    def ready(self) -> bool:
        """Connected, assigned, references loaded, evaluated once."""
        return self._daemon.ready()

    def reason(self) -> str:
        """Why not ready ("" when ready)."""
        return self._daemon.not_ready_reason()
