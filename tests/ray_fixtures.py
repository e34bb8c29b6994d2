"""Ray for the tests: one local Ray (2 CPUs) shared by the session, started on first use.

A test that needs a Ray of its own (a simulated cluster) shuts this one down
first; the next test that asks for `ray_local` starts it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

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
