"""CampaignStore on one aiosqlite connection (WAL mode, one writer)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from core.errors import CampaignNotFound, LeaseLost
from core.eta import Sample
from core.model import (
    Action,
    Campaign,
    CampaignStatus,
    Lease,
    Product,
    ProductPlan,
    StepName,
    StepRecord,
    StepStatus,
)
from core.ports import CachedDoc
from core.quotas import AuditEntry, AuditEvent, Spend, SpendLine, Who
from core.request import CampaignRequest
from storage.migrate import migrate

T = TypeVar("T")
OPEN_ATTEMPTS = 5

_STEP_COLUMNS = (
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "provider_id",
    "output",
    "error",
    "cost_usd",
    "worker",
    "model",
    "predict_time_s",
    "output_url",
    "intent_at",
    "sent_input",
)


class SqliteStore:
    """Durable campaigns in a SQLite file."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        # One connection is shared by every coroutine: a write must never land
        # inside another coroutine's open transaction.
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Future[Any]] = set()

    async def _write(self, work: Callable[[], Awaitable[T]], *, atomic: bool = True) -> T:
        """Run `work` in a transaction that completes even if the caller is cancelled.

        `atomic=False`: `work` is one statement (atomic by itself in autocommit
        mode) or opens its own transaction: no BEGIN/COMMIT round trips.
        """
        return await self._shielded(self._transaction(work, atomic))

    async def _read(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work`'s reads in one transaction (one snapshot), completed even if the caller
        is cancelled: a BEGIN sent is always followed by its COMMIT."""
        return await self._shielded(self._transaction(work, begin="BEGIN"))

    async def _shielded(self, transaction: Awaitable[T]) -> T:
        task = asyncio.ensure_future(transaction)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        task.add_done_callback(_settled)
        return await asyncio.shield(task)

    async def _transaction(
        self, work: Callable[[], Awaitable[T]], atomic: bool = True, begin: str = "BEGIN IMMEDIATE"
    ) -> T:
        async with self._lock:
            if not atomic:
                return await work()
            await self._db.execute(begin)
            try:
                result = await work()
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")
            return result

    @classmethod
    async def open(cls, path: Path | str) -> SqliteStore:
        """Open (creating if needed) and migrate the database at path."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA busy_timeout = 5000")  # others may be opening it too
            for attempt in range(1, OPEN_ATTEMPTS + 1):
                try:
                    await _prepare(db)
                    break
                except sqlite3.OperationalError as exc:
                    # Switching a new file to WAL can fail at once ("database is locked",
                    # no busy wait) while another process does the same: try again.
                    if "locked" not in str(exc) or attempt == OPEN_ATTEMPTS:
                        raise
                    await asyncio.sleep(0.05 * attempt)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        """Finish writes in flight, then close the connection."""
        if self._pending:
            await asyncio.wait(self._pending)
        await self._db.close()

    async def create_campaign(self, campaign: Campaign) -> None:
        """Insert a campaign with its products and steps, atomically."""
        await self._write(lambda: self._insert_campaign(campaign))

    async def _insert_campaign(self, campaign: Campaign) -> None:
        await self._db.execute(
            "INSERT INTO campaigns (id, theme, request_json, status, executor, generator,"
            " created_at, started_at, finished_at, contact_sheet, error, requester,"
            " origin_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                campaign.id,
                campaign.request.theme,
                json.dumps(campaign.request.to_dict()),
                campaign.status.value,
                campaign.executor,
                campaign.generator,
                campaign.created_at,
                campaign.started_at,
                campaign.finished_at,
                campaign.contact_sheet,
                campaign.error,
                campaign.requester,
                json.dumps(dict(campaign.origin)),
            ),
        )
        await self._insert_products(campaign.id, campaign.products)

    async def add_products(self, campaign_id: str, products: Sequence[Product]) -> None:
        """Insert planned products and their steps, atomically."""
        await self._write(lambda: self._insert_products(campaign_id, products))

    async def _insert_products(self, campaign_id: str, products: Iterable[Product]) -> None:
        for product in products:
            p = product.plan
            await self._db.execute(
                "INSERT INTO products (campaign_id, idx, name, product_type, tagline,"
                " image_prompt, video_prompt, attempt_of, action)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    campaign_id,
                    p.index,
                    p.name,
                    p.product_type,
                    p.tagline,
                    p.image_prompt,
                    p.video_prompt,
                    product.attempt_of,
                    product.action.value if product.action else None,
                ),
            )
            for step in product.steps:
                await self._upsert_step(campaign_id, step)

    async def save_step(self, campaign_id: str, step: StepRecord, owner: str | None = None) -> None:
        """Write one step's current state; with `owner`, only while it owns the campaign.

        The fenced write raises LeaseLost (and writes nothing) when another
        process has taken the campaign over: a stale owner never overwrites
        the new owner's state.
        """

        async def work() -> None:
            if owner is not None and await self._update_step(campaign_id, step, owner):
                return  # the usual case: one fenced statement
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                await self._fence(campaign_id, owner)
                await self._upsert_step(campaign_id, step)
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

        await self._write(work, atomic=False)

    async def _update_step(self, campaign_id: str, step: StepRecord, owner: str) -> bool:
        """Update an existing step while `owner` owns the campaign; False if nothing matched."""
        values = [getattr(step, c) for c in _STEP_COLUMNS]
        values[0] = step.status.value
        cur = await self._db.execute(
            f"UPDATE steps SET {', '.join(f'{c} = ?' for c in _STEP_COLUMNS)}"
            " WHERE campaign_id = ? AND product_idx = ? AND name = ?"
            " AND EXISTS (SELECT 1 FROM campaigns WHERE id = ? AND owner = ?)",
            (*values, campaign_id, step.product_index, step.name.value, campaign_id, owner),
        )
        return cur.rowcount == 1

    async def save_plan(
        self,
        campaign_id: str,
        provider_id: str | None,
        intent_at: float | None,
        owner: str,
        sent_input: str | None = None,
    ) -> None:
        """Remember the planning prediction (or the intent to create it), fenced by owner."""

        async def work() -> None:
            await self._fence(campaign_id, owner)
            await self._db.execute(
                "UPDATE campaigns SET plan_provider_id = ?, plan_intent_at = ?,"
                " plan_sent_input = ? WHERE id = ?",
                (provider_id, intent_at, sent_input, campaign_id),
            )

        await self._write(work)

    async def _fence(self, campaign_id: str, owner: str | None) -> None:
        if owner is None:
            return
        async with self._db.execute(
            "SELECT owner FROM campaigns WHERE id = ?", (campaign_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise CampaignNotFound(campaign_id)
        if row[0] != owner:
            raise LeaseLost(campaign_id)

    async def _upsert_step(self, campaign_id: str, step: StepRecord) -> None:
        values = [getattr(step, c) for c in _STEP_COLUMNS]
        values[0] = step.status.value
        updates = ", ".join(f"{c} = excluded.{c}" for c in _STEP_COLUMNS)
        await self._db.execute(
            f"INSERT INTO steps (campaign_id, product_idx, name, {', '.join(_STEP_COLUMNS)})"
            f" VALUES (?, ?, ?, {', '.join('?' * len(_STEP_COLUMNS))})"
            f" ON CONFLICT (campaign_id, product_idx, name) DO UPDATE SET {updates}",
            (campaign_id, step.product_index, step.name.value, *values),
        )

    async def save_status(
        self,
        campaign_id: str,
        status: CampaignStatus,
        *,
        started_at: float | None = None,
        finished_at: float | None = None,
        contact_sheet: str | None = None,
        error: str | None = None,
        owner: str | None = None,
        reel: str | None = None,
        timeline: str | None = None,
    ) -> None:
        """Write the status; other fields only when given (None keeps the old value).

        With `owner`, only while it owns the campaign (else LeaseLost).
        """

        async def work() -> None:
            await self._fence(campaign_id, owner)
            cur = await self._db.execute(
                "UPDATE campaigns SET status = ?,"
                " started_at = COALESCE(?, started_at), finished_at = ?,"
                " contact_sheet = COALESCE(?, contact_sheet), error = ?,"
                " reel = COALESCE(?, reel), timeline = COALESCE(?, timeline) WHERE id = ?",
                (
                    status.value,
                    started_at,
                    finished_at,
                    contact_sheet,
                    error,
                    reel,
                    timeline,
                    campaign_id,
                ),
            )
            if cur.rowcount == 0:
                raise CampaignNotFound(campaign_id)

        await self._write(work)

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
        """Campaigns chosen by `clause`, with their products and steps: three queries in one
        read transaction (one snapshot), however many campaigns."""

        async def work() -> tuple[list[Any], list[Any], list[Any]]:
            rows = await self._rows(f"SELECT * FROM campaigns {clause}", params)
            marks = ", ".join("?" * len(rows))
            ids = [row["id"] for row in rows]
            products = await self._rows(
                f"SELECT * FROM products WHERE campaign_id IN ({marks}) ORDER BY idx", ids
            )
            steps = await self._rows(
                f"SELECT * FROM steps WHERE campaign_id IN ({marks}) ORDER BY product_idx, name",
                ids,
            )
            return rows, products, steps

        rows, products, steps = await self._read(work)
        products_of: dict[str, list[Any]] = {}
        steps_of: dict[str, list[StepRecord]] = {}
        for product in products:
            products_of.setdefault(product["campaign_id"], []).append(product)
        for step in steps:
            steps_of.setdefault(step["campaign_id"], []).append(_step(step))
        return [
            _assemble(row, products_of.get(row["id"], []), steps_of.get(row["id"], []))
            for row in rows
        ]

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        async with self._db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def step_samples(self, limit: int = 500) -> list[Sample]:
        """How long succeeded steps took (start to finish), newest first, for ETAs.

        A step's start is when it got its slot, so queueing is not counted;
        copied steps (an animate's image) have no start and are left out.
        """
        async with self._db.execute(
            "SELECT name, model, finished_at - started_at FROM steps"
            " WHERE status = 'succeeded' AND started_at IS NOT NULL AND finished_at IS NOT NULL"
            " ORDER BY finished_at DESC LIMIT ?",
            (limit,),
        ) as cur:
            rows = await cur.fetchall()
        return [Sample(StepName(r[0]), r[1], float(r[2])) for r in rows]

    async def cached(self, key: str) -> CachedDoc | None:
        """The provider document stored for `key` (ProviderCache)."""
        async with self._db.execute(
            "SELECT key, version, body, checked_at FROM provider_cache WHERE key = ?", (key,)
        ) as cur:
            row = await cur.fetchone()
        return CachedDoc(row[0], row[1], row[2], float(row[3])) if row else None

    async def cache(self, doc: CachedDoc) -> None:
        """Store or replace a provider document (ProviderCache)."""
        await self._update(
            "INSERT INTO provider_cache (key, version, body, checked_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET version = excluded.version,"
            " body = excluded.body, checked_at = excluded.checked_at",
            (doc.key, doc.version, doc.body, doc.checked_at),
        )

    async def request_cancel(self, campaign_id: str) -> None:
        """Flag the campaign for cancellation."""
        await self._set_cancel(campaign_id, 1)

    async def clear_cancel(self, campaign_id: str) -> None:
        """Clear the cancellation flag."""
        await self._set_cancel(campaign_id, 0)

    async def _set_cancel(self, campaign_id: str, flag: int) -> None:
        await self._update(
            "UPDATE campaigns SET cancel_requested = ? WHERE id = ?", (flag, campaign_id)
        )

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

        async def work() -> int:
            cur = await self._db.execute(
                "UPDATE campaigns SET owner = ?, heartbeat_at = ? WHERE id = ? AND"
                " (status NOT IN ('pending', 'running') OR owner IS NULL OR owner = ?"
                "  OR heartbeat_at IS NULL OR heartbeat_at < ? OR owner = ?)",
                (owner, now, campaign_id, owner, stale_before, replacing),
            )
            return cur.rowcount

        return await self._write(work) == 1

    async def heartbeat(self, campaign_id: str, owner: str, now: float) -> bool:
        """Say that `owner` is still running the campaign; False if it no longer owns it."""

        async def work() -> int:
            cur = await self._db.execute(
                "UPDATE campaigns SET heartbeat_at = ? WHERE id = ? AND owner = ?",
                (now, campaign_id, owner),
            )
            return cur.rowcount

        return await self._write(work, atomic=False) == 1

    async def release(self, campaign_id: str, owner: str) -> None:
        """Give the campaign up so that the next process takes it over at once."""
        await self._write(
            lambda: self._db.execute(
                "UPDATE campaigns SET owner = NULL, heartbeat_at = 0 WHERE id = ? AND owner = ?",
                (campaign_id, owner),
            )
        )

    async def unfinished(self) -> list[Lease]:
        """Who holds each pending or running campaign, oldest first."""
        async with self._db.execute(
            "SELECT id, owner, heartbeat_at, created_at FROM campaigns"
            " WHERE status IN ('pending', 'running') ORDER BY created_at"
        ) as cur:
            return [Lease(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]

    async def orphans(self, stale_before: float) -> list[str]:
        """Unfinished campaigns whose owner has not beaten since `stale_before`."""
        async with self._db.execute(
            "SELECT id FROM campaigns WHERE status IN ('pending', 'running')"
            " AND (heartbeat_at IS NULL OR heartbeat_at < ?)"
            " AND (created_at < ? OR heartbeat_at = 0)"  # not one its creator has yet to claim
            " ORDER BY created_at",
            (stale_before, stale_before),
        ) as cur:
            return [row[0] for row in await cur.fetchall()]

    async def _update(self, sql: str, params: tuple[Any, ...]) -> None:
        """One UPDATE of a campaign row; the last parameter is the campaign id."""

        async def work() -> int:
            cur = await self._db.execute(sql, params)
            return cur.rowcount

        if await self._write(work) == 0:
            raise CampaignNotFound(str(params[-1]))

    async def cancel_requested(self, campaign_id: str) -> bool:
        """Whether cancellation was requested."""
        async with self._db.execute(
            "SELECT cancel_requested FROM campaigns WHERE id = ?", (campaign_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise CampaignNotFound(campaign_id)
        return bool(row[0])

    # -- the audit ledger (quotas, cost caps, `bot.py usage`) ------------------

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

        async def work() -> None:
            check(await self._ledger(entry.who, since))
            await self._insert_campaign(campaign)
            await self._insert_audit(entry)

        await self._write(work)

    async def audit(self, entry: AuditEntry) -> None:
        """Append one audit line."""
        await self._write(lambda: self._insert_audit(entry))

    async def usage(self, who: Who, since: float) -> list[Spend]:
        """Submitted campaigns of who's requester, channel or guild since `since` or unfinished."""
        return await self._ledger(who, since)

    async def spend_by(self, since: float | None = None) -> list[SpendLine]:
        """Campaigns, refusals, estimates and costs per user, channel and guild since `since`."""
        lines: list[SpendLine] = []
        for scope, column in (("user", "requester"), ("channel", "channel"), ("guild", "guild")):
            async with self._db.execute(_SPEND_BY.format(column=column), (since or 0.0,)) as cur:
                rows = await cur.fetchall()
            lines += [
                SpendLine(scope, r[0], r[1], r[2], round(r[3], 6), round(r[4], 6)) for r in rows
            ]
        return lines

    async def audit_entries(
        self, limit: int = 100, campaign_id: str | None = None
    ) -> list[AuditEntry]:
        """The newest audit lines first (only one campaign's, if given)."""
        where, params = (
            ("WHERE campaign_id = ?", (campaign_id, limit)) if campaign_id else ("", (limit,))
        )
        async with self._db.execute(
            f"SELECT * FROM audit {where} ORDER BY at DESC, id DESC LIMIT ?", params
        ) as cur:
            return [_audit(row) for row in await cur.fetchall()]

    async def _insert_audit(self, entry: AuditEntry) -> None:
        who = entry.who
        await self._db.execute(
            "INSERT INTO audit (at, event, campaign_id, requester, channel, guild, theme,"
            " estimate_usd, cost_usd, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.at,
                entry.event.value,
                entry.campaign_id,
                who.requester,
                who.channel,
                who.guild,
                entry.theme,
                entry.estimate_usd,
                entry.cost_usd,
                entry.reason,
            ),
        )

    async def _ledger(self, who: Who, since: float) -> list[Spend]:
        if not who.any:
            return []
        async with self._db.execute(_LEDGER, (who.requester, who.channel, who.guild, since)) as cur:
            return [_spend(row) for row in await cur.fetchall()]


def _assemble(row: Any, products: Sequence[Any], steps: Sequence[StepRecord]) -> Campaign:
    """A campaign row with its product rows and steps."""
    return Campaign(
        id=row["id"],
        request=CampaignRequest.from_dict(json.loads(row["request_json"])),
        status=CampaignStatus(row["status"]),
        created_at=row["created_at"],
        executor=row["executor"],
        generator=row["generator"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        contact_sheet=row["contact_sheet"],
        error=row["error"],
        reel=row["reel"],
        timeline=row["timeline"],
        products=tuple(_product(p, steps) for p in products),
        requester=row["requester"],
        origin=json.loads(row["origin_json"]),
        plan_provider_id=row["plan_provider_id"],
        plan_intent_at=row["plan_intent_at"],
        plan_sent_input=row["plan_sent_input"],
    )


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


async def _prepare(db: aiosqlite.Connection) -> None:
    """WAL mode, the other pragmas, and the migrations."""
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
        await db.execute(f"PRAGMA {pragma}")
    await migrate(db)


def _settled(task: asyncio.Future[Any]) -> None:
    """Retrieve a write's outcome: its caller may have been cancelled meanwhile (shield)."""
    if not task.cancelled():
        task.exception()


def _plan(row: Any) -> ProductPlan:
    return ProductPlan(
        row["idx"],
        row["name"],
        row["product_type"],
        row["tagline"],
        row["image_prompt"],
        row["video_prompt"],
    )


def _product(row: Any, steps: Sequence[StepRecord]) -> Product:
    """A product row with its steps (taken from all the campaign's), in chain order."""
    plan, order = _plan(row), list(StepName)
    own = sorted(
        (s for s in steps if s.product_index == plan.index), key=lambda s: order.index(s.name)
    )
    return Product(
        plan,
        tuple(own),
        attempt_of=row["attempt_of"],
        action=Action(row["action"]) if row["action"] else None,
    )


def _step(row: Any) -> StepRecord:
    return StepRecord(
        product_index=row["product_idx"],
        name=StepName(row["name"]),
        status=StepStatus(row["status"]),
        attempts=row["attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        provider_id=row["provider_id"],
        output=row["output"],
        error=row["error"],
        cost_usd=row["cost_usd"],
        worker=row["worker"],
        model=row["model"],
        predict_time_s=row["predict_time_s"],
        output_url=row["output_url"],
        intent_at=row["intent_at"],
        sent_input=row["sent_input"],
    )


def _audit(row: Any) -> AuditEntry:
    return AuditEntry(
        at=row["at"],
        event=AuditEvent(row["event"]),
        who=Who(row["requester"], row["channel"], row["guild"]),
        campaign_id=row["campaign_id"],
        theme=row["theme"],
        estimate_usd=row["estimate_usd"],
        cost_usd=row["cost_usd"],
        reason=row["reason"],
    )


def _spend(row: Any) -> Spend:
    return Spend(row[0], row[1], row[2], row[3], row[4], row[5], row[6], active=bool(row[7]))
