"""ChatProgress: coalesced status, one ordered post per product, then the summary."""

from __future__ import annotations

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
from core.progress import CampaignSnapshot
from core.request import CampaignRequest
from tests.fakes import GatedGenerator


@dataclass
class Surface:
    """A ChatSurface made of three callbacks."""

    render_status: Callable[[CampaignSnapshot], Awaitable[None]]
    post_product: Callable[[Campaign, Product], Awaitable[None]]
    post_summary: Callable[[Campaign], Awaitable[None]]


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
