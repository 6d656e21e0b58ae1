"""A token-bucket sampler that bounds how often something is logged (stdlib only)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RateLimitedSampler"]

_SECONDS_PER_MINUTE = 60.0
_EPSILON = 1e-9


class RateLimitedSampler:
    """Allow at most `per_minute` events per minute: a token bucket with an injected clock.

    The bucket holds up to `per_minute` tokens and starts full, so a burst of `per_minute`
    calls to `allow()` succeeds at once. Tokens refill continuously at `per_minute / 60` per
    second of `clock()` time. `allow()` spends one token or, when none is left, counts the
    call as suppressed. `per_minute = 0` never allows. Not thread-safe: one owner (the loop).

    Internally a token is 60 units and one second of clock time adds `per_minute` units, so
    whole-second refills are exact in floating point.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        """Create a full bucket; `per_minute` must be >= 0."""
        if per_minute < 0:
            raise ValueError(f"per_minute must be >= 0, got {per_minute}")
        self._per_minute = per_minute
        self._clock = clock
        self._capacity = per_minute * _SECONDS_PER_MINUTE
        self._units = self._capacity
        self._last = clock()
        self._suppressed = 0

    @property
    def per_minute(self) -> int:
        """The configured rate (and burst size)."""
        return self._per_minute

    def allow(self) -> bool:
        """Spend a token if one is available; otherwise count a suppression and return False."""
        now = self._clock()
        elapsed = now - self._last
        if elapsed > 0:
            self._units = min(self._capacity, self._units + elapsed * self._per_minute)
            self._last = now
        if self._units + _EPSILON >= _SECONDS_PER_MINUTE:
            self._units = max(0.0, self._units - _SECONDS_PER_MINUTE)
            return True
        self._suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """Number of calls refused since the previous `take_suppressed()` (then reset to 0)."""
        count, self._suppressed = self._suppressed, 0
        return count
