"""RayExecutor: I/O steps on async Ray actors, CPU work as Ray tasks.

    driver (event loop)                      Ray
    run_step --semaphore per kind--> StepActor.run (async, num_cpus=0,
       ^  report / provider_id  <-----   max_concurrency = the kind's limit)
       |  ack once stored       ----->      generator.run(job, ctx)
       |  output or error       <-----        ctx.run_cpu --> cpu_call (num_cpus=1)
    run_cpu --------------------------------> cpu_call (num_cpus=1)

Nothing here blocks the event loop: `ray.init`, `ray.shutdown` and large
`ray.put`s run in threads, results are awaited (`await ref`), never `ray.get`.
A dead actor makes the step run again on another one with the stored
prediction id, so the generator re-polls instead of paying again. If the
cluster goes away, the remaining steps run on a LocalExecutor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import ray
from ray.exceptions import RayActorError

from adapters.local_executor import LocalExecutor
from adapters.ray_actors import StepActor, run_cpu_task, unpack
from adapters.ray_connect import PROBE_TIMEOUT_S, RaySettings, gcs_endpoint, init_ray
from core.errors import TransientStepError
from core.model import StepKind
from core.ports import Executor, Generator, StepHooks, StepJob, StepOutput
from core.scheduler import Limits

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # per step, counting restarts after a dead actor
BIG_ARG_BYTES = 1024 * 1024  # larger bytes arguments go through the object store
WATCH_INTERVAL_S = 2.0


class ClusterLost(Exception):
    """The Ray cluster stopped answering while a step was running."""


@dataclass
class _Tracker:
    """Passes hook calls through to the campaign and keeps the latest prediction id."""

    hooks: StepHooks
    provider_id: str | None

    async def remember(self, provider_id: str) -> None:
        self.provider_id = provider_id
        await self.hooks.remember_provider_id(provider_id)


class _ActorPool:
    """A few step actors for one kind; a call goes to the least busy healthy one."""

    def __init__(self, generator: Generator, size: int, concurrency: int) -> None:
        options = StepActor.options(num_cpus=0, max_concurrency=concurrency, max_restarts=-1)
        self.actors = [options.remote(generator) for _ in range(size)]
        self.busy = [0] * size

    def pick(self, avoid: set[int]) -> int:
        """Index of the actor to use, preferring ones that did not just fail."""
        candidates = [i for i in range(len(self.actors)) if i not in avoid] or list(
            range(len(self.actors))
        )
        return min(candidates, key=lambda i: self.busy[i])


class RayExecutor:
    """Executor on a local Ray or a cluster; same results and errors as LocalExecutor."""

    name = "ray"

    def __init__(self, generator: Generator, limits: Limits, settings: RaySettings) -> None:
        self._generator = generator
        self._limits = limits
        self._settings = settings
        self._sems = {kind: asyncio.Semaphore(limits.of(kind)) for kind in StepKind}
        self._pools: dict[StepKind, _ActorPool] = {}
        self._started = False
        self._owns_ray = False
        self._description = "Ray (not started)"
        self._gcs: tuple[str, int] | None = None
        self._lost = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._local: LocalExecutor | None = None

    def describe(self) -> str:
        """'Ray cluster: 2 nodes, 16 CPUs', 'local Ray: 2 CPUs' (or the fallback)."""
        if self._lost.is_set():
            return f"{self._description} (lost; now local)"
        return self._description

    async def start(self) -> None:
        """Connect to or start Ray (idempotent); raises RayUnavailable."""
        if self._started:
            return
        self._owns_ray = await init_ray(self._settings)
        self._started = True
        self._description, gcs = await asyncio.to_thread(
            _cluster_facts, bool(self._settings.address)
        )
        self._gcs = gcs_endpoint(gcs)
        self._watchdog = asyncio.create_task(self._watch())

    async def run_step(self, job: StepJob, hooks: StepHooks) -> StepOutput:
        """Run one step on a step actor within its kind's limit."""
        await self.start()
        tracker = _Tracker(hooks, job.provider_id)
        async with self._sems[job.kind]:
            avoid: set[int] = set()
            for attempt in range(1, MAX_ATTEMPTS + 1):
                if self._lost.is_set():
                    break
                retry = replace(job, provider_id=tracker.provider_id)
                try:
                    return await self._until_lost(self._remote_step(retry, tracker, avoid))
                except RayActorError as exc:
                    log.warning("step actor died (attempt %d): %s", attempt, _first_line(exc))
                    await self._check_alive()
                except ClusterLost:
                    break
            if not self._lost.is_set():
                raise TransientStepError(f"Ray workers died {MAX_ATTEMPTS} times running this step")
        local_job = replace(job, provider_id=tracker.provider_id)
        return await self._fallback().run_step(local_job, StepHooks(hooks.report, tracker.remember))

    async def run_cpu(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run a picklable function as a Ray task holding one CPU."""
        await self.start()
        if not self._lost.is_set():
            try:
                big = [await _to_object_store(a) for a in args]
                result: T = unpack(await self._until_lost(run_cpu_task(fn, *big)))
                return result
            except ClusterLost:
                pass
        return await self._fallback().run_cpu(fn, *args)

    async def aclose(self) -> None:
        """Stop the actors, the watchdog, the fallback and the Ray this executor started."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.wait({self._watchdog})
        pools, self._pools = self._pools, {}
        if not self._lost.is_set() and ray.is_initialized():
            for pool in pools.values():
                for actor in pool.actors:
                    ray.kill(actor)
        if self._local is not None:
            await self._local.aclose()
        if self._owns_ray and not self._lost.is_set():
            self._owns_ray = False
            await asyncio.to_thread(ray.shutdown)

    async def _remote_step(self, job: StepJob, tracker: _Tracker, avoid: set[int]) -> StepOutput:
        pool = self._pool(job.kind)
        index = pool.pick(avoid)
        actor, call_id = pool.actors[index], uuid.uuid4().hex
        pool.busy[index] += 1
        stream = actor.run.remote(job, call_id)
        try:
            async for ref in stream:
                kind, value = await ref
                if kind == "report":
                    await tracker.hooks.report(value)
                elif kind == "provider_id":
                    await tracker.remember(value)
                    await actor.ack.remote(call_id)
                elif kind == "error":
                    raise value
                else:
                    output: StepOutput = value
                    return output
        except RayActorError:
            avoid.add(index)
            raise
        except asyncio.CancelledError:
            await self._cancel_stream(stream)
            raise
        finally:
            pool.busy[index] -= 1
        raise RuntimeError("the step actor ended without a result")

    async def _cancel_stream(self, stream: Any) -> None:
        """Cancel a remote step and wait (briefly) until it has really stopped."""
        if self._lost.is_set():
            return
        ray.cancel(stream)

        async def drain() -> None:
            async for ref in stream:
                await ref

        with contextlib.suppress(Exception):  # TaskCancelledError: the end we asked for
            await asyncio.wait_for(drain(), timeout=5.0)

    async def _until_lost(self, work: Coroutine[Any, Any, T]) -> T:
        """Await `work`, unless the cluster is declared lost first (then ClusterLost)."""
        task = asyncio.ensure_future(work)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            lost.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
        raise ClusterLost

    def _pool(self, kind: StepKind) -> _ActorPool:
        if kind not in self._pools:  # created on first use: a kind never used costs nothing
            self._pools[kind] = _ActorPool(
                self._generator, self._settings.actors_per_kind, self._limits.of(kind)
            )
        return self._pools[kind]

    def _fallback(self) -> Executor:
        if self._local is None:
            self._local = LocalExecutor(self._generator, self._limits)
        return self._local

    async def _watch(self) -> None:
        """Probe the cluster's head; two failed probes in a row mean the cluster is lost."""
        failures = 0
        while not self._lost.is_set():
            await asyncio.sleep(WATCH_INTERVAL_S)
            failures = 0 if await self._alive() else failures + 1
            if failures >= 2:
                self._mark_lost()

    async def _check_alive(self) -> None:
        if not await self._alive():
            self._mark_lost()

    async def _alive(self) -> bool:
        if not ray.is_initialized():
            return False
        if self._gcs is None:
            return True
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*self._gcs), PROBE_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    def _mark_lost(self) -> None:
        if not self._lost.is_set():
            log.warning("lost the Ray cluster; the remaining steps run on the local executor")
            self._lost.set()


def _cluster_facts(cluster: bool) -> tuple[str, str]:
    """(description, GCS address) of the connected Ray; blocking, so run in a thread."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    cpus = int(ray.cluster_resources().get("CPU", 0))  # type: ignore[no-untyped-call]
    gcs = str(ray.get_runtime_context().gcs_address)
    if cluster:
        return f"Ray cluster: {len(nodes)} node{'s' * (len(nodes) != 1)}, {cpus} CPUs", gcs
    return f"local Ray: {cpus} CPUs", gcs


async def _to_object_store(arg: Any) -> Any:
    """Large bytes go to the object store in a thread; the task receives the value."""
    if isinstance(arg, bytes | bytearray | memoryview) and len(arg) > BIG_ARG_BYTES:
        return await asyncio.to_thread(ray.put, arg)
    return arg


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
