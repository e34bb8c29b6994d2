"""Slack settings: tokens, API URL, admins, allowlists and pacing, read once from the env.

Secrets (bot token, signing secret, app token) are kept out of repr() so they
never reach logs or error messages.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import SecretStr

from bot.chat.access import Allowlist, Viewer, blocked_by
from bot.chat.config import ids, url
from core.errors import ConfigError
from core.setting_values import positive_float
from core.settings import Env, Section

DEFAULT_API_URL = "https://slack.com/api/"
DEFAULT_UPDATE_INTERVAL_S = 1.2  # chat.update is Tier 3 (50+/min): one edit per 1.2 s is safe
DEFAULT_MAX_UPLOAD_MB = 50.0


def _api_url(raw: str) -> str:
    return raw if raw.endswith("/") else raw + "/"


class SlackSettings(Section):
    """Everything the Slack front end needs besides the campaign service."""

    bot_token: Annotated[SecretStr | None, Env("SLACK_BOT_TOKEN")] = None
    signing_secret: Annotated[SecretStr | None, Env("SLACK_SIGNING_SECRET")] = None
    app_token: Annotated[SecretStr | None, Env("SLACK_APP_TOKEN")] = None
    api_url: Annotated[str, Env("SLACK_API_URL", _api_url)] = DEFAULT_API_URL
    admins: Annotated[frozenset[str], Env("SLACK_ADMINS", ids)] = frozenset()
    # Empty: every channel; everyone.
    allowed_channels: Annotated[frozenset[str], Env("SLACK_ALLOWED_CHANNELS", ids)] = frozenset()
    allowed_users: Annotated[frozenset[str], Env("SLACK_ALLOWED_USERS", ids)] = frozenset()
    update_interval_s: Annotated[float, Env("SLACK_UPDATE_INTERVAL", positive_float)] = (
        DEFAULT_UPDATE_INTERVAL_S
    )
    max_upload_mb: Annotated[float, Env("SLACK_MAX_UPLOAD_MB", positive_float)] = (
        DEFAULT_MAX_UPLOAD_MB
    )
    # Public URL of the data folder, for too-big videos.
    files_base_url: Annotated[str | None, Env("SLACK_FILES_BASE_URL", url())] = None

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
