"""A token bucket for API calls, shared by every campaign on one event loop.

Callers take a token before each request. The bucket refills at
`rate_per_min` and holds up to `burst` tokens: Replicate allows short bursts
above its per-minute limits, so a campaign's first wave of creates goes out
at once instead of being spread over seconds. Waiters are served by
priority (lower first; equal priorities in arrival order), so a poll of a
prediction that is nearly done goes before one of a prediction that just
started. When the API answers 429 anyway, `pause()` holds every caller back
until the limit resets, so one throttled request does not turn into a burst.

A caller may ask to be told its place in line while it waits (`on_place`,
e.g. a step's 'waiting for Replicate's rate limit (2nd in line)'): after the
line changes, one pass per event-loop turn sorts the waiters (O(n log n))
and wakes only those whose shown place changed (`core.scheduler.shown_place`).
A head of the line that waits less than SHOW_WAIT_S says nothing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable

from core.scheduler import OnPlace, shown_place

_EPSILON = 1e-6
SHOW_WAIT_S = 0.5  # the head of the line says it waits only for a wait at least this long
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
        self._places: dict[Ticket, list[int]] = {}  # watched tickets: [shown, reported] places
        self._pass_due = False
        self.taken = 0

    @property
    def waiting(self) -> int:
        """Callers waiting for a token right now."""
        return len(self._queue)

    async def take(self, priority: float = 0.0, on_place: OnPlace | None = None) -> None:
        """Wait for one token; lower `priority` values are served first.

        `on_place(place)` is awaited while the caller waits, whenever its shown
        place in line changes (1 = next), and with 0 once it got its token
        after having been told a place.
        """
        ticket = (priority, next(self._seq))
        heapq.heappush(self._queue, ticket)
        place = None
        if on_place is not None:
            place = self._places[ticket] = [0, 0]
        self._moved()
        told = False
        try:
            while True:
                head = self._queue[0] == ticket and not self._sleeping
                wait = self._wait_s() if head else 0.0
                if head and wait <= 0:
                    self._tokens -= 1.0
                    self.taken += 1
                    break
                if place is not None and on_place is not None:
                    if head and wait >= SHOW_WAIT_S:
                        place[0] = 1
                    if place[0] and place[0] != place[1] and (not head or wait >= SHOW_WAIT_S):
                        place[1] = place[0]
                        told = True
                        await on_place(place[0])
                        continue
                if head:
                    await self._nap(wait)
                else:
                    await self._my_turn(ticket)
        finally:
            self._leave(ticket)
        if told and on_place is not None:
            await on_place(0)

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
        self._places.pop(ticket, None)
        if ticket in self._queue:
            self._queue.remove(ticket)
            heapq.heapify(self._queue)
        self._wake_head()
        self._moved()

    def _moved(self) -> None:
        """The line changed: recompute the watched places once, on the next loop turn."""
        if self._places and not self._pass_due:
            self._pass_due = True
            asyncio.get_running_loop().call_soon(self._reposition)

    def _reposition(self) -> None:
        self._pass_due = False
        if not self._places:
            return
        for rank, ticket in enumerate(sorted(self._queue), 1):
            place = self._places.get(ticket)
            if place is not None and place[0] != (shown := shown_place(rank)):
                place[0] = shown
                self._turns.setdefault(ticket, asyncio.Event()).set()  # it says so, then waits

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
