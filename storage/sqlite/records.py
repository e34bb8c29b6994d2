"""CampaignRecords on the shared connection: campaigns, their products and steps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from core.errors import CampaignNotFound, LeaseLost
from core.eta import Sample
from core.model import Campaign, CampaignStatus, PlanCall, Product, StepName, StepRecord
from storage import rows
from storage.rows import STEP_COLUMNS, step_values
from storage.sqlite.connection import Connection, Part


class SqliteRecords(Part):
    """Campaigns, their products and steps (CampaignRecords)."""

    async def create_campaign(self, campaign: Campaign) -> None:
        """Insert a campaign with its products and steps, atomically."""
        await self._conn.write(lambda: insert_campaign(self._conn, campaign))

    async def add_products(self, campaign_id: str, products: Sequence[Product]) -> None:
        """Insert planned products and their steps, atomically (with the products planned
        meanwhile: one transaction)."""
        await self._conn.together(_product_rows(campaign_id, products))

    async def save_step(self, campaign_id: str, step: StepRecord, owner: str) -> None:
        """Write one step's current state, only while `owner` owns the campaign.

        The fenced write raises LeaseLost (and writes nothing) when another
        process has taken the campaign over: a stale owner never overwrites
        the new owner's state.
        """
        conn = self._conn

        if await conn.batched(*_step_update(campaign_id, step, owner)):
            return  # the usual case: one fenced statement, sent with the others waiting

        async def work() -> None:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                await _fence(conn, campaign_id, owner)
                await _upsert_step(conn, campaign_id, step)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

        await conn.write(work, atomic=False)

    async def save_plan(self, campaign_id: str, part: str, call: PlanCall, owner: str) -> None:
        """Remember a planning prediction (or the intent to create it), fenced by owner."""

        values = (campaign_id, part, call.provider_id, call.intent_at, call.sent_input)
        if await self._conn.batched(rows.fenced_plan_sql("?"), (*values, campaign_id, owner)):
            return  # one fenced statement, sent with the others waiting

        async def work() -> None:  # not written: say why (LeaseLost, CampaignNotFound)
            await _fence(self._conn, campaign_id, owner)
            await self._conn.execute(rows.upsert_plan_sql("?"), values)

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
        """Write the status; other fields only when given (None keeps the old value).

        Only while `owner` owns the campaign (else LeaseLost).
        """
        values = (status.value, started_at, finished_at, contact_sheet, error, reel, timeline)

        async def work() -> None:
            await _fence(self._conn, campaign_id, owner)
            changed = await self._conn.execute(
                "UPDATE campaigns SET status = ?,"
                " started_at = COALESCE(?, started_at), finished_at = ?,"
                " contact_sheet = COALESCE(?, contact_sheet), error = ?,"
                " reel = COALESCE(?, reel), timeline = COALESCE(?, timeline) WHERE id = ?",
                (*values, campaign_id),
            )
            if changed == 0:
                raise CampaignNotFound(campaign_id)

        await self._conn.write(work)

    async def save_reel(
        self, campaign_id: str, reel: str | None, owner: str, *, due: bool = False
    ) -> None:
        """Store the reel's path (None: there is none), or with `due` mark one as owed."""
        value = rows.REEL_DUE if due else reel

        async def work() -> None:
            await _fence(self._conn, campaign_id, owner)
            await self._conn.execute(
                "UPDATE campaigns SET reel = ? WHERE id = ?", (value, campaign_id)
            )

        await self._conn.write(work)

    async def get(self, campaign_id: str) -> Campaign:
        """The campaign with products and steps."""
        found = await self._campaigns("WHERE id = ?", (campaign_id,))
        if not found:
            raise CampaignNotFound(campaign_id)
        return found[0]

    async def recent(self, limit: int = 20, requester: str | None = None) -> list[Campaign]:
        """Newest campaigns first, optionally only one requester's."""
        where, params = ("WHERE requester = ?", (requester, limit)) if requester else ("", (limit,))
        return await self._campaigns(
            f"{where} ORDER BY created_at DESC, rowid DESC LIMIT ?", tuple(params)
        )

    async def _campaigns(self, clause: str, params: tuple[Any, ...]) -> list[Campaign]:
        """Campaigns chosen by `clause`, with their products and steps: four queries in one
        read transaction (one snapshot), however many campaigns."""
        conn = self._conn

        async def work() -> tuple[list[Any], list[Any], list[Any], list[Any]]:
            found = await conn.rows(f"SELECT * FROM campaigns {clause}", params)
            marks = ", ".join("?" * len(found))
            ids = [row["id"] for row in found]
            products = await conn.rows(
                f"SELECT * FROM products WHERE campaign_id IN ({marks}) ORDER BY idx", ids
            )
            steps = await conn.rows(
                f"SELECT * FROM steps WHERE campaign_id IN ({marks}) ORDER BY product_idx, name",
                ids,
            )
            calls = await conn.rows(f"SELECT * FROM plan_calls WHERE campaign_id IN ({marks})", ids)
            return found, products, steps, calls

        return rows.campaigns(*await conn.read(work))

    async def step_samples(self, limit: int = 500) -> list[Sample]:
        """How long succeeded steps took (start to finish), newest first, for ETAs.

        A step's start is when it got its slot, so queueing is not counted;
        copied steps (an animate's image) have no start and are left out.
        """
        found = await self._conn.select(
            "SELECT name, model, finished_at - started_at FROM steps"
            " WHERE status = 'succeeded' AND started_at IS NOT NULL AND finished_at IS NOT NULL"
            " ORDER BY finished_at DESC LIMIT ?",
            (limit,),
        )
        return [Sample(StepName(r[0]), r[1], float(r[2])) for r in found]


async def insert_campaign(conn: Connection, campaign: Campaign) -> None:
    """Raw (inside a write): insert a campaign with its products and steps."""
    await conn.execute(
        rows.insert_sql("campaigns", rows.CAMPAIGN_COLUMNS, "?"), rows.campaign_values(campaign)
    )
    await _insert_products(conn, campaign.id, campaign.products)


async def _insert_products(conn: Connection, campaign_id: str, products: Iterable[Product]) -> None:
    for sql, params in _product_rows(campaign_id, products):
        await conn.execute(sql, params)


def _product_rows(campaign_id: str, products: Iterable[Product]) -> list[tuple[str, Any]]:
    """The statements that insert products and their steps, products first."""
    product_sql = rows.insert_sql("products", rows.PRODUCT_COLUMNS, "?")
    found: list[tuple[str, Any]] = []
    for product in products:
        found.append((product_sql, rows.product_values(campaign_id, product)))
        found += [_step_upsert(campaign_id, step) for step in product.steps]
    return found


_UPDATE_STEP = (
    f"UPDATE steps SET {', '.join(f'{c} = ?' for c in STEP_COLUMNS)}"
    " WHERE campaign_id = ? AND product_idx = ? AND name = ?"
    " AND EXISTS (SELECT 1 FROM campaigns WHERE id = ? AND owner = ?)"
)


def _step_update(campaign_id: str, step: StepRecord, owner: str) -> tuple[str, tuple[Any, ...]]:
    """The fenced update of an existing step while `owner` owns the campaign (it changes
    nothing when the step is not stored yet or the campaign is not `owner`'s)."""
    return _UPDATE_STEP, (
        *step_values(step),
        campaign_id,
        step.product_index,
        step.name.value,
        campaign_id,
        owner,
    )


_UPSERT_STEP = (
    f"INSERT INTO steps (campaign_id, product_idx, name, {', '.join(STEP_COLUMNS)})"
    f" VALUES (?, ?, ?, {', '.join('?' * len(STEP_COLUMNS))})"
    " ON CONFLICT (campaign_id, product_idx, name) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in STEP_COLUMNS)
)


def _step_upsert(campaign_id: str, step: StepRecord) -> tuple[str, tuple[Any, ...]]:
    return _UPSERT_STEP, (campaign_id, step.product_index, step.name.value, *step_values(step))


async def _upsert_step(conn: Connection, campaign_id: str, step: StepRecord) -> None:
    await conn.execute(*_step_upsert(campaign_id, step))


async def _fence(conn: Connection, campaign_id: str, owner: str) -> None:
    """Raise LeaseLost unless `owner` owns the campaign (CampaignNotFound if it is gone)."""
    row = await conn.row("SELECT owner FROM campaigns WHERE id = ?", (campaign_id,))
    if row is None:
        raise CampaignNotFound(campaign_id)
    if row[0] != owner:
        raise LeaseLost(campaign_id)
