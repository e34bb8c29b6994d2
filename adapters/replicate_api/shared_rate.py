"""One create budget for every process that uses the account (one per database).

Each process keeps its own `CreateBucket`: round-robin across its campaigns, and
what it learns from 429s. A create first takes the account's next slot from a
schedule shared through the database (`SharedRate`, in `storage/`), then its
turn in the process's own bucket:
slots are 60 / REPLICATE_CREATE_RATE seconds apart across all processes, with the
account's burst (REPLICATE_BURST seconds' worth, less one kept back for the
network's jitter) after a quiet spell, so processes told the account's rate stay
under it together. A 429 pauses the schedule for everyone. Creates of this process
that ask for their slots while a reservation is on its way go together in the next
one: twenty videos starting at once cost one trip to the database, not twenty in a row.

The schedule the wiring attaches is a `PortableRate` (`store.create_schedule()`): it
pickles as where the database is, and opens a connection of its own per event loop
wherever it lands, so the generator shipped to Ray's step actors takes its slots
from the same schedule as the bot's own process and every other replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from core.ports import CreateBudget

ACCOUNT = "replicate"  # one deployment, one account: one schedule per database


class SharedRate(Protocol):
    """The account's create schedule, shared by the processes of one database."""

    async def reserve_creates(
        self, account: str, interval_s: float, burst: int, count: int = 1
    ) -> list[float]:
        """Reserve the next `count` create slots; the seconds to wait for each."""
        ...

    async def pause_creates(self, account: str, pause_s: float) -> None:
        """A 429: no process sends a create for `pause_s`."""
        ...


@runtime_checkable
class PortableRate(SharedRate, Protocol):
    """A schedule that travels: pickled into another process (a Ray actor), it opens its
    own connection there, once per event loop; `aclose` closes the running loop's."""

    async def aclose(self) -> None:
        """Close the connection the running event loop opened, if any."""
        ...


class SharedCreateBudget:
    """A process's own create budget, then a slot of the account's shared schedule.

    `shared()` is the schedule when the process has one (the wiring attaches the
    store's, maybe after the clients were made); None: the local budget alone.
    """

    def __init__(
        self,
        local: CreateBudget,
        shared: Callable[[], SharedRate | None],
        *,
        per_min: float,
        burst: int,
        sleep: Callable[[float], Awaitable[object]],
    ) -> None:
        self.local = local
        self.shared = shared
        self.interval_s = 60.0 / per_min
        self.burst = max(1, burst)
        self._sleep = sleep
        self._asking: list[asyncio.Future[float]] = []  # creates waiting for the next trip
        self._trip: asyncio.Task[None] | None = None
        self._ahead: list[asyncio.Future[float]] = []  # slots taken before their creates

    async def take(
        self,
        key: str,
        on_place: Callable[[int], Awaitable[None]] | None = None,
        *,
        priority: float = 0.0,
    ) -> None:
        """The account's next slot, then this process's turn (fair across its campaigns).

        The local bucket goes last: after a 429's pause it lets creates go one at a time at
        the rate it learned, where slots reserved before the pause would all go at once.
        """
        shared = self.shared()
        if shared is not None:
            at = await self._taken_ahead()
            if at is None:
                at = await asyncio.shield(self._slot(shared))
            wait = at - asyncio.get_running_loop().time()
            if wait > 0:  # cancelled while waiting: its slot goes unused, like a late one
                await self._sleep(wait)
        await self.local.take(key, on_place, priority=priority)

    def ahead(self) -> None:
        """A create is on its way (its intent is being stored): its slot's trip to the
        database starts now, alongside the intent's, and the next `take` uses it if it is
        not late (a create that is never sent leaves its slot to the next, or unused)."""
        shared = self.shared()
        if shared is None:
            return
        self._ahead = [slot for slot in self._ahead if not (slot.done() and self._spent(slot))]
        slot = self._slot(shared)
        slot.add_done_callback(_seen)  # a failed trip is raised by the `take` using it, if any
        self._ahead.append(slot)

    async def _taken_ahead(self) -> float | None:
        """The loop time of the oldest slot taken ahead that is not late; late ones go unused:
        sent more than one interval after its slot, a create could bunch with on-time ones
        past the one slot of headroom the schedule keeps back."""
        while self._ahead:
            at = await asyncio.shield(self._ahead.pop(0))  # a failed trip fails this create
            if not self._late(at):
                return at
        return None

    def _late(self, at: float) -> bool:
        return asyncio.get_running_loop().time() - at > self.interval_s

    def _spent(self, slot: asyncio.Future[float]) -> bool:
        """Whether a slot taken ahead, now reserved, is of no use to any create."""
        return slot.cancelled() or slot.exception() is not None or self._late(slot.result())

    def _slot(self, shared: SharedRate) -> asyncio.Future[float]:
        """The loop time of a create's slot, reserved with the others asking now."""
        asked: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._asking.append(asked)
        if self._trip is None or self._trip.done():
            self._trip = asyncio.ensure_future(self._reserve(shared))
        return asked

    async def _reserve(self, shared: SharedRate) -> None:
        while self._asking:
            group, self._asking = self._asking, []
            try:
                waits = await shared.reserve_creates(
                    ACCOUNT, self.interval_s, self.burst, len(group)
                )
            except asyncio.CancelledError:
                for asked in (*group, *self._asking):
                    asked.cancel()
                raise
            except Exception as exc:
                for asked in group:
                    if not asked.done():
                        asked.set_exception(exc)
                continue
            now = asyncio.get_running_loop().time()
            for asked, wait in zip(group, waits, strict=True):
                if not asked.done():
                    asked.set_result(now + wait)

    async def accepted(self) -> None:
        """The create went through."""
        await self.local.accepted()

    async def throttled(self, pause_s: float) -> None:
        """A 429: this process learns from it, and every process pauses."""
        await self.local.throttled(pause_s)  # first: this process holds back at once
        shared = self.shared()
        if shared is not None:
            await shared.pause_creates(ACCOUNT, pause_s)


def _seen(slot: asyncio.Future[float]) -> None:
    """Mark a slot's failure as seen: one taken ahead and never used would be logged as a
    never-retrieved exception."""
    if not slot.cancelled():
        slot.exception()
