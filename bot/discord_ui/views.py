"""Persistent Cancel / Retry-failed buttons on a campaign's status message.

Each button is a `DynamicItem` whose custom_id carries the campaign id
(`campaign:cancel:<id>`, `campaign:retry:<id>`). The bot registers both
classes in `setup_hook`, so a press on a message sent before a restart still
reaches a handler; the handler works from the stored campaign alone.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import discord

from core.model import CampaignStatus

ID_PATTERN = r"(?P<id>[A-Za-z0-9_-]{1,64})"
CANCEL_ID, RETRY_ID = "campaign:cancel:{}", "campaign:retry:{}"

Button = discord.ui.Button[Any]


@runtime_checkable
class ButtonActions(Protocol):
    """What the buttons ask of the bot's `actions` (`actions.CampaignActions`)."""

    async def refusal(self, interaction: discord.Interaction[Any]) -> str | None:
        """Why this user may not use the bot here, or None."""
        ...

    async def cancel_campaign(
        self, interaction: discord.Interaction[Any], campaign_id: str
    ) -> None:
        """Cancel, answering the interaction."""
        ...

    async def retry_campaign(self, interaction: discord.Interaction[Any], campaign_id: str) -> None:
        """Retry failed steps, answering the interaction."""
        ...


def _actions(interaction: discord.Interaction[Any]) -> ButtonActions | None:
    actions = getattr(interaction.client, "actions", None)
    return actions if isinstance(actions, ButtonActions) else None


async def _gate(interaction: discord.Interaction[Any]) -> bool:
    """Refuse DMs, channels and roles outside the allowlists, ephemerally."""
    bot = _actions(interaction)
    if bot is None:
        return False
    reason = await bot.refusal(interaction)
    if reason is not None:
        await interaction.response.send_message(reason, ephemeral=True)
    return reason is None


class _CampaignButton(
    discord.ui.DynamicItem[Button], template=r"campaign:(?:cancel|retry):" + ID_PATTERN
):
    """A button carrying a campaign id; each subclass says how it looks and what it does."""

    LOOK: ClassVar[tuple[str, str, discord.ButtonStyle, str]]  # label, emoji, style, custom_id

    def __init__(self, campaign_id: str) -> None:
        label, emoji, style, custom_id = self.LOOK
        button: Button = discord.ui.Button(
            label=label, emoji=emoji, style=style, custom_id=custom_id.format(campaign_id)
        )
        super().__init__(button)
        self.campaign_id = campaign_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> Self:
        """Rebuild the button from a press on any message, old or new."""
        return cls(match["id"])

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        """The bot's gate (DMs, allowlists)."""
        return await _gate(interaction)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Act on the campaign this button carries."""
        actions = _actions(interaction)
        if actions is not None:
            await self.act(actions, interaction)

    async def act(self, actions: ButtonActions, interaction: discord.Interaction[Any]) -> None:
        """What a press does."""
        raise NotImplementedError


class CancelButton(_CampaignButton, template=r"campaign:cancel:" + ID_PATTERN):
    """Stops a running campaign."""

    LOOK = ("Cancel", "🚫", discord.ButtonStyle.danger, CANCEL_ID)

    async def act(self, actions: ButtonActions, interaction: discord.Interaction[Any]) -> None:
        """Cancel the campaign."""
        await actions.cancel_campaign(interaction, self.campaign_id)


class RetryButton(_CampaignButton, template=r"campaign:retry:" + ID_PATTERN):
    """Re-runs a finished campaign's failed, canceled or skipped steps."""

    LOOK = ("Retry failed", "🔁", discord.ButtonStyle.primary, RETRY_ID)

    async def act(self, actions: ButtonActions, interaction: discord.Interaction[Any]) -> None:
        """Retry the campaign's failed steps."""
        await actions.retry_campaign(interaction, self.campaign_id)


def status_view(campaign_id: str, status: CampaignStatus) -> discord.ui.View:
    """Cancel while it runs, Retry-failed after a partial/failed/canceled outcome, else none."""
    view = discord.ui.View(timeout=None)
    if not status.done:
        view.add_item(CancelButton(campaign_id))
    elif status is not CampaignStatus.SUCCEEDED:
        view.add_item(RetryButton(campaign_id))
    return view
