"""LocalExecutor: I/O steps on the event loop, CPU work in a process pool.

It adds no gate of its own for steps: the Scheduler (core/scheduler.py) is the
one gate per kind, and `run_step` runs what it is given. CPU work (`run_cpu`:
image post-processing, Ken Burns clips, contact sheets) does not pass the
Scheduler; its one gate is the process pool (`Limits.cpu` workers, at most one
per core): calls beyond that wait in the pool's queue.

The pool starts at `warm()` (the commands that run campaigns call it when
they start, so the first picture does not wait for workers) or else at the
first `run_cpu`; `history` and `show` never start it. Its workers exit when
this process is gone, even killed (-9): none is left holding its pipes. They
run at a lower CPU priority (adapters/low_priority.py): on a small machine a
picture must not take the core that delivers products.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from core.ports import Generator, StepContext, StepHooks, StepJob, StepOutput
from core.scheduler import Limits

T = TypeVar("T")

# forkserver: forking a process that already runs threads (aiosqlite, asyncio
# executors) can deadlock; spawn would re-import everything per worker.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(
    [
        "adapters.low_priority",  # first: the forkserver and its workers yield the CPU
        "adapters.local_executor",  # its workers' initializer
        "adapters.offline.product_image",
        "adapters.offline.ken_burns",
        "adapters.pictures.sheet",
    ]
)


def _exit_with(parent: Connection) -> None:
    """Runs in each worker as it starts: exit once the process that made the pool is gone.

    `parent` is the read end of a pipe whose only write end that process holds:
    it reads end-of-file when the process exits, however it ends.
    """

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            parent.recv()
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class LocalExecutor:
    """Runs I/O steps on the event loop, CPU work in worker processes."""

    name = "local"

    def __init__(self, generator: Generator, limits: Limits) -> None:
        self._generator = generator
        self._limits = limits
        self._size = min(limits.cpu, os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()  # the pool is made once, by warm()'s thread or the loop
        self._warming: asyncio.Future[None] | None = None
        self._alive: tuple[Connection, Connection] | None = None  # closed: the workers exit

    def describe(self) -> str:
        """One line for status displays."""
        return f"local pool: {self._limits.cpu} CPU workers"

    async def run_step(self, job: StepJob, hooks: StepHooks) -> StepOutput:
        """Run one step on the generator (the Scheduler has admitted it)."""
        return await self._generator.run(job, StepContext(hooks, self.run_cpu))

    async def run_cpu(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run a picklable function in the process pool (queued while every worker is busy)."""
        if self._warming is not None and not self._warming.done():
            # the workers are starting: wait here rather than block the loop in submit()
            await asyncio.wait([self._warming])
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers(), functools.partial(fn, *args))

    def warm(self) -> None:
        """Start every worker process now, on a thread: returns at once."""
        if self._warming is None and self._pool is None:
            self._warming = asyncio.get_running_loop().run_in_executor(None, self._start_workers)

    def _start_workers(self) -> None:
        """Runs on a thread: the forkserver and each worker start (a no-op call per worker)."""
        pool = self._workers()
        for done in [pool.submit(os.getpid) for _ in range(self._size)]:
            done.result()

    def _workers(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:  # started by warm() or on first use
                # workers start later, each with a copy of the read end: both stay open
                self._alive = _CONTEXT.Pipe(duplex=False)
                self._pool = ProcessPoolExecutor(
                    max_workers=self._size,
                    mp_context=_CONTEXT,
                    initializer=_exit_with,
                    initargs=(self._alive[0],),
                )
            return self._pool

    async def aclose(self) -> None:
        """Stop the worker processes."""
        if self._warming is not None:
            await asyncio.gather(self._warming, return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        if self._alive is not None:
            for end in self._alive:
                end.close()
            self._alive = None
