"""The executor contract: every Executor implementation must pass these tests.

The Ray executor (issue 4) adds itself to EXECUTORS.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from adapters.local_executor import LocalExecutor
from core.errors import PermanentStepError
from core.model import ProductPlan, StepName
from core.ports import Executor, Generator, StepHooks, StepJob, StepOutput
from core.scheduler import Limits
from tests.fakes import GatedGenerator, raise_value_error, wait_for_file, worker_pid

LIMITS = Limits(text=1, image=2, video=1, cpu=2)
ExecutorFactory = Callable[[Generator], Executor]
EXECUTORS: dict[str, ExecutorFactory] = {
    "local": lambda gen: LocalExecutor(gen, LIMITS),
}


@pytest.fixture(params=sorted(EXECUTORS))
async def make_executor(request: pytest.FixtureRequest) -> AsyncIterator[ExecutorFactory]:
    made: list[Executor] = []

    def factory(gen: Generator) -> Executor:
        made.append(EXECUTORS[request.param](gen))
        return made[-1]

    yield factory
    for executor in made:
        await executor.aclose()


def _job(tmp_path: Path, index: int, step: StepName = StepName.IMAGE) -> StepJob:
    plan = ProductPlan(index, f"P{index}", "mug", "t", "ip", "vp")
    return StepJob("c1", step, plan, "neon", index, str(tmp_path))


async def _nothing(_value: str) -> None:
    return None


HOOKS = StepHooks(_nothing, _nothing)


async def test_step_limit_per_kind(make_executor: ExecutorFactory, tmp_path: Path) -> None:
    gen = GatedGenerator()
    executor = make_executor(gen)
    tasks = [asyncio.create_task(executor.run_step(_job(tmp_path, i), HOOKS)) for i in range(5)]
    video = asyncio.create_task(executor.run_step(_job(tmp_path, 9, StepName.VIDEO), HOOKS))
    await gen.wait_started(3)  # two images (the limit) and the video, which has its own
    assert (gen.running["image"], gen.running["video"]) == (2, 1)
    gen.open(*[(i, "image") for i in range(5)], (9, "video"))
    results = await asyncio.gather(*tasks, video)
    assert all(isinstance(r, StepOutput) for r in results)
    assert gen.peak["image"] == 2


async def test_step_errors_keep_their_type(make_executor: ExecutorFactory, tmp_path: Path) -> None:
    executor = make_executor(GatedGenerator(open_all=True, fail={(0, "image")}))
    with pytest.raises(PermanentStepError, match="model said no"):
        await executor.run_step(_job(tmp_path, 0), HOOKS)
    ok = await executor.run_step(_job(tmp_path, 1), HOOKS)  # the failure stays isolated
    assert Path(ok.path).exists()


async def test_cancel_reaches_the_running_step(
    make_executor: ExecutorFactory, tmp_path: Path
) -> None:
    gen = GatedGenerator()
    executor = make_executor(gen)
    task = asyncio.create_task(executor.run_step(_job(tmp_path, 0), HOOKS))
    await gen.started[(0, "image")].wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gen.canceled == [(0, "image")]
    gen.open_all = True  # the slot was given back
    assert isinstance(await executor.run_step(_job(tmp_path, 1), HOOKS), StepOutput)


async def test_cpu_work_runs_in_another_process(make_executor: ExecutorFactory) -> None:
    executor = make_executor(GatedGenerator())
    pid, doubled = await executor.run_cpu(worker_pid, 21)
    assert doubled == 42
    assert pid != os.getpid()


async def test_cpu_work_does_not_block_the_event_loop(
    make_executor: ExecutorFactory, tmp_path: Path
) -> None:
    executor = make_executor(GatedGenerator())
    gate = tmp_path / "gate"
    pending = asyncio.create_task(executor.run_cpu(wait_for_file, str(gate)))
    await asyncio.sleep(0)
    gate.write_text("written by the loop")  # only possible while the worker waits
    assert await pending == "written by the loop"


async def test_cpu_errors_keep_their_type(make_executor: ExecutorFactory) -> None:
    executor = make_executor(GatedGenerator())
    with pytest.raises(ValueError, match="bad pixels"):
        await executor.run_cpu(raise_value_error, "bad pixels")


async def test_describe_names_the_executor(make_executor: ExecutorFactory) -> None:
    executor = make_executor(GatedGenerator())
    assert executor.name in ("local", "ray")
    assert executor.describe()
