"""How chat front ends' settings read their shared shapes: id lists and base URLs.

Slack and Discord take the same shapes (`SLACK_ADMINS`, `DISCORD_GUILD_IDS`,
`*_FILES_BASE_URL`, ...), so their sections parse them with these.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from core.setting_values import words


def ids(raw: str) -> frozenset[str]:
    """A comma- or space-separated list of ids."""
    return frozenset(words(raw))


def snowflakes(raw: str) -> tuple[int, ...]:
    """A comma- or space-separated list of numeric (Discord) ids."""
    found = words(raw)
    if not all(word.isdigit() for word in found):
        raise ValueError("must be numeric ids, comma-separated")
    return tuple(int(word) for word in found)


def url(schemes: tuple[str, ...] = ("http", "https")) -> Callable[[str], str]:
    """A parser of absolute URLs with one of these schemes, kept without a trailing slash."""

    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.netloc:
            allowed = " or ".join(f"{s}://" for s in schemes)
            raise ValueError(f"must be an absolute {allowed} URL")
        return raw.rstrip("/")

    return parse
