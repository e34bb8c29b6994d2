"""One campaign's Slack surface: the parent status message and its thread.

`SlackThread` is Slack's `bot.chat.surface.ChatSurface`:
`chat.update` of the parent, one threaded post per finished product (image,
and video when it fits the upload limit, in one `files_upload_v2` call), and
the summary with the contact sheet.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.links import file_link
from bot.chat.text import product_caption, summary_text
from bot.gallery import GallerySettings
from bot.slack_ui.blocks import escape, status_message
from core.model import Campaign, Product, StepName
from core.progress import CampaignSnapshot

MB = 1024 * 1024


class SlackThread:
    """Posts and edits for the campaign whose parent message is `ts` in `channel`."""

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        ts: str,
        *,
        executor: str,
        max_upload_bytes: int,
        files_base_url: str | None = None,
        gallery: GallerySettings | None = None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.ts = ts
        self.executor = executor
        self.max_upload_bytes = max_upload_bytes
        self.files_base_url = files_base_url  # serves the data folder: <base>/campaigns/<id>/
        self.gallery = gallery or GallerySettings()  # signed links, when configured

    async def render_status(self, snapshot: CampaignSnapshot) -> None:
        """Edit the parent message to show this snapshot."""
        message = status_message(snapshot, self.executor)
        await self.client.chat_update(
            channel=self.channel, ts=self.ts, text=message.text, blocks=message.blocks
        )

    async def post_product(self, campaign: Campaign, product: Product) -> None:
        """Post one finished product into the thread: its files, or one line with the reason."""
        caption = escape(product_caption(product))
        image = product.output(StepName.IMAGE)
        if image is None:
            await self.say(caption)
            return
        uploads = [await _upload(image, f"{product.plan.name} (image)")]
        video = product.output(StepName.VIDEO)
        if video is not None:
            size = await asyncio.to_thread(os.path.getsize, video)
            if size <= self.max_upload_bytes:
                uploads.append(await _upload(video, f"{product.plan.name} (video)"))
            else:  # too big for the workspace: link it, or say where it is instead
                caption += "\n" + self._too_big(campaign.id, video, size)
        await self.client.files_upload_v2(
            channel=self.channel, thread_ts=self.ts, file_uploads=uploads, initial_comment=caption
        )

    def _too_big(self, campaign_id: str, video: str, size: int) -> str:
        """The caption line for a video over the upload limit: a link, or its path."""
        limit = f"{self.max_upload_bytes / MB:.0f} MB"
        over = f"video: {size / MB:.1f} MB is over the {limit} upload limit"
        name = Path(video).name
        url = file_link(campaign_id, name, files_base_url=self.files_base_url, gallery=self.gallery)
        if url:
            return f"{over}: <{escape(url)}|{escape(name)}>"
        return f"{over}; saved on the bot host at `{escape(video)}`"

    async def post_summary(self, campaign: Campaign) -> None:
        """End the thread with the outcome, counts, cost and the contact sheet."""
        text = escape(summary_text(campaign))
        if url := self.gallery.campaign_link(campaign.id):
            text += f"\n<{escape(url)}|Open in the gallery>"
        try:
            sheet = campaign.contact_sheet and await _upload(
                campaign.contact_sheet, f"Contact sheet {campaign.id}"
            )
        except FileNotFoundError:  # moved or deleted since: the text still goes out
            sheet = None
        if not sheet:
            await self.say(text)
            return
        await self.client.files_upload_v2(
            channel=self.channel, thread_ts=self.ts, file_uploads=[sheet], initial_comment=text
        )

    async def say(self, text: str) -> None:
        """Post plain text into the thread."""
        await self.client.chat_postMessage(channel=self.channel, thread_ts=self.ts, text=text)


async def _upload(path: str, title: str) -> dict[str, Any]:
    """A files_upload_v2 item; the bytes are read off the event loop."""
    data = await asyncio.to_thread(Path(path).read_bytes)
    return {"file": data, "filename": Path(path).name, "title": title}
