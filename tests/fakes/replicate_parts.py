"""Pieces of the fake Replicate API: latency profiles, canned outputs, faults, error replies."""

from __future__ import annotations

import io
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from PIL import Image

PROFILES = {  # seconds per prediction, by kind
    "fast": {"text": 0.02, "image": 0.02, "video": 0.05},
    "bench": {"text": 0.1, "image": 0.3, "video": 3.0},  # the old tool's latencies / 100
    "real": {"text": 3.0, "image": 1.0, "video": 90.0},
}
KINDS = {
    "meta/meta-llama-3-8b-instruct": "text",
    "black-forest-labs/flux-schnell": "image",
    "black-forest-labs/flux-dev": "image",
    "bytedance/seedance-1-lite": "video",
}
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(2048)
COUNT_RE = re.compile(r"exactly (\d+)")
THEME_RE = re.compile(r'for the theme "([^"]*)"')


def png(color: tuple[int, int, int] = (200, 80, 120)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(out, "PNG")
    return out.getvalue()


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def default_reply(prompt: str) -> str:
    """A plausible LLM answer: prose and a fenced JSON list of the plans asked for."""
    count = int(m[1]) if (m := COUNT_RE.search(prompt)) else 3
    theme = m[1] if (m := THEME_RE.search(prompt)) else "things"
    plans = [
        {
            "name": f"{theme.title()} Item {i + 1}",
            "product_type": ("mug", "t-shirt", "poster", "tote bag")[i % 4],
            "tagline": f"All about {theme}.",
            "image_prompt": f"product photo of a {theme} item number {i + 1}",
            "video_prompt": f"slow orbit around {theme} item {i + 1}",
        }
        for i in range(count)
    ]
    return f"Sure! Here are the plans:\n```json\n{json.dumps(plans, indent=1)}\n```\nEnjoy."


@dataclass
class Fault:
    """One injected create failure (kinds below)."""

    # '429', '500', '502', '503', '504'; 'drop_before' / 'drop_after': the connection
    # closes before / after the prediction is made; 'stall_before' / 'stall_after':
    # no answer at all (the client's read timeout fires), before / after it is made.

    kind: str
    retry_after: str | None = None  # Retry-After header of a 429
    resets_in: float | None = None  # "resets in ~Ns" in a 429 body


@dataclass
class CreateLimit:
    rate_per_s: float
    capacity: float
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate_per_s)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def error_reply(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": detail, "status": status}, status=status, headers=headers)


def fault_reply(request: web.Request, fault: Fault) -> web.Response:
    if fault.kind == "drop_before":
        request.transport.close()  # type: ignore[union-attr]
        return web.Response()
    if fault.kind == "429":
        detail = "Request was throttled."
        if fault.resets_in is not None:
            detail += f" Your rate limit resets in ~{fault.resets_in:g}s."
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        return error_reply(429, detail, headers)
    return error_reply(int(fault.kind), "injected server error")
