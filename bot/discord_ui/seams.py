"""Where the bot reaches into discord.py beyond its public API, and why, in one place.

- `endpoints()`: discord.py keeps its REST base (`Route.BASE`) and gateway URL
  (`DiscordWebSocket.DEFAULT_GATEWAY`) process-wide, with no option to change
  them. DISCORD_API_BASE_URL / DISCORD_GATEWAY_URL (a proxy, or the fake server
  of the tests) set them for the life of the front end, and they are restored
  on exit, so nothing else in the process keeps talking to the wrong host.
- `guard_parsers()`: discord.py parses gateway events straight in its receive
  loop, so one payload missing a field it requires (a member's `flags`,
  `attachment_size_limit`) raises out of `bot.start()` and ends the process.
  Every parser but READY is wrapped to log and skip such a payload.
- `bound_option()`: discord.py fixes an option's bounds when the command is
  defined (from its `Range` annotation), but the most products a campaign may
  have is a setting; each `CampaignCommands` sets that one bound (and the
  description naming it) on its own copy of the command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

log = logging.getLogger(__name__)


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


def bound_option(
    command: app_commands.Command[Any, ..., Any], name: str, *, max_value: int, description: str
) -> None:
    """Give option `name` of this command (a cog's own copy) a maximum and a description.

    The copy shares its parameters with the class's command, so the parameter is
    replaced, not changed: other instances keep their own bound.
    """
    params = command._params
    params[name] = dataclasses.replace(params[name], max_value=max_value, description=description)
