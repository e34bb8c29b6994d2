"""A fake Discord: REST API + gateway websocket on 127.0.0.1, recording every call.

An unmodified discord.py `commands.AutoShardedBot` logs in, syncs its commands,
asks GET /gateway/bot for its shard count, connects each shard to the gateway
(HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats are ACKed) and receives
the INTERACTION_CREATE payloads a test sends, on the shard of their guild (the
gateway, and how it routes shards: discord_gateway.py). REST routes cover
what the campaign flow uses: interaction callbacks and webhook edits, channel
messages (JSON or multipart with files), threads on messages and deleting them.

Tests steer it with `faults` (answer the next matching calls with an error,
e.g. a 429 carrying `Via` and `retry_after` as Discord's does), `holds` (keep
matching calls waiting until an event is set) and `expire_webhooks` (every
interaction-token route answers 401 / 50027, as after 15 minutes).
Replies carry exactly `Content-Type: application/json` and time-based snowflakes.
Attachments a test makes with `attachment(...)` are served (outside the API
prefix) at their `url`; `downloads` records each fetch.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.discord_gateway import FakeGateway
from tests.fakes.discord_payloads import MIB, FilePart, now_iso, snowflake

API_PREFIX = "/api/v10"


@dataclass
class Call:
    """One REST request the fake received, and how it answered."""

    method: str
    path: str  # without the /api/v10 prefix
    json: Any
    files: list[FilePart]
    at: float  # time.monotonic()
    status: int = 0
    auth: str | None = None


@dataclass
class Fault:
    """Answer the next `times` calls matching method + path regex with this error."""

    method: str
    pattern: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class Hold:
    """Keep calls matching method + path regex waiting until `release` is set."""

    method: str
    pattern: str
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)  # set once a call waits
    times: int = 1


def rate_limited(method: str, pattern: str, retry_after: float) -> Fault:
    """A per-route 429 as Discord sends it (with Via, so discord.py trusts it)."""
    return Fault(
        method,
        pattern,
        429,
        {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
        {"Via": "1.1 google", "X-RateLimit-Scope": "user", "Retry-After": "1"},
    )


class FakeDiscord(FakeGateway):
    """The fake server; `await start()`, then point discord.py at api_url / gateway_url."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []
        self.expire_webhooks = False
        self.downloads: list[str] = []  # attachment ids fetched from /attachments/
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Serve on an ephemeral port of 127.0.0.1."""
        app = web.Application(client_max_size=64 * MIB)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{aid}/{name}", self._download)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def aclose(self) -> None:
        """Close sockets and stop serving."""
        for conn in list(self.connections):
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """What Route.BASE should be."""
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    # -- queries for tests --------------------------------------------------

    def find(self, method: str, pattern: str, status: int | None = None) -> list[Call]:
        """Recorded calls with this method whose path fully matches the regex."""
        return [
            c
            for c in self.calls
            if c.method == method
            and re.fullmatch(pattern, c.path)
            and (status is None or c.status == status)
        ]

    async def wait_for(self, predicate: Callable[[], Any], within_s: float = 60.0) -> Any:
        """Wait until predicate() is truthy (re-checked after every call); return its value."""
        async with asyncio.timeout(within_s), self._changed:
            while not (value := predicate()):
                await self._changed.wait()
            return value

    async def _download(self, request: web.Request) -> web.Response:
        aid = request.match_info["aid"]
        self.downloads.append(aid)
        await self._notify()
        data = self.attachment_bytes.get(aid)
        if data is None:
            return _json({"message": "404: Not Found", "code": 0}, 404)
        return web.Response(body=data, content_type="application/octet-stream")

    # -- REST ---------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body, files = await self._read_body(request)
        call = Call(
            request.method,
            path,
            body,
            files,
            time.monotonic(),
            auth=request.headers.get("Authorization"),
        )
        self.calls.append(call)
        await self._notify()
        response = await self._answer(call)
        call.status = response.status
        await self._notify()
        return response

    async def _answer(self, call: Call) -> web.Response:
        for hold in self.holds:
            if hold.times > 0 and self._matches(hold.method, hold.pattern, call):
                hold.times -= 1
                hold.held.set()
                await hold.release.wait()
        for fault in self.faults:
            if fault.times > 0 and self._matches(fault.method, fault.pattern, call):
                fault.times -= 1
                return _json(fault.body, fault.status, fault.headers)
        if self.expire_webhooks and re.match(r"/webhooks/", call.path):
            return _json({"message": "Invalid Webhook Token", "code": 50027}, 401)
        return self._route(call)

    @staticmethod
    def _matches(method: str, pattern: str, call: Call) -> bool:
        return call.method == method and re.fullmatch(pattern or ".*", call.path) is not None

    def _route(self, call: Call) -> web.Response:
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, call.path)
            if call.method == method and match:
                return handler(call, *match.groups())
        return _json({"message": "404: Not Found", "code": 0}, 404)

    def _routes(self) -> list[tuple[str, str, Callable[..., web.Response]]]:
        return [
            ("GET", r"/users/@me", lambda c: _json(self.bot_user)),
            ("GET", r"/gateway/bot", lambda c: _json(self.bot_gateway(c))),
            ("GET", r"/oauth2/applications/@me", self._app_info),
            ("PUT", r"/applications/\d+/commands", self._sync),
            ("PUT", r"/applications/\d+/guilds/(\d+)/commands", self._sync),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
            ("PATCH", r"/webhooks/\d+/[^/]+/messages/@original", self._edit_original),
            ("POST", r"/webhooks/\d+/([^/]+)", self._followup),
            ("POST", r"/channels/(\d+)/messages", self._send),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._edit),
            (
                "DELETE",
                r"/channels/(\d+)/messages/(\d+)",
                lambda c, ch, m: web.Response(status=204),
            ),
            ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._thread),
            ("DELETE", r"/channels/(\d+)", lambda c, ch: web.Response(status=204)),  # a thread
        ]

    def _app_info(self, _call: Call) -> web.Response:
        return _json(
            {
                "id": self.app_id,
                "name": "campaign-bot",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "00",
                "owner": self.user(self.owner_id, "owner"),
                "flags": 0,
                "interactions_endpoint_url": None,
            }
        )

    def _sync(self, call: Call, guild_id: str | None = None) -> web.Response:
        out = []
        for command in call.json:
            self.command_ids.setdefault(command["name"], snowflake())
            out.append(
                {
                    **command,
                    "id": self.command_ids[command["name"]],
                    "application_id": self.app_id,
                    "version": snowflake(),
                    "guild_id": guild_id,
                }
            )
        return _json(out)

    def _callback(self, call: Call, interaction_id: str, _token: str) -> web.Response:
        kind = call.json["type"]
        data = call.json.get("data") or {}
        ephemeral = bool((data.get("flags") or 0) & 64)
        resource: dict[str, Any] = {"type": kind}
        if kind == 4:
            resource["message"] = self.message_payload(self.channel_id, data, call.files)
        return _json(
            {
                "interaction": {
                    "id": interaction_id,
                    "type": 2,
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": ephemeral,
                },
                "resource": resource,
            }
        )

    def _edit_original(self, call: Call) -> web.Response:
        return _json(self.message_payload(self.channel_id, call.json or {}, call.files))

    def _followup(self, call: Call, _token: str) -> web.Response:
        return _json(self.message_payload(self.channel_id, call.json or {}, call.files))

    def _send(self, call: Call, channel_id: str) -> web.Response:
        message = self.message_payload(channel_id, call.json or {}, call.files)
        self.messages[message["id"]] = message
        return _json(message)

    def _edit(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        message = self.messages.get(message_id)
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        for key in ("content", "embeds", "components"):
            if key in (call.json or {}):
                message[key] = call.json[key] or ([] if key != "content" else "")
        message["edited_timestamp"] = now_iso()
        return _json(message)

    def _thread(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        """A thread started from a message has the message's id, as on Discord."""
        archive = call.json.get("auto_archive_duration", 1440)
        return _json(
            {
                "id": message_id,
                "type": 11,
                "guild_id": self.guild_id,
                "parent_id": channel_id,
                "owner_id": self.bot_user["id"],
                "name": call.json["name"],
                "message_count": 0,
                "member_count": 1,
                "rate_limit_per_user": 0,
                "flags": 0,
                "thread_metadata": {
                    "archived": False,
                    "locked": False,
                    "auto_archive_duration": archive,
                    "archive_timestamp": now_iso(),
                },
            }
        )

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[Any, list[FilePart]]:
        if not request.body_exists:
            return None, []
        if not request.content_type.startswith("multipart/"):
            return await request.json(), []
        body: Any = None
        files: list[FilePart] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            assert isinstance(part, BodyPartReader)
            data = await part.read()
            if part.name == "payload_json":
                body = json.loads(data)
            else:
                ctype = part.headers.get("Content-Type", "application/octet-stream")
                files.append(FilePart(part.filename or "", len(data), ctype, bytes(data)))
        return body, files


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON reply with exactly `Content-Type: application/json` (discord.py checks it)."""
    return web.Response(
        body=json.dumps(obj).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
