"""The account's create schedule as a value that travels to other processes (Ray actors).

The store's own `reserve_creates` / `pause_creates` run on its connection, which
stays in the process that opened it. `store.create_schedule()` hands out a
`Schedule` instead: a small picklable value (a SQLite path, or a PostgreSQL
URL kept secret) that opens a connection of its own, lazily, once per event
loop of whatever process it lands in, and runs the same statements on it (the
store's shared part: `SqliteShared` / `PgShared`, no second copy of the SQL).
`aclose()` closes the running loop's connection. If the connection cannot be
opened there (a SQLite file of another host), it says so once and the
process keeps its own create budget (every reservation: no wait).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


def slot_waits(first_s: float, interval_s: float, count: int) -> list[float]:
    """The seconds to wait for each of `count` consecutive slots, `interval_s` apart, the
    first `first_s` from now (negative: a quiet spell left room for a burst)."""
    return [max(0.0, first_s + i * interval_s) for i in range(count)]


class RateRows(Protocol):
    """The store's shared part, on a connection the schedule opened."""

    async def reserve_creates(
        self, account: str, interval_s: float, burst: int, count: int = 1
    ) -> list[float]: ...

    async def pause_creates(self, account: str, pause_s: float) -> None: ...


@dataclass(frozen=True)
class Opened:
    """A connection opened for one event loop: the rows it reaches and how to close it."""

    rows: RateRows
    close: Callable[[], Awaitable[None]]


class Schedule:
    """The create schedule on a connection of its own per event loop (see the module doc).

    Subclasses say how to open it (`_open`: None when it cannot be opened here); what
    travels is their public attributes. Nothing is opened until the first reservation.
    """

    def __init__(self) -> None:
        # per event loop: the opening (a task, shared by the reservations that wait for it)
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Task[Opened | None]
        ] = weakref.WeakKeyDictionary()
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Schedule.__init__(self)
        vars(self).update(state)

    async def _open(self) -> Opened | None:
        raise NotImplementedError

    async def reserve_creates(
        self, account: str, interval_s: float, burst: int, count: int = 1
    ) -> list[float]:
        """Reserve the account's next `count` create slots; the seconds to wait for each
        (none: no schedule here)."""
        opened = await self._opened()
        if opened is None:
            return [0.0] * count
        return await opened.rows.reserve_creates(account, interval_s, burst, count)

    async def pause_creates(self, account: str, pause_s: float) -> None:
        """A 429: no process sends a create for `pause_s` (nothing if no schedule here)."""
        opened = await self._opened()
        if opened is not None:
            await opened.rows.pause_creates(account, pause_s)

    async def aclose(self) -> None:
        """Close the connection the running event loop opened (if it did)."""
        opening = self._loops.pop(asyncio.get_running_loop(), None)
        if opening is None:
            return
        opened = await asyncio.gather(opening, return_exceptions=True)
        if isinstance(opened[0], Opened):
            await opened[0].close()

    def unavailable(self, where: str, reason: str) -> None:
        """Say once that this process keeps its own create budget, and why (no secrets)."""
        if not self._warned:
            self._warned = True
            log.warning(
                "the account's create schedule in %s cannot be reached here (%s):"
                " this process keeps its own create budget",
                where,
                reason,
            )

    async def _opened(self) -> Opened | None:
        loop = asyncio.get_running_loop()
        opening = self._loops.get(loop)
        if opening is None:
            opening = self._loops[loop] = loop.create_task(self._open(), name="create-schedule")
        return await asyncio.shield(opening)  # a cancelled reservation leaves it to the others
