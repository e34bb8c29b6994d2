"""ChatProgress: coalesced status, one ordered post per product, then the summary."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.chat.progress import ChatProgress
from bot.chat.text import (
    product_caption,
    product_line,
    progress_line,
    summary_text,
)
from core.model import Campaign, Product
from core.pictures import Pictures
from core.progress import CampaignSnapshot
from core.request import CampaignRequest
from tests.fakes import FAKE_REEL, GatedGenerator, fake_sheet


async def _no_reel(_campaign: Campaign, _reel: str | None, _failure: str) -> None:
    return None


@dataclass
class Surface:
    """A ChatSurface made of four callbacks."""

    render_status: Callable[[CampaignSnapshot], Awaitable[None]]
    post_product: Callable[[Campaign, Product], Awaitable[None]]
    post_summary: Callable[[Campaign], Awaitable[None]]
    post_reel: Callable[[Campaign, str | None, str], Awaitable[None]] = _no_reel


async def test_posts_each_product_then_the_summary(make_service) -> None:
    service = make_service(GatedGenerator(open_all=True, fail={(1, "image")}))
    posts: list[str] = []
    statuses: list[CampaignSnapshot] = []

    async def render(snapshot: CampaignSnapshot) -> None:
        statuses.append(snapshot)

    async def post_product(_campaign: Campaign, product: Product) -> None:
        if product.plan.index == 2:
            raise ConnectionError("thread archived")  # must not stop the rest
        posts.append(product_caption(product))

    async def post_summary(campaign: Campaign) -> None:
        posts.append(summary_text(campaign))

    follower = ChatProgress(
        service, Surface(render, post_product, post_summary), min_interval_s=0.0
    )
    campaign = await service.run(CampaignRequest(theme="cats", products=3, videos=True), [follower])
    await follower.done.wait()
    assert len(posts) == 3
    assert sorted(posts[:2])[0].startswith("✅ 1.")
    assert any(p.startswith("❌ 2.") and "model said no" in p for p in posts[:2])
    assert posts[-1].startswith("🟡 Campaign") and "partial" in posts[-1]
    final = statuses[-1]
    assert final.status.value == "partial"  # the status message got the final state
    line = progress_line(final, "local pool")
    assert line.startswith("6/6 steps")  # a skipped video counts as done
    assert "ETA" not in line and line.endswith("local pool")
    assert product_line(final.products[0]).startswith("✅ 1.")
    final.notice = "planner fell back to templates"
    assert progress_line(final, "local pool").endswith("· planner fell back to templates")
    assert (await service.get(campaign.id)).status.value == "partial"


async def test_the_reel_is_posted_after_the_summary_and_the_follower_is_done_before_it(
    make_service,
) -> None:
    gate, reeled = asyncio.Event(), asyncio.Event()
    service = make_service(
        GatedGenerator(open_all=True), sheet=Pictures(fake_sheet, reel=FAKE_REEL)
    )
    posts: list[str] = []

    async def render(_snapshot: CampaignSnapshot) -> None:
        return None

    async def post_product(_campaign: Campaign, product: Product) -> None:
        posts.append(f"product {product.plan.index + 1}")

    async def post_summary(campaign: Campaign) -> None:
        posts.append("summary")

    async def post_reel(campaign: Campaign, reel: str | None, failure: str) -> None:
        await gate.wait()
        posts.append(f"reel {reel == campaign.reel}")
        reeled.set()

    surface = Surface(render, post_product, post_summary, post_reel)
    follower = ChatProgress(service, surface, min_interval_s=0.0)
    campaign = await service.submit(
        CampaignRequest(theme="cats", products=2, videos=True), [follower]
    )
    await follower.done.wait()  # done at the summary: a press now is not "still running"
    await service.wait_reel(campaign.id)
    assert follower.posting and posts[-1] == "summary"
    gate.set()
    await reeled.wait()
    assert sorted(posts[:2]) == ["product 1", "product 2"]
    assert posts[2:] == ["summary", "reel True"]
