"""A token bucket for API calls, shared by every campaign on one event loop.

Callers take a token before each request. The bucket refills at
`rate_per_min` and holds up to `burst` tokens: Replicate allows short bursts
above its per-minute limits, so a campaign's first wave of creates goes out
at once instead of being spread over seconds. Waiters are served by
priority (lower first; equal priorities in arrival order), so a poll of a
prediction that is nearly done goes before one of a prediction that just
started. When the API answers 429 anyway, `pause()` holds every caller back
until the limit resets, so one throttled request does not turn into a burst.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable

_EPSILON = 1e-6
BURST_S = 1.0  # seconds' worth of tokens the bucket may hand out at once, by default
Sleep = Callable[[float], Awaitable[None]]
Ticket = tuple[float, int]


class TokenBucket:
    """Asynchronous token bucket with prioritised waiters and a shared pause."""

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
        self._queue: list[Ticket] = []  # heap of waiting tickets; [0] is served next
        self._turns: dict[Ticket, asyncio.Event] = {}
        self._seq = itertools.count()
        self._sleeping = False  # the head waiter is sleeping until a token accrues
        self.taken = 0

    @property
    def waiting(self) -> int:
        """Callers waiting for a token right now."""
        return len(self._queue)

    async def take(self, priority: float = 0.0) -> None:
        """Wait for one token; lower `priority` values are served first."""
        ticket = (priority, next(self._seq))
        heapq.heappush(self._queue, ticket)
        try:
            while True:
                if self._queue[0] == ticket and not self._sleeping:
                    wait = self._wait_s()
                    if wait <= 0:
                        self._tokens -= 1.0
                        self.taken += 1
                        return
                    await self._nap(wait)
                else:
                    await self._my_turn(ticket)
        finally:
            self._leave(ticket)

    def pause(self, seconds: float) -> None:
        """Hold everyone back for `seconds` (the API said the limit is exhausted)."""
        now = self._clock()
        self._paused_until = max(self._paused_until, now + seconds)
        self._refill(now)
        self._tokens = min(self._tokens, 0.0)

    async def _nap(self, wait: float) -> None:
        self._sleeping = True
        try:
            await (self._sleep or asyncio.sleep)(wait)
        finally:
            self._sleeping = False
            self._wake_head()  # a more urgent caller may have arrived meanwhile

    async def _my_turn(self, ticket: Ticket) -> None:
        turn = self._turns.setdefault(ticket, asyncio.Event())
        await turn.wait()
        turn.clear()

    def _leave(self, ticket: Ticket) -> None:
        self._turns.pop(ticket, None)
        if ticket in self._queue:
            self._queue.remove(ticket)
            heapq.heapify(self._queue)
        self._wake_head()

    def _wake_head(self) -> None:
        if self._queue and (turn := self._turns.get(self._queue[0])) is not None:
            turn.set()

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
