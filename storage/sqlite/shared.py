"""What every process on one SQLite file shares: the create budget and the replay keys.

The clock is this host's (a SQLite file lives on one host): every process on it
reads the same clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from storage.schedule import slot_waits
from storage.sqlite.connection import Part


class SqliteShared(Part):
    """The provider account's create schedule and the front ends' replay keys."""

    clock: Callable[[], float] = staticmethod(time.time)

    async def reserve_creates(
        self, account: str, interval_s: float, burst: int, count: int = 1
    ) -> list[float]:
        """Reserve the account's next `count` create slots; the seconds to wait for each.

        A slot is `interval_s` after the one before (GCRA); after a quiet spell up
        to `burst` slots are free at once; none falls inside a 429's pause.
        """
        now = self.clock()
        floor = now - (burst - 1) * interval_s  # the earliest slot a quiet spell leaves
        span = count * interval_s
        # one statement (atomic by itself, one trip to the connection's thread)
        found = await self._conn.write(
            lambda: self._conn.rows(
                "INSERT INTO create_budget (account, next_at, slots) VALUES (?, ? + ?, ?)"
                " ON CONFLICT(account) DO UPDATE SET"
                " next_at = MAX(next_at, paused_until, ?) + ?, slots = slots + excluded.slots"
                " RETURNING next_at",
                (account, floor, span, count, floor, span),
            ),
            atomic=False,
        )
        return slot_waits(float(found[0][0]) - span - now, interval_s, count)

    async def pause_creates(self, account: str, pause_s: float) -> None:
        """A 429: no process sends a create for `pause_s` (from now)."""

        async def work() -> None:
            until = self.clock() + pause_s
            await self._conn.execute(
                "INSERT INTO create_budget (account, next_at, paused_until) VALUES (?, ?, ?)"
                " ON CONFLICT(account) DO UPDATE SET"
                " paused_until = MAX(paused_until, excluded.paused_until),"
                " next_at = MAX(next_at, excluded.next_at)",
                (account, until, until),
            )

        await self._conn.write(work)

    async def first_time(self, keys: Sequence[str], keep_s: float) -> bool:
        """Remember `keys` for `keep_s`; False if any of them was taken before (a replay)."""
        fresh = [k for k in keys if k]
        if not fresh:
            return True

        async def work() -> bool:
            now = self.clock()
            await self._conn.execute("DELETE FROM replay_keys WHERE until <= ?", (now,))
            marks = ",".join("?" * len(fresh))
            taken = await self._conn.rows(
                f"SELECT key FROM replay_keys WHERE key IN ({marks})", fresh
            )
            for key in fresh:
                await self._conn.execute(
                    "INSERT INTO replay_keys (key, until) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET until = excluded.until",
                    (key, now + keep_s),
                )
            return not taken

        return await self._conn.write(work)
