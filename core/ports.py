"""Ports: the Protocols that adapters implement and the core depends on.

Fakes in tests satisfy these without inheriting from anything. The store's
ports are in core/store_ports.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from core.model import (
    PlanCall,
    ProductPlan,
    StepKind,
    StepName,
)
from core.progress import ProgressEvent
from core.request import CampaignRequest

T = TypeVar("T")

CpuRunner = Callable[..., Awaitable[Any]]
"""`await run_cpu(fn, *args)`: run a picklable top-level function off the event loop."""


@dataclass(frozen=True)
class StepJob:
    """Picklable description of one step, enough to run it anywhere."""

    campaign_id: str
    step: StepName
    plan: ProductPlan
    style: str
    seed: int
    out_dir: str
    input_path: str | None = None  # the image, for a video step
    # the image's provider URL, for a video step (fresher than input_path)
    input_url: str | None = None
    model: str | None = None  # a request's model override, if any
    provider_id: str | None = None  # set when resuming an in-flight prediction
    intent_at: float | None = None  # a create may have been sent then (epoch s): adopt first
    sent_input: str | None = None  # what that create was about to send (the provider's JSON)

    @property
    def kind(self) -> StepKind:
        """The concurrency kind this step counts against."""
        return self.step.kind


@dataclass(frozen=True)
class StepOutput:
    """What a finished step produced."""

    path: str
    provider_id: str | None = None
    model: str | None = None
    cost_usd: float = 0.0
    worker: str = "local"
    predict_time_s: float | None = None  # the provider's metrics.predict_time, if reported
    url: str | None = None  # the provider's output URL, if any


async def _ignore(_url: str) -> None:
    """The default output_ready hook: nobody chains on this step."""


async def _spend_freely(_sent: str) -> None:
    """The default before_spend hook: nothing to record, nobody to fence."""


def _cancel_on_stop() -> bool:
    """The default keep_on_stop: a stopped step cancels its prediction."""
    return False


def _always() -> bool:
    """The default may_spend: nobody to fence."""
    return True


@dataclass(frozen=True)
class StepHooks:
    """Callbacks a running step uses to talk back to the campaign.

    output_ready: the step's provider output URL exists (before it is
    downloaded); a chained step may start from it.
    before_spend(sent): called right before a paid create is sent, with the
    input it sends (JSON text); records both as the intent and raises
    LeaseLost if this process no longer owns the campaign.
    keep_on_stop: True when the step is being stopped because the campaign is
    handed over (or was taken over): leave the prediction running for the
    next owner instead of cancelling it.
    may_spend: asked right before a paid request is written to the socket
    (after any rate-limit wait): False once this process's lease may have
    lapsed (e.g. it was paused), so a stale owner never sends a create.
    """

    report: Callable[[str], Awaitable[None]]
    remember_provider_id: Callable[[str], Awaitable[None]]
    output_ready: Callable[[str], Awaitable[None]] = field(default=_ignore)
    before_spend: Callable[[str], Awaitable[None]] = field(default=_spend_freely)
    keep_on_stop: Callable[[], bool] = field(default=_cancel_on_stop)
    may_spend: Callable[[], bool] = field(default=_always)


@dataclass(frozen=True)
class StepContext:
    """What a generator gets while running a step: hooks plus CPU offloading."""

    hooks: StepHooks
    run_cpu: CpuRunner


class Generator(Protocol):
    """Makes one step's output (an image or a video) for one product."""

    name: str

    def price_usd(self, step: StepName, model: str | None) -> float:
        """Expected cost of one such step (for estimates before a campaign starts)."""
        ...

    def typical_s(self, step: StepName, model: str | None) -> float | None:
        """Typical seconds of one such step, for ETAs before any is measured (None: unknown)."""
        ...

    async def check_models(self, models: Mapping[StepKind, str | None]) -> None:
        """Refuse (InvalidRequest) a model that cannot make its kind's steps, before
        anything is stored; read what the estimates need. `None`: the configured model."""
        ...

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        """Produce the step's file under job.out_dir; raise StepError on failure."""
        ...

    async def warm(self) -> None:
        """Make clients and connections now, not on the first campaign's path (may do nothing)."""
        ...

    async def aclose(self) -> None:
        """Release clients and connections; the generator is not used afterwards."""
        ...


class Executor(Protocol):
    """Runs steps within per-kind limits, and CPU functions off the event loop."""

    name: str

    def describe(self) -> str:
        """One line for status displays, e.g. 'local pool: 2 CPU workers'."""
        ...

    async def run_step(self, job: StepJob, hooks: StepHooks) -> StepOutput:
        """Run one step on the generator within its kind's limit."""
        ...

    async def run_cpu(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run a picklable function in a worker process."""
        ...

    def warm(self) -> None:
        """Start the CPU workers now, in the background, not at the first run_cpu."""
        ...

    async def aclose(self) -> None:
        """Release workers; running work is cancelled."""
        ...


class CreateBudget(Protocol):
    """The provider account's rate of paid creates, shared by every campaign.

    Waiters take turns by key (a campaign id), so a small campaign is not
    starved by a big one; a 429 is a wait for everyone, and the budget learns
    the account's real rate from it. In-process by default; the same calls can
    be backed by a budget shared across processes (e.g. in the database).
    """

    async def take(
        self,
        key: str,
        on_place: Callable[[int], Awaitable[None]] | None = None,
        *,
        priority: float = 0.0,
    ) -> None:
        """Wait for the right to send one create for `key`; `on_place(n)`: n-th in line (0: go)."""
        ...

    async def accepted(self) -> None:
        """The create just sent went through (it was not refused for the rate)."""
        ...

    async def throttled(self, pause_s: float) -> None:
        """A create was refused for the rate (429): every key waits `pause_s`, then one goes."""
        ...


@dataclass(frozen=True)
class PlanContext:
    """What a planner that pays for its plans gets: hooks per planning prediction and what
    an earlier run left behind.

    hooks_for(part): the hooks that store the planning prediction `part` like a
    step's (its intent, then its id; fenced by owner).
    calls: each part's stored prediction or intent, from a run a crash ended.
    done: the plans already stored (a resumed campaign): not handed on again, and
    their names stay taken.
    """

    hooks_for: Callable[[str], StepHooks]
    calls: Mapping[str, PlanCall] = field(default_factory=dict)
    done: tuple[ProductPlan, ...] = ()
    campaign_id: str | None = None  # whose plan: its creates take turns with other campaigns


OnPlan = Callable[[ProductPlan], Awaitable[None]]


class Plans(list[ProductPlan]):
    """A planner's plans plus a note for the progress display (e.g. why it fell back)."""

    def __init__(self, plans: Iterable[ProductPlan] = (), note: str = "") -> None:
        super().__init__(plans)
        self.note = note


class Planner(Protocol):
    """Turns a request into product plans."""

    name: str

    async def plan(
        self,
        request: CampaignRequest,
        ctx: PlanContext | None = None,
        on_plan: OnPlan | None = None,
    ) -> Plans:
        """Exactly request.products distinct plans, indexed from 0, and a note (may be "").

        `on_plan` is handed each plan (but those of `ctx.done`) as soon as it is complete,
        in any order, while the others are still being planned."""
        ...


class ProgressSink(Protocol):
    """Receives every progress event of a campaign."""

    async def publish(self, event: ProgressEvent) -> None:
        """Take one event; must not raise for delivery problems."""
        ...
