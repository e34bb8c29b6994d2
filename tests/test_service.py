"""The service on a real SQLite file and the LocalExecutor, with a gated fake generator.

Concurrency is observed with gates and counters, never with sleeps.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from adapters.local_executor import LocalExecutor
from bot.words import refusal
from core.errors import CampaignStateError, TransientStepError
from core.lease import Ownership
from core.model import (
    Campaign,
    CampaignStatus,
    Product,
    SlackOrigin,
    StepName,
    StepRecord,
    StepStatus,
)
from core.planner import OfflinePlanner, plan_offline
from core.ports import OnPlan, PlanContext, Plans, StepContext, StepJob, StepOutput
from core.progress import EventKind, ProgressEvent
from core.request import CampaignRequest
from core.run import RunContext, Runs
from core.scheduler import Limits, Scheduler
from tests.fakes import GatedGenerator, fake_sheet


class RecordingSink:
    """Keeps every event it is given."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    async def publish(self, event: ProgressEvent) -> None:
        self.events.append(event)


def _request(products: int, videos: bool = True) -> CampaignRequest:
    return CampaignRequest(theme="retro cats", products=products, videos=videos)


async def test_image_limit_is_respected_and_reached(make_service) -> None:
    gen = GatedGenerator()
    service = make_service(gen, Limits(text=1, image=3, video=2, cpu=1))
    campaign = await service.submit(_request(10, videos=False))
    await gen.wait_started(3)
    assert gen.running["image"] == 3
    for i in range(10):  # release one at a time: the limit stays full until the tail
        gen.open((i, "image"))
        await gen.finished[(i, "image")].wait()
    done = await service.wait(campaign.id)
    assert done.status is CampaignStatus.SUCCEEDED
    assert gen.peak["image"] == 3


async def test_video_starts_before_the_last_image_finishes(make_service) -> None:
    gen = GatedGenerator()
    service = make_service(gen, Limits(text=1, image=2, video=2, cpu=1))
    campaign = await service.submit(_request(3))
    gen.open((0, "image"))
    await gen.started[(0, "video")].wait()
    assert not gen.finished[(2, "image")].is_set()  # no barrier between images and videos
    gen.open(*[(i, s) for i in range(3) for s in ("image", "video")])
    assert (await service.wait(campaign.id)).status is CampaignStatus.SUCCEEDED


async def test_one_failure_does_not_stop_the_others(make_service, store) -> None:
    gen = GatedGenerator(open_all=True, fail={(1, "image")})
    service = make_service(gen)
    done = await service.run(_request(3))
    assert done.status is CampaignStatus.PARTIAL
    failed = done.products[1]
    assert failed.step(StepName.IMAGE).status is StepStatus.FAILED
    assert "model said no" in (failed.step(StepName.IMAGE).error or "")
    assert failed.step(StepName.VIDEO).status is StepStatus.SKIPPED
    assert (1, "video") not in gen.calls
    assert all(p.status is StepStatus.SUCCEEDED for p in (done.products[0], done.products[2]))
    assert done.contact_sheet is not None
    assert (await store.get(done.id)).status is CampaignStatus.PARTIAL


async def test_all_failed_is_failed(make_service) -> None:
    gen = GatedGenerator(open_all=True, fail={(0, "image"), (1, "image")})
    done = await make_service(gen).run(_request(2))
    assert done.status is CampaignStatus.FAILED
    assert done.contact_sheet is None


async def test_cancel_stops_running_and_pending_steps(make_service) -> None:
    gen = GatedGenerator()
    service = make_service(gen, Limits(text=1, image=2, video=2, cpu=1))
    campaign = await service.submit(_request(4))
    await gen.wait_started(2)
    done = await service.cancel(campaign.id)
    assert done.status is CampaignStatus.CANCELED
    assert sorted(gen.canceled) == [(0, "image"), (1, "image")]
    assert all(s.status is StepStatus.CANCELED for s in done.steps())
    assert not any(step == "video" for _, step in gen.calls)
    # the prediction id stored while it ran is kept for resuming or auditing
    assert done.products[0].step(StepName.IMAGE).provider_id == "pred-0-image"


async def test_cancel_flag_from_another_process_is_seen(make_service, store) -> None:
    gen = GatedGenerator()
    service = make_service(gen, cancel_poll_s=0.01)
    campaign = await service.submit(_request(2))
    await gen.wait_started(2)
    await store.request_cancel(campaign.id)  # what `bot.py cancel ID` does elsewhere
    done = await service.wait(campaign.id)
    assert done.status is CampaignStatus.CANCELED


async def test_retry_reruns_only_failed_steps(make_service) -> None:
    gen = GatedGenerator(open_all=True, fail={(1, "image")}, fail_once=True)
    service = make_service(gen)
    first = await service.run(_request(3))
    assert first.status is CampaignStatus.PARTIAL
    gen.calls.clear()
    await service.retry(first.id)
    again = await service.wait(first.id)
    assert again.status is CampaignStatus.SUCCEEDED
    assert sorted(gen.calls) == [(1, "image"), (1, "video")]
    assert again.products[1].step(StepName.IMAGE).attempts == 2
    assert again.products[0].step(StepName.IMAGE).attempts == 1


async def test_retry_after_cancel_finishes_the_rest(make_service) -> None:
    gen = GatedGenerator()
    service = make_service(gen, Limits(text=1, image=1, video=1, cpu=1))
    campaign = await service.submit(_request(2, videos=False))
    gen.open((0, "image"))
    await gen.finished[(0, "image")].wait()
    await gen.started[(1, "image")].wait()
    assert (await service.cancel(campaign.id)).status is CampaignStatus.CANCELED
    gen.open_all = True
    gen.calls.clear()
    await service.retry(campaign.id)
    assert (await service.wait(campaign.id)).status is CampaignStatus.SUCCEEDED
    assert gen.calls == [(1, "image")]


async def test_steps_are_stored_and_announced(make_service, store) -> None:
    gen = GatedGenerator(open_all=True)
    sink = RecordingSink()
    service = make_service(gen)
    done = await service.run(_request(2), [sink])
    kinds = [e.kind for e in sink.events]
    assert kinds[0] is EventKind.CAMPAIGN_STARTED
    assert kinds[-1] is EventKind.CAMPAIGN_FINISHED
    assert kinds.count(EventKind.STEP_STARTED) == 4
    assert kinds.count(EventKind.STEP_FINISHED) == 4
    assert EventKind.STEP_PROGRESS in kinds
    stored = await store.get(done.id)
    step = stored.products[0].step(StepName.VIDEO)
    assert step.status is StepStatus.SUCCEEDED
    assert step.provider_id == "pred-0-video"
    assert step.attempts == 1
    assert step.started_at
    assert step.finished_at
    assert step.output
    assert step.output.endswith("0-video.txt")
    assert stored.cost_usd == 0.04
    assert stored.contact_sheet
    assert stored.contact_sheet.endswith("contact-sheet.png")


async def test_service_close_cancels_running_campaigns(make_service) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    campaign = await service.submit(_request(2))
    await gen.wait_started(2)
    await service.aclose()
    assert (await service.get(campaign.id)).status is CampaignStatus.CANCELED


async def test_service_close_stops_only_what_the_service_started(make_service) -> None:
    """A front end hands over, then the composition root closes the service on exit:
    nothing is cancelled, and the store and executor stay open for their opener."""
    gen = GatedGenerator()
    service = make_service(gen)
    service.start_resuming()
    campaign = await service.submit(_request(1))
    await gen.wait_started(1)
    await service.aclose(hand_over=True)
    await service.aclose()  # nothing left to stop: the hand-over stands
    assert gen.canceled == [] and gen.kept == [(0, "image")]
    assert (await service.get(campaign.id)).status is CampaignStatus.RUNNING  # the store is open
    assert await service.executor.run_cpu(abs, -3) == 3  # so is the executor


async def test_many_campaigns_share_limits(make_service) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen, Limits(text=1, image=2, video=1, cpu=1))
    results = await asyncio.gather(*(service.run(_request(3)) for _ in range(3)))
    assert all(r.status is CampaignStatus.SUCCEEDED for r in results)
    assert gen.peak["image"] <= 2
    assert gen.peak["video"] == 1


async def test_requester_and_origin_are_kept_and_filter_history(make_service) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    mine = await service.submit(_request(1), requester="slack:U1", origin=SlackOrigin(ts="1.2"))
    await service.submit(_request(1), requester="slack:U2")
    await service.wait(mine.id)
    stored = await service.get(mine.id)
    assert stored.requester == "slack:U1"
    assert stored.origin == SlackOrigin(ts="1.2")
    assert [c.id for c in await service.history(requester="slack:U1")] == [mine.id]
    assert len(await service.history()) == 2


async def test_estimate_counts_steps_and_prices(make_service) -> None:
    service = make_service(GatedGenerator())
    estimate = service.estimate(_request(5))
    assert (estimate.steps, estimate.cost_usd) == (10, 0.1)
    assert service.estimate(_request(5, videos=False)).steps == 5


async def test_product_finished_is_announced_once_per_product(make_service) -> None:
    gen = GatedGenerator(open_all=True, fail={(1, "image")})
    sink = RecordingSink()
    await make_service(gen).run(_request(3), [sink])
    finished = {
        e.product_index: e.status for e in sink.events if e.kind is EventKind.PRODUCT_FINISHED
    }
    assert finished == {0: "succeeded", 1: "failed", 2: "succeeded"}


async def test_a_retry_announces_only_the_products_it_ran_again(make_service) -> None:
    """Products that finished before a retry are not announced (and so not re-posted) again."""
    gen = GatedGenerator(open_all=True, fail={(1, "image")}, fail_once=True)
    service = make_service(gen)
    first = await service.run(_request(3))
    assert first.status is CampaignStatus.PARTIAL
    sink = RecordingSink()
    await service.retry(first.id, [sink])
    await service.wait(first.id)
    announced = [e.product_index for e in sink.events if e.kind is EventKind.PRODUCT_FINISHED]
    assert announced == [1]


async def test_cancel_right_after_submit_runs_nothing(make_service) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    campaign = await service.submit(_request(3))
    done = await service.cancel(campaign.id)  # before the campaign task has even started
    assert done.status is CampaignStatus.CANCELED
    assert gen.calls == []


class FlakyGenerator:
    """Stores a prediction id, then fails transiently once; records each job's provider id."""

    name = "flaky"

    def __init__(self) -> None:
        self.seen_ids: list[str | None] = []

    def price_usd(self, step: object, model: object) -> float:
        return 0.0

    async def check_models(self, models: object) -> None:

        return None

    def typical_s(self, step: object, model: object) -> float | None:

        return None

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        self.seen_ids.append(job.provider_id)
        if len(self.seen_ids) == 1:
            await ctx.hooks.remember_provider_id("pred-first")
            raise TransientStepError("provider hiccup", delay_s=0)
        path = Path(job.out_dir) / "out.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("ok")
        return StepOutput(path=str(path), provider_id=job.provider_id)


async def test_a_transient_retry_keeps_the_stored_prediction_id(make_service) -> None:
    gen = FlakyGenerator()
    done = await make_service(gen).run(_request(1, videos=False))
    assert done.status is CampaignStatus.SUCCEEDED
    assert gen.seen_ids == [None, "pred-first"]  # re-poll it instead of paying again
    step = done.products[0].step(StepName.IMAGE)
    assert (step.attempts, step.provider_id) == (2, "pred-first")


async def test_two_retries_at_once_start_the_campaign_once(make_service) -> None:
    gen = GatedGenerator(open_all=True, fail={(0, "image")}, fail_once=True)
    service = make_service(gen)
    first = await service.run(_request(1, videos=False))
    results = await asyncio.gather(
        service.retry(first.id), service.retry(first.id), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, CampaignStateError)]
    assert len(errors) == 1
    assert "already starting again" in str(errors[0])
    assert (await service.wait(first.id)).status is CampaignStatus.SUCCEEDED
    assert gen.calls.count((0, "image")) == 2  # the first run and exactly one retry


async def _orphan(store, tmp_path: Path) -> str:
    """A campaign as a crashed process leaves it: some steps done, one in flight."""
    image0 = tmp_path / "p0.png"
    image0.write_text("png")
    request = _request(3)
    plans = await OfflinePlanner().plan(request)
    steps = {
        (0, "image"): StepRecord(0, StepName.IMAGE, StepStatus.SUCCEEDED, 1, output=str(image0)),
        (0, "video"): StepRecord(0, StepName.VIDEO, StepStatus.RUNNING, 1, provider_id="pred-v0"),
        (1, "image"): StepRecord(1, StepName.IMAGE, StepStatus.FAILED, 1, error="nsfw"),
        (1, "video"): StepRecord(1, StepName.VIDEO, StepStatus.SKIPPED),
        (2, "image"): StepRecord(2, StepName.IMAGE),
        (2, "video"): StepRecord(2, StepName.VIDEO),
    }
    products = tuple(
        Product(p, (steps[(p.index, "image")], steps[(p.index, "video")])) for p in plans
    )
    campaign = Campaign(
        id="orphan01",
        request=request,
        status=CampaignStatus.RUNNING,
        created_at=1.0,
        executor="local",
        generator="gated",
        started_at=1.0,
        products=products,
    )
    await store.create_campaign(campaign)
    return campaign.id


async def test_resume_runs_only_unfinished_steps_and_repolls_stored_ids(
    make_service, store, tmp_path: Path
) -> None:
    cid = await _orphan(store, tmp_path)
    gen = GatedGenerator(open_all=True)
    sink = RecordingSink()
    service = make_service(gen)
    resumed = (await service.resume_orphans(lambda campaign: [sink])).resumed
    assert [c.id for c in resumed] == [cid]
    done = await service.wait(cid)
    assert sorted(gen.calls) == [(0, "video"), (2, "image"), (2, "video")]
    assert gen.provider_ids[(0, "video")] == "pred-v0"  # polled again, not paid again
    assert done.status is CampaignStatus.PARTIAL  # product 1 had failed before the crash
    assert done.products[0].step(StepName.IMAGE).attempts == 1
    assert sink.events[-1].kind is EventKind.CAMPAIGN_FINISHED
    assert (await service.resume_orphans()).nothing_to_do  # finished: nothing left to take over


async def test_a_live_campaign_is_not_taken_over(make_service, store, tmp_path: Path) -> None:
    cid = await _orphan(store, tmp_path)
    assert await store.claim(cid, "other-process", now=time.time(), stale_before=0.0)
    service = make_service(GatedGenerator(open_all=True))
    assert (await service.resume_orphans()).resumed == []
    with pytest.raises(CampaignStateError) as refused:
        await service.retry(cid)
    assert "still running" in refusal(refused.value)


async def test_cancelling_an_orphan_does_not_wait_for_its_dead_process(
    make_service, store, tmp_path: Path
) -> None:
    cid = await _orphan(store, tmp_path)
    service = make_service(GatedGenerator(), cancel_poll_s=60.0)
    async with asyncio.timeout(30):  # waiting for the dead owner would take 3 polls: 180 s
        done = await service.cancel(cid)
    assert done.status is CampaignStatus.CANCELED
    assert {s.status for s in done.steps()} == {
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.CANCELED,
    }


# --- one campaign's run -----------------------------------------------------------------


class NotingPlanner:
    """The offline plans, with a note the way the LLM planner explains a fallback."""

    name = "noting"

    async def plan(
        self,
        request: CampaignRequest,
        ctx: PlanContext | None = None,
        on_plan: OnPlan | None = None,
    ) -> Plans:
        plans = await OfflinePlanner().plan(request, ctx, on_plan)
        return Plans(plans, note="planned by hand")


async def test_a_run_plans_through_the_port_and_shows_the_planners_note(
    store, tmp_path: Path
) -> None:
    limits = Limits(text=1, image=2, video=2, cpu=1)
    executor = LocalExecutor(GatedGenerator(open_all=True), limits)
    ownership = Ownership(store, lease_s=10.0)
    audited: list[str] = []

    async def finished(campaign: Campaign) -> None:
        audited.append(campaign.id)

    runs = Runs(
        RunContext(
            records=store,
            ownership=ownership,
            planner=NotingPlanner(),
            executor=executor,
            scheduler=Scheduler(limits),
            sheet=fake_sheet,
            data_dir=tmp_path / "data",
            beat_s=1.0,
            clock=time.time,
            finished=finished,
        )
    )
    request = _request(2, videos=False)
    campaign = Campaign("run00001", request, CampaignStatus.PENDING, time.time(), "local", "gated")
    await store.create_campaign(campaign)
    assert await ownership.claim(campaign.id)
    sink = RecordingSink()
    try:
        run = runs.start(campaign, [sink])
        assert campaign.id in runs and run.task is not None
        done = await asyncio.wait_for(run.task, 30)
    finally:
        await executor.aclose()
    assert done.status is CampaignStatus.SUCCEEDED and audited == [campaign.id]
    assert [p.plan for p in done.products] == plan_offline(request)
    kinds = [(e.kind, e.message) for e in sink.events if e.product_index is None]
    assert kinds[:3] == [
        (EventKind.CAMPAIGN_STARTED, ""),  # nothing planned yet
        (EventKind.CAMPAIGN_STARTED, ""),  # every product planned (each announced as it was)
        (EventKind.STEP_PROGRESS, "planned by hand"),
    ]
    planned = [e.product_index for e in sink.events if e.kind is EventKind.PRODUCT_PLANNED]
    assert planned == [0, 1]
    assert kinds[-1][0] is EventKind.CAMPAIGN_FINISHED and campaign.id not in runs
