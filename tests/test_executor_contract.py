"""The executor contract: every Executor implementation must pass these tests.

They run against the LocalExecutor and the RayExecutor (on the session's
real local Ray). The generator is picklable and keeps its gates and counters
in files, so the same assertions hold when it runs inside Ray actors.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.local_executor import LocalExecutor
from core.errors import LeaseLost, PermanentStepError, TransientStepError
from core.model import ProductPlan, StepName
from core.ports import Executor, Generator, StepHooks, StepJob, StepOutput
from core.scheduler import Limits
from tests.fakes import UrlReportingGenerator, raise_value_error, wait_for_file, worker_pid
from tests.fakes.file_gates import FileGatedGenerator

LIMITS = Limits(text=1, image=2, video=1, cpu=2)
ExecutorFactory = Callable[[Generator], Executor]


def _local(gen: Generator) -> Executor:
    return LocalExecutor(gen, LIMITS)


def _ray(gen: Generator) -> Executor:
    from adapters.ray_exec.executor import RayExecutor
    from adapters.ray_exec.settings import RaySettings

    return RayExecutor(gen, LIMITS, RaySettings(actors_per_kind=1))


EXECUTORS: dict[str, ExecutorFactory] = {"local": _local, "ray": _ray}


@pytest.fixture(params=sorted(EXECUTORS))
async def make_executor(request: pytest.FixtureRequest) -> AsyncIterator[ExecutorFactory]:
    if request.param == "ray":
        request.getfixturevalue("ray_local")
    made: list[Executor] = []

    def factory(gen: Generator) -> Executor:
        made.append(EXECUTORS[request.param](gen))
        return made[-1]

    yield factory
    for executor in made:
        await executor.aclose()


@pytest.fixture
def gates(tmp_path: Path) -> Path:
    return tmp_path / "gates"


def _job(tmp_path: Path, index: int, step: StepName = StepName.IMAGE) -> StepJob:
    plan = ProductPlan(index, f"P{index}", "mug", "t", "ip", "vp")
    return StepJob("c1", step, plan, "neon", index, str(tmp_path / "out"))


async def _nothing(_value: str) -> None:
    return None


HOOKS = StepHooks(_nothing, _nothing)


class RecordingHooks:
    """Hooks that record what reached the driver, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.hooks = StepHooks(self._report, self._remember, self._output_ready)

    async def _report(self, message: str) -> None:
        self.seen.append(("report", message))

    async def _output_ready(self, url: str) -> None:
        self.seen.append(("output_url", url))

    async def _remember(self, provider_id: str) -> None:
        self.seen.append(("provider_id", provider_id))


async def test_steps_the_scheduler_admits_all_run_at_once(
    make_executor: ExecutorFactory, tmp_path: Path, gates: Path
) -> None:
    """No gate below the Scheduler's: as many steps as the limits allow start together.

    (That the Scheduler keeps each kind within its limit: tests/test_scheduler.py.)
    """
    gen = FileGatedGenerator(gates)
    executor = make_executor(gen)
    images = [
        asyncio.create_task(executor.run_step(_job(tmp_path, i), HOOKS))
        for i in range(LIMITS.image)
    ]
    video = asyncio.create_task(executor.run_step(_job(tmp_path, 9, StepName.VIDEO), HOOKS))
    await gen.wait_started(LIMITS.image + LIMITS.video)  # would time out behind a gate
    assert (gen.running["image"], gen.running["video"]) == (LIMITS.image, LIMITS.video)
    gen.open(*[(i, "image") for i in range(LIMITS.image)], (9, "video"))
    results = await asyncio.gather(*images, video)
    assert all(isinstance(r, StepOutput) for r in results)


async def test_hooks_reach_the_driver_while_the_step_runs(
    make_executor: ExecutorFactory, tmp_path: Path, gates: Path
) -> None:
    gen = FileGatedGenerator(gates)
    executor = make_executor(gen)
    recorder = RecordingHooks()
    task = asyncio.create_task(executor.run_step(_job(tmp_path, 0), recorder.hooks))
    await gen.wait_started(1)  # the generator is now waiting for its gate
    await gen.wait_until(lambda: len(recorder.seen) == 2, "hook calls on the driver")
    assert recorder.seen == [("provider_id", "pred-0-image"), ("report", "working")]
    assert not task.done()
    gen.open((0, "image"))
    out = await task
    assert (Path(out.path).read_text(), out.provider_id, out.cost_usd) == (
        "input=None",
        "pred-0-image",
        0.01,
    )
    assert out.worker  # "local", or the Ray node id


async def test_output_url_reaches_the_driver_before_the_result(
    make_executor: ExecutorFactory, tmp_path: Path
) -> None:
    """A chained step may start from the URL: it must arrive, and the output must carry it."""
    executor = make_executor(UrlReportingGenerator())
    recorder = RecordingHooks()
    video = replace(
        _job(tmp_path, 3, StepName.VIDEO), input_url="https://example.invalid/3-image.png"
    )
    out = await executor.run_step(video, recorder.hooks)
    assert recorder.seen == [("output_url", "https://example.invalid/3-video.png")]
    assert out.url == "https://example.invalid/3-video.png"
    assert Path(out.path).read_text() == "input_url=https://example.invalid/3-image.png"


async def test_step_errors_keep_their_type(
    make_executor: ExecutorFactory, tmp_path: Path, gates: Path
) -> None:
    executor = make_executor(FileGatedGenerator(gates, open_all=True, fail={(0, "image")}))
    with pytest.raises(PermanentStepError, match="model said no") as caught:
        await executor.run_step(_job(tmp_path, 0), HOOKS)
    assert str(caught.value) == "model said no to image 0"
    ok = await executor.run_step(_job(tmp_path, 1), HOOKS)  # the failure stays isolated
    assert Path(ok.path).exists()


async def test_retry_material_crosses_the_executor(
    make_executor: ExecutorFactory, tmp_path: Path, gates: Path
) -> None:
    """What a retry needs: the stored prediction id goes in, a transient error comes out."""
    gen = FileGatedGenerator(gates, open_all=True, busy={(1, "image")})
    executor = make_executor(gen)
    resumed = replace(_job(tmp_path, 0), provider_id="pred-stored")
    out = await executor.run_step(resumed, HOOKS)
    assert isinstance(out, StepOutput)
    assert [(key, given) for key, given, _pid in gen.calls] == [((0, "image"), "pred-stored")]
    with pytest.raises(TransientStepError, match="provider busy") as caught:
        await executor.run_step(_job(tmp_path, 1), HOOKS)
    assert caught.value.delay_s == 2.5  # the delay survives the trip, for the retry loop


async def test_cancel_reaches_the_running_step(
    make_executor: ExecutorFactory, tmp_path: Path, gates: Path
) -> None:
    gen = FileGatedGenerator(gates)
    executor = make_executor(gen)
    task = asyncio.create_task(executor.run_step(_job(tmp_path, 0), HOOKS))
    await gen.wait_started(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gen.wait_until(lambda: gen.canceled == [(0, "image")], "the cancel in the generator")
    assert gen.canceled == [(0, "image")]
    gen.open_every_gate()  # the slot was given back
    assert isinstance(await executor.run_step(_job(tmp_path, 1), HOOKS), StepOutput)


async def test_intent_and_lease_cross_the_executor(
    make_executor: ExecutorFactory, tmp_path: Path, gates: Path
) -> None:
    """before_spend runs on the driver; its LeaseLost comes back as LeaseLost, unpaid."""
    gen = FileGatedGenerator(gates, open_all=True)
    executor = make_executor(gen)
    intents: list[str] = []

    async def record(sent: str) -> None:
        intents.append(sent)

    async def refuse(_sent: str) -> None:
        raise LeaseLost("c1")

    await executor.run_step(_job(tmp_path, 0), replace(HOOKS, before_spend=record))
    assert intents == ['{"prompt": "0 image"}'] and gen.spent == [(0, "image")]  # the input too
    with pytest.raises(LeaseLost):
        await executor.run_step(_job(tmp_path, 1), replace(HOOKS, before_spend=refuse))
    assert gen.spent == [(0, "image")]  # nothing paid without the lease


async def test_a_hand_over_stop_reaches_the_step(
    make_executor: ExecutorFactory, tmp_path: Path, gates: Path
) -> None:
    """keep_on_stop is asked when the step is cancelled: it leaves its prediction running."""
    gen = FileGatedGenerator(gates)
    executor = make_executor(gen)
    task = asyncio.create_task(
        executor.run_step(_job(tmp_path, 0), replace(HOOKS, keep_on_stop=lambda: True))
    )
    await gen.wait_started(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gen.wait_until(lambda: gen.kept == [(0, "image")], "the hand-over in the generator")
    assert gen.canceled == []


async def test_cpu_work_runs_in_another_process(
    make_executor: ExecutorFactory, gates: Path
) -> None:
    executor = make_executor(FileGatedGenerator(gates))
    pid, doubled = await executor.run_cpu(worker_pid, 21)
    assert doubled == 42
    assert pid != os.getpid()


async def test_cpu_work_does_not_block_the_event_loop(
    make_executor: ExecutorFactory, tmp_path: Path, gates: Path
) -> None:
    executor = make_executor(FileGatedGenerator(gates))
    gate = tmp_path / "gate"
    pending = asyncio.create_task(executor.run_cpu(wait_for_file, str(gate)))
    await asyncio.sleep(0)
    gate.write_text("written by the loop")  # only possible while the worker waits
    assert await pending == "written by the loop"


async def test_cpu_errors_keep_their_type(make_executor: ExecutorFactory, gates: Path) -> None:
    executor = make_executor(FileGatedGenerator(gates))
    with pytest.raises(ValueError, match="bad pixels") as caught:
        await executor.run_cpu(raise_value_error, "bad pixels")
    assert str(caught.value) == "bad pixels"


async def test_describe_names_the_executor(make_executor: ExecutorFactory, gates: Path) -> None:
    executor = make_executor(FileGatedGenerator(gates))
    await executor.run_cpu(worker_pid, 1)  # started: the description names what it runs on
    assert executor.name in ("local", "ray")
    assert executor.describe()
    if executor.name == "ray":
        assert executor.describe() == "local Ray: 2 CPUs"
