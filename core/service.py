"""CampaignService: the use cases every front end calls, and nothing else.

A thin facade: each method reads in one sitting or hands over to the module
that does the job, all sharing one `ServiceContext` (core/service_context.py:
ports, knobs, leases, runs). New campaigns (submit, check, animate an image)
are core/submit.py; retry, reroll and animate of a finished campaign are
core/after.py; cancel and abandon are core/cancel.py. One campaign's run is
core/run.py, taking over orphans core/recovery.py, leases core/lease.py, the
spend guard core/audit.py, uploads core/uploads.py and core/folders.py.

Who owns what:

- the store, generator, executor and planner are opened by the composition
  root (bot.py `build()`, or a test's factory) and closed there; the service
  only uses them and never closes them;
- the service owns what it starts: the campaigns it runs (`Runs`) and the
  resume loop (`start_resuming`). `aclose()` stops both and nothing else;
- the composition root closes the service on exit (after its front end has
  stopped). A front end may stop the campaigns earlier, e.g. to hand them over
  before its followers post their last edit: `aclose(hand_over=True)`; the
  root's later `aclose()` then finds nothing left to stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from core.after import MAX_ATTEMPTS_PER_SLOT, AfterActions
from core.cancel import Cancellation
from core.lease import ResumeReport
from core.model import Action, Campaign, Origin
from core.pictures import Renderers
from core.ports import Executor, Generator, Planner, ProgressSink
from core.recovery import Accept, Recovery, SinksFor
from core.request import CampaignRequest
from core.scheduler import Scheduler
from core.service_context import Estimate, ServiceConfig, ServiceContext
from core.store_ports import CampaignStore
from core.submit import Submissions

__all__ = ["MAX_ATTEMPTS_PER_SLOT", "CampaignService", "Estimate", "ServiceConfig"]


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
        ctx = ServiceContext(
            store=store,
            planner=planner,
            generator=generator,
            executor=executor,
            scheduler=scheduler,
            sheet=sheet,
            config=config,
            clock=clock,
        )
        self._ctx = ctx
        self._new = Submissions(ctx)
        self._after = AfterActions(ctx)
        self._stop = Cancellation(ctx)
        self._recovery = Recovery(store, store, ctx.ownership, ctx.runs, ctx.reels)

    @property
    def owner(self) -> str:
        """This process's owner id on the campaigns it runs ("host:pid:tag")."""
        return self._ctx.ownership.owner

    def describe_executor(self) -> str:
        """Where the steps run, for status displays ("local pool: 2 CPU workers")."""
        return self.executor.describe()

    @property
    def generator_name(self) -> str:
        """Which generator makes the outputs ("replicate", "offline")."""
        return self.generator.name

    def estimate(self, request: CampaignRequest) -> Estimate:
        """Steps and expected cost of a request, before anything is started."""
        return self._ctx.estimate(request)

    async def submit(
        self,
        request: CampaignRequest,
        sinks: Sequence[ProgressSink] = (),
        *,
        requester: str | None = None,
        origin: Origin | None = None,
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
        return await self._new.submit(request, sinks, requester, origin)

    async def check(
        self,
        request: CampaignRequest,
        *,
        requester: str | None = None,
        origin: Origin | None = None,
    ) -> Estimate:
        """Refuse now what `submit` would refuse, e.g. before a front end posts anything.

        Raises like `submit` (leaving the same audit line) but stores no
        campaign; returns the estimate. `submit` checks again, atomically.
        """
        return await self._new.check(request, requester, origin)

    async def animate_image(
        self,
        data: bytes,
        name: str,
        prompt: str | None = None,
        sinks: Sequence[ProgressSink] = (),
        *,
        requester: str | None = None,
        origin: Origin | None = None,
    ) -> Campaign:
        """Animate an image of the caller's: a new one-product campaign (the Video Producer).

        `data` is a PNG, JPEG or WebP file of at most `uploads.MAX_UPLOAD_BYTES`; `name` its
        file name (only shown). Refused like `submit` (quotas count it as a
        campaign), before anything is stored or written.
        """
        return await self._new.animate_image(data, name, prompt, sinks, requester, origin)

    async def run(self, request: CampaignRequest, sinks: Sequence[ProgressSink] = ()) -> Campaign:
        """Submit and wait for the outcome, and for the reel that follows it."""
        campaign = await self.submit(request, sinks)
        await self.wait(campaign.id)
        return await self.wait_reel(campaign.id)

    async def wait(self, campaign_id: str) -> Campaign:
        """The campaign once it is finished (now, if it is not running here).

        Its reel, if it has videos, is made after that: see `wait_reel`.
        """
        return await self._ctx.wait(campaign_id)

    async def wait_reel(self, campaign_id: str) -> Campaign:
        """The campaign once no reel of it is being made here (written, failed or stopped)."""
        await self._ctx.reels.wait(campaign_id)
        return await self.store.get(campaign_id)

    async def get(self, campaign_id: str) -> Campaign:
        """The stored campaign."""
        return await self.store.get(campaign_id)

    async def history(self, limit: int = 20, requester: str | None = None) -> Sequence[Campaign]:
        """Newest campaigns first, optionally only one requester's."""
        return await self.store.recent(limit, requester)

    async def cancel(self, campaign_id: str) -> Campaign:
        """Stop pending steps and cancel running ones; returns the stored record."""
        return await self._stop.cancel(campaign_id)

    async def abandon(self, campaign_id: str) -> Campaign:
        """Mark a campaign that no process is running any more as canceled."""
        return await self._stop.abandon(campaign_id)

    async def retry(self, campaign_id: str, sinks: Sequence[ProgressSink] = ()) -> Campaign:
        """Restart only the failed, canceled or skipped steps; `wait()` for the outcome.

        Only each slot's current product runs again: a failed reroll whose
        earlier image stands is history, not work left.
        """
        return await self._after.retry(campaign_id, sinks)

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
        return await self._after.reroll(campaign_id, number, sinks, requester)

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
        return await self._after.animate(campaign_id, number, prompt, sinks, requester)

    async def action_estimate(self, campaign: Campaign, number: int) -> dict[Action, Estimate]:
        """What Reroll and Animate of product `number` would cost and typically take."""
        return await self._after.action_estimate(campaign, number)

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
        A finished campaign whose reel a stopped process owed gets it made
        here (`wait_reel`), from its stored clips: no step runs again.
        """
        return await self._recovery.resume(sinks_for, accept)

    def start_resuming(
        self, sinks_for: SinksFor = lambda _c: (), accept: Accept = lambda _c: True
    ) -> None:
        """Take over orphans now and every `lease_s` from now on, until aclose()."""
        self._recovery.start(sinks_for, accept)

    async def stop_campaigns(self, *, hand_over: bool) -> None:
        """Stop taking part: the resume loop, then every campaign run here.

        `hand_over=False`: cancel them (and their predictions). `hand_over=True`
        (a deploy): stop them here without cancelling anything on the provider
        and release their leases, so the next process takes them over at once.
        Reels under way stop too: the next `resume` makes them.
        Front ends call it before their followers post a last edit; calling it
        again is harmless (a later call stops only what started since).
        """
        await self._recovery.aclose()
        await self._ctx.runs.stop_all(hand_over=hand_over)

    async def aclose(self, *, hand_over: bool = False) -> None:
        """The owner's close (bot.py's build()): `stop_campaigns`. The store, generator
        and executor stay open: their opener closes them."""
        await self.stop_campaigns(hand_over=hand_over)
