"""Ray for the tests: one local Ray (2 CPUs) shared by the session, started on first use.

A test that needs a Ray of its own (a simulated cluster) shuts this one down
first; the next test that asks for `ray_local` starts it again.
"""

from __future__ import annotations

import logging
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
