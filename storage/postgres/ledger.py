"""SpendLedger on the pool: the audit ledger that quotas count from.

Under READ COMMITTED two replicas could both count a scope's campaigns, both
pass its limit and both insert. `create_campaign_checked` therefore first
takes a transaction-scoped advisory lock per scope it counts (the requester,
the channel, the guild; in one order, so two requests never deadlock): a
second request of any shared scope waits for the first to commit, then
counts its campaign too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.model import Campaign
from core.quotas import AuditEntry, Spend, SpendLine, Who
from storage import rows
from storage.postgres.connection import PgPart, Tx
from storage.postgres.records import insert_campaign

_ACTIVE = "c.status IN ('pending', 'running')"
_SPENT = "(SELECT COALESCE(SUM(s.cost_usd), 0) FROM steps s WHERE s.campaign_id = a.campaign_id)"
_LEDGER = (
    "SELECT a.campaign_id, a.at, a.requester, a.channel, a.guild,"
    f" COALESCE(a.estimate_usd, 0), {_SPENT}, {_ACTIVE}"
    " FROM audit a LEFT JOIN campaigns c ON c.id = a.campaign_id"
    " WHERE a.event = 'submitted' AND (a.requester = %s OR a.channel = %s OR a.guild = %s)"
    f" AND (a.at >= %s OR {_ACTIVE})"
    " ORDER BY a.at, a.id"
)
_SPEND_BY = (  # {column} is one of requester, channel, guild
    "SELECT COALESCE(a.{column}, ''),"
    " COUNT(*) FILTER (WHERE a.event = 'submitted'),"
    " COUNT(*) FILTER (WHERE a.event IN ('refused', 'blocked')),"
    " COALESCE(SUM(COALESCE(a.estimate_usd, 0)) FILTER (WHERE a.event = 'submitted'), 0),"
    f" COALESCE(SUM({_SPENT}) FILTER (WHERE a.event = 'submitted'), 0)"
    " FROM audit a WHERE a.event IN ('submitted', 'refused', 'blocked') AND a.at >= %s"
    " GROUP BY 1 ORDER BY 5 DESC, 4 DESC, 1"
)
_SCOPES = (("user", "requester"), ("channel", "channel"), ("guild", "guild"))


class PgLedger(PgPart):
    """The audit ledger, and the usage and spend it adds up to (SpendLedger)."""

    async def create_campaign_checked(
        self,
        campaign: Campaign,
        entry: AuditEntry,
        since: float,
        check: Callable[[Sequence[Spend]], None],
    ) -> None:
        """In one transaction, under the scopes' advisory locks: read the ledger, `check` it
        (it raises to refuse: nothing is written), insert campaign and entry."""

        async def work(tx: Tx) -> None:
            await _lock_scopes(tx, entry.who)
            check(await _ledger(tx, entry.who, since))
            await insert_campaign(tx, campaign)
            await _insert_audit(tx, entry)

        await self._conn.write(work)

    async def audit(self, entry: AuditEntry) -> None:
        """Append one audit line."""
        await self._conn.write(lambda tx: _insert_audit(tx, entry))

    async def usage(self, who: Who, since: float) -> list[Spend]:
        """Submitted campaigns of who's requester, channel or guild since `since` or unfinished."""
        return await self._conn.read(lambda tx: _ledger(tx, who, since))

    async def spend_by(self, since: float | None = None) -> list[SpendLine]:
        """Campaigns, refusals, estimates and costs per user, channel and guild since `since`
        (one snapshot for the three scopes)."""

        async def work(tx: Tx) -> list[SpendLine]:
            lines: list[SpendLine] = []
            for scope, column in _SCOPES:
                found = await tx.rows(_SPEND_BY.format(column=column), (since or 0.0,))
                lines += [
                    SpendLine(scope, r[0], r[1], r[2], round(r[3], 6), round(r[4], 6))
                    for r in found
                ]
            return lines

        return await self._conn.read(work)


async def _lock_scopes(tx: Tx, who: Who) -> None:
    """Serialise quota checks of the same requester, channel or guild, across replicas."""
    keys = sorted(
        f"quota:{column}:{value}"
        for column, value in (
            ("requester", who.requester),
            ("channel", who.channel),
            ("guild", who.guild),
        )
        if value
    )
    for key in keys:
        await tx.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))


async def _insert_audit(tx: Tx, entry: AuditEntry) -> None:
    await tx.execute(rows.insert_sql("audit", rows.AUDIT_COLUMNS, "%s"), rows.audit_values(entry))


async def _ledger(tx: Tx, who: Who, since: float) -> list[Spend]:
    """Raw (inside a transaction): the submitted campaigns `check` and `usage` see."""
    if not who.any:
        return []
    found = await tx.rows(_LEDGER, (who.requester, who.channel, who.guild, since))
    return [rows.spend(row) for row in found]
