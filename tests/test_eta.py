"""The ETA comes from measured durations per model, recent history first."""

from __future__ import annotations

import pytest

from bot.chat.text import progress_line
from core.eta import (
    DEFAULT_S,
    Durations,
    Pace,
    Sample,
    StepState,
    campaign_left,
)
from core.model import (
    Campaign,
    CampaignStatus,
    Product,
    ProductPlan,
    StepName,
    StepRecord,
    StepStatus,
)
from core.progress import CampaignSnapshot, EventKind, ProgressEvent
from core.request import CampaignRequest
from core.scheduler import Limits, Scheduler
from storage.open import Store
from tests.fakes import GatedGenerator

pytestmark = pytest.mark.both_stores

IMAGE, VIDEO = StepName.IMAGE, StepName.VIDEO
PENDING, RUNNING, DONE = StepStatus.PENDING, StepStatus.RUNNING, StepStatus.SUCCEEDED


def test_typical_is_the_median_of_the_most_recent_samples_of_that_model() -> None:
    newest_first = [Sample(VIDEO, "seedance", s) for s in (60, 62, 58)] + [
        Sample(VIDEO, "seedance", 600)
        for _ in range(10)  # an old slow spell, beyond `recent`
    ]
    durations = Durations(newest_first, recent=3)
    assert durations.typical(VIDEO, "seedance") == 60


def test_an_unmeasured_model_falls_back_to_the_step_then_to_the_default() -> None:
    durations = Durations([Sample(IMAGE, "flux", 8.0), Sample(IMAGE, "flux", 10.0)])
    assert durations.typical(IMAGE, "flux") == 9.0
    assert durations.typical(IMAGE, "sdxl") == 9.0  # any image model measured here
    assert durations.typical(VIDEO, "seedance") == DEFAULT_S[VIDEO]


def test_eta_orders_campaigns_by_their_stored_durations_not_by_step_counts() -> None:
    history = Durations(
        [Sample(IMAGE, "flux", 10.0), Sample(VIDEO, "seedance", 100.0), Sample(VIDEO, "fast", 5.0)]
    )

    # Same shape (one image done, one video pending) but different video models:
    def shape(video_model: str) -> list[list[StepState]]:
        return [[StepState(IMAGE, DONE, 0.0, "flux"), StepState(VIDEO, PENDING, None, video_model)]]

    slow = campaign_left(shape("seedance"), history, now=10.0)
    fast = campaign_left(shape("fast"), history, now=10.0)
    assert slow == 100.0 and fast == 5.0
    # An equal share per step would have said the same for both (10 s done per step).


def test_a_running_step_counts_its_rest_and_products_run_side_by_side() -> None:
    typical = Durations([Sample(IMAGE, None, 10.0), Sample(VIDEO, None, 100.0)])
    running = [StepState(IMAGE, DONE, 0.0), StepState(VIDEO, RUNNING, 10.0)]
    waiting = [StepState(IMAGE, RUNNING, 0.0), StepState(VIDEO, PENDING, None)]
    assert campaign_left([running], typical, now=40.0) == 70.0
    assert campaign_left([waiting], typical, now=4.0) == 106.0
    assert campaign_left([running, waiting], typical, now=40.0) == 100.5  # the slower: 0.5 + 100
    overdue = [StepState(VIDEO, RUNNING, 0.0)]
    assert 0 < (campaign_left([overdue], typical, now=500.0) or 0) < 10  # late: never zero


def test_nothing_left_means_no_eta() -> None:
    typical = Durations([Sample(IMAGE, None, 10.0)])
    assert campaign_left([[StepState(IMAGE, DONE, 0.0)]], typical, now=5.0) is None
    assert campaign_left([], typical, now=5.0) is None


def test_steps_beyond_a_kinds_slots_run_in_waves() -> None:
    history = Durations([Sample(IMAGE, "flux", 10.0), Sample(VIDEO, "seedance", 100.0)])
    four = [[StepState(IMAGE, PENDING, None, "flux")] for _ in range(4)]
    assert campaign_left(four, history, now=0.0) == 10.0  # no limits: side by side
    assert campaign_left(four, history, now=0.0, slots={IMAGE: 2}) == 20.0  # two waves
    assert campaign_left(four, history, now=0.0, slots={IMAGE: 1}) == 40.0
    chains = [
        [StepState(IMAGE, RUNNING, 0.0, "flux"), StepState(VIDEO, PENDING, None, "seedance")],
        [StepState(IMAGE, PENDING, None, "flux"), StepState(VIDEO, PENDING, None, "seedance")],
    ]
    # one image slot: the second image after the first (10 s), its video 100 s after that
    assert campaign_left(chains, history, now=4.0, slots={IMAGE: 1, VIDEO: 2}) == 116.0
    # one video slot as well: the second video waits for the first (6 + 100, then + 100)
    assert campaign_left(chains, history, now=4.0, slots={IMAGE: 1, VIDEO: 1}) == 206.0


def test_a_step_far_back_in_line_makes_the_eta_longer_but_never_below_the_slowest_chain() -> None:
    history = Durations([Sample(IMAGE, "flux", 10.0)])
    near = [[StepState(IMAGE, PENDING, None, "flux", queued=1)]]
    far = [[StepState(IMAGE, PENDING, None, "flux", queued=9)]]
    assert campaign_left(near, history, now=0.0, slots={IMAGE: 2}) == 12.5
    assert campaign_left(far, history, now=0.0, slots={IMAGE: 2}) == 52.5  # 8.5 / 2 waves ahead
    running = [[StepState(IMAGE, RUNNING, 0.0, "flux"), StepState(VIDEO, PENDING, None)]]
    left = campaign_left(running, history, now=2.0, slots={IMAGE: 1, VIDEO: 1})
    assert left == 8.0 + DEFAULT_S[VIDEO]  # an unmeasured video model: the default


def test_durations_put_newer_samples_first() -> None:
    old = Durations([Sample(VIDEO, "seedance", 100.0)] * 5, recent=5)
    assert old.typical(VIDEO, "seedance") == 100.0
    assert old.newer([Sample(VIDEO, "seedance", 10.0)] * 3).typical(VIDEO, "seedance") == 10.0
    assert old.newer([]) is old


def _stored(index: int, step: StepName, model: str, seconds: float, at: float) -> StepRecord:
    return StepRecord(
        index, step, StepStatus.SUCCEEDED, 1, at - seconds, at, model=model, output=f"{index}"
    )


async def _history(store: Store, steps: list[StepRecord]) -> None:
    plans = [ProductPlan(i, f"P{i}", "mug", "t", "ip", "vp") for i in range(len(steps))]
    await store.create_campaign(
        Campaign(
            id=f"old{len(steps)}-{steps[0].finished_at:.0f}",
            request=CampaignRequest(theme="old", products=len(steps), videos=True),
            status=CampaignStatus.SUCCEEDED,
            created_at=0.0,
            executor="local",
            generator="gated",
            products=tuple(Product(p, (s,)) for p, s in zip(plans, steps, strict=True)),
        )
    )


def _running(video_model: str, pace: Pace) -> CampaignSnapshot:
    request = CampaignRequest(theme="new", products=2, videos=True)
    plans = [ProductPlan(i, f"P{i}", "mug", "t", "ip", "vp") for i in range(2)]
    campaign = Campaign(
        id="new",
        request=request,
        status=CampaignStatus.RUNNING,
        created_at=1000.0,
        executor="local",
        generator="gated",
        started_at=1000.0,
        products=tuple(
            Product(
                p,
                (
                    StepRecord(p.index, IMAGE, RUNNING, 1, 1000.0, model="flux"),
                    StepRecord(p.index, VIDEO, model=video_model),
                ),
            )
            for p in plans
        ),
    )
    snap = CampaignSnapshot(campaign.id)
    snap.apply(
        ProgressEvent(EventKind.CAMPAIGN_STARTED, "new", 1000.0, campaign=campaign, pace=pace)
    )
    return snap


async def test_stored_history_orders_the_eta_and_recent_samples_outweigh_old(
    store: Store,
) -> None:
    scheduler = Scheduler(Limits(text=1, image=4, video=4, cpu=1))
    # long ago "seedance" videos took 10 s; lately they take 100 s. "fast" videos take 10 s.
    await _history(store, [_stored(i, VIDEO, "seedance", 10.0, 100.0 + i) for i in range(25)])
    await _history(store, [_stored(i, VIDEO, "seedance", 100.0, 500.0 + i) for i in range(20)])
    await _history(store, [_stored(i, VIDEO, "fast", 10.0, 600.0 + i) for i in range(3)])
    await _history(store, [_stored(i, IMAGE, "flux", 8.0, 700.0 + i) for i in range(3)])
    pace = scheduler.pace(await store.step_samples())
    assert pace.durations.typical(VIDEO, "seedance") == 100.0  # the 20 newest, not all 45
    slow = _running("seedance", pace).timing(now=1002.0)
    fast = _running("fast", pace).timing(now=1002.0)
    assert slow == (2.0, 106.0) and fast == (2.0, 16.0)  # 6 s of the image left, then the video
    assert _running("fast", pace).timing(now=1002.0) == fast
    text = progress_line(_running("seedance", pace), "local", now=1002.0)
    assert "ETA 1m 46s" in text


async def test_a_finished_step_of_the_campaign_itself_counts_first(store: Store) -> None:
    scheduler = Scheduler(Limits(text=1, image=4, video=4, cpu=1))
    await _history(store, [_stored(0, IMAGE, "flux", 30.0, 100.0)])
    snap = _running("fast", scheduler.pace(await store.step_samples()))
    assert snap.timing(now=1001.0) == (1.0, 29.0 + DEFAULT_S[VIDEO])
    snap.apply(ProgressEvent(EventKind.STEP_FINISHED, "new", 1004.0, 0, IMAGE, "succeeded"))
    # this campaign's own image took 4 s: the newest sample of flux, ahead of the stored 30 s ones
    assert snap.pace is not None
    assert snap._measured(snap.pace).typical(IMAGE, "flux") == 17.0  # median of 4 and 30
    assert snap.timing(now=1004.0)[1] == 13.0 + DEFAULT_S[VIDEO]


def test_a_models_typical_duration_stands_in_until_it_is_measured() -> None:
    typical = {(VIDEO, "veo"): 90.0, (VIDEO, None): 40.0, (IMAGE, None): 1.0}

    def guess(step: StepName, model: str | None) -> float | None:
        return typical.get((step, model))

    fresh = Durations(guess=guess)
    assert (fresh.typical(VIDEO, "veo"), fresh.typical(VIDEO), fresh.typical(IMAGE)) == (90, 40, 1)
    assert fresh.typical(VIDEO, "unknown-model") == DEFAULT_S[VIDEO]  # nothing known of it
    measured = fresh.newer([Sample(VIDEO, "seedance", 70.0)])
    assert measured.typical(VIDEO, "seedance") == 70.0  # measured wins
    assert measured.typical(VIDEO) == 70.0  # the default's steps: what was measured here
    assert measured.typical(VIDEO, "veo") == 90.0  # a named model not yet measured: its figure


async def test_a_first_offline_campaign_expects_offline_durations(
    make_service, store: Store
) -> None:
    from adapters.offline.generator import OfflineGenerator

    events: list[ProgressEvent] = []

    class Sink:
        async def publish(self, event: ProgressEvent) -> None:
            events.append(event)

    generator = OfflineGenerator(video_seconds=1.0)
    service = make_service(generator)
    await service.run(CampaignRequest(theme="cats", products=1, videos=True), [Sink()])
    pace = next(e.pace for e in events if e.kind is EventKind.CAMPAIGN_STARTED and e.pace)
    assert pace.durations.typical(VIDEO) == generator.typical_s(VIDEO, None)
    assert pace.durations.typical(VIDEO) < DEFAULT_S[VIDEO] / 10  # not "ETA 2m 00s"


async def test_a_run_announces_the_stored_pace(make_service, store: Store) -> None:
    await _history(store, [_stored(i, IMAGE, "flux", 42.0, 100.0 + i) for i in range(3)])
    events: list[ProgressEvent] = []

    class Sink:
        async def publish(self, event: ProgressEvent) -> None:
            events.append(event)

    service = make_service(GatedGenerator(open_all=True))
    await service.run(CampaignRequest(theme="cats", products=1), [Sink()])
    started = [e for e in events if e.kind is EventKind.CAMPAIGN_STARTED]
    assert started and all(e.pace is not None for e in started)
    pace = started[0].pace
    assert pace is not None
    assert pace.durations.typical(IMAGE, "any model") == 42.0
    assert pace.slots[IMAGE] == 4  # the fixture's Limits
