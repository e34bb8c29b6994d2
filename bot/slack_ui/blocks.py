"""Block Kit and mrkdwn rendering for Slack: the status message and the ephemeral replies.

Limits respected here (PLATFORM_LIMITS.md): 50 blocks per message, 3000
characters per section, 150 per header. User and model text is escaped (&, <,
>) in every mrkdwn field, message fallback texts included, so a theme can never
ping a channel or forge a link; plain_text fields (headers) take it as is.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import words
from bot.chat.text import (
    STATUS_EMOJI,
    action_label,
    clip,
    estimate_text,
    product_line,
    progress_line,
    summary_text,
)
from core.errors import CampaignError, InvalidRequest
from core.model import Action, Campaign, CampaignStatus, Product, StepName
from core.progress import CampaignSnapshot
from core.request import CampaignRequest
from core.service import Estimate

Block = dict[str, Any]
ACTION_CANCEL = "campaign_cancel"
ACTION_RETRY = "campaign_retry"
ACTION_REROLL = "product_reroll"  # value "<campaign id>:<product number>"
ACTION_ANIMATE = "product_animate"
PRODUCT_ACTIONS = {Action.REROLL: ACTION_REROLL, Action.ANIMATE: ACTION_ANIMATE}
SECTION_CHARS = 2900  # under Slack's 3000 per section
MAX_PRODUCT_ROWS = 60  # at most ~20 sections: far under 50 blocks, and still readable
RETRYABLE = (CampaignStatus.PARTIAL, CampaignStatus.FAILED, CampaignStatus.CANCELED)
CHANNEL_ERRORS = {
    "not_in_channel": "I am not a member of this channel. Invite me with `/invite @campaign-bot`"
    " (or run the command where I am), then try again.",
    "channel_not_found": "I cannot see this channel (a private channel or a DM I am not in)."
    " Add me to it, or run the command in a channel I belong to.",
    "is_archived": "This channel is archived, so I cannot post the campaign here.",
}

NOT_ENABLED = "🚫 The campaign bot is not enabled here for you."
MALFORMED = "⚠️ I could not read that request (a field Slack sends is missing). Nothing was started."

HELP = """*`/campaign` commands*
• `/campaign theme:"retro cats" products:3 videos:yes` (or `/campaign new ...`): start a campaign
• `/campaign status [id]`: progress of a campaign (default: your latest)
• `/campaign history`: your recent campaigns
• `/campaign show <id>`: products, files and errors of one campaign
• `/campaign cancel <id>` / `/campaign retry <id>`: stop it, or re-run its failed steps
• `/campaign animate <id> [n] [prompt]`: a new video of product `n`, or of every product
that has none; the rest of the text is the motion prompt (`slow zoom`, quotes optional)
• *Reroll* / *Animate* buttons under each product in a campaign's thread: a new image,
or a new video, as another attempt of that product (requester and admins)
Request options: `theme`, `products`, `videos`, `style` (photo, minimal, vintage, neon,
watercolor), `audience`, `seed`. Plain words work too: `retro cats 5 products with videos`."""


class Refused(CampaignError):
    """The user may not do this to this campaign (the message is ready-made mrkdwn)."""


@dataclass(frozen=True)
class Message:
    """Fallback text plus blocks, as chat.postMessage and chat.update take them."""

    text: str
    blocks: list[Block]


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def status_message(
    snap: CampaignSnapshot, executor: str, now: float | None = None, sheet: str | None = None
) -> Message:
    """The parent message: title, one row per product, progress line, the contact sheet
    (`sheet`: the id of its uploaded Slack file, once there is one), buttons."""
    title = f"{STATUS_EMOJI[snap.status.value]} Campaign {snap.campaign_id}: {snap.theme}"
    blocks: list[Block] = [_header(title)]
    rows = [escape(product_line(p)) for p in snap.products[:MAX_PRODUCT_ROWS]]
    if len(snap.products) > MAX_PRODUCT_ROWS:
        rows.append(f"… and {len(snap.products) - MAX_PRODUCT_ROWS} more products")
    rows = rows or ["🗒️ planning the products…"]
    blocks += _product_sections(rows)
    blocks.append(_context(f"*{snap.status.value}* · {escape(progress_line(snap, executor, now))}"))
    if sheet:
        blocks.append(sheet_block(snap.campaign_id, sheet))
    buttons = _buttons(snap.campaign_id, snap.status)
    if buttons:
        blocks.append(
            {"type": "actions", "block_id": f"campaign:{snap.campaign_id}", "elements": buttons}
        )
    done, total = snap.counts()
    theme = escape(snap.theme)  # the fallback text is mrkdwn too (notifications)
    text = f"Campaign {snap.campaign_id} “{theme}”: {snap.status.value}, {done}/{total} steps"
    return Message(text, blocks)


def sheet_block(campaign_id: str, file_id: str) -> Block:
    """The contact sheet, a file already uploaded to Slack, as an image block."""
    return {
        "type": "image",
        "block_id": f"sheet:{campaign_id}:{file_id}"[:255],  # new per file, as Slack asks
        "slack_file": {"id": file_id},
        "alt_text": f"Contact sheet of campaign {campaign_id}",
        "title": {"type": "plain_text", "text": "Contact sheet"},
    }


def product_value(campaign_id: str, number: int) -> str:
    """What a product button carries: the campaign and the product number (1-based)."""
    return f"{campaign_id}:{number}"


def product_actions(
    campaign: Campaign, product: Product, estimates: Mapping[Action, Estimate] | None = None
) -> list[Block]:
    """The Reroll and Animate buttons of one product post (Animate only with an image).

    Stateless: the action id says what, the value which campaign and product, so a
    press works on any process that can read the campaign.
    """
    number = product.plan.index + 1
    image = product.step(StepName.IMAGE)
    wanted = []
    if image is None or image.model != "upload":  # an uploaded picture cannot be made again
        wanted.append(Action.REROLL)
    if product.output(StepName.IMAGE) is not None:
        wanted.append(Action.ANIMATE)
    elements = [
        {
            "type": "button",
            "action_id": PRODUCT_ACTIONS[action],
            "value": product_value(campaign.id, number),
            "text": {
                "type": "plain_text",
                "text": clip(action_label(action, (estimates or {}).get(action)), 75),
                "emoji": True,
            },
        }
        for action in wanted
    ]
    if not elements:
        return []
    block_id = f"product:{campaign.id}:{number}"
    return [{"type": "actions", "block_id": block_id, "elements": elements}]


def starting_message(request: CampaignRequest) -> Message:
    """The parent message before the campaign has an id (a moment, normally)."""
    text = f"⏳ Starting campaign “{{}}” ({request.products} products)…"
    return Message(text.format(escape(request.theme)), [_header(text.format(request.theme))])


def stored_message(campaign: Campaign, executor: str, sheet: str | None = None) -> Message:
    """The parent message rendered from the stored record (after a restart)."""
    return status_message(CampaignSnapshot.of(campaign), executor, sheet=sheet)


def accepted_text(request: CampaignRequest, estimate: Estimate) -> str:
    """The ephemeral ack of `new`: the parsed request and its estimate."""
    videos = "with videos" if request.videos else "no videos"
    audience = f" · audience: {escape(request.audience)}" if request.audience else ""
    return (
        f"✅ Starting *{escape(request.theme)}*: {request.products} products, {videos}, "
        f"{request.style.value} style{audience}.\n"
        f"{estimate_text(estimate)}. "
        f"Progress follows in the channel.\n`{escape(request.to_text())}`"
    )


def problem_text(exc: CampaignError) -> str:
    """User-facing text for a refused or impossible command (a refusal is already mrkdwn)."""
    return str(exc) if isinstance(exc, Refused) else f"⚠️ {escape(words.refusal(exc))}"


def error_code(exc: SlackApiError) -> str:
    """Slack's error code (e.g. not_in_channel); never the request or its token."""
    return str(exc.response.get("error") or "unknown_error")


def channel_error_text(code: str) -> str:
    """Why the campaign could not be posted in this channel (nothing was started)."""
    reason = CHANNEL_ERRORS.get(code, f"Slack refused to post the campaign here ({code}).")
    return f"⚠️ {reason} Nothing was started."


def invalid_text(exc: InvalidRequest) -> str:
    """The ephemeral reply to a request that was refused (nothing was started)."""
    return f"⚠️ {escape(words.refusal(exc))}\nNothing was started. Try `/campaign help`."


def refusal_text(action: str, campaign: Campaign) -> str:
    """Why someone other than the requester or an admin cannot press a button."""
    owner = (campaign.requester or "").removeprefix("slack:")
    who = f"<@{owner}>" if owner else "the person who started it"
    return f"🚫 Only {who} or a bot admin can {action} campaign {campaign.id}."


def not_found_text(campaign_id: str) -> str:
    """The same answer whether a campaign does not exist or belongs to someone else."""
    return f"⚠️ Campaign `{escape(campaign_id)}`: not found or not yours."


def history_text(campaigns: Sequence[Campaign]) -> str:
    """A short list of campaigns, newest first."""
    if not campaigns:
        return "You have no campaigns yet. Start one with `/campaign <theme>`."
    lines = [
        f"{STATUS_EMOJI[c.status.value]} `{c.id}` {_date(c.created_at)} *{escape(c.request.theme)}*"
        f" · {len(c.products) or c.request.products} products · {c.status.value}"
        for c in campaigns
    ]
    return "*Your recent campaigns*\n" + "\n".join(lines)


def show_text(campaign: Campaign) -> str:
    """One campaign in full: request, outcome, each product with its files or error."""
    lines = [escape(summary_text(campaign)), f"`{escape(campaign.request.to_text())}`"]
    for p in campaign.products:
        files = [_file(p.output(name), name.value) for name in (StepName.IMAGE, StepName.VIDEO)]
        shown = ", ".join(f for f in files if f) or "no files"
        error = f" · {escape(p.error() or '')}" if p.error() else ""
        head = f"{STATUS_EMOJI[p.status.value]} {p.plan.index + 1}. {escape(p.plan.name)}"
        lines.append(f"{head}: {shown}{error}")
    if campaign.contact_sheet:
        lines.append(f"contact sheet: `{escape(campaign.contact_sheet)}`")
    return "\n".join(lines)


def _header(text: str) -> Block:
    clipped = clip(" ".join(text.split()), 150)
    return {"type": "header", "text": {"type": "plain_text", "text": clipped, "emoji": True}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _product_sections(lines: list[str]) -> list[Block]:
    """Pack product rows into as few sections as the character limit allows."""
    chunks: list[list[str]] = [[]]
    for line in lines:
        if chunks[-1] and len("\n".join([*chunks[-1], line])) > SECTION_CHARS:
            chunks.append([])
        chunks[-1].append(line[:SECTION_CHARS])
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}}
        for chunk in chunks
        if chunk
    ]


def _buttons(campaign_id: str, status: CampaignStatus) -> list[Block]:
    if not status.done:
        return [
            {
                "type": "button",
                "action_id": ACTION_CANCEL,
                "value": campaign_id,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Cancel"},
                "confirm": {
                    "title": {"type": "plain_text", "text": "Cancel this campaign?"},
                    "text": {"type": "mrkdwn", "text": "Running steps stop; finished ones stay."},
                    "confirm": {"type": "plain_text", "text": "Cancel it"},
                    "deny": {"type": "plain_text", "text": "Keep going"},
                },
            }
        ]
    if status in RETRYABLE:
        return [
            {
                "type": "button",
                "action_id": ACTION_RETRY,
                "value": campaign_id,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Retry failed"},
            }
        ]
    return []


def _file(path: str | None, label: str) -> str | None:
    return f"{label} `{escape(path.rsplit('/', 1)[-1])}`" if path else None


def _date(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M")
