"""`reference.mode: registry`: which registered profile each registry model uses, and when.

`RegistryReferences.sync(view, now)` is called by the daemon loop whenever the registry
follower publishes a new `RegistryView` and before every evaluation. For each model in
registry mode it decides the target profile:

1. the profile the registry's activation names (nothing changes while the registry has no
   activation for the model: the model keeps what it has, or stays without a reference);
2. with `reference.follow_model_version: true`, when one model version carries at least
   half of the current window (`monitor.follow.dominant`) and the registry holds a profile
   fitted for it, the newest such profile instead; when the stream goes back, rule 1 picks
   the registry's profile again. While no version carries half of the window the active
   profile stays (no flapping on a mixed stream), unless the registry's activation is new.
   In a fleet (`follow_locally` False) this rule is decided by one replica and written to the
   registry instead (monitor/fleet_versions.py): every replica follows rule 1 only.

A target that differs from the active profile is swapped in (`ModelRuntime.swap`: gapless
when a shadow window was counting for it) and reported as an `ActivationInfo` whose cause is
the registry activation's (`operator`, `rollback`, `warmup`) when that activation is new, else
`model_version`. A profile that does not fit the configured features is refused: the active
reference stays and the reason is reported. Then the shadows are set: the model's pre-warm
list first, then (when following) the profiles of the other versions present in the window,
most common first, at most `MAX_SHADOWS`. The runtime gets the registry's profiles by
version (`follow_profiles`), so the first slice of a version with a registered profile
already starts its shadow: the shadow holds every event of the window since that version
first appeared.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.errors import ReferenceDataError
from monitor.follow import dominant
from monitor.model import ActivationInfo, ReferenceMode, ReferenceView, ShadowInfo
from monitor.reference import ReferenceProfile
from monitor.registry import MAX_SHADOWS
from monitor.registry_follow import RegistryView
from monitor.runtime import ModelRuntime

HISTORY = 10
NO_SHADOW_NOTE = "no shadow window: the next swap starts an empty current window"


@dataclass(frozen=True, slots=True)
class Activated:
    """A swap the sync performed."""

    model: str
    info: ActivationInfo


@dataclass(frozen=True, slots=True)
class Refused:
    """A target profile that could not be activated (the active reference stays)."""

    model: str
    reference_id: str
    error: str


class RegistryReferences:
    """The registry models' reference decisions (see the module doc)."""

    def __init__(
        self,
        runtimes: Mapping[str, ModelRuntime],
        topic: str,
        modes: frozenset[ReferenceMode] = frozenset({ReferenceMode.REGISTRY}),
        *,
        follow_locally: bool = True,
    ) -> None:
        self._runtimes = runtimes
        self.topic = topic
        self.modes = modes
        """The reference modes that follow the registry (a fleet adds `warmup`: its warm-up
        references are published to the registry and adopted from it, docs/fleet.md)."""
        self.follow_locally = follow_locally
        """Rule 2 (follow_model_version) decides here. False in a fleet: one replica writes
        each version switch to the registry as an activation (`monitor.fleet_versions`) and
        every replica follows rule 1 only, so all switch together."""
        self._applied: dict[str, tuple[str, float]] = {}
        self._refused: dict[str, str] = {}
        self.history: dict[str, deque[ActivationInfo]] = {}
        self._view = RegistryView()

    def rebind(self, runtimes: Mapping[str, ModelRuntime]) -> None:
        """Follow a new set of runtimes (a configuration reload); the next sync re-applies
        the registry to every registry model, so a runtime rebuilt by the reload gets its
        active profile back."""
        self._runtimes = runtimes
        self._refused.clear()

    def models(self) -> list[ModelRuntime]:
        """The runtimes that follow the registry (looked up each time: a restore may replace
        one)."""
        return [rt for rt in self._runtimes.values() if rt.mode in self.modes]

    def sync(self, view: RegistryView, now: float) -> list[Activated | Refused]:
        """Apply `view` to every registry model; what was activated or refused."""
        self._view = view
        outcomes: list[Activated | Refused] = []
        for runtime in self.models():
            outcome = self._sync_model(runtime, view, now)
            if outcome is not None:
                outcomes.append(outcome)
            self._set_shadows(runtime, view, now)
        return outcomes

    def _sync_model(
        self, runtime: ModelRuntime, view: RegistryView, now: float
    ) -> Activated | Refused | None:
        name = runtime.name
        activation = view.activations.get(name)
        registered = view.active(name)
        if activation is None or registered is None:
            return None
        key = (activation.reference_id, activation.at)
        fresh = self._applied.get(name) != key
        self._applied[name] = key
        target: ReferenceProfile = registered.profile
        cause = activation.cause if fresh else "model_version"
        by, reason = (activation.by, activation.reason) if fresh else ("driftmon", "")
        if runtime.plan.reference.follow_model_version and self.follow_locally:
            current = runtime.profile.model_version if runtime.profile is not None else ""
            version = dominant(runtime.version_shares(), current=current)
            if version is None and not fresh and runtime.profile is not None:
                return None  # no version carries half the window: keep what is active
            if version is not None and version != target.model_version:
                followed = view.newest_for_version(name, version)
                if followed is not None:
                    target, cause = followed.profile, "model_version"
                    by, reason = "driftmon", f"model_version {version} carries the window"
            if cause == "model_version" and not reason:
                reason = f"model_version {target.model_version} carries the window"
        if target.reference_id == runtime.reference_id:
            return None
        if self._refused.get(name) == target.reference_id:
            return None  # refused before: said once, not on every sync
        try:
            gapless = runtime.swap(target)
        except ReferenceDataError as exc:
            self._refused[name] = target.reference_id
            runtime.last_reference_error = f"registry reference {target.reference_id}: {exc}"
            return Refused(name, target.reference_id, str(exc))
        self._refused.pop(name, None)
        info = ActivationInfo(
            reference_id=target.reference_id,
            model_version=target.model_version,
            cause=cause,
            at=now,
            by=by,
            reason=reason,
            gapless=gapless,
        )
        self.history.setdefault(name, deque(maxlen=HISTORY)).appendleft(info)
        return Activated(name, info)

    def _set_shadows(self, runtime: ModelRuntime, view: RegistryView, now: float) -> None:
        name = runtime.name
        wanted: list[tuple[ReferenceProfile, str]] = []
        prewarm = view.prewarm.get(name)
        for reference_id in prewarm.reference_ids if prewarm is not None else ():
            registered = view.profiles.get(reference_id)
            if registered is not None and reference_id != runtime.reference_id:
                wanted.append((registered.profile, "prewarm"))
        if runtime.plan.reference.follow_model_version:
            runtime.follow_profiles = _newest_by_version(view, name)
        if runtime.plan.reference.follow_model_version and runtime.profile is not None:
            shares = sorted(runtime.version_shares().items(), key=lambda vs: -vs[1])
            for version, _ in shares:
                if not version or version == runtime.profile.model_version:
                    continue
                followed = view.newest_for_version(name, version)
                if followed is not None and followed.profile.reference_id != runtime.reference_id:
                    wanted.append((followed.profile, f"model_version {version} in the stream"))
        runtime.shadows.keep(wanted[: MAX_SHADOWS * 2], now)

    def view_of(self, runtime: ModelRuntime) -> ReferenceView:
        """What /status shows about a registry model's reference."""
        activation = self._view.activations.get(runtime.name)
        shadows = tuple(
            ShadowInfo(s.reference_id, s.profile.model_version, s.reason, s.since, s.events)
            for s in runtime.shadows.windows.values()
        )
        following = runtime.plan.reference.follow_model_version
        shares = tuple(sorted(runtime.version_shares().items())) if following else ()
        return ReferenceView(
            topic=self.topic,
            registry_active=activation.reference_id if activation is not None else "",
            following=following,
            shadows=shadows,
            activations=tuple(self.history.get(runtime.name, ())),
            version_shares=shares,
            note="" if shadows else NO_SHADOW_NOTE,
            registry_error=self._view.error,
        )


def _newest_by_version(view: RegistryView, model: str) -> dict[str, ReferenceProfile]:
    """The last pushed profile of `model` per model version (profiles without a version are
    left out)."""
    newest: dict[str, tuple[float, ReferenceProfile]] = {}
    for registered in view.profiles.values():
        profile = registered.profile
        version = profile.model_version
        if not version or profile.model not in ("", model):
            continue
        pushed = registered.manifest.pushed_at
        if version not in newest or newest[version][0] < pushed:
            newest[version] = (pushed, profile)
    return {version: profile for version, (_, profile) in newest.items()}
