"""SpendLedger on the shared connection: the audit ledger that quotas count from."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.model import Campaign
from core.quotas import AuditEntry, Spend, SpendLine, Who
from storage import rows
from storage.sqlite.connection import Connection, Part
from storage.sqlite.records import insert_campaign

_SPENT = "(SELECT COALESCE(SUM(s.cost_usd), 0) FROM steps s WHERE s.campaign_id = a.campaign_id)"
_LEDGER = (
    "SELECT a.campaign_id, a.at, a.requester, a.channel, a.guild,"
    f" COALESCE(a.estimate_usd, 0), {_SPENT}, c.status IN ('pending', 'running')"
    " FROM audit a LEFT JOIN campaigns c ON c.id = a.campaign_id"
    " WHERE a.event = 'submitted' AND (a.requester = ? OR a.channel = ? OR a.guild = ?)"
    " AND (a.at >= ? OR c.status IN ('pending', 'running'))"
    " ORDER BY a.at"
)
_SPEND_BY = (  # {column} is one of requester, channel, guild
    "SELECT COALESCE(a.{column}, ''),"
    " SUM(a.event = 'submitted'), SUM(a.event IN ('refused', 'blocked')),"
    " SUM(CASE WHEN a.event = 'submitted' THEN COALESCE(a.estimate_usd, 0) ELSE 0 END),"
    f" SUM(CASE WHEN a.event = 'submitted' THEN {_SPENT} ELSE 0 END)"
    " FROM audit a WHERE a.event IN ('submitted', 'refused', 'blocked') AND a.at >= ?"
    " GROUP BY 1 ORDER BY 5 DESC, 4 DESC, 1"
)
_SCOPES = (("user", "requester"), ("channel", "channel"), ("guild", "guild"))


class SqliteLedger(Part):
    """The audit ledger, and the usage and spend it adds up to (SpendLedger)."""

    async def create_campaign_checked(
        self,
        campaign: Campaign,
        entry: AuditEntry,
        since: float,
        check: Callable[[Sequence[Spend]], None],
    ) -> None:
        """In one write transaction: read the ledger, `check` it, insert campaign and entry.

        `check` gets the ledger of `entry.who` (see `usage`) and raises to
        refuse; then nothing is written. The write lock is held throughout, so
        two requests (from any process) cannot both pass a limit only one fits.
        """
        conn = self._conn

        async def work() -> None:
            check(await _ledger(conn, entry.who, since))
            await insert_campaign(conn, campaign)
            await _insert_audit(conn, entry)

        await conn.write(work)

    async def audit(self, entry: AuditEntry) -> None:
        """Append one audit line."""
        await self._conn.write(lambda: _insert_audit(self._conn, entry))

    async def usage(self, who: Who, since: float) -> list[Spend]:
        """Submitted campaigns of who's requester, channel or guild since `since` or unfinished."""
        return await self._conn.read(lambda: _ledger(self._conn, who, since))

    async def spend_by(self, since: float | None = None) -> list[SpendLine]:
        """Campaigns, refusals, estimates and costs per user, channel and guild since `since`
        (one snapshot for the three scopes)."""
        conn = self._conn

        async def work() -> list[SpendLine]:
            lines: list[SpendLine] = []
            for scope, column in _SCOPES:
                found = await conn.rows(_SPEND_BY.format(column=column), (since or 0.0,))
                lines += [
                    SpendLine(scope, r[0], r[1], r[2], round(r[3], 6), round(r[4], 6))
                    for r in found
                ]
            return lines

        return await conn.read(work)


async def _insert_audit(conn: Connection, entry: AuditEntry) -> None:
    await conn.execute(rows.insert_sql("audit", rows.AUDIT_COLUMNS, "?"), rows.audit_values(entry))


async def _ledger(conn: Connection, who: Who, since: float) -> list[Spend]:
    """Raw (inside a transaction): the submitted campaigns `check` and `usage` see."""
    if not who.any:
        return []
    found = await conn.rows(_LEDGER, (who.requester, who.channel, who.guild, since))
    return [rows.spend(row) for row in found]
