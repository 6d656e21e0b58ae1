"""Which consumer-group offsets a fleet replica may commit, for lag tooling (pure).

In a fleet (`state.backend: kafka`) the chain heads in the state topic are the truth: a
replica reads its partitions from there, never from the group's committed offsets. The group
offsets only feed users' lag tooling (kafka-consumer-groups, Burrow, exporters), so a replica
commits, for each source partition p it owns, the fold's chain head `next[p]` (the offset
after the last event counted into the global window: the end of the last accepted commit,
its own or, right after its claim, the previous owner's), and only while the fold shows p's
head is this replica's claim of the epoch it owns (`head.epoch == epoch`,
`head.member == member`).

So a committed offset is never ahead of what counts, and never behind what this replica
committed before (an offset is committed only when it exceeds the last one committed for p).
A zombie (a paused replica whose fold has not read the new owner's claim yet) may still pass
these checks; its commit is refused by the group coordinator, which fences commits of a stale
generation (docs/fleet.md, "Group offsets").
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.fleet import FleetFold


class GroupOffsets:
    """The group offsets a replica has committed, and which are due."""

    def __init__(self, member: str) -> None:
        self.member = member
        self._committed: dict[str, int] = {}

    def due(self, fold: FleetFold, owned: Mapping[str, int]) -> dict[str, int]:
        """The offset to commit per owned source (`owned`: source -> epoch of this replica's
        claim): the fold's chain head, where the head is still that claim's and it exceeds
        the offset last committed for the source."""
        out: dict[str, int] = {}
        for source, epoch in owned.items():
            head = fold.heads.get(source)
            if head is None or head.next is None:
                continue
            if head.epoch != epoch or head.member != self.member:
                continue
            if head.next > self._committed.get(source, -1):
                out[source] = head.next
        return out

    def committed(self, offsets: Mapping[str, int]) -> None:
        """Record offsets the group coordinator acknowledged."""
        for source, offset in offsets.items():
            self._committed[source] = max(offset, self._committed.get(source, -1))
