"""The store on a real SQLite file (and, for the contract, a real PostgreSQL database):
round trip, migrations, WAL, cancel flag."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from core.errors import CampaignNotFound, LeaseLost
from core.model import (
    Campaign,
    CampaignStatus,
    DiscordOrigin,
    Origin,
    PlanCall,
    Product,
    ProductPlan,
    SlackOrigin,
    StepName,
    StepRecord,
    StepStatus,
    TerminalOrigin,
)
from core.provider_docs import CachedDoc
from core.request import CampaignRequest, ModelOverrides, Style
from storage.migrate import migrate, migrations
from storage.open import Store
from storage.sqlite_store import SqliteStore

pytestmark = pytest.mark.both_stores


def _campaign(cid: str = "abc12345", created_at: float = 10.0) -> Campaign:
    request = CampaignRequest(
        theme="retro cats",
        products=2,
        videos=True,
        style=Style.NEON,
        audience="indie gamers",
        seed=7,
        models=ModelOverrides(image="acme/img"),
    )
    products = tuple(
        Product(
            ProductPlan(i, f"Cat {i}", "mug", "Meow.", f"img {i}", f"vid {i}"),
            (StepRecord(i, StepName.IMAGE, model="acme/img"), StepRecord(i, StepName.VIDEO)),
        )
        for i in range(2)
    )
    return Campaign(
        id=cid,
        request=request,
        status=CampaignStatus.PENDING,
        created_at=created_at,
        executor="local",
        generator="offline",
        products=products,
    )


async def test_round_trip(store: Store) -> None:
    original = _campaign()
    await store.create_campaign(original)
    assert await store.get(original.id) == original

    step = (
        original.products[1]
        .steps[0]
        .evolve(
            status=StepStatus.SUCCEEDED,
            attempts=2,
            started_at=11.0,
            finished_at=12.5,
            provider_id="pred-1",
            output="/x/1.png",
            cost_usd=0.003,
            worker="node-a",
            predict_time_s=1.25,
            output_url="https://example.invalid/1.png",
            intent_at=10.5,
            sent_input='{"prompt": "a mug", "seed": 3}',
        )
    )
    assert await store.claim(original.id, "me", now=1.0, stale_before=0.0)
    await store.save_step(original.id, step, "me")
    await store.save_status(
        original.id,
        CampaignStatus.PARTIAL,
        owner="me",
        started_at=11.0,
        finished_at=13.0,
        contact_sheet="/x/sheet.png",
        error=None,
    )
    loaded = await store.get(original.id)
    assert loaded.products[1].steps[0] == step
    assert loaded.products[1].steps[0].predict_time_s == 1.25
    assert loaded.products[0].steps[0].predict_time_s is None  # not known yet: NULL
    assert loaded.products[1].steps[0].output_url == "https://example.invalid/1.png"
    assert loaded.products[0].steps[0].output_url is None
    assert loaded.products[1].steps[1] == original.products[1].steps[1]
    assert (loaded.status, loaded.started_at, loaded.finished_at, loaded.contact_sheet) == (
        CampaignStatus.PARTIAL,
        11.0,
        13.0,
        "/x/sheet.png",
    )
    assert loaded.cost_usd == 0.003
    assert loaded.request == original.request


async def test_each_planning_call_keeps_its_intent_and_then_its_id(store: Store) -> None:
    original = _campaign()
    await store.create_campaign(original)
    assert await store.claim(original.id, "me", now=1.0, stale_before=0.0)
    await store.save_plan(original.id, "outline", PlanCall(None, 5.0, '{"prompt": "o"}'), "me")
    await store.save_plan(original.id, "details/0-1", PlanCall(None, 6.0, '{"prompt": "d"}'), "me")
    await store.save_plan(original.id, "outline", PlanCall("p1", 5.0, '{"prompt": "o"}'), "me")
    loaded = await store.get(original.id)
    assert loaded.plan_calls == {
        "outline": PlanCall("p1", 5.0, '{"prompt": "o"}'),
        "details/0-1": PlanCall(None, 6.0, '{"prompt": "d"}'),
    }
    with pytest.raises(LeaseLost):  # fenced like a step
        await store.save_plan(original.id, "outline", PlanCall("p2"), "someone else")
    assert (await store.get(original.id)).plan_calls["outline"].provider_id == "p1"


async def test_provider_documents_are_cached_and_replaced(store: Store) -> None:
    assert await store.cached("owner/model") is None
    await store.cache(CachedDoc("owner/model", "v1", '{"a": 1}', 10.0))
    await store.cache(CachedDoc("owner/model", "v2", '{"a": 2}', 20.0))
    assert await store.cached("owner/model") == CachedDoc("owner/model", "v2", '{"a": 2}', 20.0)


async def test_products_added_after_planning(store: Store) -> None:
    full = _campaign()
    await store.create_campaign(Campaign(**{**full.__dict__, "products": ()}))
    assert (await store.get(full.id)).products == ()
    await store.add_products(full.id, full.products)
    assert (await store.get(full.id)).products == full.products


def _planned(count: int) -> tuple[Campaign, list[Product]]:
    """A campaign stored without products, and `count` products planned for it."""
    full = _campaign()
    products = [
        Product(
            ProductPlan(i, f"Cat {i}", "mug", "Meow.", f"img {i}", f"vid {i}"),
            (StepRecord(i, StepName.IMAGE), StepRecord(i, StepName.VIDEO)),
        )
        for i in range(count)
    ]
    return Campaign(**{**full.__dict__, "products": ()}), products


async def test_products_planned_at_once_are_all_written_but_a_bad_one(store: Store) -> None:
    empty, products = _planned(5)
    await store.create_campaign(empty)
    await store.add_products(empty.id, products[2:3])
    outcomes = await asyncio.gather(  # product 2 again: it is refused, alone
        *(store.add_products(empty.id, (p,)) for p in products), return_exceptions=True
    )
    assert [type(o).__name__ for o in outcomes].count("NoneType") == 4
    assert isinstance(outcomes[2], (sqlite3.IntegrityError, psycopg.IntegrityError))
    assert (await store.get(empty.id)).products == tuple(products)


@pytest.mark.sqlite_only  # aiosqlite's calls
async def test_writes_waiting_together_share_their_trips_to_sqlite(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty, products = _planned(20)
    await store.create_campaign(empty)
    assert await store.claim(empty.id, "me", now=1.0, stale_before=0.0)
    db = store._conn.db
    trips: list[str] = []  # every call to aiosqlite is a trip to its thread and back
    for method in ("execute", "executemany", "execute_fetchall"):
        sent = getattr(db, method)
        monkeypatch.setattr(db, method, lambda sql, *a, _s=sent: trips.append(sql) or _s(sql, *a))
    await asyncio.gather(*(store.add_products(empty.id, (p,)) for p in products))
    added = len(trips)
    steps = [s.evolve(status=StepStatus.RUNNING) for p in products for s in p.steps]
    await asyncio.gather(*(store.save_step(empty.id, s, "me") for s in steps))
    monkeypatch.undo()
    stored = await store.get(empty.id)
    assert [s.status for s in stored.steps()] == [StepStatus.RUNNING] * 40
    # products waiting together share a transaction (a trip per kind of statement: BEGIN,
    # products, steps, COMMIT), where one by one took 5 trips each: 100 in all
    assert trips.count("BEGIN IMMEDIATE") <= 2 and added <= 2 * 4
    assert len(trips) - added <= 2  # 40 step writes waiting together: one executemany


async def test_recent_is_newest_first(store: Store) -> None:
    for i, cid in enumerate(["old00000", "mid00000", "new00000"]):
        await store.create_campaign(_campaign(cid, created_at=float(i)))
    assert [c.id for c in await store.recent(2)] == ["new00000", "mid00000"]


@pytest.mark.sqlite_only  # SQLite's trace callback
async def test_the_campaign_list_takes_four_queries_however_long(store: Store) -> None:
    made = [_campaign(f"c{i:07d}", created_at=float(i)) for i in range(6)]
    for campaign in made:
        await store.create_campaign(campaign)
    selects: list[str] = []
    await store._conn.db.set_trace_callback(  # what SQLite runs, as it runs it
        lambda sql: selects.append(sql) if sql.lstrip().upper().startswith("SELECT") else None
    )
    listed = await store.recent(limit=6)
    await store._conn.db.set_trace_callback(None)
    assert [c.id for c in listed] == [c.id for c in reversed(made)]
    assert listed == list(reversed(made))  # products and steps all there, in order
    assert len(selects) == 4  # campaigns, products, steps, plan calls: not 1 + 3 per campaign


async def test_a_read_cancelled_midway_leaves_no_transaction_open(store: Store) -> None:
    await store.create_campaign(_campaign())
    for yields in range(12):  # cancelled at every point of the read, one after another
        reader = asyncio.create_task(store.recent())
        for _ in range(yields):
            await asyncio.sleep(0)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    assert [c.id for c in await store.recent()] == ["abc12345"]  # no "transaction within"
    await store.request_cancel("abc12345")  # and writes still go through
    assert await store.cancel_requested("abc12345")


async def test_unknown_ids_raise_not_found(store: Store) -> None:
    with pytest.raises(CampaignNotFound, match="nope"):
        await store.get("nope")
    with pytest.raises(CampaignNotFound):
        await store.save_status("nope", CampaignStatus.FAILED, owner="me")
    with pytest.raises(CampaignNotFound):
        await store.request_cancel("nope")


async def test_cancel_flag(store: Store) -> None:
    await store.create_campaign(_campaign())
    assert not await store.cancel_requested("abc12345")
    await store.request_cancel("abc12345")
    assert await store.cancel_requested("abc12345")
    await store.clear_cancel("abc12345")
    assert not await store.cancel_requested("abc12345")


async def test_failed_transaction_leaves_nothing(store: Store) -> None:
    await store.create_campaign(_campaign())
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        await store.create_campaign(_campaign())  # same id: the whole insert rolls back
    assert len(await store.recent(10)) == 1


async def test_wal_mode_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "c.db"
    first = await SqliteStore.open(path)
    await first.create_campaign(_campaign())
    await first.close()
    second = await SqliteStore.open(path)  # migrations are not applied twice
    assert (await second.get("abc12345")).request.theme == "retro cats"
    await second.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(migrations())


async def test_migrations_must_be_numbered_without_gaps(tmp_path: Path) -> None:
    (tmp_path / "V1__a.sql").write_text("CREATE TABLE a (x);")
    (tmp_path / "V3__c.sql").write_text("CREATE TABLE c (x);")
    with pytest.raises(RuntimeError, match="without gaps"):
        migrations(tmp_path)


async def test_new_migration_applies_once(tmp_path: Path) -> None:
    import aiosqlite

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "V1__a.sql").write_text("CREATE TABLE a (x);")
    async with aiosqlite.connect(tmp_path / "m.db", isolation_level=None) as db:
        assert await migrate(db, folder) == 1
        (folder / "V2__b.sql").write_text("CREATE TABLE b (x);")
        assert await migrate(db, folder) == 2
        assert await migrate(db, folder) == 2


async def test_v3_database_gains_predict_time(tmp_path: Path) -> None:
    import shutil

    import aiosqlite

    old = tmp_path / "v3"
    old.mkdir()
    for _version, path in migrations()[:3]:
        shutil.copy(path, old / path.name)
    async with aiosqlite.connect(tmp_path / "old.db", isolation_level=None) as db:
        assert await migrate(db, old) == 3
    store = await SqliteStore.open(tmp_path / "old.db")  # V4 adds the column
    try:
        await store.create_campaign(_campaign())
        assert (await store.get("abc12345")).products[0].steps[0].predict_time_s is None
    finally:
        await store.close()


async def test_v4_database_gains_output_url(tmp_path: Path) -> None:
    import shutil

    import aiosqlite

    old = tmp_path / "v4"
    old.mkdir()
    for _version, path in migrations()[:4]:
        shutil.copy(path, old / path.name)
    async with aiosqlite.connect(tmp_path / "old.db", isolation_level=None) as db:
        assert await migrate(db, old) == 4
    store = await SqliteStore.open(tmp_path / "old.db")  # V5 adds the column
    try:
        await store.create_campaign(_campaign())
        step = (await store.get("abc12345")).products[0].steps[0]
        assert step.output_url is None
        assert await store.claim("abc12345", "me", now=1.0, stale_before=0.0)
        await store.save_step("abc12345", step.evolve(output_url="https://example.invalid/a"), "me")
        stored = (await store.get("abc12345")).products[0].steps[0]
        assert stored.output_url == "https://example.invalid/a"
    finally:
        await store.close()


@pytest.mark.sqlite_only  # times from a fake clock; PostgreSQL's: test_postgres.py
async def test_claim_heartbeat_and_orphans(store: Store) -> None:
    await store.create_campaign(_campaign())
    assert await store.orphans(stale_before=100.0) == ["abc12345"]  # never claimed
    assert await store.claim("abc12345", "proc-a", now=100.0, stale_before=90.0)
    assert await store.orphans(stale_before=100.0) == []  # beat at 100, not before it
    assert not await store.claim("abc12345", "proc-b", now=105.0, stale_before=95.0)
    await store.heartbeat("abc12345", "proc-a", now=110.0)
    await store.heartbeat("abc12345", "proc-b", now=500.0)  # not the owner: ignored
    assert await store.orphans(stale_before=111.0) == ["abc12345"]
    assert await store.claim("abc12345", "proc-b", now=125.0, stale_before=115.0)
    await store.save_status("abc12345", CampaignStatus.SUCCEEDED, owner="proc-b")
    assert await store.orphans(stale_before=1000.0) == []  # finished ones are no orphans
    # a finished campaign runs nowhere: another process may take it (to retry it) at once
    assert await store.claim("abc12345", "proc-c", now=126.0, stale_before=116.0)


async def test_a_reel_owed_is_found_by_resume_until_it_is_written_or_failed(store: Store) -> None:
    await store.create_campaign(_campaign())
    assert await store.claim("abc12345", "proc-a", now=100.0, stale_before=90.0)
    await store.save_reel("abc12345", None, "proc-a", due=True)
    assert await store.reels_due() == []  # still running: resumed as a whole if it stops
    await store.save_status("abc12345", CampaignStatus.SUCCEEDED, owner="proc-a", finished_at=9.0)
    (lease,) = await store.reels_due()
    assert (lease.campaign_id, lease.owner) == ("abc12345", "proc-a")
    assert (await store.get("abc12345")).reel is None  # owed is no path
    with pytest.raises(LeaseLost):
        await store.save_reel("abc12345", "/x/reel.mp4", "proc-b")  # fenced by owner
    await store.save_reel("abc12345", "/x/reel.mp4", "proc-a")
    assert await store.reels_due() == []
    assert (await store.get("abc12345")).reel == "/x/reel.mp4"
    await store.save_reel("abc12345", None, "proc-a", due=True)  # a retry's reel, owed again
    await store.save_reel("abc12345", None, "proc-a")  # it failed: none, and no longer owed
    assert await store.reels_due() == [] and (await store.get("abc12345")).reel is None
    await store.save_reel("abc12345", None, "proc-a", due=True)
    await store.save_status("abc12345", CampaignStatus.CANCELED, owner="proc-a")
    assert await store.reels_due() == []  # a canceled campaign gets no reel


_OPEN = """
import asyncio, sys, time
from pathlib import Path
from storage.sqlite_store import SqliteStore
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
async def main() -> None:
    store = await SqliteStore.open(sys.argv[1])
    await store.close()
asyncio.run(main())
"""


def test_processes_opening_a_new_database_at_once_migrate_it_once(tmp_path: Path) -> None:
    import sqlite3
    import subprocess
    import sys

    from storage.migrate import migrations

    latest = migrations()[-1][0]
    for round_no in range(12):
        db, go = tmp_path / f"new-{round_no}.db", tmp_path / f"go-{round_no}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN, str(db), str(go)], stderr=subprocess.PIPE
            )
            for _ in range(3)
        ]
        go.touch()  # all three start opening together
        errors = [p.communicate(timeout=60)[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == latest


@pytest.mark.sqlite_only  # raw SQL on SQLite's connection
@pytest.mark.parametrize(
    ("stored", "origin"),
    [
        ("{}", TerminalOrigin()),
        (
            '{"platform": "slack", "channel": "C1", "team": "T1", "ts": "1.2"}',
            SlackOrigin(channel="C1", team="T1", ts="1.2"),
        ),
        (
            '{"platform": "discord", "guild": "7", "channel": "5", "message": "1", "thread": "2",'
            ' "file_limit": "8388608"}',
            DiscordOrigin(guild="7", channel="5", message="1", thread="2", file_limit="8388608"),
        ),
    ],
)
async def test_origins_stored_as_plain_dicts_read_back_typed(
    store: Store, stored: str, origin: Origin
) -> None:
    await store.create_campaign(_campaign())
    await store._conn.write(
        lambda: store._conn.execute("UPDATE campaigns SET origin_json = ?", (stored,))
    )
    assert (await store.get("abc12345")).origin == origin
    await store.create_campaign(Campaign(**{**_campaign("new00000").__dict__, "origin": origin}))
    rows = await store._conn.select("SELECT origin_json FROM campaigns ORDER BY id")
    assert json.loads(rows[1][0]) == json.loads(stored)  # written as before origins were typed
