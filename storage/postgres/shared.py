"""What every replica on one PostgreSQL database shares: the create budget and the replay
keys, on the database's clock (replicas on several hosts do not share one).

A slot is reserved in one statement (INSERT ... ON CONFLICT DO UPDATE takes the row's
lock), so two replicas reserving at once get consecutive slots; a replay key is taken
by the one INSERT that creates it, so of two replicas only one sees it new.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.postgres.connection import DB_NOW, PgPart, Tx
from storage.schedule import slot_waits

_RESERVE = f"""
INSERT INTO create_budget AS b (account, next_at, slots)
VALUES (%(account)s, {DB_NOW} - (%(burst)s - 1) * %(interval)s + %(span)s, %(count)s)
ON CONFLICT (account) DO UPDATE SET next_at = GREATEST(
    b.next_at, b.paused_until, {DB_NOW} - (%(burst)s - 1) * %(interval)s
) + %(span)s, slots = b.slots + %(count)s
RETURNING next_at - %(span)s - {DB_NOW}
"""

_PAUSE = f"""
INSERT INTO create_budget AS b (account, next_at, paused_until)
VALUES (%(account)s, {DB_NOW} + %(pause)s, {DB_NOW} + %(pause)s)
ON CONFLICT (account) DO UPDATE SET
    paused_until = GREATEST(b.paused_until, excluded.paused_until),
    next_at = GREATEST(b.next_at, excluded.next_at)
"""


class PgShared(PgPart):
    """The provider account's create schedule and the front ends' replay keys."""

    async def reserve_creates(
        self, account: str, interval_s: float, burst: int, count: int = 1
    ) -> list[float]:
        """Reserve the account's next `count` create slots; the seconds to wait for each."""
        span = count * interval_s
        params = {"account": account, "interval": interval_s, "burst": burst}
        params.update(count=count, span=span)

        async def work(tx: Tx) -> list[float]:
            row = await tx.row(_RESERVE, params)
            return slot_waits(float(row[0]) if row else 0.0, interval_s, count)

        return await self._conn.write(work)

    async def pause_creates(self, account: str, pause_s: float) -> None:
        """A 429: no replica sends a create for `pause_s` (from now, on the database's clock)."""
        await self._conn.write(
            lambda tx: tx.execute(_PAUSE, {"account": account, "pause": pause_s})
        )

    async def first_time(self, keys: Sequence[str], keep_s: float) -> bool:
        """Remember `keys` for `keep_s`; False if any of them was taken before (a replay)."""
        fresh = [k for k in keys if k]
        if not fresh:
            return True

        async def work(tx: Tx) -> bool:
            await tx.execute(f"DELETE FROM replay_keys WHERE until <= {DB_NOW}")
            new = 0
            for key in fresh:
                new += await tx.execute(
                    f"INSERT INTO replay_keys (key, until) VALUES (%s, {DB_NOW} + %s)"
                    " ON CONFLICT (key) DO NOTHING",
                    (key, keep_s),
                )
            return new == len(fresh)

        return await self._conn.write(work)
