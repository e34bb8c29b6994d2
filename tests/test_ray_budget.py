"""Ray's step actors take their creates' slots from the account's one schedule, with the bot's
own process and every other process of the database.

The store hands out a schedule that pickles as where the database is (a SQLite path,
a PostgreSQL URL kept secret) and connects again in the process it lands in. The
fake Replicate refuses creates beyond the account's rate (429); a trigger on the real
`create_budget` row counts every slot reserved, whoever reserved it.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import sqlite3
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from pydantic import SecretStr

from adapters.replicate_api.generator import ReplicateGenerator
from adapters.replicate_api.predictions import PredictionApi
from adapters.replicate_api.shared_rate import ACCOUNT, PortableRate
from core.model import CampaignStatus
from core.request import CampaignRequest
from core.scheduler import Limits
from storage.open import Store
from storage.postgres.schedule import PostgresSchedule
from storage.sqlite.schedule import SqliteSchedule
from storage.sqlite_store import SqliteStore
from tests.fakes.replicate import TOKEN, FakeReplicate, fast_settings
from tests.ray_fixtures import replicate_on_ray

IMAGE = "black-forest-labs/flux-schnell"
LIMITS = Limits(text=2, image=8, video=8, cpu=2)
OTHERS = 6  # creates another process sends meanwhile
PASSWORD = "s3cret-pw"

# --- the schedule as a value ----------------------------------------------------------


def test_a_postgres_schedule_pickles_without_its_password_in_any_repr() -> None:
    url = f"postgresql://bot:{PASSWORD}@db.internal:5432/campaigns?sslmode=require"
    schedule = PostgresSchedule(SecretStr(url))
    runtime = ReplicateGenerator(fast_settings(FakeReplicate())).runtime
    runtime.shared = schedule
    state = runtime.__getstate__()  # what travels to a Ray actor
    travelled = pickle.loads(pickle.dumps(runtime))
    assert isinstance(travelled.shared, PostgresSchedule)  # nothing opened: no server here
    assert travelled.shared.url.get_secret_value() == url
    for shown in (repr(schedule), repr(state), repr(travelled.shared)):
        assert PASSWORD not in shown
    assert repr(schedule) == (
        "PostgresSchedule(postgresql://bot:***@db.internal:5432/campaigns?sslmode=require)"
    )


async def test_the_store_stays_home_and_its_schedule_travels(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "campaigns.db")
    runtime = ReplicateGenerator(fast_settings(FakeReplicate())).runtime
    try:
        runtime.shared = store  # a store is no portable schedule: it stays in its process
        assert not isinstance(store, PortableRate)
        assert pickle.loads(pickle.dumps(runtime)).shared is None
        await runtime.share(store, store.create_schedule())  # as bot.py wires it
        assert runtime.shared is store  # here: the store's own connection, no second one
        travelled = pickle.loads(pickle.dumps(runtime)).shared
        assert isinstance(travelled, SqliteSchedule) and travelled.path == store.path
        assert (await travelled.reserve_creates(ACCOUNT, 1.0, burst=1))[0] == 0.0
        assert (await runtime.shared.reserve_creates(ACCOUNT, 1.0, burst=1))[0] == pytest.approx(
            1.0, abs=0.1
        )  # one schedule: the slot after the one the travelled copy took
        await travelled.aclose()
    finally:
        await runtime.aclose()
        await store.close()


async def test_a_sqlite_file_of_another_host_leaves_the_local_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "elsewhere" / "campaigns.db"  # the store's host has it, not this one
    schedule = pickle.loads(pickle.dumps(SqliteSchedule(missing)))
    assert caplog.records == []  # unpickled, nothing was opened
    with caplog.at_level(logging.WARNING):
        waits = [(await schedule.reserve_creates(ACCOUNT, 1.0, burst=1))[0] for _ in range(3)]
        await schedule.pause_creates(ACCOUNT, 5.0)
    await schedule.aclose()
    assert waits == [0.0, 0.0, 0.0]  # the process's own bucket alone
    assert not missing.exists() and not missing.parent.exists()  # nothing created
    (warning,) = [r.getMessage() for r in caplog.records]  # said once
    assert "keeps its own create budget" in warning and str(missing) in warning


async def test_a_file_that_is_not_the_stores_leaves_the_local_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = tmp_path / "campaigns.db"
    sqlite3.connect(other).close()  # another host's empty file at the same path
    schedule = SqliteSchedule(other)
    with caplog.at_level(logging.WARNING):
        assert (await schedule.reserve_creates(ACCOUNT, 1.0, burst=1))[0] == 0.0
    await schedule.aclose()
    assert "no such table" in caplog.text


# --- creates from Ray actors, the bot and another process, on one schedule -------------


def slots_handed_out(store: Store, url: str | None) -> int:
    """How many create slots the account's schedule has handed out in all."""
    query = "SELECT coalesce(sum(slots), 0) FROM create_budget"
    if url is None:
        assert isinstance(store, SqliteStore)
        with sqlite3.connect(store.path) as db:
            return int(db.execute(query).fetchone()[0])
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0


async def other_process(store: Store, account: FakeReplicate) -> None:
    """Another process of the database sending creates meanwhile (its own connection)."""
    schedule = store.create_schedule()
    told = fast_settings(account, create_per_min=600.0, burst_s=1.0, create_attempts=1)
    api = PredictionApi(told, shared=lambda: schedule)
    try:
        await asyncio.gather(*(api.create(IMAGE, {"prompt": f"other {i}"}) for i in range(OTHERS)))
    finally:
        await api.aclose()
        await schedule.aclose()


@pytest.mark.both_stores
@pytest.mark.usefixtures("ray_local")
async def test_creates_from_ray_actors_keep_to_the_accounts_one_schedule(
    store: Store,
    store_kind: str,
    tmp_path: Path,
    bot_main: ModuleType,
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue("pg_url") if store_kind == "postgres" else None
    account = FakeReplicate(token=TOKEN, create_rate_per_min=600, burst_s=1.0)
    await account.start()
    told = fast_settings(account, create_per_min=600.0, burst_s=1.0, create_attempts=1)
    generator = ReplicateGenerator(told)  # told the account's rate
    await bot_main.attach_store(generator, store, read_now=False)
    service, executor = replicate_on_ray(bot_main, tmp_path, store, generator, LIMITS, 2)
    try:
        async with asyncio.timeout(100):
            *campaigns, _ = await asyncio.gather(
                service.run(CampaignRequest(theme="north cats", products=4, videos=True)),
                service.run(CampaignRequest(theme="south cats", products=4, videos=True)),
                other_process(store, account),
            )
    finally:
        await service.aclose()
        await executor.aclose()
        await generator.aclose()
        await account.stop()
    assert all(c.status is CampaignStatus.SUCCEEDED for c in campaigns)
    assert all(s.worker != "local" for c in campaigns for s in c.steps())  # on the actors
    assert (len(account.made("image")), len(account.made("video"))) == (8 + OTHERS, 8)
    planned = sum(len(c.plan_calls) for c in campaigns)
    assert len(account.made("text")) == planned and account.repeated() == []  # each paid once
    assert account.throttled == 0  # one schedule for all: no self-made 429
    assert slots_handed_out(store, url) == len(account.created())  # each create took a slot
