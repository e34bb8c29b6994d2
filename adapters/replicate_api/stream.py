"""A language model's answer as it is written: Replicate's server-sent events.

A prediction of a language model carries `urls.stream`; a GET of it with
`Accept: text/event-stream` and the token yields events: `output` (a piece of
the answer; a piece with line breaks comes as several `data:` lines), `logs`,
`error` (the prediction failed) and `done` (data `{}`, or `{"reason":
"canceled"}`). `read_stream` hands each piece on as it arrives and returns at
`done`. Anything else (a refused or broken stream) is `StreamLost`: the
caller then polls the prediction for its answer, as it would without a stream.

The token goes only to the API's own host or to a `*.replicate.com` host over
https (where Replicate serves its streams), never to another host a stream URL
might name.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from adapters.replicate_api.hosts import host_allowed
from core.errors import PermanentStepError

OnText = Callable[[str], Awaitable[None]]
STREAM_HOSTS = ("replicate.com", "*.replicate.com")


class StreamLost(Exception):
    """The stream could not be read to its end; the prediction may still be running."""


class StreamError(PermanentStepError):
    """The model failed while it streamed (an `error` event)."""


@dataclass
class Event:
    """One server-sent event."""

    name: str = "message"
    data: list[str] = field(default_factory=list)


def stream_url_ok(url: str, base_url: str) -> bool:
    """Whether the token may be sent to `url`: the API's own host, or Replicate's over https."""
    target, base = urlsplit(url), urlsplit(base_url)
    if (target.scheme, target.netloc) == (base.scheme, base.netloc):
        return True
    return target.scheme == "https" and host_allowed(target.hostname or "", STREAM_HOSTS)


async def events(lines: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """Server-sent events from a body's lines (comments and unknown fields skipped)."""
    event = Event()
    async for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:  # a blank line ends the event
            if event.data or event.name != "message":
                yield event
            event = Event()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event.name = value
        elif name == "data":
            event.data.append(value)


async def read_stream(session: aiohttp.ClientSession, url: str, on_text: OnText) -> None:
    """Hand every `output` piece to `on_text` until `done`; StreamError on `error`."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    try:
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status != 200:
                raise StreamLost(f"HTTP {response.status}")
            async for event in events(_lines(response.content)):
                data = "\n".join(event.data)
                if event.name == "output":
                    await on_text(data)
                elif event.name == "error":
                    raise StreamError(f"the model failed: {_detail(data)}")
                elif event.name == "done":
                    return
    except (aiohttp.ClientError, UnicodeError) as exc:
        raise StreamLost(type(exc).__name__) from None
    raise StreamLost("the stream ended before `done`")


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    while line := await content.readline():
        yield line


def _detail(data: str) -> str:
    """An error event's text: its JSON `detail` when it has one."""
    try:
        value = json.loads(data)
    except ValueError:
        return data[:300] or "no details"
    if isinstance(value, dict) and value.get("detail"):
        return str(value["detail"])[:300]
    return data[:300]
