"""Cancel, retry, reroll and animate a stored campaign, for `/campaign` and the buttons.

Only the requester or an admin may (`bot.chat.access`); anyone else gets
`blocks.Refused`. Retry, Reroll and Animate follow the campaign into its
stored thread again (a new parent message if it has none on Slack); the text
returned confirms what started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from bot.chat.access import may_control
from bot.slack_ui import blocks as blocks
from bot.slack_ui.context import SlackContext
from core.actions import pick, require_finished
from core.errors import InvalidRequest
from core.model import Action, Campaign
from core.ports import ProgressSink

FOLLOWED = "progress is in its thread."
Start = Callable[[Sequence[ProgressSink]], Awaitable[Campaign]]  # runs it with these sinks


class Control:
    """What a command or a button does to one stored campaign."""

    def __init__(self, ctx: SlackContext) -> None:
        self.ctx = ctx
        self.service = ctx.service

    async def manage(self, action: str, campaign_id: str, user: str, channel: str) -> str:
        """Cancel or retry for the requester or an admin; raise blocks.Refused for anyone else."""
        campaign = await self.service.get(campaign_id)
        if not may_control(self.ctx.viewer(user, channel), campaign):
            raise blocks.Refused(blocks.refusal_text(action, campaign))
        if action == "cancel":
            campaign = await self.service.cancel(campaign_id)
            await self.ctx.followers.show_stored(campaign, self.ctx.surface_of)  # after a restart
            return f"🚫 Campaign {campaign.id} is {campaign.status.value}."
        surface = await self.ctx.stored_surface(campaign, channel)
        await self.ctx.followers.retry(campaign.id, surface)
        return f"🔁 Retrying the failed steps of campaign {campaign.id}; {FOLLOWED}"

    async def act(
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
        viewer = self.ctx.viewer(user, channel)
        if not may_control(viewer, campaign):
            raise blocks.Refused(blocks.refusal_text(action.value, campaign))
        who = viewer.requester  # whose daily cost cap the action counts against
        require_finished(campaign, action.value)  # said before its live follower refuses
        if number is not None:  # refused before a status message may be posted for it
            pick(campaign, number)
        if action is Action.REROLL:
            return await self._reroll(campaign, number, channel, who)
        return await self._animate(campaign, number, channel, who, prompt)

    async def _reroll(self, campaign: Campaign, number: int | None, channel: str, who: str) -> str:
        if number is None:
            raise InvalidRequest("product", "is missing", "a product number")

        async def run(sinks: Sequence[ProgressSink]) -> Campaign:
            return await self.service.reroll(campaign.id, number, sinks, requester=who)

        await self._follow_again(campaign, channel, run)
        return f"🎲 Rerolling product {number} of campaign {campaign.id}; {FOLLOWED}"

    async def _animate(
        self, campaign: Campaign, number: int | None, channel: str, who: str, prompt: str | None
    ) -> str:
        async def run(sinks: Sequence[ProgressSink]) -> Campaign:
            return await self.service.animate(campaign.id, number, prompt, sinks, requester=who)

        await self._follow_again(campaign, channel, run)
        what = f"🎬 Animating product {number}" if number else "🎬 Animating every product"
        what += " that has no video yet" if number is None else ""
        return f"{what} of campaign {campaign.id}; {FOLLOWED}"

    async def _follow_again(self, campaign: Campaign, channel: str, run: Start) -> None:
        """Run a finished campaign again (`run(sinks)`) into its stored thread."""
        surface = await self.ctx.stored_surface(campaign, channel)
        await self.ctx.followers.start(surface, run, campaign.id)
