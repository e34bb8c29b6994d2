"""`/campaign <text>`: which subcommand the text asks for.

    new <request>     the default: text that starts with no subcommand is a request
    status [id]       progress of one campaign (default: your latest)
    history           your recent campaigns
    show <id>         one campaign in full
    cancel <id>       stop a running campaign
    retry <id>        re-run a finished campaign's failed steps
    help              this list

A theme that happens to start with a subcommand word ("history of jazz") is
refused with a hint to say `new` explicitly rather than guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import InvalidRequest

NO_ARG = ("history", "help")
OPTIONAL_ID = ("status",)
NEEDS_ID = ("show", "cancel", "retry")
SUBCOMMANDS = ("new", *OPTIONAL_ID, *NO_ARG, *NEEDS_ID)
_ID_RE = re.compile(r"[0-9a-f]{4,32}")


@dataclass(frozen=True)
class Command:
    """A parsed `/campaign` text: the subcommand and what follows it."""

    name: str
    arg: str = ""


def parse_command(text: str) -> Command:
    """Split `/campaign` text into a subcommand and its argument; raise InvalidRequest."""
    text = text.strip()
    if not text:
        return Command("help")
    head, _, rest = text.partition(" ")
    name, rest = head.lower(), rest.strip()
    if name not in SUBCOMMANDS:
        return Command("new", text)
    if name == "new":
        return Command("new", rest)
    if name in NO_ARG and rest:
        raise _mistake(name, "takes no arguments", "nothing", text)
    if name in NEEDS_ID + OPTIONAL_ID and rest and not _ID_RE.fullmatch(rest.lower()):
        raise _mistake(
            name, f"{_clip(rest)!r} is not a campaign id", "an id such as 3f9a1c2e", text
        )
    if name in NEEDS_ID and not rest:
        raise InvalidRequest(name, "needs a campaign id", "an id such as 3f9a1c2e")
    return Command(name, rest.lower())


def _mistake(name: str, problem: str, allowed: str, text: str) -> InvalidRequest:
    """An error that also shows how to start a campaign with this text as its theme."""
    return InvalidRequest(name, problem, allowed, f"`/campaign new {_clip(text)}`")


def _clip(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
