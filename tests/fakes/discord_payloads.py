"""Payloads the fake Discord sends and answers with: users, members, the guild,
messages and INTERACTION_CREATE bodies, with time-based snowflakes."""

from __future__ import annotations

import datetime
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
MIB = 1024 * 1024
OPTION_TYPES = {str: 3, int: 4, bool: 5}
ATTACHMENT_OPTION = 11
MANAGE_GUILD = 1 << 5
BOT_PERMISSIONS = (1 << 41) - 1  # every permission bit the flow needs
_counter = itertools.count()


def snowflake() -> str:
    """A time-based snowflake, as Discord makes them (unique within the process)."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return str((ms << 22) | (next(_counter) & 0x3FFFFF))


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


@dataclass
class FilePart:
    """One uploaded file of a multipart request."""

    filename: str
    size: int
    content_type: str
    data: bytes = field(repr=False)


class DiscordPayloads:
    """Builders bound to one fake guild, channel and application."""

    port: int
    bot_user: dict[str, Any]

    def __init__(self) -> None:
        self.app_id, self.guild_id, self.channel_id = snowflake(), snowflake(), snowflake()
        self.owner_id, self.role_id = snowflake(), snowflake()
        self.command_ids: dict[str, str] = {}
        self.attachment_bytes: dict[str, bytes] = {}  # served at /attachments/<id>/<name>

    @staticmethod
    def user(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
        """A user object."""
        return {
            "id": user_id,
            "username": name,
            "discriminator": "0",
            "avatar": None,
            "global_name": name,
            "bot": bot,
            "public_flags": 0,
        }

    def member(
        self, user_id: str, *, roles: tuple[str, ...] = (), permissions: int = 0
    ) -> dict[str, Any]:
        """A guild member object as interactions carry it."""
        return {
            "user": self.user(user_id, f"user{user_id[-4:]}"),
            "roles": list(roles),
            "joined_at": now_iso(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "permissions": str(permissions),
        }

    def interaction_payload(self, kind: int, user_id: str, **extra: Any) -> dict[str, Any]:
        iid = snowflake()
        payload: dict[str, Any] = {
            "id": iid,
            "application_id": self.app_id,
            "type": kind,
            "token": f"itoken-{iid}",
            "version": 1,
            "locale": "en-US",
            "entitlements": [],
            "context": 0,
            "attachment_size_limit": extra.pop("size_limit", 10 * MIB),
            "app_permissions": str(BOT_PERMISSIONS),
            "authorizing_integration_owners": {"0": self.guild_id},
        }
        if extra.pop("dm", False):
            dm = snowflake()
            payload.update(
                user=self.user(user_id, "dmuser"),
                context=1,
                channel_id=dm,
                channel={"id": dm, "type": 1},
            )
        else:
            channel = extra.pop("channel_id", self.channel_id)
            member = self.member(
                user_id, roles=extra.pop("roles", ()), permissions=extra.pop("permissions", 0)
            )
            payload.update(
                guild_id=self.guild_id,
                guild_locale="en-US",
                member=member,
                guild={"id": self.guild_id, "locale": "en-US", "features": []},
                channel_id=channel,
                channel=self.channel_payload(channel),
            )
        payload.update(extra)
        return payload

    def attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = "image/png",
        *,
        size: int | None = None,
    ) -> dict[str, Any]:
        """An attachment object as a command option's resolved data carries it; the fake
        serves `data` at its url (`size` may claim another size, as a test needs)."""
        aid = snowflake()
        self.attachment_bytes[aid] = data
        url = f"http://127.0.0.1:{self.port}/attachments/{aid}/{filename}"
        found: dict[str, Any] = {
            "id": aid,
            "filename": filename,
            "size": len(data) if size is None else size,
            "url": url,
            "proxy_url": url,
        }
        if content_type is not None:
            found["content_type"] = content_type
        return found

    def command(
        self, sub: str, user_id: str, options: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload for `/campaign <sub> ...options`; an option whose
        value is an `attachment(...)` is sent as Discord does (its id, the object resolved)."""
        opts = []
        resolved: dict[str, Any] = {}
        for name, value in (options or {}).items():
            if isinstance(value, dict) and "filename" in value:
                resolved[value["id"]] = value
                opts.append({"name": name, "type": ATTACHMENT_OPTION, "value": value["id"]})
            else:
                opts.append({"name": name, "type": OPTION_TYPES[type(value)], "value": value})
        data = {
            "id": self.command_ids.get("campaign", snowflake()),
            "name": "campaign",
            "type": 1,
            "guild_id": self.guild_id,
            "options": [{"name": sub, "type": 1, "options": opts}],
        }
        if resolved:
            data["resolved"] = {"attachments": resolved}
        return self.interaction_payload(2, user_id, data=data, **extra)

    def button(self, message_id: str, custom_id: str, user_id: str, **extra: Any) -> dict[str, Any]:
        """A button press on a message this fake stored."""
        message = self.messages[message_id]
        data = {"custom_id": custom_id, "component_type": 2}
        return self.interaction_payload(
            3, user_id, data=data, message=message, channel_id=message["channel_id"], **extra
        )

    def channel_payload(self, channel_id: str) -> dict[str, Any]:
        return {
            "id": channel_id,
            "type": 0,
            "name": "general",
            "guild_id": self.guild_id,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "permissions": str(BOT_PERMISSIONS),
        }

    def guild_payload(self, guild_id: str | None = None) -> dict[str, Any]:
        """The guild's GUILD_CREATE: `guild_id` (default: the one with the channel and role)."""
        gid = guild_id or self.guild_id
        main = gid == self.guild_id
        everyone = {
            "id": gid,
            "name": "@everyone",
            "permissions": "1024",
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        role = {**everyone, "id": self.role_id, "name": "campaigners", "position": 1}
        return {
            "id": gid,
            "name": "Fake Guild" if main else f"Other Guild {gid[-4:]}",
            "icon": None,
            "owner_id": self.owner_id,
            "roles": [everyone, role] if main else [everyone],
            "channels": [self.channel_payload(self.channel_id)] if main else [],
            "threads": [],
            "members": [],
            "member_count": 2,
            "features": [],
            "emojis": [],
            "stickers": [],
            "premium_tier": 0,
            "unavailable": False,
            "large": False,
            "joined_at": now_iso(),
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "system_channel_flags": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
        }

    def message_payload(
        self, channel_id: str, body: dict[str, Any], files: list[FilePart], **extra: Any
    ) -> dict[str, Any]:
        attachments = [
            {
                "id": snowflake(),
                "filename": f.filename,
                "size": f.size,
                "content_type": f.content_type,
                "url": f"http://127.0.0.1:{self.port}/attachments/{f.filename}",
                "proxy_url": f"http://127.0.0.1:{self.port}/attachments/{f.filename}",
            }
            for f in files
        ]
        message = {
            "id": snowflake(),
            "channel_id": channel_id,
            "guild_id": self.guild_id,
            "author": self.bot_user,
            "content": body.get("content") or "",
            "timestamp": now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": body.get("embeds") or [],
            "pinned": False,
            "type": 0,
            "flags": body.get("flags") or 0,
            "components": body.get("components") or [],
        }
        message.update(extra)
        return message
