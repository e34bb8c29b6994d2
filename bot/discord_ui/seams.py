"""Where the bot reaches into discord.py beyond its public API, and why, in one place.

Nothing else in `bot/discord_ui` touches a private attribute or an undocumented
part of discord.py; each seam puts back what it changed when its owner is done.

- `endpoints()`: discord.py keeps its REST base (`Route.BASE`) and gateway URL
  (`DiscordWebSocket.DEFAULT_GATEWAY`) process-wide, with no option to change
  them. DISCORD_API_BASE_URL / DISCORD_GATEWAY_URL (a proxy, or the fake server
  of the tests) set them for the life of the front end, and they are restored
  on exit, so nothing else in the process keeps talking to the wrong host.
- `guard_parsers()`: discord.py parses gateway events straight in its receive
  loop (`client._connection.parsers`), so one payload missing a field it
  requires (a member's `flags`, `attachment_size_limit`) raises out of
  `bot.start()` and ends the process. Every parser but READY is wrapped to log
  and skip such a payload; the returned function puts the originals back (the
  bot calls it when it closes).
- `bound_option()`: discord.py fixes an option's bounds when the command is
  defined (from its `Range` annotation), but the most products a campaign may
  have is a setting; each `CampaignCommands` sets that one bound (and the
  description naming it) on its own copy of the command (`Command._params`).
- `recommended_shard_count()`: with no shard count, discord.py asks
  `GET /gateway/bot` for Discord's recommended one and then connects to the
  gateway URL that answer names, ignoring `DEFAULT_GATEWAY`. When
  DISCORD_GATEWAY_URL is set, the bot asks for the count itself
  (`Client.http.get_bot_gateway`) before connecting, so discord.py uses the
  set URL; the settings never change the count discord.py would pick.
- `delete_channel()`: the public API deletes a thread only through a fetched
  `Thread`; a campaign that did not start removes the thread it just opened by
  id (`Client.http`), without another request to fetch it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

log = logging.getLogger(__name__)

Parser = Callable[[Any], None]


@contextlib.contextmanager
def endpoints(api_base_url: str | None, gateway_url: str | None) -> Iterator[None]:
    """Use these REST/gateway URLs (None = Discord's own) until the block ends."""
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    if api_base_url:
        Route.BASE = api_base_url.rstrip("/")
    if gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


def guard_parsers(client: discord.Client) -> Callable[[], None]:
    """Make every gateway event parser of `client` but READY log and skip a payload it
    cannot parse; returns the function that puts the original parsers back.

    discord.py calls these straight from the gateway loop (`DiscordWebSocket.
    received_message`), so one odd INTERACTION_CREATE (a missing member `flags`
    or `attachment_size_limit`) would otherwise end `bot.start()` and the bot.
    READY stays unguarded: without it the session is unusable anyway.
    """
    parsers: dict[str, Parser] = client._connection.parsers
    originals = {event: parse for event, parse in parsers.items() if event != "READY"}
    for event, parse in originals.items():
        parsers[event] = _guarded(event, parse)

    def restore() -> None:
        parsers.update(originals)

    return restore


def _guarded(event: str, parse: Parser) -> Parser:
    def guarded(data: Any) -> None:
        try:
            parse(data)
        except Exception:
            ident = data.get("id") if isinstance(data, dict) else None
            log.exception("skipped a %s payload discord.py could not parse (id %s)", event, ident)

    return guarded


def bound_option(
    command: app_commands.Command[Any, ..., Any], name: str, *, max_value: int, description: str
) -> None:
    """Give option `name` of this command (a cog's own copy) a maximum and a description.

    The copy shares its parameters with the class's command, so the parameter is
    replaced, not changed: other instances keep their own bound.
    """
    params = command._params
    params[name] = dataclasses.replace(params[name], max_value=max_value, description=description)


async def recommended_shard_count(client: discord.Client) -> int:
    """Discord's recommended number of shards for this bot (`GET /gateway/bot`; logged in)."""
    count, _url, _limits = await client.http.get_bot_gateway()
    return count


async def delete_channel(client: discord.Client, channel_id: int, *, reason: str) -> None:
    """Delete a channel or thread by id (raises discord.HTTPException)."""
    await client.http.delete_channel(channel_id, reason=reason)
