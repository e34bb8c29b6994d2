"""Slack settings: tokens, API URL, admins, allowlists and pacing, read once from the env.

Secrets (bot token, signing secret, app token) are kept out of repr() so they
never reach logs or error messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from core.errors import ConfigError
from core.settings import env_value, positive_float

DEFAULT_API_URL = "https://slack.com/api/"
DEFAULT_UPDATE_INTERVAL_S = 1.2  # chat.update is Tier 3 (50+/min): one edit per 1.2 s is safe
DEFAULT_MAX_UPLOAD_MB = 50.0


@dataclass(frozen=True)
class SlackSettings:
    """Everything the Slack front end needs besides the campaign service."""

    bot_token: str = field(default="", repr=False)
    signing_secret: str = field(default="", repr=False)
    app_token: str | None = field(default=None, repr=False)
    api_url: str = DEFAULT_API_URL
    admins: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()  # empty = every channel
    allowed_users: frozenset[str] = frozenset()  # empty = everyone
    update_interval_s: float = DEFAULT_UPDATE_INTERVAL_S
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    files_base_url: str | None = None  # public URL of the data folder, for too-big videos

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SlackSettings:
        """Settings from SLACK_* environment variables (see README.md)."""
        env = os.environ if env is None else env
        api_url = env.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL
        return cls(
            bot_token=env.get("SLACK_BOT_TOKEN", "").strip(),
            signing_secret=env.get("SLACK_SIGNING_SECRET", "").strip(),
            app_token=env.get("SLACK_APP_TOKEN", "").strip() or None,
            api_url=api_url if api_url.endswith("/") else api_url + "/",
            admins=_ids(env, "SLACK_ADMINS"),
            allowed_channels=_ids(env, "SLACK_ALLOWED_CHANNELS"),
            allowed_users=_ids(env, "SLACK_ALLOWED_USERS"),
            update_interval_s=env_value(
                env, "SLACK_UPDATE_INTERVAL", positive_float, DEFAULT_UPDATE_INTERVAL_S
            ),
            max_upload_mb=env_value(
                env, "SLACK_MAX_UPLOAD_MB", positive_float, DEFAULT_MAX_UPLOAD_MB
            ),
            files_base_url=_base_url(env, "SLACK_FILES_BASE_URL"),
        )

    def check(self, *, socket_mode: bool) -> None:
        """Raise ConfigError naming the first secret this mode needs but lacks."""
        if not self.bot_token:
            raise ConfigError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...)")
        if socket_mode and not self.app_token:
            raise ConfigError("SLACK_APP_TOKEN is not set (Socket Mode needs an xapp-... token)")
        if not socket_mode and not self.signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET is not set (HTTP mode verifies every request)")

    def may_use(self, user: str, channel: str) -> bool:
        """Whether the allowlists let this user run commands in this channel."""
        user_ok = not self.allowed_users or user in self.allowed_users or user in self.admins
        return user_ok and (not self.allowed_channels or channel in self.allowed_channels)


def _ids(env: Mapping[str, str], name: str) -> frozenset[str]:
    """Comma- or space-separated Slack ids."""
    return frozenset(env.get(name, "").replace(",", " ").split())


def _base_url(env: Mapping[str, str], name: str) -> str | None:
    """An absolute http(s) URL without its trailing slash, or None when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}={raw!r} is invalid: must be an absolute http:// or https:// URL")
    return raw.rstrip("/")
