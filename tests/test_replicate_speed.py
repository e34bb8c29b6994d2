"""Speed machinery: priority bucket, one HTTP layer, Prefer: wait, learned polls, webhooks,
the early contact sheet and limits that are not the bottleneck."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.replicate_api.generator import ReplicateRuntime, predict
from adapters.replicate_api.http import retry_after
from adapters.replicate_api.polls import LEAD_SHARE, Polls, Watch
from adapters.replicate_api.predictions import PredictionApi, _same_api_path
from adapters.replicate_api.rate import TokenBucket
from adapters.replicate_api.settings import ReplicateSettings
from adapters.replicate_api.webhooks import WebhookReceiver
from adapters.replicate_api.wire import Prediction, Status
from core.model import StepKind, StepName
from core.request import DEFAULT_MAX_PRODUCTS, CampaignRequest
from core.scheduler import Limits
from tests.conftest import ServiceFactory
from tests.fakes import FakeClock, GatedGenerator
from tests.fakes.replicate import (
    WEBHOOK_SECRET,
    FakeReplicate,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
    fast_settings,
)

IMAGE, VIDEO = "black-forest-labs/flux-schnell", "bytedance/seedance-1-lite"


async def _quiet(_message: str) -> None:
    return None


def _polls_of(fake: FakeReplicate, prediction_id: str) -> int:
    return sum(1 for m, p, _ in fake.requests if m == "GET" and p.endswith(prediction_id))


# --- the bucket -----------------------------------------------------------------


async def test_bucket_serves_the_most_urgent_waiter_first() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, burst=1, clock=clock, sleep=clock.sleep)  # one per second
    await bucket.take()  # the burst is spent
    order: list[float] = []

    async def take(priority: float) -> None:
        await bucket.take(priority)
        order.append(priority)

    tasks = [asyncio.create_task(take(p)) for p in (5.0, 1.0, 3.0)]
    await asyncio.gather(*tasks)
    # The first caller slept for the next token, but more urgent ones had come meanwhile.
    assert order == [1.0, 3.0, 5.0] and bucket.taken == 4
    assert clock.now == pytest.approx(103.0)


async def test_bucket_forgets_a_cancelled_waiter() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, burst=1, clock=clock, sleep=clock.sleep)
    await bucket.take()
    gate = asyncio.Event()

    async def slow_sleep(seconds: float) -> None:
        await gate.wait()
        await clock.sleep(seconds)

    bucket._sleep = slow_sleep
    first = asyncio.create_task(bucket.take(1.0))
    second = asyncio.create_task(bucket.take(2.0))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    await second
    assert first.cancelled() and bucket.waiting == 0 and bucket.taken == 2


def test_default_burst_lets_a_first_wave_out_at_once() -> None:
    bucket = TokenBucket(ReplicateSettings().create_per_min, burst=10.0)
    assert bucket.capacity == 10.0


# --- the HTTP layer -------------------------------------------------------------


def test_retry_after_reads_seconds_dates_and_the_body() -> None:
    later = datetime.fromtimestamp(1_000_030, UTC)
    dated = {"Retry-After": format_datetime(later, usegmt=True)}
    assert retry_after(dated, now=lambda: 1_000_000.0) == pytest.approx(30.0)
    assert retry_after({"retry-after": "7"}) == 7.0
    body = json.dumps({"detail": "Your rate limit resets in ~12s."}).encode()
    assert retry_after({}, body) == 12.0


def test_list_pages_stay_on_our_base_url() -> None:
    assert _same_api_path("https://api.replicate.com/v1/predictions?cursor=abc") == (
        "/v1/predictions?cursor=abc"
    )
    assert _same_api_path("https://evil.example/steal") is None
    assert _same_api_path(None) is None


async def test_a_throttled_poll_is_sent_once_per_attempt(fake: FakeReplicate) -> None:
    api = PredictionApi(fast_settings(fake))
    try:
        made = await api.create(VIDEO, {"prompt": "x", "image": "data:,"})
        fake.get_faults.extend([429, 429])
        got = await api.get(made.id)
    finally:
        await api.aclose()
    assert got.id == made.id
    # Two 429s, one success: no hidden retry layer underneath ours.
    assert _polls_of(fake, made.id) == 3 and api.stats["http_429"] == 2
    assert api.http.reads.taken == 3  # every attempt took a token


async def test_upload_goes_through_our_client(fake: FakeReplicate) -> None:
    api = PredictionApi(fast_settings(fake))
    try:
        url = await api.upload(b"\x89PNG\r\n\x1a\nabc", "p.png", "image/png")
    finally:
        await api.aclose()
    assert url.startswith(fake.base_url + "/v1/files/") and list(fake.uploads.values()) == [
        b"\x89PNG\r\n\x1a\nabc"
    ]


# --- Prefer: wait and polling -------------------------------------------------------


async def test_an_image_comes_back_finished_from_its_create(fake: FakeReplicate) -> None:
    fake.latency["image"] = 0.2
    api = PredictionApi(fast_settings(fake, prefer_wait_s=5))
    try:
        done = await predict(api, IMAGE, {"prompt": "cat"}, kind=StepKind.IMAGE, deadline_s=10)
    finally:
        await api.aclose()
    assert done.status == "succeeded"
    assert _polls_of(fake, done.id) == 0
    assert fake.requests[0][2].get("Prefer") == "wait=5"


async def test_a_video_is_polled_not_held(fake: FakeReplicate) -> None:
    fake.latency["video"] = 0.2
    api = PredictionApi(fast_settings(fake))
    try:
        done = await predict(
            api, VIDEO, {"prompt": "orbit", "image": "data:,"}, kind=StepKind.VIDEO,
            deadline_s=10,
        )  # fmt: skip
    finally:
        await api.aclose()
    assert done.status == "succeeded" and _polls_of(fake, done.id) >= 1
    assert "Prefer" not in fake.requests[0][2]


async def test_a_prediction_is_watched_from_when_its_create_returned(
    fake: FakeReplicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polls come when a prediction of its model would be done, counted from its creation:
    counted from before its intent and its turn for the account's rate, they came early
    and the one that saw it done a gap later."""
    fake.latency["video"] = 0.05
    api = PredictionApi(fast_settings(fake))
    loop = asyncio.get_running_loop()
    created: list[float] = []
    watched: list[float | None] = []
    create, wait = api.create, api.wait

    async def slow_create(*args: Any, **kwargs: Any) -> Prediction:
        await asyncio.sleep(0.2)  # the intent's write and the create's turn, say
        made = await create(*args, **kwargs)
        created.append(loop.time())
        return made

    async def watching(*args: Any, started: float | None = None, **kwargs: Any) -> Prediction:
        watched.append(started)
        return await wait(*args, started=started, **kwargs)

    monkeypatch.setattr(api, "create", slow_create)
    monkeypatch.setattr(api, "wait", watching)
    try:
        await predict(
            api, VIDEO, {"prompt": "orbit", "image": "data:,"}, kind=StepKind.VIDEO,
            deadline_s=10,
        )  # fmt: skip
    finally:
        await api.aclose()
    assert len(watched) == 1 and watched[0] is not None
    assert watched[0] >= created[0]  # not 0.2 s before, when predict began


def _watch(polls: Polls, pid: str, started: float) -> Watch:
    return polls.watch(pid, VIDEO, started)


def test_polls_learn_a_model_and_poll_when_it_is_due() -> None:
    clock = FakeClock(start=0.0)
    polls = Polls(ReplicateSettings(poll_min_s=0.05, poll_max_s=5.0), clock, jitter=lambda: 1.0)
    first, second = _watch(polls, "a", 0.0), _watch(polls, "b", 0.5)
    clock.now = 10.0
    assert polls.delay(second) == pytest.approx(0.475)  # 5% of the elapsed time
    assert polls.delay(first) == pytest.approx(0.5 * LEAD_SHARE)  # the oldest: likely first done
    done = Prediction.from_json(
        {
            "id": "a",
            "status": "succeeded",
            "created_at": "2026-01-01T00:00:00Z",
            "completed_at": "2026-01-01T00:00:40Z",
        }
    )
    polls.forget(first)
    polls.finished(first, done)
    assert polls.expected(VIDEO) == 40.0
    clock.now = 39.0
    assert polls.delay(second) == pytest.approx(1.5)  # due at 40.5: sooner than 5% of 38.5 s
    clock.now = 40.4
    assert polls.delay(second) == pytest.approx(0.1)  # due at 40.5: poll right then
    assert polls.priority(second) == pytest.approx(0.1)
    clock.now = 41.0
    assert polls.delay(second) == pytest.approx(0.4)  # overdue: every 1% of 40 s


def test_until_a_model_is_learned_its_oldest_is_watched_and_the_rest_wait() -> None:
    clock = FakeClock(start=0.0)
    settings = ReplicateSettings(poll_min_s=0.1, poll_max_s=5.0, read_per_min=60_000.0)
    polls = Polls(settings, clock, jitter=lambda: 1.0)  # reads plenty: no budget floor here
    oldest, younger = _watch(polls, "a", 0.0), _watch(polls, "b", 0.05)
    clock.now = 1.0
    assert polls.delay(oldest) == pytest.approx(0.1 * LEAD_SHARE)  # a share of the floor
    assert polls.delay(younger) == pytest.approx(0.1 / LEAD_SHARE)  # the oldest wakes it
    polls.forget(oldest)  # it finished otherwise (failed, say): the next one leads
    assert polls.delay(younger) == pytest.approx(0.1 * LEAD_SHARE)


def test_a_finish_wakes_the_same_models_elders_only() -> None:
    clock = FakeClock(start=0.0)
    polls = Polls(ReplicateSettings(), clock)
    first = _watch(polls, "a", 0.0)
    old, young = _watch(polls, "b", 0.1), _watch(polls, "c", 9.0)
    other = polls.watch("d", IMAGE, 0.0)
    clock.now = 10.0
    polls.finished(first, Prediction("a", Status.SUCCEEDED))
    assert old.wake.is_set() and not young.wake.is_set() and not other.wake.is_set()


def test_polls_of_a_batch_are_spread() -> None:
    polls = Polls(ReplicateSettings(read_per_min=1e6), FakeClock(start=0.0))  # budget: no floor
    watches = [_watch(polls, str(i), -10.0) for i in range(20)]
    assert len({round(polls.delay(w), 6) for w in watches}) > 10


def test_the_read_budget_spreads_polls_over_many_predictions() -> None:
    clock = FakeClock(start=0.0)
    polls = Polls(ReplicateSettings(read_per_min=3000.0), clock, jitter=lambda: 1.5)
    watches = [_watch(polls, str(i), 0.0) for i in range(200)]
    clock.now = 1.0
    # 200 predictions, 80% of 50 reads/s: each polled at most every 5 s.
    assert polls.delay(watches[0]) == pytest.approx(5.0)


# --- webhooks -------------------------------------------------------------------------


def _signed(body: str, *, stamp: int | None = None, key: str = WEBHOOK_SECRET) -> dict[str, str]:
    secret = base64.b64decode(key.split("_", 1)[1])
    stamp = int(time.time()) if stamp is None else stamp
    digest = hmac.new(secret, f"msg_1.{stamp}.{body}".encode(), hashlib.sha256).digest()
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": f"v1,{base64.b64encode(digest).decode()}",
    }


async def test_a_webhook_ends_the_wait_without_polling(fake: FakeReplicate) -> None:
    fake.latency["video"] = 0.2
    runtime = ReplicateRuntime(
        fast_settings(
            fake,
            webhook_url="http://127.0.0.1:1/hook",  # replaced below, once the port is known
            poll_min_s=30.0,  # a poll cannot finish it within the deadline: only the webhook
            poll_max_s=30.0,
        )
    )
    receiver = WebhookReceiver(runtime)
    async with receiver.listen("127.0.0.1", 0) as port:
        settings = fast_settings(
            fake, webhook_url=f"http://127.0.0.1:{port}/hook", poll_min_s=30.0, poll_max_s=30.0
        )
        runtime.settings = settings
        runtime._loops.clear()
        api = runtime.current().api
        try:
            done = await predict(
                api, VIDEO, {"prompt": "orbit", "image": "data:,"}, kind=StepKind.VIDEO,
                deadline_s=10,
            )  # fmt: skip
        finally:
            await runtime.aclose()
    assert done.status == "succeeded" and done.output
    assert _polls_of(fake, done.id) == 0 and receiver.received == 1
    create = fake.created(VIDEO)[0]
    assert create["id"] == done.id


ANOTHER_KEY = "whsec_" + base64.b64encode(b"another-key").decode()


@pytest.mark.parametrize(
    ("signing", "status"),
    [
        (None, 401),
        ({"key": ANOTHER_KEY}, 401),
        ({"age_s": 3600}, 401),  # a replay
        ({}, 200),
    ],
)
async def test_only_signed_fresh_webhooks_are_taken(
    fake: FakeReplicate, signing: dict[str, Any] | None, status: int
) -> None:
    # Signed here, when the request is sent: a stamp taken at collection would go stale
    # on a slow run of the suite (Replicate's receivers refuse stamps over 5 minutes old).
    headers: dict[str, str] = {}
    if signing is not None:
        stamp = int(time.time()) - int(signing.get("age_s", 0))
        headers = _signed('{"id": "x"}', stamp=stamp, key=signing.get("key", WEBHOOK_SECRET))
    runtime = ReplicateRuntime(fast_settings(fake, webhook_url="http://127.0.0.1:1/hook"))
    receiver = WebhookReceiver(runtime)
    try:
        async with (
            receiver.listen("127.0.0.1", 0) as port,
            httpx.AsyncClient() as client,
        ):
            reply = await client.post(
                f"http://127.0.0.1:{port}/hook", content='{"id": "x"}', headers=headers
            )
    finally:
        await runtime.aclose()
    assert reply.status_code == status
    assert receiver.received == (1 if status == 200 else 0)
    assert any(p.endswith("/webhooks/default/secret") for _, p, _ in fake.requests)


# --- the service -------------------------------------------------------------------------


class PricedPerSecond(GatedGenerator):
    """Quotes more for a video than the fake then charges (a model priced per second)."""

    def price_usd(self, step: StepName, model: str | None) -> float:
        return 0.05 if step is StepName.VIDEO else 0.01


@pytest.mark.parametrize(
    ("generator", "redrawn"), [(GatedGenerator, False), (PricedPerSecond, True)]
)
async def test_contact_sheet_is_made_while_videos_still_run(
    make_service: ServiceFactory, tmp_path: Path, generator: type[GatedGenerator], redrawn: bool
) -> None:
    gen = generator()
    service = make_service(gen)
    campaign = await service.submit(CampaignRequest(theme="cats", products=2, videos=True))
    gen.open((0, "image"), (1, "image"))
    sheet = tmp_path / "data" / "campaigns" / campaign.id / "contact-sheet.png"
    await gen.started[(1, "video")].wait()
    for _ in range(500):  # the sheet task runs beside the (still gated) videos
        if sheet.exists():
            break
        await asyncio.sleep(0.01)
    assert sheet.exists() and not gen.finished[(0, "video")].is_set()
    first = sheet.stat().st_mtime_ns
    gen.open((0, "video"), (1, "video"))
    done = await service.wait(campaign.id)
    assert done.contact_sheet == str(sheet)
    title, subtitle = sheet.read_text().splitlines()[:2]
    assert subtitle == f"Campaign {done.id} · ${done.cost_usd:.3f}"  # the final cost either way
    if redrawn:  # the videos cost other than quoted: only the title bar is drawn again
        assert sheet.stat().st_mtime_ns != first and title.endswith("\tbase")
    else:  # quoted right at the start of the videos: the early sheet stands, no pool call
        assert sheet.stat().st_mtime_ns == first and not title.endswith("\tbase")


def test_default_limits_never_hold_back_the_largest_campaigns() -> None:
    limits = Limits()
    for kind in (StepKind.IMAGE, StepKind.VIDEO):
        assert limits.of(kind) >= 3 * DEFAULT_MAX_PRODUCTS
    assert StepName.VIDEO.kind is StepKind.VIDEO
