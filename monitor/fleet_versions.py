"""`reference.follow_model_version` in a fleet: one replica decides, the registry carries it.

On a single node `RegistryReferences` switches a following model's reference on its own when
one model version carries at least half of the current window (rule 2 of
monitor/reference_registry.py). In a fleet each replica would judge the versions of its own
partitions and switch when it alone saw fit, so the replicas would hold different references
and count into different windows. Instead (docs/fleet.md, "Following model versions"):

- every replica follows the registry's activation only (`RegistryReferences.follow_locally`
  is False), and still starts a shadow window for each version it sees that has a registered
  profile, so a switch finds the new reference's window pre-warmed (the fleet's shadow rings
  add up every replica's shadow counts);
- the fleet's leader (the snapshotter, one replica at a time) judges the versions in the
  current window as it counts them (its own partitions: a sample of the stream, the whole of
  it with one replica) and writes each switch to the registry as an activation with cause
  `model_version` (`version_switch`, then `monitor.registry.activate`, so the previous
  reference is one rollback away).

`version_switch` keeps the single node's rules: nothing while no version carries half of the
window (no flapping on a mixed stream), nothing when the registry's active profile is already
fitted for the dominant version (an operator's choice among that version's profiles stands),
else the newest profile registered for it.
"""

from __future__ import annotations

from monitor.follow import dominant
from monitor.registry import RegisteredProfile
from monitor.registry_follow import RegistryView
from monitor.runtime import ModelRuntime

__all__ = ["version_switch"]


def version_switch(runtime: ModelRuntime, view: RegistryView) -> RegisteredProfile | None:
    """The profile the registry should activate for `runtime`'s model now (module docstring),
    or None."""
    if not runtime.plan.reference.follow_model_version or runtime.profile is None:
        return None
    active = view.active(runtime.name)
    current = active.profile.model_version if active is not None else ""
    version = dominant(runtime.version_shares(), current=current)
    if version is None or version == current:
        return None
    followed = view.newest_for_version(runtime.name, version)
    if followed is None:
        return None
    if active is not None and followed.profile.reference_id == active.profile.reference_id:
        return None
    return followed
