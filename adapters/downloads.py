"""Download prediction outputs with a client that carries no Replicate token.

The replicate client's own `FileOutput.read()` sends the API token to
whatever host an output URL names; this downloader has no credentials at
all. It accepts https only (plain http when explicitly allowed, for local
testing), follows redirects only to allowed URLs, caps the size, checks the
content type (and the file's first bytes) against the expected kind, handles
`data:` URIs, and writes the file atomically.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import ssl
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

import httpx

from adapters.files import atomic_path
from core.errors import PermanentStepError, TransientStepError

EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
}
_CHUNK = 1 << 16
DECODE_INLINE_MAX = 1 << 20  # larger data: URIs are decoded in a thread, off the event loop


class OutputGone(PermanentStepError):
    """The output file no longer exists (Replicate deletes outputs after an hour)."""


@functools.cache
def shared_tls() -> ssl.SSLContext:
    """httpx's default TLS trust, built once per process (each build costs ~50 ms)."""
    return httpx.create_ssl_context()


def sniff(head: bytes) -> str | None:
    """The media type a file's first bytes announce, if known."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:10] == b"qt" else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


class Downloader:
    """Fetches output files into a folder; one per event loop (owns an httpx client)."""

    def __init__(self, *, max_bytes: int, allow_http: bool = False, timeout_s: float = 60.0):
        self.max_bytes = max_bytes
        self.allow_http = allow_http
        self._client = httpx.AsyncClient(
            verify=shared_tls(),
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            follow_redirects=True,
            event_hooks={"request": [self._check_hop]},
            headers={"User-Agent": "campaign-bot"},
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def fetch(self, url: str, stem: Path, kind: str) -> str:
        """Save the output at `url` as `stem` + extension; `kind` is 'image' or 'video'."""
        if url.startswith("data:") and len(url) > DECODE_INLINE_MAX:
            media, body = await asyncio.to_thread(_decode_data_uri, url, self.max_bytes)
        elif url.startswith("data:"):
            media, body = _decode_data_uri(url, self.max_bytes)
        else:
            self.check_url(url)
            media, body = await self._get(url)
        media = _checked_type(media, body[:16], kind)
        path = str(stem.with_suffix(EXTENSIONS[media]))
        await asyncio.to_thread(_write, path, body)
        return path

    def check_url(self, url: str) -> None:
        """Refuse URLs that are not https (or http, when allowed)."""
        parts = urlsplit(url)
        allowed = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in allowed or not parts.hostname:
            raise PermanentStepError(
                f"refusing to download output from a {parts.scheme or 'relative'} URL"
            )

    async def _check_hop(self, request: httpx.Request) -> None:
        self.check_url(str(request.url))  # redirects are checked too

    async def _get(self, url: str) -> tuple[str, bytes]:
        try:
            async with self._client.stream("GET", url) as response:
                _check_status(response)
                declared = int(response.headers.get("content-length") or 0)
                if declared > self.max_bytes:
                    raise PermanentStepError(_too_big(declared, self.max_bytes))
                body = await self._read_capped(response)
                media = response.headers.get("content-type", "").split(";")[0].strip().lower()
                return media, body
        except httpx.TransportError as exc:
            raise TransientStepError(f"output download failed ({type(exc).__name__})") from None

    async def _read_capped(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise PermanentStepError(_too_big(size, self.max_bytes))
            chunks.append(chunk)
        return b"".join(chunks)


def _check_status(response: httpx.Response) -> None:
    status = response.status_code
    if status in (404, 410):
        raise OutputGone(f"output file is gone (HTTP {status}); outputs expire after 1 h")
    if status >= 500 or status == 429:
        raise TransientStepError(f"output download failed (HTTP {status})")
    if status >= 400:
        raise PermanentStepError(f"output download refused (HTTP {status})")


def _decode_data_uri(url: str, max_bytes: int) -> tuple[str, bytes]:
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise PermanentStepError("malformed data: URI in the output")
    parts = header.split(";")
    if len(payload) * 3 // 4 > max_bytes:
        raise PermanentStepError(_too_big(len(payload) * 3 // 4, max_bytes))
    try:
        body = (
            base64.b64decode(payload, validate=True)
            if "base64" in parts[1:]
            else unquote_to_bytes(payload)
        )
    except (binascii.Error, ValueError):
        raise PermanentStepError("malformed data: URI in the output") from None
    return parts[0].strip().lower(), body


def _checked_type(declared: str, head: bytes, kind: str) -> str:
    """The file's media type; refuses anything that is not the expected kind."""
    sniffed = sniff(head)
    media = declared if declared in EXTENSIONS else sniffed
    if media is None or not media.startswith(f"{kind}/"):
        shown = declared or "no content type"
        raise PermanentStepError(f"output is not a {kind} ({shown})")
    if sniffed is not None and not sniffed.startswith(f"{kind}/"):
        raise PermanentStepError(f"output is not a {kind} (its bytes say {sniffed})")
    return media


def _too_big(size: int, limit: int) -> str:
    return f"output is too large ({size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB)"


def _write(path: str, body: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(body)
