"""Download prediction outputs with a client that carries no Replicate token.

The replicate client's own `FileOutput.read()` sends the API token to
whatever host an output URL names; this downloader has no credentials at
all. Any chat user may pick the model, so the model picks the output URL:
it is treated as hostile.

- Hosts are allowed by name (`OUTPUT_HOSTS`: Replicate's delivery hosts, plus
  what the operator adds); every redirect hop is checked the same way.
- Every address a name resolves to must be public: loopback, private,
  link-local, reserved, multicast, unspecified, cloud metadata addresses and
  IPv6 forms that embed them (IPv4-mapped, 6to4, NAT64) are refused before any
  connection is made. `allow_private` (REPLICATE_ALLOW_PRIVATE_OUTPUTS, local
  testing only) lifts this check.
- The connection goes to the address that was checked (the name is resolved
  once, in `GuardedResolver`, and aiohttp connects to what it returned); TLS
  still verifies the certificate against the name (SNI), and the Host header is
  the name. A DNS answer that changes between the check and the connection
  (rebinding) therefore cannot redirect it. An IP literal is checked the same
  way before any request. Proxy variables (HTTPS_PROXY, ...) are ignored:
  through a proxy the address could not be checked.

aiohttp, not httpx: twenty 160 kB videos arriving at once took ~35 ms of the
event loop's time through httpx and ~8 ms through aiohttp, and the last product
of a campaign is delivered when its video is saved.

It also accepts https only (plain http when explicitly allowed, for local
testing), caps the size, checks the content type (and the file's first bytes)
against the expected kind, handles `data:` URIs, and writes the file atomically.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from adapters.files import atomic_path
from adapters.replicate_api.hosts import OUTPUT_HOSTS, host_allowed, host_patterns
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
MAX_HOPS = 5  # redirects followed, each checked like the first URL
_REDIRECTS = (301, 302, 303, 307, 308)
DECODE_INLINE_MAX = 1 << 20  # larger data: URIs are decoded in a thread, off the event loop
# Smaller files are written on the event loop: into the page cache that takes ~0.1 ms, where
# a trip to a worker thread and back costs milliseconds while twenty downloads end at once.
WRITE_INLINE_MAX = 256 << 10
# Where Replicate serves prediction outputs: replicate.delivery and its subdomains
# (pbxt.replicate.delivery, tjzk.replicate.delivery, ...).
# Cloud metadata services, refused even where they are not link-local or private.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200",
              "168.63.129.16")
)  # fmt: skip
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_ANY = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], Awaitable[list[str]]]  # (host, port) -> addresses


class UnsafeOutput(PermanentStepError):
    """An output URL that points where downloads may not go (host or address)."""


class OutputGone(PermanentStepError):
    """The output file no longer exists (Replicate deletes outputs after an hour)."""


@functools.cache
def shared_tls() -> ssl.SSLContext:
    """The default TLS trust (certifi's, as httpx builds it), built once per process (each
    build costs ~50 ms); the API client and the downloads share it."""
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


def unsafe_address(address: str) -> str | None:
    """Why downloads may not connect to this IP address, or None for a public one."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        teredo = ip.teredo[1] if ip.teredo else None
        nat64 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None
        for inner in (ip.ipv4_mapped, ip.sixtofour, teredo, nat64):
            if inner is not None and (why := unsafe_address(str(inner))):
                return f"{why} (inside {ip.compressed})"
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for flag in ("loopback", "link_local", "private", "reserved", "multicast", "unspecified"):
        if getattr(ip, f"is_{flag}"):
            return f"a {flag.replace('_', '-')} address"
    if getattr(ip, "is_site_local", False) or not ip.is_global:
        return "not a public address"
    return None


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order (the event loop's getaddrinfo)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing a name if any address it resolves to is not public.

    The connector connects to the addresses returned here, the ones that were checked
    (a name is not looked up again), and keeps them for its DNS cache's lifetime.
    `trusted` networks skip the public-address check (local testing only).
    """

    def __init__(self, *, trusted: Iterable[IPNetwork] = (), resolve: Resolve = resolve_host):
        self._trusted = tuple(trusted)
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Every address of `host`, all checked; UnsafeOutput if one is not public."""
        try:
            found = await self._resolve(host, port)
        except OSError as exc:
            raise TransientStepError(f"cannot resolve {host}: {exc}") from None
        addresses = [a.partition("%")[0] for a in found]  # scope ids (fe80::1%eth0) not needed
        if not addresses:
            raise TransientStepError(f"{host} has no address")
        for address in addresses:
            self.check(host, address)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release."""

    def check(self, host: str, address: str) -> None:
        """UnsafeOutput unless `address` is public (or trusted)."""
        ip = ipaddress.ip_address(address)
        if any(ip.version == net.version and ip in net for net in self._trusted):
            return
        if (why := unsafe_address(address)) is not None:
            raise UnsafeOutput(f"refusing to download output from {host}: {why}")


Offload = Callable[..., Awaitable[Any]]  # asyncio.to_thread's shape


class Downloader:
    """Fetches output files into a folder; one per event loop (owns an aiohttp session).

    `hosts`: allowed output host names or `*.domain` patterns. `allow_private`:
    True trusts every address, or give the networks to trust (local testing only).
    """

    def __init__(
        self,
        *,
        max_bytes: int,
        allow_http: bool = False,
        hosts: Iterable[str] = OUTPUT_HOSTS,
        allow_private: bool | Iterable[str] = False,
        timeout_s: float = 60.0,
        resolve: Resolve = resolve_host,
        offload: Offload = asyncio.to_thread,  # runs blocking work off the event loop
    ):
        self.max_bytes = max_bytes
        self._offload = offload
        self.allow_http = allow_http
        self.hosts = host_patterns(hosts)
        trusted = _ANY if allow_private is True else () if allow_private is False else allow_private
        self._resolver = GuardedResolver(
            trusted=[ipaddress.ip_network(n) for n in trusted], resolve=resolve
        )
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use (it belongs to the running event loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._resolver, ssl=shared_tls()),
                timeout=self._timeout,
                headers={"User-Agent": "campaign-bot"},
                trust_env=False,  # no proxies: the address could not be checked through one
            )
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()

    async def fetch(self, url: str, stem: Path, kind: str) -> str:
        """Save the output at `url` as `stem` + extension; `kind` is 'image' or 'video'."""
        if url.startswith("data:") and len(url) > DECODE_INLINE_MAX:
            media, body = await self._offload(_decode_data_uri, url, self.max_bytes)
        elif url.startswith("data:"):
            media, body = _decode_data_uri(url, self.max_bytes)
        else:
            media, body = await self._get(url)  # the URL is checked there, every hop
        media = _checked_type(media, body[:16], kind)
        path = str(stem.with_suffix(EXTENSIONS[media]))
        if len(body) <= WRITE_INLINE_MAX:
            _write(path, body)
        else:
            await self._offload(_write, path, body)
        return path

    def check_url(self, url: str | URL) -> URL:
        """The URL, parsed as it will be fetched, if it may be: https (or http, when
        allowed) on an allowed output host, and an IP literal only if it is public."""
        try:
            parts = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError):
            raise UnsafeOutput("refusing to download output from a malformed URL") from None
        allowed = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in allowed or not parts.raw_host:
            raise UnsafeOutput(
                f"refusing to download output from a {parts.scheme or 'relative'} URL"
            )
        host = parts.raw_host
        if not host_allowed(host, self.hosts):
            raise UnsafeOutput(
                f"refusing to download output from {host[:100]}: not an output host"
                f" (allowed: {', '.join(self.hosts)}; add hosts with REPLICATE_OUTPUT_HOSTS)"
            )
        with contextlib.suppress(ValueError):  # a name: checked when it is resolved
            self._resolver.check(host, str(ipaddress.ip_address(host)))
        return parts

    async def _get(self, url: str) -> tuple[str, bytes]:
        target = self.check_url(url)
        try:
            for _ in range(MAX_HOPS + 1):
                async with self._client().get(target, allow_redirects=False) as response:
                    location = response.headers.get("Location")
                    if response.status in _REDIRECTS and location:
                        target = self.check_url(_joined(target, location))  # before it is sent
                        continue
                    _check_status(response.status)
                    declared = response.content_length or 0
                    if declared > self.max_bytes:
                        raise PermanentStepError(_too_big(declared, self.max_bytes))
                    body = await self._read_capped(response)
                    media = response.headers.get("Content-Type", "").split(";")[0]
                    return media.strip().lower(), body
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise TransientStepError(f"output download failed ({type(exc).__name__})") from None
        except aiohttp.ClientError as exc:  # a malformed answer
            raise PermanentStepError(f"output download failed ({type(exc).__name__})") from None
        raise PermanentStepError(f"output download failed (more than {MAX_HOPS} redirects)")

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise PermanentStepError(_too_big(size, self.max_bytes))
            chunks.append(chunk)
        return b"".join(chunks)


def _joined(base: URL, location: str) -> URL:
    """Where a redirect points, relative to the URL that answered it."""
    try:
        return base.join(URL(location))
    except (ValueError, TypeError):
        raise UnsafeOutput("refusing to follow a malformed redirect") from None


def _check_status(status: int) -> None:
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
