"""Token buckets for API calls, shared by every campaign on one event loop.

Callers take a token before each request. A bucket refills at its rate and
holds up to `capacity` tokens: Replicate allows short bursts above its
per-minute limits. Waiters are grouped by key and served round-robin, key by
key (as `core.scheduler.FairLimiter` serves slots), and within a key by
priority (lower first; equal priorities in arrival order). When the API
answers 429, `pause()` holds every caller back until the limit resets, so one
throttled request does not turn into a burst.

`TokenBucket` (reads: polls, lists, uploads) has one key and a fixed rate, so
a poll of a prediction that is nearly done goes before one that just started.

`CreateBucket` (creates; the default `core.ports.CreateBudget`) is keyed by
campaign, so a 1-product campaign is not queued behind a 10-product one, and
it learns the account's real rate, between the ceiling REPLICATE_CREATE_RATE
(also the starting rate) and one a minute (AIMD, like TCP's congestion window):

1. The burst is earned: capacity starts at 1 and each accepted create adds 1,
   up to the ceiling's burst, while the rate is at the ceiling.
2. A 429 (`throttled`): capacity drops to 1, every key waits out the pause (the
   API's reset hint, capped), then one token goes at once (the account has
   reset). At the pause's end (when the 429s of creates sent with it are in)
   the rate drops to MARGIN x min(rate, estimate); estimate = the best k / (time
   from the k-th last create that got through, within WINDOW_S, to the pause's
   end): exact for an account with a burst of 1, whose next token comes 1/rate
   after the last create it took. Further 429s during the pause, or before any
   token since the last cut, only lengthen it (they were sent before the cut);
   with nothing through in the window there is nothing to learn from.
3. Each quiet period (QUIET_TOKENS tokens at the cut rate) without a 429 adds
   STEP x the cut rate (additive increase), up to the ceiling, where (1) applies.

So a small account sees a 429 or two at first contact, then one now and then
when a probe passes its rate, instead of one per create.

A caller may ask to be told its place in line while it waits (`on_place`,
e.g. a step's 'waiting for Replicate's rate limit (2nd in line)'): the place
is the position in serving order. After the line changes, one pass per
event-loop turn orders the waiters (O(n log n)) and wakes only those whose
shown place changed (`core.scheduler.shown_place`). A head of the line that
waits less than SHOW_WAIT_S says nothing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from core.scheduler import OnPlace, shown_place

log = logging.getLogger(__name__)

_EPSILON = 1e-6
SHOW_WAIT_S = 0.5  # the head of the line says it waits only for a wait at least this long
BURST_S = 1.0  # seconds' worth of tokens the bucket may hand out at once, by default
WINDOW_S = 60.0  # Replicate's limits are per minute: older creates say nothing about now
MARGIN = 0.9  # a cut settles this far under the rate the account let through
QUIET_TOKENS = 10  # a quiet period: this many tokens' time at the cut rate, without a 429
STEP = 0.1  # what each quiet period adds back, as a share of the cut rate
FLOOR_PER_S = 1 / 60  # the learnt rate never goes below one create a minute
Sleep = Callable[[float], Awaitable[None]]
Ticket = tuple[float, int]


@dataclass(slots=True)
class _Place:
    """A watched waiter's place in line: as last worked out, and as last told to it."""

    shown: int = 0  # set by the line's pass (`shown_place`); 0 = not yet known
    reported: int = 0  # what its `on_place` was last told


class _Bucket:
    """Asynchronous token bucket with waiters served round-robin by key, and a shared pause."""

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
        self._lines: dict[str, list[Ticket]] = {}  # key -> heap; the dict's order is the turn
        self._keys: dict[Ticket, str] = {}
        self._turns: dict[Ticket, asyncio.Event] = {}
        self._seq = itertools.count()
        self._sleeping = False  # the head waiter is sleeping until a token accrues
        self._places: dict[Ticket, _Place] = {}  # tickets whose waiters are told their place
        self._pass_due = False
        self.taken = 0

    @property
    def waiting(self) -> int:
        """Callers waiting for a token right now."""
        return len(self._keys)

    async def _take(self, key: str, priority: float, on_place: OnPlace | None) -> None:
        """Wait for one token; `on_place(place)` as in `TokenBucket.take`."""
        ticket = (priority, next(self._seq))
        self._keys[ticket] = key
        heapq.heappush(self._lines.setdefault(key, []), ticket)
        place = None
        if on_place is not None:
            place = self._places[ticket] = _Place()
        self._moved()
        told = False
        try:
            while True:
                head = self._head() == ticket and not self._sleeping
                wait = self._wait_s() if head else 0.0
                if head and wait <= 0:
                    self._grant(ticket)
                    break
                if place is not None and on_place is not None:
                    if head and wait >= SHOW_WAIT_S:
                        place.shown = 1
                    news = place.shown and place.shown != place.reported
                    if news and (not head or wait >= SHOW_WAIT_S):
                        place.reported = place.shown
                        told = True
                        await on_place(place.shown)
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

    def _learn(self, now: float) -> None:
        """Bring the rate and capacity up to date (a learning bucket overrides this)."""

    def _sent(self, now: float) -> None:
        """A token was taken (a learning bucket counts it)."""

    def _head(self) -> Ticket | None:
        return self._lines[next(iter(self._lines))][0] if self._lines else None

    def _grant(self, ticket: Ticket) -> None:
        key = self._keys[ticket]
        line = self._lines.pop(key)
        heapq.heappop(line)  # it is the head of its key's line
        if line:
            self._lines[key] = line  # back of the turn: round robin
        self._tokens -= 1.0
        self.taken += 1
        self._sent(self._clock())

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
        key = self._keys.pop(ticket)
        line = self._lines.get(key)
        if line is not None and ticket in line:  # cancelled while waiting
            line.remove(ticket)
            heapq.heapify(line)
            if not line:
                del self._lines[key]
        self._wake_head()
        self._moved()

    def _in_order(self) -> Iterator[Ticket]:
        """Every waiter in serving order: the first of every key in turn, then the second..."""
        turn = [iter(sorted(line)) for line in self._lines.values()]
        while turn:
            still = []
            for tickets in turn:
                ticket = next(tickets, None)
                if ticket is not None:
                    yield ticket
                    still.append(tickets)
            turn = still

    def _moved(self) -> None:
        """The line changed: recompute the watched places once, on the next loop turn."""
        if self._places and not self._pass_due:
            self._pass_due = True
            asyncio.get_running_loop().call_soon(self._reposition)

    def _reposition(self) -> None:
        self._pass_due = False
        if not self._places:
            return
        for rank, ticket in enumerate(self._in_order(), 1):
            place = self._places.get(ticket)
            if place is not None and place.shown != (shown := shown_place(rank)):
                place.shown = shown
                self._turns.setdefault(ticket, asyncio.Event()).set()  # it says so, then waits

    def _wake_head(self) -> None:
        head = self._head()
        if head is not None and (turn := self._turns.get(head)) is not None:
            turn.set()

    def _wait_s(self) -> float:
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        self._learn(now)
        self._refill(now)
        if self._tokens >= 1.0 - _EPSILON:  # float sums of refills fall a hair short
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s

    def _refill(self, now: float) -> None:
        start = max(self._stamp, self._paused_until) if now >= self._paused_until else now
        self._tokens = min(self.capacity, self._tokens + (now - start) * self.rate_per_s)
        self._stamp = now


class TokenBucket(_Bucket):
    """A token bucket with prioritised waiters and a shared pause (the read bucket)."""

    async def take(self, priority: float = 0.0, on_place: OnPlace | None = None) -> None:
        """Wait for one token; lower `priority` values are served first.

        `on_place(place)` is awaited while the caller waits, whenever its shown
        place in line changes (1 = next), and with 0 once it got its token
        after having been told a place.
        """
        await self._take("", priority, on_place)


class CreateRate:
    """The account's create rate as learnt from its answers (see the module docstring)."""

    def __init__(self, ceiling_per_s: float, burst: float) -> None:
        self.ceiling = ceiling_per_s
        self.burst = burst  # what the capacity may grow back to
        self.capacity = 1.0
        self.cuts = 0
        self._floor = min(FLOOR_PER_S, ceiling_per_s)
        self._base = ceiling_per_s  # the rate the last cut set
        self._cut_at: float | None = None  # when the last cut's pause ended; None: at the ceiling
        self._passed: deque[float] = deque()  # when creates that got through were sent
        self._since_cut = 0  # tokens taken since the last cut
        self._pending: tuple[float, float] | None = None  # a 429's (time, pause) to learn from

    def rate(self, now: float) -> float:
        """Creates per second allowed now: the cut rate plus a STEP per quiet period."""
        self._settle(now)
        if self._cut_at is None:
            return self.ceiling
        quiet = math.floor(max(0.0, now - self._cut_at) * self._base / QUIET_TOKENS)
        rate = self._base * (1.0 + STEP * quiet)
        if rate < self.ceiling:
            return rate
        self._cut_at = None  # probed back up to the ceiling: the burst may be earned again
        return self.ceiling

    def sent(self, now: float) -> None:
        """A token was taken: a create is sent (it got through unless `refused` follows)."""
        self._passed.append(now)
        while self._passed[0] < now - WINDOW_S:
            self._passed.popleft()
        self._since_cut += 1

    def accepted(self, now: float) -> None:
        """A create went through: at the ceiling, the burst grows by one."""
        if self.rate(now) >= self.ceiling:
            self.capacity = min(self.burst, self.capacity + 1.0)

    def refused(self, now: float, pause_s: float, paused: bool) -> None:
        """A 429 (`paused`: it came during a pause): learnt from once the pause is over.

        Waiting for the pause's end lets the 429s of creates sent with this one
        come in first, so that they are not counted as creates that got through.
        """
        self.capacity = 1.0
        if self._passed:
            self._passed.pop()  # a 429 comes at once: it is for the latest create sent
        if not (paused or self._pending or (self.cuts and not self._since_cut)):
            self._pending = (now, pause_s)  # else sent before the last cut: nothing new

    def _settle(self, now: float) -> None:
        """Cut the rate for a 429 whose pause is over."""
        if self._pending is None or now < sum(self._pending):
            return
        at, pause_s = self._pending
        self._pending = None
        if not self._passed:
            return  # nothing got through: the pause was all there was to do
        self._base = max(self._floor, MARGIN * min(self.rate(at), self.estimate(at, pause_s)))
        self._cut_at = at + pause_s
        self._since_cut = 0
        self.cuts += 1
        log.info("Replicate's create rate: %.3g/min learnt from a 429", self._base * 60)

    def estimate(self, now: float, pause_s: float) -> float:
        """The account's rate: at best, the last k creates through in the time until its next.

        For an account with a burst of 1 the last one alone is exact: its next
        token comes 1/rate after the last create it took.
        """
        spans = ((k, now - sent + pause_s) for k, sent in enumerate(reversed(self._passed), 1))
        return max((k / span for k, span in spans if span > 0), default=math.inf)


class CreateBucket(_Bucket):
    """The create budget of one event loop: fair across campaigns, learning the account's rate.

    Implements `core.ports.CreateBudget`. Made with the ceiling (`rate_per_min`,
    and `burst` at it); the `rate_per_min` property is the rate learnt so far.
    """

    def __init__(
        self,
        rate_per_min: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        super().__init__(rate_per_min, burst=burst, clock=clock, sleep=sleep)
        self.learnt = CreateRate(self.rate_per_s, self.capacity)
        self.capacity = self._tokens = self.learnt.capacity  # the burst is earned

    @property
    def rate_per_min(self) -> float:
        """The learnt rate right now."""
        return self.learnt.rate(self._clock()) * 60.0

    async def take(
        self, key: str, on_place: OnPlace | None = None, *, priority: float = 0.0
    ) -> None:
        """Wait for one create token; keys (campaigns) take turns; see `TokenBucket.take`."""
        await self._take(key, priority, on_place)

    async def accepted(self) -> None:
        """A create went through."""
        self.learnt.accepted(self._clock())

    async def throttled(self, pause_s: float) -> None:
        """A 429: everyone waits `pause_s`, then one goes at once; the rate may be cut."""
        now = self._clock()
        self.learnt.refused(now, pause_s, paused=now < self._paused_until)
        self.pause(pause_s)
        self._tokens = 1.0  # refilled from the pause's end on: the account has reset then
        self._learn(now)

    def _learn(self, now: float) -> None:
        self.rate_per_s = self.learnt.rate(now)
        self.capacity = self.learnt.capacity

    def _sent(self, now: float) -> None:
        self.learnt.sent(now)
