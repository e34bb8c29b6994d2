"""One campaign's Slack surface: the parent status message and its thread.

`SlackThread` is Slack's `bot.chat.surface.ChatSurface`:
`chat.update` of the parent, one threaded post per finished product (image,
and video when it fits the upload limit, in one `files_upload_v2` call) followed
by its Reroll / Animate buttons, the summary with the contact sheet and the
timeline, and then the reel in a post of its own (each uploaded when it fits
the upload limit, else linked or named). Once the contact sheet is uploaded,
the parent shows it as an image block (`slack_file`); the file id is
remembered in `sheets` (shared by every thread of the front end, in memory)
so later edits of the parent keep it.

Buttons go in a message of their own: a file share message cannot reliably carry
interactive blocks. A product without an image is one message: caption and buttons.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.links import file_link
from bot.chat.text import product_caption, summary_text
from bot.gallery import GallerySettings
from bot.slack_ui.blocks import Block, escape, product_actions, status_message
from core.model import Action, Campaign, Product, StepName
from core.progress import CampaignSnapshot
from core.service import Estimate

MB = 1024 * 1024
SHEET_TRIES = 2  # the image block may name a file Slack has not finished sharing yet
SHEET_RETRY_S = 2.0
SHEETS_KEPT = 2000  # contact sheet file ids remembered for later edits of parent messages
Estimates = Callable[[Campaign, int], Awaitable[Mapping[Action, Estimate]]]
log = logging.getLogger("campaign-bot.slack")


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
        estimates: Estimates | None = None,
        sheets: MutableMapping[str, str] | None = None,
        min_interval_s: float = 0.0,
        spawn: Callable[[Coroutine[Any, Any, None]], None] | None = None,
        superseded: Callable[[str], bool] = lambda _campaign_id: False,
    ) -> None:
        self.client = client
        self.channel = channel
        self.ts = ts
        self.executor = executor
        self.max_upload_bytes = max_upload_bytes
        self.files_base_url = files_base_url  # serves the data folder: <base>/campaigns/<id>/
        self.gallery = gallery or GallerySettings()  # signed links, when configured
        self.estimates = estimates  # what each product button would cost and take
        self.sheets: MutableMapping[str, str] = {} if sheets is None else sheets  # id -> file
        self.min_interval_s = min_interval_s  # between edits of the parent (the sheet's too)
        self._edited_at: float | None = None  # time.monotonic() of the last edit's answer
        self.spawn = spawn  # runs the contact sheet edit in a task the front end owns
        self.superseded = superseded  # whether a newer run of the campaign is being followed

    async def render_status(self, snapshot: CampaignSnapshot) -> None:
        """Edit the parent message to show this snapshot (with the contact sheet, if known)."""
        sheet = self.sheets.get(snapshot.campaign_id)
        message = status_message(snapshot, self.executor, sheet=sheet)
        try:
            await self.client.chat_update(
                channel=self.channel, ts=self.ts, text=message.text, blocks=message.blocks
            )
        finally:  # measured from the answer: Slack surely has the edit by then
            self._edited_at = time.monotonic()

    async def post_product(self, campaign: Campaign, product: Product) -> None:
        """Post one finished product into the thread: its files, or one line with the reason."""
        caption = escape(product_caption(product))
        buttons = await self._buttons(campaign, product)
        image = product.output(StepName.IMAGE)
        if image is None:  # one message: why there is nothing, and Reroll
            section = {"type": "section", "text": {"type": "mrkdwn", "text": caption[:2900]}}
            await self.client.chat_postMessage(
                channel=self.channel, thread_ts=self.ts, text=caption, blocks=[section, *buttons]
            )
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
        if buttons:
            number = product.plan.index + 1
            text = f"Reroll or animate {number}. {escape(product.plan.name)}"
            await self.client.chat_postMessage(
                channel=self.channel, thread_ts=self.ts, text=text, blocks=buttons
            )

    async def _buttons(self, campaign: Campaign, product: Product) -> list[Block]:
        """The product's action buttons, labelled with estimates when they can be had."""
        estimates = None
        if self.estimates is not None:
            try:
                estimates = await self.estimates(campaign, product.plan.index + 1)
            except Exception:  # labels without prices beat no buttons
                log.exception("no action estimate for product of campaign %s", campaign.id)
        return product_actions(campaign, product, estimates)

    def _too_big(self, campaign_id: str, video: str, size: int, what: str = "video") -> str:
        """The caption line for a file over the upload limit: a link, or its path."""
        limit = f"{self.max_upload_bytes / MB:.0f} MB"
        over = f"{what}: {size / MB:.1f} MB is over the {limit} upload limit"
        name = Path(video).name
        url = file_link(campaign_id, name, files_base_url=self.files_base_url, gallery=self.gallery)
        if url:
            return f"{over}: <{escape(url)}|{escape(name)}>"
        return f"{over}; saved on the bot host at `{escape(video)}`"

    async def post_summary(self, campaign: Campaign) -> None:
        """Post the outcome, counts, cost, the contact sheet and the timeline; then show
        the uploaded contact sheet on the parent message."""
        text = escape(summary_text(campaign))
        if url := self.gallery.campaign_link(campaign.id):
            text += f"\n<{escape(url)}|Open in the gallery>"
        uploads: list[dict[str, Any]] = []
        sheet_title = f"Contact sheet {campaign.id}"
        files = (
            (campaign.contact_sheet, sheet_title, "contact sheet"),
            (campaign.timeline, f"Timeline {campaign.id}", "timeline"),
        )
        for path, title, what in files:
            if not path:
                continue
            try:  # moved or deleted since: the rest still goes out
                size = await asyncio.to_thread(os.path.getsize, path)
                if size > self.max_upload_bytes:
                    text += "\n" + self._too_big(campaign.id, path, size, what)
                    continue
                uploads.append(await _upload(path, title))
            except FileNotFoundError:
                continue
        if not uploads:
            self.sheets.pop(campaign.id, None)
            await self.say(text)
            return
        done = await self.client.files_upload_v2(
            channel=self.channel, thread_ts=self.ts, file_uploads=uploads, initial_comment=text
        )
        sheet = _file_id(done.get("files"), sheet_title)
        if sheet is None:
            self.sheets.pop(campaign.id, None)
            return
        self.sheets.pop(campaign.id, None)
        self.sheets[campaign.id] = sheet  # newest last
        while len(self.sheets) > SHEETS_KEPT:  # bounded memory: the oldest go first
            del self.sheets[next(iter(self.sheets))]
        if self.spawn is None:
            await self._show_sheet(campaign)
        else:  # the follower is done now: a press right after the summary is not refused
            self.spawn(self._show_sheet(campaign))

    async def post_reel(self, campaign: Campaign, reel: str | None, failure: str) -> None:
        """Post the reel after the summary (uploaded within the limit, else linked or named),
        or one line saying why there is none."""
        if reel is None:
            await self.say(escape(f"No reel: {failure}"[:2900]))
            return
        text = f"Reel of campaign {campaign.id}"
        try:
            size = await asyncio.to_thread(os.path.getsize, reel)
        except FileNotFoundError:
            await self.say(f"{text}: the file is gone")
            return
        if size > self.max_upload_bytes:
            await self.say(f"{text}\n{self._too_big(campaign.id, reel, size, 'reel')}")
            return
        await self.client.files_upload_v2(
            channel=self.channel,
            thread_ts=self.ts,
            file_uploads=[await _upload(reel, f"Reel {campaign.id}")],
            initial_comment=text,
        )

    async def _show_sheet(self, campaign: Campaign) -> None:
        """Edit the parent to show the contact sheet (just uploaded), min_interval_s after
        the last edit; skipped once the campaign runs again (its new follower shows it)."""
        for attempt in range(SHEET_TRIES):  # Slack shares a new file asynchronously
            wait = SHEET_RETRY_S if attempt else 0.0
            if self._edited_at is not None:  # edits stay min_interval_s apart, this one too
                wait = max(wait, self._edited_at + self.min_interval_s - time.monotonic())
            await asyncio.sleep(max(0.0, wait))
            if self.superseded(campaign.id):
                return
            try:
                await self.render_status(CampaignSnapshot.of(campaign))
                return
            except SlackApiError as exc:
                log.warning("showing the contact sheet of %s failed: %s", campaign.id, exc)
        self.sheets.pop(campaign.id, None)  # a file Slack will not show breaks no later edit

    async def say(self, text: str) -> None:
        """Post plain text into the thread."""
        await self.client.chat_postMessage(channel=self.channel, thread_ts=self.ts, text=text)


def _file_id(files: object, title: str) -> str | None:
    """The id of the uploaded file with this title in a files.completeUploadExternal answer."""
    found = [f for f in files if isinstance(f, dict)] if isinstance(files, list) else []
    ids = [f.get("id") for f in found if f.get("title") == title]
    return next((i for i in ids if isinstance(i, str) and i), None)


async def _upload(path: str, title: str) -> dict[str, Any]:
    """A files_upload_v2 item; the bytes are read off the event loop."""
    data = await asyncio.to_thread(Path(path).read_bytes)
    return {"file": data, "filename": Path(path).name, "title": title}
