"""ReplicateGenerator and LlmPlanner inside the real service, store and LocalExecutor,
driven through the real replicate client against the fake Replicate server."""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from adapters.replicate_api.generator import ReplicateGenerator
from adapters.replicate_api.models import ModelPrice, ModelTable, PriceUnit
from adapters.replicate_api.planner import LlmPlanner
from bot.cli.console import details
from core.model import Campaign, CampaignStatus, ProductPlan, StepKind, StepName, StepStatus
from core.planner import OfflinePlanner, plan_offline
from core.ports import StepContext, StepHooks, StepJob
from core.progress import EventKind, ProgressEvent
from core.request import CampaignRequest, parse_request
from core.scheduler import Limits
from core.service import CampaignService
from storage.sqlite_store import SqliteStore
from tests.conftest import ReplicateFactory
from tests.fakes.model_schemas import SCHEMAS
from tests.fakes.replicate import (
    TOKEN,
    FakeReplicate,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
    fast_settings,
)

LIMITS = Limits(text=2, image=4, video=2, cpu=1)
REQUEST = CampaignRequest(theme="retro cats", products=3, videos=True, seed=11)


class Recorder:
    """A progress sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    async def publish(self, event: ProgressEvent) -> None:
        self.events.append(event)


Build = Callable[..., CampaignService]


@pytest.fixture
def build(replicate_service: ReplicateFactory, fake: FakeReplicate) -> Build:
    def factory(**changes: Any) -> CampaignService:
        return replicate_service(fake, limits=LIMITS, **changes)[0]

    return factory


def _step(campaign: Campaign, index: int, name: StepName) -> Any:
    step = campaign.products[index].step(name)
    assert step is not None
    return step


async def test_full_campaign(build: Build, fake: FakeReplicate) -> None:
    service = build()
    # Priced on what is sent: seedance's schema default of 5 s at 720p, $0.036 a second.
    assert (await service.check(REQUEST)).cost_usd == pytest.approx(3 * 0.003 + 3 * 0.18)
    campaign = await service.run(REQUEST)
    assert campaign.status is CampaignStatus.SUCCEEDED
    assert [p.plan.name for p in campaign.products] == [f"Retro Cats Item {i}" for i in (1, 2, 3)]
    assert campaign.cost_usd == pytest.approx(3 * 0.003 + 3 * 0.18)
    for product in campaign.products:
        image, video = product.output(StepName.IMAGE), product.output(StepName.VIDEO)
        assert image and video and Path(image).name.endswith("-image.png")
        with Image.open(image) as img:
            assert img.format == "PNG"
        assert Path(video).read_bytes()[4:8] == b"ftyp"
        assert all(s.provider_id in fake.predictions for s in product.steps)
        assert all(s.attempts == 1 for s in product.steps)
    kinds = [p["model"] for p in fake.created()]
    assert kinds.count("meta/meta-llama-3-8b-instruct") == 4  # an outline, then 3 details
    assert kinds.count("black-forest-labs/flux-schnell") == 3
    assert kinds.count("bytedance/seedance-1-lite") == 3
    videos = fake.created("bytedance/seedance-1-lite")
    images = {p["id"]: p for p in fake.created("black-forest-labs/flux-schnell")}
    assert {v["input"]["image"] for v in videos} == {i["output"][0] for i in images.values()}
    assert not fake.uploads  # started from the image's output URL: nothing sent back up
    assert all(_step(campaign, i, StepName.IMAGE).output_url for i in range(3))
    assert fake.file_headers and all("Authorization" not in h for h in fake.file_headers)
    assert Path(campaign.contact_sheet or "").exists()


async def test_predict_time_is_recorded_stored_and_shown(
    build: Build, fake: FakeReplicate, tmp_path: Path
) -> None:
    campaign = await build(planner=OfflinePlanner()).run(REQUEST)
    assert campaign.status is CampaignStatus.SUCCEEDED
    expected = [
        fake.predictions[str(s.provider_id)]["metrics"]["predict_time"] for s in campaign.steps()
    ]
    assert len(expected) == 6 and all(t > 0 for t in expected)
    assert [s.predict_time_s for s in campaign.steps()] == expected
    reopened = await SqliteStore.open(tmp_path / "campaigns.db")  # a fresh connection
    try:
        stored = await reopened.get(campaign.id)
    finally:
        await reopened.close()
    shown = [s["predict_time_s"] for p in details(stored)["products"] for s in p["steps"]]
    assert shown == expected


async def test_request_model_overrides_reach_the_api(build: Build, fake: FakeReplicate) -> None:
    version = "d" * 64
    pixel = SCHEMAS["black-forest-labs/flux-schnell"]
    fake.add_model("someone/pixel-model", pixel, "image", version=version, community=True)
    table = ModelTable()
    pixel_price = ModelPrice(
        "someone/pixel-model", StepKind.IMAGE, PriceUnit.OUTPUT, 0.01, requestable=True
    )
    service = build(
        planner=OfflinePlanner(),
        models=replace(table, prices={**table.prices, pixel_price.model: pixel_price}),
    )
    official = await service.run(
        parse_request("cats products:2 seed:4 image_model:black-forest-labs/flux-dev")
    )
    pinned = await service.run(
        parse_request(f"dogs products:1 seed:4 image_model:someone/pixel-model:{version}")
    )
    assert official.status is pinned.status is CampaignStatus.SUCCEEDED
    made = [(p["model"], p["version"]) for p in fake.created()]
    assert made == [("black-forest-labs/flux-dev", "hidden")] * 2 + [
        ("someone/pixel-model", version)
    ]
    creates = [path for method, path, _ in fake.requests if method == "POST"]
    assert creates == ["/v1/models/black-forest-labs/flux-dev/predictions"] * 2 + [
        "/v1/predictions"  # the version endpoint
    ]
    assert {s.model for s in official.steps()} == {"black-forest-labs/flux-dev"}
    assert official.cost_usd == pytest.approx(2 * 0.025)
    assert [s.model for s in pinned.steps()] == [f"someone/pixel-model:{version}"]


async def test_failed_prediction_fails_only_its_product(build: Build, fake: FakeReplicate) -> None:
    plans = plan_offline(REQUEST)
    fake.script[plans[1].name] = "fail:NSFW content detected. Try a different prompt."
    campaign = await build(planner=OfflinePlanner()).run(REQUEST)
    assert campaign.status is CampaignStatus.PARTIAL
    failed = _step(campaign, 1, StepName.IMAGE)
    assert failed.status is StepStatus.FAILED
    assert failed.error == "the model failed: NSFW content detected. Try a different prompt."
    assert _step(campaign, 1, StepName.VIDEO).status is StepStatus.SKIPPED
    assert failed.attempts == 1  # permanent: not retried
    others = [p for p in campaign.products if p.plan.index != 1]
    assert all(p.status is StepStatus.SUCCEEDED for p in others)


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [("aborted", "aborted"), ("empty", "no output")],
)
async def test_aborted_and_empty_outputs(
    build: Build, fake: FakeReplicate, behaviour: str, message: str
) -> None:
    request = CampaignRequest(theme="dogs", products=1, seed=3)
    fake.script["dogs"] = behaviour
    campaign = await build(planner=OfflinePlanner()).run(request)
    step = _step(campaign, 0, StepName.IMAGE)
    assert step.status is StepStatus.FAILED and message in (step.error or "")


async def test_deadline_sends_the_cancel_call(build: Build, fake: FakeReplicate) -> None:
    request = CampaignRequest(theme="slow dogs", products=2, seed=5)
    fake.script[plan_offline(request)[0].name] = "hang"
    campaign = await build(planner=OfflinePlanner(), deadline_image_s=0.5).run(request)
    step = _step(campaign, 0, StepName.IMAGE)
    assert step.status is StepStatus.FAILED
    assert step.error == "no result after 0.5 s; the prediction was canceled on Replicate"
    assert fake.cancels == [step.provider_id]
    assert fake.predictions[step.provider_id]["status"] == "canceled"
    assert _step(campaign, 1, StepName.IMAGE).status is StepStatus.SUCCEEDED


async def test_user_cancel_sends_the_cancel_calls(build: Build, fake: FakeReplicate) -> None:
    fake.script["retro cats"] = "hang"
    service = build(planner=OfflinePlanner())
    campaign = await service.submit(REQUEST)
    for _ in range(500):  # until every image prediction's id is stored
        stored = await service.get(campaign.id)
        if sum(1 for s in stored.steps() if s.provider_id) == 3:
            break
        await asyncio.sleep(0.01)
    campaign = await service.cancel(campaign.id)
    assert campaign.status is CampaignStatus.CANCELED
    assert sorted(fake.cancels) == sorted(p["id"] for p in fake.created())
    assert all(fake.predictions[i]["status"] == "canceled" for i in fake.cancels)
    stored = {s.provider_id for s in campaign.steps() if s.name is StepName.IMAGE}
    assert stored == set(fake.cancels)  # ids were stored before waiting


async def test_saved_image_is_uploaded_when_its_url_is_gone(
    build: Build, fake: FakeReplicate, tmp_path: Path
) -> None:
    generator = build(planner=OfflinePlanner(), inline_max_kb=0).generator
    image = tmp_path / "p01-image.png"
    Image.new("RGB", (8, 8)).save(image)
    plan = plan_offline(CampaignRequest(theme="cats", products=1))[0]
    job = StepJob("c1", StepName.VIDEO, plan, "photo", 2, str(tmp_path), input_path=str(image))
    ctx, _ = await _hooks()
    out = await generator.run(job, ctx)  # type: ignore[attr-defined]
    video = fake.created("bytedance/seedance-1-lite")[0]
    assert video["input"]["image"].startswith(fake.base_url + "/v1/files/")
    assert len(fake.uploads) == 1 and Path(out.path).exists()


async def test_planner_fences_garbage_and_fallback(build: Build, fake: FakeReplicate) -> None:
    answers = iter(["Sorry, I can't do JSON today.", "still not json"])
    fake.text_reply = lambda _prompt: next(answers)
    sink = Recorder()
    service = build()
    campaign = await service.wait((await service.submit(REQUEST, [sink])).id)
    assert campaign.status is CampaignStatus.SUCCEEDED
    assert [p.plan for p in campaign.products] == plan_offline(REQUEST)
    assert len(fake.created("meta/meta-llama-3-8b-instruct")) == 2  # asked once more
    notes = [e.message for e in sink.events if e.kind is EventKind.STEP_PROGRESS and e.step is None]
    assert notes == ["fell back to the offline planner: the model's plans were unusable "
                     "(no JSON list of products in the answer)"]  # fmt: skip


async def test_planner_retries_once_then_succeeds(build: Build, fake: FakeReplicate) -> None:
    answers = iter(['```json\n[{"name": 1}]\n```'])
    fake.text_reply = lambda prompt: next(answers, None) or _good(prompt)
    plans = await LlmPlanner(build().generator.runtime).plan(REQUEST)  # type: ignore[attr-defined]
    assert [p.name for p in plans] == [f"Retro Cats Item {i}" for i in (1, 2, 3)]
    prompts = [p["input"]["prompt"] for p in fake.created()]
    assert prompts[0].startswith("Name exactly 3") and "Output only the JSON" not in prompts[0]
    assert prompts[1].startswith("Name exactly 3") and "Output only the JSON" in prompts[1]
    assert len(prompts) == 2 + 3  # the outline asked twice, then each product's details


async def test_planner_model_failure_falls_back_at_once(build: Build, fake: FakeReplicate) -> None:
    fake.script["merchandise"] = "fail:CUDA out of memory"
    plans = await LlmPlanner(build().generator.runtime).plan(REQUEST)  # type: ignore[attr-defined]
    assert plans == plan_offline(REQUEST)
    assert "CUDA out of memory" in plans.note  # type: ignore[attr-defined]
    assert len(fake.created()) == 1


def _good(prompt: str) -> str:
    from tests.fakes.replicate import default_reply

    return default_reply(prompt)


async def _hooks() -> tuple[StepContext, list[str]]:
    remembered: list[str] = []

    async def report(_message: str) -> None:
        return None

    async def remember(provider_id: str) -> None:
        remembered.append(provider_id)

    async def no_cpu(*_args: object) -> None:
        raise AssertionError("the Replicate generator needs no CPU work")

    return StepContext(StepHooks(report, remember), no_cpu), remembered


async def test_resume_reuses_and_retry_replaces(fake: FakeReplicate, tmp_path: Path) -> None:
    generator = ReplicateGenerator(fast_settings(fake))
    ctx, remembered = await _hooks()
    plan = ProductPlan(0, "Mug", "mug", "t", "a mug", "orbit")
    job = StepJob("c1", StepName.IMAGE, plan, "photo", 1, str(tmp_path))
    try:
        first = await generator.run(job, ctx)
        resumed = await generator.run(
            StepJob(
                "c1", StepName.IMAGE, plan, "photo", 1, str(tmp_path), provider_id=first.provider_id
            ),
            ctx,
        )
        assert resumed.provider_id == first.provider_id and len(fake.created()) == 1
        fake.predictions[str(first.provider_id)]["status"] = "failed"  # a failed step's retry
        retried = await generator.run(
            StepJob(
                "c1", StepName.IMAGE, plan, "photo", 1, str(tmp_path), provider_id=first.provider_id
            ),
            ctx,
        )
    finally:
        await generator.aclose()
    assert retried.provider_id != first.provider_id and len(fake.created()) == 2
    assert remembered == [first.provider_id, retried.provider_id]


async def test_generator_pickles_as_configuration(fake: FakeReplicate, tmp_path: Path) -> None:
    job = StepJob(
        "c1",
        StepName.IMAGE,
        ProductPlan(0, "M", "mug", "t", "a mug", "o"),
        "photo",
        1,
        str(tmp_path),
    )

    async def use(gen: ReplicateGenerator) -> str:
        ctx, _ = await _hooks()
        try:
            return (await gen.run(job, ctx)).path
        finally:
            await gen.aclose()

    generator = ReplicateGenerator(fast_settings(fake))
    await use(generator)  # made clients on this loop; they must not travel
    clone: ReplicateGenerator = pickle.loads(pickle.dumps(generator))
    assert clone.settings == generator.settings
    assert TOKEN not in repr(clone.settings)
    path = await asyncio.to_thread(asyncio.run, use(clone))  # another loop, as a Ray actor has
    assert Path(path).exists() and len(fake.created()) == 2


async def test_token_never_reaches_messages_logs_or_database(
    build: Build, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "r8_wrong-but-secret-0000"
    campaign = await build(api_token=secret).run(REQUEST)
    assert campaign.status is CampaignStatus.FAILED
    errors = {s.error for s in campaign.steps()}
    refused = "Replicate refused it: Invalid API token (HTTP 401)"
    schema = f"could not read the input schema of black-forest-labs/flux-schnell: {refused}"
    assert errors == {schema, "no image to animate"}
    assert secret not in caplog.text
    database = tmp_path / "campaigns.db"  # the conftest store's file
    assert database.exists()
    assert all(secret.encode() not in p.read_bytes() for p in tmp_path.glob("campaigns.db*"))
