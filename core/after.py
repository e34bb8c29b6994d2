"""A finished campaign again: retry what did not succeed, reroll or animate a product.

Each press claims the campaign (once: two presses must not start it twice),
prepares its new work in the store and runs it on this process. Rerolls and
animations are new attempts in the same campaign, under the attempt limit
and the cost caps (core/audit.py); `action_estimate` says what they would cost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from core import actions
from core.errors import CampaignStateError
from core.eta import Durations
from core.model import Action, Campaign, CampaignStatus, Product, StepName, StepStatus
from core.ports import ProgressSink
from core.quotas import Who
from core.service_context import Estimate, ServiceContext

MAX_ATTEMPTS_PER_SLOT = 4  # a campaign keeps at most max_products x this products and attempts

Prepare = Callable[[Campaign], Awaitable[None]]


class AfterActions:
    """Retry, Reroll and Animate of a finished campaign, and what they would cost."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._restarting: set[str] = set()  # campaigns being claimed for another run

    async def retry(self, campaign_id: str, sinks: Sequence[ProgressSink]) -> Campaign:
        """Run each slot's current product's failed, canceled or skipped steps again."""
        campaign = await self._finished(campaign_id)
        if campaign.status is CampaignStatus.SUCCEEDED:
            raise CampaignStateError(f"campaign {campaign_id} already succeeded")
        store = self.ctx.store

        async def reset(campaign: Campaign) -> None:
            for step in (s for p in campaign.current() for s in p.steps):
                if step.status is not StepStatus.SUCCEEDED:
                    await store.save_step(
                        campaign_id,
                        step.evolve(
                            status=StepStatus.PENDING, error=None, started_at=None, finished_at=None
                        ),
                        self.ctx.ownership.owner,  # claimed by _run_again before prepare
                    )

        return await self._run_again(campaign, reset, sinks)

    async def reroll(
        self, campaign_id: str, number: int, sinks: Sequence[ProgressSink], requester: str | None
    ) -> Campaign:
        """Product `number` (1-based) again with a new seed, as a new attempt."""
        campaign = await self._finished(campaign_id, "reroll")
        product = actions.reroll(campaign, actions.pick(campaign, number))
        return await self._add_attempts(campaign, [product], sinks, requester)

    async def animate(
        self,
        campaign_id: str,
        number: int | None,
        prompt: str | None,
        sinks: Sequence[ProgressSink],
        requester: str | None,
    ) -> Campaign:
        """A new video of product `number`, or of every current product without one."""
        prompt = self.ctx.prompt(prompt)
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

    async def action_estimate(self, campaign: Campaign, number: int) -> dict[Action, Estimate]:
        """What Reroll and Animate of product `number` would cost and typically take."""
        generator = self.ctx.generator
        source = actions.pick(campaign, number)
        durations = Durations(await self.ctx.store.step_samples(), guess=generator.typical_s)
        models = {StepName.IMAGE: campaign.request.models.image}
        models[StepName.VIDEO] = campaign.request.models.video
        rerolled = [(s.name, s.model or models[s.name]) for s in source.steps]
        video = source.step(StepName.VIDEO)
        animated = [(StepName.VIDEO, (video.model if video else None) or models[StepName.VIDEO])]

        def estimate(steps: list[tuple[StepName, str | None]]) -> Estimate:
            return Estimate(
                steps=len(steps),
                cost_usd=round(sum(generator.price_usd(n, m) for n, m in steps), 6),
                seconds=sum(durations.typical(n, m) for n, m in steps),
            )

        return {Action.REROLL: estimate(rerolled), Action.ANIMATE: estimate(animated)}

    async def _finished(self, campaign_id: str, action: str = "") -> Campaign:
        """The stored campaign, if it is finished and not starting again right now."""
        campaign = await self.ctx.store.get(campaign_id)
        if campaign_id in self._restarting:
            raise CampaignStateError(f"campaign {campaign_id} is already starting again")
        actions.require_finished(campaign, action, running=campaign_id in self.ctx.runs)
        return campaign

    async def _add_attempts(
        self,
        campaign: Campaign,
        products: Sequence[Product],
        sinks: Sequence[ProgressSink],
        requester: str | None,
    ) -> Campaign:
        """Check the attempt limit and cost caps, store new attempts, run the campaign again."""
        limit = self.ctx.config.settings.max_products * MAX_ATTEMPTS_PER_SLOT
        if len(campaign.products) + len(products) > limit:
            raise CampaignStateError(
                f"campaign {campaign.id} has {len(campaign.products)} products and attempts;"
                f" at most {limit} are kept. Start a new campaign"
            )
        cost = sum(
            self.ctx.generator.price_usd(s.name, s.model)
            for p in products
            for s in p.steps
            if s.status is StepStatus.PENDING
        )
        who = Who.of(requester or campaign.requester, campaign.origin)
        await self.ctx.gate().action(campaign, who, round(cost, 6))
        store = self.ctx.store

        async def add(campaign: Campaign) -> None:
            await store.add_products(campaign.id, products)

        return await self._run_again(campaign, add, sinks)

    async def _run_again(
        self, campaign: Campaign, prepare: Prepare, sinks: Sequence[ProgressSink]
    ) -> Campaign:
        """Claim a finished campaign, `prepare` its new work, and run it (once per press)."""
        campaign_id = campaign.id
        self._restarting.add(campaign_id)  # two presses must not start it twice
        try:
            if not await self.ctx.ownership.claim(campaign_id):
                raise CampaignStateError(f"campaign {campaign_id} is running in another process")
            await prepare(campaign)
            return await self._restart(campaign_id, sinks)
        finally:
            self._restarting.discard(campaign_id)

    async def _restart(self, campaign_id: str, sinks: Sequence[ProgressSink]) -> Campaign:
        store = self.ctx.store
        await store.clear_cancel(campaign_id)
        await store.save_status(campaign_id, CampaignStatus.PENDING, owner=self.ctx.ownership.owner)
        campaign = await store.get(campaign_id)
        self.ctx.runs.start(campaign, sinks)
        return campaign
