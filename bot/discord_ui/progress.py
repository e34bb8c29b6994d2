"""Where one campaign is shown on Discord: its status message and its thread.

Everything goes through the bot token on channel routes (never the interaction
webhook), by id only, so it keeps working after the 15-minute interaction token
expires and after a restart (the ids are the campaign's stored `origin`).
Discord errors are logged, explained on the status message, and never reach
the campaign.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import discord

from bot.discord_ui.render import (
    DEFAULT_FILE_LIMIT,
    Attachments,
    attachments,
    explain,
    product_paths,
    product_text,
    status_embed,
    summary_embed,
)
from bot.discord_ui.views import status_view
from bot.gallery import GallerySettings
from core.model import Campaign, Product
from core.progress import CampaignSnapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    """Ids of a campaign's status message and thread, as stored in its origin."""

    guild_id: int
    channel_id: int
    message_id: int
    thread_id: int
    file_limit: int = DEFAULT_FILE_LIMIT

    def origin(self) -> dict[str, str]:
        """The campaign's `origin` mapping (strings only, opaque to the core)."""
        return {
            "platform": "discord",
            "guild": str(self.guild_id),
            "channel": str(self.channel_id),
            "message": str(self.message_id),
            "thread": str(self.thread_id),
            "file_limit": str(self.file_limit),
        }

    @classmethod
    def of(cls, origin: Mapping[str, str]) -> Place | None:
        """The place a stored origin names, or None if it is not a Discord one."""
        if origin.get("platform") != "discord":
            return None
        try:
            return cls(
                guild_id=int(origin["guild"]),
                channel_id=int(origin["channel"]),
                message_id=int(origin["message"]),
                thread_id=int(origin["thread"]),
                file_limit=int(origin.get("file_limit") or DEFAULT_FILE_LIMIT),
            )
        except (KeyError, ValueError):
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
    ) -> None:
        self.place = place
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
        """Post one finished product in the thread, its files attached or explained."""
        files = await self._attachments(product_paths(product))
        try:
            await self._thread.send(content=product_text(product, files.notes), files=files.files())
        except discord.HTTPException as exc:
            await self._problem(f"posting product {product.plan.index + 1}", exc)

    async def post_summary(self, campaign: Campaign) -> None:
        """Post the summary with the contact sheet and cost in the thread."""
        sheet = [campaign.contact_sheet] if campaign.contact_sheet else []
        files = await self._attachments(sheet)
        name = files.uploads[0].filename if files.uploads else None
        embed = summary_embed(campaign, name)
        if self._gallery and (url := self._gallery.campaign_link(campaign.id)):
            embed.url = url  # the title opens the campaign's gallery page
        if files.notes:
            embed.add_field(name="Contact sheet", value=files.notes[0][:1024], inline=False)
        try:
            await self._thread.send(embed=embed, files=files.files())
        except discord.HTTPException as exc:
            await self._problem("posting the summary", exc)
            if self._last is not None:  # the final status was already shown: show the problem too
                await self.render_status(self._last)

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
            await client.http.delete_channel(place.thread_id, reason="the campaign did not start")
        except discord.HTTPException as exc:
            log.warning("could not remove thread %s: %s", place.thread_id, explain(exc))
    channel = client.get_partial_messageable(place.channel_id, guild_id=place.guild_id)
    await delete_quietly(channel.get_partial_message(place.message_id))
