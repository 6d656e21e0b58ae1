"""The group offsets a fleet replica may commit (`monitor.fleet_offsets`), on the real fold."""

from __future__ import annotations

import numpy as np

from monitor.errors import CommitResult
from monitor.fleet import FleetFold
from monitor.fleet_offsets import GroupOffsets
from monitor.fleet_records import encode_claim, encode_commit, model_increment
from monitor.window import EventTimeWindow

SOURCE = "events:0"
SHAPE = (2, 8)


def _fold() -> FleetFold:
    fold = FleetFold()
    fold.declare("m", EventTimeWindow((2, 1), 60.0, 600.0, 60.0, 300.0))
    return fold


def _apply(fold: FleetFold, records: list[tuple[bytes, bytes]]) -> str:
    """Fold `records`; the last one's result."""
    result = ""
    for _, value in records:
        result = str(fold.apply(value).result)
    return result


def _commit(member: str, epoch: int, start: int, end: int) -> list[tuple[bytes, bytes]]:
    counts = {0: np.ones(SHAPE, dtype=np.int64)}
    return encode_commit(
        SOURCE, epoch, member, start, end, [model_increment("m", SHAPE, 1.0, counts)]
    )


def test_an_accepted_own_commit_is_due_once_and_then_only_when_it_moves() -> None:
    """The replica's accepted head is due, not again after it was committed, and the next one is."""
    fold, a = _fold(), GroupOffsets("a")
    _apply(fold, [encode_claim(SOURCE, 1, "a")])
    assert a.due(fold, {SOURCE: 1}) == {}, "a claim alone commits nothing"
    assert _apply(fold, _commit("a", 1, 0, 10)) == str(CommitResult.ACCEPTED)
    assert a.due(fold, {SOURCE: 1}) == {SOURCE: 10}
    a.committed({SOURCE: 10})
    assert a.due(fold, {SOURCE: 1}) == {}
    _apply(fold, _commit("a", 1, 10, 25))
    assert a.due(fold, {SOURCE: 1}) == {SOURCE: 25}


def test_a_zombie_behind_a_new_claim_or_refused_commits_is_never_due() -> None:
    """Once another replica claimed the partition, nothing is due to the old owner (its stale
    commit changes nothing); the new owner's heads are due to the new owner only."""
    fold, a, b = _fold(), GroupOffsets("a"), GroupOffsets("b")
    _apply(fold, [encode_claim(SOURCE, 1, "a"), *_commit("a", 1, 0, 10)])
    _apply(fold, [encode_claim(SOURCE, 2, "b")])
    assert a.due(fold, {SOURCE: 1}) == {}, "the zombie still believes it owns epoch 1"
    assert _apply(fold, _commit("a", 1, 10, 40)) == str(CommitResult.STALE_EPOCH)
    assert a.due(fold, {SOURCE: 1}) == {}
    assert b.due(fold, {SOURCE: 2}) == {SOURCE: 10}, "b's claim starts at a's last head"
    _apply(fold, _commit("b", 2, 10, 30))
    assert b.due(fold, {SOURCE: 2}) == {SOURCE: 30}
    assert a.due(fold, {SOURCE: 1}) == {}


def test_a_refused_gap_and_another_members_commit_are_not_noted() -> None:
    """A commit refused as a gap moves nothing, and another member's head is not due."""
    fold, a = _fold(), GroupOffsets("a")
    _apply(fold, [encode_claim(SOURCE, 1, "a"), *_commit("a", 1, 0, 10)])
    a.committed({SOURCE: 10})
    assert _apply(fold, _commit("a", 1, 15, 20)) == str(CommitResult.GAP)
    assert a.due(fold, {SOURCE: 1}) == {}
    assert GroupOffsets("c").due(fold, {SOURCE: 1}) == {}, "another member's head"


def test_a_reclaimed_partition_commits_forward_only() -> None:
    """A replica that claims its partition again commits the new head, never an older one."""
    fold, a = _fold(), GroupOffsets("a")
    _apply(fold, [encode_claim(SOURCE, 1, "a"), *_commit("a", 1, 0, 10)])
    a.committed({SOURCE: 10})
    _apply(fold, [encode_claim(SOURCE, 2, "a")])
    assert a.due(fold, {SOURCE: 2}) == {}, "the head of the claim of epoch 2 was committed"
    _apply(fold, _commit("a", 2, 10, 18))
    assert a.due(fold, {SOURCE: 2}) == {SOURCE: 18}
    assert a.due(fold, {SOURCE: 1}) == {}, "the old epoch's head is not due"


def test_a_head_not_yet_committed_when_the_partition_was_reclaimed_is_still_due() -> None:
    """A head folded but not committed to the group before a rebalance gave the partition
    back to the same replica is due under the new claim, with no new commit (regression: the
    group offset stayed behind for good when the partition received no more records)."""
    fold, a = _fold(), GroupOffsets("a")
    _apply(fold, [encode_claim(SOURCE, 1, "a"), *_commit("a", 1, 0, 10)])
    a.committed({SOURCE: 10})
    _apply(fold, _commit("a", 1, 10, 25))  # folded; the rebalance came before the group commit
    _apply(fold, [encode_claim(SOURCE, 2, "a")])
    assert a.due(fold, {SOURCE: 2}) == {SOURCE: 25}
