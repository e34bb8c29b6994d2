"""Slack front end: the slack-bolt AsyncApp, `/campaign`, its buttons, and serving.

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
answered with an empty ack and starts nothing (`RecentRequests`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.access import find_visible, may_control
from bot.chat.followers import Followers
from bot.chat.serve import serve_until_signal
from bot.chat.start import start_in_new_place
from bot.chat.text import HISTORY_LIMIT
from bot.gallery import GallerySettings
from bot.signals import StopSignals
from bot.slack_ui import blocks as blocks
from bot.slack_ui.commands import (
    Command,
    RecentRequests,
    button_fields,
    command_fields,
    parse_command,
    product_fields,
    reject_malformed,
)
from bot.slack_ui.settings import SlackSettings
from bot.slack_ui.thread import MB, SlackThread
from core.actions import pick, require_finished
from core.errors import CampaignError, CampaignStateError, InvalidRequest
from core.model import Action, Campaign
from core.ports import ProgressSink
from core.request import CampaignRequest, parse_request
from core.service import CampaignService

COMMAND = "/campaign"
EVENTS_PATH = "/slack/events"
Mount = Callable[[web.Application], None]  # adds routes to the Slack HTTP server
Start = Callable[[Sequence[ProgressSink]], Awaitable[Campaign]]  # runs it with these sinks
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
    ) -> None:
        self.service = service
        self.settings = settings
        self.max_products = max_products
        self.gallery = gallery  # signed gallery links in summaries and for too-big videos
        self.app = AsyncApp(
            token=settings.bot_token,  # a client= would warn when SLACK_BOT_TOKEN is also set
            signing_secret=settings.signing_secret,
            name="campaign-bot",
            logger=log,
        )
        self.client = configure_client(self.app.client, settings)
        self.recent = RecentRequests()
        self.app.middleware(self.recent.drop_replays)  # after Bolt has checked the signature
        self.app.command(COMMAND)(self._on_command)
        self.app.action(blocks.ACTION_CANCEL)(self._on_cancel)
        self.app.action(blocks.ACTION_RETRY)(self._on_retry)
        self.app.action(blocks.ACTION_REROLL)(self._on_reroll)
        self.app.action(blocks.ACTION_ANIMATE)(self._on_animate)
        self.followers = Followers(service, min_interval_s=settings.update_interval_s)
        self.sheets: dict[str, str] = {}  # campaign id -> its uploaded contact sheet's file id
        self._tasks: set[asyncio.Task[None]] = set()
        self._posts: set[asyncio.Task[None]] = set()  # edits a follower leaves behind

    async def aclose(self, *, hand_over: bool = False) -> None:
        """Shut down: stop handler tasks, stop the service's campaigns, close the followers.

        By default the campaigns are cancelled before followers close, so each
        thread gets its final state (a follower that cannot post within
        SHUTDOWN_GRACE_S is stopped). With `hand_over` (a deploy: SIGTERM) they
        are released for the next process instead, nothing is cancelled at the
        provider, and the followers just post their last status edit: the next
        process re-attaches to the same message and thread when it resumes them.
        `service.aclose()` is idempotent: build() calls it again on exit.
        """
        await self.stop_handlers()
        await self.service.aclose(hand_over=hand_over)
        await self.followers.aclose(0.0 if hand_over else SHUTDOWN_GRACE_S)
        await self._stop_posts(0.0 if hand_over else SHUTDOWN_GRACE_S)

    async def _stop_posts(self, grace_s: float) -> None:
        """Give the last edits (contact sheets on parents) `grace_s`, then stop them."""
        if self._posts and grace_s > 0:
            await asyncio.wait(set(self._posts), timeout=grace_s)
        for task in list(self._posts):
            task.cancel()
        await asyncio.gather(*self._posts, return_exceptions=True)

    async def stop_handlers(self) -> None:
        """Cancel the handler tasks still running (nothing new starts after this)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until every handler task (and a follower's last edit) has finished (tests
        use it to settle)."""
        while self._tasks or self._posts:
            await asyncio.gather(*self._tasks, *self._posts, return_exceptions=True)

    # -- handlers: ack at once, then hand the I/O to an owned task -------------

    async def _on_command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        fields = command_fields(command)
        if fields is None:
            log.warning("ignored a /campaign command without a usable user, channel or text")
            await ack(response_type="ephemeral", text=blocks.MALFORMED)
            return
        user, channel, text = fields
        if not self.settings.may_use(user, channel):
            await ack(response_type="ephemeral", text=blocks.NOT_ENABLED)
            return
        try:
            cmd = parse_command(text)
            request = (
                parse_request(cmd.arg, max_products=self.max_products)
                if cmd.name == "new"
                else None
            )
        except InvalidRequest as exc:
            await ack(response_type="ephemeral", text=blocks.invalid_text(exc))
            return
        if cmd.name == "help":
            await ack(response_type="ephemeral", text=blocks.HELP)
        elif request is not None:
            estimate = self.service.estimate(request)
            await ack(response_type="ephemeral", text=blocks.accepted_text(request, estimate))
            team = command.get("team_id")
            self._spawn(self._start(request, user, channel, respond, str(team or "")))
        else:
            await ack()  # the answer needs the database: it follows through response_url
            self._spawn(self._reply(cmd, user, channel, respond))

    async def _on_cancel(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._press("cancel", body))

    async def _on_retry(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._press("retry", body))

    async def _on_reroll(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._product_press(Action.REROLL, body))

    async def _on_animate(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._product_press(Action.ANIMATE, body))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guard(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn_post(self, work: Coroutine[Any, Any, None]) -> None:
        """A thread's last edit, after its follower is done; given a grace at shutdown."""
        task = asyncio.create_task(self._guard(work))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    @staticmethod
    async def _guard(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:  # one failed reply must not take the front end down
            log.exception("Slack handler failed")

    # -- the work behind each handler ------------------------------------------

    async def _start(
        self,
        request: CampaignRequest,
        user: str,
        channel: str,
        respond: AsyncRespond,
        team: str = "",
    ) -> None:
        """Check the spend guard, post the parent message, then submit the campaign."""
        where = {"platform": "slack", "channel": channel} | ({"team": team} if team else {})
        requester = f"slack:{user}"

        async def submit(origin: Mapping[str, str], sinks: Sequence[ProgressSink]) -> Campaign:
            return await self.service.submit(request, sinks, requester=requester, origin=origin)

        check = functools.partial(self.service.check, request, requester=requester, origin=where)
        parent = NewParent(self, request, where, respond)
        await start_in_new_place(self.followers, parent, submit, check=check)

    async def _reply(self, cmd: Command, user: str, channel: str, respond: AsyncRespond) -> None:
        """Answer status/history/show/cancel/retry ephemerally through response_url."""
        try:
            answer = await self._answer(cmd, user, channel)
        except CampaignError as exc:
            answer = blocks.Message(blocks.problem_text(exc), [])
        await respond(text=answer.text, blocks=answer.blocks or None, response_type="ephemeral")

    async def _answer(self, cmd: Command, user: str, channel: str) -> blocks.Message:
        if cmd.name == "history":
            mine = await self.service.history(HISTORY_LIMIT, requester=f"slack:{user}")
            return blocks.Message(blocks.history_text(mine), [])
        if cmd.name == "status":
            campaign = await (
                self._visible(cmd.arg, user, channel) if cmd.arg else self._latest(user)
            )
            executor = self.service.describe_executor()
            return blocks.stored_message(campaign, executor, self.sheets.get(campaign.id))
        if cmd.name == "show":
            campaign = await self._visible(cmd.arg, user, channel)
            return blocks.Message(blocks.show_text(campaign), [])
        if cmd.name == "animate":
            text = await self._act(Action.ANIMATE, cmd.arg, cmd.number, user, channel, cmd.prompt)
            return blocks.Message(text, [])
        return blocks.Message(await self._manage(cmd.name, cmd.arg, user, channel), [])

    async def _latest(self, user: str) -> Campaign:
        mine = await self.service.history(1, requester=f"slack:{user}")
        if not mine:
            raise CampaignStateError("you have no campaigns yet")
        return mine[0]

    async def _visible(self, campaign_id: str, user: str, channel: str) -> Campaign:
        """The campaign if this user may see it here (`bot.chat.access`), else the same
        refusal for an unknown id and someone else's campaign."""
        campaign = await find_visible(
            self.service, self.settings.viewer(user, channel), campaign_id
        )
        if campaign is None:
            raise blocks.Refused(blocks.not_found_text(campaign_id))
        return campaign

    async def _press(self, action: str, body: Mapping[str, Any]) -> None:
        """A Cancel or Retry button: act, or tell the presser (only them) why not."""
        fields = button_fields(body)
        if fields is None:
            log.warning("ignored a %s press without a usable user or channel", action)
            return
        user, channel, campaign_id = fields
        if not self.settings.may_use(user, channel):  # the allowlists apply to buttons too
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=blocks.NOT_ENABLED
            )
            return
        if campaign_id is None:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=blocks.MALFORMED)
            return
        try:
            await self._manage(action, campaign_id, user, channel)
        except CampaignError as exc:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=blocks.problem_text(exc)
            )

    async def _product_press(self, action: Action, body: Mapping[str, Any]) -> None:
        """A Reroll or Animate button under a product post: act, or tell the presser why not.

        Everything it needs is in the press (campaign id and product number) and the store.
        """
        fields = product_fields(body)
        if fields is None:
            log.warning("ignored a %s press without a usable user or channel", action.value)
            return
        user, channel, target = fields
        if not self.settings.may_use(user, channel):
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=blocks.NOT_ENABLED
            )
            return
        if target is None:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=blocks.MALFORMED)
            return
        campaign_id, number = target
        try:
            await self._act(action, campaign_id, number, user, channel)
        except CampaignError as exc:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=blocks.problem_text(exc)
            )

    async def _act(
        self,
        action: Action,
        campaign_id: str,
        number: int | None,
        user: str,
        channel: str,
        prompt: str | None = None,
    ) -> str:
        """Reroll or animate for the requester or an admin (blocks.Refused for anyone else),
        followed into the campaign's thread like a retry; the text confirms what started."""
        campaign = await self.service.get(campaign_id)
        viewer = self.settings.viewer(user, channel)
        if not may_control(viewer, campaign):
            raise blocks.Refused(blocks.refusal_text(action.value, campaign))
        who = viewer.requester  # whose daily cost cap the action counts against
        require_finished(campaign, action.value)  # said before its live follower refuses
        if number is not None:  # refused before a status message may be posted for it
            pick(campaign, number)
        if action is Action.REROLL:
            if number is None:
                raise InvalidRequest("product", "is missing", "a product number")
            await self._follow_again(
                campaign,
                channel,
                lambda sinks: self.service.reroll(campaign_id, number, sinks, requester=who),
            )
            what = f"🎲 Rerolling product {number}"
        else:
            await self._follow_again(
                campaign,
                channel,
                lambda sinks: self.service.animate(
                    campaign_id, number, prompt, sinks, requester=who
                ),
            )
            what = f"🎬 Animating product {number}" if number else "🎬 Animating every product"
            what += " that has no video yet" if number is None else ""
        return f"{what} of campaign {campaign.id}; progress is in its thread."

    async def _manage(self, action: str, campaign_id: str, user: str, channel: str) -> str:
        """Cancel or retry for the requester or an admin; raise blocks.Refused for anyone else."""
        campaign = await self.service.get(campaign_id)
        if not may_control(self.settings.viewer(user, channel), campaign):
            raise blocks.Refused(blocks.refusal_text(action, campaign))
        if action == "cancel":
            campaign = await self.service.cancel(campaign_id)
            await self._refresh(campaign)
            return f"🚫 Campaign {campaign.id} is {campaign.status.value}."
        await self._retry(campaign, channel)
        return f"🔁 Retrying the failed steps of campaign {campaign.id}; progress is in its thread."

    async def _retry(self, campaign: Campaign, channel: str) -> None:
        """Restart the campaign with a follower on its stored parent message."""
        surface = await self._stored_surface(campaign, channel)
        await self.followers.retry(campaign.id, surface)

    async def _follow_again(self, campaign: Campaign, channel: str, run: Start) -> None:
        """Run a finished campaign again (`run(sinks)`) into its stored thread."""
        surface = await self._stored_surface(campaign, channel)
        await self.followers.start(surface, run, campaign.id)

    async def _stored_surface(self, campaign: Campaign, channel: str) -> SlackThread:
        """The campaign's stored parent message and thread; a new parent message in
        `channel` when it has none on Slack (e.g. started in the terminal)."""
        origin = dict(campaign.origin)
        if origin.get("platform") != "slack" or not origin.get("ts"):
            first = blocks.stored_message(campaign, self.service.describe_executor())
            posted = await self.client.chat_postMessage(
                channel=channel, text=first.text, blocks=first.blocks
            )
            origin = {"platform": "slack", "channel": channel, "ts": str(posted["ts"])}
        return self._thread(origin)

    @staticmethod
    def owns(campaign: Campaign) -> bool:
        """Whether this front end resumes the campaign: only Slack's own, never Discord's."""
        return campaign.platform == "slack"

    def start_resuming(self) -> None:
        """Take over Slack's orphaned campaigns now and every lease from now on."""
        self.service.start_resuming(self.sinks_for_stored, accept=self.owns)

    def sinks_for_stored(self, campaign: Campaign) -> list[ProgressSink]:
        """Progress of a resumed campaign goes back to its stored parent message."""
        return self.followers.sinks_for_stored(campaign, self._surface_of)

    async def _refresh(self, campaign: Campaign) -> None:
        """Show a stored outcome on a parent message no follower is updating (after a restart)."""
        await self.followers.show_stored(campaign, self._surface_of)

    def _surface_of(self, campaign: Campaign) -> SlackThread | None:
        """The campaign's stored parent message and thread, if it was started on Slack."""
        origin = campaign.origin
        if origin.get("platform") != "slack" or not origin.get("ts"):
            return None
        return self._thread(origin)

    def _thread(self, origin: Mapping[str, str]) -> SlackThread:
        return SlackThread(
            self.client,
            origin["channel"],
            origin["ts"],
            executor=self.service.describe_executor(),
            max_upload_bytes=int(self.settings.max_upload_mb * MB),
            files_base_url=self.settings.files_base_url,
            gallery=self.gallery,
            estimates=self.service.action_estimate,
            sheets=self.sheets,
            min_interval_s=self.settings.update_interval_s,
            spawn=self._spawn_post,
            superseded=self.followers.live,
        )


class NewParent:
    """A new campaign's parent message in a channel (`bot.chat.start`): refusals go to
    the user ephemerally, a refusal after posting is written over the parent."""

    def __init__(
        self,
        front: SlackFrontEnd,
        request: CampaignRequest,
        where: Mapping[str, str],
        respond: AsyncRespond,
    ) -> None:
        self.front = front
        self.request = request
        self.where = where
        self.respond = respond

    async def refused(self, error: CampaignError) -> None:
        """A refusal (blocklist, quota) stays between the bot and the user."""
        await self.respond(text=blocks.problem_text(error), response_type="ephemeral")

    async def open(self) -> dict[str, str] | None:
        """Post the parent message; explain (e.g. not_in_channel) and start nothing if
        Slack refuses it."""
        first = blocks.starting_message(self.request)
        try:
            posted = await self.front.client.chat_postMessage(
                channel=self.where["channel"], text=first.text, blocks=first.blocks
            )
        except SlackApiError as exc:
            text = blocks.channel_error_text(blocks.error_code(exc))
            await self.respond(text=text, response_type="ephemeral")
            return None
        return {**self.where, "ts": str(posted["ts"])}

    def surface(self, place: dict[str, str]) -> SlackThread:
        return self.front._thread(place)

    async def withdraw(self, place: dict[str, str], error: CampaignError | None) -> None:
        """The parent message says why the campaign did not start."""
        if error is not None:
            await self.front.client.chat_update(
                channel=place["channel"], ts=place["ts"], text=blocks.problem_text(error)
            )


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
        async with socket_mode(front, front.settings.app_token or ""):
            log.warning("Slack front end connected in Socket Mode")
            yield
    else:
        async with serving_http(front, host, port, mount) as bound:
            log.warning("Slack front end listening on http://%s:%s%s", host, bound, EVENTS_PATH)
            yield
