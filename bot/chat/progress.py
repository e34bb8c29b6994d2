"""Following one campaign into a chat surface: `ChatProgress`.

`ChatProgress` is the ProgressSink a chat front end hands to the service. It
coalesces status-message edits through the core's CoalescingSink, posts each
finished product (then the summary) in order from one owned task, and never
lets a chat error reach the campaign.

Two rules both front ends rely on live here, once:
- the status message was posted just before the follower exists, so its
  first edit waits the interval too (`CoalescingSink.hold()`);
- only products the service announces are posted: on a retry it announces
  only products that ran again, so nothing finished before is re-posted.
"""

from __future__ import annotations

import asyncio
import logging

from bot.chat.surface import ChatSurface
from core.progress import CoalescingSink, EventKind, ProgressEvent
from core.service import CampaignService

log = logging.getLogger(__name__)


class ChatProgress:
    """Status edits (coalesced) plus ordered thread posts for one campaign."""

    def __init__(
        self, service: CampaignService, surface: ChatSurface, *, min_interval_s: float
    ) -> None:
        self._service = service
        self._surface = surface
        self._status = CoalescingSink(surface.render_status, min_interval_s=min_interval_s)
        self._status.hold()  # the status message was just posted: its first edit waits too
        self._queue: asyncio.Queue[ProgressEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.done = asyncio.Event()

    async def publish(self, event: ProgressEvent) -> None:
        """Take one event from the service; returns at once."""
        await self._status.publish(event)
        if event.kind in (EventKind.PRODUCT_FINISHED, EventKind.CAMPAIGN_FINISHED):
            self._queue.put_nowait(event)
            if self._task is None:
                self._task = asyncio.create_task(self._post_loop())

    async def aclose(self) -> None:
        """Stop posting (shutdown); the status message gets its last update."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._status.aclose()

    async def _post_loop(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                campaign = await self._service.get(event.campaign_id)
                if event.kind is EventKind.PRODUCT_FINISHED and event.product_index is not None:
                    product = campaign.product(event.product_index)
                    await self._surface.post_product(campaign, product)
                elif event.kind is EventKind.CAMPAIGN_FINISHED:
                    await self._status.aclose()
                    await self._surface.post_summary(campaign)
            except asyncio.CancelledError:
                raise
            except Exception:  # a chat error must never stop the campaign
                log.exception("posting progress for campaign %s failed", event.campaign_id)
            if event.kind is EventKind.CAMPAIGN_FINISHED:
                self.done.set()
                return
