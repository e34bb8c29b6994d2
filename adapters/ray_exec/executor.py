"""RayExecutor: I/O steps on async Ray actors, CPU work as Ray tasks.

    driver (event loop)                      Ray
    run_step ------------------------> StepActor.run (async, num_cpus=0,
       ^  report, provider_id,  <-----   max_concurrency = the kind's limit)
       |  output_url            <-----
       |  ack of a provider_id  ----->      generator.run(job, ctx)
       |  output or error       <-----        ctx.run_cpu --> cpu_call (num_cpus=1)
    run_cpu --------------------------------> cpu_call (num_cpus=1)

The Scheduler (core/scheduler.py) is the one gate per kind: `run_step` runs
what it is given, and the actors' `max_concurrency` is a capacity sized never
to gate below the Scheduler's limit. CPU work is gated by Ray's CPU resources
(each task holds one CPU).

Nothing here blocks the event loop: `ray.init`, `ray.shutdown` and large
`ray.put`s run in threads, results are awaited (`await ref`), never `ray.get`.
A dead actor makes the step run again on another one with the stored
prediction id, so the generator re-polls instead of paying again. If the
cluster goes away, the remaining steps run on a LocalExecutor.

No wait on remote work is unbounded: a silent step actor is asked whether it
still runs the step (adapters/ray_exec/liveness.py). Timeouts use `asyncio.timeout`, never
`asyncio.wait_for`: on Python 3.11 wait_for swallows a cancellation that
arrives as its inner work completes (CPython gh-86296), which once left
`aclose()` waiting forever for a watchdog that kept running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar, assert_never

import ray
from ray.exceptions import RayActorError

from adapters.local_executor import LocalExecutor
from adapters.ray_exec.actors import (
    Event,
    Failed,
    Intent,
    Output,
    OutputUrl,
    ProviderId,
    Report,
    Started,
    StepActor,
    run_cpu_task,
)
from adapters.ray_exec.liveness import Liveness, StepActorLost, Watch
from adapters.ray_exec.settings import PROBE_TIMEOUT_S, RaySettings, gcs_endpoint
from adapters.ray_exec.startup import cluster_facts, first_line, in_daemon_thread, init_ray
from core.errors import LeaseLost, TransientStepError
from core.model import StepKind
from core.ports import Executor, Generator, StepHooks, StepJob, StepOutput
from core.retry import Backoff, retrying
from core.scheduler import Limits

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # per step, counting restarts after a dead actor
ACTOR_RETRY = Backoff(attempts=MAX_ATTEMPTS)  # a dead actor's step reruns at once, elsewhere
BIG_ARG_BYTES = 1024 * 1024  # larger bytes arguments go through the object store
CANCEL_DRAIN_S = 5.0  # how long a cancelled step may take to stop on its actor
CLOSE_WAIT_S = 5.0  # aclose: longest wait for the watchdog and for killing the actors


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


ACTOR_DIED = (RayActorError, StepActorLost)


class _ActorPool:
    """A few step actors for one kind; a call goes to the least busy healthy one."""

    def __init__(self, generator: Generator, size: int, concurrency: int) -> None:
        # `concurrency` is a capacity, not a gate: the kind's limit per actor. The
        # Scheduler lets at most that many steps of the kind run, and a call goes to
        # the least busy actor, so no actor is ever asked for more at once.
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

    def __init__(
        self,
        generator: Generator,
        limits: Limits,
        settings: RaySettings,
        watch: Watch | None = None,
    ) -> None:
        self._generator = generator
        self._watch_with = watch or Watch()
        self._limits = limits
        self._settings = settings
        self._pools: dict[StepKind, _ActorPool] = {}
        self._started = False
        self._owns_ray = False
        self._description = "Ray (not started)"
        self._gcs: tuple[str, int] | None = None
        self._lost = asyncio.Event()
        self._closing = False
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
            cluster_facts, bool(self._settings.address)
        )
        self._gcs = gcs_endpoint(gcs)
        self._watchdog = asyncio.create_task(self._watch())

    async def run_step(self, job: StepJob, hooks: StepHooks) -> StepOutput:
        """Run one step on a step actor (on the local fallback once the cluster is lost)."""
        await self.start()
        tracker = _Tracker(hooks, job.provider_id)
        avoid: set[int] = set()

        async def on_ray() -> StepOutput:
            if self._lost.is_set():
                raise ClusterLost
            retry = replace(job, provider_id=tracker.provider_id)
            return await self._until_lost(self._remote_step(retry, tracker, avoid))

        try:
            return await retrying(on_ray, ACTOR_RETRY, ACTOR_DIED, between=self._actor_died)
        except ACTOR_DIED as exc:
            await self._actor_died(exc, MAX_ATTEMPTS)
            if not self._lost.is_set():
                raise TransientStepError(
                    f"Ray workers died {MAX_ATTEMPTS} times running this step"
                ) from None
        except ClusterLost:
            pass
        local_job = replace(job, provider_id=tracker.provider_id)
        local_hooks = replace(hooks, remember_provider_id=tracker.remember)
        return await self._fallback().run_step(local_job, local_hooks)

    async def _actor_died(self, exc: Exception, attempt: int) -> None:
        log.warning("step actor died (attempt %d): %s", attempt, first_line(exc))
        await self._check_alive()

    def warm(self) -> None:
        """Nothing to start: Ray's workers came up with Ray (open_ray_executor)."""

    async def run_cpu(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run a picklable function as a Ray task holding one CPU."""
        await self.start()
        if not self._lost.is_set():
            try:
                big = [await _to_object_store(a) for a in args]
                answer = await self._until_lost(run_cpu_task(fn, *big))
                result: T = answer.unpack()
                return result
            except ClusterLost:
                pass
        return await self._fallback().run_cpu(fn, *args)

    async def aclose(self) -> None:
        """Stop the actors, the watchdog, the fallback and the Ray this executor started.

        Bounded: the watchdog and the kills get CLOSE_WAIT_S each.
        """
        self._closing = True  # the watchdog's loop ends even if a cancel went astray
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.wait({self._watchdog}, timeout=CLOSE_WAIT_S)
        pools, self._pools = self._pools, {}
        actors = [actor for pool in pools.values() for actor in pool.actors]
        if actors and not self._lost.is_set() and ray.is_initialized():
            # ray.kill waits for the head's answer: off the loop, and not for ever
            await in_daemon_thread(lambda: [ray.kill(actor) for actor in actors], CLOSE_WAIT_S)
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
        watch = Liveness(actor, self._watch_with)
        try:
            while True:
                try:
                    ref = await watch.wait(stream.__anext__())
                except StopAsyncIteration:
                    raise RuntimeError("the step actor ended without a result") from None
                event: Event = await watch.wait(ref)
                if (output := await _on_event(event, tracker, watch, call_id)) is not None:
                    return output
        except RayActorError:
            avoid.add(index)
            raise
        except StepActorLost:
            avoid.add(index)
            with contextlib.suppress(Exception):  # in case it still runs somewhere
                ray.cancel(stream)
            raise
        except asyncio.CancelledError:
            if tracker.hooks.keep_on_stop():  # handed over: the prediction keeps running
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CANCEL_DRAIN_S):
                        await actor.keep.remote(call_id)
            await self._cancel_stream(stream)
            raise
        finally:
            pool.busy[index] -= 1

    async def _cancel_stream(self, stream: Any) -> None:
        """Cancel a remote step and wait (briefly) until it has really stopped."""
        if self._lost.is_set():
            return
        with contextlib.suppress(Exception):
            ray.cancel(stream)

        async def drain() -> None:
            async for ref in stream:
                await ref

        # TaskCancelledError (the end we asked for), an actor error or TimeoutError
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CANCEL_DRAIN_S):
                await drain()

    async def _until_lost(self, work: Coroutine[Any, Any, T]) -> T:
        """Await `work`, unless the cluster is declared lost first (then ClusterLost)."""
        task = asyncio.ensure_future(work)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()  # the step cancels its remote call, within CANCEL_DRAIN_S
            await asyncio.wait({task}, timeout=CANCEL_DRAIN_S + 1.0)
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
        while not (self._lost.is_set() or self._closing):
            await asyncio.sleep(self._watch_with.head_interval_s)
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
            async with asyncio.timeout(PROBE_TIMEOUT_S):  # not wait_for: see the module doc
                _reader, writer = await self._watch_with.connect(*self._gcs)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    def _mark_lost(self) -> None:
        if not self._lost.is_set():
            log.warning("lost the Ray cluster; the remaining steps run on the local executor")
            self._lost.set()


async def _to_object_store(arg: Any) -> Any:
    """Large bytes go to the object store in a thread; the task receives the value."""
    if isinstance(arg, bytes | bytearray | memoryview) and len(arg) > BIG_ARG_BYTES:
        return await asyncio.to_thread(ray.put, arg)
    return arg


async def _intent(hooks: StepHooks, sent: str) -> bool:
    """Record a step's intent to pay; False if this process no longer owns the campaign."""
    try:
        await hooks.before_spend(sent)
    except LeaseLost:
        return False
    return True


async def _on_event(
    event: Event, tracker: _Tracker, watch: Liveness, call_id: str
) -> StepOutput | None:
    """Act on one event a step actor streamed (`watch.actor`); the output once it is done."""
    match event:
        case Started(instance):
            watch.instance = instance
        case Report(message):
            await tracker.hooks.report(message)
        case OutputUrl(url):
            await tracker.hooks.output_ready(url)
        case ProviderId(provider_id):
            await tracker.remember(provider_id)
            await watch.wait(watch.actor.ack.remote(call_id))
        case Intent(sent):
            ok = await _intent(tracker.hooks, sent)
            await watch.wait(watch.actor.ack.remote(call_id, ok))
        case Failed(error):
            raise error
        case Output(output):
            return output
        case _:
            assert_never(event)
    return None
