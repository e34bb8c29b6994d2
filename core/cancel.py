"""Stopping a campaign: cancel it wherever it runs, or abandon one no process runs.

A campaign running here is cancelled at once. One running in another process
is flagged in the store for that process to stop; if its owner is gone, or
does not react within a few polls, it is marked canceled here.
"""

from __future__ import annotations

import asyncio

from core.errors import CampaignStateError
from core.model import Campaign
from core.service_context import ServiceContext

CANCEL_POLLS = 3  # how many `cancel_poll_s` (this process's) another gets to react to the flag


class Cancellation:
    """Cancel and abandon."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def cancel(self, campaign_id: str) -> Campaign:
        """Stop pending steps and cancel running ones; returns the stored record."""
        campaign = await self.ctx.store.get(campaign_id)
        if campaign.status.done:
            raise CampaignStateError(f"campaign {campaign_id} already {campaign.status.value}")
        run = self.ctx.runs.get(campaign_id)
        if run is not None:
            run.cancel()
            return await self.ctx.wait(campaign_id)
        return await self._cancel_elsewhere(campaign_id)

    async def abandon(self, campaign_id: str) -> Campaign:
        """Mark a campaign that no process is running any more as canceled."""
        ctx = self.ctx
        campaign = await ctx.store.get(campaign_id)
        if campaign.status.done or campaign_id in ctx.runs:
            return campaign
        if not await ctx.ownership.claim(campaign_id):  # a live process still runs it
            return campaign
        return await ctx.runs.finalize_idle(campaign)

    async def _cancel_elsewhere(self, campaign_id: str) -> Campaign:
        """Flag it for the process running it; if none reacts in time, mark it here."""
        store, config = self.ctx.store, self.ctx.config
        await store.request_cancel(campaign_id)
        if campaign_id in await store.orphans(self.ctx.clock() - config.settings.lease_s):
            return await self.abandon(campaign_id)  # its process is gone: no one to wait for
        for _ in range(CANCEL_POLLS):
            await asyncio.sleep(config.settings.cancel_poll_s)
            campaign = await store.get(campaign_id)
            if campaign.status.done:
                return campaign
        return await self.abandon(campaign_id)
