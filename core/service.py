"""CampaignService: submit, wait, cancel, retry, show and list campaigns.

Front ends call only this. Each campaign runs in a task the service owns;
`aclose()` cancels them all. Cancellation can also come from another process
through the store's cancel flag, which a running campaign polls.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.audit import Gate
from core.errors import CampaignError, CampaignStateError, InvalidRequest, LeaseLost
from core.lease import Held, ResumeReport, Stop, judge, new_owner
from core.model import Campaign, CampaignStatus, Product, StepKind, StepName, StepStatus, outcome
from core.pipeline import ChainRunner, Publish, new_product, step_names
from core.planner import base_seed
from core.ports import (
    CampaignStore,
    Executor,
    Generator,
    PlanContext,
    Planner,
    ProgressSink,
    StepHooks,
)
from core.progress import EventKind, ProgressEvent
from core.quotas import QuotaSettings, Who
from core.request import CampaignRequest
from core.scheduler import Scheduler
from core.screening import Blocklist

log = logging.getLogger(__name__)

SURE_SHARE = 0.8  # of the lease: a process that could not beat for longer spends nothing
SinksFor = Callable[[Campaign], Sequence[ProgressSink]]
Accept = Callable[[Campaign], bool]  # which orphans a process takes over
SheetFn = Callable[..., str]
"""`sheet(items, out_path, *, title) -> out_path`: picklable contact-sheet renderer."""


@dataclass
class ServiceConfig:
    """Knobs of the service that are not ports."""

    data_dir: Path
    max_products: int = 20
    cancel_poll_s: float = 1.0  # also the heartbeat interval of a running campaign
    lease_s: float = 10.0  # a campaign whose owner has not beaten for this long is an orphan
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    blocklist: Blocklist = field(default_factory=Blocklist)
    # The models the generator's price table knows, per kind ("text", "image",
    # "video") as `owner/name`: a request naming any other model of a listed
    # kind is refused, so no estimate or cost is a guess. Empty: no check (a
    # generator that ignores models, like the offline one).
    priced_models: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimate:
    """What a request will cost before it starts."""

    steps: int
    cost_usd: float


@dataclass
class _Running:
    task: asyncio.Task[Campaign]
    work: asyncio.Task[None] | None = None
    canceled: bool = False
    stop: Stop = field(default_factory=Stop)  # keep: handed over or taken over, not canceled
    sinks: list[ProgressSink] = field(default_factory=list)
    sheet: tuple[list[tuple[str, str]], str | None] | None = None  # (its images, its path)


class CampaignService:
    """The one entry point for every front end."""

    def __init__(
        self,
        *,
        store: CampaignStore,
        planner: Planner,
        generator: Generator,
        executor: Executor,
        scheduler: Scheduler,
        sheet: SheetFn,
        config: ServiceConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.planner = planner
        self.generator = generator  # runs on the executor; the service reads its name and prices
        self.executor = executor
        self.scheduler = scheduler
        self.config = config
        self._sheet = sheet
        self._clock = clock
        self._running: dict[str, _Running] = {}
        self._restarting: set[str] = set()
        # Who runs a campaign, stored with a heartbeat so that another process
        # can tell a live campaign from one whose process died.
        self.owner = new_owner()
        self._resumer: asyncio.Task[None] | None = None

    def describe_executor(self) -> str:
        """Where the steps run, for status displays ("local pool: 2 CPU workers")."""
        return self.executor.describe()

    @property
    def generator_name(self) -> str:
        """Which generator makes the outputs ("replicate", "offline")."""
        return self.generator.name

    def estimate(self, request: CampaignRequest) -> Estimate:
        """Steps and expected cost of a request, before anything is started."""
        models = {StepName.IMAGE: request.models.image, StepName.VIDEO: request.models.video}
        per_product = [(s, self.generator.price_usd(s, models[s])) for s in step_names(request)]
        return Estimate(
            steps=request.products * len(per_product),
            cost_usd=round(request.products * sum(p for _, p in per_product), 6),
        )

    async def submit(
        self,
        request: CampaignRequest,
        sinks: Sequence[ProgressSink] = (),
        *,
        requester: str | None = None,
        origin: Mapping[str, str] | None = None,
    ) -> Campaign:
        """Store a new campaign and start it; returns the stored record at once.

        `requester` is the front end's user id; `origin` says where the campaign's
        chat status message lives (opaque to the core, kept for the front end;
        its platform, channel and guild or team are the scopes quotas count in).
        Before anything is stored: InvalidRequest, RequestBlocked (blocklist)
        or QuotaExceeded (quotas and cost caps, checked and counted in the same
        store transaction that inserts the campaign); the last two leave an
        audit line.
        """
        who = Who.of(requester, origin)
        estimate = await self._screen(request, who)
        campaign = Campaign(
            id=uuid.uuid4().hex[:8],
            request=request,
            status=CampaignStatus.PENDING,
            created_at=self._clock(),
            executor=self.executor.name,
            generator=self.generator.name,
            requester=requester,
            origin=dict(origin or {}),
        )
        await self._gate().create(campaign, who, estimate.cost_usd)
        await self._claim(campaign.id)
        self._start(campaign, sinks)
        return campaign

    async def check(
        self,
        request: CampaignRequest,
        *,
        requester: str | None = None,
        origin: Mapping[str, str] | None = None,
    ) -> Estimate:
        """Refuse now what `submit` would refuse, e.g. before a front end posts anything.

        Raises like `submit` (leaving the same audit line) but stores no
        campaign; returns the estimate. `submit` checks again, atomically.
        """
        who = Who.of(requester, origin)
        estimate = await self._screen(request, who)
        await self._gate().check(request, who, estimate.cost_usd)
        return estimate

    async def _screen(self, request: CampaignRequest, who: Who) -> Estimate:
        """The request's estimate, once its size, models and text may be spent on."""
        if request.products > self.config.max_products:
            raise InvalidRequest(
                "products", f"{request.products} is too many", f"1-{self.config.max_products}"
            )
        estimate = self.estimate(request)
        await self._gate().screen(request, who, estimate.cost_usd)
        return estimate

    def _gate(self) -> Gate:
        """Screening, quotas and the audit ledger (core/audit.py)."""
        config = self.config
        return Gate(
            self.store,
            quotas=config.quotas,
            blocklist=config.blocklist,
            priced_models=config.priced_models,
            clock=self._clock,
        )

    async def resume_orphans(
        self, sinks_for: SinksFor = lambda _c: (), accept: Accept = lambda _c: True
    ) -> ResumeReport:
        """Take over unfinished campaigns whose process stopped, and run them on.

        An owner stopped when its lease lapsed (no heartbeat for `lease_s`), when
        it released the campaign (a deploy hands over), or at once when its
        process is gone from this host. Steps that had finished keep their
        outcome; the others run again with their stored prediction id or, after
        a crash between create and store, adopt the prediction their intent
        points to (no step is paid for twice). `accept` picks the campaigns this
        process may report on (a front end takes only its own); `sinks_for`
        re-attaches progress, e.g. to the chat message in `campaign.origin`.
        """
        report = ResumeReport([], [], [])
        now = self._clock()
        leases = await self.store.unfinished()
        for verdict in judge(leases, self.owner, now, self.config.lease_s):
            campaign_id = verdict.lease.campaign_id
            if campaign_id in self._running:
                continue
            campaign = await self.store.get(campaign_id)
            if not verdict.free:
                report.held.append(
                    Held(campaign, verdict.lease.owner or "", round(verdict.free_in_s, 1))
                )
            elif not accept(campaign):
                report.skipped.append(campaign)
            elif await self._claim(campaign_id, replacing=verdict.dead_owner):
                log.warning("resuming campaign %s, left by a stopped process", campaign_id)
                self._start(campaign, sinks_for(campaign))
                report.resumed.append(campaign)
        return report

    def start_resuming(
        self, sinks_for: SinksFor = lambda _c: (), accept: Accept = lambda _c: True
    ) -> None:
        """Take over orphans now and every `lease_s` from now on, until aclose()."""
        if self._resumer is None:
            self._resumer = asyncio.create_task(self._resume_loop(sinks_for, accept))

    async def _resume_loop(self, sinks_for: SinksFor, accept: Accept) -> None:
        while True:
            try:
                await self.resume_orphans(sinks_for, accept)
            except Exception:  # a locked or broken database: try again next round
                log.exception("resuming orphaned campaigns failed")
            await asyncio.sleep(self.config.lease_s)

    async def _claim(self, campaign_id: str, replacing: str | None = None) -> bool:
        now = self._clock()
        stale_before = now - self.config.lease_s
        return await self.store.claim(campaign_id, self.owner, now, stale_before, replacing)

    async def run(self, request: CampaignRequest, sinks: Sequence[ProgressSink] = ()) -> Campaign:
        """Submit and wait for the outcome."""
        campaign = await self.submit(request, sinks)
        return await self.wait(campaign.id)

    async def wait(self, campaign_id: str) -> Campaign:
        """The campaign once it is finished (now, if it is not running here)."""
        running = self._running.get(campaign_id)
        if running is not None:
            return await asyncio.shield(running.task)
        return await self.store.get(campaign_id)

    async def get(self, campaign_id: str) -> Campaign:
        """The stored campaign."""
        return await self.store.get(campaign_id)

    async def history(self, limit: int = 20, requester: str | None = None) -> Sequence[Campaign]:
        """Newest campaigns first, optionally only one requester's."""
        return await self.store.recent(limit, requester)

    async def cancel(self, campaign_id: str) -> Campaign:
        """Stop pending steps and cancel running ones; returns the stored record."""
        campaign = await self.store.get(campaign_id)
        if campaign.status.done:
            raise CampaignStateError(f"campaign {campaign_id} already {campaign.status.value}")
        running = self._running.get(campaign_id)
        if running is not None:
            self._cancel_here(running)
            return await self.wait(campaign_id)
        return await self._cancel_elsewhere(campaign_id)

    async def _cancel_elsewhere(self, campaign_id: str) -> Campaign:
        """Flag it for the process running it; if none reacts in time, mark it here."""
        await self.store.request_cancel(campaign_id)
        if campaign_id in await self.store.orphans(self._clock() - self.config.lease_s):
            return await self.abandon(campaign_id)  # its process is gone: no one to wait for
        for _ in range(3):
            await asyncio.sleep(self.config.cancel_poll_s)
            campaign = await self.store.get(campaign_id)
            if campaign.status.done:
                return campaign
        return await self.abandon(campaign_id)

    async def abandon(self, campaign_id: str) -> Campaign:
        """Mark a campaign that no process is running any more as canceled."""
        campaign = await self.store.get(campaign_id)
        if campaign.status.done or campaign_id in self._running:
            return campaign
        if not await self._claim(campaign_id):  # a live process still runs it
            return campaign
        return await self._finalize(campaign, canceled=True)

    async def retry(self, campaign_id: str, sinks: Sequence[ProgressSink] = ()) -> Campaign:
        """Restart only the failed, canceled or skipped steps; `wait()` for the outcome."""
        campaign = await self.store.get(campaign_id)
        if campaign_id in self._running or campaign_id in self._restarting:
            raise CampaignStateError(f"campaign {campaign_id} is already running again")
        if not campaign.status.done:
            raise CampaignStateError(f"campaign {campaign_id} is still {campaign.status.value}")
        if campaign.status is CampaignStatus.SUCCEEDED:
            raise CampaignStateError(f"campaign {campaign_id} already succeeded")
        self._restarting.add(campaign_id)  # two presses of Retry must not start it twice
        try:
            if not await self._claim(campaign_id):
                raise CampaignStateError(f"campaign {campaign_id} is running in another process")
            return await self._restart(campaign, sinks)
        finally:
            self._restarting.discard(campaign_id)

    async def _restart(self, campaign: Campaign, sinks: Sequence[ProgressSink]) -> Campaign:
        campaign_id = campaign.id
        for step in campaign.steps():
            if step.status is not StepStatus.SUCCEEDED:
                await self.store.save_step(
                    campaign_id,
                    step.evolve(
                        status=StepStatus.PENDING, error=None, started_at=None, finished_at=None
                    ),
                )
        await self.store.clear_cancel(campaign_id)
        await self.store.save_status(campaign_id, CampaignStatus.PENDING)
        campaign = await self.store.get(campaign_id)
        self._start(campaign, sinks)
        return campaign

    async def aclose(self, *, hand_over: bool = False) -> None:
        """Stop every campaign this service runs and wait for them to settle.

        `hand_over=False`: cancel them (and their predictions). `hand_over=True`
        (a deploy): stop them here without cancelling anything on the provider
        and release their leases, so the next process takes them over at once.
        """
        if self._resumer is not None:
            self._resumer.cancel()
            await asyncio.gather(self._resumer, return_exceptions=True)
        for running in list(self._running.values()):
            (self._hand_over_here if hand_over else self._cancel_here)(running)
        tasks = [r.task for r in self._running.values()]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _sure_s(self) -> float:
        """How long after a successful claim or beat this process surely holds the lease."""
        return self.config.lease_s * SURE_SHARE

    def _start(self, campaign: Campaign, sinks: Sequence[ProgressSink]) -> None:
        """Run a campaign this process has just claimed."""
        stop = Stop(valid_until=time.monotonic() + self._sure_s())
        running = _Running(
            task=asyncio.create_task(self._drive(campaign)), stop=stop, sinks=list(sinks)
        )
        self._running[campaign.id] = running
        running.task.add_done_callback(lambda _t: self._running.pop(campaign.id, None))

    @staticmethod
    def _hand_over_here(running: _Running) -> None:
        """Stop the run here, leaving its predictions running for the next owner."""
        running.stop.keep = True
        if running.work is not None:
            running.work.cancel()

    def _cancel_here(self, running: _Running) -> None:
        if running.stop.keep:  # already being handed over: nothing left to cancel here
            return
        running.canceled = True
        if running.work is not None:
            running.work.cancel()

    async def _drive(self, campaign: Campaign) -> Campaign:
        running = self._running[campaign.id]
        started = campaign.started_at or self._clock()
        await self.store.save_status(
            campaign.id, CampaignStatus.RUNNING, started_at=started, owner=self.owner
        )
        await self._publish(
            ProgressEvent(
                EventKind.CAMPAIGN_STARTED,
                campaign.id,
                started,
                campaign=await self.store.get(campaign.id),
            )
        )
        running.work = asyncio.create_task(self._work(campaign))
        if running.canceled or running.stop.keep:  # stopped before there was work to stop
            running.work.cancel()
        watcher = asyncio.create_task(self._keep_alive(campaign.id, running))
        try:
            await asyncio.wait([running.work])
        finally:
            watcher.cancel()
        if _lost(running.work) or running.stop.keep:
            return await self._let_go(campaign.id)
        error = self._work_error(running.work)
        try:
            return await self._finalize(
                await self.store.get(campaign.id), canceled=running.canceled, error=error
            )
        except LeaseLost:
            return await self._let_go(campaign.id)

    async def _let_go(self, campaign_id: str) -> Campaign:
        """Leave a campaign that is handed over (or was taken over) to its next owner."""
        await self.store.release(campaign_id, self.owner)  # no-op if another owns it now
        log.warning("campaign %s left to its next owner; nothing canceled", campaign_id)
        return await self.store.get(campaign_id)

    async def _work(self, campaign: Campaign) -> None:
        products = campaign.products or await self._plan(campaign)
        images_left = {p.plan.index for p in products if not _image_done(p)}
        images_done = asyncio.Event()
        if not images_left:
            images_done.set()

        async def publish(event: ProgressEvent) -> None:
            if event.kind is EventKind.STEP_FINISHED and event.step is StepName.IMAGE:
                images_left.discard(event.product_index or 0)
                if not images_left:
                    images_done.set()
            await self._publish(event)

        runner = self._runner(campaign, publish)
        async with asyncio.TaskGroup() as group:
            for product in products:
                group.create_task(runner.run(product))
            group.create_task(self._sheet_early(campaign.id, images_done))

    async def _sheet_early(self, campaign_id: str, images_done: asyncio.Event) -> None:
        """Render the contact sheet once every image is done, while the videos still run."""
        await images_done.wait()
        campaign = await self.store.get(campaign_id)
        items = _sheet_items(campaign)
        running = self._running.get(campaign_id)
        if running is not None:
            running.sheet = (items, await self._contact_sheet(campaign, items))

    async def _plan(self, campaign: Campaign) -> tuple[Product, ...]:
        async with self.scheduler.slot(StepKind.TEXT, campaign.id):  # an LLM planner predicts
            try:
                plans = await self.planner.plan(campaign.request, self._plan_context(campaign))
            except LeaseLost:
                self._running[campaign.id].stop.keep = True
                raise
        products = tuple(new_product(plan, campaign.request) for plan in plans)
        await self.store.add_products(campaign.id, products)
        await self._publish(
            ProgressEvent(
                EventKind.CAMPAIGN_STARTED,
                campaign.id,
                self._clock(),
                campaign=await self.store.get(campaign.id),
            )
        )
        if note := getattr(plans, "note", ""):  # e.g. "fell back to the offline planner: ..."
            await self._publish(
                ProgressEvent(EventKind.STEP_PROGRESS, campaign.id, self._clock(), message=note)
            )
        return products

    def _plan_context(self, campaign: Campaign) -> PlanContext:
        """Hooks that store the planning prediction like a step's (fenced by owner)."""
        state = _PlanState(campaign.plan_provider_id, campaign.plan_intent_at)
        stop = self._running[campaign.id].stop

        async def save() -> None:
            try:
                await self.store.save_plan(campaign.id, state.pid, state.intent_at, self.owner)
            except LeaseLost:
                stop.keep = True
                raise

        async def remember(provider_id: str) -> None:
            state.pid = provider_id
            await save()

        async def before_spend() -> None:
            state.intent_at = self._clock()
            await save()

        hooks = StepHooks(
            _quiet,
            remember,
            before_spend=before_spend,
            keep_on_stop=lambda: stop.keep,
            may_spend=stop.may_spend,
        )
        return PlanContext(hooks, campaign.plan_provider_id, campaign.plan_intent_at)

    def _runner(self, campaign: Campaign, publish: Publish) -> ChainRunner:
        return ChainRunner(
            campaign_id=campaign.id,
            style=campaign.request.style.value,
            seed=base_seed(campaign.request),
            out_dir=str(self._folder(campaign.id)),
            store=self.store,
            executor=self.executor,
            scheduler=self.scheduler,
            publish=publish,
            clock=self._clock,
            owner=self.owner,
            stop=self._running[campaign.id].stop,
        )

    def _folder(self, campaign_id: str) -> Path:
        return (self.config.data_dir / "campaigns" / campaign_id).resolve()

    async def _keep_alive(self, campaign_id: str, running: _Running) -> None:
        """Beat the heartbeat and watch the cancel flag other processes may set.

        A beat that no longer matches means another process took the campaign
        over (this one was paused or cut off past its lease): stop at once,
        cancelling nothing on the provider.
        """
        beat_s = min(self.config.cancel_poll_s, self.config.lease_s / 3)
        while True:
            await asyncio.sleep(beat_s)
            beat_at = time.monotonic()
            if await self.store.heartbeat(campaign_id, self.owner, self._clock()):
                running.stop.valid_until = beat_at + self._sure_s()
            else:
                log.warning("campaign %s: lease lost to another process; stopping", campaign_id)
                self._hand_over_here(running)
                return
            if await self.store.cancel_requested(campaign_id):
                self._cancel_here(running)
                return

    @staticmethod
    def _work_error(work: asyncio.Task[None]) -> str | None:
        if work.cancelled() or work.exception() is None:
            return None
        exc = work.exception()
        log.error("campaign work failed", exc_info=exc)
        if isinstance(exc, CampaignError):
            return str(exc)
        return f"internal error ({type(exc).__name__})"

    async def _finalize(
        self, campaign: Campaign, *, canceled: bool, error: str | None = None
    ) -> Campaign:
        for step in campaign.steps():
            if not step.status.done:
                await self.store.save_step(
                    campaign.id,
                    step.evolve(
                        status=StepStatus.CANCELED, error="canceled", finished_at=self._clock()
                    ),
                    self.owner,
                )
        campaign = await self.store.get(campaign.id)
        sheet = None if canceled else await self._final_sheet(campaign)
        status = outcome(campaign.steps(), canceled)
        await self.store.save_status(
            campaign.id,
            status,
            finished_at=self._clock(),
            contact_sheet=sheet,
            error=error,
            owner=self.owner,
        )
        campaign = await self.store.get(campaign.id)
        await self._gate().finished(campaign, self.estimate(campaign.request).cost_usd)
        await self._publish(
            ProgressEvent(
                EventKind.CAMPAIGN_FINISHED,
                campaign.id,
                self._clock(),
                status=status.value,
                campaign=campaign,
            )
        )
        return campaign

    async def _final_sheet(self, campaign: Campaign) -> str | None:
        """The sheet rendered early if its images are still the campaign's, else a new one."""
        items = _sheet_items(campaign)
        running = self._running.get(campaign.id)
        if running is not None and running.sheet is not None and running.sheet[0] == items:
            return running.sheet[1]
        return await self._contact_sheet(campaign, items)

    async def _contact_sheet(self, campaign: Campaign, items: list[tuple[str, str]]) -> str | None:
        if not items:
            return None
        out = str(self._folder(campaign.id) / "contact-sheet.png")
        try:
            sheet: str = await self.executor.run_cpu(
                functools.partial(self._sheet, items, out, title=campaign.request.theme)
            )
        except Exception:
            log.exception("contact sheet failed for campaign %s", campaign.id)
            return None
        return sheet

    async def _publish(self, event: ProgressEvent) -> None:
        """Hand an event to every sink of its campaign."""
        running = self._running.get(event.campaign_id)
        for sink in running.sinks if running else ():
            try:
                await sink.publish(event)
            except Exception:  # one broken display must not stop the campaign
                log.exception("progress sink failed")


def _image_done(product: Product) -> bool:
    step = product.step(StepName.IMAGE)
    return step is None or step.status.done


def _sheet_items(campaign: Campaign) -> list[tuple[str, str]]:
    """(name, image path) of every product that has an image."""
    return [
        (p.plan.name, path)
        for p in campaign.products
        if (path := p.output(StepName.IMAGE)) is not None
    ]


def _lost(work: asyncio.Task[None]) -> bool:
    """Whether the work ended because another process took the campaign over."""
    exc = None if work.cancelled() else work.exception()  # retrieved in any case
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(LeaseLost) is not None
    return isinstance(exc, LeaseLost)


@dataclass
class _PlanState:
    pid: str | None
    intent_at: float | None


async def _quiet(_message: str) -> None:
    return None
