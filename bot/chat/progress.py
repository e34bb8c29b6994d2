"""Following one campaign into a chat surface: `ChatProgress`.

`ChatProgress` is the ProgressSink a chat front end hands to the service. It
coalesces status-message edits through the core's CoalescingSink, posts each
finished product, then the summary, then the reel when one follows, in order
from one owned task, and never lets a chat error reach the campaign. The
follower is done at the summary (a button pressed then is not refused as
"running"); it still posts the reel when it comes.

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
        if event.kind is not EventKind.REEL_READY:  # the status message is final already
            await self._status.publish(event)
        if event.kind in _POSTED:
            self._queue.put_nowait(event)
            if self._task is None:
                self._task = asyncio.create_task(self._post_loop())

    @property
    def posting(self) -> bool:
        """Whether it still has posts to make (the reel may follow once it is done)."""
        return self._task is not None and not self._task.done()

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
                await self._post(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # a chat error must never stop the campaign
                log.exception("posting progress for campaign %s failed", event.campaign_id)
            if event.kind in (EventKind.CAMPAIGN_FINISHED, EventKind.REEL_READY):
                self.done.set()
            if event.kind is EventKind.REEL_READY or (
                event.kind is EventKind.CAMPAIGN_FINISHED and not event.reel_follows
            ):
                return

    async def _post(self, event: ProgressEvent) -> None:
        campaign = await self._service.get(event.campaign_id)
        if event.kind is EventKind.PRODUCT_FINISHED and event.product_index is not None:
            await self._surface.post_product(campaign, campaign.product(event.product_index))
        elif event.kind is EventKind.CAMPAIGN_FINISHED:
            await self._status.aclose()
            await self._surface.post_summary(campaign)
        elif event.kind is EventKind.REEL_READY and event.status != "canceled":
            await self._surface.post_reel(campaign, event.output, event.message)


# what goes into the thread, in order (the status message shows the rest)
_POSTED = (EventKind.PRODUCT_FINISHED, EventKind.CAMPAIGN_FINISHED, EventKind.REEL_READY)
