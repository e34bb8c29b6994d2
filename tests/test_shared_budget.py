"""One create budget per database: processes on one store share the account's schedule.

Two stores opened on one SQLite file are two processes of one host (each its own
connection); the fake Replicate refuses creates beyond the account's rate (429).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.replicate_api.predictions import PredictionApi
from adapters.replicate_api.shared_rate import ACCOUNT
from storage.sqlite_store import SqliteStore
from tests.fakes.replicate import TOKEN, FakeReplicate, fast_settings

IMAGE = "black-forest-labs/flux-schnell"
CREATES = 30  # 3 s at the account's rate, after its burst


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def two_stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    first = await SqliteStore.open(tmp_path / "shared.db")
    second = await SqliteStore.open(tmp_path / "shared.db")
    yield first, second
    await first.close()
    await second.close()


OnOneClock = tuple[SqliteStore, SqliteStore, Clock]


@pytest.fixture
def on_one_clock(two_stores: tuple[SqliteStore, SqliteStore]) -> OnOneClock:
    """Two processes' stores on one database, reading one test clock."""
    clock = Clock()
    first, second = two_stores
    first.clock = second.clock = clock
    return first, second, clock


async def test_slots_are_spaced_across_processes_after_a_burst(on_one_clock: OnOneClock) -> None:
    first, second, clock = on_one_clock
    waits = [
        (await store.reserve_creates(ACCOUNT, 0.1, burst=2))[0]
        for store in (first, second, first, second, first)
    ]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])  # a burst of 2, then 0.1 s apart
    clock.now += 10.0  # a quiet spell earns the burst back
    assert (await second.reserve_creates(ACCOUNT, 0.1, burst=2))[0] == 0.0


async def test_slots_reserved_together_are_the_slots_reserved_one_by_one(
    on_one_clock: OnOneClock,
) -> None:
    first, second, _clock = on_one_clock
    assert await first.reserve_creates(ACCOUNT, 0.1, burst=2, count=4) == pytest.approx(
        [0.0, 0.0, 0.1, 0.2]
    )
    assert (await second.reserve_creates(ACCOUNT, 0.1, burst=2))[0] == pytest.approx(0.3)


async def test_a_429_pauses_every_process(on_one_clock: OnOneClock) -> None:
    first, second, _clock = on_one_clock
    await first.pause_creates(ACCOUNT, 5.0)
    assert (await second.reserve_creates(ACCOUNT, 0.1, burst=10))[0] == pytest.approx(5.0)
    assert (await first.reserve_creates(ACCOUNT, 0.1, burst=10))[0] == pytest.approx(5.1)


async def test_a_key_is_taken_once_across_processes(on_one_clock: OnOneClock) -> None:
    first, second, clock = on_one_clock
    assert await first.first_time(["slack:sig-1", "slack:trigger-1"], keep_s=60.0)
    assert not await second.first_time(["slack:sig-2", "slack:trigger-1"], keep_s=60.0)
    assert not await first.first_time(["slack:sig-2"], keep_s=60.0)  # remembered even so
    clock.now += 61.0
    assert await second.first_time(["slack:trigger-1"], keep_s=60.0)  # forgotten after keep_s
    assert await first.first_time([], keep_s=60.0)


@pytest.fixture
async def account() -> AsyncIterator[FakeReplicate]:
    """An account allowing 600 creates a minute (10 a second), with a burst of 10."""
    server = FakeReplicate(token=TOKEN, create_rate_per_min=600, burst_s=1.0)
    await server.start()
    yield server
    await server.stop()


async def test_two_processes_told_the_rate_stay_under_it_together(
    two_stores: tuple[SqliteStore, SqliteStore], account: FakeReplicate
) -> None:
    told = fast_settings(account, create_per_min=600.0, burst_s=1.0, create_attempts=1)
    apis = [PredictionApi(told, shared=lambda store=store: store) for store in two_stores]
    try:
        made = await asyncio.gather(
            *(apis[i % 2].create(IMAGE, {"prompt": f"p{i}"}) for i in range(CREATES))
        )
    finally:
        for api in apis:
            await api.aclose()
    assert len({m.id for m in made}) == CREATES == len(account.created())
    assert account.throttled == 0  # one schedule: no self-made 429


async def test_alone_each_process_would_exceed_the_rate(account: FakeReplicate) -> None:
    told = fast_settings(account, create_per_min=600.0, burst_s=1.0, create_attempts=1)
    apis = [PredictionApi(told), PredictionApi(told)]  # each its own budget (the old way)
    try:
        await asyncio.gather(
            *(apis[i % 2].create(IMAGE, {"prompt": f"p{i}"}) for i in range(CREATES))
        )
    finally:
        for api in apis:
            await api.aclose()
    assert account.throttled > 0  # what the shared schedule prevents
