"""FairLimiter: capacity, round-robin between campaigns, cancellation safety."""

from __future__ import annotations

import asyncio

import pytest

from core.model import StepKind
from core.scheduler import FairLimiter, Limits, Scheduler


async def _holder(
    limiter: FairLimiter, key: str, order: list[str], release: asyncio.Event, name: str
) -> None:
    async with limiter.slot(key):
        order.append(name)
        await release.wait()


async def test_waiters_are_served_round_robin_across_keys() -> None:
    limiter = FairLimiter(1)
    order: list[str] = []
    gates = {n: asyncio.Event() for n in ("first", "a1", "a2", "a3", "b1", "b2")}
    first = asyncio.create_task(_holder(limiter, "a", order, gates["first"], "first"))
    await asyncio.sleep(0)
    tasks = [
        asyncio.create_task(_holder(limiter, n[0], order, gates[n], n))
        for n in ("a1", "a2", "a3", "b1", "b2")
    ]
    await asyncio.sleep(0)
    for name in ("first", "a1", "b1", "a2", "b2", "a3"):
        gates[name].set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.gather(first, *tasks)
    # the big campaign "a" queued three steps first, yet "b" is served every other turn
    assert order == ["first", "a1", "b1", "a2", "b2", "a3"]
    assert limiter.in_use == 0


async def test_capacity_is_never_exceeded() -> None:
    limiter = FairLimiter(3)
    peak = 0
    release = asyncio.Event()

    async def worker(i: int) -> None:
        nonlocal peak
        async with limiter.slot(f"c{i % 2}"):
            peak = max(peak, limiter.in_use)
            await release.wait()

    tasks = [asyncio.create_task(worker(i)) for i in range(10)]
    await asyncio.sleep(0)
    assert limiter.in_use == 3
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 3
    assert limiter.in_use == 0


async def test_cancelled_waiter_gives_up_its_place() -> None:
    limiter = FairLimiter(1)
    release = asyncio.Event()
    order: list[str] = []
    holder = asyncio.create_task(_holder(limiter, "a", order, release, "holder"))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(_holder(limiter, "b", order, asyncio.Event(), "never"))
    late = asyncio.create_task(_holder(limiter, "c", order, release, "late"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await asyncio.gather(holder, late)
    assert order == ["holder", "late"]
    assert limiter.in_use == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FairLimiter(0)


def test_scheduler_has_one_limiter_per_kind() -> None:
    scheduler = Scheduler(Limits(text=1, image=2, video=3, cpu=4))
    assert [scheduler.limits.of(k) for k in StepKind] == [1, 2, 3, 4]
    assert all(scheduler.in_use(k) == 0 for k in StepKind)
