"""Discord front-end settings, read once from the environment (the seams into discord.py
that some of them set are in seams.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.chat.config import id_list, url_setting
from core.errors import ConfigError


@dataclass(frozen=True)
class DiscordSettings:
    """Everything the Discord front end reads from the environment."""

    token: str = field(repr=False)
    guild_ids: tuple[int, ...] = ()  # sync commands to these guilds at once (development)
    api_base_url: str | None = None  # replaces https://discord.com/api/v10
    gateway_url: str | None = None  # replaces wss://gateway.discord.gg/
    allowed_channel_ids: frozenset[int] = frozenset()  # empty = every channel
    allowed_role_ids: frozenset[int] = frozenset()  # empty = every member
    files_base_url: str | None = None  # public URL of the data folder, for too-big files

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DiscordSettings:
        """Settings from DISCORD_* variables (see docs/configuration.md); raises ConfigError."""
        env = os.environ if env is None else env
        token = env.get("DISCORD_TOKEN", "").strip()
        if not token:
            raise ConfigError("DISCORD_TOKEN is not set (the bot token from the Developer Portal)")
        return cls(
            token=token,
            guild_ids=tuple(_ids(env, "DISCORD_GUILD_IDS")),
            api_base_url=url_setting(env, "DISCORD_API_BASE_URL"),
            gateway_url=url_setting(env, "DISCORD_GATEWAY_URL", ("ws", "wss")),
            allowed_channel_ids=frozenset(_ids(env, "DISCORD_ALLOWED_CHANNEL_IDS")),
            allowed_role_ids=frozenset(_ids(env, "DISCORD_ALLOWED_ROLE_IDS")),
            files_base_url=url_setting(env, "DISCORD_FILES_BASE_URL"),
        )


def _ids(env: Mapping[str, str], name: str) -> list[int]:
    """A comma- or space-separated list of snowflakes."""
    raw = id_list(env, name)
    if not all(word.isdigit() for word in raw):
        raise ConfigError(
            f"{name}={' '.join(raw)!r} is invalid: must be numeric ids, comma-separated"
        )
    return [int(word) for word in raw]
