"""RayExecutor beyond the shared contract: dead workers, a lost cluster, big arguments.

All on the session's real local Ray (2 CPUs).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters import ray_executor
from adapters.ray_connect import RaySettings
from adapters.ray_executor import RayExecutor
from core.model import ProductPlan, StepName
from core.ports import StepHooks, StepJob
from core.scheduler import Limits
from tests.fakes.file_gates import FileGatedGenerator

LIMITS = Limits(text=1, image=2, video=1, cpu=2)
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


@pytest.fixture
async def gen_and_executor(tmp_path: Path) -> AsyncIterator[tuple[FileGatedGenerator, RayExecutor]]:
    gen = FileGatedGenerator(tmp_path / "gates")
    executor = RayExecutor(gen, LIMITS, RaySettings(actors_per_kind=2))
    yield gen, executor
    gen.open_every_gate()  # an abandoned remote step must not wait forever
    await executor.aclose()


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
    gen.open_every_gate()
    os.kill(first_pid, signal.SIGKILL)
    out = await task
    assert Path(out.path).exists()
    retried = gen.calls[-1]
    assert retried[1] == "pred-0-image"  # re-polls the stored prediction instead of paying again
    assert retried[2] != first_pid
    assert len(out.worker) == 56  # a Ray node id (hex)


async def test_lost_cluster_finishes_the_remaining_steps_locally(
    gen_and_executor: tuple[FileGatedGenerator, RayExecutor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gen, executor = gen_and_executor
    monkeypatch.setattr(ray_executor, "WATCH_INTERVAL_S", 0.05)
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
