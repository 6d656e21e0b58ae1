"""`follow_model_version` in a fleet: only `version_switch` decides (the leader writes it to
the registry), and a fleet's RegistryReferences follows the registry's activation alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.fleet_versions import version_switch
from monitor.reference_registry import RegistryReferences
from tests.unit.test_reference_registry import START, _columns, _profile, _Registry, _runtimes


def test_version_switch_follows_half_the_window_and_the_registry_s_own_version(
    tmp_path: Path,
) -> None:
    """No switch while v1 leads or no version holds half; v2's newest profile once v2 carries
    the window; none when the registry already has a v2 profile active (an operator's pick);
    a model that does not follow never switches."""
    runtimes = _runtimes(tmp_path, follow=True)
    references = RegistryReferences(runtimes, "refs", follow_locally=False)
    registry = _Registry()
    v1, v2, v2_newer = _profile(0.0, "v1", 1), _profile(1.0, "v2", 2), _profile(1.2, "v2", 3)
    other_v1, other_v2 = _profile(0.0, "v1", 11, "other"), _profile(1.0, "v2", 12, "other")
    for profile in (v1, v2, v2_newer, other_v1, other_v2):
        registry.push(profile)
    registry.activate("m", v1)
    registry.activate("other", other_v1)
    references.sync(registry.view(), START)
    runtime, rng = runtimes["m"], np.random.default_rng(4)
    runtime.ingest(_columns(rng, START, 400, "v1"))
    assert version_switch(runtime, registry.view()) is None
    runtime.ingest(_columns(rng, START + 60, 400, "v2"))  # half and half: v1 (the current) stays
    assert version_switch(runtime, registry.view()) is None
    runtime.ingest(_columns(rng, START + 120, 400, "v2"))
    references.sync(registry.view(), START + 130)
    assert runtime.reference_id == v1.reference_id, "a fleet replica never switches on its own"
    followed = version_switch(runtime, registry.view())
    assert followed is not None and followed.profile.reference_id == v2_newer.reference_id
    registry.activate("m", v2)  # an operator's choice among v2's profiles stands
    assert version_switch(runtime, registry.view()) is None
    other = runtimes["other"]
    other.ingest(_columns(rng, START + 120, 400, "v2"))
    assert version_switch(other, registry.view()) is None


def test_a_replica_that_has_seen_no_v2_event_keeps_v1_as_a_shadow_when_the_registry_switches(
    tmp_path: Path,
) -> None:
    """A replica whose partitions carried only v1 when the leader's switch to v2 arrives
    starts v2's window without a shadow of it, yet holds v1 as a shadow from that sync on, so
    v1's ring keeps every event the replica counts (here: all of the next v2 slice)."""
    runtimes = _runtimes(tmp_path, follow=True)
    references = RegistryReferences(runtimes, "refs", follow_locally=False)
    registry = _Registry()
    v1, v2 = _profile(0.0, "v1", 1), _profile(1.0, "v2", 2)
    registry.push(v1)
    registry.push(v2)
    registry.activate("m", v1)
    references.sync(registry.view(), START)
    runtime, rng = runtimes["m"], np.random.default_rng(5)
    runtime.ingest(_columns(rng, START, 300, "v1"))
    registry.activate("m", v2)  # the leader's switch, decided on its own partitions
    references.sync(registry.view(), START + 40)
    assert runtime.reference_id == v2.reference_id
    assert list(runtime.shadows.windows) == [v1.reference_id]
    runtime.ingest(_columns(rng, START + 40, 750, "v2"))
    assert runtime.shadows.windows[v1.reference_id].events == 750
