"""Fixtures and helpers for the Discord tests: the fake server with discord.py pointed at
it, and a factory of real CampaignBots connected to it.

Test modules register the fixtures by importing `fake_server` and `bot_starter`
(their fixture names are `fake` and `start_bot`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.discord_ui.app import CampaignBot
from bot.discord_ui.seams import endpoints
from bot.discord_ui.settings import DiscordSettings
from core.model import Campaign
from core.service import CampaignService
from tests.fakes.discord_api import Call, FakeDiscord

TOKEN = "test-bot-token-not-a-secret"
MAX_PRODUCTS = 5
EPHEMERAL = 64

StartBot = Callable[..., Awaitable[CampaignBot]]


@pytest.fixture(name="fake")
async def fake_server() -> AsyncIterator[FakeDiscord]:
    """The fake Discord, with discord.py's REST base and gateway pointed at it (then restored)."""
    server = FakeDiscord()
    await server.start()
    with endpoints(server.api_url, server.gateway_url):
        yield server
    await server.aclose()


@pytest.fixture(name="start_bot")
async def bot_starter(fake: FakeDiscord) -> AsyncIterator[StartBot]:
    """Factory: a CampaignBot logged in and connected to the fake; all closed at the end."""
    running: list[tuple[CampaignBot, asyncio.Task[None]]] = []

    async def start(
        service: CampaignService,
        *,
        sync: bool = True,
        progress_interval_s: float = 0.05,
        replays: Any = None,
        **settings: Any,
    ) -> CampaignBot:
        config = DiscordSettings(token=TOKEN, guild_ids=(int(fake.guild_id),), **settings)
        bot = CampaignBot(
            service,
            config,
            max_products=MAX_PRODUCTS,
            progress_interval_s=progress_interval_s,
            guild_ready_timeout=0.05,
            sync_commands=sync,
            replays=replays,
        )
        task = asyncio.create_task(bot.start(TOKEN))
        running.append((bot, task))
        ready = asyncio.create_task(bot.wait_until_ready())
        await asyncio.wait([task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        assert bot.is_ready(), task.exception() if task.done() else "bot not ready in 30 s"
        return bot

    yield start
    for bot, task in running:
        await bot.close()
        await task


async def stop(bot: CampaignBot) -> None:
    await bot.close()


def status_path(fake: FakeDiscord) -> str:
    return rf"/channels/{fake.channel_id}/messages/\d+"


def thread_posts(fake: FakeDiscord, thread_id: str) -> list[Call]:
    return fake.find("POST", rf"/channels/{thread_id}/messages", status=200)


def at_least(fake: FakeDiscord, thread_id: str, count: int) -> list[Call] | None:
    """The thread's posts once there are `count` of them."""
    posts = thread_posts(fake, thread_id)
    return posts if len(posts) >= count else None


def callback(fake: FakeDiscord, payload: dict[str, Any]) -> list[Call]:
    return fake.find("POST", rf"/interactions/{payload['id']}/[^/]+/callback", status=200)


def original_edits(fake: FakeDiscord, payload: dict[str, Any]) -> list[Call]:
    return fake.find("PATCH", rf"/webhooks/\d+/{payload['token']}/messages/@original")


def title(call: Call) -> str:
    return str(call.json["embeds"][0]["title"])


def caption(call: Call) -> str:
    """A product post's caption: its embed's description."""
    return str(call.json["embeds"][0]["description"])


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


async def started(fake: FakeDiscord, service: CampaignService) -> Campaign:
    """The one campaign, once the bot has replied that it started (or tried to)."""
    await fake.wait_for(lambda: fake.find("PATCH", r"/webhooks/\d+/[^/]+/messages/@original"))
    return await only_campaign(service)


async def only_campaign(service: CampaignService) -> Campaign:
    campaigns = list(await service.history(5))
    assert len(campaigns) == 1
    return campaigns[0]
