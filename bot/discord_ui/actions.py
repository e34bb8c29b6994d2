"""What Discord's commands and buttons do: start, cancel, retry, reroll and animate
campaigns, and the gate every interaction passes first.

Commands (`commands.py`) and buttons (`views.py`) only translate an
interaction into one of these calls; who may do what is `bot.chat.access`,
and the campaigns' followers are `bot.chat.followers`. Nothing here imports
the bot itself, so the bot, its commands and its buttons form no cycle.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Literal

import discord

from bot import words
from bot.chat.access import Allowlist, Viewer, blocked_by, may_control
from bot.chat.followers import Followers
from bot.chat.replays import RecentKeys, ReplayGuard
from bot.chat.start import start_in_new_place
from bot.chat.text import ACTION_EMOJI, clip, estimate_text
from bot.discord_ui.progress import DiscordTarget, Place, delete_quietly, remove_place
from bot.discord_ui.render import explain, starting_embed
from bot.discord_ui.settings import DiscordSettings
from bot.gallery import GallerySettings
from core import uploads
from core.actions import require_finished
from core.errors import CampaignError, CampaignNotFound, CampaignStateError, InvalidRequest
from core.model import Action, Campaign, CampaignStatus, DiscordOrigin
from core.ports import ProgressSink
from core.request import CampaignRequest
from core.service import CampaignService

log = logging.getLogger(__name__)
TAKEN = ""  # a refusal that says nothing: another process answers this interaction
REPLAY_KEEP_S = 15 * 60  # an interaction's token lives 15 minutes: no delivery comes later

Interaction = discord.Interaction[Any]
DM_REFUSAL = (
    "Sorry, campaigns run in servers, not in direct messages: "
    "use `/campaign` in a server channel where I'm installed."
)
RESTARTING = "I'm restarting right now: please try again in a few seconds."
THREAD_ARCHIVE_MINUTES: Literal[10080] = 10080  # a week: long campaigns keep their thread open
Run = Callable[[Sequence[ProgressSink]], Awaitable[Campaign]]  # a service call given the sinks


class CampaignActions:
    """Start, cancel and retry on one service, with followers in status messages and threads."""

    def __init__(
        self,
        client: discord.Client,
        service: CampaignService,
        settings: DiscordSettings,
        *,
        progress_interval_s: float,
        gallery: GallerySettings | None = None,
        replays: ReplayGuard | None = None,  # the store's, shared by every process
    ) -> None:
        self.client = client
        self.replays = replays or RecentKeys()
        self.service = service
        self.settings = settings
        self.gallery = gallery  # signed gallery links in summaries and for too-big files
        self.followers = Followers(service, min_interval_s=progress_interval_s)
        self.stopping = False  # set on SIGINT/SIGTERM: new commands and presses are refused
        self._allow = Allowlist(
            channels=frozenset(str(c) for c in settings.allowed_channel_ids),
            members=frozenset(str(r) for r in settings.allowed_role_ids),
        )

    async def refusal(self, interaction: Interaction) -> str | None:
        """Why this interaction may not use the bot here (DM, channel, role), or None; ""
        (nothing to say) when another process took it already (one delivered to two)."""
        if not await self.replays.first_time([f"discord:{interaction.id}"], REPLAY_KEEP_S):
            return TAKEN
        if self.stopping:
            return RESTARTING
        if interaction.guild_id is None:
            return DM_REFUSAL
        blocked = blocked_by(viewer_of(interaction), self._allow)
        if blocked == "channel":
            where = ", ".join(f"<#{c}>" for c in sorted(self.settings.allowed_channel_ids))
            return f"Campaigns are not enabled in this channel. Try {where}."
        if blocked == "member":
            names = ", ".join(f"<@&{r}>" for r in sorted(self.settings.allowed_role_ids))
            return f"You need one of these roles to run campaigns: {names}."
        return None

    async def start_campaign(self, interaction: Interaction, request: CampaignRequest) -> None:
        """Defer, open the status message and thread, submit, and reply with the link."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        estimate = estimate_text(self.service.estimate(request))
        where = DiscordOrigin(
            guild=str(interaction.guild_id), channel=str(interaction.channel_id)
        )  # a refusal (blocklist, quota) is answered before any message or thread exists
        requester = requester_of(interaction)
        check = functools.partial(self.service.check, request, requester=requester, origin=where)

        async def submit(place: Place, sinks: Sequence[ProgressSink]) -> Campaign:
            return await self.service.submit(
                request, sinks, requester=requester, origin=place.origin()
            )

        new = NewThread(self, interaction, request.theme, estimate)
        started = await start_in_new_place(self.followers, new, submit, check=check)
        if started is not None:
            campaign, place = started
            await answer(
                interaction, f"✅ Campaign `{campaign.id}` started: {place.thread_url}\n{estimate}."
            )

    async def cancel_campaign(self, interaction: Interaction, campaign_id: str) -> None:
        """Cancel a campaign for its requester or a manager; answers the interaction."""
        campaign = await self._controllable(interaction, campaign_id)
        if campaign is None:
            return
        if campaign.status.done:
            await answer(
                interaction, f"Campaign `{campaign.id}` is already {campaign.status.value}."
            )
            await self.followers.show_stored(campaign, self.surface_of)  # may lag a restart
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            campaign = await self.service.cancel(campaign_id)
        except CampaignError as exc:
            await answer(interaction, f"❌ {words.refusal(exc)}")
            return
        await self.followers.show_stored(campaign, self.surface_of)
        await answer(interaction, f"🚫 Campaign `{campaign.id}` {campaign.status.value}.")

    async def retry_campaign(self, interaction: Interaction, campaign_id: str) -> None:
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

        async def run(sinks: Sequence[ProgressSink]) -> Campaign:
            return await self.service.retry(campaign_id, sinks)

        await self._run_again(interaction, campaign, run, f"🔁 Retrying campaign `{campaign.id}`")

    async def product_action(
        self, interaction: Interaction, action: Action, campaign_id: str, number: int
    ) -> None:
        """A product post's Reroll or Animate: a new attempt of product `number`, followed
        into the campaign's thread (only the new attempt is posted there)."""
        who = requester_of(interaction)  # whose daily cost cap the action counts against

        async def run(sinks: Sequence[ProgressSink]) -> Campaign:
            if action is Action.REROLL:
                return await self.service.reroll(campaign_id, number, sinks, requester=who)
            return await self.service.animate(campaign_id, number, None, sinks, requester=who)

        verb = "Rerolling" if action is Action.REROLL else "Animating"
        text = f"{ACTION_EMOJI[action]} {verb} product {number} of campaign `{campaign_id}`"
        await self._act(interaction, campaign_id, action.value, run, text)

    async def animate_campaign(
        self, interaction: Interaction, campaign_id: str, number: int | None, prompt: str | None
    ) -> None:
        """`/campaign animate campaign:<id> [product] [prompt]`: a new video of one product,
        or of every current product without one, followed into the campaign's thread."""
        who = requester_of(interaction)

        async def run(sinks: Sequence[ProgressSink]) -> Campaign:
            return await self.service.animate(campaign_id, number, prompt, sinks, requester=who)

        what = "every product without a video" if number is None else f"product {number}"
        text = f"{ACTION_EMOJI[Action.ANIMATE]} Animating {what} of campaign `{campaign_id}`"
        await self._act(interaction, campaign_id, Action.ANIMATE.value, run, text)

    async def animate_upload(
        self, interaction: Interaction, image: discord.Attachment, prompt: str | None
    ) -> None:
        """`/campaign animate image:<file> [prompt]`: a new one-product campaign that animates
        the picture, followed like `/campaign new` (status message and thread)."""
        problem = upload_problem(image)
        if problem is not None:  # refused before anything is downloaded or stored
            await answer(interaction, f"❌ {problem}")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            data = await image.read()
        except discord.HTTPException as exc:
            await answer(interaction, f"❌ I couldn't download {clip(image.filename, 100)}: "
                         f"{explain(exc)}")  # fmt: skip
            return
        requester = requester_of(interaction)

        async def run(place: Place, sinks: Sequence[ProgressSink]) -> Campaign:
            return await self.service.animate_image(
                data, image.filename, prompt, sinks, requester=requester, origin=place.origin()
            )

        new = NewThread(self, interaction, f"animate {image.filename}")
        started = await start_in_new_place(self.followers, new, run)
        if started is None:
            return
        campaign, place = started
        link = f"✅ Campaign `{campaign.id}` started: {place.thread_url}"
        estimate = await self._animate_estimate(campaign)
        await answer(interaction, f"{link}\n{estimate}." if estimate else link)

    async def _animate_estimate(self, campaign: Campaign) -> str | None:
        try:
            estimates = await self.service.action_estimate(campaign, 1)
        except CampaignError:
            return None
        return estimate_text(estimates[Action.ANIMATE])

    async def _act(
        self, interaction: Interaction, campaign_id: str, verb: str, run: Run, text: str
    ) -> None:
        """A new attempt on a finished campaign (permissions first), followed into its thread."""
        campaign = await self._controllable(interaction, campaign_id)
        if campaign is None:
            return
        try:
            require_finished(campaign, verb)  # as the service says it, before a follower refuses
        except CampaignStateError as exc:
            await answer(interaction, f"❌ {words.refusal(exc)}")
            return
        await self._run_again(interaction, campaign, run, text)

    async def _run_again(
        self, interaction: Interaction, campaign: Campaign, run: Run, text: str
    ) -> None:
        """Defer, then run the campaign again followed in its stored status message and
        thread (a new one here if it was not started on Discord); answer with the link."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        place = Place.of(campaign.origin)
        opened = place is None
        if place is None:  # not started on Discord: follow it here
            place = await self._open_place(interaction, campaign.request.theme)
        if place is None:
            await answer(interaction, "❌ I can only show campaigns in text channels and threads.")
            return
        target = self._target(replace(place, file_limit=interaction.filesize_limit))
        try:
            await self.followers.start(target, run, campaign.id)
        except CampaignError as exc:
            if opened:
                await remove_place(self.client, place)
            await answer(interaction, f"❌ {words.refusal(exc)}")
            return
        await answer(interaction, f"{text}: {place.thread_url}")

    def sinks_for_stored(self, campaign: Campaign) -> list[ProgressSink]:
        """Progress of a resumed campaign goes back to its stored status message and thread."""
        return self.followers.sinks_for_stored(campaign, self.surface_of)

    def surface_of(self, campaign: Campaign) -> DiscordTarget | None:
        """The campaign's stored status message and thread, if it was started on Discord."""
        place = Place.of(campaign.origin)
        return None if place is None else self._target(place)

    async def _controllable(self, interaction: Interaction, campaign_id: str) -> Campaign | None:
        """The campaign if this user may cancel or retry it; otherwise answer and return None."""
        try:
            campaign = await self.service.get(campaign_id)
        except CampaignNotFound:
            await answer(interaction, f"❌ There is no campaign `{clip(campaign_id, 64)}`.")
            return None
        if not may_control(viewer_of(interaction), campaign):
            who = (campaign.requester or "").removeprefix("discord:")
            owner = f"<@{who}>" if who.isdigit() else "its requester"
            await answer(interaction, f"Only {owner} or members with Manage Server can do that.")
            return None
        return campaign

    async def _open_place(
        self, interaction: Interaction, theme: str, estimate: str | None = None
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
            self.client,
            place,
            executor=self.service.describe_executor(),
            files_base_url=self.settings.files_base_url,
            gallery=self.gallery,
            estimates=self.service.action_estimate,
        )


class NewThread:
    """A new campaign's status message and thread (`bot.chat.start`), answered through
    the interaction; a refused start deletes both."""

    def __init__(
        self,
        actions: CampaignActions,
        interaction: Interaction,
        title: str,
        estimate: str | None = None,
    ) -> None:
        self.actions = actions
        self.interaction = interaction
        self.title = title
        self.estimate = estimate

    async def refused(self, error: CampaignError) -> None:
        await answer(self.interaction, f"❌ {words.refusal(error)}")

    async def open(self) -> Place | None:
        """The status message and its thread; None (answered) when there is nowhere to post."""
        try:
            place = await self.actions._open_place(self.interaction, self.title, self.estimate)
        except discord.HTTPException as exc:
            await answer(self.interaction, f"❌ I couldn't start the campaign: {explain(exc)}")
            return None
        if place is None:
            text = "❌ I can only run campaigns in text channels and threads."
            await answer(self.interaction, text)
        return place

    def surface(self, place: Place) -> DiscordTarget:
        return self.actions._target(place)

    async def withdraw(self, place: Place, error: CampaignError | None) -> None:
        """Nothing started: leave no "starting" message or empty thread behind."""
        await remove_place(self.actions.client, place)
        if error is not None:
            await answer(self.interaction, f"❌ {words.refusal(error)}")


async def answer(interaction: Interaction, text: str) -> None:
    """Reply ephemerally whether or not the interaction was already answered or deferred."""
    try:
        if interaction.response.is_done():
            await interaction.edit_original_response(content=clip(text, 2000))
        else:
            await interaction.response.send_message(clip(text, 2000), ephemeral=True)
    except discord.HTTPException as exc:  # e.g. the interaction token expired
        log.warning("could not answer interaction %s: %s", interaction.id, explain(exc))


def upload_problem(image: discord.Attachment) -> str | None:
    """Why an attachment cannot be animated, when its size or type already says so."""
    try:
        uploads.check_size(image.size)
        uploads.check_media_type(image.content_type)
    except InvalidRequest as exc:
        return words.refusal(exc)
    return None


def requester_of(interaction: Interaction) -> str:
    """The stored requester id of whoever sent this interaction."""
    return f"discord:{interaction.user.id}"


def viewer_of(interaction: Interaction) -> Viewer:
    """Who sent this interaction, from which server and channel, for `bot.chat.access`."""
    parent = getattr(interaction.channel, "parent_id", None)  # a thread's channel counts too
    member = interaction.user
    roles = member.roles if isinstance(member, discord.Member) else []
    return Viewer(
        requester=requester_of(interaction),
        here={"platform": "discord", "guild": str(interaction.guild_id)},
        manager=interaction.permissions.manage_guild,
        channels=frozenset(str(c) for c in (interaction.channel_id, parent) if c is not None),
        groups=frozenset(str(role.id) for role in roles),
    )
