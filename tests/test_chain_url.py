"""A video starts from its image's provider URL while the image is still being saved.

Real SQLite files, the LocalExecutor, and a fake generator whose image step
announces its URL (`output_ready`) and then waits at a gate, the way the
Replicate generator downloads after its prediction succeeded. Ordering is
observed with asyncio gates, never with sleeps.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from adapters.local_executor import LocalExecutor
from core.errors import PermanentStepError
from core.model import (
    Campaign,
    CampaignStatus,
    Product,
    StepName,
    StepRecord,
    StepStatus,
)
from core.pipeline import URL_FRESH_S, ChainRunner, new_product
from core.planner import plan_offline
from core.ports import StepContext, StepJob, StepOutput
from core.progress import EventKind, ProgressEvent
from core.request import CampaignRequest
from core.scheduler import Limits, Scheduler
from storage.sqlite_store import SqliteStore
from tests.fakes import FakeClock

Key = tuple[int, str]  # (product index, step name)


def url_of(index: int) -> str:
    return f"https://example.invalid/p{index}.png"


class UrlGenerator:
    """Images: announce the provider URL, then "download" once their gate opens.

    Videos wait for their own gate. Records every job, every cancel, and fails
    the downloads named in `fail_download` (after the URL was announced).
    """

    name = "url-gated"

    def __init__(self, *, fail_download: set[int] | None = None) -> None:
        self.fail_download = set(fail_download or ())
        self.jobs: dict[Key, StepJob] = {}
        self.canceled: list[Key] = []
        self.gates: defaultdict[Key, asyncio.Event] = defaultdict(asyncio.Event)
        self.started: defaultdict[Key, asyncio.Event] = defaultdict(asyncio.Event)

    def open(self, *keys: Key) -> None:
        for key in keys:
            self.gates[key].set()

    def price_usd(self, step: StepName, model: str | None) -> float:
        return 0.01

    async def check_models(self, models: object) -> None:

        return None

    def typical_s(self, step: object, model: object) -> float | None:

        return None

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        key = (job.plan.index, job.step.value)
        self.jobs[key] = job
        self.started[key].set()
        url = url_of(job.plan.index) if job.step is StepName.IMAGE else None
        try:
            if url is not None:
                await ctx.hooks.output_ready(url)  # the prediction succeeded
            await self.gates[key].wait()  # downloading (an image) or generating (a video)
        except asyncio.CancelledError:
            self.canceled.append(key)
            raise
        if url is not None and job.plan.index in self.fail_download:
            raise PermanentStepError(f"download of image {job.plan.index} failed")
        path = Path(job.out_dir) / f"{key[0]}-{key[1]}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"url={job.input_url} path={job.input_path}")
        return StepOutput(path=str(path), provider_id=f"pred-{key[0]}-{key[1]}", url=url)


class WatchingSink:
    """Keeps every event and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self._changed = asyncio.Condition()

    async def publish(self, event: ProgressEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def index(self, kind: EventKind, step: StepName | None = None, product: int = 0) -> int | None:
        """Position of the first such event (of product `product`), if any."""
        found = (
            i
            for i, e in enumerate(self.events)
            if e.kind is kind and e.product_index == product and (step is None or e.step is step)
        )
        return next(found, None)

    async def wait_for(
        self, kind: EventKind, step: StepName | None = None, product: int = 0
    ) -> ProgressEvent:
        """The first such event, once it has been published."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.index(kind, step, product) is not None)
        return self.events[self.index(kind, step, product) or 0]


def _request(products: int = 1) -> CampaignRequest:
    return CampaignRequest(theme="retro cats", products=products, videos=True)


async def test_video_starts_from_the_url_while_the_image_downloads(make_service, store) -> None:
    gen = UrlGenerator()
    sink = WatchingSink()
    service = make_service(gen)
    campaign = await service.submit(_request(), [sink])
    await gen.started[(0, "video")].wait()
    video_job = gen.jobs[(0, "video")]
    assert (video_job.input_url, video_job.input_path) == (url_of(0), None)
    assert not gen.gates[(0, "image")].is_set()  # the image is still "downloading"
    image = (await store.get(campaign.id)).products[0].step(StepName.IMAGE)
    assert (image.status, image.output_url) == (StepStatus.RUNNING, url_of(0))  # stored at once

    gen.open((0, "video"))  # the video finishes first; the product is not finished yet
    await sink.wait_for(EventKind.STEP_FINISHED, StepName.VIDEO)
    assert sink.index(EventKind.PRODUCT_FINISHED) is None
    gen.open((0, "image"))
    done = await service.wait(campaign.id)

    assert done.status is CampaignStatus.SUCCEEDED
    image, video = done.products[0].steps
    assert Path(image.output or "").exists()
    assert Path(video.output or "").read_text() == f"url={url_of(0)} path=None"
    assert image.output_url == url_of(0)
    image_done = sink.index(EventKind.STEP_FINISHED, StepName.IMAGE)
    product_done = sink.index(EventKind.PRODUCT_FINISHED)
    assert image_done is not None
    assert product_done is not None
    assert product_done > image_done


async def test_a_failed_download_fails_the_image_but_the_video_goes_on(
    make_service,
) -> None:
    gen = UrlGenerator(fail_download={0})
    sink = WatchingSink()
    service = make_service(gen)
    campaign = await service.submit(_request(), [sink])
    await gen.started[(0, "video")].wait()
    gen.open((0, "image"))
    failed = await sink.wait_for(EventKind.STEP_FINISHED, StepName.IMAGE)
    assert failed.status == "failed"
    assert not gen.gates[(0, "video")].is_set()  # still running after its image failed
    gen.open((0, "video"))
    done = await service.wait(campaign.id)

    image, video = done.products[0].steps
    assert image.status is StepStatus.FAILED
    assert "download of image 0 failed" in (image.error or "")
    assert video.status is StepStatus.SUCCEEDED  # its outcome stands on its own
    assert done.status is CampaignStatus.PARTIAL


async def test_cancel_stops_the_download_and_the_video(make_service) -> None:
    gen = UrlGenerator()
    service = make_service(gen)
    campaign = await service.submit(_request())
    await gen.started[(0, "video")].wait()
    done = await service.cancel(campaign.id)

    assert done.status is CampaignStatus.CANCELED
    assert sorted(gen.canceled) == [(0, "image"), (0, "video")]
    assert [s.status for s in done.products[0].steps] == [StepStatus.CANCELED] * 2
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftovers == []


async def test_a_video_that_waited_too_long_for_its_slot_uses_the_file(
    store: SqliteStore, make_runner
) -> None:
    """One video slot: product 1's video waits behind product 0's until its URL is stale."""
    clock = FakeClock(start=1000.0)
    gen = UrlGenerator()
    campaign = await _store_campaign(store, _request(2))
    sink = WatchingSink()
    runner = make_runner(gen, clock, Limits(text=1, image=2, video=1, cpu=1), sink)
    async with asyncio.TaskGroup() as group:
        for product in campaign.products:
            group.create_task(runner.run(product))
        await gen.started[(0, "video")].wait()  # holds the only video slot
        await gen.started[(1, "image")].wait()
        clock.now += URL_FRESH_S + 60  # product 1's URL gets old while its video waits
        gen.open((1, "image"))
        await sink.wait_for(EventKind.STEP_FINISHED, StepName.IMAGE, product=1)
        gen.open((0, "video"), (0, "image"), (1, "video"))
    stored = await store.get(campaign.id)
    late = gen.jobs[(1, "video")]
    assert late.input_url is None
    assert late.input_path == stored.products[1].output(StepName.IMAGE)
    assert all(s.status is StepStatus.SUCCEEDED for s in stored.steps())


@pytest.mark.parametrize(
    ("age_s", "fresh"),
    [(URL_FRESH_S + 1.0, False), (URL_FRESH_S - 60.0, True), (10.0, True)],
)
async def test_a_resumed_chain_uses_the_stored_url_only_while_fresh(
    store: SqliteStore, make_runner, tmp_path: Path, age_s: float, fresh: bool
) -> None:
    image_file = tmp_path / "p0.png"
    image_file.write_text("png")
    done_image = StepRecord(
        0,
        StepName.IMAGE,
        StepStatus.SUCCEEDED,
        attempts=1,
        finished_at=5000.0,
        output=str(image_file),
        output_url=url_of(0),
    )
    campaign = await _store_campaign(store, _request(), image=done_image)
    gen = UrlGenerator()
    gen.open((0, "video"))
    runner = make_runner(gen, FakeClock(start=5000.0 + age_s))
    await runner.run(campaign.products[0])

    job = gen.jobs[(0, "video")]
    assert (job.input_url, job.input_path) == (url_of(0) if fresh else None, str(image_file))
    assert (0, "image") not in gen.jobs  # finished before: not run again
    stored = await store.get(campaign.id)
    assert stored.products[0].step(StepName.VIDEO).status is StepStatus.SUCCEEDED


async def test_a_resumed_chain_whose_image_failed_skips_the_video(
    store: SqliteStore, make_runner
) -> None:
    failed = StepRecord(0, StepName.IMAGE, StepStatus.FAILED, attempts=1, error="nsfw")
    campaign = await _store_campaign(store, _request(), image=failed)
    gen = UrlGenerator()
    await make_runner(gen, FakeClock()).run(campaign.products[0])
    assert gen.jobs == {}
    video = (await store.get(campaign.id)).products[0].step(StepName.VIDEO)
    assert (video.status, video.error) == (StepStatus.SKIPPED, "no image to animate")


RunnerFactory = Callable[..., ChainRunner]
OWNER = "chain-test"  # the process the runner writes as


@pytest.fixture
async def make_runner(store: SqliteStore, tmp_path: Path) -> AsyncIterator[RunnerFactory]:
    """Factory: a ChainRunner for campaign "chain001" on the real store and a LocalExecutor."""
    executors: list[LocalExecutor] = []

    def factory(
        gen: UrlGenerator,
        clock: FakeClock,
        limits: Limits | None = None,
        sink: WatchingSink | None = None,
    ) -> ChainRunner:
        limits = limits or Limits(text=1, image=2, video=2, cpu=1)
        executors.append(LocalExecutor(gen, limits))
        return ChainRunner(
            campaign_id="chain001",
            style="neon",
            seed=1,
            out_dir=str(tmp_path / "out"),
            store=store,
            executor=executors[-1],
            scheduler=Scheduler(limits),
            publish=(sink or WatchingSink()).publish,
            clock=clock,
            owner=OWNER,
        )

    yield factory
    for executor in executors:
        await executor.aclose()


async def _store_campaign(
    store: SqliteStore, request: CampaignRequest, image: StepRecord | None = None
) -> Campaign:
    """A running campaign "chain001"; product 0's image step replaced by `image` if given."""
    products = [new_product(plan, request) for plan in plan_offline(request)]
    if image is not None:
        products[0] = Product(products[0].plan, (image, *products[0].steps[1:]))
    campaign = Campaign(
        id="chain001",
        request=request,
        status=CampaignStatus.RUNNING,
        created_at=1.0,
        executor="local",
        generator="url-gated",
        started_at=1.0,
        products=tuple(products),
    )
    await store.create_campaign(campaign)
    assert await store.claim(campaign.id, OWNER, now=1.0, stale_before=0.0)  # writes are fenced
    return campaign
