"""The daemon loop and its lifecycle.

    poll -> decode -> route to models -> update windows -> evaluate every interval ->
    publish snapshot -> checkpoint every checkpoint_interval -> commit offsets

One thread owns the consumer. Scrapes read the immutable Snapshot the loop publishes.
SIGHUP only sets a flag (`request_reload`); the loop re-reads the configuration between two
batches (`reload`, monitor.reload: models and evaluation apply at once, the other sections
need a restart; an invalid file is refused and the running configuration kept).
Delivery: the checkpoint holds the windows *and* the next offset of every partition they
include; on start and on every assignment the source seeks to those offsets, so after a
crash the events after the checkpoint are read again and counted once. Kafka offsets are
committed after each successful checkpoint (for lag tooling), never before it.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import structlog

from monitor.account import BatchAccount
from monitor.autodiscover import AutoFeatures, discovered, restored_plan
from monitor.config import Settings
from monitor.decode import BatchDecoder, DecodedBatch, EventFields
from monitor.decode_worker import (
    DEPTH,
    MAX_SUBMIT_BYTES,
    DecoderSpec,
    DecodeWorker,
    DecodeWorkerError,
    column_values,
    value_bytes,
)
from monitor.errors import (
    CheckpointResult,
    ConfigError,
    ReferenceDataError,
    RejectReason,
    ReloadResult,
    SourceError,
    StateError,
)
from monitor.fleet_node import FleetNode
from monitor.metrics import DriftCollector, PipelineMetrics
from monitor.model import ModelEvaluation, RawMessage, ReferenceMode, Snapshot
from monitor.ratelimit import RateLimitedSampler
from monitor.reference_registry import Activated, RegistryReferences
from monitor.registry_follow import RegistryFollower
from monitor.reload import reload_runtimes, restart_keys
from monitor.runtime import ModelRuntime, model_runtimes
from monitor.sampling import FloatArray, sample_messages, thin
from monitor.source import RecordSource
from monitor.state import Checkpoint, CheckpointStore

TP = tuple[str, int]
AssignCallback = Callable[[frozenset[TP]], Mapping[TP, int]]
RevokeCallback = Callable[[frozenset[TP]], None]
SourceFactory = Callable[[AssignCallback, RevokeCallback], RecordSource]
SettingsLoader = Callable[[], Settings]
"""Re-reads the configuration the daemon was started with (`--config` and the environment);
raises ConfigError when it does not load or validate."""
FleetFactory = Callable[[Mapping[str, ModelRuntime]], FleetNode]
"""Builds the fleet node (state.backend: kafka) over the daemon's runtimes."""

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


DEAD_LETTER_FLUSH_S = 5.0
DEAD_LETTER_FLUSH_BYTES = 16 * 1024 * 1024
"""Queued dead-letter bytes that trigger a flush before the next batch: kafka-python's
producer has no buffer limit, so this bounds the memory the dead letters hold."""
MAX_DEAD_LETTER_HEADERS = 1_000
"""The most headers of a rejected record copied to its dead letter; a record with more gets
none of them, and `driftmon-headers-dropped` says how many it had (a million empty headers
are 2 MB on the wire and far more as the producer's objects)."""
MAX_REJECT_SAMPLES = 20
ASIDE_MAX_VALUES = 1 << 20
"""The most column values of a batch the loop decodes aside while the decode worker is busy
(`Daemon._decode_aside`): a poll of 220- or 2,200-feature events holds about 207,000; the
bound keeps the loop from holding more than a slice's worth of short strings for a hostile
batch (each categorical value is its own Python string)."""


class DeadLetterSink(Protocol):
    """Where rejected messages are copied (a Kafka producer in production)."""

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Queue one message; raise if it cannot be queued. `on_error` hears of a record that
        was queued but not delivered (it may run on another thread)."""

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


@dataclass(frozen=True, slots=True)
class _Batch:
    """One polled batch on its way to the windows.

    `messages`: what it counts (offsets, consumed); `kept`: what is decoded (all of
    `messages` unless sampled: `skipped` are the others); `uniforms`: each kept message's
    sampling draw (None unless sampled); `prepare_s`: seconds spent before decoding;
    `owners`: in a fleet, each partition's ownership token when polled
    (`FleetNode.ownership`), so a batch applied after its partition was dropped and claimed
    again (its records read again from the chain head) does not count twice.
    """

    messages: Sequence[RawMessage]
    kept: Sequence[RawMessage]
    skipped: Sequence[RawMessage]
    uniforms: FloatArray | None
    decode_rate: float
    prepare_s: float
    owners: Mapping[TP, object] | None = None


@dataclass(frozen=True, slots=True)
class _Aside:
    """A batch decoded in the loop while the decode worker was full and busy (`Daemon.process`),
    waiting in `Daemon._in_flight` behind the worker's batches: its slices, their account and
    the decoder that made them (decoded again at its turn if the daemon's decoder changed)."""

    batch: _Batch
    decoder: object
    slices: tuple[DecodedBatch, ...]
    account: BatchAccount
    held: int
    """What it holds, counted against a poll's inflate budget as the worker's batches are:
    twice its value bytes (the values, and columns no larger than the JSON they came from)."""
    decode_s: float
    """The seconds its decoding took (part of the batch's `driftmon_batch_duration_seconds`)."""


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
        registry: RegistryFollower | None = None,
        settings_loader: SettingsLoader | None = None,
        fleet: FleetFactory | None = None,
    ) -> None:
        self.settings = settings
        self.settings_loader = settings_loader
        self._reload_requested = False
        self.metrics = metrics
        self.collector = collector
        self.store = store
        self.dead_letter = dead_letter
        self.clock = clock
        self.monotonic = monotonic
        self.log = logger if logger is not None else structlog.get_logger("driftmon.daemon")
        self.runtimes: dict[str, ModelRuntime] = model_runtimes(settings, clock)
        self.decoder = self._build_decoder()
        self.autofeatures = AutoFeatures(settings, self.runtimes)
        self.sampler = RateLimitedSampler(settings.log.sample_rejects_per_minute, monotonic)
        self.dead_letter_sampler = RateLimitedSampler(
            settings.log.sample_rejects_per_minute, monotonic
        )
        self._dead_letter_bytes = 0
        self.offsets: dict[TP, int] = {}
        self.stats = LoopStats()
        self._stop = False
        self._heartbeat = monotonic()
        self._evaluated_once = False
        self._next_eval = 0.0
        self._next_checkpoint = 0.0
        self._source_factory = source_factory
        self.source: RecordSource | None = None
        self.registry = registry
        self.references = RegistryReferences(
            self.runtimes,
            registry.topic if registry is not None else "",
            frozenset({ReferenceMode.REGISTRY, ReferenceMode.WARMUP, ReferenceMode.ROLLING})
            if fleet is not None
            else frozenset({ReferenceMode.REGISTRY}),
            follow_locally=fleet is None,
        )
        self._registry_generation = -1
        self.registry_sampler = RateLimitedSampler(
            settings.log.sample_rejects_per_minute, monotonic
        )
        self.fleet: FleetNode | None = None if fleet is None else fleet(self.runtimes)
        """With `state.backend: kafka`: the state topic replaces the checkpoint (docs/fleet.md)."""
        self.decode_worker: DecodeWorker | None = None
        """With `event.decode_worker`: decodes in a child process."""
        self._in_flight: deque[_Batch | _Aside] = deque()
        """Batches handed to the decode worker and not applied yet, oldest first."""

    def _build_decoder(self) -> BatchDecoder:
        """The decoder of the configured event fields and the runtimes' schemas."""
        return self._decoder_spec().build()

    def _decoder_spec(self) -> DecoderSpec:
        """What builds the decoder (here and in the decode worker's child)."""
        settings = self.settings
        event = settings.event
        return DecoderSpec(
            EventFields(
                timestamp_field=event.timestamp_field,
                timestamp_fallback_to_kafka=event.timestamp_fallback_to_kafka,
                model_field=event.model_field,
                model_version_field=event.model_version_field or "",
                features_path=event.features_path,
                default_model=event.default_model,
                max_message_bytes=settings.kafka.max_message_bytes,
                max_array_elements=event.max_array_elements,
            ),
            tuple(rt.schema for rt in self.runtimes.values()),
            max_samples=MAX_REJECT_SAMPLES,
            payload_preview=settings.log.payload_preview,
        )

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Load references, restore the checkpoint, create the source."""
        self._load_references()
        if self.fleet is not None:  # the fleet's warm-up references go to the registry
            self.fleet.ensure_registry()
        if self.registry is not None and not self.registry.start(self.settings.references.timeout):
            self.log.error(
                "reference registry not read to the end yet; models wait for it",
                topic=self.registry.topic,
                error=self.registry.view().error,
            )
        if self.fleet is None:
            self._restore()
        else:
            self.fleet.start()
        if self.settings.event.decode_worker:
            self.decode_worker = DecodeWorker(self._decoder_spec(), monotonic=self.monotonic)
            try:
                self.decode_worker.start()
            except DecodeWorkerError as exc:  # the loop decodes in process until a restart
                self._worker_failed(exc)
        self._runtimes_changed()
        self._sync_registry(force=True)
        self.source = self._source_factory(self._on_assign, self._on_revoke)
        if self.fleet is not None:
            self.fleet.seek = getattr(self.source, "seek", None)
        now = self.monotonic()
        self._next_eval = now + self.settings.evaluation.interval
        self._next_checkpoint = now + self.settings.state.checkpoint_interval
        self.metrics.config_loaded(self.clock())
        self._publish(self.clock())

    def request_reload(self) -> None:
        """Ask the loop to re-read the configuration before its next poll (signal-safe)."""
        self._reload_requested = True

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
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
        worker = self.decode_worker
        held = 0 if worker is None else worker.held_bytes + self._aside_bytes()
        messages = self.source.poll(POLL_TIMEOUT_S, self.settings.kafka.max_poll_records, held)
        self._heartbeat = self.monotonic()
        self.metrics.unreadable_batches(self.source.unreadable_batches())
        self._sync_registry()
        if messages:
            self.process(messages)
        if not messages or self.source.held_back():
            # idle: nothing to overlap the worker's batches with; held back: a compressed
            # batch waits until the batches in flight are released (memory bound)
            self.drain()
        if self.fleet is not None:
            self.fleet.runtimes = self.runtimes  # a reload may have replaced them
            self.fleet.step()
            self._commit_fleet_offsets()
        self.metrics.set_kafka_connected(self.source.is_connected())
        # Also before evaluate/checkpoint: an offset commit during an outage can block for the
        # request timeout, and driftmon_ready must not claim "ready" meanwhile.
        self.metrics.set_ready(self.ready())
        now = self.monotonic()
        if now >= self._next_eval:
            self._next_eval = now + self.settings.evaluation.interval
            self.evaluate()
        if now >= self._next_checkpoint and self.fleet is None:
            self._next_checkpoint = now + self.settings.state.checkpoint_interval
            self.checkpoint()
        self.metrics.set_ready(self.ready())

    def shutdown(self) -> None:
        """Evaluate, checkpoint, commit, close the source (the batch in hand is applied)."""
        self.log.info("stopping")
        try:
            self.evaluate()
            if self.fleet is None:
                self.checkpoint()
            else:
                self._fleet_last_commits()
        finally:
            if self.decode_worker is not None:
                self.decode_worker.close()
            if self.registry is not None:
                self.registry.stop()
            if self.source is not None:
                self.source.close()
            if self.fleet is not None:
                self.fleet.close()
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
        """Why the daemon is not ready ("" when it is). A fleet replica without partitions is
        ready: it serves the fleet's global state (more replicas than partitions is fine)."""
        if self.source is None:
            return "starting"
        if not self.source.is_connected():
            return "not connected to Kafka"
        if self.fleet is None and not self.source.assignment():
            return "no partitions assigned"
        fleet = "" if self.fleet is None else self.fleet.not_ready_reason()
        if fleet:
            return fleet
        missing = [name for name, rt in self.runtimes.items() if not rt.ready]
        if missing:
            return "no reference yet for: " + ", ".join(missing)
        if not self._evaluated_once:
            return "no evaluation yet"
        return ""

    # -- the hot path ----------------------------------------------------------------

    def process(self, messages: Sequence[RawMessage]) -> None:
        """Decode a batch slice by slice, apply each slice to the models, account for every
        record in one `BatchAccount`, then update the metrics, dead letters and log from it.

        Only one slice's columns are alive at a time (`BatchDecoder.slices`), so the memory
        of a batch is bounded by the slice size, not by what the messages hold. With a decode
        worker (`event.decode_worker`, monitor.decode_worker) the batch goes to the child and
        is applied `DEPTH` batches later (or at the next `drain`), while the child decodes;
        batches are applied in poll order and their offsets count only once applied. When the
        worker holds `DEPTH` batches and has not answered the oldest yet, the loop decodes the
        new batch itself instead of waiting (`_decode_aside`: one such batch at a time, of at
        most `ASIDE_MAX_VALUES` column values) and queues it behind them. A batch of more than
        `MAX_SUBMIT_BYTES` of values (inflated from compressed batches) is decoded in process,
        after the batches in flight.
        """
        batch = self._prepare(messages)
        worker = self.decode_worker
        if worker is None:
            self._apply(batch, None, None)
            return
        if len(self._in_flight) >= DEPTH:
            if self._decode_aside(worker, batch):
                return
            self._apply_oldest(worker)
            while self._in_flight and worker.pending >= DEPTH:
                self._apply_oldest(worker)
        if worker.available() and value_bytes(batch.kept) <= MAX_SUBMIT_BYTES:
            try:
                worker.submit(batch.kept)
            except DecodeWorkerError as exc:  # the worker dropped the batches it held
                self._worker_failed(exc)
                self._decode_in_flight_here()
            else:
                self._in_flight.append(batch)
                return
        self.drain()  # the batches before this one first
        self._apply(batch, None, None)

    def _decode_aside(self, worker: DecodeWorker, batch: _Batch) -> bool:
        """Decode `batch` here and queue it behind the worker's batches when the worker is
        full and has not answered yet (the loop would otherwise wait): at most one such batch
        at a time, of at most `MAX_SUBMIT_BYTES` of values and `ASIDE_MAX_VALUES` column
        values; False when it is not done (a batch over the bound is decoded again at its
        turn)."""
        if any(isinstance(e, _Aside) for e in self._in_flight) or worker.answered():
            return False
        size = value_bytes(batch.kept)
        if size > MAX_SUBMIT_BYTES:
            return False
        decoder = self.decoder
        account = BatchAccount(max_samples=MAX_REJECT_SAMPLES)
        slices: list[DecodedBatch] = []
        values = 0
        started = time.perf_counter()
        for decoded in decoder.slices(batch.kept, account):
            values += column_values(decoded)
            if values > min(ASIDE_MAX_VALUES, worker.max_result_values):
                return False  # decoded again at its turn, slice by slice
            slices.append(decoded)
        decode_s = time.perf_counter() - started
        self._in_flight.append(_Aside(batch, decoder, tuple(slices), account, 2 * size, decode_s))
        return True

    def _aside_bytes(self) -> int:
        """What the batches decoded aside hold (`_Aside.held`)."""
        return sum(e.held for e in self._in_flight if isinstance(e, _Aside))

    def drain(self) -> None:
        """Apply every batch the decode worker holds, oldest first: before anything that needs
        every polled event counted or that changes the runtimes (evaluations, checkpoints,
        reloads, registry changes, discovery, an idle poll, shutdown)."""
        worker = self.decode_worker
        while self._in_flight and worker is not None:
            self._apply_oldest(worker)

    def _apply_oldest(self, worker: DecodeWorker) -> None:
        """Apply the oldest batch in flight with the worker's slices; a failed worker drops
        every batch in flight, which are then decoded in process, in order. A batch decoded
        with schemas that changed since, or whose columns were too large for the child
        (`decode_worker.MAX_RESULT_VALUES`), is decoded in process, slice by slice."""
        batch = self._in_flight.popleft()
        if isinstance(batch, _Aside):
            self._apply_aside(batch)
            return
        try:
            result = worker.collect()
        except DecodeWorkerError as exc:
            self._worker_failed(exc)
            self._apply(batch, None, None)
            self._decode_in_flight_here()
            return
        if result.slices is None or result.version != worker.version:
            self._apply(batch, None, None)  # too large for the child, or stale schemas
        else:
            self._apply(batch, result.slices, result.account, result.decode_s)

    def _decode_in_flight_here(self) -> None:
        """Decode and apply in process, oldest first, the batches a failed worker dropped."""
        while self._in_flight:
            entry = self._in_flight.popleft()
            if isinstance(entry, _Aside):
                self._apply_aside(entry)
            else:
                self._apply(entry, None, None)

    def _apply_aside(self, aside: _Aside) -> None:
        """Apply a batch decoded aside with its slices, or decode it again here when the
        daemon's decoder changed since (a reload)."""
        if aside.decoder is self.decoder:
            self._apply(aside.batch, aside.slices, aside.account, aside.decode_s)
        else:
            self._apply(aside.batch, None, None)

    def _worker_failed(self, exc: DecodeWorkerError) -> None:
        worker = self.decode_worker
        self.metrics.decode_worker_failed()
        self.log.error(
            "decode worker failed; its batches are decoded in process",
            error=str(exc)[:300],
            failures=0 if worker is None else worker.failures,
        )

    def _prepare(self, messages: Sequence[RawMessage]) -> _Batch:
        """The batch's messages to count (in a fleet: the claimed partitions') and to decode
        (sampling: monitor.sampling), after feeding auto-discovery."""
        started = time.perf_counter()
        fleet = self.fleet
        owners = None
        if fleet is not None:  # only the records of claimed partitions count
            messages = [m for m in messages if fleet.owns(m.topic, m.partition)]
            owners = {
                tp: fleet.ownership(*tp)
                for tp in dict.fromkeys((m.topic, m.partition) for m in messages)
            }
        decode_rate = max(rt.plan.sample_rate for rt in self.runtimes.values())
        kept: Sequence[RawMessage] = messages
        skipped: Sequence[RawMessage] = ()
        u = None
        if decode_rate < 1.0:  # sampling (monitor.sampling): skipped messages are not decoded
            kept, skipped, u = sample_messages(messages, decode_rate)
        if self.autofeatures.active:
            self.drain()  # discovery may change the runtimes and the decoder
            self._discover(kept)
        return _Batch(
            messages, kept, skipped, u, decode_rate, time.perf_counter() - started, owners
        )

    def _apply(
        self,
        batch: _Batch,
        slices: Sequence[DecodedBatch] | None,
        decoded_account: BatchAccount | None,
        decode_s: float = 0.0,
    ) -> None:
        """Apply one batch: its `slices` and their account from the decode worker, or (None)
        decoded here slice by slice; then the metrics, offsets, dead letters and log.

        `driftmon_batch_duration_seconds` observes the batch's preparation, the `decode_s`
        its slices took where they were decoded (the decode worker's child, or the loop while
        the worker was busy) and the time here."""
        started = time.perf_counter()
        account = (
            BatchAccount(max_samples=MAX_REJECT_SAMPLES)
            if decoded_account is None
            else decoded_account
        )
        for message in batch.skipped:
            account.consume(message.topic, 1)
        fleet = self.fleet
        stale: frozenset[TP] = frozenset()
        if fleet is not None and batch.owners:  # claimed again since the poll: read again
            stale = frozenset(t for t, o in batch.owners.items() if fleet.ownership(*t) is not o)
        if slices is None:
            for decoded in self.decoder.slices(batch.kept, account):
                self._ingest(batch, decoded, account, stale)
                del decoded
        else:
            for decoded in slices:
                self._ingest(batch, decoded, account, stale)
        if fleet is not None:
            fleet.consumed([m for m in batch.messages if (m.topic, m.partition) not in stale])
        self.metrics.record_batch(account)
        for reason, n in account.rejected_by_reason().items():
            self.stats.reject_reasons[reason.value] = (
                self.stats.reject_reasons.get(reason.value, 0) + n
            )
            self.stats.rejected += n
        for message in batch.messages:
            self.offsets[(message.topic, message.partition)] = message.offset + 1
        self._dead_letters(account)
        self._log_samples(account)
        self.stats.batches += 1
        self.stats.records += len(batch.messages)
        self.stats.since_last_eval += len(batch.messages)
        self.metrics.observe_batch(batch.prepare_s + decode_s + time.perf_counter() - started)

    def _ingest(
        self,
        batch: _Batch,
        decoded: DecodedBatch,
        account: BatchAccount,
        stale: frozenset[TP] = frozenset(),
    ) -> None:
        """Apply one decoded slice to its models (thinned to each model's sample rate)."""
        fleet = self.fleet
        u = batch.uniforms
        for name, columns in decoded.models.items():
            runtime = self.runtimes[name]
            rate = runtime.plan.sample_rate
            sampled = (
                thin(columns, u, rate) if u is not None and rate < batch.decode_rate else columns
            )
            if fleet is None:
                runtime.ingest(sampled, account, batch.kept, defer=True)
            else:  # counted at once, each partition's events under that partition
                fleet.ingest(runtime, sampled, decoded.partitions, account, batch.kept, stale)

    def _discover(self, messages: Sequence[RawMessage]) -> None:
        """Feed `features: auto` models; a model whose discovery ended gets its features now,
        before the batch is decoded (monitor.autodiscover)."""
        finished = self.autofeatures.observe(messages)
        for name, specs in finished.items():
            plan = discovered(self.runtimes[name].plan, [(s.name, s.kind) for s in specs])
            self.runtimes[name] = ModelRuntime(
                plan, clock=self.clock, state_dir=self.settings.state.dir
            )
            status = self.autofeatures.status(name)
            self.log.info(
                "features discovered",
                model=name,
                numeric=sum(1 for s in specs if s.kind.value == "numeric"),
                categorical=sum(1 for s in specs if s.kind.value == "categorical"),
                unmonitored=status.unmonitored if status is not None else 0,
            )
        if finished:
            self._runtimes_changed()

    def _runtimes_changed(self) -> None:
        """After runtimes were replaced: the decoder, the discovery and the label sets follow."""
        self.references.rebind(self.runtimes)
        self.decoder = self._build_decoder()
        if self.decode_worker is not None:
            self.decode_worker.configure(self._decoder_spec())
        self.autofeatures = AutoFeatures(self.settings, self.runtimes, self.autofeatures)
        self.metrics.set_features(
            {name: [s.name for s in rt.specs] for name, rt in self.runtimes.items()}
        )

    def _dead_letters(self, account: BatchAccount) -> None:
        """Copy every message with a rejected record to the dead-letter topic, with its key,
        its headers and the `driftmon-*` headers; count each one that cannot be queued or
        delivered in `driftmon_dead_letter_failures_total{reason}`. One failure never stops
        the others."""
        topic = self.settings.kafka.dead_letter_topic
        if self.dead_letter is None or topic is None or not account.dead_letters:
            return
        for message, reason in account.dead_letters.values():
            value = b"" if message.value is None else message.value
            try:
                headers = dead_letter_headers(message, reason)
                self.dead_letter.send(
                    topic,
                    value,
                    key=message.key,
                    headers=headers,
                    on_error=partial(self._dead_letter_failed, reason),
                )
            except Exception as exc:  # a broken DLQ must never stop the monitor
                self._dead_letter_failed(reason, exc)
                if self.dead_letter_sampler.allow():
                    self.log.warning(
                        "dead-letter send failed",
                        reason=reason.value,
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        error=str(exc)[:200],
                    )
            else:
                self._dead_letter_bytes += dead_letter_bytes(message, headers)
        if self._dead_letter_bytes >= DEAD_LETTER_FLUSH_BYTES:
            self._flush_dead_letters()

    def _dead_letter_failed(self, reason: RejectReason, _exc: BaseException | None = None) -> None:
        """Count one record that did not reach the dead-letter topic (any thread)."""
        self.metrics.dead_letter_failed(reason)

    def _flush_dead_letters(self) -> None:
        """Wait (up to DEAD_LETTER_FLUSH_S) for the queued dead letters: before a checkpoint,
        and whenever DEAD_LETTER_FLUSH_BYTES are queued."""
        if self.dead_letter is None or not self._dead_letter_bytes:
            return
        self._dead_letter_bytes = 0
        try:
            self.dead_letter.flush(DEAD_LETTER_FLUSH_S)
        except Exception as exc:  # undelivered records are counted by their callbacks
            self.log.warning("dead-letter flush incomplete", error=str(exc)[:200])

    def _log_samples(self, account: BatchAccount) -> None:
        for sample in account.samples:
            if not self.sampler.allow():
                break
            self.log.warning(
                "record rejected",
                topic=sample.topic,
                partition=sample.partition,
                offset=sample.offset,
                reason=sample.reason.value,
                detail=sample.detail,
            )

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self) -> tuple[ModelEvaluation, ...]:
        """Evaluate every model, publish the snapshot, log one summary line."""
        started = time.perf_counter()
        now = self.clock()
        self.apply_pending()
        self._load_references()
        self._sync_registry(force=True)
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

    def apply_pending(self) -> None:
        """Count every model's deferred events (`ModelRuntime.ingest(defer=True)`) into its
        windows and their invalid values into the metrics: before each evaluation and each
        checkpoint, so a checkpoint's offsets never cover an event its windows lack; the
        batches in the decode worker first (`drain`)."""
        self.drain()
        account = BatchAccount(max_samples=MAX_REJECT_SAMPLES)
        for runtime in self.runtimes.values():
            runtime.flush(account)
        if account.invalid:
            self.metrics.record_batch(account)

    def _publish(self, now: float) -> tuple[ModelEvaluation, ...]:
        evaluations = tuple(
            self.autofeatures.annotate(self._evaluate_model(rt, now))
            for rt in self.runtimes.values()
        )
        self.collector.publish(Snapshot(created_at=now, models=evaluations))
        return evaluations

    def _evaluate_model(self, runtime: ModelRuntime, now: float) -> ModelEvaluation:
        evaluation = runtime.evaluate(now)
        if runtime.mode is not ReferenceMode.REGISTRY:
            return evaluation
        view = self.references.view_of(runtime)
        return dataclasses.replace(evaluation, reference_view=view)

    def _sync_registry(self, *, force: bool = False) -> None:
        """Registry hook: count refused registry records and apply a new registry view (or,
        when `force`, re-decide followed versions and shadows) to the registry models."""
        if self.registry is None:
            return
        counts, details = self.registry.take_rejections()
        for reason, n in counts.items():
            self.metrics.registry_rejected(reason, n)
        for rejected in details:
            if self.registry_sampler.allow():
                self.log.warning(
                    "registry record refused",
                    reason=rejected.reason.value,
                    detail=rejected.detail[:300],
                )
        view = self.registry.view()
        if self.fleet is not None:  # the fleet's warm-up models adopt the registry's activation
            self.fleet.registry_active = {m: a.reference_id for m, a in view.activations.items()}
            self.fleet.registry_view = view
        if not force and view.generation == self._registry_generation:
            return
        self.drain()  # the batches polled before the change are applied before it
        self._registry_generation = view.generation
        for outcome in self.references.sync(view, self.clock()):
            if isinstance(outcome, Activated):
                info = outcome.info
                self.metrics.reference_activated(outcome.model, info.cause)
                self.log.info(
                    "reference activated",
                    model=outcome.model,
                    reference_id=info.reference_id,
                    model_version=info.model_version,
                    cause=info.cause,
                    by=info.by,
                    reason=info.reason,
                    shadow=info.gapless,
                )
            else:
                self.log.error(
                    "registry reference refused, keeping the active one",
                    model=outcome.model,
                    reference_id=outcome.reference_id,
                    error=outcome.error,
                )

    def _load_references(self) -> None:
        """Reload every `file` reference that changed; log what each reload did."""
        for runtime in self.runtimes.values():
            if runtime.mode is not ReferenceMode.FILE:
                continue
            try:
                outcome = runtime.load_reference_file()
            except ReferenceDataError as exc:
                self.log.error("reference not loaded", model=runtime.name, error=str(exc))
                continue
            if outcome is None:
                continue
            if outcome.activated:
                self.log.info("reference active", model=runtime.name, reference_id=outcome.detail)
            else:
                self.log.error(
                    "reference refused, keeping the active one",
                    model=runtime.name,
                    error=outcome.detail,
                )

    # -- configuration reload ---------------------------------------------------------------

    def reload(self) -> ReloadResult:
        """Re-read the configuration and apply it between two batches (monitor.reload).

        Refused, with the running configuration kept: a file that does not load or
        validate, or whose `file` references cannot be used (`invalid`), and a file that
        changes a setting only a restart applies (`restart_required`). Every attempt is
        counted in `driftmon_config_reloads_total{result}` and logged.
        """
        self.drain()  # the batches polled before the reload are applied before it
        now = self.clock()
        if self.settings_loader is None:
            self.log.error("config reload refused", error="this daemon has no configuration file")
            self.metrics.config_reload(ReloadResult.INVALID, now)
            return ReloadResult.INVALID
        try:
            settings = self.settings_loader()
            keys = restart_keys(self.settings, settings)
            if keys:
                self.log.error(
                    "config reload refused: restart required",
                    changed=keys,
                    error="these settings apply only at start; restart driftmon to change "
                    "them (models and evaluation can be reloaded)",
                )
                self.metrics.config_reload(ReloadResult.RESTART_REQUIRED, now)
                return ReloadResult.RESTART_REQUIRED
            self.apply_pending()  # the old runtimes' deferred events, with their invalid values
            reloaded = reload_runtimes(self.runtimes, settings, self.clock)
        except ConfigError as exc:
            self.log.error("config reload refused, keeping the running one", error=str(exc))
            self.metrics.config_reload(ReloadResult.INVALID, now)
            return ReloadResult.INVALID
        except Exception as exc:  # a reload never stops the daemon: refuse what cannot load
            self.log.error(
                "config reload refused, keeping the running one",
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
            self.metrics.config_reload(ReloadResult.INVALID, now)
            return ReloadResult.INVALID
        self.settings = settings
        self.runtimes = reloaded.runtimes
        self._runtimes_changed()
        self._sync_registry(force=True)
        self.metrics.set_sample_rates({m.name: m.sample_rate for m in settings.models})
        self.metrics.set_evaluation_interval(settings.evaluation.interval)
        self.collector.set_distributions({m.name: m.distribution_policy() for m in settings.models})
        self._publish(now)
        self.metrics.config_reload(ReloadResult.SUCCESS, now)
        self.log.info("config reloaded", models=reloaded.summary())
        return ReloadResult.SUCCESS

    # -- state ----------------------------------------------------------------------------

    def checkpoint(self, *, commit: bool = True) -> bool:
        """Write the checkpoint, then (if `commit`) commit the offsets it contains.

        Returns True when the checkpoint file was written. `commit=False` is for rebalance
        callbacks, which run on kafka-python's IO thread where a blocking commit is refused.
        """
        self._flush_dead_letters()
        self.apply_pending()
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
        """Load the checkpoint; an unusable one is counted (corrupt), set aside and skipped.

        Never fatal: when the state directory does not allow moving the file aside, the
        checkpoint is left in place and ignored (the next successful write replaces it).
        """
        try:
            checkpoint = self.store.load()
        except StateError as exc:
            self.metrics.checkpoint(CheckpointResult.CORRUPT)
            try:
                moved = self.store.set_aside(str(exc))
            except OSError as move_error:
                self.log.error(
                    "checkpoint unusable and cannot be moved aside; ignoring it, starting empty",
                    error=str(exc),
                    move_error=str(move_error),
                    path=str(self.store.path),
                )
                return
            self.log.error(
                "checkpoint set aside, starting empty", error=str(exc), moved_to=str(moved)
            )
            return
        if checkpoint is None:
            return
        self.offsets = dict(checkpoint.offsets)
        reload = False
        for name, runtime in list(self.runtimes.items()):
            state = checkpoint.models.get(name)
            if state is None:
                continue
            plan = restored_plan(runtime.plan, state.meta.get("features"))
            target = runtime
            if plan is not None:  # features: auto, discovered before the restart
                target = self.runtimes[name] = ModelRuntime(
                    plan, clock=self.clock, state_dir=self.settings.state.dir
                )
            try:
                target.restore(state)
            except (StateError, ReferenceDataError, ValueError, KeyError, TypeError) as exc:
                self.runtimes[name] = model_runtimes(self.settings, self.clock)[
                    name
                ]  # nothing half-restored
                reload = True
                self.log.error(
                    "model state not restored; its window restarts empty",
                    model=name,
                    error=str(exc),
                )
        if reload:
            self._load_references()
        self.log.info(
            "checkpoint restored", partitions=len(self.offsets), created_at=checkpoint.created_at
        )

    def _fleet_last_commits(self) -> None:
        """At shutdown: publish a last commit of every owned partition (best effort)."""
        assert self.fleet is not None
        try:
            self.fleet.publish_all()
            self.fleet.fold_to_end()
        except SourceError as exc:  # the next owners re-read from the chain heads
            self.log.warning("last state commits failed", error=str(exc))
            return
        self._commit_fleet_offsets(force=True)

    def _commit_fleet_offsets(self, *, force: bool = False) -> None:
        """In a fleet: commit each owned partition's chain head to the consumer group, for lag
        tooling only (`FleetNode.group_offsets`); a failure is counted and logged, never fatal."""
        assert self.fleet is not None and self.source is not None
        if not self.source.is_connected():
            return
        offsets = self.fleet.group_offsets(self.source.assignment(), force=force)
        if not offsets:
            return
        try:
            self.source.commit(offsets)
        except SourceError as exc:
            self.metrics.offset_commit(CheckpointResult.FAILURE)
            self.log.warning("offset commit failed", error=str(exc))
            return
        self.fleet.group_committed(offsets)
        self.metrics.offset_commit(CheckpointResult.SUCCESS)

    def _on_assign(self, partitions: frozenset[TP]) -> Mapping[TP, int]:
        """Seek assigned partitions to the offsets the in-memory state has counted up to
        (in a fleet: claim them and seek each to its chain head)."""
        if self.fleet is not None:
            starts = self.fleet.on_assign(partitions)
            self.log.info("partitions assigned", partitions=sorted(partitions), seek=len(starts))
            return starts
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
        if self.fleet is not None:
            self.drain()  # the decode worker's batches count before the last commits
            self.fleet.on_revoke(partitions)
        elif partitions:
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


def dead_letter_bytes(message: RawMessage, headers: Sequence[tuple[str, bytes]]) -> int:
    """What a queued dead letter holds in the producer, about: its value, key and headers,
    plus 100 bytes of record overhead (counted towards `DEAD_LETTER_FLUSH_BYTES`)."""
    size = 100 + len(message.value or b"") + len(message.key or b"")
    return size + sum(len(name) + len(value) for name, value in headers)


def dead_letter_headers(message: RawMessage, reason: RejectReason) -> list[tuple[str, bytes]]:
    """The original headers of `message` (a null header value sent as empty; more than
    `MAX_DEAD_LETTER_HEADERS`: none, and `driftmon-headers-dropped` with their number)
    followed by `driftmon-reason`, `driftmon-topic`, `driftmon-partition`, `driftmon-offset`
    (ASCII) and, for a tombstone (null value, sent as an empty value), `driftmon-tombstone: 1`."""
    count = len(message.headers)
    if count > MAX_DEAD_LETTER_HEADERS:
        headers = [("driftmon-headers-dropped", str(count).encode())]
    else:
        headers = [(name, b"" if value is None else value) for name, value in message.headers]
    headers += [
        ("driftmon-reason", reason.value.encode()),
        ("driftmon-topic", message.topic.encode()),
        ("driftmon-partition", str(message.partition).encode()),
        ("driftmon-offset", str(message.offset).encode()),
    ]
    if message.value is None:
        headers.append(("driftmon-tombstone", b"1"))
    return headers
