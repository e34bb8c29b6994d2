"""Ray for the tests: one local Ray (2 CPUs) shared by the session, started on first use.

A test that needs a Ray of its own (a simulated cluster) shuts this one down
first; the next test that asks for `ray_local` starts it again. When the
session ends, Ray workers whose raylet is gone (a worker still starting when
its simulated node was shut down, or a killed bot's), of this user and
started since the session began, are stopped and named, not left running
after the suite.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from adapters.ray_exec.executor import RayExecutor
    from adapters.replicate_api.generator import ReplicateGenerator
    from core.scheduler import Limits
    from core.service import CampaignService
    from storage.open import Store

RAY_CPUS = 2


def start_local_ray() -> None:
    """Start the shared local Ray if none is connected (quiet, small object store)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",  # never join another Ray running on this machine
            num_cpus=RAY_CPUS,
            include_dashboard=False,
            object_store_memory=200 * 1024 * 1024,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )


@pytest.fixture(scope="session")
def _ray_for_session() -> Iterator[None]:
    yield
    import ray

    ray.shutdown()  # only the Ray this process started or joined


@pytest.fixture(scope="session", autouse=True)
def _no_stray_ray_workers() -> Iterator[None]:
    since = _started(os.getpid())
    yield
    deadline = time.monotonic() + 5.0  # a worker whose raylet just went may still be leaving
    while (strays := stray_ray_workers(since)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in strays:
        with contextlib.suppress(OSError):  # gone already
            os.kill(pid, signal.SIGKILL)
    if strays:
        left = ", ".join(f"{name} ({pid})" for pid, name in strays.items())
        print(f"\nstopped Ray workers the tests left without their raylet: {left}", file=sys.stderr)


def stray_ray_workers(since: int) -> dict[int, str]:
    """This user's Ray workers (`ray::...`) started at or after clock tick `since` whose
    parent is not a raylet (theirs is gone): pid -> name."""
    strays = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            pid, name = int(entry), _cmdline(int(entry))
            ours = name.startswith("ray::") and _started(pid) >= since and _mine(pid)
            if ours and _comm(_parent(pid)) != "raylet":
                strays[pid] = name
        except (OSError, ValueError):  # it ended while we looked
            continue
    return strays


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (state first)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _mine(pid: int) -> bool:
    return os.stat(f"/proc/{pid}").st_uid == os.getuid()


def _started(pid: int) -> int:
    return int(_stat(pid)[19])  # starttime, in clock ticks since boot


def _parent(pid: int) -> int:
    return int(_stat(pid)[1])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")


@pytest.fixture
def ray_local(_ray_for_session: None) -> None:
    """A connected local Ray with 2 CPUs."""
    start_local_ray()


def replicate_on_ray(
    bot_main: ModuleType,
    tmp_path: Path,
    store: Store,
    generator: ReplicateGenerator,
    limits: Limits,
    actors_per_kind: int = 1,
) -> tuple[CampaignService, RayExecutor]:
    """A service on `store` planning with Replicate's LLM and running its steps on Ray's step
    actors; the caller closes the service, then the executor, then the generator."""
    from adapters.ray_exec.executor import RayExecutor
    from adapters.ray_exec.settings import RaySettings
    from adapters.replicate_api.planner import LlmPlanner
    from tests.conftest import fixture_settings
    from tests.fakes import fake_sheet

    executor = RayExecutor(generator, limits, RaySettings(actors_per_kind=actors_per_kind))
    service = bot_main.wire(
        fixture_settings(tmp_path, limits),
        store=store,
        generator=generator,
        executor=executor,
        planner=LlmPlanner(generator.runtime),
        sheet=fake_sheet,
    )
    return service, executor
