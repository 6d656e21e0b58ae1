"""Applying a new configuration to running model runtimes (SIGHUP), feature by feature.

What a reload may change (README, "Changing the configuration: restart or SIGHUP"):

- `models` (models added and removed; per model its features, kinds, thresholds, top_k,
  max_bins, topics, reference settings, distribution export) and `evaluation` (interval,
  min_samples, q, correction, floors) are applied in the running process;
- every other section (`kafka`, `event`, `window`, `http`, `state`, `log`, `references`)
  is only read at start: a new file that changes any of them is refused as a whole
  (`restart_keys` names the changed keys) and the running configuration stays in force.

`reload_runtimes` builds the new runtimes: a model whose plan is unchanged keeps its runtime
object as it is; a changed or new model gets a new runtime that takes over the old one's
state through its checkpoint form (`ModelRuntime.to_state` / `restore`), so the rules of a
restart with a changed config apply: unchanged features keep reference, window and warm-up
values, added and changed ones start fresh, removed ones are dropped. A model whose state
cannot be carried over (its model-wide fingerprint changed) restarts empty, and says so.
A new or changed model with a `file` reference whose file cannot be used (unreadable, or
without one of the configured features) makes the whole reload invalid (ConfigError).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.autodiscover import restored_plan
from monitor.config import Settings
from monitor.errors import ConfigError, ReferenceDataError, StateError
from monitor.model import ReferenceMode
from monitor.runtime import ModelRuntime, model_runtimes

RESTART_SECTIONS = ("kafka", "event", "window", "http", "state", "log", "references")
"""Top-level sections a reload cannot change (they shape the consumer, decoder, windows,
listener, checkpoint and logging the process was started with)."""


def restart_keys(old: Settings, new: Settings) -> list[str]:
    """Dotted keys of RESTART_SECTIONS whose values differ between `old` and `new`.

    Values are compared, never shown: secrets stay out of the messages built from this.
    """
    changed: list[str] = []
    for section in RESTART_SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        if before == after:
            continue
        keys = sorted(set(type(before).model_fields) | set(type(after).model_fields))
        diffs = [k for k in keys if getattr(before, k, None) != getattr(after, k, None)]
        changed.extend(f"{section}.{k}" for k in diffs or ["*"])
    if _follows_registry(new) and not _follows_registry(old):
        # The registry follower is started with the process: only a restart starts it.
        changed.append("models.reference.mode")
    return changed


def _follows_registry(settings: Settings) -> bool:
    """True when some model takes its reference from the registry (`reference.mode: registry`)."""
    return any(m.reference.mode is ReferenceMode.REGISTRY for m in settings.models)


@dataclass(frozen=True, slots=True)
class ModelChange:
    """What a reload did to one model (for the log line and the tests)."""

    model: str
    status: str
    """added, removed, unchanged, changed or reset (state not carried over: see `detail`)."""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    refitted: tuple[str, ...] = ()
    """Features kept by name whose kind or fit parameter changed: they start fresh."""
    detail: str = ""


@dataclass(slots=True)
class Reloaded:
    """The runtimes to run from now on and what changed, model by model."""

    runtimes: dict[str, ModelRuntime]
    changes: list[ModelChange] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able per-model changes, leaving out the unchanged models."""
        return {
            c.model: {
                k: v
                for k, v in (
                    ("status", c.status),
                    ("added", list(c.added)),
                    ("removed", list(c.removed)),
                    ("refitted", list(c.refitted)),
                    ("detail", c.detail),
                )
                if v
            }
            for c in self.changes
            if c.status != "unchanged"
        }


def reload_runtimes(
    old: Mapping[str, ModelRuntime], settings: Settings, clock: Callable[[], float]
) -> Reloaded:
    """New runtimes for `settings`, carrying over the state of `old` (see the module doc).

    ConfigError when a new or changed model's `file` reference cannot be used: nothing of
    `old` has been touched then.
    """
    result = Reloaded({})
    for name, built in model_runtimes(settings, clock).items():
        fresh = built
        previous = old.get(name)
        if previous is None:
            _load_file(fresh)
            result.runtimes[name] = fresh
            result.changes.append(ModelChange(name, "added"))
            continue
        plan = restored_plan(fresh.plan, previous.feature_signatures())
        if plan is not None:  # features: auto, already discovered: they stay frozen
            fresh = ModelRuntime(plan, clock=clock, state_dir=settings.state.dir)
        if previous.plan == fresh.plan:
            result.runtimes[name] = previous
            result.changes.append(ModelChange(name, "unchanged"))
            continue
        result.runtimes[name], change = _carry_over(previous, fresh, settings, clock)
        result.changes.append(change)
    for name in old:
        if name not in result.runtimes:
            result.changes.append(ModelChange(name, "removed"))
    return result


def _carry_over(
    previous: ModelRuntime, fresh: ModelRuntime, settings: Settings, clock: Callable[[], float]
) -> tuple[ModelRuntime, ModelChange]:
    """`fresh` restored from `previous`'s state; a new empty runtime when that fails."""
    before = {str(s[0]): s[1:] for s in previous.feature_signatures()}
    after = {str(s[0]): s[1:] for s in fresh.feature_signatures()}
    added = tuple(n for n in after if n not in before)
    removed = tuple(n for n in before if n not in after)
    refitted = tuple(n for n in after if n in before and before[n] != after[n])
    _load_file(fresh)
    try:
        fresh.restore(previous.to_state())
    except (StateError, ReferenceDataError, ValueError, KeyError, TypeError) as exc:
        empty = model_runtimes(settings, clock)[fresh.name]
        _load_file(empty)
        return empty, ModelChange(fresh.name, "reset", added, removed, refitted, str(exc))
    return fresh, ModelChange(fresh.name, "changed", added, removed, refitted)


def _load_file(runtime: ModelRuntime) -> None:
    """Load a `file` reference now; ConfigError naming the model when it cannot be used."""
    if runtime.mode is not ReferenceMode.FILE:
        return
    try:
        runtime.load_reference_file()
    except ReferenceDataError as exc:
        raise ConfigError(f"model {runtime.name!r}: {exc}") from exc
