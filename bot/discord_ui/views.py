"""Persistent buttons: Cancel / Retry-failed on a campaign's status message, and
Reroll / Animate on every product post in its thread.

Each button is a `DynamicItem` whose custom_id carries the campaign id
(`campaign:cancel:<id>`, `campaign:retry:<id>`) and, for a product's buttons,
the product number as people see it (`campaign:reroll:<id>:<n>`,
`campaign:animate:<id>:<n>`). The bot registers every class in `setup_hook`,
so a press on a message sent before a restart still reaches a handler; the
handler works from the stored campaign alone (a rebuilt button keeps the
label, with its estimate, that the message shows).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import discord

from bot.chat.text import ACTION_EMOJI, action_label
from core.model import Action, CampaignStatus, Product, StepName
from core.service import Estimate

ID_PATTERN = r"(?P<id>[A-Za-z0-9_-]{1,64})"
NUMBER_PATTERN = r"(?P<n>[1-9][0-9]{0,3})"
CANCEL_ID, RETRY_ID = "campaign:cancel:{}", "campaign:retry:{}"
REROLL_ID, ANIMATE_ID = "campaign:reroll:{}:{}", "campaign:animate:{}:{}"
UPLOAD_MODEL = "upload"  # the image step of an uploaded picture (nothing to reroll)

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

    async def product_action(
        self, interaction: discord.Interaction[Any], action: Action, campaign_id: str, number: int
    ) -> None:
        """Reroll or animate product `number`, answering the interaction."""
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
    if reason:  # "": another process took this press and answers it
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


class _ProductButton(
    discord.ui.DynamicItem[Button],
    template=r"campaign:(?:reroll|animate):" + ID_PATTERN + ":" + NUMBER_PATTERN,
):
    """A button carrying a campaign id and a product number; subclasses say which action."""

    ACTION: ClassVar[Action]
    CUSTOM_ID: ClassVar[str]

    def __init__(self, campaign_id: str, number: int, label: str | None = None) -> None:
        button: Button = discord.ui.Button(
            label=label or action_label(self.ACTION),
            emoji=ACTION_EMOJI[self.ACTION],
            style=discord.ButtonStyle.secondary,
            custom_id=self.CUSTOM_ID.format(campaign_id, number),
        )
        super().__init__(button)
        self.campaign_id = campaign_id
        self.number = number

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> Self:
        """Rebuild the button from a press on any message, keeping the label it shows."""
        label = getattr(item, "label", None)
        return cls(match["id"], int(match["n"]), label if isinstance(label, str) else None)

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        """The bot's gate (DMs, allowlists)."""
        return await _gate(interaction)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Run the action on the product this button carries."""
        actions = _actions(interaction)
        if actions is not None:
            await actions.product_action(interaction, self.ACTION, self.campaign_id, self.number)


class RerollButton(
    _ProductButton, template=r"campaign:reroll:" + ID_PATTERN + ":" + NUMBER_PATTERN
):
    """A new image for the product (same plan, new seed), as a new attempt."""

    ACTION = Action.REROLL
    CUSTOM_ID = REROLL_ID


class AnimateButton(
    _ProductButton, template=r"campaign:animate:" + ID_PATTERN + ":" + NUMBER_PATTERN
):
    """A (new) video of the product's image, as a new attempt."""

    ACTION = Action.ANIMATE
    CUSTOM_ID = ANIMATE_ID


def product_view(
    campaign_id: str, product: Product, estimates: dict[Action, Estimate] | None = None
) -> discord.ui.View:
    """Reroll (unless the image was uploaded) and Animate (once it has an image), with
    what each costs and takes in the label."""
    estimates = estimates or {}
    number = product.plan.index + 1
    image = product.step(StepName.IMAGE)
    view = discord.ui.View(timeout=None)
    if image is None or image.model != UPLOAD_MODEL:
        label = action_label(Action.REROLL, estimates.get(Action.REROLL))
        view.add_item(RerollButton(campaign_id, number, label))
    if product.output(StepName.IMAGE) is not None:
        label = action_label(Action.ANIMATE, estimates.get(Action.ANIMATE))
        view.add_item(AnimateButton(campaign_id, number, label))
    return view


def status_view(campaign_id: str, status: CampaignStatus) -> discord.ui.View:
    """Cancel while it runs, Retry-failed after a partial/failed/canceled outcome, else none."""
    view = discord.ui.View(timeout=None)
    if not status.done:
        view.add_item(CancelButton(campaign_id))
    elif status is not CampaignStatus.SUCCEEDED:
        view.add_item(RetryButton(campaign_id))
    return view
