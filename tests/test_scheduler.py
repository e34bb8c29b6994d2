"""FairLimiter: capacity, round-robin between campaigns, cancellation safety.

The Scheduler is the one gate per kind: executors run what they are given, so
the per-kind limits hold on every executor only because of it (tested here on
both, with a generator in other processes for Ray).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.local_executor import LocalExecutor
from core.model import ProductPlan, StepKind, StepName
from core.ports import Executor, StepHooks, StepJob, StepOutput
from core.scheduler import FairLimiter, Limits, Scheduler
from tests.fakes.file_gates import FileGatedGenerator

LIMITS = Limits(text=1, image=2, video=1, cpu=2)


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


async def _nothing(_value: str) -> None:
    return None


@pytest.fixture(params=["local", "ray"])
async def gated(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[FileGatedGenerator, Executor]]:
    """A file-gated generator on each executor (Ray: the session's local Ray)."""
    gen = FileGatedGenerator(tmp_path / "gates")
    executor: Executor
    if request.param == "ray":
        request.getfixturevalue("ray_local")
        from adapters.ray_exec.executor import RayExecutor
        from adapters.ray_exec.settings import RaySettings

        executor = RayExecutor(gen, LIMITS, RaySettings(actors_per_kind=1))
    else:
        executor = LocalExecutor(gen, LIMITS)
    yield gen, executor
    gen.open_every_gate()
    await executor.aclose()


def _job(tmp_path: Path, index: int, step: StepName = StepName.IMAGE) -> StepJob:
    plan = ProductPlan(index, f"P{index}", "mug", "t", "ip", "vp")
    return StepJob("c1", step, plan, "neon", index, str(tmp_path / "out"))


async def test_the_scheduler_keeps_each_kind_within_its_limit_on_any_executor(
    gated: tuple[FileGatedGenerator, Executor], tmp_path: Path
) -> None:
    gen, executor = gated
    scheduler = Scheduler(LIMITS)
    hooks = StepHooks(_nothing, _nothing)

    async def run(job: StepJob) -> StepOutput:
        async with scheduler.slot(job.kind, job.campaign_id):
            return await executor.run_step(job, hooks)

    tasks = [asyncio.create_task(run(_job(tmp_path, i))) for i in range(5)]
    video = asyncio.create_task(run(_job(tmp_path, 9, StepName.VIDEO)))
    await gen.wait_started(3)  # two images (the limit) and the video, which has its own
    assert (gen.running["image"], gen.running["video"]) == (2, 1)
    assert (scheduler.in_use(StepKind.IMAGE), scheduler.in_use(StepKind.VIDEO)) == (2, 1)
    gen.open(*[(i, "image") for i in range(5)], (9, "video"))
    results = await asyncio.gather(*tasks, video)
    assert all(isinstance(r, StepOutput) for r in results)
    assert gen.peak["image"] == 2
    assert sorted(key for key, _id, _pid in gen.calls) == [
        *[(i, "image") for i in range(5)],
        (9, "video"),
    ]
