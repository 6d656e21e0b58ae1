"""Follow the reference registry from a thread of its own (docs/registry.md).

`RegistryFollower` owns one `RegistryLog` reader and one `RegistryTable`. Its thread folds
the topic from the beginning, then keeps tailing it (`poll_into` with a short wait); after
every poll that folded records it publishes an immutable `RegistryView` by swapping one
reference. The daemon loop reads `view()` once per turn (a reference read, never a wait),
so a slow or unreachable registry never blocks ingestion. Refused records are handed over
through `take_rejections()` (a lock held only to swap two small containers): per reason
counts for `driftmon_registry_records_rejected_total` and the last details for the log.

The thread never raises: a registry that cannot be reached is retried with backoff
(`error` says why in the view) while the daemon keeps the references it has.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from monitor.errors import ConfigError, RegistryRejectReason, SourceError
from monitor.registry import (
    ActivationRecord,
    PrewarmRecord,
    RegisteredProfile,
    RegistryTable,
    Rejected,
)
from monitor.registry_log import RegistryLog

POLL_WAIT_S = 0.25
RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0
MAX_HELD_DETAILS = 50


@dataclass(frozen=True, slots=True)
class RegistryView:
    """The registry as folded so far: profiles by id, activations and pre-warms by model.

    `generation` grows with every view published; `loaded` is False until the topic was
    folded to the end once; `error` is the last read failure ("" after a good read).
    """

    generation: int = 0
    loaded: bool = False
    profiles: Mapping[str, RegisteredProfile] = field(default_factory=dict)
    activations: Mapping[str, ActivationRecord] = field(default_factory=dict)
    prewarm: Mapping[str, PrewarmRecord] = field(default_factory=dict)
    records: int = 0
    error: str = ""

    def active(self, model: str) -> RegisteredProfile | None:
        """The profile the registry says is active for `model`, if any."""
        activation = self.activations.get(model)
        return None if activation is None else self.profiles.get(activation.reference_id)

    def newest_for_version(self, model: str, version: str) -> RegisteredProfile | None:
        """The last pushed profile of `model` fitted for `version` (None when there is none)."""
        found = [
            r
            for r in self.profiles.values()
            if r.profile.model in ("", model) and r.profile.model_version == version and version
        ]
        return max(found, key=lambda r: r.manifest.pushed_at, default=None)


@dataclass(slots=True)
class _Held:
    counts: Counter[RegistryRejectReason] = field(default_factory=Counter)
    details: deque[Rejected] = field(default_factory=lambda: deque(maxlen=MAX_HELD_DETAILS))


class RegistryFollower:
    """The registry folded on a thread; `view()` is its latest state (see the module doc)."""

    def __init__(
        self,
        log: RegistryLog,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._table = RegistryTable()
        self._view = RegistryView()
        self._held = _Held()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loaded = threading.Event()
        self._monotonic = monotonic
        self._thread: threading.Thread | None = None

    @property
    def topic(self) -> str:
        """The registry topic followed."""
        return self._log.topic

    def start(self, wait_s: float) -> bool:
        """Start the thread; wait up to `wait_s` for the first full fold. True once loaded."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="driftmon-registry", daemon=True)
            self._thread.start()
        return self._loaded.wait(wait_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and close the reader; idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def view(self) -> RegistryView:
        """The latest published view (one reference read)."""
        return self._view

    def take_rejections(self) -> tuple[Counter[RegistryRejectReason], list[Rejected]]:
        """Refusals since the last call: counts per reason, and the last few in full."""
        with self._lock:
            held, self._held = self._held, _Held()
        return held.counts, list(held.details)

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        backoff = RETRY_MIN_S
        try:
            while not self._stop.is_set():
                try:
                    if not self._loaded.is_set():
                        refused = self._log.read_to_end(self._table)
                        self._loaded.set()
                    else:
                        refused = self._log.poll_into(self._table, POLL_WAIT_S)
                except (SourceError, ConfigError) as exc:
                    self._publish(error=str(exc)[:500])
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, RETRY_MAX_S)
                    continue
                except Exception as exc:  # never let the thread die silently
                    self._publish(error=f"registry reader failed: {exc!r}"[:500])
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, RETRY_MAX_S)
                    continue
                backoff = RETRY_MIN_S
                if refused:
                    with self._lock:
                        for rejected in refused:
                            self._held.counts[rejected.reason] += 1
                            self._held.details.append(rejected)
                view = self._view
                if self._table.records != view.records or view.error or not view.loaded:
                    self._publish(error="")
        finally:
            self._log.close()

    def _publish(self, *, error: str) -> None:
        table = self._table
        self._view = RegistryView(
            generation=self._view.generation + 1,
            loaded=self._loaded.is_set(),
            profiles=MappingProxyType(dict(table.profiles)),
            activations=MappingProxyType(dict(table.activations)),
            prewarm=MappingProxyType(dict(table.prewarm)),
            records=table.records,
            error=error,
        )
