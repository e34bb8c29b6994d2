"""RayExecutor beyond the shared contract: dead workers, a lost cluster, big arguments.

All on the session's real local Ray (2 CPUs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.ray_exec import executor as ray_executor
from adapters.ray_exec.executor import RayExecutor
from adapters.ray_exec.liveness import Watch
from adapters.ray_exec.settings import RaySettings
from core.model import ProductPlan, StepName
from core.ports import StepHooks, StepJob
from core.scheduler import Limits
from tests.fakes.file_gates import FileGatedGenerator

LIMITS = Limits(text=1, image=2, video=1, cpu=2)
STEP_LIMIT_S = 60.0  # a step or a close that takes this long is hanging: fail with its stack
pytestmark = pytest.mark.usefixtures("ray_local")


class Stored:
    """Hooks that keep what the campaign would store."""

    def __init__(self) -> None:
        self.provider_ids: list[str] = []
        self.hooks = StepHooks(self._report, self._remember)

    async def _report(self, _message: str) -> None:
        return None

    async def _remember(self, provider_id: str) -> None:
        self.provider_ids.append(provider_id)


Made = tuple[FileGatedGenerator, RayExecutor]


@pytest.fixture
async def make_executor(tmp_path: Path) -> AsyncIterator[Callable[[Watch], Made]]:
    """Factory: a gated generator and a RayExecutor watching with these timings."""
    made: list[Made] = []

    def make(watch: Watch) -> Made:
        gen = FileGatedGenerator(tmp_path / "gates")
        made.append((gen, RayExecutor(gen, LIMITS, RaySettings(actors_per_kind=2), watch)))
        return made[-1]

    yield make
    for gen, executor in made:
        gen.open_every_gate()  # an abandoned remote step must not wait forever
        async with asyncio.timeout(STEP_LIMIT_S):
            await executor.aclose()


@pytest.fixture
def gen_and_executor(make_executor: Callable[[Watch], Made]) -> Made:
    return make_executor(Watch())


def _job(tmp_path: Path, index: int) -> StepJob:
    plan = ProductPlan(index, f"P{index}", "mug", "t", "ip", "vp")
    return StepJob("c1", StepName.IMAGE, plan, "neon", index, str(tmp_path / "out"))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_dead_worker_reruns_the_step_elsewhere_with_the_stored_id(
    gen_and_executor: tuple[FileGatedGenerator, RayExecutor], tmp_path: Path
) -> None:
    gen, executor = gen_and_executor
    stored = Stored()
    task = asyncio.create_task(executor.run_step(_job(tmp_path, 0), stored.hooks))
    await gen.wait_started(1)
    (_key, given, first_pid), *_ = gen.calls
    assert (given, stored.provider_ids) == (None, ["pred-0-image"])  # stored before it waited
    os.kill(first_pid, signal.SIGKILL)  # its gate stays shut: only a re-run can finish the step
    await gen.wait_until(lambda: len(gen.calls) >= 2, "the step to run again")
    retried = gen.calls[1]
    assert retried[1] == "pred-0-image"  # re-polls the stored prediction instead of paying again
    assert retried[2] != first_pid
    gen.open_every_gate()
    async with asyncio.timeout(STEP_LIMIT_S):
        out = await task
    assert Path(out.path).exists()
    assert len(out.worker) == 56  # a Ray node id (hex)


async def test_a_frozen_worker_is_given_up_and_the_step_reruns_with_the_stored_id(
    make_executor: Callable[[Watch], Made], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gen, executor = make_executor(Watch(liveness_interval_s=0.2, liveness_timeout_s=3.0))
    caplog.set_level(logging.WARNING, logger=ray_executor.__name__)
    warm_up = [
        asyncio.create_task(executor.run_step(_job(tmp_path, i), Stored().hooks)) for i in (1, 2)
    ]
    await gen.wait_started(2)  # both step actors of the kind are up (one step each)
    gen.open((1, "image"), (2, "image"))
    await asyncio.gather(*warm_up)
    stored = Stored()
    task = asyncio.create_task(executor.run_step(_job(tmp_path, 0), stored.hooks))
    await gen.wait_started(3)
    (key, _given, frozen_pid) = gen.calls[2]
    assert key == (0, "image")
    os.kill(frozen_pid, signal.SIGSTOP)  # alive to Ray, silent to us: Ray reports nothing
    try:
        await gen.wait_until(lambda: len(gen.calls) >= 4, "the step to run again")
        (key, given, pid) = gen.calls[3]
        assert (key, given) == ((0, "image"), "pred-0-image")  # the stored id, re-polled
        assert pid not in (frozen_pid, os.getpid())  # on the other step actor
        gen.open_every_gate()
        async with asyncio.timeout(STEP_LIMIT_S):
            out = await task
    finally:
        os.kill(frozen_pid, signal.SIGKILL)
    assert Path(out.path).exists()
    assert "no answer within 3 s" in caplog.text  # found by the liveness check, not by Ray


async def test_close_is_prompt_when_the_watchdog_has_just_probed(
    make_executor: Callable[[Watch], Made],
) -> None:
    # The CI hang: aclose() cancelled the watchdog in the very loop iteration in which its
    # probe connected; 3.11's asyncio.wait_for swallowed the cancel and the watchdog
    # went on probing for ever while aclose() waited for it.
    probed = asyncio.get_running_loop().create_future()

    async def connect_and_tell(host: str, port: int) -> Any:
        pair = await asyncio.open_connection(host, port)
        if not probed.done():
            probed.set_result(None)  # the test wakes up before the watchdog does
        return pair

    _gen, executor = make_executor(Watch(head_interval_s=0.01, connect=connect_and_tell))
    await executor.start()
    await probed
    async with asyncio.timeout(10):
        await executor.aclose()
    assert executor._watchdog is not None
    assert executor._watchdog.done()


async def test_lost_cluster_finishes_the_remaining_steps_locally(
    make_executor: Callable[[Watch], Made], tmp_path: Path
) -> None:
    gen, executor = make_executor(Watch(head_interval_s=0.05))
    stored = Stored()
    running = asyncio.create_task(executor.run_step(_job(tmp_path, 0), stored.hooks))
    await gen.wait_started(1)
    executor._gcs = ("127.0.0.1", _closed_port())  # the head stops answering its port
    await gen.wait_until(lambda: len(gen.calls) == 2, "the step to start again locally")
    ((_k, _given, ray_pid), (_k2, given, local_pid)) = gen.calls
    assert (given, local_pid) == ("pred-0-image", os.getpid())  # the stored id, in this process
    assert ray_pid != os.getpid()
    gen.open_every_gate()
    assert (await running).worker == "local"
    later = await executor.run_step(_job(tmp_path, 1), stored.hooks)
    assert later.worker == "local"
    assert gen.calls[-1][2] == os.getpid()
    assert "now local" in executor.describe()


async def test_big_bytes_reach_a_task_through_the_object_store(
    gen_and_executor: tuple[FileGatedGenerator, RayExecutor],
) -> None:
    _gen, executor = gen_and_executor
    payload = os.urandom(3 * 1024 * 1024)
    assert await executor.run_cpu(len, payload) == len(payload)
    assert await executor.run_cpu(bytes.hex, payload[:4]) == payload[:4].hex()
