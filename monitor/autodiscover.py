"""The daemon's side of `features: auto`: discover, freeze, and count unmonitored names.

For every model configured with `features: auto` (`ModelPlan.discovery`):

1. While its runtime has no features, `observe` feeds the feature objects of each batch to
   a `monitor.discovery.FeatureDiscovery` until `reference.warmup_events` events were seen,
   then returns the chosen specs; the daemon replaces the runtime with `discovered(plan,
   specs)` and rebuilds its decoder (one place: `Daemon.process`). The events of that batch
   and the following ones then warm the reference up as for a listed feature set.
2. From then on the specs are frozen: they are in every checkpoint (`feature_signatures`),
   and `restored_plan` rebuilds the same plan on a restart or a reload, so the model is not
   discovered again.
3. Every name an auto model's events carry that is not one of its features is counted once
   in a bounded `UnmonitoredNames` (`driftmon_unmonitored_features{model}`, listed in
   /status), during discovery (the names not chosen) and after it. The count starts again
   after a restart.

The cost: an auto model's messages are parsed twice (once more here, into plain dicts, for
their names), so `features: auto` is for discovery and moderate rates; list the features
once they are known (README, Feature discovery).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from monitor.config import Settings
from monitor.discovery import FeatureDiscovery, UnmonitoredNames, feature_objects
from monitor.model import (
    DiscoveryStatus,
    FeatureKind,
    FeatureSpec,
    ModelEvaluation,
    ModelPlan,
    RawMessage,
)
from monitor.runtime import ModelRuntime


def discovered(plan: ModelPlan, specs: Sequence[tuple[str, FeatureKind]]) -> ModelPlan:
    """`plan` with the discovered features (the discovery's thresholds, default top-K)."""
    assert plan.discovery is not None
    thresholds = plan.discovery.thresholds
    features = tuple(FeatureSpec(name, kind, thresholds) for name, kind in specs)
    top_k = tuple((s.name, None) for s in features if s.kind is FeatureKind.CATEGORICAL)
    return dataclasses.replace(plan, features=features, top_k=top_k)


def restored_plan(plan: ModelPlan, signatures: object) -> ModelPlan | None:
    """The discovered plan a checkpoint's `features` signatures hold (None: not applicable)."""
    if plan.discovery is None or plan.features or not isinstance(signatures, list):
        return None
    try:
        specs = [(str(s[0]), FeatureKind(s[1])) for s in signatures]
    except (TypeError, ValueError, IndexError):
        return None
    return discovered(plan, specs) if specs else None


class AutoFeatures:
    """Discovery and unmonitored-name counting for the daemon's auto models."""

    def __init__(
        self,
        settings: Settings,
        runtimes: Mapping[str, ModelRuntime],
        previous: AutoFeatures | None = None,
    ) -> None:
        """Track the auto models of `runtimes`; keep `previous`'s counts of the same models."""
        event = settings.event
        self._reserved = frozenset(
            f for f in (event.timestamp_field, event.model_field, event.model_version_field) if f
        )
        self._event = event
        self._max_message_bytes = settings.kafka.max_message_bytes
        self.discovering: dict[str, FeatureDiscovery] = {}
        self.unmonitored: dict[str, UnmonitoredNames] = {}
        self.monitored: dict[str, frozenset[str]] = {}
        for name, runtime in runtimes.items():
            plan = runtime.plan
            if plan.discovery is None:
                continue
            kept = previous.unmonitored.get(name) if previous is not None else None
            self.unmonitored[name] = kept if kept is not None else UnmonitoredNames()
            if runtime.specs:
                self.monitored[name] = frozenset(s.name for s in runtime.specs)
            elif previous is not None and name in previous.discovering:
                self.discovering[name] = previous.discovering[name]
            else:
                self.discovering[name] = FeatureDiscovery(
                    plan.reference.warmup_events,
                    plan.discovery.max_features,
                    plan.discovery.exclude,
                )

    @property
    def active(self) -> bool:
        """True when at least one model has `features: auto`."""
        return bool(self.unmonitored)

    def observe(self, messages: Sequence[RawMessage]) -> dict[str, tuple[FeatureSpec, ...]]:
        """Feed one batch; the specs of every model whose discovery finished in it."""
        event = self._event
        finished: dict[str, tuple[FeatureSpec, ...]] = {}
        for model, features in feature_objects(
            (m.value for m in messages),
            model_field=event.model_field,
            features_path=event.features_path,
            reserved=self._reserved,
            default_model=event.default_model,
            wanted=frozenset(self.unmonitored),
            max_array_elements=event.max_array_elements,
            max_message_bytes=self._max_message_bytes,
        ):
            discovery = self.discovering.get(model)
            if discovery is not None:
                table = discovery.names
                new = [name for name in features if name not in table]
                discovery.observe((features,))
                if new:  # names not in the table (never seen, or evicted since)
                    self.unmonitored[model].add(new)
                if discovery.done:
                    finished[model] = self._finish(model, discovery)
                continue
            unknown = features.keys() - self.monitored[model]
            if unknown:
                self.unmonitored[model].add(unknown)
        return finished

    def _finish(self, model: str, discovery: FeatureDiscovery) -> tuple[FeatureSpec, ...]:
        """Freeze the discovery's choice; its names are no longer unmonitored."""
        del self.discovering[model]
        specs = discovery.choose()
        self.monitored[model] = frozenset(s.name for s in specs)
        self.unmonitored[model].discard(self.monitored[model])
        return specs

    def status(self, model: str) -> DiscoveryStatus | None:
        """The discovery view of one auto model (None for a listed feature set)."""
        names = self.unmonitored.get(model)
        if names is None:
            return None
        discovery = self.discovering.get(model)
        return DiscoveryStatus(
            discovering=discovery is not None,
            discovery_events=discovery.events if discovery is not None else 0,
            monitored=len(self.monitored.get(model, ())),
            unmonitored=names.count,
            unmonitored_saturated=names.saturated,
            unmonitored_names=tuple(names.listed),
        )

    def annotate(self, evaluation: ModelEvaluation) -> ModelEvaluation:
        """`evaluation` with its model's `DiscoveryStatus` (unchanged for a listed model)."""
        status = self.status(evaluation.model)
        return evaluation if status is None else dataclasses.replace(evaluation, discovery=status)
