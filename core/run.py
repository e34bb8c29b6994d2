"""One campaign's run in this process: its task, sinks, planning, chains and finalize.

A `CampaignRun` starts once its campaign is claimed. While it works it beats
the lease and watches the cancel flag; it ends either finalized here
(succeeded, failed or canceled, with its pictures and a summary event) or
let go to the next owner (handed over by a deploy, or taken over after a lost
lease), cancelling nothing on the provider. `Runs` are the campaigns this
process runs, by id, and their reels.

Its pictures (contact sheet, timeline) are core/pictures.py's job; its reel,
prepared while it runs and made after its summary, core/reel.py's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import CampaignError, ConfigError, LeaseLost
from core.eta import Guess, Pace
from core.folders import campaign_folder
from core.lease import Ownership, Stop
from core.model import (
    Campaign,
    CampaignStatus,
    Product,
    ProductPlan,
    StepKind,
    StepName,
    StepStatus,
    outcome,
)
from core.pictures import CampaignPictures, Price, Rendered, Renderers, as_pictures
from core.pipeline import ChainRunner, Publish, new_product
from core.plan_hooks import plan_context
from core.planner import base_seed
from core.ports import Executor, Planner, ProgressSink
from core.progress import EventKind, ProgressEvent
from core.reel import Reels
from core.scheduler import Scheduler
from core.store_ports import CampaignRecords

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """What every run of one service shares."""

    records: CampaignRecords
    ownership: Ownership
    planner: Planner
    executor: Executor
    scheduler: Scheduler
    sheet: Renderers
    data_dir: Path
    beat_s: float  # heartbeat and cancel-flag interval
    clock: Callable[[], float]
    finished: Callable[[Campaign], Awaitable[None]]  # the audit line of a finalized campaign
    reels: Reels | None = None  # the reels of this process's campaigns (None: none made)
    price: Price | None = None  # the generator's price per step (the early sheet's cost)
    typical: Guess | None = None  # the generator's typical step durations (first ETAs)

    def folder(self, campaign_id: str) -> Path:
        """Where the campaign's outputs go."""
        return campaign_folder(self.data_dir, campaign_id)


class CampaignRun:
    """One campaign run by this process, from claim to finalize or hand-over."""

    def __init__(self, campaign: Campaign, sinks: Sequence[ProgressSink], ctx: RunContext) -> None:
        self.campaign = campaign  # as it was when the run started
        self.sinks = list(sinks)
        self.ctx = ctx
        self.stop = Stop()  # keep: handed over or taken over, not canceled
        self.canceled = False
        self.task: asyncio.Task[Campaign] | None = None
        self._work: asyncio.Task[None] | None = None
        self._pace: Pace | None = None  # the ETA's stored durations, read at the first start
        folder = ctx.folder(campaign.id)
        self._pictures = CampaignPictures(as_pictures(ctx.sheet), ctx.executor, folder, ctx.price)
        self._clips = ctx.reels.watch(campaign) if ctx.reels else None  # prepared as they arrive

    def start(self) -> asyncio.Task[Campaign]:
        """Run the campaign, which this process has just claimed."""
        self.stop = self.ctx.ownership.fresh_stop()
        self.task = asyncio.create_task(self._drive())
        return self.task

    def hand_over(self) -> None:
        """Stop the run here, leaving its predictions running for the next owner."""
        self.stop.keep = True
        if self._work is not None:
            self._work.cancel()

    def cancel(self) -> None:
        """Stop the run and cancel its predictions (unless it is already handed over)."""
        if self.stop.keep:  # nothing left to cancel here
            return
        self.canceled = True
        if self._work is not None:
            self._work.cancel()

    async def _drive(self) -> Campaign:
        campaign, records = self.campaign, self.ctx.records
        started = campaign.started_at or self.ctx.clock()
        await records.save_status(
            campaign.id, CampaignStatus.RUNNING, started_at=started, owner=self.ctx.ownership.owner
        )
        await self._started(started)
        work = self._work = asyncio.create_task(self._run_products())
        if self.canceled or self.stop.keep:  # stopped before there was work to stop
            work.cancel()
        watcher = asyncio.create_task(self._keep_alive())
        try:
            await asyncio.wait([work])
        finally:
            watcher.cancel()
        if _lost(work) or self.stop.keep:
            return await self._let_go()
        error = _work_error(work)
        try:
            return await self.finalize(
                await records.get(campaign.id), canceled=self.canceled, error=error
            )
        except LeaseLost:
            return await self._let_go()

    async def _started(self, at: float) -> None:
        """Announce the campaign as it is stored now (again once it has products).

        The event carries the pace of the ETA: stored step durations, newest first,
        read once per run.
        """
        campaign = await self.ctx.records.get(self.campaign.id)
        if self._pace is None:
            samples = await self.ctx.records.step_samples()
            self._pace = self.ctx.scheduler.pace(samples, self.ctx.typical)
        await self.publish(
            ProgressEvent(
                EventKind.CAMPAIGN_STARTED, campaign.id, at, campaign=campaign, pace=self._pace
            )
        )

    async def _let_go(self) -> Campaign:
        """Leave a campaign that is handed over (or was taken over) to its next owner."""
        campaign_id = self.campaign.id
        if self.ctx.reels is not None:
            self.ctx.reels.forget(campaign_id)  # the next owner prepares its own clips
        await self.ctx.ownership.release(campaign_id)
        log.warning("campaign %s left to its next owner; nothing canceled", campaign_id)
        return await self.ctx.records.get(campaign_id)

    async def _keep_alive(self) -> None:
        """Beat the heartbeat and watch the cancel flag other processes may set.

        A beat that no longer matches means another process took the campaign
        over (this one was paused or cut off past its lease): stop at once,
        cancelling nothing on the provider.
        """
        campaign_id, ownership = self.campaign.id, self.ctx.ownership
        while True:
            # a cancel announced by the store (PostgreSQL's NOTIFY) cuts the wait short
            await ownership.wait_cancel(campaign_id, self.ctx.beat_s)
            if not await ownership.beat(campaign_id, self.stop):
                log.warning("campaign %s: lease lost to another process; stopping", campaign_id)
                self.hand_over()
                return
            if await ownership.cancel_requested(campaign_id):
                self.cancel()
                return

    async def _run_products(self) -> None:
        """Every product's chain as soon as its plan is stored, and the contact sheet as soon
        as the images are done."""
        campaign = self.campaign
        products = campaign.products
        planned = {p.plan.index for p in products}
        images_left = {p.plan.index for p in products if not _image_done(p)}
        images_left |= set(range(campaign.request.products)) - planned
        images_done = asyncio.Event()
        if not images_left:
            images_done.set()

        async def publish(event: ProgressEvent) -> None:
            if event.kind is EventKind.STEP_FINISHED and event.step is StepName.IMAGE:
                images_left.discard(event.product_index or 0)
                if not images_left:
                    images_done.set()
            await self.publish(event)

        runner = self._runner(publish)
        async with asyncio.TaskGroup() as group:
            for product in products:
                group.create_task(runner.run(product))
            group.create_task(self._sheet_early(images_done))
            if len(planned) < campaign.request.products:
                await self._plan(lambda product: group.create_task(runner.run(product)))

    async def _plan(self, start: Callable[[Product], object]) -> None:
        """Plan what is not planned yet: each product is stored, announced and started as
        soon as its plan is complete; the planner's note goes out as progress."""
        campaign, ctx = self.campaign, self.ctx

        async def on_plan(plan: ProductPlan) -> None:
            product = new_product(plan, campaign.request)
            await ctx.records.add_products(campaign.id, (product,))  # before anything is spent
            at, index = ctx.clock(), plan.index
            await self.publish(
                ProgressEvent(EventKind.PRODUCT_PLANNED, campaign.id, at, index, product=product)
            )
            start(product)

        async with ctx.scheduler.slot(StepKind.TEXT, campaign.id):  # an LLM planner predicts
            try:
                plans = await ctx.planner.plan(
                    campaign.request,
                    plan_context(campaign, ctx.records, ctx.ownership.owner, ctx.clock, self.stop),
                    on_plan,
                )
            except LeaseLost:
                self.stop.keep = True
                raise
        await self._started(ctx.clock())  # every product planned: the stored campaign
        if plans.note:  # e.g. "fell back to the offline planner: ..."
            await self.publish(
                ProgressEvent(EventKind.STEP_PROGRESS, campaign.id, ctx.clock(), message=plans.note)
            )

    def _runner(self, publish: Publish) -> ChainRunner:
        campaign, ctx = self.campaign, self.ctx
        return ChainRunner(
            campaign_id=campaign.id,
            style=campaign.request.style.value,
            seed=base_seed(campaign.request),
            out_dir=str(ctx.folder(campaign.id)),
            store=ctx.records,
            executor=ctx.executor,
            scheduler=ctx.scheduler,
            publish=publish,
            clock=ctx.clock,
            owner=ctx.ownership.owner,
            stop=self.stop,
        )

    async def _sheet_early(self, images_done: asyncio.Event) -> None:
        """Render the contact sheet once every image is done, while the videos still run."""
        await images_done.wait()
        await self._pictures.early_sheet(await self.ctx.records.get(self.campaign.id))

    async def finalize(
        self, campaign: Campaign, *, canceled: bool, error: str | None = None
    ) -> Campaign:
        """Cancel what did not finish, store the outcome and the pictures, and announce it;
        then make the reel (if the campaign has videos), which follows as its own event."""
        ctx, owner = self.ctx, self.ctx.ownership.owner
        for step in campaign.steps():
            if not step.status.done:
                await ctx.records.save_step(
                    campaign.id,
                    step.evolve(
                        status=StepStatus.CANCELED, error="canceled", finished_at=ctx.clock()
                    ),
                    owner,
                )
        campaign = await ctx.records.get(campaign.id)
        pictures = Rendered() if canceled else await self._pictures.finish(campaign)
        status = outcome((s for p in campaign.current() for s in p.steps), canceled)
        reels = None if canceled else ctx.reels
        reel = reels is not None and bool(reels.due(campaign))
        if reel:  # owed from now on: a crash before it is written leaves it to `resume`
            await ctx.records.save_reel(campaign.id, None, owner, due=True)
        await ctx.records.save_status(
            campaign.id,
            status,
            finished_at=ctx.clock(),
            contact_sheet=pictures.sheet,
            error=error,
            owner=owner,
            timeline=pictures.timeline,
        )
        campaign = await ctx.records.get(campaign.id)
        await ctx.finished(campaign)
        await self.publish(
            ProgressEvent(
                EventKind.CAMPAIGN_FINISHED,
                campaign.id,
                ctx.clock(),
                status=status.value,
                campaign=campaign,
                reel_follows=reel,
            )
        )
        if reels is not None and reel:
            reels.start(campaign, self.sinks)
        elif ctx.reels is not None:
            ctx.reels.forget(campaign.id)
        return campaign

    async def publish(self, event: ProgressEvent) -> None:
        """Hand an event to every sink of the campaign (and its clips to the reel)."""
        if self._clips is not None:
            self._clips.saw(event)
        for sink in self.sinks:
            try:
                await sink.publish(event)
            except Exception:  # one broken display must not stop the campaign
                log.exception("progress sink failed")


class Runs:
    """The campaigns this process runs, by id; a run leaves when its task ends."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._by_id: dict[str, CampaignRun] = {}

    def start(self, campaign: Campaign, sinks: Sequence[ProgressSink]) -> CampaignRun:
        """Run a campaign this process has just claimed."""
        run = CampaignRun(campaign, sinks, self.ctx)
        self._by_id[campaign.id] = run
        run.start().add_done_callback(lambda _t: self._by_id.pop(campaign.id, None))
        return run

    def get(self, campaign_id: str) -> CampaignRun | None:
        """The run of a campaign, if it runs here."""
        return self._by_id.get(campaign_id)

    def __contains__(self, campaign_id: object) -> bool:
        return campaign_id in self._by_id

    async def stop_all(self, *, hand_over: bool) -> None:
        """Cancel (or hand over) every run and wait for them to settle; then stop the reels
        under way (one left owed is made by the next `resume`)."""
        runs = list(self._by_id.values())
        for run in runs:
            if hand_over:
                run.hand_over()
            else:
                run.cancel()
        await asyncio.gather(*(run.task for run in runs if run.task), return_exceptions=True)
        if self.ctx.reels is not None:
            await self.ctx.reels.stop()

    async def finalize_idle(self, campaign: Campaign) -> Campaign:
        """Finalize as canceled a campaign that no process runs (no sinks, no sheet)."""
        return await CampaignRun(campaign, (), self.ctx).finalize(campaign, canceled=True)


def _work_error(work: asyncio.Task[None]) -> str | None:
    """The error to store for work that failed (None if it did not)."""
    if work.cancelled() or work.exception() is None:
        return None
    exc = work.exception()
    log.error("campaign work failed", exc_info=exc)
    if isinstance(exc, CampaignError | ConfigError):  # a model's price gone from the table
        return str(exc)
    return f"internal error ({type(exc).__name__})"


def _lost(work: asyncio.Task[None]) -> bool:
    """Whether the work ended because another process took the campaign over."""
    exc = None if work.cancelled() else work.exception()  # retrieved in any case
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(LeaseLost) is not None
    return isinstance(exc, LeaseLost)


def _image_done(product: Product) -> bool:
    step = product.step(StepName.IMAGE)
    return step is None or step.status.done
