"""LocalExecutor: I/O steps on the event loop, CPU work in a process pool.

It adds no gate of its own for steps: the Scheduler (core/scheduler.py) is the
one gate per kind, and `run_step` runs what it is given. CPU work (`run_cpu`:
image post-processing, Ken Burns clips, contact sheets) does not pass the
Scheduler; its one gate is the process pool (`Limits.cpu` workers, at most one
per core): calls beyond that wait in the pool's queue.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from core.ports import Generator, StepContext, StepHooks, StepJob, StepOutput
from core.scheduler import Limits

T = TypeVar("T")

# forkserver: forking a process that already runs threads (aiosqlite, asyncio
# executors) can deadlock; spawn would re-import everything per worker.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(
    ["adapters.offline.product_image", "adapters.offline.ken_burns", "adapters.pictures.sheet"]
)


class LocalExecutor:
    """Runs I/O steps on the event loop, CPU work in worker processes."""

    name = "local"

    def __init__(self, generator: Generator, limits: Limits) -> None:
        self._generator = generator
        self._limits = limits
        self._pool: ProcessPoolExecutor | None = None

    def describe(self) -> str:
        """One line for status displays."""
        return f"local pool: {self._limits.cpu} CPU workers"

    async def run_step(self, job: StepJob, hooks: StepHooks) -> StepOutput:
        """Run one step on the generator (the Scheduler has admitted it)."""
        return await self._generator.run(job, StepContext(hooks, self.run_cpu))

    async def run_cpu(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run a picklable function in the process pool (queued while every worker is busy)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers(), functools.partial(fn, *args))

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:  # started on first use: `history` never pays for it
            workers = min(self._limits.cpu, os.cpu_count() or 1)
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=_CONTEXT)
        return self._pool

    async def aclose(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
