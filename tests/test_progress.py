"""CoalescingSink: few deliveries, never faster than the interval, final state always."""

from __future__ import annotations

import copy
import itertools

import pytest

from adapters.replicate_api.predictions import status_line
from adapters.replicate_api.wire import Prediction, Status
from bot.chat.text import product_line
from core.model import Campaign, CampaignStatus, Product, ProductPlan, StepName, StepRecord
from core.progress import CampaignSnapshot, CoalescingSink, EventKind, ProgressEvent
from core.request import CampaignRequest
from tests.fakes import FakeClock


def _campaign(products: int = 2) -> Campaign:
    plans = [ProductPlan(i, f"P{i}", "mug", "t", "ip", "vp") for i in range(products)]
    return Campaign(
        id="c1",
        request=CampaignRequest(theme="cats", products=products),
        executor="local",
        status=CampaignStatus.PENDING,
        created_at=1.0,
        generator="offline",
        products=tuple(Product(p, (StepRecord(p.index, StepName.IMAGE),)) for p in plans),
    )


def _step(
    kind: EventKind, index: int, status: str | None = None, message: str = ""
) -> ProgressEvent:
    return ProgressEvent(kind, "c1", 1.0, index, StepName.IMAGE, status, message)


async def test_many_events_become_few_deliveries_with_final_state() -> None:
    clock = FakeClock()
    delivered: list[tuple[float, CampaignSnapshot]] = []

    async def deliver(snapshot: CampaignSnapshot) -> None:
        delivered.append((clock(), snapshot))

    sink = CoalescingSink(deliver, min_interval_s=2.0, clock=clock, sleep=clock.sleep)
    await sink.publish(ProgressEvent(EventKind.CAMPAIGN_STARTED, "c1", 1.0, campaign=_campaign()))
    for i in range(200):
        await sink.publish(_step(EventKind.STEP_PROGRESS, i % 2, message=f"tick {i}"))
    await sink.publish(_step(EventKind.STEP_FINISHED, 0, "succeeded"))
    await sink.publish(_step(EventKind.STEP_FINISHED, 1, "failed", "boom"))
    await sink.publish(ProgressEvent(EventKind.CAMPAIGN_FINISHED, "c1", 2.0, status="partial"))
    await sink.aclose()

    assert 1 <= len(delivered) <= 3
    times = [t for t, _ in delivered]
    assert all(b - a >= 2.0 for a, b in itertools.pairwise(times))
    final = delivered[-1][1]
    assert [p.steps[StepName.IMAGE].status.value for p in final.products] == ["succeeded", "failed"]
    assert final.products[1].steps[StepName.IMAGE].message == "boom"
    assert final.counts() == (2, 2)


async def test_an_event_after_a_delivery_waits_for_the_interval() -> None:
    clock = FakeClock()
    times: list[float] = []

    async def deliver(_snapshot: CampaignSnapshot) -> None:
        times.append(clock())

    sink = CoalescingSink(deliver, min_interval_s=5.0, clock=clock, sleep=clock.sleep)
    await sink.publish(ProgressEvent(EventKind.CAMPAIGN_STARTED, "c1", 1.0, campaign=_campaign()))
    await sink.aclose()
    await sink.publish(_step(EventKind.STEP_STARTED, 0))
    await sink.aclose()
    assert times == [100.0, 105.0]
    assert clock.slept == [5.0]


async def test_a_failing_delivery_does_not_break_the_sink() -> None:
    calls = 0

    async def deliver(_snapshot: CampaignSnapshot) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("chat is down")

    clock = FakeClock()
    sink = CoalescingSink(deliver, min_interval_s=1.0, clock=clock, sleep=clock.sleep)
    await sink.publish(ProgressEvent(EventKind.CAMPAIGN_STARTED, "c1", 1.0, campaign=_campaign()))
    await sink.aclose()
    await sink.publish(_step(EventKind.STEP_STARTED, 0))
    await sink.aclose()
    assert calls == 2


async def test_events_of_another_campaign_are_ignored() -> None:
    seen: list[CampaignSnapshot] = []

    async def deliver(snapshot: CampaignSnapshot) -> None:
        seen.append(snapshot)

    sink = CoalescingSink(deliver, min_interval_s=0.0)
    await sink.publish(ProgressEvent(EventKind.CAMPAIGN_STARTED, "c1", 1.0, campaign=_campaign()))
    await sink.publish(ProgressEvent(EventKind.CAMPAIGN_FINISHED, "other", 2.0))
    await sink.aclose()
    assert seen[-1].campaign_id == "c1"
    assert seen[-1].status is CampaignStatus.RUNNING


async def test_the_interval_runs_from_the_end_of_a_slow_delivery() -> None:
    """A chat API that takes 0.5 s to answer still gets its edits min_interval_s apart."""
    clock = FakeClock()
    spans: list[tuple[float, float]] = []

    async def deliver(_snapshot: CampaignSnapshot) -> None:
        start = clock()
        await clock.sleep(0.5)  # the platform's latency
        spans.append((start, clock()))

    sink = CoalescingSink(deliver, min_interval_s=1.2, clock=clock, sleep=clock.sleep)
    sink.hold()  # the status message itself was just posted
    await sink.publish(ProgressEvent(EventKind.CAMPAIGN_STARTED, "c1", 1.0, campaign=_campaign()))
    await sink.aclose()
    await sink.publish(_step(EventKind.STEP_STARTED, 0))
    await sink.aclose()
    assert spans[0][0] == pytest.approx(101.2)  # 1.2 s after the post, not at once
    assert spans[1][0] - spans[0][1] == pytest.approx(1.2)  # from the end of the last edit


async def test_replicate_percentages_reach_the_status_lines_coalesced() -> None:
    """A video's tqdm bar (a real log shape) shows as 'processing N%' on its product line."""
    clock = FakeClock()
    delivered: list[CampaignSnapshot] = []

    async def deliver(snapshot: CampaignSnapshot) -> None:
        delivered.append(snapshot)

    sink = CoalescingSink(deliver, min_interval_s=1.0, clock=clock, sleep=clock.sleep)
    await sink.publish(ProgressEvent(EventKind.CAMPAIGN_STARTED, "c1", 1.0, campaign=_campaign()))
    await sink.publish(_step(EventKind.STEP_STARTED, 0))
    logs = "[seedance] queued\n  0%|          | 0/30 [00:00<?, ?it/s]\n"
    for done in range(1, 31):  # one poll per tqdm line, as `_watch` reports them
        logs += f" {done * 100 // 30}%|####      | {done}/30 [00:{done:02d}<00:10,  1.66s/it]\n"
        await sink.publish(
            _step(
                EventKind.STEP_PROGRESS,
                0,
                message=status_line(_prediction("processing", logs)),
            )
        )
    await sink.aclose()
    assert len(delivered) <= 3  # 31 updates, coalesced
    final = delivered[-1]
    assert final.products[0].steps[StepName.IMAGE].message == "processing 100%"
    assert product_line(final.products[0]).endswith("image 🔄 processing 100%")
    waiting = _step(EventKind.STEP_PROGRESS, 1, message="queued: 1st in line for image")
    snap = copy.deepcopy(final)
    snap.apply(ProgressEvent(**{**waiting.__dict__, "queued": 1}))
    assert product_line(snap.products[1]).endswith("image ⏳ queued: 1st in line for image")
    assert snap.products[1].steps[StepName.IMAGE].queued == 1


def _prediction(status: str, logs: str | None) -> Prediction:
    return Prediction("p1", Status(status), logs=logs)
