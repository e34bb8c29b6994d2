"""The `/campaign` app command group, a GroupCog: new, status, history, show, cancel,
retry, animate, help.

Commands only translate: options become a `CampaignRequest` (or an id) and
`actions.CampaignActions` or the service does the work. Read-only answers are ephemeral.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import words
from bot.chat.access import find_visible
from bot.chat.text import HISTORY_LIMIT, clip
from bot.discord_ui.actions import CampaignActions, requester_of, viewer_of
from bot.discord_ui.progress import Place
from bot.discord_ui.render import HELP_TEXT, history_embed, products_embed, status_embed
from bot.discord_ui.seams import bound_option
from core.errors import InvalidRequest
from core.progress import CampaignSnapshot
from core.request import (
    MAX_AUDIENCE_CHARS,
    MAX_PROMPT_CHARS,
    MAX_THEME_CHARS,
    CampaignRequest,
    Style,
    parse_request,
)

Interaction = discord.Interaction[Any]
MAX_REQUEST_CHARS = 1000
MAX_PRODUCT_NUMBER = 9999  # products and their attempts, as the buttons number them
ANIMATE_USAGE = (
    "❌ Give either `image` (a picture to animate) or `campaign` (with `product`, or alone for "
    "every product without a video), not both."
)
STYLE_CHOICES = [app_commands.Choice(name=s.value, value=s.value) for s in Style]


def to_request(
    *,
    theme: str | None,
    products: int | None,
    videos: bool | None,
    style: str | None,
    audience: str | None,
    request: str | None,
    max_products: int,
) -> CampaignRequest:
    """Typed options or the free-text `request` (not both) as a validated request."""
    typed = {"theme": theme, "products": products, "videos": videos, "style": style,
             "audience": audience}  # fmt: skip
    given = [name for name, value in typed.items() if value is not None]
    if request is not None:
        if given:
            raise InvalidRequest(
                "request",
                f"cannot be combined with {', '.join(given)}",
                "request alone, or typed options",
            )
        return parse_request(request, max_products=max_products)
    if theme is None:
        raise InvalidRequest("theme", "is missing", "a theme, or the whole request in `request`")
    return CampaignRequest.from_options(
        theme=theme, products=products, videos=videos, style=style, audience=audience,
        max_products=max_products,
    )  # fmt: skip


@app_commands.guild_only()
class CampaignCommands(
    commands.GroupCog, group_name="campaign", group_description="Generate marketing campaigns"
):
    """`/campaign`: each subcommand turns its options into one call of `CampaignActions`
    or the service (read-only answers are ephemeral)."""

    def __init__(self, actions: CampaignActions, max_products: int) -> None:
        self.actions = actions
        self.service = actions.service
        self.max_products = max_products
        # The maximum is a setting, so the one option bound by it is set per instance.
        bound_option(
            self.new, "products", max_value=max_products,
            description=f"how many products (1-{max_products})",
        )  # fmt: skip
        super().__init__()

    @app_commands.command(name="new", description="Start a campaign")
    @app_commands.describe(
        theme="what the campaign is about, e.g. retro cats",
        products="how many products",
        videos="also make a short video per product",
        style="visual style of the images",
        audience="who it is for, e.g. indie gamers",
        request="or everything in one line: retro cats 5 products with videos in neon style",
    )
    @app_commands.choices(style=STYLE_CHOICES)
    async def new(
        self,
        interaction: Interaction,
        theme: app_commands.Range[str, 1, MAX_THEME_CHARS] | None = None,
        products: app_commands.Range[int, 1] | None = None,
        videos: bool | None = None,
        style: str | None = None,
        audience: app_commands.Range[str, 1, MAX_AUDIENCE_CHARS] | None = None,
        request: app_commands.Range[str, 1, MAX_REQUEST_CHARS] | None = None,
    ) -> None:
        try:
            parsed = to_request(
                theme=theme, products=products, videos=videos, style=style, audience=audience,
                request=request, max_products=self.max_products,
            )  # fmt: skip
        except InvalidRequest as exc:  # nothing is stored or started
            await interaction.response.send_message(f"❌ {words.refusal(exc)}", ephemeral=True)
            return
        await self.actions.start_campaign(interaction, parsed)

    @app_commands.command(name="status", description="A campaign's progress (default: your latest)")
    @app_commands.describe(id="campaign id (default: your latest campaign)")
    async def status(self, interaction: Interaction, id: str | None = None) -> None:
        if id is None or not id.strip():  # as in Slack: your latest, wherever it runs
            mine = await self.service.history(1, requester=requester_of(interaction))
            if not mine:
                await interaction.response.send_message(
                    "You have no campaigns yet: start one with `/campaign new`.", ephemeral=True
                )
                return
            id = mine[0].id
        await self._show(interaction, id.strip(), full=False)

    @app_commands.command(name="history", description="Your recent campaigns")
    async def history(self, interaction: Interaction) -> None:
        mine = await self.service.history(HISTORY_LIMIT, requester=requester_of(interaction))
        embed = history_embed(mine, "Your recent campaigns")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="show", description="One campaign in full")
    @app_commands.describe(id="campaign id")
    async def show(self, interaction: Interaction, id: str) -> None:
        await self._show(interaction, id.strip(), full=True)

    @app_commands.command(name="cancel", description="Stop a running campaign")
    @app_commands.describe(id="campaign id")
    async def cancel(self, interaction: Interaction, id: str) -> None:
        await self.actions.cancel_campaign(interaction, id.strip())

    @app_commands.command(name="retry", description="Re-run a campaign's failed or canceled steps")
    @app_commands.describe(id="campaign id")
    async def retry(self, interaction: Interaction, id: str) -> None:
        await self.actions.retry_campaign(interaction, id.strip())

    @app_commands.command(
        name="animate", description="Turn a picture, or a campaign's products, into videos"
    )
    @app_commands.describe(
        image="a PNG, JPEG or WebP picture to animate (a new one-product campaign)",
        campaign="or the id of a finished campaign of yours",
        product="its product number (default: every product without a video)",
        prompt="how it should move, e.g. slow zoom in, steam rising",
    )
    async def animate(
        self,
        interaction: Interaction,
        image: discord.Attachment | None = None,
        campaign: str | None = None,
        product: app_commands.Range[int, 1, MAX_PRODUCT_NUMBER] | None = None,
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS] | None = None,
    ) -> None:
        if (image is None) == (campaign is None) or (image is not None and product is not None):
            await interaction.response.send_message(ANIMATE_USAGE, ephemeral=True)
        elif image is not None:
            await self.actions.animate_upload(interaction, image, prompt)
        elif campaign is not None:
            await self.actions.animate_campaign(interaction, campaign.strip(), product, prompt)

    @app_commands.command(name="help", description="How to use the campaign bot")
    async def help_(self, interaction: Interaction) -> None:
        await interaction.response.send_message(HELP_TEXT, ephemeral=True)

    @status.autocomplete("id")
    @show.autocomplete("id")
    @cancel.autocomplete("id")
    @retry.autocomplete("id")
    @animate.autocomplete("campaign")
    async def campaign_ids(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """The user's recent campaigns whose id starts with what is typed."""
        mine = await self.service.history(25, requester=requester_of(interaction))
        return [
            app_commands.Choice(
                name=clip(f"{c.id} · {c.request.theme} · {c.status.value}", 100), value=c.id
            )
            for c in mine
            if c.id.startswith(current.strip())
        ]

    async def _show(self, interaction: Interaction, id: str, *, full: bool) -> None:
        """One campaign's status embed (and its thread), if this user may see it here;
        `full` (`show`): every product with its files or error too."""
        campaign = await find_visible(self.service, viewer_of(interaction), id)
        if campaign is None:
            await interaction.response.send_message(
                f"❌ There is no campaign `{clip(id, 64)}` here.", ephemeral=True
            )
            return
        embed = status_embed(CampaignSnapshot.of(campaign), campaign.executor)
        place = Place.of(campaign.origin)
        if place is not None:
            embed.add_field(name="Thread", value=place.thread_url, inline=False)
        embeds = [embed, products_embed(campaign)] if full else [embed]
        await interaction.response.send_message(embeds=embeds, ephemeral=True)
