"""PostgreSQL's own guarantees, with two stores (two pools) as two replicas on one database.

The contract both stores keep is tested in test_storage, test_leases and the
rest (parametrised); here is what only several replicas can get wrong: a
quota passed twice, an orphan taken twice, leases judged on each host's
clock, a stale owner's write, a cancel that waits for the poll, migrations
run twice, and the URL's password leaking.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from adapters.local_executor import LocalExecutor
from core.errors import ConfigError, LeaseLost
from core.lease import Ownership
from core.model import Campaign, CampaignStatus, StepName, StepRecord, StepStatus, TerminalOrigin
from core.quotas import AuditEntry, AuditEvent, Spend, Who
from core.request import CampaignRequest
from core.settings import CoreSettings
from storage.open import open_store
from storage.postgres.connection import redact
from storage.postgres_store import PostgresStore
from tests.conftest import fixture_settings
from tests.fakes import GatedGenerator, fake_sheet, make_orphan
from tests.postgres import PgServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, each with its own pool: two replicas."""
    async with AsyncExitStack() as stack:
        first = await PostgresStore.open(pg_url)
        stack.push_async_callback(first.close)
        second = await PostgresStore.open(pg_url)
        stack.push_async_callback(second.close)
        yield first, second


def _campaign(cid: str) -> Campaign:
    return Campaign(
        id=cid,
        request=CampaignRequest(theme="racing cats", products=1),
        status=CampaignStatus.PENDING,
        created_at=time.time(),
        executor="local",
        generator="offline",
        requester="u1",
    )


class Refused(Exception):
    """The test's quota said no."""


def _at_most_one(spent: Sequence[Spend]) -> None:
    if spent:
        raise Refused  # the limit: one campaign


async def test_two_replicas_racing_a_quota_admit_only_one(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    who = Who("u1", "discord:c1", "discord:g1")

    async def submit(store: PostgresStore, n: int) -> bool:
        entry = AuditEntry(time.time(), AuditEvent.SUBMITTED, who, f"race{n:04d}", "racing")
        try:
            await store.create_campaign_checked(_campaign(f"race{n:04d}"), entry, 0.0, _at_most_one)
        except Refused:
            return False
        return True

    admitted = await asyncio.gather(*(submit(replicas[n % 2], n) for n in range(12)))
    assert sum(admitted) == 1
    assert len(await replicas[0].usage(who, 0.0)) == 1


async def test_two_replicas_never_claim_the_same_orphan(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    for n in range(6):
        await replicas[0].create_campaign(_campaign(f"orph{n:04d}"))
    orphans = await replicas[0].orphans(time.time() + 1)
    assert len(orphans) == 6
    now = time.time()

    async def claim(store: PostgresStore, owner: str, cid: str) -> str | None:
        return owner if await store.claim(cid, owner, now, now - 30) else None

    for cid in orphans:
        winners = await asyncio.gather(
            *(claim(replicas[n % 2], f"replica-{n}", cid) for n in range(6))
        )
        assert len([w for w in winners if w]) == 1
    assert await replicas[1].orphans(time.time() - 30) == []


async def test_leases_are_judged_on_the_databases_clock(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    cid = await make_orphan(replicas[0], TerminalOrigin())
    late = Ownership(replicas[0], lease_s=30.0, clock=lambda: time.time() - 3600)  # 1 h behind
    on_time = Ownership(replicas[1], lease_s=30.0)
    assert await late.claim(cid)
    # on its host's clock its beat is an hour old; on the database's it is fresh
    assert not await on_time.claim(cid)
    assert await replicas[1].orphans(time.time() - 30) == []
    lease = (await replicas[1].unfinished())[0]
    assert lease.owner == late.owner
    assert lease.heartbeat_at is not None and abs(lease.heartbeat_at - time.time()) < 5
    quick = Ownership(replicas[1], lease_s=0.2)
    assert not await quick.claim(cid)
    await asyncio.sleep(0.3)  # the lease lapses on the database's clock
    assert await quick.claim(cid)
    assert not await late.beat(cid, late.fresh_stop())


async def test_a_fenced_write_is_refused_for_a_replica_that_does_not_own_it(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    cid = await make_orphan(replicas[0], TerminalOrigin())
    now = time.time()
    assert await replicas[0].claim(cid, "owner-a", now, now - 30)
    step = StepRecord(0, StepName.IMAGE, StepStatus.RUNNING, 1)
    with pytest.raises(LeaseLost):
        await replicas[1].save_step(cid, step, "owner-b")
    with pytest.raises(LeaseLost):
        await replicas[1].save_status(cid, CampaignStatus.CANCELED, owner="owner-b")
    with pytest.raises(LeaseLost):
        await replicas[1].save_plan(cid, "pred-1", None, "owner-b")
    await replicas[0].save_step(cid, step, "owner-a")
    stored = await replicas[1].get(cid)
    assert stored.status is CampaignStatus.RUNNING
    assert stored.products[0].step(StepName.IMAGE).status is StepStatus.RUNNING  # type: ignore[union-attr]


async def test_a_cancel_notice_reaches_the_other_replica_at_once(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    cid = await make_orphan(replicas[0], TerminalOrigin())
    await replicas[0].notices.listen()
    waiting = asyncio.create_task(replicas[0].wait_cancel(cid, 60.0))
    await asyncio.sleep(0.05)
    await replicas[1].request_cancel(cid)
    await asyncio.wait_for(waiting, 5.0)  # the notice, not the 60 s poll
    other = asyncio.create_task(replicas[0].wait_cancel("someone-else", 0.2))
    await replicas[1].request_cancel(cid)  # another campaign's notice wakes nobody else
    await other


async def test_a_run_stops_at_a_cancel_from_another_replica_before_its_poll(
    replicas: tuple[PostgresStore, PostgresStore], tmp_path: Path, bot_main: ModuleType
) -> None:
    settings = fixture_settings(tmp_path).model_copy(update={"lease_s": 300.0})
    gen = GatedGenerator()
    executor = LocalExecutor(gen, settings.limits)
    service = bot_main.wire(
        settings,
        store=replicas[0],
        generator=gen,
        executor=executor,
        sheet=fake_sheet,
        cancel_poll_s=60.0,  # the poll would take a minute
    )
    try:
        campaign = await service.submit(CampaignRequest(theme="noticed cats", products=1))
        await gen.wait_started(1)
        await replicas[1].request_cancel(campaign.id)  # another replica's /cancel
        done = await asyncio.wait_for(service.wait(campaign.id), 10.0)
        assert done.status is CampaignStatus.CANCELED
    finally:
        await service.aclose()
        await executor.aclose()


async def test_replicas_starting_at_once_migrate_a_new_database_once(
    pg_server: PgServer,
) -> None:
    url = pg_server.new_database(migrated=False)
    stores = await asyncio.gather(*(PostgresStore.open(url) for _ in range(3)))
    try:
        versions = await stores[0]._conn.select("SELECT version FROM schema_version")
        files = sorted((ROOT / "storage" / "migrations" / "postgres").glob("V*.sql"))
        assert [row[0] for row in versions] == list(range(1, len(files) + 1))  # each once
        await stores[1].create_campaign(_campaign("migrated"))
        assert (await stores[2].get("migrated")).id == "migrated"
    finally:
        for store in stores:
            await store.close()


async def test_postgres_scheme_and_libpq_parameters_in_the_query(pg_server: PgServer) -> None:
    url = pg_server.new_database().replace("postgresql://", "postgres://")
    store = await PostgresStore.open(f"{url}?sslmode=disable&application_name=campaign-bot")
    try:
        found = await store._conn.select_one("SELECT current_setting('application_name')")
        assert found is not None and found[0] == "campaign-bot"
    finally:
        await store.close()


async def test_open_store_opens_postgresql_from_the_settings(pg_url: str, tmp_path: Path) -> None:
    store = await open_store(fixture_settings(tmp_path, database_url=pg_url))
    try:
        assert isinstance(store, PostgresStore)
        assert pg_url.split(":")[2].split("@")[0] not in repr(store)
    finally:
        await store.close()


@pytest.mark.parametrize("where", ["wrong password", "nobody listening"])
async def test_the_password_never_appears_in_a_connection_error(
    pg_server: PgServer, where: str, tmp_path: Path
) -> None:
    secret = "hunter2-Sup3rSecret"
    url = pg_server.url("postgres", password=secret)
    if where == "nobody listening":
        url = url.replace(f":{pg_server.port}/", ":1/")
    settings: CoreSettings = fixture_settings(tmp_path, database_url=f"{url}?sslmode=disable")
    with pytest.raises(ConfigError) as caught:
        await open_store(settings)
    text = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert secret not in text
    assert "postgresql://postgres:***@127.0.0.1:" in str(caught.value)
    assert secret not in repr(settings) and secret not in settings.model_dump_json()


def test_redact_hides_the_password_wherever_it_is() -> None:
    assert redact("postgresql://bot:pw@db:5432/camp?sslmode=require") == (
        "postgresql://bot:***@db:5432/camp?sslmode=require"
    )
    assert redact("postgres://db/camp?user=bot&password=pw") == (
        "postgres://db/camp?user=bot&password=***"
    )
    assert redact("postgresql:///camp") == "postgresql:///camp"


async def test_ping_says_the_database_is_writable(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    assert await replicas[0].ping() == "writable"


async def test_psycopg_errors_of_a_query_are_not_wrapped(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    await replicas[0].create_campaign(_campaign("same0000"))
    with pytest.raises(psycopg.IntegrityError):
        await replicas[1].create_campaign(_campaign("same0000"))


async def test_two_replicas_take_consecutive_create_slots(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = replicas
    asked = await asyncio.gather(
        *(store.reserve_creates("acct", 10.0, burst=2) for store in (first, second) * 2),
        first.reserve_creates("acct", 10.0, burst=2, count=2),
    )
    # a burst of 2 free now, then one slot each 10 s: no two replicas share a slot, and
    # two slots asked for at once are two consecutive ones
    assert sorted(round(w) for waits in asked for w in waits) == [0, 0, 10, 20, 30, 40]
    assert asked[-1][1] - asked[-1][0] == pytest.approx(10.0)


async def test_a_429_on_one_replica_pauses_the_other(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = replicas
    await first.pause_creates("acct", 30.0)
    assert 29.0 < (await second.reserve_creates("acct", 0.1, burst=10))[0] <= 30.0


async def test_a_request_is_taken_by_one_replica(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = replicas
    taken = await asyncio.gather(
        first.first_time(["slack:trigger-1"], 60.0), second.first_time(["slack:trigger-1"], 60.0)
    )
    assert sorted(taken) == [False, True]
    assert not await first.first_time(["slack:sig-9", "slack:trigger-1"], 60.0)
    assert await second.first_time(["discord:1234"], 60.0) and await first.first_time([], 60.0)
