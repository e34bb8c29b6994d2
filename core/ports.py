"""Ports: the Protocols that adapters implement and the core depends on.

Fakes in tests satisfy these without inheriting from anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from core.model import (
    Campaign,
    CampaignStatus,
    Product,
    ProductPlan,
    StepKind,
    StepName,
    StepRecord,
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


@dataclass(frozen=True)
class StepHooks:
    """Callbacks a running step uses to talk back to the campaign.

    output_ready: the step's provider output URL exists (before it is
    downloaded); a chained step may start from it.
    """

    report: Callable[[str], Awaitable[None]]
    remember_provider_id: Callable[[str], Awaitable[None]]
    output_ready: Callable[[str], Awaitable[None]] = field(default=_ignore)


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

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        """Produce the step's file under job.out_dir; raise StepError on failure."""
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

    async def aclose(self) -> None:
        """Release workers; running work is cancelled."""
        ...


class Planner(Protocol):
    """Turns a request into product plans."""

    name: str

    async def plan(self, request: CampaignRequest) -> list[ProductPlan]:
        """Exactly request.products distinct plans, indexed from 0."""
        ...


class ProgressSink(Protocol):
    """Receives every progress event of a campaign."""

    async def publish(self, event: ProgressEvent) -> None:
        """Take one event; must not raise for delivery problems."""
        ...


class CampaignStore(Protocol):
    """Durable campaign state (SQLite in production)."""

    async def create_campaign(self, campaign: Campaign) -> None:
        """Insert a campaign with its products and steps."""
        ...

    async def add_products(self, campaign_id: str, products: Sequence[Product]) -> None:
        """Insert planned products and their steps."""
        ...

    async def save_step(self, campaign_id: str, step: StepRecord) -> None:
        """Write one step's current state."""
        ...

    async def save_status(
        self,
        campaign_id: str,
        status: CampaignStatus,
        *,
        started_at: float | None = None,
        finished_at: float | None = None,
        contact_sheet: str | None = None,
        error: str | None = None,
    ) -> None:
        """Write the campaign's status and, when given, its other fields."""
        ...

    async def get(self, campaign_id: str) -> Campaign:
        """The campaign with products and steps; raises CampaignNotFound."""
        ...

    async def recent(self, limit: int, requester: str | None = None) -> Sequence[Campaign]:
        """Newest campaigns first (only one requester's, if given), with products and steps."""
        ...

    async def request_cancel(self, campaign_id: str) -> None:
        """Flag a campaign for cancellation (seen by whichever process runs it)."""
        ...

    async def cancel_requested(self, campaign_id: str) -> bool:
        """Whether cancellation was requested."""
        ...

    async def claim(self, campaign_id: str, owner: str, now: float, stale_before: float) -> bool:
        """Take the campaign for `owner` unless another owner beat after `stale_before`."""
        ...

    async def heartbeat(self, campaign_id: str, owner: str, now: float) -> None:
        """Say that `owner` is still running the campaign."""
        ...

    async def orphans(self, stale_before: float) -> Sequence[str]:
        """Unfinished campaigns whose owner has not beaten since `stale_before`."""
        ...

    async def clear_cancel(self, campaign_id: str) -> None:
        """Forget a cancellation request (before a retry)."""
        ...
