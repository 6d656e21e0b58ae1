"""The registry follower thread, pre-warm records from arbitrary input, and version shares
against a direct count."""

from __future__ import annotations

import threading
import time

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.follow import VersionShares
from monitor.registry import RegistryTable, Rejected
from monitor.registry_follow import RegistryFollower
from monitor.registry_log import RegistryLog
from tests.support.broker import free_port

_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"v": st.sampled_from([1, 2, "1"]), "kind": st.just("prewarm")},
        optional={
            "model": _LEAF,
            "reference_ids": st.one_of(_LEAF, st.lists(_LEAF, max_size=4)),
            "at": _LEAF,
            "by": _LEAF,
            "extra": _LEAF,
        },
    )
)
def test_arbitrary_prewarm_maps_never_raise_and_never_register(fields: dict[str, object]) -> None:
    """A pre-warm record with arbitrary fields never raises and, naming no registered
    profile, never enters the table."""
    table = RegistryTable()
    outcome = table.apply(msgspec.msgpack.encode(fields))
    assert isinstance(outcome, Rejected) or fields.get("reference_ids") == []
    assert all(not r.reference_ids for r in table.prewarm.values())


def test_an_unreachable_registry_is_retried_in_the_background_and_stops_cleanly() -> None:
    """With no broker, the follower reports why in its view, keeps no table, and stops."""
    log = RegistryLog({"bootstrap_servers": f"127.0.0.1:{free_port()}"}, "refs", timeout_s=1.0)
    follower = RegistryFollower(log)
    started = time.monotonic()
    assert follower.start(wait_s=2.0) is False
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 10
    while not follower.view().error and time.monotonic() < deadline:
        time.sleep(0.1)
    view = follower.view()
    assert "cannot reach Kafka" in view.error and not view.loaded and not view.activations
    follower.stop(timeout_s=5)
    assert not any(t.name == "driftmon-registry" for t in threading.enumerate())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["", "v1", "v2", "v3"]), st.integers(0, 30)),
        min_size=1,
        max_size=200,
    ),
    st.integers(0, 30),
)
def test_version_shares_equal_a_direct_count(events: list[tuple[str, int]], first: int) -> None:
    """Each version's share over buckets >= first equals its count there over all events
    there, whatever the order the events arrive in."""
    shares = VersionShares()
    for version, bucket in events:
        shares.add(version, np.array([bucket], dtype=np.int64))
    kept = [(v, b) for v, b in events if b >= first]
    expected = {v: sum(1 for w, _ in kept if w == v) / len(kept) for v, _ in kept}
    got = shares.shares(first)
    assert got.keys() == expected.keys()
    for version, share in expected.items():
        assert abs(got[version] - share) < 1e-12
