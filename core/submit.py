"""New campaigns: check a request, submit it, or animate a caller's image.

Nothing is stored or written before the request passes: its size, its models
(priced and known to the generator), the blocklist and, in the same store
transaction that inserts the campaign, the quotas and cost caps (core/audit.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from core import actions, folders, uploads
from core.errors import InvalidRequest
from core.model import Campaign, CampaignStatus, Origin, Product, TerminalOrigin
from core.pipeline import models_of
from core.ports import ProgressSink
from core.quotas import Who
from core.request import CampaignRequest, ModelOverrides
from core.service_context import Estimate, ServiceContext


class Submissions:
    """The use cases that start a new campaign."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def check(
        self, request: CampaignRequest, requester: str | None, origin: Origin | None
    ) -> Estimate:
        """Refuse now what `submit` would refuse; store nothing; return the estimate."""
        who = Who.of(requester, origin)
        estimate = await self._screen(request, who)
        await self.ctx.gate().check(request, who, estimate.cost_usd)
        return estimate

    async def submit(
        self,
        request: CampaignRequest,
        sinks: Sequence[ProgressSink],
        requester: str | None,
        origin: Origin | None,
    ) -> Campaign:
        """Store a new campaign once it passes every check, and start it."""
        who = Who.of(requester, origin)
        estimate = await self._screen(request, who)
        campaign = self._campaign(request, requester, origin)
        await self.ctx.gate().create(campaign, who, estimate.cost_usd)
        await self.ctx.claim_and_start(campaign, sinks)
        return campaign

    async def animate_image(
        self,
        data: bytes,
        name: str,
        prompt: str | None,
        sinks: Sequence[ProgressSink],
        requester: str | None,
        origin: Origin | None,
    ) -> Campaign:
        """A one-product campaign animating an uploaded image, written to its folder."""
        prompt = self.ctx.prompt(prompt)
        upload = uploads.checked(data, name)
        request = CampaignRequest(
            theme=f"animate {upload.stem}", products=1, videos=True, models=ModelOverrides()
        )
        who = Who.of(requester, origin)
        estimate = await self._screen(request, who)
        campaign_id = uuid.uuid4().hex[:8]
        path = self.ctx.folder(campaign_id) / f"upload{upload.suffix}"
        now = self.ctx.clock()
        product = actions.uploaded(path, upload.stem, prompt, now, request.models.video)
        campaign = self._campaign(request, requester, origin, campaign_id, now, (product,))
        await folders.write_new(path, upload.data)
        try:
            await self.ctx.gate().create(campaign, who, estimate.cost_usd)
        except BaseException:
            await folders.remove_folder(path.parent)
            raise
        await self.ctx.claim_and_start(campaign, sinks)
        return campaign

    async def _screen(self, request: CampaignRequest, who: Who) -> Estimate:
        """The request's estimate, once its size, models and text may be spent on."""
        max_products = self.ctx.config.settings.max_products
        if request.products > max_products:
            raise InvalidRequest("products", f"{request.products} is too many", f"1-{max_products}")
        gate = self.ctx.gate()
        gate.screen_models(request)
        await self.ctx.generator.check_models(models_of(request))
        estimate = self.ctx.estimate(request)
        await gate.screen(request, who, estimate.cost_usd)
        return estimate

    def _campaign(
        self,
        request: CampaignRequest,
        requester: str | None,
        origin: Origin | None,
        campaign_id: str | None = None,
        created_at: float | None = None,
        products: tuple[Product, ...] = (),
    ) -> Campaign:
        """A new pending campaign of `request`, as it will be stored."""
        ctx = self.ctx
        return Campaign(
            id=campaign_id or uuid.uuid4().hex[:8],
            request=request,
            status=CampaignStatus.PENDING,
            created_at=ctx.clock() if created_at is None else created_at,
            executor=ctx.executor.name,
            generator=ctx.generator.name,
            requester=requester,
            origin=origin or TerminalOrigin(),
            products=products,
        )
