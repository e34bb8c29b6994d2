"""CampaignLeases on the shared connection: who runs each campaign, and the cancel flag."""

from __future__ import annotations

from core.errors import CampaignNotFound
from core.model import Lease
from storage import rows
from storage.sqlite.connection import Part


class SqliteLeases(Part):
    """Ownership of unfinished campaigns and cancellation requests (CampaignLeases)."""

    async def claim(
        self,
        campaign_id: str,
        owner: str,
        now: float,
        stale_before: float,
        replacing: str | None = None,
    ) -> bool:
        """Take the campaign for `owner` unless another owner still runs it (beat lately).

        `replacing`: an owner known to be dead (its process is gone), taken over at once.
        """
        claimed = await self._conn.write(
            lambda: self._conn.execute(
                "UPDATE campaigns SET owner = ?, heartbeat_at = ? WHERE id = ? AND"
                " (status NOT IN ('pending', 'running') OR owner IS NULL OR owner = ?"
                "  OR heartbeat_at IS NULL OR heartbeat_at < ? OR owner = ?)",
                (owner, now, campaign_id, owner, stale_before, replacing),
            )
        )
        return claimed == 1

    async def heartbeat(self, campaign_id: str, owner: str, now: float) -> bool:
        """Say that `owner` is still running the campaign; False if it no longer owns it."""
        beaten = await self._conn.write(
            lambda: self._conn.execute(
                "UPDATE campaigns SET heartbeat_at = ? WHERE id = ? AND owner = ?",
                (now, campaign_id, owner),
            ),
            atomic=False,
        )
        return beaten == 1

    async def release(self, campaign_id: str, owner: str) -> None:
        """Give the campaign up so that the next process takes it over at once."""
        await self._conn.write(
            lambda: self._conn.execute(
                "UPDATE campaigns SET owner = NULL, heartbeat_at = 0 WHERE id = ? AND owner = ?",
                (campaign_id, owner),
            )
        )

    async def unfinished(self) -> list[Lease]:
        """Who holds each pending or running campaign, oldest first."""
        found = await self._conn.select(
            "SELECT id, owner, heartbeat_at, created_at FROM campaigns"
            " WHERE status IN ('pending', 'running') ORDER BY created_at"
        )
        return [Lease(r[0], r[1], r[2], r[3]) for r in found]

    async def reels_due(self) -> list[Lease]:
        """Who last held each finished campaign whose reel is owed, oldest first."""
        marks = ", ".join("?" * len(rows.FINISHED))
        found = await self._conn.select(
            "SELECT id, owner, heartbeat_at, created_at FROM campaigns"
            f" WHERE reel = ? AND status IN ({marks}) ORDER BY created_at",
            (rows.REEL_DUE, *rows.FINISHED),
        )
        return [Lease(r[0], r[1], r[2], r[3]) for r in found]

    async def orphans(self, stale_before: float) -> list[str]:
        """Unfinished campaigns whose owner has not beaten since `stale_before`."""
        found = await self._conn.select(
            "SELECT id FROM campaigns WHERE status IN ('pending', 'running')"
            " AND (heartbeat_at IS NULL OR heartbeat_at < ?)"
            " AND (created_at < ? OR heartbeat_at = 0)"  # not one its creator has yet to claim
            " ORDER BY created_at",
            (stale_before, stale_before),
        )
        return [row[0] for row in found]

    async def request_cancel(self, campaign_id: str) -> None:
        """Flag the campaign for cancellation."""
        await self._set_cancel(campaign_id, 1)

    async def clear_cancel(self, campaign_id: str) -> None:
        """Clear the cancellation flag."""
        await self._set_cancel(campaign_id, 0)

    async def cancel_requested(self, campaign_id: str) -> bool:
        """Whether cancellation was requested."""
        row = await self._conn.select_one(
            "SELECT cancel_requested FROM campaigns WHERE id = ?", (campaign_id,)
        )
        if row is None:
            raise CampaignNotFound(campaign_id)
        return bool(row[0])

    async def _set_cancel(self, campaign_id: str, flag: int) -> None:
        await self._conn.update(
            "UPDATE campaigns SET cancel_requested = ? WHERE id = ?", (flag, campaign_id)
        )
