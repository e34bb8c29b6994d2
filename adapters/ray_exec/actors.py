"""What runs inside Ray: the async step actor and the CPU task.

Imported only once `ray` is known to be importable (see adapters/ray_exec/connect.py).

Errors cross the process boundary as values, not as raised exceptions: Ray
would wrap a raised error in RayTaskError and add its traceback to the
message, while the executor contract wants the generator's own exception
type and message back on the driver.
"""

from __future__ import annotations

import asyncio
import pickle
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import ray

from core.errors import LeaseLost
from core.ports import Generator, StepContext, StepHooks, StepJob, StepOutput

ACK_SLOTS = 64  # acks and liveness checks run in their own group: never behind a step


@dataclass(frozen=True)
class CpuAnswer:
    """A CPU task's answer: the Ray node it ran on, and the function's value or its error."""

    node: str
    value: Any = None
    error: BaseException | None = None

    def unpack(self) -> Any:
        """The function's value, or its exception raised again."""
        if self.error is not None:
            raise self.error
        return self.value


# What a running step streams to the driver, in order: Started first, then hook calls,
# then Output or Failed. ProviderId and Intent wait for the driver's `ack`.


@dataclass(frozen=True)
class Started:
    """The step began on this start of the actor (a later other `instance` = restarted)."""

    instance: str


@dataclass(frozen=True)
class Report:
    """A status line."""

    message: str


@dataclass(frozen=True)
class OutputUrl:
    """The output's provider URL (a chained step may start from it)."""

    url: str


@dataclass(frozen=True)
class ProviderId:
    """The prediction id, to be stored before the step goes on."""

    provider_id: str


@dataclass(frozen=True)
class Intent:
    """A create is about to be sent with this input; the ack says if it may be."""

    sent: str


@dataclass(frozen=True)
class Output:
    """The step's result (with the node that did its work)."""

    output: StepOutput


@dataclass(frozen=True)
class Failed:
    """The step's error, as the generator raised it (if it pickles)."""

    error: BaseException


Event = Started | Report | OutputUrl | ProviderId | Intent | Output | Failed


@dataclass
class _Ack:
    """The driver's answer to a ProviderId or Intent, awaited by the step that sent it."""

    loop: asyncio.AbstractEventLoop  # the step's: the ack arrives on the acks group's loop
    stored: asyncio.Event = field(default_factory=asyncio.Event)
    ok: bool = True  # for an Intent: this process still owns the campaign

    def answer(self, ok: bool) -> None:
        """Record the answer and wake the step (thread-safely)."""
        self.ok = ok
        self.loop.call_soon_threadsafe(self.stored.set)


def node_id() -> str:
    """The Ray node id of the calling worker (or driver)."""
    return str(ray.get_runtime_context().get_node_id())


def portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


@ray.remote(num_cpus=1)
def cpu_call(fn: Callable[..., Any], *args: Any) -> CpuAnswer:
    """Run one CPU function on a worker holding one CPU; never raises."""
    try:
        return CpuAnswer(node_id(), value=fn(*args))
    except Exception as exc:
        return CpuAnswer(node_id(), error=portable(exc))


async def await_cancelling(ref: Any) -> Any:
    """Await a Ray result; if the awaiting task is cancelled, cancel the remote work too.

    Cancelling the local await alone would leave the remote call running.
    """
    try:
        return await ref
    except asyncio.CancelledError:
        ray.cancel(ref)
        raise


async def run_cpu_task(fn: Callable[..., Any], *args: Any) -> CpuAnswer:
    """Submit `fn(*args)` as a Ray task (num_cpus=1) and await its answer."""
    answer: CpuAnswer = await await_cancelling(cpu_call.remote(fn, *args))
    return answer


@dataclass
class _StepRun:
    """The plumbing of one running step inside the actor."""

    call_id: str
    campaign_id: str
    acks: dict[str, _Ack]  # the actor's, by call id
    events: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)  # None: ended
    nodes: list[str] = field(default_factory=list)
    keep: bool = False  # the driver hands the campaign over: leave predictions running

    def context(self) -> StepContext:
        """Hooks that stream to the driver, and CPU work as Ray tasks."""
        hooks = StepHooks(
            self.report,
            self.remember_provider_id,
            self.output_ready,
            self.before_spend,
            lambda: self.keep,
        )
        return StepContext(hooks, self.run_cpu)

    async def report(self, message: str) -> None:
        """Forward a status line; the step does not wait for it."""
        self.events.put_nowait(Report(message))

    async def output_ready(self, url: str) -> None:
        """Forward the output's provider URL (a chained step may start); no wait for it."""
        self.events.put_nowait(OutputUrl(url))

    async def remember_provider_id(self, provider_id: str) -> None:
        """Forward the prediction id and wait until the driver has stored it."""
        await self._acked(ProviderId(provider_id))

    async def before_spend(self, sent: str) -> None:
        """Ask the driver to record the intent; LeaseLost if it no longer owns the campaign."""
        if not await self._acked(Intent(sent)):
            raise LeaseLost(self.campaign_id)

    async def _acked(self, event: ProviderId | Intent) -> bool:
        ack = self.acks[self.call_id] = _Ack(asyncio.get_running_loop())
        self.events.put_nowait(event)
        try:
            await ack.stored.wait()
        finally:
            self.acks.pop(self.call_id, None)
        return ack.ok

    async def run_cpu(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """CPU work of the step as a Ray task; remembers the node it ran on."""
        answer = await run_cpu_task(fn, *args)
        self.nodes.append(answer.node)
        return answer.unpack()

    def result(self, task: asyncio.Task[StepOutput]) -> Output | Failed:
        """The final event: the output (with the node that did the work) or the error."""
        if task.cancelled():
            raise asyncio.CancelledError
        exc = task.exception()
        if exc is not None:
            return Failed(portable(exc))
        worker = self.nodes[-1] if self.nodes else node_id()
        return Output(replace(task.result(), worker=worker))


class StepActorCode:
    """Runs I/O steps on the generator it was given once, many at a time (async)."""

    def __init__(self, generator: Generator) -> None:
        self._generator = generator
        self._acks: dict[str, _Ack] = {}
        self._runs: dict[str, _StepRun] = {}
        self._instance = uuid.uuid4().hex  # new on every (re)start of the actor's process

    async def run(self, job: StepJob, call_id: str) -> AsyncIterator[Event]:
        """Run one step, streaming its hook calls and then its result to the caller.

        The first event names this actor instance: a later `instance()` answering
        another id means the actor was restarted and this step died with it.
        """
        yield Started(self._instance)
        step = _StepRun(call_id, job.campaign_id, self._acks)
        self._runs[call_id] = step
        task = asyncio.create_task(self._generator.run(job, step.context()))
        task.add_done_callback(lambda _t: step.events.put_nowait(None))
        try:
            while (event := await step.events.get()) is not None:
                yield event
            yield step.result(task)
        finally:
            self._runs.pop(call_id, None)
            if not task.done():  # cancelled by ray.cancel: let the generator clean up
                task.cancel()
                await asyncio.wait({task})

    @ray.method(concurrency_group="acks")
    async def ack(self, call_id: str, ok: bool = True) -> None:
        """The driver stored what step `call_id` told it (`ok`: it still owns the campaign)."""
        ack = self._acks.get(call_id)
        if ack is not None:
            ack.answer(ok)  # groups run on their own loops: thread-safely

    @ray.method(concurrency_group="acks")
    async def keep(self, call_id: str) -> None:
        """The campaign is handed over: step `call_id` must not cancel its prediction."""
        run = self._runs.get(call_id)
        if run is not None:
            run.keep = True

    @ray.method(concurrency_group="acks")
    async def instance(self) -> str:
        """Which start of this actor answers (the driver's liveness check)."""
        return self._instance


# Ray's type hints do not know `concurrency_groups`; the actor class is Any to mypy.
_remote: Any = ray.remote
StepActor: Any = _remote(concurrency_groups={"acks": ACK_SLOTS})(StepActorCode)
