"""The buttons: Cancel and Retry on a campaign's parent message, Reroll and Animate
under each product post.

Each press is acked at once and acted on from an owned task. A press carries
the campaign id (and the product number) and acts on the stored campaign, so
buttons keep working after a restart. The allowlists apply to buttons too; a
refusal or problem is told to the presser only, and a press missing the fields
it needs is logged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt.async_app import AsyncAck

from bot.slack_ui import blocks as blocks
from bot.slack_ui.commands import button_fields, product_fields
from bot.slack_ui.context import SlackContext
from bot.slack_ui.control import Control
from core.errors import CampaignError
from core.model import Action

log = logging.getLogger("campaign-bot.slack")


class Buttons:
    """The listeners of the four buttons and the work behind them."""

    def __init__(self, ctx: SlackContext, control: Control) -> None:
        self.ctx = ctx
        self.control = control

    async def on_cancel(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self.ctx.handlers.spawn(self.press("cancel", body))

    async def on_retry(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self.ctx.handlers.spawn(self.press("retry", body))

    async def on_reroll(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self.ctx.handlers.spawn(self.product_press(Action.REROLL, body))

    async def on_animate(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self.ctx.handlers.spawn(self.product_press(Action.ANIMATE, body))

    async def press(self, action: str, body: Mapping[str, Any]) -> None:
        """A Cancel or Retry button: act, or tell the presser (only them) why not."""
        fields = button_fields(body)
        if fields is None:
            log.warning("ignored a %s press without a usable user or channel", action)
            return
        user, channel, campaign_id = fields
        if not await self._may_use(user, channel):
            return
        if campaign_id is None:
            await self._tell(user, channel, blocks.MALFORMED)
            return
        try:
            await self.control.manage(action, campaign_id, user, channel)
        except CampaignError as exc:
            await self._tell(user, channel, blocks.problem_text(exc))

    async def product_press(self, action: Action, body: Mapping[str, Any]) -> None:
        """A Reroll or Animate button under a product post: act, or tell the presser why not.

        Everything it needs is in the press (campaign id and product number) and the store.
        """
        fields = product_fields(body)
        if fields is None:
            log.warning("ignored a %s press without a usable user or channel", action.value)
            return
        user, channel, target = fields
        if not await self._may_use(user, channel):
            return
        if target is None:
            await self._tell(user, channel, blocks.MALFORMED)
            return
        campaign_id, number = target
        try:
            await self.control.act(action, campaign_id, number, user, channel)
        except CampaignError as exc:
            await self._tell(user, channel, blocks.problem_text(exc))

    async def _may_use(self, user: str, channel: str) -> bool:
        """The allowlists apply to buttons too: tell anyone they keep out, and only them."""
        if self.ctx.settings.may_use(user, channel):
            return True
        await self._tell(user, channel, blocks.NOT_ENABLED)
        return False

    async def _tell(self, user: str, channel: str, text: str) -> None:
        await self.ctx.client.chat_postEphemeral(channel=channel, user=user, text=text)
