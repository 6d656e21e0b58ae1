"""guard_group_join: the wrapped need_rejoin (the real consumer: test_fleet_harness.py)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from monitor.group_join import guard_group_join


class _Coordinator:
    """The two attributes of kafka-python's ConsumerCoordinator the guard reads."""

    def __init__(self, rejoin: bool) -> None:
        self.rejoin = rejoin
        self._join_task: Any = None
        self.calls = 0

    def need_rejoin(self) -> bool:
        self.calls += 1
        return self.rejoin


def _guarded(rejoin: bool) -> tuple[Any, _Coordinator]:
    coordinator = _Coordinator(rejoin)
    consumer = SimpleNamespace(_coordinator=coordinator)
    assert guard_group_join(consumer)
    return consumer, coordinator


def test_need_rejoin_is_true_while_a_join_task_is_not_applied() -> None:
    """A pending join task makes need_rejoin true although the library's answer is false."""
    _, coordinator = _guarded(rejoin=False)
    assert coordinator.need_rejoin() is False
    coordinator._join_task = object()
    assert coordinator.need_rejoin() is True
    coordinator._join_task = None
    assert coordinator.need_rejoin() is False


def test_the_library_answer_still_counts_without_a_join_task() -> None:
    """need_rejoin stays true when the library asks for a rejoin and no task exists."""
    _, coordinator = _guarded(rejoin=True)
    assert coordinator.need_rejoin() is True
    assert coordinator.calls == 1


def test_guarding_twice_wraps_once() -> None:
    """A second guard of the same consumer keeps one wrapper around the library's method."""
    consumer, coordinator = _guarded(rejoin=False)
    wrapper = coordinator.need_rejoin
    assert guard_group_join(consumer)
    assert coordinator.need_rejoin is wrapper
    coordinator.need_rejoin()
    assert coordinator.calls == 1


@pytest.mark.parametrize(
    "consumer",
    [SimpleNamespace(), SimpleNamespace(_coordinator=SimpleNamespace(need_rejoin=lambda: False))],
    ids=["no coordinator", "no join task"],
)
def test_a_client_without_a_join_task_is_left_alone_with_a_warning(
    consumer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A kafka-python without the attributes is not touched, and the log says so once."""
    with caplog.at_level(logging.WARNING, logger="monitor.group_join"):
        assert guard_group_join(consumer) is False
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "known issues" in caplog.records[0].getMessage()
