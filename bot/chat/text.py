"""The plain-text pieces every chat front end renders: status emoji, the progress
line, one line per product, the product caption, the summary and the estimate.

Slack escapes them for mrkdwn and Discord puts them into embeds; the words are
the same on both, so they live once, here.
"""

from __future__ import annotations

import time

from bot import words
from core.model import Action, Campaign, Product, StepName, StepStatus
from core.progress import CampaignSnapshot, ProductView
from core.service import Estimate

HISTORY_LIMIT = 10  # campaigns a `history` answer lists
STATUS_EMOJI = {
    "pending": "⏳",
    "running": "🔄",
    "succeeded": "✅",
    "partial": "🟡",
    "failed": "❌",
    "canceled": "🚫",
    "skipped": "⏭️",
}


def clip(text: str, limit: int) -> str:
    """Text cut to `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def progress_line(snap: CampaignSnapshot, executor: str, now: float | None = None) -> str:
    """'4/10 steps · 12s elapsed · ETA 1m 20s · local pool: 2 CPU workers'.

    The ETA plays out the steps left with the durations their models took
    lately (see `CampaignSnapshot.timing`).
    """
    done, total = snap.counts()
    elapsed, left = snap.timing(time.time() if now is None else now)
    parts = [f"{done}/{total} steps", f"{elapsed:.0f}s elapsed"]
    if left is not None:
        parts.append(f"ETA {duration(left)}")
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
    """'🔄 1. Cosmic Cats Mug: image ✅ video 🔄 processing 45%'.

    The note is what the running step says (Replicate's percentage), then what
    a waiting one says ('queued: 2nd in line for video').
    """
    steps = " ".join(
        f"{name.value} {STATUS_EMOJI[view.status.value]}" for name, view in product.steps.items()
    )
    overall = _overall(product)
    notes = " · ".join(live_notes(product))
    note = f" {notes}" if notes else ""
    return f"{STATUS_EMOJI[overall]} {product.index + 1}. {product.name}: {steps}{note}"


def live_notes(product: ProductView) -> list[str]:
    """Messages of the product's running steps, then of its waiting (pending) ones
    (a place in line for a slot, as `words.queue_place` says it)."""
    notes = [
        words.queue_place(v.queued, name.value)
        if v.status is StepStatus.PENDING and v.queued is not None
        else v.message
        for status in (StepStatus.RUNNING, StepStatus.PENDING)
        for name, v in product.steps.items()
        if v.status is status
    ]
    return [note for note in notes if note]


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


ACTION_WORDS = {Action.REROLL: "Reroll", Action.ANIMATE: "Animate"}
ACTION_EMOJI = {Action.REROLL: "🎲", Action.ANIMATE: "🎬"}


def action_label(action: Action, estimate: Estimate | None = None) -> str:
    """A button's label with what it costs and takes: 'Reroll · $0.003 · ~15s'."""
    parts = [ACTION_WORDS[action]]
    if estimate is not None:
        if estimate.cost_usd > 0:
            parts.append(f"${estimate.cost_usd:.3f}")
        if estimate.seconds is not None:
            parts.append(f"~{duration(estimate.seconds)}")
    return " · ".join(parts)


def duration(seconds: float) -> str:
    """'45s', '2m 05s', '1h 02m'."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def attempt_note(product: Product) -> str:
    """' (reroll of 2)', ' (animate of 1)', or '' for an original product."""
    if product.action is None or product.attempt_of is None:
        return ""
    return f" ({product.action.value} of {product.attempt_of + 1})"


def product_caption(product: Product) -> str:
    """Caption for a finished product's thread post (or its failure reason)."""
    plan = product.plan
    head = (
        f"{STATUS_EMOJI[product.status.value]} {plan.index + 1}. {plan.name}"
        f"{attempt_note(product)} ({plan.product_type})"
    )
    if product.output(StepName.IMAGE) is None:
        return f"{head}: {product.error() or product.status.value}"
    tail = f"\n{plan.tagline}"
    if product.step(StepName.VIDEO) is not None and product.output(StepName.VIDEO) is None:
        tail += f"\nvideo: {product.error() or 'not made'}"
    return head + tail
