"""The fake Discord's gateway, sharded as Discord's is.

Each websocket connection gets HELLO; its IDENTIFY (recorded in `identifies`,
its `shard: [id, count]` on the connection) is answered on that connection alone
with READY (carrying the shard, and only that shard's guilds) and a GUILD_CREATE
per guild of the shard. Several connections (shards of one bot process, or of
several) may be open at once. Like Discord, an event about a guild goes only to
the connection of the guild's shard, `(guild_id >> 22) % shard_count`; an event
about no guild (a DM) to shard 0. A connection that identified without `shard`
is a whole bot and gets everything. `GET /gateway/bot` recommends
`recommended_shards` and names `bot_gateway_url` (this gateway unless a test
changes it).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.discord_payloads import DiscordPayloads, snowflake


@dataclass(eq=False)
class Connection:
    """One gateway websocket, and the shard its IDENTIFY named (None: unsharded)."""

    ws: web.WebSocketResponse
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    shard: tuple[int, int] | None = None

    def owns(self, guild_id: str | None) -> bool:
        """Whether Discord sends this connection events about this guild (None: a DM)."""
        if self.shard is None:
            return True
        shard_id, count = self.shard
        return shard_of(guild_id, count) == shard_id

    async def send(self, op: int, data: Any, event: str | None = None) -> None:
        seq = next(self.seq) if op == 0 else None
        await self.ws.send_str(json.dumps({"op": op, "t": event, "s": seq, "d": data}))


def shard_of(guild_id: str | None, shard_count: int) -> int:
    """The shard Discord sends a guild's events on; shard 0 for events without a guild."""
    return 0 if guild_id is None else (int(guild_id) >> 22) % shard_count


def snowflake_on(shard_id: int, shard_count: int) -> str:
    """A fresh snowflake (e.g. a guild id) whose guild is on this shard of `shard_count`."""
    value = int(snowflake())
    ms = value >> 22
    ms -= (ms - shard_id) % shard_count  # a few ms earlier, same low bits: still unique
    return str((ms << 22) | (value & 0x3FFFFF))


class FakeGateway(DiscordPayloads):
    """The gateway half of FakeDiscord (which adds REST and the aiohttp app)."""

    def __init__(self) -> None:
        super().__init__()
        self.bot_user = self.user(snowflake(), "campaign-bot", bot=True)
        self.extra_guild_ids: list[str] = []  # guilds the bot is in besides `guild_id`
        self.recommended_shards = 1  # GET /gateway/bot's `shards`
        self.bot_gateway_url: str | None = None  # GET /gateway/bot's `url`; None: this one
        self.identifies: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.connections: list[Connection] = []
        self._changed = asyncio.Condition()  # notified after every call and gateway message

    @property
    def gateway_url(self) -> str:
        """What DiscordWebSocket.DEFAULT_GATEWAY should be."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def identified_shards(self) -> list[list[int] | None]:
        """The `shard` of every IDENTIFY so far, in order (None: identified unsharded)."""
        return [data.get("shard") for data in self.identifies]

    def guild_ids(self) -> list[str]:
        """Every guild the bot is in."""
        return [self.guild_id, *self.extra_guild_ids]

    def bot_gateway(self, _call: Any) -> dict[str, Any]:
        """GET /gateway/bot, as Discord answers it."""
        return {
            "url": self.bot_gateway_url or self.gateway_url,
            "shards": self.recommended_shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 86_400_000,
                "max_concurrency": 1,
            },
        }

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH event to the connection(s) of its guild's shard."""
        guild_id = data.get("id") if event.startswith("GUILD_") else data.get("guild_id")
        for conn in list(self.connections):
            if conn.owns(guild_id):
                await conn.send(0, data, event)

    async def interact(self, payload: dict[str, Any]) -> float:
        """Send an INTERACTION_CREATE; returns when it was sent (time.monotonic())."""
        sent = time.monotonic()
        await self.dispatch("INTERACTION_CREATE", payload)
        return sent

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Connection(ws)
        self.connections.append(conn)
        await conn.send(10, {"heartbeat_interval": 41250})
        try:
            async for msg in ws:
                await self._on_gateway_message(conn, json.loads(msg.data))
        finally:
            self.connections.remove(conn)
        return ws

    async def _on_gateway_message(self, conn: Connection, data: dict[str, Any]) -> None:
        if data["op"] == 1:  # heartbeat
            self.heartbeats += 1
            await conn.send(11, None)
        elif data["op"] == 2:  # identify
            self.identifies.append(data["d"])
            shard = data["d"].get("shard")
            conn.shard = None if shard is None else (shard[0], shard[1])
            await self._ready(conn)
        await self._notify()

    async def _ready(self, conn: Connection) -> None:
        """READY with this connection's guilds (and its shard), then their GUILD_CREATEs."""
        guilds = [g for g in self.guild_ids() if conn.owns(g)]
        ready: dict[str, Any] = {
            "v": 10,
            "user": self.bot_user,
            "session_id": snowflake(),
            "guilds": [{"id": g, "unavailable": True} for g in guilds],
            "resume_gateway_url": self.gateway_url,
            "application": {"id": self.app_id, "flags": 0},
        }
        if conn.shard is not None:
            ready["shard"] = list(conn.shard)
        await conn.send(0, ready, "READY")
        for guild_id in guilds:
            await conn.send(0, self.guild_payload(guild_id), "GUILD_CREATE")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
