"""CampaignService: the use cases every front end calls, and nothing else.

Submit, check and estimate a request; run, wait for, get and list campaigns;
cancel, abandon and retry them; resume orphans. The work lives elsewhere:
one campaign's run in core/run.py, taking over orphans in core/recovery.py,
leases in core/lease.py, the spend guard in core/audit.py. `aclose()` stops
every campaign this service runs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.audit import Gate
from core.errors import CampaignStateError, InvalidRequest
from core.lease import Ownership, ResumeReport
from core.model import Campaign, CampaignStatus, StepName, StepStatus
from core.pipeline import step_names
from core.ports import CampaignStore, Executor, Generator, Planner, ProgressSink
from core.quotas import QuotaSettings, Who
from core.recovery import Accept, Recovery, SinksFor
from core.request import CampaignRequest
from core.run import RunContext, Runs, SheetFn
from core.scheduler import Scheduler
from core.screening import Blocklist


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
        self._clock = clock
        self._ownership = Ownership(store, config.lease_s, clock)
        self._runs = Runs(
            RunContext(
                records=store,
                ownership=self._ownership,
                planner=planner,
                executor=executor,
                scheduler=scheduler,
                sheet=sheet,
                data_dir=config.data_dir,
                beat_s=min(config.cancel_poll_s, config.lease_s / 3),
                clock=clock,
                finished=self._audit_finished,
            )
        )
        self._recovery = Recovery(store, store, self._ownership, self._runs)
        self._restarting: set[str] = set()

    @property
    def owner(self) -> str:
        """This process's owner id on the campaigns it runs ("host:pid:tag")."""
        return self._ownership.owner

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
        await self._ownership.claim(campaign.id)
        self._runs.start(campaign, sinks)
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
        return await self._recovery.resume(sinks_for, accept)

    def start_resuming(
        self, sinks_for: SinksFor = lambda _c: (), accept: Accept = lambda _c: True
    ) -> None:
        """Take over orphans now and every `lease_s` from now on, until aclose()."""
        self._recovery.start(sinks_for, accept)

    async def run(self, request: CampaignRequest, sinks: Sequence[ProgressSink] = ()) -> Campaign:
        """Submit and wait for the outcome."""
        campaign = await self.submit(request, sinks)
        return await self.wait(campaign.id)

    async def wait(self, campaign_id: str) -> Campaign:
        """The campaign once it is finished (now, if it is not running here)."""
        run = self._runs.get(campaign_id)
        if run is not None and run.task is not None:
            return await asyncio.shield(run.task)
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
        run = self._runs.get(campaign_id)
        if run is not None:
            run.cancel()
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
        if campaign.status.done or campaign_id in self._runs:
            return campaign
        if not await self._ownership.claim(campaign_id):  # a live process still runs it
            return campaign
        return await self._runs.finalize_idle(campaign)

    async def retry(self, campaign_id: str, sinks: Sequence[ProgressSink] = ()) -> Campaign:
        """Restart only the failed, canceled or skipped steps; `wait()` for the outcome."""
        campaign = await self.store.get(campaign_id)
        if campaign_id in self._runs or campaign_id in self._restarting:
            raise CampaignStateError(f"campaign {campaign_id} is already running again")
        if not campaign.status.done:
            raise CampaignStateError(f"campaign {campaign_id} is still {campaign.status.value}")
        if campaign.status is CampaignStatus.SUCCEEDED:
            raise CampaignStateError(f"campaign {campaign_id} already succeeded")
        self._restarting.add(campaign_id)  # two presses of Retry must not start it twice
        try:
            if not await self._ownership.claim(campaign_id):
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
        self._runs.start(campaign, sinks)
        return campaign

    async def aclose(self, *, hand_over: bool = False) -> None:
        """Stop every campaign this service runs and wait for them to settle.

        `hand_over=False`: cancel them (and their predictions). `hand_over=True`
        (a deploy): stop them here without cancelling anything on the provider
        and release their leases, so the next process takes them over at once.
        """
        await self._recovery.aclose()
        await self._runs.stop_all(hand_over=hand_over)

    async def _audit_finished(self, campaign: Campaign) -> None:
        """The audit line of a campaign that has just been finalized."""
        await self._gate().finished(campaign, self.estimate(campaign.request).cost_usd)
