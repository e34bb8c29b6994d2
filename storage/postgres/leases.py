"""CampaignLeases on the pool, judged on the database's clock.

Replicas on several hosts do not share a clock, so a heartbeat is written
as the database's time (`clock_timestamp()`), and a lease is judged there
too: of the times a caller passes (from its host's clock), only their
differences count (`now - stale_before` is the lease). `unfinished` gives
heartbeats back in the caller's clock (shifted by how far the database's
runs ahead of it), so core/lease.py judges them as it does SQLite's. A claim
is one conditional UPDATE: of two replicas claiming the same orphan, the
second waits for the first's row lock, then sees the new owner's beat and
takes nothing. A cancel request is announced with NOTIFY (see notices.py).
"""

from __future__ import annotations

from core.errors import CampaignNotFound
from core.model import Lease
from storage import rows
from storage.postgres.connection import DB_NOW, PgPart, Tx
from storage.postgres.notices import CHANNEL

_ACTIVE = "status IN ('pending', 'running')"


class PgLeases(PgPart):
    """Ownership of unfinished campaigns and cancellation requests (CampaignLeases)."""

    async def claim(
        self,
        campaign_id: str,
        owner: str,
        now: float,
        stale_before: float,
        replacing: str | None = None,
    ) -> bool:
        """Take the campaign unless another owner beat within `now - stale_before` seconds
        (on the database's clock); `replacing`: an owner known to be dead, taken over at once."""
        claimed = await self._conn.write(
            lambda tx: tx.execute(
                f"UPDATE campaigns SET owner = %(owner)s, heartbeat_at = {DB_NOW} WHERE id = %(id)s"
                f" AND (NOT {_ACTIVE} OR owner IS NULL OR owner = %(owner)s"
                f"  OR heartbeat_at IS NULL OR heartbeat_at < {DB_NOW} - %(lease)s"
                "  OR owner = %(replacing)s)",
                {
                    "owner": owner,
                    "id": campaign_id,
                    "lease": now - stale_before,
                    "replacing": replacing,
                },
            )
        )
        return claimed == 1

    async def heartbeat(self, campaign_id: str, owner: str, now: float) -> bool:
        """Beat at the database's time (not `now`); False if `owner` no longer owns it."""
        beaten = await self._conn.write(
            lambda tx: tx.execute(
                f"UPDATE campaigns SET heartbeat_at = {DB_NOW} WHERE id = %s AND owner = %s",
                (campaign_id, owner),
            )
        )
        return beaten == 1

    async def release(self, campaign_id: str, owner: str) -> None:
        """Give the campaign up so that the next process takes it over at once."""
        await self._conn.write(
            lambda tx: tx.execute(
                "UPDATE campaigns SET owner = NULL, heartbeat_at = 0 WHERE id = %s AND owner = %s",
                (campaign_id, owner),
            )
        )

    async def unfinished(self) -> list[Lease]:
        """Who holds each pending or running campaign, oldest first (beats in our clock)."""
        found = await self._conn.select(
            "SELECT id, owner, CASE WHEN heartbeat_at IS NULL OR heartbeat_at = 0"
            f" THEN heartbeat_at ELSE heartbeat_at - {DB_NOW} + %s END, created_at"
            f" FROM campaigns WHERE {_ACTIVE} ORDER BY created_at, seq",
            (self._clock(),),
        )
        return [Lease(r[0], r[1], r[2], r[3]) for r in found]

    async def reels_due(self) -> list[Lease]:
        """Who last held each finished campaign whose reel is owed (beats in our clock)."""
        found = await self._conn.select(
            "SELECT id, owner, CASE WHEN heartbeat_at IS NULL OR heartbeat_at = 0"
            f" THEN heartbeat_at ELSE heartbeat_at - {DB_NOW} + %s END, created_at"
            " FROM campaigns WHERE reel = %s AND status = ANY(%s) ORDER BY created_at, seq",
            (self._clock(), rows.REEL_DUE, list(rows.FINISHED)),
        )
        return [Lease(r[0], r[1], r[2], r[3]) for r in found]

    async def orphans(self, stale_before: float) -> list[str]:
        """Unfinished campaigns whose owner has not beaten for `clock() - stale_before` s."""
        found = await self._conn.select(
            f"SELECT id FROM campaigns WHERE {_ACTIVE}"
            f" AND (heartbeat_at IS NULL OR heartbeat_at < {DB_NOW} - %s)"
            " AND (created_at < %s OR heartbeat_at = 0)"  # not one its creator has yet to claim
            " ORDER BY created_at, seq",
            (self._clock() - stale_before, stale_before),
        )
        return [row[0] for row in found]

    async def request_cancel(self, campaign_id: str) -> None:
        """Flag the campaign for cancellation and announce it (NOTIFY, delivered at commit)."""

        async def work(tx: Tx) -> int:
            changed = await tx.execute(
                "UPDATE campaigns SET cancel_requested = TRUE WHERE id = %s", (campaign_id,)
            )
            await tx.execute("SELECT pg_notify(%s, %s)", (CHANNEL, campaign_id))
            return changed

        if await self._conn.write(work) == 0:
            raise CampaignNotFound(campaign_id)

    async def clear_cancel(self, campaign_id: str) -> None:
        """Clear the cancellation flag."""
        await self._conn.update(
            "UPDATE campaigns SET cancel_requested = FALSE WHERE id = %s", (campaign_id,)
        )

    async def cancel_requested(self, campaign_id: str) -> bool:
        """Whether cancellation was requested."""
        row = await self._conn.select_one(
            "SELECT cancel_requested FROM campaigns WHERE id = %s", (campaign_id,)
        )
        if row is None:
            raise CampaignNotFound(campaign_id)
        return bool(row[0])
