"""The one HTTP layer for Replicate: our own httpx client, the rate buckets, one retry policy.

Every request the bot makes to the Replicate API (create, get, list, cancel,
upload, the webhook secret) goes through `ReplicateHttp.send`: it takes a token
from the right bucket (creates from the create bucket, 600/min; everything else
from the read bucket, 3,000/min), sends one request with a timeout, and sorts
the answer into a body, a `Retry` (worth another attempt: 429, 503, the
ambiguous 500/502/504, connection trouble) or a `PermanentStepError`.
`backoff` is the one retry delay: the API's `Retry-After` (seconds or an HTTP
date) or "resets in ~Ns" when given, else exponential with jitter, both
capped; a 429 also pauses the bucket for every caller.

There is no second retry layer underneath: the `replicate` package's client
retries GETs up to 10 times inside its transport, out of sight of our buckets,
so it is not used for requests at all. Its `ReplicateError` still parses
error bodies. The token is sent only to the API's base URL and never appears in
a message (`safe`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from replicate.exceptions import ReplicateError

from adapters.downloads import shared_tls
from adapters.replicate_rate import Sleep, TokenBucket
from adapters.replicate_settings import ReplicateSettings
from core.errors import PermanentStepError

log = logging.getLogger(__name__)

Json = dict[str, Any]
DEFAULT_BASE_URL = "https://api.replicate.com"
AMBIGUOUS_STATUS = frozenset({500, 502, 504})  # may have been done before it failed
RETRY_STATUS = frozenset({429, 503}) | AMBIGUOUS_STATUS
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Keep every pooled connection alive: under a backlog, httpx's default of 20
# idle connections makes most requests open a new one.
LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=200)
_RESETS_RE = re.compile(r"resets in ~?\s*(\d+(?:\.\d+)?)\s*s")


class Retry(Exception):
    """One failed attempt that is worth another; `ambiguous` if it may have been done."""

    def __init__(
        self,
        reason: str,
        delay_s: float | None = None,
        *,
        ambiguous: bool = False,
        throttled: bool = False,
    ) -> None:
        super().__init__(reason)
        self.delay_s = delay_s
        self.ambiguous = ambiguous
        self.throttled = throttled


class ReplicateHttp:
    """Requests to the Replicate API within its rate limits (one per event loop)."""

    def __init__(
        self,
        settings: ReplicateSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,  # asyncio.sleep; tests pass one that advances `clock`
    ) -> None:
        self.settings = settings
        headers = {"User-Agent": "campaign-bot"}
        if settings.api_token:
            headers["Authorization"] = f"Bearer {settings.api_token}"
        self._client = httpx.AsyncClient(
            base_url=settings.base_url or DEFAULT_BASE_URL,
            headers=headers,
            timeout=httpx.Timeout(settings.read_timeout_s, write=30.0, connect=5.0, pool=10.0),
            transport=httpx.AsyncHTTPTransport(verify=shared_tls(), limits=LIMITS),
            follow_redirects=False,  # never carry the token to another host
        )
        self._sleep = sleep
        burst = settings.burst_s
        self.creates = TokenBucket(
            settings.create_per_min,
            burst=settings.create_per_min / 60 * burst,
            clock=clock,
            sleep=sleep,
        )
        self.reads = TokenBucket(
            settings.read_per_min,
            burst=settings.read_per_min / 60 * burst,
            clock=clock,
            sleep=sleep,
        )
        self.stats: Counter[str] = Counter()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        create: bool = False,
        priority: float = 0.0,
        timeout_s: float | None = None,
        **kwargs: Any,
    ) -> Json:
        """One request after a token from its bucket; raises Retry or PermanentStepError."""
        await (self.creates if create else self.reads).take(priority)
        self.stats["requests"] += 1
        if timeout_s is not None:
            kwargs["timeout"] = httpx.Timeout(timeout_s, write=30.0, connect=5.0, pool=10.0)
        try:
            response = await self._client.request(method, path, **kwargs)
        except NOT_SENT as exc:
            raise Retry(type(exc).__name__) from None
        except httpx.TransportError as exc:  # sent, maybe processed: ambiguous
            raise Retry(type(exc).__name__, ambiguous=True) from None
        return self._body(response)

    async def call(self, method: str, path: str, what: str, attempts: int, **kwargs: Any) -> Json:
        """`send` with retries (for requests that are safe to repeat)."""
        for attempt in range(1, attempts):
            try:
                return await self.send(method, path, **kwargs)
            except Retry as retry:
                await self.backoff(retry, attempt, what, kwargs.get("create", False))
        return await self.send(method, path, **kwargs)

    async def backoff(self, retry: Retry, attempt: int, what: str, create: bool = False) -> None:
        """Sleep before the next attempt; a 429 also holds back every other caller."""
        cap = self.settings.retry_cap_s
        if retry.delay_s is not None:  # the API said how long; never longer than the cap
            jitter = random.uniform(0, 0.1 * self.settings.backoff_s)
            delay = max(0.0, min(cap, retry.delay_s + jitter))
        else:
            base = min(cap, self.settings.backoff_s * 2 ** (min(attempt, 16) - 1))
            delay = random.uniform(base / 2, base)
        if retry.throttled:
            (self.creates if create else self.reads).pause(delay)
        self.stats["retries"] += 1
        log.info("%s: %s; retrying in %.2f s (attempt %d)", what, retry, delay, attempt)
        await (self._sleep or asyncio.sleep)(delay)

    def safe(self, text: str) -> str:
        """`text` with the API token blotted out."""
        token = self.settings.api_token
        return text.replace(token, "[redacted]") if token else text

    def _body(self, response: httpx.Response) -> Json:
        status = response.status_code
        if status in RETRY_STATUS:
            self.stats[f"http_{status}"] += 1
            raise Retry(
                f"HTTP {status}",
                retry_after(response) if status in (429, 503) else None,
                ambiguous=status in AMBIGUOUS_STATUS,
                throttled=status == 429,
            )
        if status >= 400:
            error = ReplicateError.from_response(response)
            raise PermanentStepError(self.safe(f"Replicate refused it: {detail(error)}"))
        body = response.json()
        if not isinstance(body, dict):
            raise PermanentStepError("Replicate answered with something that is not an object")
        return body


def retry_after(response: httpx.Response, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the API asked us to wait: Retry-After (seconds or a date) or the body's hint."""
    header = response.headers.get("retry-after", "").strip()
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(header).timestamp() - now())
        except (TypeError, ValueError):
            pass
    try:
        body = response.json()
    except ValueError:
        return None
    text = str(body.get("detail", "")) if isinstance(body, Mapping) else ""
    match = _RESETS_RE.search(text)
    return float(match[1]) if match else None


def detail(error: ReplicateError) -> str:
    """A short description of an API error."""
    text = error.detail or error.title or "no details"
    return f"{text} (HTTP {error.status})"
