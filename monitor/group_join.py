"""A guard against kafka-python 3.0.12's stranded group join (docs/fleet.md, known issues).

kafka-python drives a group (re)join as one JoinGroup -> SyncGroup task on its IO thread. A
`poll()` whose timeout expires while that task is in flight leaves it for the next poll, which
awaits it inside `join_group_async`'s loop `while coordinator.need_rejoin(): ...`. The
consumer coordinator's `need_rejoin()` is true while its *assignment snapshot* (the partition
counts the group leader assigned from) differs from its *metadata snapshot*, and the leader
sets the assignment snapshot inside that very task, when it computes the assignment. So when a
rejoin was caused by a metadata change (the usual start: a first join before the consumer's
metadata knows the subscribed topic assigns nothing, the topic's partitions then arrive), the
leader's own assignment turns `need_rejoin()` false while the task is still in flight; a poll
that timed out just then is followed by polls that never await the task. The member never
applies its assignment, its heartbeat stays off (it is off during a join), the coordinator
drops it after `session_timeout_ms`, and nothing makes it join again: a replica that owns
nothing for good. Measured on Apache Kafka 4.1: a single consumer polling with a 5 ms timeout
was left so in 7 of 8 starts; the daemon, whose poll timeouts shrink towards each evaluation,
in 4 of 12 two-replica starts.

`guard_group_join(consumer)` makes the coordinator's `need_rejoin()` also true while a join
task exists (in flight, or finished and not yet taken up by a poll). That is what "a rejoin is
needed" means: the group is not joined until the task's result has been applied. The next
poll then awaits the task (or, if it already finished, starts a fresh join, which the
coordinator answers with the current or a new generation) and applies the assignment.

The guard touches two private attributes (`_coordinator`, `_join_task`) of the kafka-python
versions the project allows (`>=3.0.12,<4`); when they are missing, it does nothing and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["guard_group_join"]

log = logging.getLogger(__name__)

#: Marks a guarded `need_rejoin` so a consumer is never wrapped twice.
_GUARD_MARK = "_driftmon_join_guard"


def guard_group_join(consumer: Any) -> bool:
    """Wrap `consumer`'s coordinator so `need_rejoin()` is also true while a join task exists.

    Returns True when the consumer is guarded (now or already), False when this kafka-python
    has no coordinator with a join task to look at (then logs a warning and changes nothing).
    """
    coordinator = getattr(consumer, "_coordinator", None)
    original: Callable[[], Any] | None = getattr(coordinator, "need_rejoin", None)
    if coordinator is None or original is None or not hasattr(coordinator, "_join_task"):
        log.warning(
            "kafka-python has no coordinator join task to guard; a group member may be left "
            "without partitions after a rebalance (docs/fleet.md, known issues)"
        )
        return False
    if getattr(original, _GUARD_MARK, False):
        return True

    def need_rejoin() -> bool:
        """The library's answer, or True while a JoinGroup/SyncGroup task is not applied."""
        return bool(original()) or coordinator._join_task is not None

    setattr(need_rejoin, _GUARD_MARK, True)
    coordinator.need_rejoin = need_rejoin
    return True
