"""CampaignRecords on the pool: campaigns, their products and steps.

A fenced write locks the campaign row it checks (`SELECT ... FOR UPDATE`) in
the transaction that writes, so a claim by another replica waits for it, or
it sees the new owner and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from core.errors import CampaignNotFound, LeaseLost
from core.eta import Sample
from core.model import Campaign, CampaignStatus, PlanCall, Product, StepName, StepRecord
from storage import rows
from storage.postgres.connection import PgPart, Row, Tx
from storage.rows import STEP_COLUMNS, step_values


class PgRecords(PgPart):
    """Campaigns, their products and steps (CampaignRecords)."""

    async def create_campaign(self, campaign: Campaign) -> None:
        """Insert a campaign with its products and steps, atomically."""
        await self._conn.write(lambda tx: insert_campaign(tx, campaign))

    async def add_products(self, campaign_id: str, products: Sequence[Product]) -> None:
        """Insert planned products and their steps, atomically."""
        await self._conn.write(lambda tx: _insert_products(tx, campaign_id, products))

    async def save_step(self, campaign_id: str, step: StepRecord, owner: str) -> None:
        """Write one step's current state, only while `owner` owns the campaign (else LeaseLost)."""

        async def work(tx: Tx) -> None:
            await fence(tx, campaign_id, owner)
            await _upsert_step(tx, campaign_id, step)

        await self._conn.write(work)

    async def save_plan(self, campaign_id: str, part: str, call: PlanCall, owner: str) -> None:
        """Remember a planning prediction (or the intent to create it), fenced by owner."""

        async def work(tx: Tx) -> None:
            await fence(tx, campaign_id, owner)
            await tx.execute(
                rows.upsert_plan_sql("%s"),
                (campaign_id, part, call.provider_id, call.intent_at, call.sent_input),
            )

        await self._conn.write(work)

    async def save_status(
        self,
        campaign_id: str,
        status: CampaignStatus,
        *,
        owner: str,
        started_at: float | None = None,
        finished_at: float | None = None,
        contact_sheet: str | None = None,
        error: str | None = None,
        reel: str | None = None,
        timeline: str | None = None,
    ) -> None:
        """Write the status; other fields only when given (None keeps the old value), fenced."""
        values = (status.value, started_at, finished_at, contact_sheet, error, reel, timeline)

        async def work(tx: Tx) -> None:
            await fence(tx, campaign_id, owner)
            await tx.execute(
                "UPDATE campaigns SET status = %s,"
                " started_at = COALESCE(%s, started_at), finished_at = %s,"
                " contact_sheet = COALESCE(%s, contact_sheet), error = %s,"
                " reel = COALESCE(%s, reel), timeline = COALESCE(%s, timeline) WHERE id = %s",
                (*values, campaign_id),
            )

        await self._conn.write(work)

    async def save_reel(
        self, campaign_id: str, reel: str | None, owner: str, *, due: bool = False
    ) -> None:
        """Store the reel's path (None: there is none), or with `due` mark one as owed."""
        value = rows.REEL_DUE if due else reel

        async def work(tx: Tx) -> None:
            await fence(tx, campaign_id, owner)
            await tx.execute("UPDATE campaigns SET reel = %s WHERE id = %s", (value, campaign_id))

        await self._conn.write(work)

    async def get(self, campaign_id: str) -> Campaign:
        """The campaign with products and steps."""
        found = await self._campaigns("WHERE id = %s", (campaign_id,))
        if not found:
            raise CampaignNotFound(campaign_id)
        return found[0]

    async def recent(self, limit: int = 20, requester: str | None = None) -> list[Campaign]:
        """Newest campaigns first, optionally only one requester's."""
        where, params = ("WHERE requester = %s", (requester,)) if requester else ("", ())
        return await self._campaigns(
            f"{where} ORDER BY created_at DESC, seq DESC LIMIT %s", (*params, limit)
        )

    async def _campaigns(self, clause: str, params: tuple[Any, ...]) -> list[Campaign]:
        """Campaigns chosen by `clause` with their products and steps: four queries, one
        snapshot, however many campaigns."""

        async def work(tx: Tx) -> tuple[list[Row], list[Row], list[Row], list[Row]]:
            found = await tx.rows(f"SELECT * FROM campaigns {clause}", params)
            ids = [row["id"] for row in found]
            products = await tx.rows(
                "SELECT * FROM products WHERE campaign_id = ANY(%s) ORDER BY idx", (ids,)
            )
            steps = await tx.rows(
                "SELECT * FROM steps WHERE campaign_id = ANY(%s) ORDER BY product_idx, name",
                (ids,),
            )
            calls = await tx.rows("SELECT * FROM plan_calls WHERE campaign_id = ANY(%s)", (ids,))
            return found, products, steps, calls

        return rows.campaigns(*await self._conn.read(work))

    async def step_samples(self, limit: int = 500) -> list[Sample]:
        """How long succeeded steps took (start to finish), newest first, for ETAs."""
        found = await self._conn.select(
            "SELECT name, model, finished_at - started_at FROM steps"
            " WHERE status = 'succeeded' AND started_at IS NOT NULL AND finished_at IS NOT NULL"
            " ORDER BY finished_at DESC LIMIT %s",
            (limit,),
        )
        return [Sample(StepName(r[0]), r[1], float(r[2])) for r in found]


async def insert_campaign(tx: Tx, campaign: Campaign) -> None:
    """Raw (inside a write): insert a campaign with its products and steps."""
    await tx.execute(
        rows.insert_sql("campaigns", rows.CAMPAIGN_COLUMNS, "%s"), rows.campaign_values(campaign)
    )
    await _insert_products(tx, campaign.id, campaign.products)


async def _insert_products(tx: Tx, campaign_id: str, products: Iterable[Product]) -> None:
    sql = rows.insert_sql("products", rows.PRODUCT_COLUMNS, "%s")
    for product in products:
        await tx.execute(sql, rows.product_values(campaign_id, product))
        for step in product.steps:
            await _upsert_step(tx, campaign_id, step)


async def _upsert_step(tx: Tx, campaign_id: str, step: StepRecord) -> None:
    updates = ", ".join(f"{c} = excluded.{c}" for c in STEP_COLUMNS)
    await tx.execute(
        f"INSERT INTO steps (campaign_id, product_idx, name, {', '.join(STEP_COLUMNS)})"
        f" VALUES (%s, %s, %s, {', '.join(['%s'] * len(STEP_COLUMNS))})"
        f" ON CONFLICT (campaign_id, product_idx, name) DO UPDATE SET {updates}",
        (campaign_id, step.product_index, step.name.value, *step_values(step)),
    )


async def fence(tx: Tx, campaign_id: str, owner: str) -> None:
    """Lock the campaign row; LeaseLost unless `owner` owns it (CampaignNotFound if gone)."""
    row = await tx.row("SELECT owner FROM campaigns WHERE id = %s FOR UPDATE", (campaign_id,))
    if row is None:
        raise CampaignNotFound(campaign_id)
    if row[0] != owner:
        raise LeaseLost(campaign_id)
