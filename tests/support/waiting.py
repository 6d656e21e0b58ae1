"""Waiting in tests without fixed sleeps: poll a condition against a deadline.

- `wait_until(predicate, timeout, interval, message)`: until the condition holds (returns
  the predicate's truthy value), failing with `message` after `timeout` seconds.
- `holds_for(predicate, duration, interval, message)`: the condition holds at every check
  for `duration` seconds (a negative check: "nothing unexpected shows up"), failing at the
  first check that does not hold.
- `sleep_until(deadline)`: for the few waits on a point in time, not on a condition (e.g.
  aligning with an Alertmanager flush tick); `deadline` is on the `time.monotonic()` clock.

In `wait_until` an exception raised by the predicate counts as "not yet" (a server still
starting, a connection refused, a series not exported yet), except `GiveUpError`: a predicate
raises it for a verdict that waiting cannot change ("the daemon exited"), so a dead process
fails the test at once instead of after the timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class GiveUpError(AssertionError):
    """Raised by a predicate to stop waiting and fail at once (e.g. the process died)."""


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    interval: float = 0.1,
    message: str = "condition",
    *,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Call `predicate` every `interval` s until it returns a truthy value, which is returned.

    After `timeout` s raises AssertionError naming `message`, the last exception of the
    predicate (if any) and the text of `on_timeout()` (diagnostics such as a log tail).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
        except GiveUpError:
            raise
        except Exception as exc:  # not ready yet: keep polling
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            extra = f"\nlast error: {last_error!r}" if last_error is not None else ""
            if on_timeout is not None:
                extra += "\n" + on_timeout()
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}{extra}")
        time.sleep(interval)


def holds_for(
    predicate: Callable[[], object],
    duration: float,
    interval: float = 0.1,
    message: str = "condition",
) -> None:
    """Check `predicate` every `interval` s for `duration` s (first and last check included).

    Raises AssertionError naming `message` at the first check that returns a falsy value or
    raises; returns None once `duration` has passed with every check truthy.
    """
    deadline = time.monotonic() + duration
    while True:
        try:
            value = predicate()
        except GiveUpError:
            raise
        except Exception as exc:
            raise AssertionError(f"{message} stopped holding: {exc!r}") from exc
        if not value:
            raise AssertionError(f"{message} stopped holding (got {value!r})")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(interval, remaining))


def sleep_until(deadline: float) -> None:
    """Sleep until `time.monotonic()` reaches `deadline` (at once if it already has)."""
    time.sleep(max(0.0, deadline - time.monotonic()))
