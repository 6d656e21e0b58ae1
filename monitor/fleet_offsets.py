"""Which consumer-group offsets a fleet replica may commit, for lag tooling (pure).

In a fleet (`state.backend: kafka`) the chain heads in the state topic are the truth: a
replica reads its partitions from there, never from the group's committed offsets. The group
offsets only feed users' lag tooling (kafka-consumer-groups, Burrow, exporters), so a replica
commits, for each source partition p it owns, the offset its own last accepted commit ended
at, i.e. the fold's `next[p]` (the offset after the last event counted into the global
window), and only when the fold shows:

- the commit was this replica's and accepted (`FoldOutcome` of kind commit, result accepted,
  member = this replica), and
- p's head is still this replica's claim of that epoch, ending exactly there
  (`head.epoch == epoch`, `head.member == member`, `head.next == to`).

So a committed offset is never ahead of what counts, and never behind what this replica
committed before (an offset is committed only when it exceeds the last one committed for p).
A zombie (a paused replica whose fold has not read the new owner's claim yet) may still pass
these checks; its commit is refused by the group coordinator, which fences commits of a stale
generation (docs/fleet.md, "Group offsets").
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.errors import CommitResult
from monitor.fleet import FleetFold, FoldOutcome


class GroupOffsets:
    """A replica's own accepted chain heads and the group offsets it has committed."""

    def __init__(self, member: str) -> None:
        self.member = member
        self._accepted: dict[str, tuple[int, int]] = {}
        self._committed: dict[str, int] = {}

    def folded(self, outcome: FoldOutcome) -> None:
        """Note one folded record: an accepted commit of this replica moves its head."""
        if (
            outcome.kind == "commit"
            and outcome.result is CommitResult.ACCEPTED
            and outcome.member == self.member
        ):
            self._accepted[outcome.source] = (outcome.epoch, outcome.to_offset)

    def due(self, fold: FleetFold, owned: Mapping[str, int]) -> dict[str, int]:
        """The offset to commit per owned source (`owned`: source -> epoch of this replica's
        claim): its own accepted head, where the fold's head is still that claim's and ends
        there, and it exceeds the offset last committed for the source."""
        out: dict[str, int] = {}
        for source, epoch in owned.items():
            accepted = self._accepted.get(source)
            head = fold.heads.get(source)
            if accepted is None or head is None or accepted[0] != epoch:
                continue
            if head.epoch != epoch or head.member != self.member or head.next != accepted[1]:
                continue
            if accepted[1] > self._committed.get(source, -1):
                out[source] = accepted[1]
        return out

    def committed(self, offsets: Mapping[str, int]) -> None:
        """Record offsets the group coordinator acknowledged."""
        for source, offset in offsets.items():
            self._committed[source] = max(offset, self._committed.get(source, -1))
