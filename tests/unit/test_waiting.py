"""tests.support.waiting: polling with deadlines instead of fixed sleeps."""

from __future__ import annotations

import time

import pytest

from tests.support.waiting import GiveUpError, holds_for, sleep_until, wait_until


def test_wait_until_returns_the_first_truthy_value() -> None:
    """The predicate's first truthy value is returned, after the falsy ones."""
    values = iter([None, 0, "", "ready"])
    assert wait_until(lambda: next(values), 5, 0.001) == "ready"


def test_wait_until_treats_exceptions_as_not_yet() -> None:
    """A raising predicate (even an AssertionError) is polled again until it succeeds."""
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionRefusedError("starting")
        if calls["n"] == 2:
            raise AssertionError("no series yet")
        return calls["n"]

    assert wait_until(flaky, 5, 0.001) == 3


def test_wait_until_fails_with_message_last_error_and_diagnostics() -> None:
    """On timeout the error names the message, the last exception and on_timeout's text."""

    def never() -> bool:
        raise KeyError("missing")

    with pytest.raises(AssertionError) as failure:
        wait_until(never, 0.05, 0.01, "the thing", on_timeout=lambda: "log tail")
    text = str(failure.value)
    assert "waiting for the thing" in text
    assert "KeyError('missing')" in text
    assert text.endswith("log tail")


def test_give_up_error_stops_waiting_at_once() -> None:
    """GiveUpError from the predicate propagates on the first call, long before the timeout."""

    def dead() -> bool:
        raise GiveUpError("the process exited")

    started = time.monotonic()
    with pytest.raises(GiveUpError, match="exited"):
        wait_until(dead, 30, 0.01)
    assert time.monotonic() - started < 1.0


def test_holds_for_checks_until_the_end_of_the_duration() -> None:
    """A predicate that keeps holding is checked repeatedly for the whole duration."""
    calls = {"n": 0}

    def counting() -> bool:
        calls["n"] += 1
        return True

    started = time.monotonic()
    holds_for(counting, 0.2, 0.02)
    assert time.monotonic() - started >= 0.2
    assert calls["n"] >= 5


def test_holds_for_fails_at_the_first_falsy_check() -> None:
    """The first falsy result fails at once with the message."""
    values = iter([True, True, False, True])
    started = time.monotonic()
    with pytest.raises(AssertionError, match="quiet stopped holding"):
        holds_for(lambda: next(values), 10, 0.01, "quiet")
    assert time.monotonic() - started < 1.0


def test_holds_for_fails_when_the_predicate_raises() -> None:
    """An exception while checking is a failure, not a pass."""
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        holds_for(lambda: 1 / 0, 1, 0.01)


def test_sleep_until_a_past_deadline_returns_at_once() -> None:
    """A deadline in the past does not sleep; a near one sleeps until it."""
    started = time.monotonic()
    sleep_until(started - 10)
    assert time.monotonic() - started < 0.05
    sleep_until(started + 0.05)
    assert time.monotonic() >= started + 0.05
