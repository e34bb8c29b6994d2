"""`/campaign <text>`: which subcommand the text asks for.

    new <request>     the default: text that starts with no subcommand is a request
    status [id]       progress of one campaign (default: your latest)
    history           your recent campaigns
    show <id>         one campaign in full
    cancel <id>       stop a running campaign
    retry <id>        re-run a finished campaign's failed steps
    animate <id> [n] [prompt]
                      a new video of product n, or of every product without one;
                      the prompt is the rest of the text (surrounding quotes dropped)
    help              this list

A theme that happens to start with a subcommand word ("history of jazz") is
refused with a hint to say `new` explicitly rather than guessed at.

Also here, for what Slack sends being possibly malformed or replayed: reading
the fields a command or a button press needs (`command_fields`,
`button_fields`, `product_fields`: None, never an exception), `reject_malformed` (400 for a body
Bolt cannot parse) and `ReplayFilter` (a replayed request, same signature
or same trigger_id, starts nothing).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from aiohttp import web
from aiohttp.typedefs import Middleware
from slack_bolt.async_app import AsyncBoltRequest
from slack_bolt.request import payload_utils
from slack_bolt.request.internals import parse_body
from slack_bolt.response import BoltResponse

from bot.chat.replays import ReplayGuard
from bot.chat.text import clip
from core.errors import InvalidRequest
from core.request import UNSAFE_CHARS

NO_ARG = ("history", "help")
OPTIONAL_ID = ("status",)
NEEDS_ID = ("show", "cancel", "retry")
SUBCOMMANDS = ("new", *OPTIONAL_ID, *NO_ARG, *NEEDS_ID, "animate")
_ID_RE = re.compile(r"[0-9a-f]{4,32}")
log = logging.getLogger("campaign-bot.slack")
_SLACK_ID_RE = re.compile(r"[A-Za-z0-9]{1,64}")  # user and channel ids (U0G9QF9C6, C1H9RESGL)
_VALUE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a button's campaign id
_PRODUCT_VALUE_RE = re.compile(r"([A-Za-z0-9_-]{1,64}):([0-9]{1,4})")  # "<campaign id>:<n>"
_NUMBER_RE = re.compile(r"[0-9]{1,6}")
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d"}  # a prompt wrapped in these is unwrapped
# Slack accepts a signed request whose timestamp is within 5 minutes of its clock, so
# a replay is possible until 10 minutes after the first arrival; a minute to spare.
REPLAY_MEMORY_S = 11 * 60


@dataclass(frozen=True)
class Command:
    """A parsed `/campaign` text: the subcommand and what follows it."""

    name: str
    arg: str = ""
    number: int | None = None  # animate: the product (1-based), None for every one
    prompt: str | None = None  # animate: the motion prompt, None for the plan's


def parse_command(text: str) -> Command:
    """Split `/campaign` text into a subcommand and its argument; raise InvalidRequest."""
    text = text.strip()
    if not text:
        return Command("help")
    head, _, rest = text.partition(" ")
    name, rest = head.lower(), rest.strip()
    if name not in SUBCOMMANDS:
        return Command("new", text)
    if name == "new":
        return Command("new", rest)
    if name == "animate":
        return _animate(rest, text)
    if name in NO_ARG and rest:
        raise _mistake(name, "takes no arguments", "nothing", text)
    if name in NEEDS_ID + OPTIONAL_ID and rest and not _ID_RE.fullmatch(rest.lower()):
        raise _mistake(
            name, f"{_clip(rest)!r} is not a campaign id", "an id such as 3f9a1c2e", text
        )
    if name in NEEDS_ID and not rest:
        raise InvalidRequest(name, "needs a campaign id", "an id such as 3f9a1c2e")
    return Command(name, rest.lower())


def _animate(rest: str, text: str) -> Command:
    """`animate <id> [n] [prompt...]`: n is the second word if it is a number; the prompt
    is everything after, as typed (one pair of surrounding quotes is dropped)."""
    head, _, tail = rest.partition(" ")
    if not head:
        raise InvalidRequest("animate", "needs a campaign id", "an id such as 3f9a1c2e")
    if not _ID_RE.fullmatch(head.lower()):
        problem = f"{_clip(head)!r} is not a campaign id"
        raise InvalidRequest("animate", problem, "`/campaign animate <id> [n] [prompt]`")
    tail = tail.strip()
    first, _, after = tail.partition(" ")
    number = None
    if _NUMBER_RE.fullmatch(first):
        number, tail = int(first), after.strip()
    if len(tail) >= 2 and _QUOTES.get(tail[0]) == tail[-1]:
        tail = tail[1:-1].strip()
    return Command("animate", head.lower(), number, tail or None)


def _mistake(name: str, problem: str, allowed: str, text: str) -> InvalidRequest:
    """An error that also shows how to start a campaign with this text as its theme."""
    return InvalidRequest(name, problem, allowed, f"`/campaign new {_clip(text)}`")


def _clip(text: str, limit: int = 60) -> str:
    """Flat, clipped text to echo back, with nothing invisible in it."""
    return clip(UNSAFE_CHARS.sub("\ufffd", " ".join(text.split())), limit)


def command_fields(command: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(user id, channel id, text) of a slash command, or None if any is missing or bad
    (or there is no response_url, which every answer after the ack goes through)."""
    user, channel = command.get("user_id"), command.get("channel_id")
    text = command.get("text") or ""
    replies = isinstance(command.get("response_url"), str)
    if _slack_id(user) and _slack_id(channel) and isinstance(text, str) and replies:
        return user, channel, text
    return None


def button_fields(body: Mapping[str, Any]) -> tuple[str, str, str | None] | None:
    """(user id, channel id, campaign id or None if unreadable) of a button press, or None."""
    user = _dig(body, "user", "id")
    channel = _dig(body, "channel", "id") or _dig(body, "container", "channel_id")
    if not (_slack_id(user) and _slack_id(channel)):
        return None
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    value = first.get("value") if isinstance(first, dict) else None
    ok = value if isinstance(value, str) and _VALUE_RE.fullmatch(value) else None
    return user, channel, ok


def product_fields(
    body: Mapping[str, Any],
) -> tuple[str, str, tuple[str, int] | None] | None:
    """(user id, channel id, (campaign id, product number) or None if unreadable) of a
    product button press (value "<campaign id>:<n>"), or None without a user or channel."""
    fields = button_fields(body)
    if fields is None:
        return None
    user, channel, _ = fields
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    value = first.get("value") if isinstance(first, dict) else None
    found = _PRODUCT_VALUE_RE.fullmatch(value) if isinstance(value, str) else None
    return user, channel, (found[1], int(found[2])) if found else None


class ReplayFilter:
    """Bolt middleware over a ReplayGuard: a request taken before is acked with nothing."""

    def __init__(self, guard: ReplayGuard) -> None:
        self.guard = guard

    async def drop_replays(
        self, req: AsyncBoltRequest, resp: BoltResponse, next_: Callable[[], Awaitable[None]]
    ) -> BoltResponse:
        """Ack a request seen before (a replay, or one another replica took) and stop there."""
        if not await self.guard.first_time(replay_keys(req.headers, req.body), REPLAY_MEMORY_S):
            log.warning("ignored a replayed Slack request (same signature or trigger_id)")
            return BoltResponse(status=200, body="")
        await next_()
        return resp


def replay_keys(headers: Mapping[str, Any], body: Any) -> list[str]:
    """What identifies a request: its signature (HTTP mode) and its trigger_id, if any."""
    keys = []
    signature = _first(headers.get("x-slack-signature"))
    if signature:
        keys.append(f"sig:{_first(headers.get('x-slack-request-timestamp'))}:{signature}")
    trigger = body.get("trigger_id") if isinstance(body, dict) else None
    if isinstance(trigger, str) and trigger:
        keys.append(f"trigger:{trigger[:200]}")
    return keys


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def reject_malformed(path: str) -> Middleware:
    """aiohttp middleware: 400 for a POST to `path` whose body Bolt cannot parse.

    Bolt parses the body before it checks the signature, and answers 500 when
    that fails (so anyone could make it answer 500), and it reads the payload's
    parts (e.g. `actions[0]`) before any listener of ours could look at them.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and request.path == path:
            try:
                raw = (await request.read()).decode("utf-8")  # aiohttp keeps it for Bolt
                parsed = parse_body(raw, request.content_type)
            except (UnicodeDecodeError, ValueError, RecursionError):
                parsed = None
            if not isinstance(parsed, dict) or not _bolt_can_read(parsed):
                return web.Response(status=400, text="malformed request body")
        return await handler(request)

    return middleware


_BOLT_READERS = (
    payload_utils.to_options, payload_utils.to_shortcut, payload_utils.to_action,
    payload_utils.to_view, payload_utils.to_command, payload_utils.to_event,
    payload_utils.to_message, payload_utils.to_step,
)  # fmt: skip


def _bolt_can_read(body: dict[str, Any]) -> bool:
    """Whether Bolt's payload readers (run for every middleware and listener) accept it,
    each part they read being a mapping as its matchers expect (`actions[0]["action_id"]`)."""
    try:
        parts = [read(body) for read in _BOLT_READERS]
    except (LookupError, TypeError, AttributeError, ValueError):
        return False
    return all(part is None or isinstance(part, dict) for part in parts)


def _first(value: Any) -> str:
    """A header's value: Bolt keeps each as a list of strings."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""


def _slack_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _SLACK_ID_RE.fullmatch(value) is not None


def _dig(body: Mapping[str, Any], *keys: str) -> object:
    """body[k1][k2]... or None when a level is missing or not a mapping."""
    value: object = body
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value
