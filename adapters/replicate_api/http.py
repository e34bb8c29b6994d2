"""The one HTTP layer for Replicate: our own aiohttp session, the rate buckets, one retry policy.

Every request the bot makes to the Replicate API (create, get, list, cancel,
upload, the webhook secret) goes through `ReplicateHttp.send`: it takes a token
from the right budget (creates from the create budget, a `core.ports.CreateBudget`:
fair across campaigns and learning the account's real rate, at most 600/min by
default; everything else from the read bucket, 3,000/min), sends one request
with a timeout, and sorts the answer into a body, a `Retry` (worth another
attempt: 429, 503, the ambiguous 500/502/504, connection trouble) or a
`PermanentStepError`. `backoff` is the one wait between attempts (the delay is
`core.retry.Backoff`'s): the API's `Retry-After` (seconds or an HTTP date), the
body's `retry_after` or "resets in ~Ns" when given, else exponential with
jitter, both capped; a 429 also pauses its budget for every caller (a create's
429 is told to the create budget, whose next `take` waits the pause out).

There is no second retry layer underneath: the `replicate` package's client
retries GETs up to 10 times inside its transport, out of sight of our buckets,
so it is not used for requests at all. Its `ReplicateError` still parses
error bodies. aiohttp rather than httpx: with hundreds of polls in flight,
httpcore's pool spends ~1 ms of CPU per request scanning its connections,
which was the bot's largest CPU cost in the speed bench. The token is sent
only to the API's base URL and never appears in a message (`safe`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import httpx
from replicate.exceptions import ReplicateError

from adapters.replicate_api.downloads import shared_tls
from adapters.replicate_api.rate import CreateBucket, Sleep, TokenBucket
from adapters.replicate_api.settings import ReplicateSettings
from adapters.replicate_api.shared_rate import SharedCreateBudget, SharedRate
from core.errors import LeaseLost, PermanentStepError
from core.ports import CreateBudget
from core.retry import Backoff, retrying
from core.scheduler import OnPlace

log = logging.getLogger(__name__)

Json = dict[str, Any]
DEFAULT_BASE_URL = "https://api.replicate.com"
AMBIGUOUS_STATUS = frozenset({500, 502, 504})  # may have been done before it failed
RETRY_STATUS = frozenset({429, 503}) | AMBIGUOUS_STATUS
NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
AMBIGUOUS = (aiohttp.ClientError, TimeoutError)  # sent, maybe processed
MAX_CONNECTIONS = 200
_RESETS_RE = re.compile(r"resets in ~?\s*(\d+(?:\.\d+)?)\s*s")


@dataclass(frozen=True)
class CreateRate:
    """The account's create rate as this process knows it: per minute, and how many at once."""

    per_min: float
    burst: float


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


class Refused(PermanentStepError):
    """The API refused a request (4xx other than 429); `status` says how."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RateHeld(PermanentStepError):
    """A create waited for the account's rate limit past its deadline (`predict` words it)."""


class ReplicateHttp:
    """Requests to the Replicate API within its rate limits (one per event loop)."""

    def __init__(
        self,
        settings: ReplicateSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,  # asyncio.sleep; tests pass one that advances `clock`
        creates: CreateBudget | None = None,  # default: this loop's own CreateBucket
        shared: Callable[[], SharedRate | None] | None = None,  # the account's schedule
    ) -> None:
        self.settings = settings
        self._base = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._headers = {"User-Agent": "campaign-bot"}
        if settings.token:
            self._headers["Authorization"] = f"Bearer {settings.token}"
        self._session: aiohttp.ClientSession | None = None  # made in the running loop
        self._sleep = sleep
        # The delays of every retry against the API (no attempt limit: callers set theirs).
        self.policy = Backoff(base_s=settings.backoff_s, cap_s=settings.retry_cap_s)

        def burst(per_min: float) -> float:  # REPLICATE_BURST seconds' worth at once
            return per_min / 60 * settings.burst_s

        per_min = settings.create_per_min  # the ceiling: the budget learns the real rate
        self.creates: CreateBudget = creates or CreateBucket(
            per_min, burst=burst(per_min), clock=clock, sleep=sleep
        )
        if shared is not None:  # then a slot of the account's schedule, across processes
            self.creates = SharedCreateBudget(
                self.creates,
                shared,
                per_min=per_min,
                burst=max(1, int(burst(per_min)) - 1),  # one kept back: network jitter
                sleep=sleep or asyncio.sleep,
            )
        per_min = settings.read_per_min
        self.reads = TokenBucket(per_min, burst=burst(per_min), clock=clock, sleep=sleep)
        self.stats: Counter[str] = Counter()

    async def aclose(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()

    def warm(self) -> None:
        """Make the session now, so that the first campaign does not pay for it."""
        self._open()

    def create_rate(self) -> CreateRate:
        """The create rate and burst this process keeps to now: its setting, or what 429s
        have taught its bucket."""
        ceiling = self.settings.create_per_min
        local = self.creates.local if isinstance(self.creates, SharedCreateBudget) else None
        bucket = local if local is not None else self.creates
        if isinstance(bucket, CreateBucket) and bucket.rate_per_min < ceiling:  # 429s taught it
            return CreateRate(bucket.rate_per_min, bucket.capacity)
        return CreateRate(ceiling, ceiling / 60 * self.settings.burst_s)

    @property
    def base_url(self) -> str:
        """The API's address (no trailing slash)."""
        return self._base

    def session(self) -> aiohttp.ClientSession:
        """The session; its headers carry the token, so only the API's hosts may be asked."""
        return self._open()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(
                    limit=MAX_CONNECTIONS,
                    ssl=shared_tls() if self._base.startswith("https:") else False,
                ),
                timeout=_timeout(self.settings.read_timeout_s),
            )
        return self._session

    async def send(
        self,
        method: str,
        path: str,
        *,
        create: bool = False,
        key: str | None = None,
        rate_until: float | None = None,
        priority: float = 0.0,
        timeout_s: float | None = None,
        guard: Callable[[], bool] | None = None,
        on_place: OnPlace | None = None,
        **kwargs: Any,
    ) -> Json:
        """One request after a token from its budget; raises Retry or PermanentStepError.

        A create takes its token from the create budget in `key`'s turn (a
        campaign id), and raises RateHeld if it is still waiting at loop time
        `rate_until`. `guard`: asked after the token, right before sending;
        False raises LeaseLost (a paid request from a process that may have
        lost its lease). `on_place`: told the caller's place in line while it
        waits (see `TokenBucket.take`).
        """
        if create:
            await self._take_create(key or "", priority, on_place, rate_until)
        else:
            await self.reads.take(priority, on_place)
        if guard is not None and not guard():
            raise LeaseLost()
        self.stats["requests"] += 1
        if timeout_s is not None:
            kwargs["timeout"] = _timeout(timeout_s)
        if "files" in kwargs:
            kwargs["data"] = _form(kwargs.pop("files"))
        try:
            async with self._open().request(
                method, self._base + path, allow_redirects=False, **kwargs
            ) as response:  # no redirects: never carry the token to another host
                raw = await response.read()
                body = self._body(response.status, response.headers, raw)
        except NOT_SENT as exc:
            raise Retry(type(exc).__name__) from None
        except AMBIGUOUS as exc:
            raise Retry(type(exc).__name__, ambiguous=True) from None
        if create:
            await self.creates.accepted()
        return body

    def slot_ahead(self) -> None:
        """A create is about to be sent: its shared slot is reserved now (see
        `SharedCreateBudget.ahead`); nothing when the budget is this process's alone."""
        if isinstance(self.creates, SharedCreateBudget):
            self.creates.ahead()

    async def _take_create(
        self, key: str, priority: float, on_place: OnPlace | None, until: float | None
    ) -> None:
        """A token from the create budget, or RateHeld at loop time `until`."""
        try:
            async with asyncio.timeout_at(until):  # None: no deadline
                await self.creates.take(key, on_place, priority=priority)
        except TimeoutError:
            raise RateHeld("Replicate's rate limit held this create back") from None

    async def call(self, method: str, path: str, what: str, attempts: int, **kwargs: Any) -> Json:
        """`send` with retries (for requests that are safe to repeat)."""
        create = bool(kwargs.get("create", False))

        async def back_off(retry: Retry, attempt: int) -> None:
            await self.backoff(retry, attempt, what, create)

        return await retrying(
            lambda: self.send(method, path, **kwargs),
            replace(self.policy, attempts=attempts),
            Retry,
            between=back_off,
        )

    async def backoff(self, retry: Retry, attempt: int, what: str, create: bool = False) -> None:
        """Sleep before the next attempt; a 429 also holds back every other caller.

        A create's 429 is told to the create budget instead of slept here: the
        next `take` waits the pause out, in line with every other create.
        """
        delay = self.policy.delay(attempt, retry.delay_s)  # the API's hint, if it gave one
        self.stats["retries"] += 1
        log.info("%s: %s; retrying in %.2f s (attempt %d)", what, retry, delay, attempt)
        if retry.throttled and create:
            # The account's own hint, unjittered: the budget serves every create in turn
            # anyway, and it learns the account's rate from this pause.
            hint = retry.delay_s
            await self.creates.throttled(delay if hint is None else min(hint, self.policy.cap_s))
            return
        if retry.throttled:
            self.reads.pause(delay)
        await (self._sleep or asyncio.sleep)(delay)

    def safe(self, text: str) -> str:
        """`text` with the API token blotted out."""
        token = self.settings.token
        return text.replace(token, "[redacted]") if token else text

    def _body(self, status: int, headers: Mapping[str, str], raw: bytes) -> Json:
        if status in RETRY_STATUS:
            self.stats[f"http_{status}"] += 1
            raise Retry(
                f"HTTP {status}",
                retry_after(headers, raw) if status in (429, 503) else None,
                ambiguous=status in AMBIGUOUS_STATUS,
                throttled=status == 429,
            )
        if status >= 400:
            response = httpx.Response(status, headers=dict(headers), content=raw)
            error = ReplicateError.from_response(response)
            raise Refused(status, self.safe(f"Replicate refused it: {detail(error)}"))
        try:
            body = json.loads(raw)
        except ValueError:
            raise Retry("an answer that is not JSON", ambiguous=True) from None
        if not isinstance(body, dict):
            raise PermanentStepError("Replicate answered with something that is not an object")
        return body


def _timeout(read_s: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=read_s)


def _form(files: Mapping[str, tuple[str, bytes, str]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, (filename, data, content_type) in files.items():
        form.add_field(name, data, filename=filename, content_type=content_type)
    return form


def retry_after(
    headers: Mapping[str, str], raw: bytes = b"", now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the API asked us to wait: Retry-After (seconds or a date), else the body's
    `retry_after` (seconds), else its "resets in ~Ns"."""
    header = next((v for k, v in headers.items() if k.lower() == "retry-after"), "").strip()
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
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, Mapping):
        return None
    seconds = _number(body.get("retry_after"))
    if seconds is not None:
        return max(0.0, seconds)
    text = str(body.get("detail", ""))
    match = _RESETS_RE.search(text)
    return float(match[1]) if match else None


def _number(value: object) -> float | None:
    """A JSON number (or a numeric string) as a float; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def detail(error: ReplicateError) -> str:
    """A short description of an API error."""
    text = error.detail or error.title or "no details"
    return f"{text} (HTTP {error.status})"
