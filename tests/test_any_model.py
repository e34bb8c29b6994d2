"""Any Replicate model as Replicate serves it: the fake validates every create against the
model's published schema, so a wrong input name or value is a 422 here as it is there."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from adapters.replicate_api.catalog import SCHEMA_TTL_S, ModelCatalog
from adapters.replicate_api.http import ReplicateHttp
from adapters.replicate_api.models import ModelTable
from core.errors import InvalidRequest
from core.model import CampaignStatus, StepKind, StepName
from core.planner import OfflinePlanner
from core.request import CampaignRequest, ModelOverrides
from core.scheduler import Limits
from core.service import CampaignService
from storage.sqlite_store import SqliteStore
from tests.conftest import ReplicateFactory
from tests.fakes import FakeClock
from tests.fakes.model_schemas import SCHEMAS
from tests.fakes.replicate import (
    FakeReplicate,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
    fast_settings,
)

LIMITS = Limits(text=2, image=4, video=4, cpu=2)
REQUEST = CampaignRequest(theme="retro cats", products=2, videos=True, seed=5)
VIDEO_MODELS = {  # model -> (its start-image input, the models file's entry)
    "kwaivgi/kling-v2.1": (
        "start_image",
        'unit = "output_second"\nprice = 0.05\nimage_input = "start_image"',
    ),
    "minimax/hailuo-02": (
        "first_frame_image",
        'unit = "output_second"\nprice = 0.08\nprices_by_resolution = { "768p" = 0.045 }',
    ),
    "google/veo-3.1-fast": ("image", 'unit = "output_second"\nprice = 0.15'),
    "kwaivgi/kling-v2.1-master": ("start_image", 'unit = "output_second"\nprice = 0.28'),
    "wan-video/wan-2.2-i2v-fast": (
        "image",
        'unit = "output"\nprice = 0.11\nprices_by_resolution = { "480p" = 0.05, "720p" = 0.11 }',
    ),
}
Build = Callable[..., CampaignService]


def models_file(tmp_path: Path, entries: dict[str, str]) -> Path:
    path = tmp_path / "models.toml"
    text = "".join(f'[models."{m}"]\nkind = "video"\n{body}\n\n' for m, body in entries.items())
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def build(replicate_service: ReplicateFactory, fake: FakeReplicate) -> Build:
    def factory(table: ModelTable, *, llm: bool = False, **changes: Any) -> CampaignService:
        planner = None if llm else OfflinePlanner()
        return replicate_service(fake, models=table, planner=planner, limits=LIMITS, **changes)[0]

    return factory


@pytest.mark.parametrize("model", sorted(VIDEO_MODELS))
async def test_each_video_model_gets_the_image_in_its_own_input(
    build: Build, fake: FakeReplicate, tmp_path: Path, model: str
) -> None:
    image_input, entry = VIDEO_MODELS[model]
    table = ModelTable(video=model, video_resolution="720p").with_file(
        models_file(tmp_path, {model: entry})
    )
    service = build(table, llm=True)
    estimate = await service.check(REQUEST)
    campaign = await service.run(REQUEST)
    assert campaign.status is CampaignStatus.SUCCEEDED, [s.error for s in campaign.steps()]
    images = {p["output"][0] for p in fake.created("black-forest-labs/flux-schnell")}
    videos = fake.created(model)
    assert len(videos) == 2 and {v["input"][image_input] for v in videos} == images
    assert fake.ignored_inputs == []  # no model received an input it does not declare
    assert fake.posts(f"/v1/models/{model}/predictions") == 2  # no create was refused (422)
    video_cost = sum(s.cost_usd for s in campaign.steps() if s.name is StepName.VIDEO)
    priced = table.price(StepKind.VIDEO, model)
    sent = [priced.estimate_usd(seconds=_seconds(v), resolution=_res(model, v)) for v in videos]
    assert video_cost == pytest.approx(sum(sent)) and video_cost > 0
    assert estimate.cost_usd == pytest.approx(campaign.cost_usd)  # the estimate is the bill


def _seconds(video: dict[str, Any]) -> float | None:
    schema = SCHEMAS[str(video["model"])]["Input"]["properties"]
    if "duration" not in schema:
        return None
    return float(video["input"].get("duration", schema["duration"].get("default", 0)))


def _res(model: str, video: dict[str, Any]) -> object:
    if "resolution" not in SCHEMAS[model]["Input"]["properties"]:
        return None
    return video["input"].get("resolution")


async def test_the_planner_instruction_reaches_llama_through_its_template(
    build: Build, fake: FakeReplicate
) -> None:
    campaign = await build(ModelTable(), llm=True).run(CampaignRequest(theme="cats", products=2))
    assert campaign.status is CampaignStatus.SUCCEEDED
    plans = fake.created("meta/meta-llama-3-8b-instruct")
    assert len(plans) == 3  # the outline, then each product's details
    assert all("Answer with JSON only" in p["input"]["prompt_template"] for p in plans)
    assert all(p["input"]["presence_penalty"] == 0.0 for p in plans)
    assert fake.ignored_inputs == []  # no system_prompt: Llama 3 does not declare one


async def test_a_video_model_that_cannot_animate_is_refused_before_anything_is_stored(
    build: Build, fake: FakeReplicate, tmp_path: Path
) -> None:
    text_only = {"Input": {"type": "object", "required": ["prompt"], "properties": {
        "prompt": {"type": "string"}, "duration": {"type": "integer", "default": 5}}}}  # fmt: skip
    fake.add_model("someone/text-to-video", text_only, "video")
    entry = 'unit = "output"\nprice = 0.5\nrequestable = true'
    table = ModelTable().with_file(models_file(tmp_path, {"someone/text-to-video": entry}))
    service = build(table)
    request = CampaignRequest(
        theme="cats", videos=True, models=ModelOverrides(video="someone/text-to-video")
    )
    with pytest.raises(InvalidRequest, match="someone/text-to-video cannot make videos") as no:
        await service.submit(request)
    assert "start-image input" in str(no.value) and no.value.field == "video_model"
    assert await service.history(10) == [] and fake.created() == []


async def test_a_model_that_does_not_exist_is_refused_clearly(
    build: Build, fake: FakeReplicate, tmp_path: Path
) -> None:
    entry = 'unit = "output"\nprice = 0.5\nrequestable = true'
    table = ModelTable().with_file(models_file(tmp_path, {"someone/gone": entry}))
    request = CampaignRequest(
        theme="cats", videos=True, models=ModelOverrides(video="someone/gone")
    )
    with pytest.raises(InvalidRequest, match="someone/gone does not exist on Replicate"):
        await build(table).submit(request)
    assert fake.created() == []


async def test_a_community_model_runs_by_its_latest_version(
    build: Build, fake: FakeReplicate, tmp_path: Path
) -> None:
    model = "someone-community/pixel-video"
    table = ModelTable(video=model, video_seconds=3).with_file(
        models_file(tmp_path, {model: 'unit = "output"\nprice = 0.02'})
    )
    campaign = await build(table).run(REQUEST)
    assert campaign.status is CampaignStatus.SUCCEEDED, [s.error for s in campaign.steps()]
    videos = fake.created(model)
    assert len(videos) == 2 and all(v["version"] == fake.latest[model] for v in videos)
    assert all(v["input"]["seconds"] == 3 and v["input"]["input_image"] for v in videos)
    # a 404 from the official endpoint (nothing made, nothing paid) taught the catalog: at
    # most one per video already on its way, and every prediction went by version
    official = [p for m, p, _ in fake.requests if m == "POST" and model in p]
    assert 1 <= len(official) <= len(videos)


async def test_a_changed_schema_is_read_again_after_a_422(
    build: Build, fake: FakeReplicate, tmp_path: Path
) -> None:
    model = "bytedance/seedance-1-lite"
    service = build(ModelTable())
    await service.check(REQUEST)  # reads and stores today's schema
    changed = json.loads(json.dumps(SCHEMAS[model]))
    props = changed["Input"]["properties"]
    props["start_image"] = props.pop("image")
    changed["Input"]["required"] = ["prompt", "start_image"]
    fake.new_version(model, changed)  # within the hour: the catalog does not know yet
    campaign = await service.run(REQUEST)
    assert campaign.status is CampaignStatus.SUCCEEDED, [s.error for s in campaign.steps()]
    assert all("start_image" in v["input"] for v in fake.created(model))
    # once at first, then once after a 422 (once per video already sent with the old input)
    assert 2 <= fake.schema_fetches[model] <= 1 + REQUEST.products


async def test_schemas_are_cached_in_the_store_and_checked_hourly(
    fake: FakeReplicate, store: SqliteStore
) -> None:
    model = "google/veo-3.1-fast"
    clock = FakeClock(1_000_000.0)
    table = ModelTable(video=model)
    http = ReplicateHttp(fast_settings(fake))
    try:
        first = ModelCatalog(table, cache=store, clock=clock)
        assert (await first.bind(http, StepKind.VIDEO)).schema is not None
        again = ModelCatalog(table, cache=store, clock=clock)  # a restart: from the store
        assert (await again.bind(http, StepKind.VIDEO)).image_input == "image"
        assert fake.schema_fetches[model] == 1
        clock.now += SCHEMA_TTL_S + 1
        await again.bind(http, StepKind.VIDEO)
        assert fake.schema_fetches[model] == 2  # compared with Replicate after an hour
    finally:
        await http.aclose()
    away = ReplicateHttp(fast_settings(fake, base_url="http://127.0.0.1:9"))  # nothing listens
    try:
        clock.now += SCHEMA_TTL_S + 1
        offline = ModelCatalog(table, cache=store, clock=clock)
        binding = await offline.bind(away, StepKind.VIDEO)  # Replicate is away: the stored one
    finally:
        await away.aclose()
    assert binding.schema is not None and binding.problems() == []
    stored = await store.cached(model)
    assert stored is not None and stored.version == fake.latest[model]


async def test_a_data_output_is_handed_on_inline_without_a_second_upload(
    build: Build, fake: FakeReplicate
) -> None:
    fake.data_outputs = True  # with `Prefer: wait`, Replicate may answer files as data: URLs
    fake._png = noise_png(160)  # ~75 kB: over this test's inline limit, under Replicate's 1 MB
    campaign = await build(ModelTable(), inline_max_kb=1).run(REQUEST)
    assert campaign.status is CampaignStatus.SUCCEEDED, [s.error for s in campaign.steps()]
    images = fake.created("black-forest-labs/flux-schnell")
    assert all(str(p["output"][0]).startswith("data:image/png") for p in images)
    videos = fake.created("bytedance/seedance-1-lite")
    assert {v["input"]["image"] for v in videos} == {p["output"][0] for p in images}
    assert not fake.uploads  # the image went back as it came, not uploaded again


def noise_png(side: int) -> bytes:
    """A PNG that does not compress (random pixels)."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(1).randbytes(side * side * 3)).save(
        out, "PNG"
    )
    return out.getvalue()


async def test_the_planner_too_runs_a_community_model_by_its_latest_version(
    build: Build, fake: FakeReplicate, tmp_path: Path
) -> None:
    model = "someone-community/tiny-llm"
    fake.add_model(model, SCHEMAS["meta/meta-llama-3-8b-instruct"], "text", community=True)
    path = tmp_path / "models.toml"
    path.write_text(f'[models."{model}"]\nkind = "text"\nunit = "mtoken"\nprice = 0.1\n')
    campaign = await build(ModelTable(text=model).with_file(path), llm=True).run(
        CampaignRequest(theme="cats", products=2)
    )
    assert campaign.status is CampaignStatus.SUCCEEDED
    plans = fake.created(model)
    assert len(plans) == 3  # the outline, then each product's details
    assert all(p["version"] == fake.latest[model] for p in plans)  # after a 404 on the official
    assert [p.plan.name for p in campaign.products] == ["Cats Item 1", "Cats Item 2"]  # its plans
