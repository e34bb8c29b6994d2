"""Persistent Cancel / Retry-failed buttons on a campaign's status message.

Each button is a `DynamicItem` whose custom_id carries the campaign id
(`campaign:cancel:<id>`, `campaign:retry:<id>`). The bot registers both
classes in `setup_hook`, so a press on a message sent before a restart still
reaches a handler; the handler works from the stored campaign alone.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, runtime_checkable

import discord

from core.model import CampaignStatus

ID_PATTERN = r"(?P<id>[A-Za-z0-9_-]{1,64})"
CANCEL_ID, RETRY_ID = "campaign:cancel:{}", "campaign:retry:{}"

Button = discord.ui.Button[Any]


@runtime_checkable
class CampaignActions(Protocol):
    """What the buttons ask of the bot (CampaignBot implements it)."""

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


def _actions(interaction: discord.Interaction[Any]) -> CampaignActions | None:
    bot = interaction.client
    return bot if isinstance(bot, CampaignActions) else None


async def _gate(interaction: discord.Interaction[Any]) -> bool:
    """Refuse DMs, channels and roles outside the allowlists, ephemerally."""
    bot = _actions(interaction)
    if bot is None:
        return False
    reason = await bot.refusal(interaction)
    if reason is not None:
        await interaction.response.send_message(reason, ephemeral=True)
    return reason is None


class CancelButton(discord.ui.DynamicItem[Button], template=r"campaign:cancel:" + ID_PATTERN):
    """Stops a running campaign."""

    def __init__(self, campaign_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                emoji="🚫",
                style=discord.ButtonStyle.danger,
                custom_id=CANCEL_ID.format(campaign_id),
            )
        )
        self.campaign_id = campaign_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> CancelButton:
        """Rebuild the button from a press on any message, old or new."""
        return cls(match["id"])

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        """The bot's gate (DMs, allowlists)."""
        return await _gate(interaction)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Cancel the campaign this button carries."""
        bot = _actions(interaction)
        if bot is not None:
            await bot.cancel_campaign(interaction, self.campaign_id)


class RetryButton(discord.ui.DynamicItem[Button], template=r"campaign:retry:" + ID_PATTERN):
    """Re-runs a finished campaign's failed, canceled or skipped steps."""

    def __init__(self, campaign_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Retry failed",
                emoji="🔁",
                style=discord.ButtonStyle.primary,
                custom_id=RETRY_ID.format(campaign_id),
            )
        )
        self.campaign_id = campaign_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RetryButton:
        """Rebuild the button from a press on any message, old or new."""
        return cls(match["id"])

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        """The bot's gate (DMs, allowlists)."""
        return await _gate(interaction)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Retry the campaign this button carries."""
        bot = _actions(interaction)
        if bot is not None:
            await bot.retry_campaign(interaction, self.campaign_id)


def status_view(campaign_id: str, status: CampaignStatus) -> discord.ui.View:
    """Cancel while it runs, Retry-failed after a partial/failed/canceled outcome, else none."""
    view = discord.ui.View(timeout=None)
    if not status.done:
        view.add_item(CancelButton(campaign_id))
    elif status is not CampaignStatus.SUCCEEDED:
        view.add_item(RetryButton(campaign_id))
    return view
