"""Slack front end: the slack-bolt AsyncApp, `/campaign`, its buttons, and serving.

    slash.py    `/campaign`: start a campaign in a new parent message, or answer
    buttons.py  Cancel, Retry, Reroll, Animate presses
    control.py  what both do to a stored campaign (cancel, retry, reroll, animate)
    context.py  what they share: service, client, settings, followers, threads
    tasks.py    the tasks the handlers hand their I/O to after the ack

Every handler acks first and does its I/O afterwards in a task this front end
owns: Bolt (process_before_response=False) runs listeners in an unreferenced
future, so nothing long may live there. Campaigns belong to the service; the
followers that mirror them into Slack (`bot.chat.followers`, by campaign id)
belong to this class and are closed by `aclose()`. Who may see or control a
campaign is decided by `bot.chat.access`.

Buttons carry the campaign id (Cancel, Retry on the status message) or the
campaign id and product number (Reroll, Animate under each product post) and act
on the stored campaign (requester and origin are stored), so they keep working
after a restart. Retry, Reroll, Animate and `/campaign animate` all follow the
campaign into its stored thread again.

Hostile input: a body Bolt cannot parse gets a 400 before Bolt sees it
(`reject_malformed`); a command or press missing the fields it needs gets an
ephemeral error or is logged and dropped, never an exception; a replayed
signed request (same signature or trigger_id within Slack's window) is
answered with an empty ack and starts nothing (`ReplayFilter`; with a store, across
replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.replays import RecentKeys, ReplayGuard
from bot.chat.serve import serve_until_signal
from bot.gallery import GallerySettings
from bot.signals import StopSignals
from bot.slack_ui import blocks as blocks
from bot.slack_ui.buttons import Buttons
from bot.slack_ui.commands import ReplayFilter, reject_malformed
from bot.slack_ui.context import SlackContext
from bot.slack_ui.control import Control
from bot.slack_ui.settings import SlackSettings
from bot.slack_ui.slash import SlashCommand
from core.model import Campaign
from core.ports import ProgressSink
from core.service import CampaignService
from core.settings import reveal

COMMAND = "/campaign"
EVENTS_PATH = "/slack/events"
Mount = Callable[[web.Application], None]  # adds routes to the Slack HTTP server
SHUTDOWN_GRACE_S = 5.0  # time for followers to post a final state before they are stopped

log = logging.getLogger("campaign-bot.slack")


def configure_client(client: AsyncWebClient, settings: SlackSettings) -> AsyncWebClient:
    """Point the app's Web API client at SLACK_API_URL and retry 429s after Retry-After.

    Bolt copies both attributes into the client it builds for every request.
    """
    client.base_url = settings.api_url
    client.retry_handlers = [
        AsyncConnectionErrorRetryHandler(),
        AsyncRateLimitErrorRetryHandler(max_retry_count=5),
    ]
    return client


class SlackFrontEnd:
    """Translates Slack commands and button presses into CampaignService calls."""

    def __init__(
        self,
        service: CampaignService,
        settings: SlackSettings,
        *,
        max_products: int,
        gallery: GallerySettings | None = None,
        replays: ReplayGuard | None = None,  # the store's, shared by every replica
    ) -> None:
        self.service = service
        self.settings = settings
        self.app = AsyncApp(
            token=reveal(
                settings.bot_token
            ),  # a client= would warn when SLACK_BOT_TOKEN is also set
            signing_secret=reveal(settings.signing_secret),
            name="campaign-bot",
            logger=log,
        )
        client = configure_client(self.app.client, settings)
        self.ctx = SlackContext(
            service, settings, client, max_products=max_products, gallery=gallery
        )
        self.followers = self.ctx.followers
        self.replays = ReplayFilter(replays or RecentKeys())
        self.app.middleware(self.replays.drop_replays)  # after Bolt has checked the signature
        control = Control(self.ctx)
        self.app.command(COMMAND)(SlashCommand(self.ctx, control).on_command)
        buttons = Buttons(self.ctx, control)
        self.app.action(blocks.ACTION_CANCEL)(buttons.on_cancel)
        self.app.action(blocks.ACTION_RETRY)(buttons.on_retry)
        self.app.action(blocks.ACTION_REROLL)(buttons.on_reroll)
        self.app.action(blocks.ACTION_ANIMATE)(buttons.on_animate)

    async def aclose(self, *, hand_over: bool = False) -> None:
        """Shut down: stop handler tasks, stop the service's campaigns, close the followers.

        By default the campaigns are cancelled before followers close, so each
        thread gets its final state (a follower that cannot post within
        SHUTDOWN_GRACE_S is stopped, and so is a last edit such as the contact
        sheet on a parent). With `hand_over` (a deploy: SIGTERM) they are
        released for the next process instead, nothing is cancelled at the
        provider, and the followers just post their last status edit: the next
        process re-attaches to the same message and thread when it resumes them.
        `stop_campaigns` is idempotent; build() closes the service on exit.
        """
        grace_s = 0.0 if hand_over else SHUTDOWN_GRACE_S
        await self.stop_handlers()
        await self.service.stop_campaigns(hand_over=hand_over)
        await self.followers.aclose(grace_s)
        await self.ctx.posts.stop(grace_s)

    async def stop_handlers(self) -> None:
        """Cancel the handler tasks still running (nothing new starts after this)."""
        await self.ctx.handlers.stop()

    @staticmethod
    def owns(campaign: Campaign) -> bool:
        """Whether this front end resumes the campaign: only Slack's own, never Discord's."""
        return campaign.platform == "slack"

    def start_resuming(self) -> None:
        """Take over Slack's orphaned campaigns now and every lease from now on."""
        self.service.start_resuming(self.sinks_for_stored, accept=self.owns)

    def sinks_for_stored(self, campaign: Campaign) -> list[ProgressSink]:
        """Progress of a resumed campaign goes back to its stored parent message."""
        return self.followers.sinks_for_stored(campaign, self.ctx.surface_of)


@contextlib.asynccontextmanager
async def serving_http(
    front: SlackFrontEnd, host: str, port: int, mount: Mount | None = None
) -> AsyncIterator[int]:
    """Serve the AsyncApp at EVENTS_PATH on host:port; yields the bound port.

    `mount` adds more routes to the same server (e.g. the Replicate webhook).
    """
    app = front.app.web_app(path=EVENTS_PATH, port=port)
    app.middlewares.append(reject_malformed(EVENTS_PATH))
    if mount is not None:
        mount(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
        yield int(runner.addresses[0][1])  # the real port when asked for port 0
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def socket_mode(
    front: SlackFrontEnd, app_token: str
) -> AsyncIterator[AsyncSocketModeHandler]:
    """Connect the AsyncApp to Slack over Socket Mode (apps.connections.open on SLACK_API_URL)."""
    handler = AsyncSocketModeHandler(front.app, app_token)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        yield handler
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


async def serve_until_stopped(
    front: SlackFrontEnd,
    *,
    socket: bool,
    host: str,
    port: int,
    mount: Mount | None = None,
    stop: StopSignals | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop taking work and hand the campaigns over.

    The server (or the Socket Mode connection) closes first and the handler
    tasks stop, so nothing new starts; then `bot.chat.serve` hands the
    campaigns over and the followers close.
    """

    async def serve(stopping: asyncio.Event) -> None:
        try:
            async with _listening(front, socket=socket, host=host, port=port, mount=mount):
                front.start_resuming()
                await stopping.wait()
        finally:
            await front.stop_handlers()

    await serve_until_signal(
        serve, front.service, functools.partial(front.aclose, hand_over=True), stop=stop
    )


@contextlib.asynccontextmanager
async def _listening(
    front: SlackFrontEnd, *, socket: bool, host: str, port: int, mount: Mount | None
) -> AsyncIterator[None]:
    """Socket Mode, or the HTTP server, for as long as the block runs."""
    if socket:
        async with socket_mode(front, reveal(front.settings.app_token)):
            log.warning("Slack front end connected in Socket Mode")
            yield
    else:
        async with serving_http(front, host, port, mount) as bound:
            log.warning("Slack front end listening on http://%s:%s%s", host, bound, EVENTS_PATH)
            yield
