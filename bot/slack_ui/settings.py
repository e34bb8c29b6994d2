"""Slack settings: tokens, API URL, admins, allowlists and pacing, read once from the env.

Secrets (bot token, signing secret, app token) are kept out of repr() so they
never reach logs or error messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.chat.access import Allowlist, Viewer, blocked_by
from bot.chat.config import id_list, url_setting
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
        """Settings from SLACK_* environment variables (see docs/configuration.md)."""
        env = os.environ if env is None else env
        api_url = env.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL
        return cls(
            bot_token=env.get("SLACK_BOT_TOKEN", "").strip(),
            signing_secret=env.get("SLACK_SIGNING_SECRET", "").strip(),
            app_token=env.get("SLACK_APP_TOKEN", "").strip() or None,
            api_url=api_url if api_url.endswith("/") else api_url + "/",
            admins=frozenset(id_list(env, "SLACK_ADMINS")),
            allowed_channels=frozenset(id_list(env, "SLACK_ALLOWED_CHANNELS")),
            allowed_users=frozenset(id_list(env, "SLACK_ALLOWED_USERS")),
            update_interval_s=env_value(
                env, "SLACK_UPDATE_INTERVAL", positive_float, DEFAULT_UPDATE_INTERVAL_S
            ),
            max_upload_mb=env_value(
                env, "SLACK_MAX_UPLOAD_MB", positive_float, DEFAULT_MAX_UPLOAD_MB
            ),
            files_base_url=url_setting(env, "SLACK_FILES_BASE_URL"),
        )

    def check(self, *, socket_mode: bool) -> None:
        """Raise ConfigError naming the first secret this mode needs but lacks."""
        if not self.bot_token:
            raise ConfigError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...)")
        if socket_mode and not self.app_token:
            raise ConfigError("SLACK_APP_TOKEN is not set (Socket Mode needs an xapp-... token)")
        if not socket_mode and not self.signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET is not set (HTTP mode verifies every request)")

    def viewer(self, user: str, channel: str) -> Viewer:
        """Who asks from where, for the rules in `bot.chat.access`."""
        return Viewer(
            requester=f"slack:{user}",
            here={"platform": "slack", "channel": channel},
            admin=user in self.admins,
            channels=frozenset({channel}),
            groups=frozenset({user}),
        )

    def may_use(self, user: str, channel: str) -> bool:
        """Whether the allowlists let this user run commands in this channel."""
        allow = Allowlist(self.allowed_channels, self.allowed_users)
        return blocked_by(self.viewer(user, channel), allow) is None
