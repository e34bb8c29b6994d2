"""The Discord front end: a commands.AutoShardedBot that runs campaigns from `/campaign`.

    /campaign new  -> validate (ephemeral error, nothing stored) -> defer at once
                   -> status message (bot token, in the channel) -> thread on it
                   -> service.submit(..., [follower]) -> reply with the thread link

The work behind commands and buttons is `actions.CampaignActions`; progress,
product posts and the summary go through `DiscordTarget` by id, so they
outlive the 15-minute interaction token. Cancel/Retry (on the status message) and
Reroll/Animate (on each product post) are DynamicItems registered in `setup_hook`
that work from the stored campaign. The followers are closed in `close()`.

The bot is sharded: it runs DISCORD_SHARD_IDS of DISCORD_SHARD_COUNT shards
(unset: every shard of Discord's recommended count) in this process, so several
processes with the same token can split the servers (docs/discord.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import words
from bot.chat.replays import ReplayGuard
from bot.chat.serve import serve_until_signal
from bot.discord_ui.actions import CampaignActions, answer
from bot.discord_ui.commands import CampaignCommands
from bot.discord_ui.render import explain
from bot.discord_ui.seams import guard_parsers, recommended_shard_count
from bot.discord_ui.settings import DiscordSettings
from bot.discord_ui.views import AnimateButton, CancelButton, RerollButton, RetryButton
from bot.gallery import GallerySettings
from bot.signals import StopSignals
from core.errors import CampaignError, ConfigError
from core.model import Campaign
from core.ports import ProgressSink
from core.service import CampaignService

log = logging.getLogger(__name__)


class CampaignTree(app_commands.CommandTree[Any]):
    """The command tree: one gate for every command, one error handler."""

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        """Refuse DMs and anything outside the allowlists, ephemerally."""
        bot = interaction.client
        assert isinstance(bot, CampaignBot)
        reason = await bot.actions.refusal(interaction)
        if reason and interaction.type is discord.InteractionType.application_command:
            await interaction.response.send_message(reason, ephemeral=True)
        return reason is None

    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        """Turn any error into a short ephemeral answer; unexpected ones are logged."""
        original = getattr(error, "original", error)
        if isinstance(original, CampaignError | ConfigError):  # e.g. a model's price is gone
            text = f"❌ {words.refusal(original)}"
        elif isinstance(original, discord.HTTPException):
            text = f"❌ {explain(original)}"
        elif isinstance(
            original, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch
        ):
            text = "❌ I don't know that command (an outdated client?). Try `/campaign help`."
        else:
            log.error("command %s failed", interaction.command, exc_info=original)
            text = "❌ Something went wrong on my side (it is logged). Please try again."
        if not interaction.client.is_closed():  # shutting down: nobody to answer through
            await answer(interaction, text)


class CampaignBot(commands.AutoShardedBot):
    """`python bot.py discord`: slash commands, threads and buttons on one CampaignService,
    over the shards the settings give this process."""

    def __init__(
        self,
        service: CampaignService,
        settings: DiscordSettings,
        *,
        max_products: int,
        progress_interval_s: float,
        gallery: GallerySettings | None = None,
        sync_commands: bool = False,
        replays: ReplayGuard | None = None,
        **options: Any,
    ) -> None:
        self.sync_commands = sync_commands  # `bot.py discord --sync`: upload the commands first
        intents = discord.Intents.none()
        intents.guilds = True  # channels, roles and threads; no privileged intents needed
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=CampaignTree,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),  # themes may say @everyone
            **_shards(settings),
            **options,
        )
        self._unguard_parsers = guard_parsers(self)  # see seams.py
        self.service = service
        self.settings = settings
        self.max_products = max_products
        self.actions = CampaignActions(
            self,
            service,
            settings,
            progress_interval_s=progress_interval_s,
            gallery=gallery,
            replays=replays,  # an interaction delivered to two processes runs once
        )

    async def setup_hook(self) -> None:
        """Register the persistent buttons and the command group; sync only when asked to.

        Runs after login, before the shards connect (so the shard count may be asked for).
        """
        if self.shard_count is None and self.settings.gateway_url:
            # discord.py would connect to the URL /gateway/bot names, not DISCORD_GATEWAY_URL
            self.shard_count = await recommended_shard_count(self)
        self.add_dynamic_items(CancelButton, RetryButton, RerollButton, AnimateButton)
        await self.add_cog(CampaignCommands(self.actions, self.max_products))
        if self.sync_commands:
            await self._sync()
        self.service.start_resuming(self.sinks_for_stored, accept=self.owns)

    async def _sync(self) -> None:
        """Upload the command group: to DISCORD_GUILD_IDS (at once), else globally.

        Syncing is rate-limited and slow, and only needed when the commands
        change, so it runs on request (`bot.py discord --sync`), not on every start.
        """
        if self.settings.guild_ids:  # development: guild commands appear at once
            for guild_id in self.settings.guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
            log.warning("commands synced to %d server(s)", len(self.settings.guild_ids))
        else:
            await self.tree.sync()
            log.warning("commands synced globally (they may take up to an hour to appear)")

    @staticmethod
    def owns(campaign: Campaign) -> bool:
        """Whether this bot resumes the campaign: only Discord's own, never Slack's."""
        return campaign.platform == "discord"

    def sinks_for_stored(self, campaign: Campaign) -> list[ProgressSink]:
        """Progress of a resumed campaign goes back to its stored status message and thread."""
        return self.actions.sinks_for_stored(campaign)

    async def close(self) -> None:
        """Stop following campaigns (they keep running in the service), then disconnect."""
        await self.actions.followers.aclose()
        await super().close()
        self._unguard_parsers()


def _shards(settings: DiscordSettings) -> dict[str, Any]:
    """AutoShardedBot's shard options: no count = Discord's recommended one; no ids = all."""
    options: dict[str, Any] = {"shard_count": settings.shard_count}
    if settings.shard_ids:
        options["shard_ids"] = list(settings.shard_ids)
    return options


async def serve_until_stopped(
    bot: CampaignBot, token: str, *, stop: StopSignals | None = None
) -> None:
    """Run the bot until SIGINT or SIGTERM (or until it fails), and always close it.

    Stopping refuses new commands and button presses while `bot.chat.serve`
    hands the campaigns over; then the followers and the connection close.
    """
    runner: asyncio.Task[None] | None = None

    async def serve(stopping: asyncio.Event) -> None:
        nonlocal runner
        runner = asyncio.create_task(bot.start(token))
        stopped = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait([runner, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            bot.actions.stopping = True

    async def close() -> None:
        await bot.close()
        if runner is not None:
            await asyncio.wait([runner])  # start() returns once the bot is closed

    async with bot:
        await serve_until_signal(serve, bot.service, close, stop=stop)
    assert runner is not None
    if isinstance(runner.exception(), discord.LoginFailure):
        raise ConfigError("Discord rejected DISCORD_TOKEN (reset it in the Developer Portal)")
    runner.result()  # re-raise anything else that stopped the bot
