"""The Discord front end: a commands.Bot that runs campaigns from `/campaign`.

    /campaign new  -> validate (ephemeral error, nothing stored) -> defer at once
                   -> status message (bot token, in the channel) -> thread on it
                   -> service.submit(..., [ChatProgress]) -> reply with the thread link

Progress, product posts and the summary go through `DiscordTarget` by id, so
they outlive the 15-minute interaction token. Cancel/Retry buttons are
DynamicItems registered in `setup_hook` and work from the stored campaign.
Every task and follower this bot starts is owned and stopped in `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.progress import ChatProgress, estimate_text
from bot.discord_ui.commands import build_group
from bot.discord_ui.progress import DiscordTarget, Place, delete_quietly, remove_place
from bot.discord_ui.render import clip, explain, starting_embed
from bot.discord_ui.settings import DiscordSettings
from bot.discord_ui.views import CancelButton, RetryButton
from bot.gallery import GallerySettings
from bot.signals import StopSignals
from core.errors import CampaignError, CampaignNotFound, ConfigError
from core.model import Campaign, CampaignStatus
from core.ports import ProgressSink
from core.progress import CampaignSnapshot, ProgressEvent
from core.request import CampaignRequest
from core.service import CampaignService

log = logging.getLogger(__name__)

DM_REFUSAL = (
    "Sorry, campaigns run in servers, not in direct messages: "
    "use `/campaign` in a server channel where I'm installed."
)
THREAD_ARCHIVE_MINUTES: Literal[10080] = 10080  # a week: long campaigns keep their thread open
RESTARTING = "I'm restarting right now: please try again in a few seconds."


class _Relay:
    """The sink the service holds; cut when the bot closes so no post outlives it."""

    def __init__(self, follower: ChatProgress) -> None:
        self.follower: ChatProgress | None = follower

    async def publish(self, event: ProgressEvent) -> None:
        """Forward to the follower while the bot is open."""
        if self.follower is not None:
            await self.follower.publish(event)


class CampaignTree(app_commands.CommandTree[Any]):
    """The command tree: one gate for every command, one error handler."""

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        """Refuse DMs and anything outside the allowlists, ephemerally."""
        bot = interaction.client
        assert isinstance(bot, CampaignBot)
        reason = await bot.refusal(interaction)
        if reason is not None and interaction.type is discord.InteractionType.application_command:
            await interaction.response.send_message(reason, ephemeral=True)
        return reason is None

    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        """Turn any error into a short ephemeral answer; unexpected ones are logged."""
        original = getattr(error, "original", error)
        if isinstance(original, CampaignError):
            text = f"❌ {original}"
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


async def answer(interaction: discord.Interaction[Any], text: str) -> None:
    """Reply ephemerally whether or not the interaction was already answered or deferred."""
    try:
        if interaction.response.is_done():
            await interaction.edit_original_response(content=clip(text, 2000))
        else:
            await interaction.response.send_message(clip(text, 2000), ephemeral=True)
    except discord.HTTPException as exc:  # e.g. the interaction token expired
        log.warning("could not answer interaction %s: %s", interaction.id, explain(exc))


class CampaignBot(commands.Bot):
    """`python bot.py discord`: slash commands, threads and buttons on one CampaignService."""

    def __init__(
        self,
        service: CampaignService,
        settings: DiscordSettings,
        *,
        max_products: int,
        progress_interval_s: float,
        gallery: GallerySettings | None = None,
        sync_commands: bool = False,
        **options: Any,
    ) -> None:
        self.sync_commands = sync_commands  # `bot.py discord --sync`: upload the commands first
        self.gallery = gallery  # signed gallery links in summaries and for too-big files
        intents = discord.Intents.none()
        intents.guilds = True  # channels, roles and threads; no privileged intents needed
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=CampaignTree,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),  # themes may say @everyone
            **options,
        )
        guard_parsers(self._connection.parsers)
        self.service = service
        self.settings = settings
        self.max_products = max_products
        self.progress_interval_s = progress_interval_s
        self._relays: dict[str, tuple[_Relay, ChatProgress]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopping = False  # set on SIGINT/SIGTERM: new commands and presses are refused

    async def setup_hook(self) -> None:
        """Register the persistent buttons and the command group; sync only when asked to."""
        self.add_dynamic_items(CancelButton, RetryButton)
        self.tree.add_command(build_group(self, self.max_products))
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
        place = Place.of(campaign.origin)
        if place is None or campaign.id in self._relays:
            return []
        relay = self._follow(place)
        self._own(campaign.id, relay)
        return [relay]

    async def close(self) -> None:
        """Stop following campaigns (they keep running in the service), then disconnect."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        followers = [follower for _, follower in self._relays.values()]
        for relay, _ in self._relays.values():
            relay.follower = None
        self._relays.clear()
        await asyncio.gather(*(f.aclose() for f in followers), return_exceptions=True)
        await super().close()

    # -- checks ---------------------------------------------------------------

    async def refusal(self, interaction: discord.Interaction[Any]) -> str | None:
        """Why this interaction may not use the bot here (DM, channel, role), or None."""
        if self.stopping:
            return RESTARTING
        if interaction.guild_id is None:
            return DM_REFUSAL
        allowed = self.settings.allowed_channel_ids
        channel_ids = {interaction.channel_id, getattr(interaction.channel, "parent_id", None)}
        if allowed and not channel_ids & allowed:
            where = ", ".join(f"<#{c}>" for c in sorted(allowed))
            return f"Campaigns are not enabled in this channel. Try {where}."
        roles = self.settings.allowed_role_ids
        if roles and not interaction.permissions.manage_guild and not _has_role(interaction, roles):
            names = ", ".join(f"<@&{r}>" for r in sorted(roles))
            return f"You need one of these roles to run campaigns: {names}."
        return None

    @staticmethod
    def may_control(interaction: discord.Interaction[Any], campaign: Campaign) -> bool:
        """The requester, or a member with Manage Server in the campaign's own server."""
        if campaign.requester == requester_of(interaction):
            return True
        same_guild = campaign.origin.get("guild") == str(interaction.guild_id)
        return same_guild and interaction.permissions.manage_guild

    # -- actions ----------------------------------------------------------------

    async def start_campaign(
        self, interaction: discord.Interaction[Any], request: CampaignRequest
    ) -> None:
        """Defer, open the status message and thread, submit, and reply with the link."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        estimate = estimate_text(self.service.estimate(request))
        where = {
            "platform": "discord",
            "guild": str(interaction.guild_id),
            "channel": str(interaction.channel_id),
        }  # a refusal (blocklist, quota) is answered before any message or thread exists
        await self.service.check(request, requester=requester_of(interaction), origin=where)
        try:
            place = await self._open_place(interaction, request.theme, estimate)
        except discord.HTTPException as exc:
            await answer(interaction, f"❌ I couldn't start the campaign: {explain(exc)}")
            return
        if place is None:
            await answer(interaction, "❌ I can only run campaigns in text channels and threads.")
            return
        relay = self._follow(place)
        try:
            campaign = await self.service.submit(
                request, [relay], requester=requester_of(interaction), origin=place.origin()
            )
        except Exception:  # nothing started: leave no "starting" message or empty thread behind
            await remove_place(self, place)
            raise
        self._own(campaign.id, relay)
        started = f"✅ Campaign `{campaign.id}` started: {place.thread_url}\n{estimate}."
        await answer(interaction, started)

    async def cancel_campaign(
        self, interaction: discord.Interaction[Any], campaign_id: str
    ) -> None:
        """Cancel a campaign for its requester or a manager; answers the interaction."""
        campaign = await self._controllable(interaction, campaign_id)
        if campaign is None:
            return
        if campaign.status.done:
            await answer(
                interaction, f"Campaign `{campaign.id}` is already {campaign.status.value}."
            )
            await self._show_stored(campaign)  # a status message from before a restart may lag
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            campaign = await self.service.cancel(campaign_id)
        except CampaignError as exc:
            await answer(interaction, f"❌ {exc}")
            return
        await self._show_stored(campaign)
        await answer(interaction, f"🚫 Campaign `{campaign.id}` {campaign.status.value}.")

    async def retry_campaign(self, interaction: discord.Interaction[Any], campaign_id: str) -> None:
        """Re-run failed steps, following them in the stored status message and thread."""
        campaign = await self._controllable(interaction, campaign_id)
        if campaign is None:
            return
        if not campaign.status.done or campaign.status is CampaignStatus.SUCCEEDED:
            await answer(
                interaction,
                f"Campaign `{campaign.id}` is {campaign.status.value}: nothing to retry.",
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        place = Place.of(campaign.origin)
        if place is None:  # not started on Discord: follow it here
            place = await self._open_place(interaction, campaign.request.theme)
        if place is None:
            await answer(interaction, "❌ I can only show campaigns in text channels and threads.")
            return
        relay = self._follow(replace(place, file_limit=interaction.filesize_limit))
        try:
            campaign = await self.service.retry(campaign_id, [relay])
        except CampaignError as exc:
            await answer(interaction, f"❌ {exc}")
            return
        self._own(campaign.id, relay)
        await answer(interaction, f"🔁 Retrying campaign `{campaign.id}`: {place.thread_url}")

    # -- helpers ----------------------------------------------------------------

    async def _controllable(
        self, interaction: discord.Interaction[Any], campaign_id: str
    ) -> Campaign | None:
        """The campaign if this user may cancel or retry it; otherwise answer and return None."""
        try:
            campaign = await self.service.get(campaign_id)
        except CampaignNotFound:
            await answer(interaction, f"❌ There is no campaign `{clip(campaign_id, 64)}`.")
            return None
        if not self.may_control(interaction, campaign):
            who = (campaign.requester or "").removeprefix("discord:")
            owner = f"<@{who}>" if who.isdigit() else "its requester"
            await answer(interaction, f"Only {owner} or members with Manage Server can do that.")
            return None
        return campaign

    async def _open_place(
        self, interaction: discord.Interaction[Any], theme: str, estimate: str | None = None
    ) -> Place | None:
        """Send the status message (with the estimate) with the bot token; open a thread on it."""
        channel = interaction.channel
        if interaction.guild_id is None or not isinstance(channel, discord.abc.Messageable):
            return None
        message = await channel.send(embed=starting_embed(theme, estimate))
        thread_id = channel.id
        if not isinstance(channel, discord.Thread):  # inside a thread, use that thread
            try:
                thread = await message.create_thread(
                    name=clip(f"Campaign: {theme}", 100),
                    auto_archive_duration=THREAD_ARCHIVE_MINUTES,
                )
            except discord.HTTPException:
                await delete_quietly(message)
                raise
            thread_id = thread.id
        return Place(interaction.guild_id, message.channel.id, message.id, thread_id,
                     interaction.filesize_limit)  # fmt: skip

    def _target(self, place: Place) -> DiscordTarget:
        return DiscordTarget(
            self,
            place,
            executor=self.service.describe_executor(),
            files_base_url=self.settings.files_base_url,
            gallery=self.gallery,
        )

    def _follow(self, place: Place) -> _Relay:
        """A ChatProgress for this place behind a relay the bot can cut."""
        target = self._target(place)
        return _Relay(
            ChatProgress(
                self.service,
                render_status=target.render_status,
                post_product=target.post_product,
                post_summary=target.post_summary,
                min_interval_s=self.progress_interval_s,
            )
        )

    def _own(self, campaign_id: str, relay: _Relay) -> None:
        """Keep the follower until its campaign is finished and posted."""
        assert relay.follower is not None
        self._relays[campaign_id] = (relay, relay.follower)
        task = asyncio.create_task(self._forget_when_done(campaign_id, relay.follower))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forget_when_done(self, campaign_id: str, follower: ChatProgress) -> None:
        await follower.done.wait()
        if self._relays.get(campaign_id, (None, None))[1] is follower:
            del self._relays[campaign_id]

    async def _show_stored(self, campaign: Campaign) -> None:
        """Render the stored state on the status message when no follower here does."""
        place = Place.of(campaign.origin)
        if place is None or campaign.id in self._relays:
            return
        await self._target(place).render_status(CampaignSnapshot.of(campaign))


async def serve_until_stopped(
    bot: CampaignBot, token: str, *, stop: StopSignals | None = None
) -> None:
    """Run the bot until SIGINT or SIGTERM (or until it fails), and always close it.

    Stopping refuses new commands and button presses, hands the campaigns
    running here over to the next process (nothing is cancelled at the
    provider), then closes the followers and the connection. A second signal
    exits at once (`stop`, installed here unless the caller has one).
    """
    with contextlib.ExitStack() as stack:
        signals = stop if stop is not None else stack.enter_context(StopSignals())
        async with bot:
            runner = asyncio.create_task(bot.start(token))
            stopper = asyncio.create_task(signals.wait())
            try:
                await asyncio.wait([runner, stopper], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                bot.stopping = True
                if signals.requested:
                    log.warning("stopping: handing running campaigns over to the next process")
                await bot.service.aclose(hand_over=True)
                await bot.close()
                await asyncio.wait([runner])  # start() returns once the bot is closed
    if isinstance(runner.exception(), discord.LoginFailure):
        raise ConfigError("Discord rejected DISCORD_TOKEN (reset it in the Developer Portal)")
    runner.result()  # re-raise anything else that stopped the bot


def guard_parsers(parsers: dict[str, Callable[[Any], None]]) -> None:
    """Make every gateway event parser but READY log and skip a payload it cannot parse.

    discord.py calls these straight from the gateway loop (`DiscordWebSocket.
    received_message`), so one odd INTERACTION_CREATE (a missing member `flags`
    or `attachment_size_limit`) would otherwise end `bot.start()` and the bot.
    READY stays unguarded: without it the session is unusable anyway.
    """
    for event, parse in list(parsers.items()):
        if event != "READY" and not getattr(parse, "guarded", False):
            parsers[event] = _guarded(event, parse)


def _guarded(event: str, parse: Callable[[Any], None]) -> Callable[[Any], None]:
    def guarded(data: Any) -> None:
        try:
            parse(data)
        except Exception:
            ident = data.get("id") if isinstance(data, dict) else None
            log.exception("skipped a %s payload discord.py could not parse (id %s)", event, ident)

    guarded.guarded = True  # type: ignore[attr-defined]
    return guarded


def requester_of(interaction: discord.Interaction[Any]) -> str:
    """The stored requester id of whoever sent this interaction."""
    return f"discord:{interaction.user.id}"


def _has_role(interaction: discord.Interaction[Any], role_ids: frozenset[int]) -> bool:
    member = interaction.user
    return isinstance(member, discord.Member) and any(member.get_role(r) for r in role_ids)
