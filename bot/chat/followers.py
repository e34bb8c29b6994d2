"""The followers of one chat front end, by campaign id.

A follower is a `ChatProgress` on a `ChatSurface`, handed to the service
behind a `Relay`. The registry keeps at most one live follower per campaign
(a second run of the same campaign, e.g. a retry or a resume, is refused
until the first has posted its summary), forgets finished ones (keeping
those whose reel is still to come until it is posted), and on close cuts
every relay first, so no post outlives the front end even if the service
still holds the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Sequence

from bot.chat.progress import ChatProgress
from bot.chat.surface import ChatSurface
from core.errors import NotFinished
from core.model import Campaign
from core.ports import ProgressSink
from core.progress import CampaignSnapshot, ProgressEvent
from core.service import CampaignService

SurfaceOf = Callable[[Campaign], ChatSurface | None]  # None: not this platform's campaign


class Relay:
    """The sink the service holds; cut when the front end closes."""

    def __init__(self, follower: ChatProgress) -> None:
        self.follower: ChatProgress | None = follower

    async def publish(self, event: ProgressEvent) -> None:
        """Forward to the follower while the front end is open."""
        if self.follower is not None:
            await self.follower.publish(event)

    @property
    def live(self) -> bool:
        """Whether it still forwards to a follower that has not posted its summary."""
        return self.follower is not None and not self.follower.done.is_set()

    @property
    def posting(self) -> bool:
        """Whether its follower still has posts to make (a reel after the summary)."""
        return self.follower is not None and self.follower.posting


class Followers:
    """Live ChatProgress followers of campaigns, at most one per campaign id."""

    def __init__(self, service: CampaignService, *, min_interval_s: float) -> None:
        self._service = service
        self._min_interval_s = min_interval_s
        self._by_id: dict[str, Relay] = {}
        self._unclaimed: set[Relay] = set()  # a new campaign's follower until it has an id
        self._trailing: set[Relay] = set()  # forgotten after the summary, its reel to come

    def live(self, campaign_id: str) -> bool:
        """Whether a follower of this campaign is still posting."""
        relay = self._by_id.get(campaign_id)
        return relay is not None and relay.live

    def _follow(self, surface: ChatSurface, campaign_id: str | None = None) -> Relay:
        """A follower on `surface`, registered at once when the campaign id is known.

        Raises CampaignStateError if the campaign already has a live follower.
        A new campaign's follower (no id yet) is registered once `start` has its id.
        """
        self._forget_finished()
        if campaign_id is not None and self.live(campaign_id):
            raise NotFinished(campaign_id, "running")
        relay = Relay(ChatProgress(self._service, surface, min_interval_s=self._min_interval_s))
        if campaign_id is None:
            self._unclaimed.add(relay)
        else:
            self._by_id[campaign_id] = relay
        return relay

    def _release(self, relay: Relay) -> None:
        """Forget a follower whose campaign did not start (only that one)."""
        self._unclaimed.discard(relay)
        for campaign_id, held in list(self._by_id.items()):
            if held is relay:
                del self._by_id[campaign_id]
        relay.follower = None

    async def retry(self, campaign_id: str, surface: ChatSurface) -> Campaign:
        """Re-run a campaign's failed steps followed on `surface` (CampaignStateError while
        another follower of it is live); nothing is followed if the service refuses."""
        return await self.start(
            surface, functools.partial(self._service.retry, campaign_id), campaign_id
        )

    async def start(
        self,
        surface: ChatSurface,
        run: Callable[[Sequence[ProgressSink]], Awaitable[Campaign]],
        campaign_id: str | None = None,
    ) -> Campaign:
        """A service call that runs a campaign (submit, retry, reroll, animate,
        animate_image), followed on `surface`: `run(sinks)` starts it. With
        `campaign_id` (an existing campaign) CampaignStateError while another
        follower of it is live; nothing is followed if the service refuses."""
        relay = self._follow(surface, campaign_id)
        try:
            campaign = await run([relay])
        except BaseException:
            self._release(relay)
            raise
        self._unclaimed.discard(relay)
        self._by_id[campaign.id] = relay
        return campaign

    def sinks_for_stored(self, campaign: Campaign, surface_of: SurfaceOf) -> list[ProgressSink]:
        """Progress of a resumed campaign goes back to the surface its stored origin names.

        Nothing when the origin is not this platform's or a follower is already
        live; products finished before are not announced again by the service.
        """
        surface = surface_of(campaign)
        if surface is None or self.live(campaign.id):
            return []
        return [self._follow(surface, campaign.id)]

    async def show_stored(self, campaign: Campaign, surface_of: SurfaceOf) -> None:
        """Render the stored state on its status message when no follower here does
        (e.g. a cancel after a restart, on a message the old process left behind)."""
        surface = surface_of(campaign)
        if surface is not None and not self.live(campaign.id):
            await surface.render_status(CampaignSnapshot.of(campaign))

    async def aclose(self, grace_s: float = 0.0) -> None:
        """Give live followers up to `grace_s` to post their final state, then cut and
        close them all (each status message still gets its last edit)."""
        relays = [*self._by_id.values(), *self._unclaimed, *self._trailing]
        live = [r.follower for r in relays if r.follower is not None and r.live]
        if live and grace_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await asyncio.gather(*(f.done.wait() for f in live))
        followers = [r.follower for r in relays if r.follower is not None]
        for relay in relays:
            relay.follower = None
        self._by_id.clear()
        self._unclaimed.clear()
        self._trailing.clear()
        await asyncio.gather(*(f.aclose() for f in followers), return_exceptions=True)

    def _forget_finished(self) -> None:
        """Forget followers past their summary; those with a reel to come, once it is posted."""
        for campaign_id in [c for c, r in self._by_id.items() if not r.live]:
            self._trailing.add(self._by_id.pop(campaign_id))
        self._trailing = {r for r in self._trailing if r.posting}
