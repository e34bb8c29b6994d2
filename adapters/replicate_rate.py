"""A token bucket for API calls, shared by every campaign on one event loop.

Callers take a token before each request; the bucket hands them out at
`rate_per_min` with a burst of half a second's worth, in arrival order. The
burst is kept below the API's own (about a second's worth) on purpose: requests
released exactly at the limit arrive with network jitter, and the API's unused
burst is what absorbs it instead of answering 429.
When the API answers 429 anyway, `pause()` holds every caller back until the
limit resets, so one throttled request does not turn into a burst of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

_EPSILON = 1e-6
BURST_S = 0.5  # seconds' worth of tokens the bucket may hand out at once
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """Asynchronous token bucket with FIFO waiters and a shared pause."""

    def __init__(
        self,
        rate_per_min: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,  # asyncio.sleep; tests pass one that advances `clock`
    ) -> None:
        if rate_per_min <= 0:
            raise ValueError("rate_per_min must be above 0")
        self.rate_per_s = rate_per_min / 60.0
        self.capacity = max(1.0, burst if burst is not None else self.rate_per_s * BURST_S)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()  # FIFO: waiters are served in arrival order
        self.taken = 0

    async def take(self) -> None:
        """Wait for one token."""
        async with self._lock:
            while True:
                wait = self._wait_s()
                if wait <= 0:
                    self._tokens -= 1.0
                    self.taken += 1
                    return
                await (self._sleep or asyncio.sleep)(wait)

    def pause(self, seconds: float) -> None:
        """Hold everyone back for `seconds` (the API said the limit is exhausted)."""
        now = self._clock()
        self._paused_until = max(self._paused_until, now + seconds)
        self._refill(now)
        self._tokens = min(self._tokens, 0.0)

    def _wait_s(self) -> float:
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        self._refill(now)
        if self._tokens >= 1.0 - _EPSILON:  # float sums of refills fall a hair short
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s

    def _refill(self, now: float) -> None:
        start = max(self._stamp, self._paused_until) if now >= self._paused_until else now
        self._tokens = min(self.capacity, self._tokens + (now - start) * self.rate_per_s)
        self._stamp = now
