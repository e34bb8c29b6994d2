"""Where one campaign is shown on Discord: its status message and its thread.

Everything goes through the bot token on channel routes (never the interaction
webhook), by id only, so it keeps working after the 15-minute interaction token
expires and after a restart (the ids are the campaign's stored `origin`).
Discord errors are logged, explained on the status message, and never reach
the campaign.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from bot.discord_ui.render import (
    DEFAULT_FILE_LIMIT,
    Attachments,
    attachments,
    explain,
    product_embed,
    product_paths,
    status_embed,
    summary_embed,
    timeline_embed,
)
from bot.discord_ui.seams import delete_channel
from bot.discord_ui.views import product_view, status_view
from bot.gallery import GallerySettings
from core.model import Action, Campaign, DiscordOrigin, Origin, Product, StepName
from core.progress import CampaignSnapshot
from core.service import Estimate

log = logging.getLogger(__name__)

Estimates = Callable[[Campaign, int], Awaitable[dict[Action, Estimate]]]  # service.action_estimate
SUMMARY_FILES = (("Contact sheet", "contact_sheet"), ("Timeline", "timeline"))


@dataclass(frozen=True)
class Place:
    """Ids of a campaign's status message and thread, as stored in its origin."""

    guild_id: int
    channel_id: int
    message_id: int
    thread_id: int
    file_limit: int = DEFAULT_FILE_LIMIT

    def origin(self) -> DiscordOrigin:
        """The campaign's origin (its ids are strings, opaque to the core)."""
        return DiscordOrigin(
            guild=str(self.guild_id),
            channel=str(self.channel_id),
            message=str(self.message_id),
            thread=str(self.thread_id),
            file_limit=str(self.file_limit),
        )

    @classmethod
    def of(cls, origin: Origin) -> Place | None:
        """The place a stored origin names, or None if it is not a Discord one."""
        if not isinstance(origin, DiscordOrigin):
            return None
        try:
            return cls(
                guild_id=int(origin.guild or ""),
                channel_id=int(origin.channel or ""),
                message_id=int(origin.message or ""),
                thread_id=int(origin.thread or ""),
                file_limit=int(origin.file_limit or DEFAULT_FILE_LIMIT),
            )
        except ValueError:
            return None

    @property
    def thread_url(self) -> str:
        """A link to the thread."""
        return f"https://discord.com/channels/{self.guild_id}/{self.thread_id}"


class DiscordTarget:
    """Renders one campaign into its status message and thread (a `bot.chat` ChatSurface)."""

    def __init__(
        self,
        client: discord.Client,
        place: Place,
        *,
        executor: str,
        files_base_url: str | None = None,
        gallery: GallerySettings | None = None,
        estimates: Estimates | None = None,
    ) -> None:
        self.place = place
        self._estimates = estimates
        self.notes: list[str] = []
        self._executor = executor
        self._files_base_url = files_base_url
        self._gallery = gallery
        channel = client.get_partial_messageable(place.channel_id, guild_id=place.guild_id)
        self._status = channel.get_partial_message(place.message_id)
        self._thread = client.get_partial_messageable(place.thread_id, guild_id=place.guild_id)
        self._last: CampaignSnapshot | None = None

    async def render_status(self, snap: CampaignSnapshot) -> None:
        """Edit the status message to show this snapshot (with the fitting buttons)."""
        self._last = snap
        embed = status_embed(snap, self._executor, self.notes)
        try:
            await self._status.edit(
                content=None, embed=embed, view=status_view(snap.campaign_id, snap.status)
            )
        except discord.HTTPException as exc:
            await self._problem("updating the status message", exc, tell_thread=True)

    async def post_product(self, campaign: Campaign, product: Product) -> None:
        """Post one finished product in the thread: an embed with its caption and image, the
        video attached, files too big explained, and Reroll / Animate with their estimates."""
        files = await self._attachments(product_paths(product))
        image = files.name_of(product.output(StepName.IMAGE))
        embed = product_embed(product, files.notes, image)
        view = product_view(campaign.id, product, await self._estimate(campaign, product))
        try:
            await self._thread.send(embed=embed, files=files.files(), view=view)
        except discord.HTTPException as exc:
            await self._problem(f"posting product {product.plan.index + 1}", exc)

    async def _estimate(self, campaign: Campaign, product: Product) -> dict[Action, Estimate]:
        """What Reroll and Animate would cost and take; nothing (plain labels) if unknown."""
        if self._estimates is None:
            return {}
        try:
            return await self._estimates(campaign, product.plan.index + 1)
        except Exception:  # a label without an estimate is better than no buttons
            log.warning("no action estimate for %s product %d", campaign.id,
                        product.plan.index + 1, exc_info=True)  # fmt: skip
            return {}

    async def post_summary(self, campaign: Campaign) -> None:
        """Post the summary in the thread: outcome and cost with the contact sheet and the
        timeline (each attached within the upload limit, else linked or named)."""
        wanted = [(label, getattr(campaign, attr)) for label, attr in SUMMARY_FILES]
        files = await self._attachments([path for _, path in wanted if path])
        embed = summary_embed(campaign, files.name_of(campaign.contact_sheet))
        if self._gallery and (url := self._gallery.campaign_link(campaign.id)):
            embed.url = url  # the title opens the campaign's gallery page
        for label, path in wanted:
            if path in files.missing:
                embed.add_field(name=label, value=files.missing[path][:1024], inline=False)
        embeds = [embed]
        if timeline := files.name_of(campaign.timeline):
            embeds.append(timeline_embed(campaign, timeline))
        try:
            await self._thread.send(embeds=embeds, files=files.files())
        except discord.HTTPException as exc:
            await self._problem("posting the summary", exc)
            if self._last is not None:  # the final status was already shown: show the problem too
                await self.render_status(self._last)

    async def post_reel(self, campaign: Campaign, reel: str | None, failure: str) -> None:
        """Post the reel after the summary (attached within the upload limit, else linked or
        named), or one line saying why there is none."""
        if reel is None:
            content = f"No reel: {failure}"[:2000]
            files: list[discord.File] = []
        else:
            found = await self._attachments([reel])
            content = "\n".join([f"Reel of campaign {campaign.id}", *found.notes])[:2000]
            files = found.files()
        try:
            await self._thread.send(content=content, files=files)
        except discord.HTTPException as exc:
            await self._problem("posting the reel", exc)

    async def _attachments(self, paths: list[str]) -> Attachments:
        return await attachments(
            paths,
            file_limit=self.place.file_limit,
            files_base_url=self._files_base_url,
            gallery=self._gallery,
        )

    async def _problem(
        self, what: str, exc: discord.HTTPException, tell_thread: bool = False
    ) -> None:
        note = f"{what} failed: {explain(exc)}"
        log.warning("campaign thread %s: %s", self.place.thread_id, note)
        if note in self.notes:
            return
        self.notes.append(note)
        if tell_thread:  # the status message itself is unusable: say so where people look
            try:
                await self._thread.send(content=f"⚠️ {note}")
            except discord.HTTPException as again:
                log.warning("campaign thread %s: %s", self.place.thread_id, explain(again))


async def delete_quietly(message: discord.Message | discord.PartialMessage) -> None:
    """Delete a status message; a failure is logged, not raised."""
    try:
        await message.delete()
    except discord.HTTPException as exc:
        log.warning("could not remove status message %s: %s", message.id, explain(exc))


async def remove_place(client: discord.Client, place: Place) -> None:
    """Take down the thread and status message of a campaign that did not start (quietly)."""
    if place.thread_id != place.channel_id:  # a thread opened for it, not the one it ran in
        try:
            await delete_channel(client, place.thread_id, reason="the campaign did not start")
        except discord.HTTPException as exc:
            log.warning("could not remove thread %s: %s", place.thread_id, explain(exc))
    channel = client.get_partial_messageable(place.channel_id, guild_id=place.guild_id)
    await delete_quietly(channel.get_partial_message(place.message_id))
