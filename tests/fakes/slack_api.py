"""A fake Slack on 127.0.0.1: Web API, upload URLs, response_url and a Socket Mode websocket.

It records every call it receives (method, parameters, arrival time) so tests
can assert the exact sequence a real slack-sdk client produced. Failures are
scripted per method: an `ok: false` error, or a 429 with Retry-After; `hold`
keeps the next call of a method waiting until the test releases it.
`SlackHarness` serves the real AsyncApp next to it and signs requests the way
Slack does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.slack_ui.app import EVENTS_PATH, SlackFrontEnd, serving_http
from bot.slack_ui.settings import SlackSettings
from core.service import CampaignService

BOT_TOKEN = "xoxb-test-bot-token-0000"
SIGNING_SECRET = "test-signing-secret-1111"
APP_TOKEN = "xapp-test-app-token-2222"


@dataclass
class Call:
    """One request the fake received."""

    method: str  # a Web API method, "upload" or "response_url"
    params: dict[str, Any]
    at: float  # time.monotonic() on arrival
    status: int = 200
    size: int = 0  # bytes received by an upload
    answer: dict[str, Any] = field(default_factory=dict)  # what the fake replied


@dataclass
class _Script:
    error: str | None = None
    retry_after: int | None = None


@dataclass
class Hold:
    """Keep the next `times` calls of `method` unanswered until `release` is set."""

    method: str
    times: int = 1
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)  # set once a call waits


@dataclass
class FakeSlackApi:
    """The fake server; `await start()` returns the Web API base URL."""

    calls: list[Call] = field(default_factory=list)
    base: str = ""
    _scripts: dict[str, list[_Script]] = field(default_factory=dict)
    _holds: list[Hold] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _socket: web.WebSocketResponse | None = None
    _replies: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    async def start(self) -> str:
        """Listen on an ephemeral port of 127.0.0.1."""
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{key}", self._response_url)
        app.router.add_get("/socket", self._websocket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.base + "/api/"

    async def close(self) -> None:
        """Stop serving (closes a Socket Mode connection too); held calls are let go."""
        for hold in self._holds:
            hold.release.set()
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with {"ok": false, "error": error}."""
        self._scripts.setdefault(method, []).extend(_Script(error=error) for _ in range(times))

    def rate_limit(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with 429 and Retry-After."""
        script = [_Script(retry_after=retry_after) for _ in range(times)]
        self._scripts.setdefault(method, []).extend(script)

    def hold(self, method: str, times: int = 1) -> Hold:
        """Keep the next `times` calls of `method` in flight until `release` is set."""
        hold = Hold(method, times)
        self._holds.append(hold)
        return hold

    def of(self, method: str, status: int = 200) -> list[Call]:
        """The calls of one method that got `status`, in arrival order."""
        return [c for c in self.calls if c.method == method and c.status == status]

    def methods(self) -> list[str]:
        """Every successful call's method, in arrival order."""
        return [c.method for c in self.calls if c.status == 200]

    async def wait_for(self, check: Callable[[], bool]) -> None:
        """Wait until check() holds (at most a minute); it is re-evaluated after every call."""
        async with asyncio.timeout(60.0), self._changed:
            await self._changed.wait_for(check)

    async def socket_send(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Push one Socket Mode envelope to the connected app; return its ack."""
        async with asyncio.timeout(60.0):
            await self.wait_for(lambda: self._socket is not None)
            assert self._socket is not None
            reply = asyncio.get_running_loop().create_future()
            self._replies[envelope["envelope_id"]] = reply
            await self._socket.send_str(json.dumps(envelope))
            return await reply

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _params(request)
        for hold in self._holds:
            if hold.method == method and hold.times > 0:
                hold.times -= 1
                hold.held.set()
                await hold.release.wait()
        script = self._scripts.get(method)
        step = script.pop(0) if script else _Script()
        if step.retry_after is not None:
            await self._record(Call(method, params, time.monotonic(), status=429))
            headers = {"Retry-After": str(step.retry_after)}
            body = {"ok": False, "error": "ratelimited"}
            return web.json_response(body, status=429, headers=headers)
        if step.error is not None:
            answer = {"ok": False, "error": step.error}
        else:
            answer = {"ok": True, **self._answer(method, params)}
        await self._record(Call(method, params, time.monotonic(), answer=answer))
        return web.json_response(answer)

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1", "user": "campaign-bot"}
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            return {"channel": params.get("channel"), "ts": ts, "message": {"ts": ts}}
        if method == "chat.update":
            return {"channel": params.get("channel"), "ts": params.get("ts")}
        if method == "chat.postEphemeral":
            return {"message_ts": f"1700000000.{next(self._ts):06d}"}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ts):06d}"
            return {"file_id": file_id, "upload_url": f"{self.base}/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            files = json.loads(params.get("files") or "[]")
            return {"files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        if method == "apps.connections.open":
            return {"url": self.base.replace("http://", "ws://") + "/socket"}
        return {}

    async def _upload(self, request: web.Request) -> web.Response:
        body = await request.read()
        params = {"file_id": request.match_info["file_id"]}
        await self._record(Call("upload", params, time.monotonic(), size=len(body)))
        return web.Response(text="OK")

    async def _response_url(self, request: web.Request) -> web.Response:
        await self._record(Call("response_url", await request.json(), time.monotonic()))
        return web.Response(text="ok")

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()  # autoping answers the client's pings
        await socket.prepare(request)
        await socket.send_str(json.dumps({"type": "hello", "num_connections": 1}))
        async with self._changed:
            self._socket = socket
            self._changed.notify_all()
        async for message in socket:
            if message.type is aiohttp.WSMsgType.TEXT:
                data = json.loads(message.data)
                reply = self._replies.pop(data.get("envelope_id", ""), None)
                if reply is not None and not reply.done():
                    reply.set_result(data)
        return socket


async def _params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        params.update(await request.json())
    elif request.can_read_body:
        params.update(await request.post())
    return params


def is_buttons_post(call: Call) -> bool:
    """Whether a call is a product's Reroll/Animate buttons message (posted after its files)."""
    if call.method != "chat.postMessage":
        return False
    blocks = call.params.get("blocks")
    parsed = json.loads(blocks) if isinstance(blocks, str) else blocks
    return (
        isinstance(parsed, list)
        and bool(parsed)
        and all(
            isinstance(b, dict)
            and b.get("type") == "actions"
            and str(b.get("block_id", "")).startswith("product:")
            for b in parsed
        )
    )


def signed_headers(
    body: str, secret: str = SIGNING_SECRET, at: int | None = None
) -> dict[str, str]:
    """The headers Slack sends: v0 HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    stamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded",
    }


@dataclass
class Reply:
    """What the app answered one signed request, and how long it took."""

    status: int
    body: dict[str, Any]
    seconds: float


async def settle(front: SlackFrontEnd) -> None:
    """Wait until the work the front end's handlers started (and the last edits its
    threads left behind, e.g. a contact sheet on a parent) has finished."""
    tasks = (front.ctx.handlers, front.ctx.posts)
    while running := [task for owned in tasks for task in owned.running]:
        await asyncio.gather(*running, return_exceptions=True)


class SlackHarness:
    """The real AsyncApp served over HTTP on 127.0.0.1, talking to a FakeSlackApi."""

    def __init__(self, api: FakeSlackApi, front: SlackFrontEnd | None, url: str) -> None:
        self.api = api
        self.front = front
        self.url = url
        self._responses = itertools.count(1)
        self._triggers = itertools.count(1)

    async def settle(self) -> None:
        """Wait until everything the requests so far started has finished (`settle`)."""
        assert self.front is not None
        await settle(self.front)

    def trigger_id(self) -> str:
        """A fresh trigger_id, as Slack gives every command and press its own."""
        return f"{next(self._triggers)}.1.{secrets.token_hex(8)}"

    def command_form(self, text: str, user: str = "U1", channel: str = "C1") -> dict[str, str]:
        """A slash command as Slack posts it."""
        return {
            "token": "legacy",
            "team_id": "T1",
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/campaign",
            "text": text,
            "api_app_id": "A1",
            "response_url": f"{self.api.base}/response/{next(self._responses)}",
            "trigger_id": self.trigger_id(),
        }

    def button_form(
        self,
        action_id: str,
        campaign_id: str,
        user: str,
        channel: str = "C1",
        value: str | None = None,
    ) -> dict[str, str]:
        """A block_actions payload for one of the status message's buttons (or, with
        `value`, any button: a product's carries "<campaign id>:<n>")."""
        payload = {
            "type": "block_actions",
            "team": {"id": "T1", "domain": "test"},
            "user": {"id": user, "username": user.lower(), "team_id": "T1"},
            "api_app_id": "A1",
            "token": "legacy",
            "container": {"type": "message", "message_ts": "1", "channel_id": channel},
            "trigger_id": self.trigger_id(),
            "channel": {"id": channel, "name": "general"},
            "response_url": f"{self.api.base}/response/{next(self._responses)}",
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": f"campaign:{campaign_id}",
                    "value": campaign_id if value is None else value,
                    "type": "button",
                    "action_ts": "1",
                }
            ],
        }
        return {"payload": json.dumps(payload)}

    async def post(self, form: dict[str, str], headers: dict[str, str] | None = None) -> Reply:
        """POST a form to /slack/events, signed unless headers are given."""
        body = urllib.parse.urlencode(form)
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            sent = headers if headers is not None else signed_headers(body)
            async with session.post(self.url, data=body, headers=sent) as response:
                text = await response.text()
        seconds = time.perf_counter() - started
        parsed = json.loads(text) if text.startswith("{") else {"text": text}
        return Reply(response.status, parsed, seconds)

    async def command(self, text: str, user: str = "U1", channel: str = "C1") -> Reply:
        """Send a signed `/campaign text`."""
        return await self.post(self.command_form(text, user, channel))

    async def press(self, action_id: str, campaign_id: str, user: str) -> Reply:
        """Press a button of a campaign's status message."""
        return await self.post(self.button_form(action_id, campaign_id, user))

    async def press_product(
        self, action_id: str, campaign_id: str, number: int, user: str, channel: str = "C1"
    ) -> Reply:
        """Press Reroll or Animate under product `number` (1-based) of a campaign."""
        value = f"{campaign_id}:{number}"
        return await self.post(self.button_form(action_id, campaign_id, user, channel, value))


def fake_settings(api_url: str, **changes: Any) -> SlackSettings:
    """SlackSettings pointing at the fake, with fast updates unless told otherwise."""
    base: dict[str, Any] = {
        "bot_token": BOT_TOKEN,
        "signing_secret": SIGNING_SECRET,
        "app_token": APP_TOKEN,
        "api_url": api_url,
        "update_interval_s": 0.05,
    }
    return SlackSettings(**{**base, **changes})


@asynccontextmanager
async def slack_harness(
    service: CampaignService,
    *,
    max_products: int = 20,
    gallery: Any = None,
    replays: Any = None,
    api: FakeSlackApi | None = None,
    **settings: Any,
) -> AsyncIterator[SlackHarness]:
    """A fake Slack (or `api`, shared with another harness: two replicas of one app), the
    front end on `service`, and the AsyncApp served on 127.0.0.1."""
    own_api = api is None
    api = api or FakeSlackApi()
    api_url = await api.start() if own_api else api.base + "/api/"
    slack = fake_settings(api_url, **settings)
    front = SlackFrontEnd(
        service, slack, max_products=max_products, gallery=gallery, replays=replays
    )
    try:
        async with serving_http(front, "127.0.0.1", 0) as port:
            yield SlackHarness(api, front, f"http://127.0.0.1:{port}{EVENTS_PATH}")
    finally:
        await front.aclose()
        if own_api:
            await api.close()
