"""The composition root of the daemon: `Settings` -> a wired `Daemon`, not yet started.

`driftmon run`, the end-to-end benchmark and the daemon tests all build their daemon here,
so what is measured and tested is wired exactly like what runs. From the settings:

- a fresh registry (never the global one) with `PipelineMetrics` pre-initialised over the
  configured topics, models and features, and the `DriftCollector` that serves snapshots;
- the `CheckpointStore` in `state.dir`;
- the source: `KafkaSource` with `kafka.consumer_kwargs()` over `kafka.topics` in
  production (`kafka_daemon`); callers of `build_daemon` pass their own factory (a fake
  source in tests, a timing wrapper around the Kafka source in the benchmark);
- the dead-letter sink: a `KafkaSink` when `kafka.dead_letter_topic` is set;
- `Daemon`, which builds the model runtimes (`monitor.runtime.model_runtimes`) and the
  decoder from the same settings.

Nothing here polls, binds a port or installs signal handlers: `Daemon.start()` and the HTTP
server are the caller's.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from monitor.config import Settings
from monitor.daemon import Daemon, DeadLetterSink, FleetFactory, SettingsLoader, SourceFactory
from monitor.fleet_node import FleetNode
from monitor.metrics import DriftCollector, PipelineMetrics, Registry, new_registry
from monitor.model import ReferenceMode
from monitor.registry_follow import RegistryFollower
from monitor.registry_log import RegistryLog
from monitor.runtime import ModelRuntime
from monitor.source import (
    AssignCallback,
    KafkaSink,
    KafkaSource,
    RevokeCallback,
)
from monitor.state import CheckpointStore
from monitor.state_log import StateLog


@dataclass(frozen=True, slots=True)
class Wiring:
    """A daemon and the metric objects it reports to (the registry is what /metrics serves)."""

    daemon: Daemon
    registry: Registry
    metrics: PipelineMetrics
    collector: DriftCollector


def pipeline_metrics(settings: Settings, registry: Registry) -> PipelineMetrics:
    """`PipelineMetrics` on `registry`, its label sets closed over the configured names."""
    return PipelineMetrics(
        registry,
        topics=list(settings.kafka.topics),
        features={m.name: [f.name for f in m.features] for m in settings.models},
        evaluation_interval_seconds=settings.evaluation.interval,
        sample_rates={m.name: m.sample_rate for m in settings.models},
    )


def kafka_source_factory(settings: Settings) -> SourceFactory:
    """A factory of the `KafkaSource` the daemon consumes from (one consumer per call)."""
    consumer_kwargs = settings.kafka.consumer_kwargs()
    topics = list(settings.kafka.topics)

    def make_source(on_assign: AssignCallback, on_revoke: RevokeCallback) -> KafkaSource:
        return KafkaSource(consumer_kwargs, topics, on_assign, on_revoke)

    return make_source


def dead_letter_sink(settings: Settings) -> KafkaSink | None:
    """A producer for `kafka.dead_letter_topic` with the consumer's connection settings and
    a `max_request_size` fitting `max_message_bytes` (`KafkaSettings.dead_letter_kwargs`)."""
    if not settings.kafka.dead_letter_topic:
        return None
    return KafkaSink(settings.kafka.dead_letter_kwargs())


def build_daemon(
    settings: Settings,
    source_factory: SourceFactory,
    *,
    dead_letter: DeadLetterSink | None = None,
    store: CheckpointStore | None = None,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    registry: RegistryFollower | None = None,
    settings_loader: SettingsLoader | None = None,
    fleet: bool = False,
) -> Wiring:
    """The daemon over `source_factory`, with fresh metrics and the checkpoint in `state.dir`.

    `store` replaces the checkpoint store (tests point it elsewhere); `clock` (event and wall
    time) and `monotonic` (intervals, liveness) are injected for tests; `registry` follows
    the reference registry for `reference.mode: registry` models (`registry_follower`);
    `settings_loader` re-reads the configuration on a reload (SIGHUP; without it a reload is
    refused). `fleet` wires the state topic instead of the checkpoint (`fleet_factory`).
    """
    prometheus = new_registry()
    metrics = pipeline_metrics(settings, prometheus)
    collector = DriftCollector(
        prometheus, distributions={m.name: m.distribution_policy() for m in settings.models}
    )
    daemon = Daemon(
        settings,
        source_factory,
        metrics,
        collector,
        store if store is not None else CheckpointStore(settings.state.dir),
        dead_letter=dead_letter,
        clock=clock,
        monotonic=monotonic,
        registry=registry,
        settings_loader=settings_loader,
        fleet=fleet_factory(settings, metrics, clock, monotonic) if fleet else None,
    )
    return Wiring(daemon, prometheus, metrics, collector)


def registry_follower(settings: Settings) -> RegistryFollower | None:
    """A follower of `references.topic` when a model has `reference.mode: registry`, or
    `warmup` in a fleet (the fleet's warm-up references live in the registry)."""
    modes = {ReferenceMode.REGISTRY}
    if settings.state.backend == "kafka":
        modes |= {ReferenceMode.WARMUP, ReferenceMode.ROLLING}
    if not any(m.reference.mode in modes for m in settings.models):
        return None
    references = settings.references
    log = RegistryLog(settings.kafka.client_kwargs(), references.topic, references.timeout)
    return RegistryFollower(log)


def fleet_member() -> str:
    """This replica's member name in the state topic: host, process id and a random suffix,
    so a restarted process never mistakes an earlier life's records for its own."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def fleet_factory(
    settings: Settings,
    metrics: PipelineMetrics,
    clock: Callable[[], float],
    monotonic: Callable[[], float],
) -> FleetFactory:
    """The `FleetNode` of `state.backend: kafka` (docs/fleet.md)."""
    state = settings.state

    def make(runtimes: Mapping[str, ModelRuntime]) -> FleetNode:
        return FleetNode(
            StateLog(settings.kafka.client_kwargs(), state.topic),
            runtimes,
            member=fleet_member(),
            publish_interval=state.publish_interval,
            snapshot_interval=state.snapshot_interval,
            metrics=metrics.fleet,
            logger=structlog.get_logger("driftmon.fleet"),
            clock=clock,
            monotonic=monotonic,
            registry_writer=registry_writer,
            topics=frozenset(settings.kafka.topics),
        )

    def registry_writer() -> RegistryLog:
        references = settings.references
        return RegistryLog(settings.kafka.client_kwargs(), references.topic, references.timeout)

    return make


def kafka_daemon(settings: Settings, settings_loader: SettingsLoader | None = None) -> Wiring:
    """The production daemon: Kafka source, the dead-letter producer, the registry follower
    and the fleet's state topic when configured."""
    return build_daemon(
        settings,
        kafka_source_factory(settings),
        dead_letter=dead_letter_sink(settings),
        registry=registry_follower(settings),
        settings_loader=settings_loader,
        fleet=settings.state.backend == "kafka",
    )
