"""What every Slack handler shares: the service, the Web API client, the settings,
the campaigns' followers and threads, and the tasks the handlers run in.

A campaign's place on Slack is its parent message and thread, named by its
stored origin (`platform`, `channel`, `ts`); `thread()` makes the `SlackThread`
a follower posts to.
"""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.access import Viewer
from bot.chat.followers import Followers
from bot.gallery import GallerySettings
from bot.slack_ui import blocks as blocks
from bot.slack_ui.settings import SlackSettings
from bot.slack_ui.tasks import OwnedTasks
from bot.slack_ui.thread import MB, SlackThread
from core.model import Campaign, SlackOrigin
from core.service import CampaignService


class SlackContext:
    """The service and the Slack side of it, for the command and button handlers."""

    def __init__(
        self,
        service: CampaignService,
        settings: SlackSettings,
        client: AsyncWebClient,
        *,
        max_products: int,
        gallery: GallerySettings | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.client = client
        self.max_products = max_products
        self.gallery = gallery  # signed gallery links in summaries and for too-big videos
        self.followers = Followers(service, min_interval_s=settings.update_interval_s)
        self.sheets: dict[str, str] = {}  # campaign id -> its uploaded contact sheet's file id
        self.handlers = OwnedTasks()  # the work behind each ack
        self.posts = OwnedTasks()  # edits a follower leaves behind (given a grace at shutdown)

    def viewer(self, user: str, channel: str) -> Viewer:
        """Who asks, from where, for `bot.chat.access`."""
        return self.settings.viewer(user, channel)

    def thread(self, origin: SlackOrigin) -> SlackThread:
        """The parent message and thread this origin names."""
        return SlackThread(
            self.client,
            origin.channel or "",
            origin.ts or "",
            executor=self.service.describe_executor(),
            max_upload_bytes=int(self.settings.max_upload_mb * MB),
            files_base_url=self.settings.files_base_url,
            gallery=self.gallery,
            estimates=self.service.action_estimate,
            sheets=self.sheets,
            min_interval_s=self.settings.update_interval_s,
            spawn=self.posts.spawn,
            superseded=self.followers.live,
        )

    def surface_of(self, campaign: Campaign) -> SlackThread | None:
        """The campaign's stored parent message and thread, if it was started on Slack."""
        origin = campaign.origin
        if not isinstance(origin, SlackOrigin) or not origin.ts:
            return None
        return self.thread(origin)

    async def stored_surface(self, campaign: Campaign, channel: str) -> SlackThread:
        """The campaign's stored parent message and thread; a new parent message in
        `channel` when it has none on Slack (e.g. started in the terminal)."""
        surface = self.surface_of(campaign)
        if surface is not None:
            return surface
        first = blocks.stored_message(campaign, self.service.describe_executor())
        posted = await self.client.chat_postMessage(
            channel=channel, text=first.text, blocks=first.blocks
        )
        return self.thread(SlackOrigin(channel=channel, ts=str(posted["ts"])))
