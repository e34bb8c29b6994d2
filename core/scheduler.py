"""Admission control: per-kind limits, round-robin across campaigns.

Every step waits for a slot of its kind (text, image, video, cpu) before it
runs. Waiters are served campaign by campaign in turn, so a 50-product
campaign cannot starve a 3-product one that arrives after it.

A waiter may ask to be told its place in line (`on_place`): after anything
moves the line (a grant, a new waiter, a cancel), one pass per event-loop
turn walks the line in serving order (O(waiters)) and wakes only the
waiters whose shown place changed. Places are exact up to SHOWN_EXACT and
rounded down beyond (`shown_place`: 20+, 30+, ..., 100+, 200+), so a long
line does not wake every waiter on every grant.

This is the one gate per kind: executors run the steps they are given and add
no limit of their own (Ray's actors are sized never to gate below these).
CPU work that a step or the service hands to `Executor.run_cpu` does not pass
through here; the executor's CPU workers (`Limits.cpu` processes locally, one
Ray CPU per task) are its one gate.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from core.eta import Durations, Guess, Pace, Sample
from core.model import StepKind, StepName

OnPlace = Callable[[int], Awaitable[None]]
"""Told a waiter's (shown) place in line, 1 = next; awaited by the waiter itself."""
SHOWN_EXACT = 20  # places up to this are shown exactly; beyond, rounded down


def ordinal(place: int) -> str:
    """A place as read: '1st', '2nd', '13th', '23rd'; a rounded one (`shown_place`) '30+'."""
    if place > SHOWN_EXACT:
        return f"{place}+"
    suffix = "th" if 10 <= place % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(place % 10, "th")
    return f"{place}{suffix}"


def shown_place(place: int) -> int:
    """The place as shown: exact up to SHOWN_EXACT, then one significant digit (rounded down)."""
    if place <= SHOWN_EXACT:
        return place
    step: int = 10 ** (len(str(place)) - 1)
    return place - place % step


class _Waiter:
    """One waiter in line: its grant, and what it was last shown of its place."""

    __slots__ = ("grant", "moved", "on_place", "reported", "shown")

    def __init__(self, grant: asyncio.Future[None], on_place: OnPlace | None) -> None:
        self.grant = grant
        self.on_place = on_place
        self.shown = 0  # its place as shown, set by the limiter's pass; 0 = not yet known
        self.reported = 0  # the last place it reported
        self.moved: asyncio.Future[None] | None = None  # resolved when `shown` changes


@dataclass(frozen=True)
class Limits:
    """Maximum steps of each kind running at once (process-wide).

    Provider steps (text, image, video) are mostly waiting on the provider, and
    its limits are request rates, not concurrent predictions: the defaults let
    three campaigns of the largest size (20 products) run every step at once,
    so the provider's rate buckets are the throttle, not these caps. They are
    there for fairness and memory. `cpu` also sizes the local executor's
    process pool: CPU work uses every core.
    """

    text: int = 16
    image: int = 64
    video: int = 64
    cpu: int = max(1, os.cpu_count() or 1)

    def of(self, kind: StepKind) -> int:
        """The limit for one kind."""
        value: int = getattr(self, kind.value)
        return value


class FairLimiter:
    """A semaphore whose waiters are served round-robin by key."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.in_use = 0
        self._queues: dict[str, deque[_Waiter]] = {}
        self._watched = 0  # waiters in line that want their place
        self._pass_due = False

    @asynccontextmanager
    async def slot(self, key: str, on_place: OnPlace | None = None) -> AsyncIterator[None]:
        """Hold one unit of capacity for the duration of the block."""
        await self.acquire(key, on_place)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, key: str, on_place: OnPlace | None = None) -> None:
        """Wait for a unit of capacity, taking turns with other keys.

        `on_place` is awaited with the waiter's shown place in line whenever
        it changes, while it waits (never when a slot is free at once).
        """
        if self.in_use < self.capacity and not self._queues:
            self.in_use += 1
            return
        waiter = _Waiter(asyncio.get_running_loop().create_future(), on_place)
        self._queues.setdefault(key, deque()).append(waiter)
        if on_place is not None:
            self._watched += 1
        self._moved()
        try:
            if on_place is None:
                await waiter.grant
            else:
                await self._wait_watching(waiter, on_place)
        except BaseException:  # cancelled, or the report failed
            if waiter.grant.done() and not waiter.grant.cancelled():
                self.release()  # granted just as we were cancelled: hand it on
            else:
                waiter.grant.cancel()
                self._forget(key, waiter)
            raise

    async def _wait_watching(self, waiter: _Waiter, on_place: OnPlace) -> None:
        while not waiter.grant.done():
            if waiter.shown and waiter.shown != waiter.reported:
                waiter.reported = waiter.shown
                await on_place(waiter.shown)
                continue
            waiter.moved = asyncio.get_running_loop().create_future()
            await asyncio.wait((waiter.grant, waiter.moved), return_when=asyncio.FIRST_COMPLETED)

    def release(self) -> None:
        """Return a unit and wake the next waiter in round-robin order."""
        self.in_use -= 1
        while self.in_use < self.capacity and self._queues:
            key = next(iter(self._queues))
            queue = self._queues.pop(key)
            waiter = queue.popleft()
            if queue:
                self._queues[key] = queue  # back of the line: round robin
            if waiter.on_place is not None:
                self._watched -= 1
            self._moved()  # everyone behind moved up
            if not waiter.grant.done():
                self.in_use += 1
                waiter.grant.set_result(None)

    def _in_order(self) -> Iterator[tuple[str, _Waiter]]:
        """Every waiter in the order it will be served, in O(waiters).

        Round robin: the first of every key in turn (in the dict's order, which
        `release` keeps as the serving order), then the second of every key
        that has two, and so on.
        """
        turn = [(key, iter(queue)) for key, queue in self._queues.items()]
        while turn:
            still = []
            for key, waiters in turn:
                waiter = next(waiters, None)
                if waiter is not None:
                    yield key, waiter
                    still.append((key, waiters))
            turn = still

    def _moved(self) -> None:
        """The line changed: recompute the watched places once, on the next loop turn."""
        if self._watched and not self._pass_due:
            self._pass_due = True
            asyncio.get_running_loop().call_soon(self._reposition)

    def _reposition(self) -> None:
        self._pass_due = False
        if not self._watched:
            return
        for place, (_key, waiter) in enumerate(self._in_order(), 1):
            if waiter.on_place is None:
                continue
            shown = shown_place(place)
            if shown != waiter.shown:
                waiter.shown = shown
                if waiter.moved is not None and not waiter.moved.done():
                    waiter.moved.set_result(None)

    def _forget(self, key: str, waiter: _Waiter) -> None:
        queue = self._queues.get(key)
        if queue is None:
            return
        try:
            queue.remove(waiter)
        except ValueError:
            return
        if waiter.on_place is not None:
            self._watched -= 1
        if not queue:
            del self._queues[key]
        self._moved()


class Scheduler:
    """One fair limiter per step kind, shared by every campaign in the process."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._limiters = {kind: FairLimiter(limits.of(kind)) for kind in StepKind}

    def slot(
        self, kind: StepKind, campaign_id: str, on_place: OnPlace | None = None
    ) -> AbstractAsyncContextManager[None]:
        """Async context manager holding one slot of `kind` for a campaign.

        `on_place(place)` is awaited while the step waits in line, whenever its
        shown place changes (1 = next; see `shown_place`).
        """
        return self._limiters[kind].slot(campaign_id, on_place)

    def pace(self, samples: Iterable[Sample], guess: Guess | None = None) -> Pace:
        """What an ETA needs: these measured durations (newest first), the generator's typical
        durations (`guess`) where nothing is measured yet, and this scheduler's slots."""
        durations = Durations(samples, guess=guess) if guess else Durations(samples)
        return Pace(durations, {name: self.limits.of(name.kind) for name in StepName})

    def in_use(self, kind: StepKind) -> int:
        """Slots of this kind held right now."""
        return self._limiters[kind].in_use
