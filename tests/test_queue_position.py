"""Queue position: a step waiting for a slot or for the provider's rate says where it is in line.

The scheduler's places come through the real service (SQLite file, LocalExecutor,
gated fake generator) as STEP_PROGRESS events of the pending step; the rate
bucket's through a fake clock. Waiting is on conditions, never on sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from adapters.replicate_api.predict import rate_wait_text
from adapters.replicate_api.rate import TokenBucket
from bot.chat.text import live_notes, product_line
from bot.cli.console import _product_rows
from core.model import CampaignStatus, StepName, StepStatus
from core.progress import CampaignSnapshot, ProgressEvent
from core.request import CampaignRequest
from core.scheduler import FairLimiter, Limits, OnPlace, ordinal, shown_place
from tests.fakes import FakeClock, GatedGenerator, HeldSleep


async def until(condition: Callable[[], bool], turns: int = 200) -> None:
    """Let the loop run until `condition` holds (event-loop turns, not time)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


class WatchingSink:
    """Keeps every event, folds them into a snapshot, and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.snapshot: CampaignSnapshot | None = None
        self._changed = asyncio.Condition()

    async def publish(self, event: ProgressEvent) -> None:
        self.events.append(event)
        if self.snapshot is None:
            self.snapshot = CampaignSnapshot(event.campaign_id)
        self.snapshot.apply(event)
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(condition), 30)

    def places(self, index: int) -> list[int]:
        """The places in line product `index`'s image step was told, in order."""
        return [
            e.queued
            for e in self.events
            if e.product_index == index and e.queued is not None and e.step is StepName.IMAGE
        ]


async def test_waiting_steps_report_their_place_and_move_up(make_service) -> None:
    gen = GatedGenerator()
    service = make_service(gen, Limits(text=1, image=1, video=1, cpu=1))
    sink = WatchingSink()
    campaign = await service.submit(CampaignRequest(theme="cats", products=3), [sink])
    await gen.started[(0, "image")].wait()
    await sink.wait_for(lambda: sink.places(1) == [1] and sink.places(2) == [2])
    assert sink.places(0) == []  # it got the slot at once: nothing to say

    snap = sink.snapshot
    assert snap is not None
    waiting = snap.products[2].steps[StepName.IMAGE]
    assert (waiting.status, waiting.queued) == (StepStatus.PENDING, 2)
    assert live_notes(snap.products[2]) == ["queued: 2nd in line for image"]
    assert product_line(snap.products[2]).endswith("image ⏳ queued: 2nd in line for image")
    assert "queued: 1st in line for image" in product_line(snap.products[1])
    notes = [str(cell) for cell in _product_rows(snap).columns[-1].cells]  # the terminal's view
    assert notes[1:] == ["queued: 1st in line for image", "queued: 2nd in line for image"]

    gen.open((0, "image"))
    await gen.started[(1, "image")].wait()
    await sink.wait_for(lambda: sink.places(2) == [2, 1])
    assert sink.places(1) == [1]  # started: no more places, and its message is its own
    started = sink.snapshot.products[1].steps[StepName.IMAGE]
    assert started.status is StepStatus.RUNNING and started.queued is None
    assert "queued" not in started.message

    gen.open((1, "image"), (2, "image"))
    done = await service.wait(campaign.id)
    assert done.status is CampaignStatus.SUCCEEDED
    assert not any("queued" in product_line(p) for p in sink.snapshot.products)


async def _hold(limiter: FairLimiter, key: str, told: list[int], release: asyncio.Event) -> None:
    async def on_place(place: int) -> None:
        told.append(place)

    async with limiter.slot(key, on_place):
        await release.wait()


async def test_places_follow_the_round_robin_and_cancels() -> None:
    limiter = FairLimiter(1)
    told: dict[str, list[int]] = {n: [] for n in ("first", "a1", "a2", "b1", "c1")}
    gates = {n: asyncio.Event() for n in told}
    tasks = {"first": asyncio.create_task(_hold(limiter, "a", told["first"], gates["first"]))}
    await asyncio.sleep(0)
    for name in ("a1", "a2", "b1"):  # campaign a queued two, then b one
        tasks[name] = asyncio.create_task(_hold(limiter, name[0], told[name], gates[name]))
    await until(lambda: all(told[n] for n in ("a1", "a2", "b1")))
    # served a1, b1, a2: b's first step goes before a's second
    assert (told["a1"], told["b1"], told["a2"]) == ([1], [2], [3])
    tasks["c1"] = asyncio.create_task(_hold(limiter, "c", told["c1"], gates["c1"]))
    await until(lambda: bool(told["c1"]) and len(told["a2"]) == 2)
    assert told["c1"] == [3] and told["a2"] == [3, 4]  # a new campaign takes its turn
    tasks["b1"].cancel()
    await until(lambda: len(told["c1"]) == 2 and len(told["a2"]) == 3)
    assert told["c1"] == [3, 2] and told["a2"] == [3, 4, 3]
    gates["first"].set()  # a1 gets the slot; c1 and a2 move up
    await until(lambda: told["c1"][-1] == 1 and told["a2"][-1] == 2)
    gates["a1"].set()
    await until(lambda: told["a2"][-1] == 1)
    assert told["c1"] == [3, 2, 1] and told["a2"] == [3, 4, 3, 2, 1]
    gates["c1"].set()
    gates["a2"].set()
    await asyncio.gather(*(t for n, t in tasks.items() if n != "b1"))
    assert told["first"] == [] and limiter.in_use == 0


async def test_a_long_line_wakes_few_waiters_per_grant() -> None:
    limiter = FairLimiter(1)
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(limiter, "x", [], release))
    await asyncio.sleep(0)
    told: list[list[int]] = [[] for _ in range(300)]
    waiters = [
        asyncio.create_task(_hold(limiter, "y", told[i], asyncio.Event())) for i in range(300)
    ]
    await until(lambda: all(told))
    assert [t[-1] for t in told[:3]] == [1, 2, 3] and told[150] == [100]
    before = sum(map(len, told))
    release.set()  # one grant: everyone moves up one place
    await until(lambda: told[20][-1] == 20)
    for _ in range(20):  # and a while longer, for any late wake-up to show
        await asyncio.sleep(0)
    woken = sum(map(len, told)) - before
    assert told[1][-1] == 1 and told[20][-1] == 20  # exact near the front
    assert woken < 40  # 20 exact places and the few that crossed a rounded one, not 299
    for task in (holder, *waiters):
        task.cancel()
    await asyncio.gather(holder, *waiters, return_exceptions=True)
    assert limiter.in_use == 0


def test_shown_places_are_exact_near_the_front_and_rounded_down_behind() -> None:
    assert [shown_place(p) for p in (1, 20, 21, 29, 30, 99, 100, 199, 1234)] == [
        1,
        20,
        20,
        20,
        30,
        90,
        100,
        100,
        1000,
    ]
    assert [ordinal(p) for p in (1, 2, 3, 4, 11, 12, 13, 20, 30)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "20th",
        "30+",
    ]


async def test_waiting_for_the_rate_bucket_reports_a_place_then_its_turn() -> None:
    clock = FakeClock()
    sleep = HeldSleep(clock)
    bucket = TokenBucket(60, burst=1, clock=clock, sleep=sleep)  # one a second
    await bucket.take()  # the burst: nobody waits for it
    told: dict[str, list[str]] = {n: [] for n in ("a", "b", "c")}

    def reporter(name: str) -> OnPlace:
        async def on_place(place: int) -> None:
            told[name].append(rate_wait_text(place) if place else "sending")

        return on_place

    takers = {n: asyncio.create_task(bucket.take(on_place=reporter(n))) for n in ("a", "b", "c")}
    await until(lambda: all(told.values()) and len(sleep.naps) == 1)
    assert [t[-1][-13:] for t in told.values()] == [
        "(1st in line)",
        "(2nd in line)",
        "(3rd in line)",
    ]
    sleep.wake()  # a token for a
    await takers["a"]
    assert told["a"][-1] == "sending"
    await until(lambda: len(sleep.naps) == 1 and len(told["c"]) == 2)
    assert told["b"][-1].endswith("(1st in line)") and told["c"][-1].endswith("(2nd in line)")
    sleep.wake()
    await takers["b"]
    await until(lambda: len(sleep.naps) == 1)
    sleep.wake()
    await takers["c"]
    assert told["c"] == [rate_wait_text(3), rate_wait_text(2), rate_wait_text(1), "sending"]
    assert bucket.taken == 4 and clock.now == pytest.approx(103.0)


async def test_a_short_wait_at_the_front_says_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(600, burst=1, clock=clock, sleep=clock.sleep)  # 0.1 s per token
    await bucket.take()
    told: list[int] = []

    async def on_place(place: int) -> None:
        told.append(place)

    await bucket.take(on_place=on_place)
    assert told == [] and clock.now == pytest.approx(100.1)
