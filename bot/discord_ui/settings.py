"""Discord front-end settings, a section of the settings (the seams into discord.py
that some of them set are in seams.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import SecretStr

from bot.chat.config import snowflakes, url
from core.errors import ConfigError
from core.settings import Env, Section


class DiscordSettings(Section):
    """Everything the Discord front end reads from the settings."""

    token: Annotated[SecretStr | None, Env("DISCORD_TOKEN")] = None
    # Sync commands to these guilds at once (development).
    guild_ids: Annotated[tuple[int, ...], Env("DISCORD_GUILD_IDS", snowflakes)] = ()
    # Replace https://discord.com/api/v10 and wss://gateway.discord.gg/.
    api_base_url: Annotated[str | None, Env("DISCORD_API_BASE_URL", url())] = None
    gateway_url: Annotated[str | None, Env("DISCORD_GATEWAY_URL", url(("ws", "wss")))] = None
    # Empty: every channel; every member.
    allowed_channel_ids: Annotated[
        frozenset[int], Env("DISCORD_ALLOWED_CHANNEL_IDS", lambda raw: frozenset(snowflakes(raw)))
    ] = frozenset()
    allowed_role_ids: Annotated[
        frozenset[int], Env("DISCORD_ALLOWED_ROLE_IDS", lambda raw: frozenset(snowflakes(raw)))
    ] = frozenset()
    # Public URL of the data folder, for too-big files.
    files_base_url: Annotated[str | None, Env("DISCORD_FILES_BASE_URL", url())] = None

    def bot_token(self) -> str:
        """The bot token's text, for discord.py's login; a ConfigError when it is not set."""
        if self.token is None:
            raise ConfigError("DISCORD_TOKEN is not set (the bot token from the Developer Portal)")
        return self.token.get_secret_value()
