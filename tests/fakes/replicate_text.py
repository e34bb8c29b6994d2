"""The fake's language model: answers like a model would, written over time, and streamed.

`default_reply` reads the prompt as a model would: as many products as it asks
for ("exactly N"), only the fields it names ("with these string fields: a, b"),
and the products it lists by name (`1. "Name" (mug)`), about 150 tokens (600
characters) per product when every field is asked for. `TextTiming` makes the
run time grow with the answer, like a real model's: the first token after
`ttft_s`, then `tokens_per_s` (a token is 4 characters). `sse_answer` serves a
prediction's `urls.stream` as Replicate does: `event: output` pieces (a piece
with line breaks as several `data:` lines), then `event: done` with `{}` or
`{"reason": "canceled"}`, or `event: error` for a failed prediction; it needs
the token like every other call.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

COUNT_RE = re.compile(r"exactly (\d+)")
THEME_RE = re.compile(r'for the theme "([^"]*)"')
FIELDS_RE = re.compile(r"with these string fields: ([a-z_, ]+)")
LISTED_RE = re.compile(r'^\d+\. "([^"]+)" \(([^)]+)\)$', re.MULTILINE)
ALL_FIELDS = ("name", "product_type", "tagline", "image_prompt", "video_prompt")
TYPES = ("mug", "t-shirt", "poster", "tote bag")
CHARS_PER_TOKEN = 4
PIECE_CHARS = 7  # what one streamed `output` event carries, about two tokens
TICK_S = 0.003  # pieces due within this go out together (a waking per piece costs the CPU)
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
ENDED = TERMINAL - {"succeeded"}  # the stream stops early


@dataclass(frozen=True)
class TextTiming:
    """How long a language model takes: first token after `ttft_s`, then `tokens_per_s`."""

    ttft_s: float = 0.05
    tokens_per_s: float = 10_000.0

    def latency(self, answer: str) -> float:
        """Seconds from create to the last token of `answer`."""
        return self.ttft_s + len(answer) / CHARS_PER_TOKEN / self.tokens_per_s


def default_reply(prompt: str) -> str:
    """A plausible LLM answer: prose and a fenced JSON list of what the prompt asks for."""
    count = int(m[1]) if (m := COUNT_RE.search(prompt)) else 3
    theme = m[1] if (m := THEME_RE.search(prompt)) else "things"
    fields = _fields(prompt)
    listed = LISTED_RE.findall(prompt)
    items = [_item(theme, i, listed[i] if i < len(listed) else None) for i in range(count)]
    plans = [{k: v for k, v in item.items() if k in fields} for item in items]
    return f"Sure! Here are the plans:\n```json\n{json.dumps(plans, indent=1)}\n```\nEnjoy."


def _fields(prompt: str) -> tuple[str, ...]:
    match = FIELDS_RE.search(prompt)
    if match is None:
        return ALL_FIELDS
    asked = tuple(f.strip() for f in match[1].split(",") if f.strip())
    return tuple(f for f in asked if f in ALL_FIELDS) or ALL_FIELDS


def _item(theme: str, i: int, listed: tuple[str, str] | None) -> dict[str, str]:
    name, kind = listed or (f"{theme.title()} Item {i + 1}", TYPES[i % len(TYPES)])
    return {
        "name": name,
        "product_type": kind,
        "tagline": f"All about {theme}: the {kind} that says it for you.",
        "image_prompt": (
            f"product photo of a {kind} featuring {theme}, item number {i + 1}, centered on a "
            "seamless pastel backdrop, soft diffused studio light from the upper left, gentle "
            "shadow under the product, crisp printed artwork with clean edges, shallow depth "
            "of field, high detail, 85mm lens, commercial catalogue look"
        ),
        "video_prompt": (
            f"slow orbit around the {theme} {kind} number {i + 1}, camera rising gently while "
            "the light sweeps across the print, smooth motion, shallow depth of field"
        ),
    }


def pieces(answer: str) -> list[str]:
    """The answer cut as a model streams it."""
    return [answer[i : i + PIECE_CHARS] for i in range(0, len(answer), PIECE_CHARS)]


def _event(name: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {name}\n{lines}\n".encode()


async def sse_answer(
    request: web.Request,
    answer: str,
    born: float,
    timing: tuple[float, float],
    state: Callable[[], dict[str, Any]],
) -> web.StreamResponse:
    """Stream `answer` over [born + ttft, born + latency] (`timing`), then the outcome."""
    ttft_s, latency = timing
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    parts = pieces(answer)
    through = list(itertools.accumulate(len(p) for p in parts))
    total, sent = max(1, len(answer)), 0
    while sent < len(parts) and state()["status"] not in ENDED:
        now, upto = time.monotonic(), sent
        while upto < len(parts) and _due(born, ttft_s, latency, through[upto], total) <= now:
            upto += 1
        if upto == sent:
            await asyncio.sleep(
                max(0.0005, _due(born, ttft_s, latency, through[sent], total) - now)
            )
            continue
        await response.write(b"".join(_event("output", p) for p in parts[sent:upto]))
        sent = upto
    # a model that hangs: until it is canceled (status is computed when read: no event)
    while state()["status"] not in TERMINAL:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    await response.write(_closing(state()))
    await response.write_eof()
    return response


def _due(born: float, ttft_s: float, latency: float, through: int, total: int) -> float:
    """When the answer's first `through` characters have been written."""
    return born + ttft_s + (latency - ttft_s) * through / total


def _closing(prediction: dict[str, Any]) -> bytes:
    status = prediction["status"]
    if status == "failed":
        return _event("error", json.dumps({"detail": prediction.get("error") or "failed"}))
    if status in ("canceled", "aborted"):
        return _event("done", json.dumps({"reason": "canceled"}))
    return _event("done", "{}")
