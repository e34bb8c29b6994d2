"""Discord rendering: embeds, message texts, attachments within the guild's limits,
and plain explanations of Discord's error codes.

Sizes follow PLATFORM_LIMITS.md: embed title 256 and description 4096 chars,
content 2000 chars, at most 10 files and 25 MiB per message, and each file
within the guild's attachment limit (10 MiB unless boosted).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import discord
from PIL import Image

from bot.chat.links import file_link
from bot.chat.text import (
    STATUS_EMOJI,
    clip,
    product_caption,
    product_line,
    progress_line,
    summary_text,
)
from bot.gallery import GallerySettings
from core.model import Campaign, CampaignStatus, Product, StepName, StepStatus
from core.progress import CampaignSnapshot

MIB = 1024 * 1024
DEFAULT_FILE_LIMIT = 10 * MIB
REQUEST_LIMIT = 25 * MIB
MAX_FILES = 10
CONTENT_CHARS, TITLE_CHARS, DESCRIPTION_CHARS, FIELD_CHARS = 2000, 256, 4096, 1024
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
_SHRINK_SCALES = (1.0, 0.75, 0.5, 0.35, 0.25, 0.15)
_COLOURS = {
    CampaignStatus.PENDING: discord.Colour.light_grey(),
    CampaignStatus.RUNNING: discord.Colour.blurple(),
    CampaignStatus.SUCCEEDED: discord.Colour.green(),
    CampaignStatus.PARTIAL: discord.Colour.gold(),
    CampaignStatus.FAILED: discord.Colour.red(),
    CampaignStatus.CANCELED: discord.Colour.dark_grey(),
}
_PRODUCT_COLOURS = {
    StepStatus.SUCCEEDED: discord.Colour.green(),
    StepStatus.FAILED: discord.Colour.red(),
    StepStatus.CANCELED: discord.Colour.dark_grey(),
    StepStatus.SKIPPED: discord.Colour.light_grey(),
}
NEEDED_PERMISSIONS = (
    "View Channel, Send Messages, Embed Links, Attach Files, Create Public Threads "
    "and Send Messages in Threads"
)
_EXPLANATIONS = {
    50001: "I can't see this channel (missing View Channel or Read Message History).",
    50013: f"I'm missing a permission in this channel: I need {NEEDED_PERMISSIONS}.",
    50083: "the campaign's thread is archived: unarchive it to see the rest.",
    160005: "the campaign's thread is locked: unlock it to see the rest.",
    10003: "the channel no longer exists.",
    10008: "the campaign's status message was deleted.",
    40005: "the file is larger than this server allows.",
    30046: "Discord limits edits of messages older than an hour; the status will catch up.",
    50027: "this interaction expired (Discord allows 15 minutes); progress goes on in the thread.",
    10062: "this interaction expired (Discord allows 15 minutes); progress goes on in the thread.",
    10015: "this interaction expired (Discord allows 15 minutes); progress goes on in the thread.",
}

HELP_TEXT = """\
**/campaign new** `theme` `products` `videos` `style` `audience`: plan products, make an image \
(and a video) for each, post them in a thread. Or type it all in `request`, e.g. \
`retro cats 5 products with videos in neon style`.
**/campaign status** `id`: a campaign's progress (default: your latest).
**/campaign history**: your recent campaigns.
**/campaign show** `id`: one campaign in full.
**/campaign cancel** `id` / **/campaign retry** `id`: stop a campaign, or re-run its failed steps \
(also the buttons on the status message). The requester and members with Manage Server may.
**/campaign animate** `image` `prompt`: turn a picture of yours into a short video, or \
`campaign` `product` `prompt`: a (new) video of a product, of every product without one if \
`product` is left out. Each product post also has **Reroll** and **Animate** buttons.\
"""


def explain(exc: discord.HTTPException) -> str:
    """One sentence a user understands for an error Discord returned."""
    known = _EXPLANATIONS.get(exc.code)
    if known:
        return known
    if exc.status == 403:
        return f"Discord refused: {clip(exc.text, 150)} (I need {NEEDED_PERMISSIONS})."
    return f"Discord refused the request ({exc.status}, code {exc.code}): {clip(exc.text, 150)}"


def status_embed(
    snap: CampaignSnapshot, executor: str, notes: Sequence[str] = (), now: float | None = None
) -> discord.Embed:
    """The status message: one line per product, the progress line, any problems."""
    lines = [product_line(p) for p in snap.products] or ["planning products…"]
    embed = discord.Embed(
        title=clip(f"{STATUS_EMOJI[snap.status.value]} “{snap.theme}” · {snap.status.value}", 256),
        description=_join_within(lines, DESCRIPTION_CHARS),
        colour=_COLOURS[snap.status],
    )
    embed.add_field(name="Progress", value=clip(progress_line(snap, executor, now), 1024))
    if notes:
        embed.add_field(name="Problems", value=_join_within(notes, FIELD_CHARS), inline=False)
    embed.set_footer(text=f"campaign {snap.campaign_id}")
    return embed


def starting_embed(theme: str, estimate: str | None = None) -> discord.Embed:
    """The status message before the campaign exists (with its cost estimate, if given)."""
    return discord.Embed(
        title=clip(f"⏳ “{theme}” · starting", TITLE_CHARS),
        description="\n".join(filter(None, ["planning products…", estimate])),
        colour=_COLOURS[CampaignStatus.PENDING],
    )


def summary_embed(campaign: Campaign, sheet_name: str | None) -> discord.Embed:
    """The final post: outcome, cost, elapsed, and the contact sheet if attached."""
    # the timeline (timeline_embed) goes with it; the reel follows in a post of its own
    embed = discord.Embed(
        title=clip(f"Campaign {campaign.id} {campaign.status.value}", TITLE_CHARS),
        description=clip(summary_text(campaign), DESCRIPTION_CHARS),
        colour=_COLOURS[campaign.status],
    )
    if campaign.error:
        embed.add_field(name="Error", value=clip(campaign.error, FIELD_CHARS), inline=False)
    if sheet_name:
        embed.set_image(url=f"attachment://{sheet_name}")
    return embed


def timeline_embed(campaign: Campaign, name: str) -> discord.Embed:
    """The summary's second picture: one row per product, a bar per step."""
    embed = discord.Embed(title="Timeline", colour=_COLOURS[campaign.status])
    embed.set_image(url=f"attachment://{name}")
    return embed


def history_embed(campaigns: Sequence[Campaign], title: str) -> discord.Embed:
    """A list of campaigns, newest first."""
    lines = [
        f"{STATUS_EMOJI[c.status.value]} `{c.id}` {clip(c.request.theme, 60)} · "
        f"{c.status.value} · {c.request.products} products · ${c.cost_usd:.3f} · "
        f"<t:{int(c.created_at)}:R>"
        for c in campaigns
    ]
    return discord.Embed(
        title=title, description=_join_within(lines, DESCRIPTION_CHARS) or "nothing yet"
    )


def products_embed(campaign: Campaign) -> discord.Embed:
    """`/campaign show`: the request, then every product with its files or its error
    (what Slack's and the terminal's `show` list too)."""
    lines = [f"`{clip(campaign.request.to_text(), 300)}`"]
    for p in campaign.products:
        files = [_file_name(p.output(n), n.value) for n in (StepName.IMAGE, StepName.VIDEO)]
        shown = ", ".join(f for f in files if f) or "no files"
        error = f" · {clip(p.error() or '', 200)}" if p.error() else ""
        head = f"{STATUS_EMOJI[p.status.value]} {p.plan.index + 1}. {clip(p.plan.name, 80)}"
        lines.append(f"{head}: {shown}{error}")
    if campaign.contact_sheet:
        lines.append(f"contact sheet {_file_name(campaign.contact_sheet, '')}".rstrip())
    return discord.Embed(title="Products", description=_join_within(lines, DESCRIPTION_CHARS))


def _file_name(path: str | None, label: str) -> str | None:
    return f"{label} `{Path(path).name}`".strip() if path else None


def product_embed(product: Product, notes: Iterable[str], image_name: str | None) -> discord.Embed:
    """A product's thread post: its caption (and notes on missing files) with its image."""
    embed = discord.Embed(
        description=clip("\n".join([product_caption(product), *notes]), DESCRIPTION_CHARS),
        colour=_PRODUCT_COLOURS.get(product.status, discord.Colour.blurple()),
    )
    if image_name:
        embed.set_image(url=f"attachment://{image_name}")
    return embed


def product_paths(product: Product) -> list[str]:
    """The product's finished files, image first."""
    return [p for name in (StepName.IMAGE, StepName.VIDEO) if (p := product.output(name))]


@dataclass(frozen=True)
class Upload:
    """One file's bytes, ready to attach."""

    filename: str
    data: bytes
    source: str = ""  # the path it was read from

    def file(self) -> discord.File:
        """A fresh discord.File (each send consumes one)."""
        return discord.File(io.BytesIO(self.data), filename=self.filename)


@dataclass
class Attachments:
    """What fits into one message, and a note for each file that did not."""

    uploads: list[Upload] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # path -> its note

    def files(self) -> list[discord.File]:
        """discord.File objects for one send."""
        return [u.file() for u in self.uploads]

    def name_of(self, path: str | None) -> str | None:
        """The attachment name of the file read from `path` (a shrunk image's differs)."""
        return next((u.filename for u in self.uploads if path and u.source == path), None)


async def attachments(
    paths: Sequence[str],
    *,
    file_limit: int,
    files_base_url: str | None,
    gallery: GallerySettings | None = None,
) -> Attachments:
    """Fit files into one message: as they are, shrunk (images), or linked/explained."""
    out = Attachments()
    budget = max(REQUEST_LIMIT, file_limit)  # a boosted guild's one big file must fit
    for path in paths:
        room = min(file_limit, budget - sum(len(u.data) for u in out.uploads))
        upload = (
            None if len(out.uploads) >= MAX_FILES else await asyncio.to_thread(_fit, path, room)
        )
        if upload is not None:
            out.uploads.append(upload)
        else:
            note = _too_big(path, file_limit, files_base_url, gallery)
            out.notes.append(note)
            out.missing[path] = note
    return out


def _fit(path: str, room: int) -> Upload | None:
    """The file's bytes if they fit in `room`, else a smaller JPEG for an image."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size <= room:
            return Upload(file.name, file.read_bytes(), path)
        if file.suffix.lower() not in _IMAGE_SUFFIXES or room <= 0:
            return None
        data = shrink_image(path, room)
    except OSError:
        return None
    return None if data is None else Upload(file.with_suffix(".jpg").name, data, path)


def shrink_image(path: str, max_bytes: int) -> bytes | None:
    """A JPEG of the image no larger than max_bytes, scaled down as far as needed."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    for scale in _SHRINK_SCALES:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        buffer = io.BytesIO()
        rgb.resize(size, Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=80, optimize=True)
        if buffer.tell() <= max_bytes:
            return buffer.getvalue()
    return None


def _too_big(
    path: str, file_limit: int, files_base_url: str | None, gallery: GallerySettings | None
) -> str:
    file = Path(path)  # in the campaign's folder, named for its id
    url = file_link(file.parent.name, file.name, files_base_url=files_base_url, gallery=gallery)
    if url:
        return f"{file.name}: {url}"
    try:
        size = f"{file.stat().st_size / MIB:.1f} MiB"
    except OSError:
        return f"{file.name}: the file is missing on the bot's host"
    return (
        f"{file.name} ({size}) is over this server's {file_limit / MIB:.0f} MiB upload limit; "
        "it is saved on the bot's host."
    )


def _join_within(lines: Sequence[str], limit: int) -> str:
    """Join lines, replacing those that do not fit with '… and N more'."""
    out: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        rest = f"… and {len(lines) - index} more"
        if used + len(line) + 1 + len(rest) > limit and index < len(lines) - 1:
            out.append(rest)
            break
        out.append(clip(line, limit - used))
        used += len(line) + 1
    return "\n".join(out)
