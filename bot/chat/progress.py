"""What every chat front end shares: following a campaign into a status message
and a thread, and the plain-text pieces both Slack and Discord render.

`ChatProgress` is the ProgressSink a chat front end hands to the service. It
coalesces status-message edits through the core's CoalescingSink, posts each
finished product (then the summary) in order from one owned task, and never
lets a chat error reach the campaign.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from core.model import Campaign, Product, StepName, StepStatus
from core.progress import CampaignSnapshot, CoalescingSink, EventKind, ProductView, ProgressEvent
from core.service import CampaignService, Estimate

log = logging.getLogger(__name__)

STATUS_EMOJI = {
    "pending": "⏳",
    "running": "🔄",
    "succeeded": "✅",
    "partial": "🟡",
    "failed": "❌",
    "canceled": "🚫",
    "skipped": "⏭️",
}

RenderStatus = Callable[[CampaignSnapshot], Awaitable[None]]
PostProduct = Callable[[Campaign, Product], Awaitable[None]]
PostSummary = Callable[[Campaign], Awaitable[None]]


class ChatProgress:
    """Status edits (coalesced) plus ordered thread posts for one campaign."""

    def __init__(
        self,
        service: CampaignService,
        *,
        render_status: RenderStatus,
        post_product: PostProduct,
        post_summary: PostSummary,
        min_interval_s: float,
    ) -> None:
        self._service = service
        self._status = CoalescingSink(render_status, min_interval_s=min_interval_s)
        self._status.hold()  # the status message was just posted: its first edit waits too
        self._post_product = post_product
        self._post_summary = post_summary
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
                    await self._post_product(campaign, campaign.products[event.product_index])
                elif event.kind is EventKind.CAMPAIGN_FINISHED:
                    await self._status.aclose()
                    await self._post_summary(campaign)
            except asyncio.CancelledError:
                raise
            except Exception:  # a chat error must never stop the campaign
                log.exception("posting progress for campaign %s failed", event.campaign_id)
            if event.kind is EventKind.CAMPAIGN_FINISHED:
                self.done.set()
                return


def progress_line(snap: CampaignSnapshot, executor: str, now: float | None = None) -> str:
    """'4/10 steps · 12s elapsed · ETA 20s · local pool: 2 CPU workers'."""
    done, total = snap.counts()
    elapsed, left = snap.timing(time.time() if now is None else now)
    parts = [f"{done}/{total} steps", f"{elapsed:.0f}s elapsed"]
    if left is not None:
        parts.append(f"ETA {left:.0f}s")
    if snap.cost_usd:
        parts.append(f"${snap.cost_usd:.3f}")
    parts.append(executor)
    if snap.notice:  # e.g. the LLM planner fell back to the offline templates
        parts.append(snap.notice)
    return " · ".join(parts)


def estimate_text(estimate: Estimate) -> str:
    """'Estimate: 6 steps, about $0.018' (the steps only when it costs nothing)."""
    cost = f", about ${estimate.cost_usd:.3f}" if estimate.cost_usd > 0 else ""
    return f"Estimate: {estimate.steps} steps{cost}"


def product_line(product: ProductView) -> str:
    """'✅ 1. Cosmic Cats Mug: image ✅ video 🔄 rendering video'."""
    steps = " ".join(
        f"{name.value} {STATUS_EMOJI[view.status.value]}" for name, view in product.steps.items()
    )
    running = next((v.message for v in product.steps.values() if v.status.value == "running"), "")
    overall = _overall(product)
    note = f" {running}" if running else ""
    return f"{STATUS_EMOJI[overall]} {product.index + 1}. {product.name}: {steps}{note}"


def _overall(product: ProductView) -> str:
    statuses = {v.status for v in product.steps.values()}
    for status in (StepStatus.RUNNING, StepStatus.FAILED, StepStatus.CANCELED, StepStatus.PENDING):
        if status in statuses:
            return str(status.value)
    return StepStatus.SUCCEEDED.value


def summary_text(campaign: Campaign) -> str:
    """One paragraph: outcome, counts, cost, elapsed."""
    counts: dict[str, int] = {}
    for p in campaign.products:
        counts[p.status.value] = counts.get(p.status.value, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    elapsed = f"{campaign.elapsed_s:.0f}s" if campaign.elapsed_s is not None else "n/a"
    return (
        f"{STATUS_EMOJI[campaign.status.value]} Campaign {campaign.id} “{campaign.request.theme}” "
        f"{campaign.status.value}: {parts or 'no products'} · cost ${campaign.cost_usd:.3f} · "
        f"{elapsed}"
    )


def product_caption(product: Product) -> str:
    """Caption for a finished product's thread post (or its failure reason)."""
    plan = product.plan
    head = (
        f"{STATUS_EMOJI[product.status.value]} {plan.index + 1}. {plan.name} ({plan.product_type})"
    )
    if product.output(StepName.IMAGE) is None:
        return f"{head}: {product.error() or product.status.value}"
    tail = f"\n{plan.tagline}"
    if product.step(StepName.VIDEO) is not None and product.output(StepName.VIDEO) is None:
        tail += f"\nvideo: {product.error() or 'not made'}"
    return head + tail
