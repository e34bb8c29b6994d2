"""Predictions on Replicate: create (retried, rate-limited, adopted), poll, cancel, upload.

Requests go through the real `replicate.Client` (its base URL, token header,
timeouts and GET retries) but read the raw response, because 1.0.7 hides
what this module needs: the `Retry-After` header of a 429 (ReplicateError
keeps only the body) and the `aborted` status (its pydantic model rejects it).

Creating a prediction is never retried by the client, so `create()` does it:
429 waits for `Retry-After` or the body's "resets in ~Ns" (capped), 5xx and
connection problems back off exponentially with jitter, up to a bounded
number of attempts. When a create failed after the request may have reached
Replicate (a dropped connection, a 500/502/504), the account's recent
predictions are searched for one with the same model and input created since,
and that one is adopted instead of paying for another.

One `PredictionApi` per event loop (a `replicate.Client` cannot outlive its
loop). Messages never contain the API token.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import httpx
from replicate.client import Client
from replicate.exceptions import ReplicateError

from adapters.downloads import shared_tls
from adapters.replicate_models import ModelRef, parse_ref
from adapters.replicate_rate import Sleep, TokenBucket
from adapters.replicate_settings import ReplicateSettings
from core.errors import PermanentStepError, TransientStepError

log = logging.getLogger(__name__)

Prediction = dict[str, Any]
Report = Callable[[str], Awaitable[None]]

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
AMBIGUOUS_STATUS = frozenset({500, 502, 504})  # may have been created before it failed
RETRY_STATUS = frozenset({429, 503}) | AMBIGUOUS_STATUS
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
ADOPT_SKEW_S = 30.0  # clock difference tolerated between us and Replicate
ADOPT_PAGES = 5
# Keep every pooled connection alive: under a backlog, httpx's default of 20
# idle connections makes most requests open a new one. (The replicate client
# wraps its own transport, so limits must be set on the transport.)
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
_RESETS_RE = re.compile(r"resets in ~?\s*(\d+(?:\.\d+)?)\s*s")


class _Retry(Exception):
    """One failed attempt that is worth another; `ambiguous` if it may have been created."""

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


class PredictionApi:
    """Replicate prediction calls with retries and shared rate limits (one per event loop)."""

    def __init__(
        self,
        settings: ReplicateSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,  # asyncio.sleep; tests pass one that advances `clock`
    ) -> None:
        self.settings = settings
        self.client = Client(
            api_token=settings.api_token,
            base_url=settings.base_url,
            timeout=httpx.Timeout(
                5.0, read=settings.read_timeout_s, write=30.0, connect=5.0, pool=10.0
            ),
            transport=httpx.AsyncHTTPTransport(verify=shared_tls(), limits=LIMITS),
        )
        self._sleep = sleep  # backoff waits (tests inject a recorder)
        self.creates = TokenBucket(settings.create_per_min, clock=clock, sleep=sleep)
        self.reads = TokenBucket(settings.read_per_min, clock=clock, sleep=sleep)
        self.stats: Counter[str] = Counter()
        self._claimed: set[str] = set()  # ids owned by a step here: never adopted twice

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self.client._async_client.aclose()

    async def create(self, ref: str, inputs: Mapping[str, Any]) -> Prediction:
        """Create a prediction exactly once, retrying and adopting as needed."""
        model = parse_ref(ref)
        path, body = _create_call(model, inputs)
        since: float | None = None  # set once an attempt may have created it
        for attempt in range(1, self.settings.create_attempts + 1):
            if since is not None and (found := await self._adopt(model, inputs, since)):
                return found
            await self.creates.take()
            sent_at = time.time()
            try:
                prediction = await self._call("POST", path, json=body)
            except _Retry as retry:
                since = since or (sent_at if retry.ambiguous else None)
                await self._backoff(retry, attempt, ref, self.creates)
                continue
            self.stats["created"] += 1
            return self._claim(prediction)
        if since is not None and (found := await self._adopt(model, inputs, since)):
            return found
        raise TransientStepError(
            f"Replicate did not accept the prediction after {self.settings.create_attempts} tries",
            delay_s=self.settings.retry_cap_s,
        )

    async def get(self, prediction_id: str) -> Prediction:
        """The prediction's current state (transient failures are retried until cancelled)."""
        attempt = 0
        while True:
            attempt += 1
            await self.reads.take()
            try:
                return await self._call("GET", f"/v1/predictions/{prediction_id}")
            except _Retry as retry:
                await self._backoff(retry, min(attempt, 6), "poll", self.reads)

    async def wait(self, prediction: Prediction, deadline_s: float, report: Report) -> Prediction:
        """Poll until the prediction finishes; TimeoutError after `deadline_s`."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(deadline_s):
            while prediction.get("status") not in TERMINAL:
                await asyncio.sleep(self._poll_interval(loop.time() - started))
                status = prediction.get("status")
                prediction = await self.get(prediction["id"])
                if prediction.get("status") != status:
                    await report(str(prediction.get("status")))
        return prediction

    async def cancel(self, prediction_id: str) -> bool:
        """Ask Replicate to cancel; True if it answered. Never raises for API trouble."""
        for attempt in range(1, 4):
            try:
                await self._call("POST", f"/v1/predictions/{prediction_id}/cancel")
            except _Retry as retry:
                await self._backoff(retry, attempt, "cancel")
            except PermanentStepError as exc:
                log.warning("cancel of prediction %s refused: %s", prediction_id, exc)
                return False
            else:
                self.stats["canceled"] += 1
                return True
        return False

    async def upload(self, data: bytes, filename: str, content_type: str) -> str:
        """Upload an input file (POST /v1/files); returns its URL for a model input."""
        for attempt in range(1, self.settings.create_attempts + 1):
            await self.reads.take()
            try:
                file = await self.client.files.async_create(
                    io.BytesIO(data), filename=filename, content_type=content_type
                )
                return str(file.urls["get"])
            except ReplicateError as exc:
                if exc.status not in RETRY_STATUS:
                    raise PermanentStepError(
                        self._safe(f"upload refused: {_detail(exc)}")
                    ) from None
                await self._backoff(_Retry(f"HTTP {exc.status}"), attempt, "upload")
            except httpx.TransportError as exc:
                await self._backoff(_Retry(type(exc).__name__), attempt, "upload")
        raise TransientStepError("could not upload the input image to Replicate")

    async def recent(self, since: float) -> list[Prediction]:
        """The account's predictions created after `since` (epoch seconds), newest first."""
        found: list[Prediction] = []
        path: str | None = "/v1/predictions"
        for _ in range(ADOPT_PAGES):
            if path is None:
                break
            await self.reads.take()
            page = await self._call("GET", path)
            results = list(page.get("results") or [])
            found += [r for r in results if _created(r) >= since]
            if any(_created(r) < since for r in results):
                break
            path = page.get("next")
        return found

    async def _adopt(
        self, model: ModelRef, inputs: Mapping[str, Any], since: float
    ) -> Prediction | None:
        """The prediction an ambiguous create made, if Replicate has it."""
        try:
            candidates = await self.recent(since - ADOPT_SKEW_S)
        except (_Retry, PermanentStepError) as exc:
            log.warning("could not list recent predictions: %s", exc)
            return None
        for prediction in reversed(candidates):  # oldest first: the first send made it
            if prediction.get("id") not in self._claimed and _same(prediction, model, inputs):
                self.stats["adopted"] += 1
                log.info("adopted prediction %s after an ambiguous create", prediction["id"])
                return self._claim(prediction)
        return None

    def _claim(self, prediction: Prediction) -> Prediction:
        self._claimed.add(str(prediction["id"]))
        return prediction

    async def _call(self, method: str, path: str, **kwargs: Any) -> Prediction:
        """One request; raises _Retry, PermanentStepError, or returns the JSON body."""
        try:
            response = await self.client._async_client.request(method, path, **kwargs)
        except NOT_SENT as exc:
            raise _Retry(type(exc).__name__) from None
        except httpx.TransportError as exc:  # sent, maybe processed: ambiguous
            raise _Retry(type(exc).__name__, ambiguous=True) from None
        if response.status_code in RETRY_STATUS:
            self.stats[f"http_{response.status_code}"] += 1
            raise _Retry(
                f"HTTP {response.status_code}",
                _retry_after(response) if response.status_code == 429 else None,
                ambiguous=response.status_code in AMBIGUOUS_STATUS,
                throttled=response.status_code == 429,
            )
        if response.status_code >= 400:
            error = ReplicateError.from_response(response)
            raise PermanentStepError(self._safe(f"Replicate refused it: {_detail(error)}"))
        body: Prediction = response.json()
        return body

    async def _backoff(
        self, retry: _Retry, attempt: int, what: str, bucket: TokenBucket | None = None
    ) -> None:
        """Sleep before the next attempt; a 429 also holds back every other caller."""
        cap = self.settings.retry_cap_s
        if retry.delay_s is not None:  # the API said how long; never longer than the cap
            jitter = random.uniform(0, 0.1 * self.settings.backoff_s)
            delay = max(0.0, min(cap, retry.delay_s + jitter))
        else:
            base = min(cap, self.settings.backoff_s * 2 ** (attempt - 1))
            delay = random.uniform(base / 2, base)
        if retry.throttled and bucket is not None:
            bucket.pause(delay)
        self.stats["retries"] += 1
        log.info("%s: %s; retrying in %.2f s (attempt %d)", what, retry, delay, attempt)
        await (self._sleep or asyncio.sleep)(delay)

    def _poll_interval(self, elapsed: float) -> float:
        # Poll often at first, then about 20 times per elapsed-time doubling.
        s = self.settings
        return max(s.poll_min_s, min(s.poll_max_s, elapsed * 0.05))

    def _safe(self, text: str) -> str:
        token = self.settings.api_token
        return text.replace(token, "[redacted]") if token else text


def _create_call(model: ModelRef, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if model.version:
        return "/v1/predictions", {"version": model.version, "input": dict(inputs)}
    return f"/v1/models/{model.owner}/{model.name}/predictions", {"input": dict(inputs)}


def _same(prediction: Prediction, model: ModelRef, inputs: Mapping[str, Any]) -> bool:
    if prediction.get("model") != model.model or prediction.get("input") != dict(inputs):
        return False
    return model.version is None or prediction.get("version") == model.version


def _created(prediction: Prediction) -> float:
    try:
        return datetime.fromisoformat(str(prediction.get("created_at"))).timestamp()
    except ValueError:
        return 0.0


def _retry_after(response: httpx.Response) -> float | None:
    header = response.headers.get("retry-after", "").strip()
    try:
        return float(header)
    except ValueError:
        pass
    try:
        detail = str(response.json().get("detail", ""))
    except ValueError:
        return None
    match = _RESETS_RE.search(detail)
    return float(match[1]) if match else None


def _detail(error: ReplicateError) -> str:
    text = error.detail or error.title or "no details"
    return f"{text} (HTTP {error.status})"
