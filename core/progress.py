"""Progress events, the snapshot they build, and the coalescing sink.

Every front end sees a campaign through `CoalescingSink`: events update a
`CampaignSnapshot`, and the snapshot is handed to the front end's `deliver`
at most once per `min_interval_s`; `aclose()` always delivers the final state.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from core.eta import Durations, Pace, Sample, StepState, campaign_left
from core.model import CampaignStatus, StepName, StepStatus

if TYPE_CHECKING:
    from core.model import Campaign, Product, StepRecord

log = logging.getLogger(__name__)


class EventKind(str, Enum):
    """What happened."""

    CAMPAIGN_STARTED = "campaign_started"
    STEP_STARTED = "step_started"
    STEP_PROGRESS = "step_progress"
    STEP_FINISHED = "step_finished"  # status says succeeded, failed, canceled or skipped
    PRODUCT_PLANNED = "product_planned"  # its plan is stored; `product` carries it
    PRODUCT_FINISHED = "product_finished"  # every step of one product is done; status = product's
    CAMPAIGN_FINISHED = "campaign_finished"
    # after CAMPAIGN_FINISHED (or on resume): the reel, as `output`, status "succeeded";
    # "failed" with why in `message`; "canceled" when another run of the campaign took over
    REEL_READY = "reel_ready"


@dataclass(frozen=True)
class ProgressEvent:
    """One thing that happened to a campaign."""

    kind: EventKind
    campaign_id: str
    at: float
    product_index: int | None = None
    step: StepName | None = None
    status: str | None = None
    message: str = ""
    output: str | None = None
    campaign: Campaign | None = None  # the whole record, on start and finish
    product: Product | None = None  # PRODUCT_PLANNED: the product just planned
    pace: Pace | None = None  # on start: stored durations and slots, for the ETA
    queued: int | None = None  # a pending step's place in line for a slot (STEP_PROGRESS)
    reel_follows: bool = False  # CAMPAIGN_FINISHED: a REEL_READY event comes after it


@dataclass
class StepView:
    """A step as a display shows it."""

    status: StepStatus
    message: str = ""
    output: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    model: str | None = None
    queued: int | None = None  # its place in line for a slot, while it waits for one


@dataclass
class ProductView:
    """A product as a display shows it."""

    index: int
    name: str
    product_type: str
    steps: dict[StepName, StepView]


@dataclass
class CampaignSnapshot:
    """Current state of one campaign, built from events."""

    campaign_id: str
    theme: str = ""
    status: CampaignStatus = CampaignStatus.PENDING
    executor: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    contact_sheet: str | None = None
    cost_usd: float = 0.0
    products: list[ProductView] = field(default_factory=list)
    notice: str = ""  # a campaign-wide message, e.g. the planner fell back to templates
    pace: Pace | None = None  # what the ETA is computed from (None: defaults and own steps)
    _durations: tuple[tuple[Sample, ...], Pace | None, Durations] | None = field(
        default=None, repr=False, compare=False
    )

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignSnapshot:
        """Snapshot of a stored campaign."""
        snap = cls(campaign.id)
        snap._load(campaign)
        return snap

    def _load(self, campaign: Campaign) -> None:
        self.theme = campaign.request.theme
        self.status = campaign.status
        self.executor = campaign.executor
        self.started_at = campaign.started_at
        self.finished_at = campaign.finished_at
        self.contact_sheet = campaign.contact_sheet
        self.cost_usd = campaign.cost_usd
        before = {(p.index, name): view for p in self.products for name, view in p.steps.items()}
        self.products = [
            ProductView(
                p.plan.index,
                p.plan.name,
                p.plan.product_type,
                {s.name: _view(s, before.get((p.plan.index, s.name))) for s in p.steps},
            )
            for p in campaign.products
        ]

    def apply(self, event: ProgressEvent) -> None:
        """Fold one event into the snapshot."""
        if event.campaign is not None:
            self._load(event.campaign)
        if event.pace is not None:
            self.pace = event.pace
        if event.kind is EventKind.CAMPAIGN_STARTED:
            self.status = CampaignStatus.RUNNING
            self.started_at = self.started_at or event.at
        if event.product is not None:
            self._add(event.product)
        if event.product_index is None or event.step is None:
            self.notice = event.message or self.notice
            return
        product = next((p for p in self.products if p.index == event.product_index), None)
        if product is None or event.step not in product.steps:
            return  # a product not announced yet (its plan arrived a moment ago)
        step = product.steps[event.step]
        step.message, step.queued = event.message, event.queued
        if event.kind is EventKind.STEP_STARTED:
            step.status, step.started_at, step.finished_at = StepStatus.RUNNING, event.at, None
        elif event.kind is EventKind.STEP_FINISHED and event.status:
            step.status, step.finished_at = StepStatus(event.status), event.at
            step.output = event.output

    def _add(self, product: Product) -> None:
        """A product just planned (kept in index order; a known one is left as it is)."""
        index = product.plan.index
        if any(p.index == index for p in self.products):
            return
        steps = {s.name: _view(s, None) for s in product.steps}
        view = ProductView(index, product.plan.name, product.plan.product_type, steps)
        self.products = sorted([*self.products, view], key=lambda p: p.index)

    def counts(self) -> tuple[int, int]:
        """(finished steps, all steps)."""
        steps = [s for p in self.products for s in p.steps.values()]
        return sum(s.status.done for s in steps), len(steps)

    def timing(self, now: float) -> tuple[float, float | None]:
        """(elapsed seconds, estimated seconds left or None) as of `now` (wall clock).

        The estimate plays out the steps left with the durations their models
        took lately (this campaign's finished steps first, then the stored
        history of `pace`), on the slots each kind has (see `campaign_left`).
        """
        start = self.started_at or now
        elapsed = max(0.0, (self.finished_at or now) - start)
        if self.status.done:
            return elapsed, None
        chains = [
            [StepState(n, v.status, v.started_at, v.model, v.queued) for n, v in p.steps.items()]
            for p in self.products
        ]
        pace = self.pace or Pace()
        return elapsed, campaign_left(chains, self._measured(pace), now, pace.slots)

    def _measured(self, pace: Pace) -> Durations:
        """The pace's durations with this campaign's own finished steps in front (cached)."""
        own = sorted(
            (
                (v.finished_at, Sample(name, v.model, v.finished_at - v.started_at))
                for p in self.products
                for name, v in p.steps.items()
                if v.status is StepStatus.SUCCEEDED and v.started_at and v.finished_at
            ),
            key=lambda item: -item[0],
        )
        samples = tuple(sample for _at, sample in own)
        if self._durations is None or self._durations[:2] != (samples, pace):
            self._durations = (samples, pace, pace.durations.newer(samples))
        return self._durations[2]


def _view(step: StepRecord, shown: StepView | None) -> StepView:
    """A stored step as a display shows it; a step still where it was keeps its live line
    and place in line (the store has neither)."""
    view = StepView(
        step.status, step.error or "", step.output, step.started_at, step.finished_at, step.model
    )
    if shown is not None and shown.status is step.status and not step.status.done:
        view.message, view.queued = shown.message, shown.queued
    return view


Deliver = Callable[[CampaignSnapshot], Awaitable[None]]


class CoalescingSink:
    """Turns many events into few deliveries, no more often than min_interval_s."""

    def __init__(
        self,
        deliver: Deliver,
        *,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.snapshot: CampaignSnapshot | None = None
        self._sleep = sleep
        self._deliver = deliver
        self._interval = min_interval_s
        self._clock = clock
        self._last: float | None = None
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self.deliveries = 0

    async def publish(self, event: ProgressEvent) -> None:
        """Fold the event in and make sure a delivery is scheduled."""
        if self.snapshot is None:
            self.snapshot = CampaignSnapshot(event.campaign_id)
        elif event.campaign_id != self.snapshot.campaign_id:
            return  # one sink follows one campaign
        self.snapshot.apply(event)
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_loop())

    def hold(self) -> None:
        """A message was just sent outside the sink: space the next delivery from now."""
        self._last = self._clock()

    async def aclose(self) -> None:
        """Deliver whatever is pending (the final state) and stop."""
        if self._task is not None:
            await self._task
        if self._dirty:  # an event arrived after the loop's last check
            await self._flush_loop()

    async def _flush_loop(self) -> None:
        while self._dirty and self.snapshot is not None:
            if self._last is not None:
                wait = self._last + self._interval - self._clock()
                if wait > 0:
                    await self._sleep(wait)
            self._dirty = False
            try:
                await self._safe_deliver(copy.deepcopy(self.snapshot))
            finally:  # the interval runs from when the platform answered, not from the send
                self._last = self._clock()

    async def _safe_deliver(self, snapshot: CampaignSnapshot) -> None:
        self.deliveries += 1
        try:
            await self._deliver(snapshot)
        except asyncio.CancelledError:
            raise
        except Exception:  # a chat hiccup must never stop the campaign
            log.exception("progress delivery failed for campaign %s", snapshot.campaign_id)
