"""The create budget: fair across campaigns, learning the account's rate from its 429s,
a 429 a wait and not a failed attempt. Units on a fake clock, then the real HTTP layer
and the whole service against the fake Replicate with a small account's limits."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from adapters.replicate_api.generator import ReplicateGenerator
from adapters.replicate_api.http import retry_after
from adapters.replicate_api.predict import predict
from adapters.replicate_api.predictions import PredictionApi
from adapters.replicate_api.rate import QUIET_TOKENS, CreateBucket, CreateRate
from adapters.replicate_api.shared_rate import SharedCreateBudget
from core.errors import PermanentStepError
from core.model import CampaignStatus, StepKind
from core.ports import CreateBudget
from core.request import CampaignRequest
from core.scheduler import Limits
from core.service import CampaignService
from tests.conftest import ReplicateFactory
from tests.fakes import FakeClock, HeldSleep
from tests.fakes.replicate import TOKEN, FakeReplicate, fast_settings

IMAGE, VIDEO = "black-forest-labs/flux-schnell", "bytedance/seedance-1-lite"
LIMITS = Limits(text=4, image=64, video=64, cpu=1)  # the create budget is the only queue


class Account:
    """A small account's create limit on the fake clock: `rate` a second, a burst of 1."""

    def __init__(self, clock: FakeClock, rate: float) -> None:
        self.clock, self.rate = clock, rate
        self.tokens, self.stamp = 1.0, clock.now
        self.refused = 0

    def create(self) -> float | None:
        """None if it went through, else the seconds until it would (its reset hint)."""
        now = self.clock.now
        self.tokens = min(1.0, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return None
        self.refused += 1
        return (1.0 - self.tokens) / self.rate


async def _send_all(bucket: CreateBudget, account: Account, creates: int) -> None:
    """`creates` creates one after another, each until it goes through (as PredictionApi)."""
    for _ in range(creates):
        while True:
            await bucket.take("c")
            if (hint := account.create()) is None:
                await bucket.accepted()
                break
            await bucket.throttled(hint)


# --- fair across campaigns ------------------------------------------------------------


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def soon(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Wait (in real time) until `condition()` holds."""
    for _ in range(int(limit_s / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


class Schedule:
    """The account's shared schedule as a store keeps it: one slot every `interval_s`; each
    trip to it is held until the test lets it answer."""

    def __init__(self) -> None:
        self.next_at = 0.0
        self.trips: list[int] = []  # slots asked for, per trip
        self.answer = asyncio.Event()

    async def reserve_creates(
        self, account: str, interval_s: float, burst: int, count: int = 1
    ) -> list[float]:
        self.trips.append(count)
        await self.answer.wait()
        first, self.next_at = self.next_at, self.next_at + count * interval_s
        return [first + i * interval_s for i in range(count)]

    async def pause_creates(self, account: str, pause_s: float) -> None:
        raise AssertionError("no 429 here")


class Local:
    """A process's own budget that never holds anything back."""

    async def take(self, key: str, on_place: Any = None, *, priority: float = 0.0) -> None:
        return None


async def test_creates_asking_while_a_reservation_is_out_go_together_in_the_next() -> None:
    schedule, slept = Schedule(), []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    budget = SharedCreateBudget(
        Local(),  # type: ignore[arg-type]
        lambda: schedule,
        per_min=60.0,
        burst=1,
        sleep=sleep,
    )
    first = asyncio.ensure_future(budget.take("a"))
    await soon(lambda: schedule.trips == [1])  # the first is on its way alone
    rest = [asyncio.ensure_future(budget.take(key)) for key in "bcde"]
    await asyncio.sleep(0)
    schedule.answer.set()
    await asyncio.gather(first, *rest)
    assert schedule.trips == [1, 4]  # two trips to the database, not five
    # and still one slot each, 1 s apart (less the moment between the answer and the use)
    assert sorted(slept) == pytest.approx([1.0, 2.0, 3.0, 4.0], abs=0.05)


def budget_on(schedule: Schedule) -> SharedCreateBudget:
    async def sleep(seconds: float) -> None:
        return None

    return SharedCreateBudget(
        Local(),  # type: ignore[arg-type]
        lambda: schedule,
        per_min=60.0,
        burst=1,
        sleep=sleep,
    )


async def test_a_slot_taken_ahead_is_reserved_while_the_intent_is_stored() -> None:
    schedule = Schedule()
    budget = budget_on(schedule)
    budget.ahead()  # the create's intent is being written
    await soon(lambda: schedule.trips == [1])  # its slot is on its way already
    schedule.answer.set()
    await budget.take("a")  # the create uses it: no second trip
    assert schedule.trips == [1]


async def test_a_late_slot_taken_ahead_goes_unused() -> None:
    schedule = Schedule()
    schedule.next_at = -5.0  # the slot it gets was due 5 s ago: its create was never sent
    schedule.answer.set()
    budget = budget_on(schedule)  # one slot a second
    budget.ahead()
    await budget.take("a")
    assert sum(schedule.trips) == 2  # sent now, it could bunch with others: a slot of its own


async def test_a_failed_slot_taken_ahead_is_not_logged_as_never_retrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Down(Schedule):
        async def reserve_creates(
            self, account: str, interval_s: float, burst: int, count: int = 1
        ) -> list[float]:
            raise OSError("database is locked")

    used = budget_on(Down())
    used.ahead()
    with pytest.raises(OSError, match="locked"):
        await used.take("a")  # the create meets the failure of its slot's trip
    unused = budget_on(Down())
    unused.ahead()  # its intent's write fails too: the create is never sent
    await asyncio.sleep(0.01)
    unused._ahead.clear()  # the process stops: nobody will take it
    gc.collect()
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text


async def test_keys_take_turns_and_places_follow_the_turns() -> None:
    clock = FakeClock()
    sleep = HeldSleep(clock)
    bucket = CreateBucket(60, burst=1, clock=clock, sleep=sleep)  # one a second
    await bucket.take("big")  # the first token: nobody waits for it
    order: list[str] = []
    places: dict[str, list[int]] = {"big": [], "small": []}

    async def take(key: str) -> None:
        async def on_place(place: int) -> None:
            places[key].append(place)

        await bucket.take(key, on_place)
        order.append(key)

    tasks = [asyncio.create_task(take("big")) for _ in range(5)]
    tasks.append(asyncio.create_task(take("small")))  # arrives after all five of big's
    await until(lambda: bool(places["small"]) and len(sleep.naps) == 1)
    assert places["small"] == [2]  # 2nd in line, though five of big's came before it
    assert max(places["big"]) == 6
    while not all(t.done() for t in tasks):
        await until(lambda: bool(sleep.naps))
        sleep.wake()
        await asyncio.sleep(0)
    assert order == ["big", "small", "big", "big", "big", "big"]
    assert places["small"] == [2, 1, 0]
    assert bucket.taken == 7 and clock.now == pytest.approx(106.0)


async def test_within_a_key_the_most_urgent_goes_first() -> None:
    clock = FakeClock()
    bucket = CreateBucket(60, burst=1, clock=clock, sleep=clock.sleep)
    await bucket.take("a")
    order: list[tuple[str, float]] = []

    async def take(key: str, priority: float) -> None:
        await bucket.take(key, priority=priority)
        order.append((key, priority))

    jobs = [("a", 5.0), ("a", 1.0), ("b", 9.0), ("a", 3.0)]
    await asyncio.gather(*(take(k, p) for k, p in jobs))
    # a has the turn and serves its most urgent, then b has it, then a again
    assert order == [("a", 1.0), ("b", 9.0), ("a", 3.0), ("a", 5.0)]


# --- learning the account's rate ------------------------------------------------------------


def test_a_cut_lands_just_under_the_account_and_steps_back_up_slowly() -> None:
    rate = CreateRate(ceiling_per_s=100.0, burst=100.0)
    rate.sent(0.0)  # got through
    rate.sent(0.01)  # refused: the account's next token comes 0.09 s later
    rate.refused(0.01, 0.09, paused=False)
    assert rate.capacity == 1.0 and rate.rate(0.05) == 100.0  # learnt once the pause is over
    assert rate.rate(0.1) == pytest.approx(9.0)  # 90% of 1 create / 0.1 s
    quiet = QUIET_TOKENS / 9.0  # one quiet period: ten tokens' time at the cut rate
    assert rate.rate(0.1 + quiet * 0.99) == pytest.approx(9.0)
    assert rate.rate(0.1 + quiet * 1.01) == pytest.approx(9.9)  # additive: +10% of 9
    assert rate.rate(0.1 + quiet * 5.01) == pytest.approx(13.5)
    assert rate.rate(1e6) == 100.0  # never above the ceiling
    assert rate.cuts == 1


def test_429s_of_creates_sent_together_are_one_cut_without_them() -> None:
    rate = CreateRate(ceiling_per_s=100.0, burst=100.0)
    for sent in (0.0, 0.05, 0.05):  # the first got through; two went out together
        rate.sent(sent)
    rate.refused(0.051, 0.049, paused=False)
    rate.refused(0.052, 0.048, paused=True)  # the other one's, during the pause
    assert rate.rate(0.1) == pytest.approx(9.0)  # 1 through in 0.1 s, not 2
    assert rate.cuts == 1


def test_nothing_through_means_nothing_to_learn() -> None:
    rate = CreateRate(ceiling_per_s=100.0, burst=10.0)
    rate.refused(0.0, 2.0, paused=False)  # the very first create: only the pause
    assert rate.rate(2.0) == 100.0 and rate.capacity == 1.0 and rate.cuts == 0


async def test_the_bucket_learns_a_small_account_and_settles_just_under_it() -> None:
    clock = FakeClock()
    bucket = CreateBucket(6000, burst=100, clock=clock, sleep=clock.sleep)  # 100/s ceiling
    account = Account(clock, rate=10.0)  # a tenth of it, with a burst of 1
    await _send_all(bucket, account, 13)
    assert account.refused <= 2  # not one per create
    assert 8.0 <= bucket.rate_per_min / 60 <= 10.0
    await _send_all(bucket, account, 100)  # the probe passes the account now and then
    assert account.refused <= 8
    assert bucket.rate_per_min <= 6000
    seconds = clock.now - 100.0
    assert 113 / seconds >= 8.0  # it kept close to the account's 10/s


async def test_the_burst_is_earned_and_comes_back_only_at_the_ceiling() -> None:
    clock = FakeClock()
    bucket = CreateBucket(600, burst=5, clock=clock, sleep=clock.sleep)  # 10/s, 5 at once
    assert bucket.capacity == 1.0
    for _ in range(6):
        await bucket.take("c")
        await bucket.accepted()
    await clock.sleep(10)
    bucket._wait_s()
    assert bucket.capacity == 5.0
    await bucket.take("c")
    await bucket.throttled(1.0)  # after creates that got through: a cut, at the pause's end
    assert bucket.capacity == 1.0
    await bucket.take("c")
    assert bucket.rate_per_min < 600 and clock.now == pytest.approx(111.5)
    await bucket.accepted()
    assert bucket.learnt.capacity == 1.0  # below the ceiling: no burst
    await clock.sleep(86400)  # quiet periods add the rate back, up to the ceiling
    await bucket.take("c")
    await bucket.accepted()
    assert bucket.rate_per_min == 600 and bucket.learnt.capacity == 2.0


def test_the_bodys_retry_after_is_read_before_its_rounded_text() -> None:
    body = {"detail": "Request was throttled. Your rate limit resets in ~1s.", "retry_after": 0.042}
    assert retry_after({}, json.dumps(body).encode()) == 0.042
    assert retry_after({"Retry-After": "3"}, json.dumps(body).encode()) == 3.0  # header first
    assert retry_after({}, json.dumps({**body, "retry_after": "x"}).encode()) == 1.0


# --- against the fake Replicate over HTTP ----------------------------------------------------


@pytest.fixture
async def small() -> AsyncIterator[FakeReplicate]:
    """A small account's limits (6/min, a burst of 1) scaled by 100: 10 creates a second."""
    server = FakeReplicate(token=TOKEN, create_rate_per_min=600, burst_s=0.1)
    await server.start()
    yield server
    await server.stop()


async def test_creates_on_a_small_account_see_a_few_429s(small: FakeReplicate) -> None:
    api = PredictionApi(fast_settings(small, create_per_min=6000, create_attempts=1))
    try:
        made = await asyncio.gather(*(api.create(IMAGE, {"prompt": f"p{i}"}) for i in range(13)))
    finally:
        await api.aclose()
    assert len({m.id for m in made}) == 13 == len(small.created())
    assert small.throttled <= 4  # learnt, not one 429 per create
    assert api.stats["http_429"] == small.throttled  # each a wait, none a failed attempt


async def test_a_create_held_back_past_its_deadline_says_so() -> None:
    tiny = FakeReplicate(token=TOKEN, create_rate_per_min=0.6)  # one every 100 s
    await tiny.start()
    api = PredictionApi(fast_settings(tiny, create_attempts=1))
    video = {"prompt": "orbit", "image": "data:,"}
    try:
        await api.create(VIDEO, video)  # the account's one token
        with pytest.raises(PermanentStepError) as held:
            await predict(api, VIDEO, video, kind=StepKind.VIDEO, deadline_s=0.5)
    finally:
        await api.aclose()
        await tiny.stop()
    assert str(held.value).startswith(
        "Replicate's rate limit held this video back for 0.5 s (the video deadline)"
    )
    assert len(tiny.created()) == 1 and tiny.throttled >= 1


@pytest.fixture
def build(replicate_service: ReplicateFactory) -> ReplicateFactory:
    def factory(fake: FakeReplicate, **changes: Any) -> tuple[CampaignService, ReplicateGenerator]:
        return replicate_service(fake, limits=LIMITS, **changes)

    return factory


async def test_a_campaign_with_videos_on_a_small_account(
    build: Callable[..., tuple[CampaignService, ReplicateGenerator]], small: FakeReplicate
) -> None:
    service, _ = build(small, create_per_min=6000.0, create_attempts=1)
    request = CampaignRequest(theme="tiny teacups", products=6, videos=True, seed=3)
    campaign = await service.run(request)
    assert campaign.status is CampaignStatus.SUCCEEDED
    assert all(s.attempts == 1 for p in campaign.products for s in p.steps)
    assert (len(small.made("image")), len(small.made("video"))) == (6, 6)
    assert small.repeated() == []  # each paid once, the planning calls too
    assert small.throttled <= 4


async def test_told_its_rate_a_rate_bound_campaign_plans_in_one_call(
    build: Callable[..., tuple[CampaignService, ReplicateGenerator]], small: FakeReplicate
) -> None:
    """Creates are what a small account lacks: a campaign it holds back by its rate gets its
    plans from one streamed call, not an outline plus a call per product."""
    service, generator = build(small, create_per_min=600.0, burst_s=0.1, create_attempts=1)
    generator.runtime.pace.learn(None, 40_000.0)  # the model, like the account, x100
    request = CampaignRequest(theme="tiny teacups", products=6, videos=True, seed=3)
    campaign = await service.run(request)
    assert campaign.status is CampaignStatus.SUCCEEDED
    texts = small.created("meta/meta-llama-3-8b-instruct")
    assert len(texts) == 1 and texts[0]["input"]["prompt"].startswith("Plan exactly 6")
    assert len(small.created()) == 13
    # told the rate, its creates go 1/rate apart; at a burst of 1 the network's jitter on a
    # loaded machine may bring two closer than that once (the bucket then learns from it)
    assert small.throttled <= 1


async def test_untold_a_small_account_gets_its_other_details_in_one_call(
    build: Callable[..., tuple[CampaignService, ReplicateGenerator]], small: FakeReplicate
) -> None:
    """Not told the account is small, the bot plans as for a big one, but its first details
    call goes alone: the 429 it meets teaches the account's rate, and the products named
    meanwhile are asked for together. Two details calls for six products, not six."""
    service, generator = build(small, create_per_min=60_000.0, create_attempts=1)
    generator.runtime.pace.learn(None, 40_000.0)  # the model, like the account, x100
    request = CampaignRequest(theme="tiny teacups", products=6, videos=True, seed=3)
    campaign = await service.run(request)
    assert campaign.status is CampaignStatus.SUCCEEDED
    prompts = [t["input"]["prompt"] for t in small.created("meta/meta-llama-3-8b-instruct")]
    assert [p.split(" ")[0] for p in prompts] == ["Name", "Write", "Write"]
    assert "exactly 1 merchandise" in prompts[1] and "exactly 5 merchandise" in prompts[2]
    assert len(small.created()) == 15 and small.repeated() == []


def _theme(prediction: dict[str, Any]) -> str:
    text = json.dumps(prediction["input"]).lower()
    return "big" if "zebra parade" in text else "small" if "koala cafe" in text else "?"


async def test_a_small_campaign_is_not_queued_behind_a_big_one(
    build: Callable[..., tuple[CampaignService, ReplicateGenerator]], small: FakeReplicate
) -> None:
    small._limit = None  # the bot's own ceiling (10/s, no burst) makes the line here
    service, generator = build(small, create_per_min=600.0, burst_s=0.1)
    big = await service.submit(CampaignRequest(theme="zebra parade", products=10, seed=1))
    shared = generator.runtime.current().api.http.creates  # no store here: the local one
    assert isinstance(shared, SharedCreateBudget) and shared.shared() is None
    creates = shared.local
    assert isinstance(creates, CreateBucket)
    await soon(lambda: creates.waiting >= 6)  # the big one's images are in line for the rate
    before = len(small.created())
    little = await service.submit(CampaignRequest(theme="koala cafe", products=1, seed=2))
    done = [await service.wait(c.id) for c in (big, little)]
    assert all(c.status is CampaignStatus.SUCCEEDED for c in done)
    order = [_theme(p) for p in small.created()]
    images = [_theme(p) for p in small.created("black-forest-labs/flux-schnell")]
    assert images.count("big") == 10 and images.count("small") == 1
    assert order.count("small") == 2  # a product alone: one call plans it
    after = order[before:]
    plan = after.index("small")
    image = after.index("small", plan + 1)
    # The small one's plan and image went out in turns with the big one's images, not
    # after all of them: each among the first few creates once it could go.
    assert plan <= 2 and image - plan <= 3, after
    assert after[image:].count("big") >= 3, after  # the big one still had images in line
