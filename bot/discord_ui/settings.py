"""Discord front-end settings, a section of the settings (the seams into discord.py
that some of them set are in seams.py)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import SecretStr, model_validator

from bot.chat.config import snowflakes, url
from core.errors import ConfigError
from core.setting_values import positive_int, words
from core.settings import Env, Section


def shard_numbers(raw: str) -> tuple[int, ...]:
    """DISCORD_SHARD_IDS: shard ids (0, 1, ...), comma- or space-separated, never JSON."""
    found = words(raw)
    if not found or not all(word.isdigit() for word in found):
        raise ValueError("must be shard ids (whole numbers from 0), comma or space separated")
    return tuple(int(word) for word in found)


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
    # Sharding (docs/discord.md): the total number of shards of every process, and the
    # ones this process runs. Unset: Discord's recommended count, every shard here.
    shard_count: Annotated[int | None, Env("DISCORD_SHARD_COUNT", positive_int)] = None
    shard_ids: Annotated[tuple[int, ...] | None, Env("DISCORD_SHARD_IDS", shard_numbers)] = None

    @model_validator(mode="after")
    def _shards_fit(self) -> Self:
        """Refuse a count below 1, ids without a count, and ids outside 0..count-1."""
        count, ids = self.shard_count, self.shard_ids
        if count is not None and count < 1:
            raise ConfigError(
                f"DISCORD_SHARD_COUNT={str(count)!r} is invalid:"
                " must be a whole number of at least 1"
            )
        if ids is None:
            return self
        problem = _shard_ids_problem(ids, count)
        if problem:
            raw = ",".join(str(i) for i in ids)
            raise ConfigError(f"DISCORD_SHARD_IDS={raw!r} is invalid: {problem}")
        return self

    def bot_token(self) -> str:
        """The bot token's text, for discord.py's login; a ConfigError when it is not set."""
        if self.token is None:
            raise ConfigError("DISCORD_TOKEN is not set (the bot token from the Developer Portal)")
        return self.token.get_secret_value()


def _shard_ids_problem(ids: tuple[int, ...], count: int | None) -> str | None:
    """Why these shard ids cannot run with this shard count; None when they can."""
    if not ids:
        return "must list at least one shard id"
    if count is None:
        return "needs DISCORD_SHARD_COUNT too (the number of shards of every process together)"
    if (bad := max(ids)) >= count or (bad := min(ids)) < 0:
        return f"shard {bad} is out of range (DISCORD_SHARD_COUNT={count}: 0 to {count - 1})"
    if len(set(ids)) < len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        return f"lists shard {twice} twice"
    return None
