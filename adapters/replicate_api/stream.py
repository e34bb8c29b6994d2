"""A language model's answer as it is written: Replicate's server-sent events.

A prediction of a language model carries `urls.stream`; a GET of it with
`Accept: text/event-stream` and the token yields events: `output` (a piece of
the answer; a piece with line breaks comes as several `data:` lines), `logs`,
`error` (the prediction failed) and `done` (data `{}`, or `{"reason":
"canceled"}`). `read_stream` hands the pieces on as they arrive, those one read
of the socket brought as one text (twenty answers streaming at once were
~6,600 lines read one by one, each through aiohttp's reader and the plan
parser, on the loop that starts the images), and returns at `done`.
Anything else (a refused or broken stream) is `StreamLost`: the
caller then polls the prediction for its answer, as it would without a stream.

The token goes only to the API's own host or to a `*.replicate.com` host over
https (where Replicate serves its streams), never to another host a stream URL
might name.
"""

from __future__ import annotations

import codecs
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


class EventParser:
    """Server-sent events out of a body read in chunks of any size (comments and unknown
    fields skipped; a line or a character split between chunks waits for the rest)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._rest = ""  # the start of a line whose end has not come yet
        self._event = Event()

    def feed(self, chunk: bytes) -> list[Event]:
        """The events that `chunk` completed, in order."""
        *lines, self._rest = (self._rest + self._decoder.decode(chunk)).split("\n")
        done: list[Event] = []
        for raw in lines:
            line = raw.rstrip("\r")
            if not line:  # a blank line ends the event
                if self._event.data or self._event.name != "message":
                    done.append(self._event)
                self._event = Event()
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self._event.name = value
            elif name == "data":
                self._event.data.append(value)
        return done


async def batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[Event]]:
    """The events of a body, grouped by the chunk that completed them."""
    parser = EventParser()
    async for chunk in chunks:
        if found := parser.feed(chunk):
            yield found


async def read_stream(session: aiohttp.ClientSession, url: str, on_text: OnText) -> None:
    """Hand the `output` pieces to `on_text` (those of one read as one text) until `done`;
    StreamError on `error`."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    try:
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status != 200:
                raise StreamLost(f"HTTP {response.status}")
            async for batch in batches(response.content.iter_any()):
                if await _hand_on(batch, on_text):
                    return
    except (aiohttp.ClientError, UnicodeError) as exc:
        raise StreamLost(type(exc).__name__) from None
    raise StreamLost("the stream ended before `done`")


async def _hand_on(batch: list[Event], on_text: OnText) -> bool:
    """The batch's `output` pieces to `on_text` as one text; True at `done`."""
    pieces: list[str] = []
    for event in batch:
        data = "\n".join(event.data)
        if event.name == "output":
            pieces.append(data)
        elif event.name in ("error", "done"):
            if pieces:  # what was written before the end goes first
                await on_text("".join(pieces))
                pieces = []
            if event.name == "error":
                raise StreamError(f"the model failed: {_detail(data)}")
            return True
    if pieces:
        await on_text("".join(pieces))
    return False


def _detail(data: str) -> str:
    """An error event's text: its JSON `detail` when it has one."""
    try:
        value = json.loads(data)
    except ValueError:
        return data[:300] or "no details"
    if isinstance(value, dict) and value.get("detail"):
        return str(value["detail"])[:300]
    return data[:300]
