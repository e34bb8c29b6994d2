"""Predictions on Replicate: create (rate-limited, retried, adopted), wait, cancel, upload.

Every request goes through `ReplicateHttp` (one client, one retry policy, the
rate budgets). Creating a prediction is retried here, because only here is it
known whether a failed attempt may have created one. A 429 is a wait, not a
failed attempt: the create budget pauses every create for `Retry-After`, the
body's `retry_after` or "resets in ~Ns" (capped), learns the account's rate
from it, and the create waits its turn again, for as long as its deadline
allows. 5xx and connection problems back off exponentially with jitter, up to
REPLICATE_CREATE_ATTEMPTS attempts. When a create failed after the request
may have reached Replicate (a dropped connection, a 500/502/504), the
account's recent predictions are searched for one with the same input
created since, and that one is adopted instead of paying for another. (Not by
model name: Replicate may answer with an internal deployment's name instead
of the one asked for.)

Short kinds (text, image) are created with `Prefer: wait`, so a prediction
that finishes within the wait comes back finished in the create's answer and
is never polled. Longer ones are waited for by `Polls`, and by the webhook
when `REPLICATE_WEBHOOK_URL` is set.

One `PredictionApi` per event loop. Messages never contain the API token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from adapters.replicate_api.http import Json, RateHeld, ReplicateHttp, Retry
from adapters.replicate_api.log_progress import percent
from adapters.replicate_api.models import ModelRef, parse_ref
from adapters.replicate_api.polls import Polls, Watch
from adapters.replicate_api.rate import Sleep
from adapters.replicate_api.sent import matches_sent
from adapters.replicate_api.settings import ReplicateSettings
from adapters.replicate_api.shared_rate import SharedRate
from adapters.replicate_api.wire import NotAPrediction, Prediction, Status, Urls, epoch
from core.errors import PermanentStepError, TransientStepError
from core.ports import CreateBudget
from core.retry import retrying
from core.scheduler import OnPlace

log = logging.getLogger(__name__)

Report = Callable[[str], Awaitable[None]]

ADOPT_SKEW_S = 30.0  # clock difference tolerated between us and Replicate
ADOPT_PAGES = 5
CALL_ATTEMPTS = 6  # gets, lists, uploads and cancels that keep failing transiently
POLL_BACKOFF_STEPS = 6  # a failing poll's delay stops doubling here (it is retried forever)


class PredictionApi:
    """Replicate prediction calls with retries and shared rate limits (one per event loop)."""

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
        self.http = ReplicateHttp(
            settings, clock=clock, sleep=sleep, creates=creates, shared=shared
        )
        self.polls = Polls(settings, clock)
        self._claimed: set[str] = set()  # ids owned by a step here: never adopted twice
        secret = settings.webhook_secret
        self._webhook_secret = secret.get_secret_value() if secret else None

    @property
    def stats(self) -> Counter[str]:
        """Request counters: requests, retries, created, adopted, http_<status>."""
        return self.http.stats

    async def aclose(self) -> None:
        """Close the connections."""
        await self.http.aclose()

    async def create(
        self,
        ref: str,
        inputs: Mapping[str, Any],
        *,
        wait_s: int | None = None,
        cancel_after_s: float | None = None,
        guard: Callable[[], bool] | None = None,
        on_place: OnPlace | None = None,
        key: str | None = None,
        deadline_s: float | None = None,
    ) -> Prediction:
        """Create a prediction exactly once, retrying and adopting as needed.

        `wait_s`: ask Replicate to hold the answer until the prediction finishes
        (at most that many seconds); the answer may still be unfinished.
        `cancel_after_s`: Replicate cancels it by itself after that long (a
        deadline that holds even when the bot is gone).
        `guard`: checked right before each attempt is sent (see ReplicateHttp.send).
        `on_place`: told its place in line while an attempt waits for the create rate.
        `key`: whose create it is (a campaign id): keys take the account's rate in turns.
        `deadline_s`: how long it may be held back by the rate limit (waiting in
        line, pausing after 429s); RateHeld (a PermanentStepError) after that.
        """
        model = parse_ref(ref)
        path, request = self._create_call(model, inputs, wait_s, cancel_after_s)
        until = None if deadline_s is None else asyncio.get_running_loop().time() + deadline_s
        tell = _once_each(on_place)

        async def send() -> Json:
            return await self.http.send(
                "POST",
                path,
                create=True,
                key=key,
                rate_until=until,
                guard=guard,
                on_place=tell,
                **request,
            )

        return await self._create(ref, model, inputs, send, tell)

    async def _create(
        self,
        ref: str,
        model: ModelRef,
        inputs: Mapping[str, Any],
        send: Callable[[], Awaitable[Json]],
        tell: OnPlace | None,
    ) -> Prediction:
        """Attempts until one is accepted, adopting what an ambiguous attempt made."""
        since: float | None = None  # set once an attempt may have created it
        tries = failures = 0
        attempts = self.settings.create_attempts
        while True:
            if since is not None and (found := await self._adopt(model, inputs, since)):
                return found
            sent_at = time.time()
            try:
                body = await send()
            except RateHeld:  # an earlier attempt may have made it all the same
                if since is not None and (found := await self._adopt(model, inputs, since)):
                    return found
                raise
            except Retry as retry:
                since = since or (sent_at if retry.ambiguous else None)
                tries += 1
                failures += not retry.throttled  # a 429 is a wait, not a failed attempt
                if retry.throttled and tell is not None:
                    await tell(1)  # it waits for the rate again, however short the pause
                await self.http.backoff(retry, tries, f"create on {ref}", create=True)
                if failures < attempts:
                    continue
                break  # after the last wait, look once more for what an attempt made
            self.stats["created"] += 1
            return self._claim(parsed(body))
        if since is not None and (found := await self._adopt(model, inputs, since)):
            return found
        raise TransientStepError(
            f"Replicate did not accept the prediction after {attempts} tries",
            delay_s=self.settings.retry_cap_s,
        )

    async def get(self, prediction_id: str, priority: float = 0.0) -> Prediction:
        """The prediction's current state (transient failures are retried until cancelled)."""

        async def back_off(retry: Retry, attempt: int) -> None:
            await self.http.backoff(retry, min(attempt, POLL_BACKOFF_STEPS), "poll")

        async def poll() -> Prediction:
            path = f"/v1/predictions/{prediction_id}"
            return parsed(await self.http.send("GET", path, priority=priority))

        return await retrying(
            poll,
            self.http.policy,  # no attempt limit: a poll is retried until cancelled
            Retry,
            between=back_off,
        )

    async def wait(
        self,
        prediction: Prediction,
        deadline_s: float,
        report: Report,
        *,
        model: str | None = None,
        started: float | None = None,
    ) -> Prediction:
        """Wait until the prediction finishes; TimeoutError after `deadline_s`.

        `model`: the ref it was created with (durations are learned per model);
        `started`: when it was created, on the loop's clock (default: now).
        """
        if prediction.done:
            return prediction
        watch = self.polls.watch(prediction.id, model or str(prediction.model), started)
        try:
            async with asyncio.timeout(deadline_s):
                prediction = await self._watch(watch, prediction, report)
        finally:
            self.polls.forget(watch)
        self.polls.finished(watch, prediction)
        return prediction

    async def _watch(self, watch: Watch, prediction: Prediction, report: Report) -> Prediction:
        while not prediction.done:
            if watch.delivered is None:
                await watch.nap(self.polls.delay(watch))
            shown = status_line(prediction)
            if watch.delivered is not None and watch.delivered.done:
                prediction = watch.delivered
            else:
                watch.delivered = None
                prediction = await self.get(watch.prediction_id, self.polls.priority(watch))
            if status_line(prediction) != shown:  # a new status, or the bar moved
                await report(status_line(prediction))
        return prediction

    def deliver(self, prediction: Prediction) -> bool:
        """A webhook's prediction: ends its wait at once (see `Polls.deliver`)."""
        return self.polls.deliver(prediction)

    async def webhook_secret(self) -> str:
        """The signing secret of the account's webhooks (from settings, else from the API)."""
        if self._webhook_secret is None:
            body = await self.http.call(
                "GET", "/v1/webhooks/default/secret", "webhook secret", CALL_ATTEMPTS
            )
            self._webhook_secret = str(body.get("key") or "")
        return self._webhook_secret

    async def cancel(self, prediction_id: str) -> bool:
        """Ask Replicate to cancel; True if it answered. Never raises for API trouble."""
        try:
            await self.http.call("POST", f"/v1/predictions/{prediction_id}/cancel", "cancel", 3)
        except Retry:
            return False
        except PermanentStepError as exc:
            log.warning("cancel of prediction %s refused: %s", prediction_id, exc)
            return False
        self.stats["canceled"] += 1
        return True

    async def upload(self, data: bytes, filename: str, content_type: str) -> str:
        """Upload an input file (POST /v1/files); returns its URL for a model input."""
        files = {"content": (filename, data, content_type)}
        try:
            body = await self.http.call(
                "POST", "/v1/files", "upload", self.settings.create_attempts, files=files
            )
        except Retry:
            raise TransientStepError("could not upload the input image to Replicate") from None
        except PermanentStepError as exc:
            raise PermanentStepError(f"upload refused: {exc}") from None
        url = Urls.from_json(body.get("urls")).get
        if url is None:
            raise PermanentStepError("upload refused: Replicate returned no file URL")
        return url

    async def recent(self, since: float) -> list[Prediction]:
        """The account's predictions created after `since` (epoch seconds), newest first."""
        found: list[Prediction] = []
        path: str | None = "/v1/predictions"
        for _ in range(ADOPT_PAGES):
            if path is None:
                break
            page = await self.http.call("GET", path, "list", CALL_ATTEMPTS)
            results = _predictions(page.get("results"))
            found += [r for r in results if _created(r) >= since]
            if any(_created(r) < since for r in results):
                break
            path = _same_api_path(page.get("next"))
        return found

    async def find(
        self, ref: str, inputs: Mapping[str, Any], since: float, statuses: frozenset[Status]
    ) -> Prediction | None:
        """A prediction of ours with this input created since `since` (epoch s), if any.

        For a create that a crash may have sent without its id being stored.
        """
        return await self._adopt(parse_ref(ref), inputs, since, statuses)

    async def _adopt(
        self,
        model: ModelRef,
        inputs: Mapping[str, Any],
        since: float,
        statuses: frozenset[Status] | None = None,
    ) -> Prediction | None:
        """The prediction an ambiguous create made, if Replicate has it."""
        try:
            candidates = await self.recent(since - ADOPT_SKEW_S)
        except (Retry, PermanentStepError) as exc:
            log.warning("could not list recent predictions: %s", exc)
            return None
        for prediction in reversed(candidates):  # oldest first: the first send made it
            if statuses is not None and prediction.status not in statuses:
                continue
            if prediction.id not in self._claimed and matches_sent(prediction, model, inputs):
                self.stats["adopted"] += 1
                log.info("adopted prediction %s after an ambiguous create", prediction.id)
                return self._claim(prediction)
        return None

    def _claim(self, prediction: Prediction) -> Prediction:
        self._claimed.add(prediction.id)
        return prediction

    def _create_call(
        self,
        model: ModelRef,
        inputs: Mapping[str, Any],
        wait_s: int | None,
        cancel_after_s: float | None,
    ) -> tuple[str, Json]:
        """The create's path and its `send` arguments: body, headers, timeout."""
        body: Json = {"input": dict(inputs)}
        if self.settings.webhook_url:
            body |= {"webhook": self.settings.webhook_url, "webhook_events_filter": ["completed"]}
        headers = {"Prefer": f"wait={wait_s}"} if wait_s else {}
        if cancel_after_s:
            headers["Cancel-After"] = f"{max(1, round(cancel_after_s))}s"
        timeout_s = self.settings.read_timeout_s + (wait_s or 0)
        if model.version:
            path, body = "/v1/predictions", {"version": model.version, **body}
        else:
            path = f"/v1/models/{model.owner}/{model.name}/predictions"
        return path, {"json": body, "headers": headers, "timeout_s": timeout_s}


def _once_each(on_place: OnPlace | None) -> OnPlace | None:
    """`on_place` told only of changes: a 429's 'waiting' is not said again by the line."""
    if on_place is None:
        return None
    told = 0

    async def tell(place: int) -> None:
        nonlocal told
        if place != told:
            told = place
            await on_place(place)

    return tell


def parsed(body: Json) -> Prediction:
    """The API's answer as a prediction (PermanentStepError if it is not one)."""
    try:
        return Prediction.from_json(body)
    except NotAPrediction as exc:
        raise PermanentStepError(
            f"Replicate answered with something that is not a prediction ({exc})"
        ) from None


def _predictions(results: object) -> list[Prediction]:
    """The predictions of a list page (entries that are not one are left out)."""
    found: list[Prediction] = []
    for result in results if isinstance(results, list) else []:
        try:
            found.append(Prediction.from_json(result))
        except NotAPrediction:
            continue
    return found


def _created(prediction: Prediction) -> float:
    return epoch(prediction.created_at) or 0.0


def _same_api_path(next_url: object) -> str | None:
    """A list page's `next` as a path on our base URL (it is absolute, on api.replicate.com)."""
    if not isinstance(next_url, str) or not next_url:
        return None
    parts = urlsplit(next_url)
    if not parts.path.startswith("/v1/predictions"):
        return None
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def status_line(prediction: Prediction) -> str:
    """'processing 45%' while the model's logs show a progress bar, else the status."""
    status = str(prediction.status)
    done = percent(prediction.logs)
    return (
        f"{status} {done}%"
        if prediction.status is Status.PROCESSING and done is not None
        else status
    )
