"""`/campaign`: ack at once, then start a campaign in a new parent message or answer
through response_url.

`new` (or a bare request) is checked, gets its parent message in the channel
and is submitted (`bot.chat.start`); status, history, show, cancel, retry and
animate are answered ephemerally. A command missing the fields it needs gets
an ephemeral error, never an exception.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.chat.access import find_visible
from bot.chat.start import start_in_new_place
from bot.chat.text import HISTORY_LIMIT
from bot.slack_ui import blocks as blocks
from bot.slack_ui.commands import Command, command_fields, parse_command
from bot.slack_ui.context import SlackContext
from bot.slack_ui.control import Control
from bot.slack_ui.thread import SlackThread
from core.errors import CampaignError, CampaignStateError, InvalidRequest
from core.model import Action, Campaign, SlackOrigin
from core.ports import ProgressSink
from core.request import CampaignRequest, parse_request

log = logging.getLogger("campaign-bot.slack")


class SlashCommand:
    """The `/campaign` listener and the work behind it."""

    def __init__(self, ctx: SlackContext, control: Control) -> None:
        self.ctx = ctx
        self.service = ctx.service
        self.control = control

    async def on_command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Ack with the answer, or at once and follow up from an owned task."""
        fields = command_fields(command)
        if fields is None:
            log.warning("ignored a /campaign command without a usable user, channel or text")
            await ack(response_type="ephemeral", text=blocks.MALFORMED)
            return
        user, channel, text = fields
        if not self.ctx.settings.may_use(user, channel):
            await ack(response_type="ephemeral", text=blocks.NOT_ENABLED)
            return
        try:
            cmd = parse_command(text)
            request = (
                parse_request(cmd.arg, max_products=self.ctx.max_products)
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
            team = str(command.get("team_id") or "")
            self.ctx.handlers.spawn(self.start(request, user, channel, respond, team))
        else:
            await ack()  # the answer needs the database: it follows through response_url
            self.ctx.handlers.spawn(self.reply(cmd, user, channel, respond))

    async def start(
        self,
        request: CampaignRequest,
        user: str,
        channel: str,
        respond: AsyncRespond,
        team: str = "",
    ) -> None:
        """Check the spend guard, post the parent message, then submit the campaign."""
        where = SlackOrigin(channel=channel, team=team or None)
        requester = f"slack:{user}"

        async def submit(origin: SlackOrigin, sinks: Sequence[ProgressSink]) -> Campaign:
            return await self.service.submit(request, sinks, requester=requester, origin=origin)

        check = functools.partial(self.service.check, request, requester=requester, origin=where)
        parent = NewParent(self.ctx, request, where, respond)
        await start_in_new_place(self.ctx.followers, parent, submit, check=check)

    async def reply(self, cmd: Command, user: str, channel: str, respond: AsyncRespond) -> None:
        """Answer status/history/show/cancel/retry/animate ephemerally through response_url."""
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
            return blocks.stored_message(campaign, executor, self.ctx.sheets.get(campaign.id))
        if cmd.name == "show":
            campaign = await self._visible(cmd.arg, user, channel)
            return blocks.Message(blocks.show_text(campaign), [])
        if cmd.name == "animate":
            text = await self.control.act(
                Action.ANIMATE, cmd.arg, cmd.number, user, channel, cmd.prompt
            )
            return blocks.Message(text, [])
        return blocks.Message(await self.control.manage(cmd.name, cmd.arg, user, channel), [])

    async def _latest(self, user: str) -> Campaign:
        mine = await self.service.history(1, requester=f"slack:{user}")
        if not mine:
            raise CampaignStateError("you have no campaigns yet")
        return mine[0]

    async def _visible(self, campaign_id: str, user: str, channel: str) -> Campaign:
        """The campaign if this user may see it here (`bot.chat.access`), else the same
        refusal for an unknown id and someone else's campaign."""
        campaign = await find_visible(self.service, self.ctx.viewer(user, channel), campaign_id)
        if campaign is None:
            raise blocks.Refused(blocks.not_found_text(campaign_id))
        return campaign


class NewParent:
    """A new campaign's parent message in a channel (`bot.chat.start`): refusals go to
    the user ephemerally, a refusal after posting is written over the parent."""

    def __init__(
        self,
        ctx: SlackContext,
        request: CampaignRequest,
        where: SlackOrigin,
        respond: AsyncRespond,
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.where = where
        self.respond = respond

    async def refused(self, error: CampaignError) -> None:
        """A refusal (blocklist, quota) stays between the bot and the user."""
        await self.respond(text=blocks.problem_text(error), response_type="ephemeral")

    async def open(self) -> SlackOrigin | None:
        """Post the parent message; explain (e.g. not_in_channel) and start nothing if
        Slack refuses it."""
        first = blocks.starting_message(self.request)
        try:
            posted = await self.ctx.client.chat_postMessage(
                channel=self.where.channel or "", text=first.text, blocks=first.blocks
            )
        except SlackApiError as exc:
            text = blocks.channel_error_text(blocks.error_code(exc))
            await self.respond(text=text, response_type="ephemeral")
            return None
        return replace(self.where, ts=str(posted["ts"]))

    def surface(self, place: SlackOrigin) -> SlackThread:
        return self.ctx.thread(place)

    async def withdraw(self, place: SlackOrigin, error: CampaignError | None) -> None:
        """The parent message says why the campaign did not start."""
        if error is not None:
            await self.ctx.client.chat_update(
                channel=place.channel or "", ts=place.ts or "", text=blocks.problem_text(error)
            )
