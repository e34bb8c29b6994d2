"""Reading a chat front end's settings from the environment: id lists and base URLs.

Slack and Discord take the same shapes (`SLACK_ADMINS`, `DISCORD_GUILD_IDS`,
`*_FILES_BASE_URL`, ...), so they read and check them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from core.errors import ConfigError


def id_list(env: Mapping[str, str], name: str) -> list[str]:
    """A comma- or space-separated list of ids."""
    return env.get(name, "").replace(",", " ").split()


def url_setting(
    env: Mapping[str, str], name: str, schemes: tuple[str, ...] = ("http", "https")
) -> str | None:
    """An absolute URL with one of these schemes, without its trailing slash; None when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.netloc:
        allowed = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"{name}={raw!r} is invalid: must be an absolute {allowed} URL")
    return raw.rstrip("/")
