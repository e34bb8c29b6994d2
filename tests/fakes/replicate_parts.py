"""Pieces of the fake Replicate API: latency profiles, canned outputs, faults, error replies,
the model and version objects it serves, and input validation against a model's schema."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import io
import json
import math
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import imageio_ffmpeg
from aiohttp import web
from PIL import Image

PROFILES = {  # seconds per prediction, by kind
    "fast": {"text": 0.02, "image": 0.02, "video": 0.05},
    "bench": {"text": 0.1, "image": 0.3, "video": 3.0},  # the old tool's latencies / 100
    "real": {"text": 3.0, "image": 1.0, "video": 90.0},
}
STUB_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(2048)
"""MP4 bytes no player can play (no `moov` box): for tests that do not care about clips
(`FakeReplicate.video = STUB_MP4`), the reel then fails at once."""


@functools.cache
def playable_mp4() -> bytes:
    """A real, playable H.264 MP4 like a small image-to-video output (2 s, 256x256, 24 fps),
    made once per process with the bundled ffmpeg (~0.1 s)."""
    with tempfile.TemporaryDirectory(prefix="fake-clip-") as folder:
        out = os.path.join(folder, "clip.mp4")
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
                "-f", "lavfi", "-i", "testsrc2=size=256x256:rate=24:duration=2",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-movflags", "+faststart", out,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        with open(out, "rb") as f:
            return f.read()


def png(color: tuple[int, int, int] = (200, 80, 120)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(out, "PNG")
    return out.getvalue()


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


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

    def wait_s(self) -> float:
        """Seconds until the next token (as of the last `take`)."""
        return max(0.0, (1.0 - self.tokens) / self.rate_per_s)


def make_limit(rate_per_min: float | None, burst_s: float, burst: int | None) -> CreateLimit | None:
    """A full bucket of `burst` tokens (default: `burst_s` seconds' worth, at least 1)."""
    if not rate_per_min:
        return None
    rate = rate_per_min / 60
    limit = CreateLimit(rate, float(burst) if burst else max(1.0, rate * burst_s))
    limit.tokens = limit.capacity
    return limit


def throttled_reply(limit: CreateLimit) -> web.Response:
    """A 429 as a small account gets it: "resets in ~Ns" (N rounded up) and `retry_after`."""
    wait = limit.wait_s()
    detail = f"Request was throttled. Your rate limit resets in ~{max(1, math.ceil(wait))}s."
    body = {"detail": detail, "status": 429, "retry_after": round(wait, 3)}
    return web.json_response(body, status=429)


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


# --- models, versions and input validation ------------------------------------------

URI_PREFIXES = ("http://", "https://", "data:")
COG_VERSION = "0.13.6"


def version_json(version: str, components: Mapping[str, Any], created_at: str) -> dict[str, Any]:
    """A version object as `GET /v1/models/{owner}/{name}/versions/{id}` answers it."""
    return {
        "id": version,
        "created_at": created_at,
        "cog_version": COG_VERSION,
        "openapi_schema": {
            "openapi": "3.0.2",
            "info": {"title": "Cog", "version": "0.1.0"},
            "paths": {},
            "components": {"schemas": dict(components)},
        },
    }


def model_json(name: str, description: str, runs: int, latest: dict[str, Any]) -> dict[str, Any]:
    """A model object as `GET /v1/models/{owner}/{name}` answers it."""
    owner, short = name.split("/", 1)
    return {
        "url": f"https://replicate.com/{name}",
        "owner": owner,
        "name": short,
        "description": description,
        "visibility": "public",
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": runs,
        "cover_image_url": f"https://replicate.delivery/fake/{short}/cover.webp",
        "default_example": None,
        "latest_version": latest,
    }


def check_inputs(
    components: Mapping[str, Any], inputs: Mapping[str, Any]
) -> tuple[list[dict[str, str]], list[str]]:
    """What Replicate would refuse (its `invalid_fields`) and the inputs it would ignore."""
    schema = components.get("Input") or {}
    declared: Mapping[str, Any] = schema.get("properties") or {}
    refused = [
        _invalid("required", "input", f"{name} is required")
        for name in schema.get("required") or ()
        if name not in inputs
    ]
    for name, value in inputs.items():
        if name in declared:
            refused += _check_value(name, resolve(declared[name], components), value)
    return refused, [name for name in inputs if name not in declared]


def resolve(spec: Mapping[str, Any], components: Mapping[str, Any]) -> dict[str, Any]:
    """The property with the keys of the components it points to (`allOf`, `$ref`) merged in."""
    merged: dict[str, Any] = {}
    parts = [*(spec.get("allOf") or ()), *([{"$ref": spec["$ref"]}] if "$ref" in spec else [])]
    for part in parts:
        target = components.get(str(part.get("$ref", "")).rsplit("/", 1)[-1], part)
        merged.update(resolve(target, components) if target is not part else part)
    merged.update({k: v for k, v in spec.items() if k not in ("allOf", "$ref")})
    return merged


def _check_value(name: str, spec: Mapping[str, Any], value: Any) -> list[dict[str, str]]:
    field_name = f"input.{name}"
    given, expected = _json_type(value), spec.get("type")
    if expected and not (given == expected or (expected == "number" and given == "integer")):
        message = f"Invalid type. Expected: {expected}, given: {given}"
        return [_invalid("invalid_type", field_name, message)]
    found = []
    if "enum" in spec and value not in spec["enum"]:
        allowed = ", ".join(json.dumps(v) for v in spec["enum"])
        found.append(
            _invalid("enum", field_name, f"{name} must be one of the following: {allowed}")
        )
    if given in ("integer", "number"):
        if "minimum" in spec and value < spec["minimum"]:
            message = f"Must be greater than or equal to {json.dumps(spec['minimum'])}"
            found.append(_invalid("number_gte", field_name, message))
        if "maximum" in spec and value > spec["maximum"]:
            message = f"Must be less than or equal to {json.dumps(spec['maximum'])}"
            found.append(_invalid("number_lte", field_name, message))
    if spec.get("format") == "uri" and not str(value).startswith(URI_PREFIXES):
        found.append(_invalid("format", field_name, "Does not match format 'uri'"))
    return found


def _json_type(value: Any) -> str:
    """The JSON Schema type of a decoded JSON value (5.0 counts as an integer, as in JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _invalid(kind: str, field_name: str, description: str) -> dict[str, str]:
    return {"type": kind, "field": field_name, "description": description}


def invalid_reply(refused: list[dict[str, str]]) -> web.Response:
    """Replicate's 422 for inputs that fail the model's schema."""
    detail = "".join(f"- {f['field']}: {f['description']}\n" for f in refused)
    body = {
        "detail": detail,
        "status": 422,
        "title": "Input validation failed",
        "invalid_fields": refused,
    }
    return web.json_response(body, status=422)


def render_prompt(inputs: Mapping[str, Any], components: Mapping[str, Any]) -> str:
    """What a language model reads: its `prompt_template` (or the default) around `prompt`."""
    declared = (components.get("Input") or {}).get("properties") or {}
    prompt = str(inputs.get("prompt", ""))
    if "prompt_template" not in declared:
        return prompt
    template = inputs.get("prompt_template", declared["prompt_template"].get("default"))
    return str(template or "{prompt}").replace("{prompt}", prompt)


def signed_webhook(body: str, secret: str) -> dict[str, str]:
    """Headers of a webhook POST signed like Replicate's (HMAC-SHA256 over id.timestamp.body)."""
    webhook_id, stamp = f"msg_{secrets.token_hex(8)}", str(int(time.time()))
    key = base64.b64decode(secret.split("_", 1)[1])
    digest = hmac.new(key, f"{webhook_id}.{stamp}.{body}".encode(), hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": f"v1,{base64.b64encode(digest).decode()}",
    }
