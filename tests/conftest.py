"""Shared fixtures.

Broker fixtures: one real tansu broker per session (tests/support/broker.py). Every test that
uses `broker`, `topic` or `make_topic` is marked `broker` automatically, so
`pytest -m "not broker"` skips them. Tests that stop or restart a broker must start their own
`TansuBroker` instead of touching the shared one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.support.broker import TansuBroker

_BROKER_FIXTURES = frozenset({"broker", "topic", "make_topic"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a broker fixture with `@pytest.mark.broker`."""
    for item in items:
        if _BROKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    """A tansu broker on a free 127.0.0.1 port, shared by the whole session."""
    with TansuBroker() as b:
        yield b


@pytest.fixture
def make_topic(broker: TansuBroker) -> Callable[[int], str]:
    """Factory: create a fresh uniquely named topic with N partitions and return its name."""

    def make(partitions: int = 1) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        broker.create_topic(name, partitions=partitions)
        return name

    return make


@pytest.fixture
def topic(make_topic: Callable[[int], str]) -> str:
    """A fresh single-partition topic on the shared broker."""
    return make_topic(1)
