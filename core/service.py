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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from core import actions, folders, uploads
from core.audit import Gate
from core.errors import CampaignStateError, InvalidRequest, RequestBlocked
from core.eta import Durations
from core.lease import Ownership, ResumeReport
from core.model import Action, Campaign, CampaignStatus, Product, StepName, StepStatus
from core.pictures import Renderers
from core.pipeline import models_of, step_names
from core.ports import CampaignStore, Executor, Generator, Planner, ProgressSink
from core.quotas import QuotaSettings, Who
from core.recovery import Accept, Recovery, SinksFor
from core.request import CampaignRequest, ModelOverrides, motion_prompt
from core.run import RunContext, Runs
from core.scheduler import Scheduler
from core.screening import Blocklist

MAX_ATTEMPTS_PER_SLOT = 4  # a campaign keeps at most max_products x this products and attempts


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
    """What a request or an action will cost before it starts."""

    steps: int
    cost_usd: float
    seconds: float | None = None  # how long it typically takes, where known (actions)


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
        sheet: Renderers,
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
                price=generator.price_usd,
                typical=generator.typical_s,
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
        gate = self._gate()
        gate.screen_models(request)
        await self.generator.check_models(models_of(request))
        estimate = self.estimate(request)
        await gate.screen(request, who, estimate.cost_usd)
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
        """Restart only the failed, canceled or skipped steps; `wait()` for the outcome.

        Only each slot's current product runs again: a failed reroll whose
        earlier image stands is history, not work left.
        """
        campaign = await self._finished(campaign_id)
        if campaign.status is CampaignStatus.SUCCEEDED:
            raise CampaignStateError(f"campaign {campaign_id} already succeeded")

        async def reset(campaign: Campaign) -> None:
            for step in (s for p in campaign.current() for s in p.steps):
                if step.status is not StepStatus.SUCCEEDED:
                    await self.store.save_step(
                        campaign_id,
                        step.evolve(
                            status=StepStatus.PENDING, error=None, started_at=None, finished_at=None
                        ),
                    )

        return await self._run_again(campaign, reset, sinks)

    async def reroll(
        self,
        campaign_id: str,
        number: int,
        sinks: Sequence[ProgressSink] = (),
        *,
        requester: str | None = None,
    ) -> Campaign:
        """Product `number` (1-based) again with a new seed, as a new attempt in the campaign.

        `requester` is who pressed (default: the campaign's requester); the
        daily cost caps of that user and of the campaign's channel and server
        apply, and the per-campaign cap to the campaign's cost so far.
        """
        campaign = await self._finished(campaign_id, "reroll")
        product = actions.reroll(campaign, actions.pick(campaign, number))
        return await self._add_attempts(campaign, [product], sinks, requester)

    async def animate(
        self,
        campaign_id: str,
        number: int | None = None,
        prompt: str | None = None,
        sinks: Sequence[ProgressSink] = (),
        *,
        requester: str | None = None,
    ) -> Campaign:
        """A new video of product `number`, or of every current product without one (None).

        Cost caps as for `reroll`.
        """
        prompt = self._prompt(prompt)
        campaign = await self._finished(campaign_id, "animate")
        video_model = campaign.request.models.video
        if number is None:
            sources = actions.unanimated(campaign)
            if not sources:
                raise CampaignStateError(f"every product of {campaign_id} already has a video")
        else:
            sources = [actions.pick(campaign, number)]
        products: list[Product] = []
        for source in sources:  # each at the next free index
            grown = replace(campaign, products=campaign.products + tuple(products))
            products.append(actions.animate(grown, source, prompt, video_model))
        return await self._add_attempts(campaign, products, sinks, requester)

    async def animate_image(
        self,
        data: bytes,
        name: str,
        prompt: str | None = None,
        sinks: Sequence[ProgressSink] = (),
        *,
        requester: str | None = None,
        origin: Mapping[str, str] | None = None,
    ) -> Campaign:
        """Animate an image of the caller's: a new one-product campaign (the Video Producer).

        `data` is a PNG, JPEG or WebP file of at most `uploads.MAX_UPLOAD_BYTES`; `name` its
        file name (only shown). Refused like `submit` (quotas count it as a
        campaign), before anything is stored or written.
        """
        prompt = self._prompt(prompt)
        upload = uploads.checked(data, name)
        request = CampaignRequest(
            theme=f"animate {upload.stem}", products=1, videos=True, models=ModelOverrides()
        )
        who = Who.of(requester, origin)
        estimate = await self._screen(request, who)
        campaign_id = uuid.uuid4().hex[:8]
        path = self._runs.ctx.folder(campaign_id) / f"upload{upload.suffix}"
        now = self._clock()
        campaign = Campaign(
            id=campaign_id,
            request=request,
            status=CampaignStatus.PENDING,
            created_at=now,
            executor=self.executor.name,
            generator=self.generator.name,
            requester=requester,
            origin=dict(origin or {}),
            products=(actions.uploaded(path, upload.stem, prompt, now, request.models.video),),
        )
        await folders.write_new(path, upload.data)
        try:
            await self._gate().create(campaign, who, estimate.cost_usd)
        except BaseException:
            await folders.remove_folder(path.parent)
            raise
        await self._ownership.claim(campaign.id)
        self._runs.start(campaign, sinks)
        return campaign

    async def action_estimate(self, campaign: Campaign, number: int) -> dict[Action, Estimate]:
        """What Reroll and Animate of product `number` would cost and typically take."""
        source = actions.pick(campaign, number)
        durations = Durations(await self.store.step_samples(), guess=self.generator.typical_s)
        models = {StepName.IMAGE: campaign.request.models.image}
        models[StepName.VIDEO] = campaign.request.models.video
        rerolled = [(s.name, s.model or models[s.name]) for s in source.steps]
        video = source.step(StepName.VIDEO)
        animated = [(StepName.VIDEO, (video.model if video else None) or models[StepName.VIDEO])]

        def estimate(steps: list[tuple[StepName, str | None]]) -> Estimate:
            return Estimate(
                steps=len(steps),
                cost_usd=round(sum(self.generator.price_usd(n, m) for n, m in steps), 6),
                seconds=sum(durations.typical(n, m) for n, m in steps),
            )

        return {Action.REROLL: estimate(rerolled), Action.ANIMATE: estimate(animated)}

    def _prompt(self, prompt: str | None) -> str | None:
        """A checked motion prompt (InvalidRequest, RequestBlocked), or None for the plan's."""
        if prompt is None or not prompt.strip():
            return None
        checked = motion_prompt(prompt)
        entry = self.config.blocklist.match(checked)
        if entry is not None:
            raise RequestBlocked("prompt", entry)
        return checked

    async def _finished(self, campaign_id: str, action: str = "") -> Campaign:
        """The stored campaign, if it is finished and not starting again right now."""
        campaign = await self.store.get(campaign_id)
        if campaign_id in self._restarting:
            raise CampaignStateError(f"campaign {campaign_id} is already starting again")
        actions.require_finished(campaign, action, running=campaign_id in self._runs)
        return campaign

    async def _add_attempts(
        self,
        campaign: Campaign,
        products: Sequence[Product],
        sinks: Sequence[ProgressSink],
        requester: str | None,
    ) -> Campaign:
        """Check the attempt limit and cost caps, store new attempts, run the campaign again."""
        limit = self.config.max_products * MAX_ATTEMPTS_PER_SLOT
        if len(campaign.products) + len(products) > limit:
            raise CampaignStateError(
                f"campaign {campaign.id} has {len(campaign.products)} products and attempts;"
                f" at most {limit} are kept. Start a new campaign"
            )
        cost = sum(
            self.generator.price_usd(s.name, s.model)
            for p in products
            for s in p.steps
            if s.status is StepStatus.PENDING
        )
        who = Who.of(requester or campaign.requester, campaign.origin)
        await self._gate().action(campaign, who, round(cost, 6))

        async def add(campaign: Campaign) -> None:
            await self.store.add_products(campaign.id, products)

        return await self._run_again(campaign, add, sinks)

    async def _run_again(
        self,
        campaign: Campaign,
        prepare: Callable[[Campaign], Awaitable[None]],
        sinks: Sequence[ProgressSink],
    ) -> Campaign:
        """Claim a finished campaign, `prepare` its new work, and run it (once per press)."""
        campaign_id = campaign.id
        self._restarting.add(campaign_id)  # two presses must not start it twice
        try:
            if not await self._ownership.claim(campaign_id):
                raise CampaignStateError(f"campaign {campaign_id} is running in another process")
            await prepare(campaign)
            return await self._restart(campaign_id, sinks)
        finally:
            self._restarting.discard(campaign_id)

    async def _restart(self, campaign_id: str, sinks: Sequence[ProgressSink]) -> Campaign:
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
