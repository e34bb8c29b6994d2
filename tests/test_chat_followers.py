"""Followers by campaign id: one live follower per campaign, forgotten once finished,
cut on close so no post outlives the front end; resumed campaigns go back to their surface."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field

import pytest

from bot.chat.followers import Followers
from bot.words import refusal
from core.errors import CampaignError, CampaignStateError
from core.model import Campaign, CampaignStatus, Product, TerminalOrigin
from core.pictures import Pictures
from core.progress import CampaignSnapshot
from core.request import CampaignRequest
from core.service import CampaignService
from tests.fakes import FAKE_REEL, GatedGenerator, fake_sheet


@dataclass
class Recorder:
    """A ChatSurface that records what it was asked to show; `gate` holds the summary."""

    statuses: list[CampaignStatus] = field(default_factory=list)
    products: list[int] = field(default_factory=list)
    summaries: list[CampaignStatus] = field(default_factory=list)
    reels: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None
    reel_gate: asyncio.Event | None = None
    reeled: asyncio.Event = field(default_factory=asyncio.Event)
    summarized: asyncio.Event = field(default_factory=asyncio.Event)

    async def render_status(self, snapshot: CampaignSnapshot) -> None:
        self.statuses.append(snapshot.status)

    async def post_product(self, campaign: Campaign, product: Product) -> None:
        self.products.append(product.plan.index)

    async def post_summary(self, campaign: Campaign) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.summaries.append(campaign.status)
        self.summarized.set()  # the follower is done as soon as this returns

    async def post_reel(self, campaign: Campaign, reel: str | None, failure: str) -> None:
        if self.reel_gate is not None:
            await self.reel_gate.wait()
        self.reels.append(reel or failure)
        self.reeled.set()


def request(products: int = 2) -> CampaignRequest:
    return CampaignRequest(theme="cats", products=products, videos=False)


def videos(products: int = 2) -> CampaignRequest:
    return CampaignRequest(theme="cats", products=products, videos=True)


async def submit(
    followers: Followers, service: CampaignService, req: CampaignRequest, surface: Recorder
) -> Campaign:
    """A new campaign followed on `surface`, as the front ends start one."""
    run = functools.partial(service.submit, req, requester="slack:U1", origin=TerminalOrigin())
    return await followers.start(surface, run)


async def test_one_live_follower_per_campaign_and_finished_ones_are_forgotten(
    make_service,
) -> None:
    service = make_service(GatedGenerator(open_all=True, fail={(1, "image")}, fail_once=True))
    followers = Followers(service, min_interval_s=0.0)
    first = Recorder(gate=asyncio.Event())
    campaign = await submit(followers, service, request(), first)
    assert (await service.wait(campaign.id)).status is CampaignStatus.PARTIAL
    assert followers.live(campaign.id)  # its summary is still being posted
    second = Recorder()
    with pytest.raises(CampaignStateError) as refused:
        await followers.retry(campaign.id, second)  # the service would have taken it
    assert "still running" in refusal(refused.value)
    assert followers.sinks_for_stored(campaign, lambda _c: second) == []
    assert first.gate is not None
    first.gate.set()
    await first.summarized.wait()
    assert not followers.live(campaign.id)  # finished: forgotten
    assert sorted(first.products) == [0, 1] and first.summaries == [CampaignStatus.PARTIAL]

    await followers.retry(campaign.id, second)
    assert (await service.wait(campaign.id)).status is CampaignStatus.SUCCEEDED
    await second.summarized.wait()
    assert second.products == [1] and second.summaries == [CampaignStatus.SUCCEEDED]
    with pytest.raises(CampaignStateError, match="already succeeded"):
        await followers.retry(campaign.id, Recorder())  # the service refuses: nothing follows
    assert not followers.live(campaign.id)
    await followers.aclose()


async def test_close_cuts_the_relays_so_nothing_is_posted_afterwards(make_service) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    followers = Followers(service, min_interval_s=0.0)
    surface = Recorder()
    campaign = await submit(followers, service, request(), surface)
    await gen.wait_started(2)
    await followers.aclose()  # the service still holds the relay
    assert not followers.live(campaign.id)
    gen.open_all = True
    gen.open((0, "image"), (1, "image"))
    assert (await service.wait(campaign.id)).status is CampaignStatus.SUCCEEDED
    assert surface.products == [] and surface.summaries == []


async def test_a_follower_past_its_summary_retries_at_once_and_still_posts_the_reel(
    make_service,
) -> None:
    gate = asyncio.Event()
    service = make_service(
        GatedGenerator(open_all=True, fail={(1, "image")}, fail_once=True),
        sheet=Pictures(fake_sheet, reel=FAKE_REEL),
    )
    followers = Followers(service, min_interval_s=0.0)
    first = Recorder(reel_gate=gate)
    campaign = await submit(followers, service, videos(), first)
    await first.summarized.wait()
    await service.wait_reel(campaign.id)  # made; its post is held
    assert not followers.live(campaign.id)  # past its summary: a retry is not refused
    second = Recorder()
    await followers.retry(campaign.id, second)
    await second.summarized.wait()
    assert first.reels == []
    gate.set()
    await first.reeled.wait()  # the first run's reel, posted by its own follower
    assert len(first.reels) == 1 and first.reels[0].endswith("reel.mp4")
    await followers.aclose()


async def test_close_cuts_a_follower_waiting_for_its_reel(make_service) -> None:
    service = make_service(
        GatedGenerator(open_all=True), sheet=Pictures(fake_sheet, reel=FAKE_REEL)
    )
    followers = Followers(service, min_interval_s=0.0)
    surface = Recorder(reel_gate=asyncio.Event())  # never opened
    campaign = await submit(followers, service, videos(), surface)
    await surface.summarized.wait()
    await submit(followers, service, request(1), Recorder())  # forgets the first's follower
    await service.wait_reel(campaign.id)
    await followers.aclose()  # returns: the held reel post is cancelled, not left running
    posting = [t for t in asyncio.all_tasks() if "_post_loop" in repr(t.get_coro())]
    assert posting == [] and surface.reels == []


async def test_a_refused_submit_leaves_nothing_followed(make_service) -> None:
    service = make_service(GatedGenerator(open_all=True), max_products=1)
    followers = Followers(service, min_interval_s=0.0)
    with pytest.raises(CampaignError, match="too many"):
        await submit(followers, service, request(2), Recorder())
    assert followers._unclaimed == set()  # the relay of the campaign that never was is gone


async def test_sinks_for_stored_only_for_this_platform_and_never_twice(make_service) -> None:
    service = make_service(GatedGenerator(open_all=True))
    followers = Followers(service, min_interval_s=0.0)
    stored = await service.run(request(1))
    surface = Recorder()
    assert followers.sinks_for_stored(stored, lambda _c: None) == []  # another platform's
    assert len(followers.sinks_for_stored(stored, lambda _c: surface)) == 1
    assert followers.live(stored.id)
    assert followers.sinks_for_stored(stored, lambda _c: surface) == []  # already followed
    await followers.show_stored(stored, lambda _c: surface)  # a live follower renders, not this
    assert surface.statuses == []
    await followers.aclose()
    await followers.show_stored(stored, lambda _c: surface)
    assert surface.statuses == [CampaignStatus.SUCCEEDED]
