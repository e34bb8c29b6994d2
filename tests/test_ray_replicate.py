"""The Replicate generator on a real local Ray: a model read from its schema on the actors,
and the input each create sends stored with its intent through the driver."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import ModuleType

import pytest

from adapters.replicate_api.generator import ReplicateGenerator
from adapters.replicate_api.models import ModelTable
from core.model import CampaignStatus, StepName
from core.request import CampaignRequest
from core.scheduler import Limits
from storage.sqlite_store import SqliteStore
from tests.fakes.replicate import (
    FakeReplicate,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
    fast_settings,
)
from tests.ray_fixtures import replicate_on_ray

LIMITS = Limits(text=1, image=2, video=2, cpu=2)
KLING = "kwaivgi/kling-v2.1"
pytestmark = pytest.mark.usefixtures("ray_local")


async def test_a_schema_mapped_model_runs_on_ray_actors_with_its_intents_stored(
    fake: FakeReplicate, store: SqliteStore, tmp_path: Path, bot_main: ModuleType
) -> None:
    generator = ReplicateGenerator(fast_settings(fake, models=ModelTable(video=KLING)))
    generator.runtime.catalog.cache = store
    service, executor = replicate_on_ray(bot_main, tmp_path, store, generator, LIMITS)
    try:
        async with asyncio.timeout(90):
            campaign = await service.run(CampaignRequest(theme="cats", products=2, videos=True))
    finally:
        await service.aclose()
        await executor.aclose()
        await generator.aclose()
    assert campaign.status is CampaignStatus.SUCCEEDED, [s.error for s in campaign.steps()]
    videos = fake.created(KLING)
    images = {p["output"][0] for p in fake.created("black-forest-labs/flux-schnell")}
    assert len(videos) == 2 and {v["input"]["start_image"] for v in videos} == images
    assert fake.ignored_inputs == []
    for step in campaign.steps():  # each intent kept the input its create sent
        assert step.sent_input is not None and step.worker != "local"
        sent = json.loads(step.sent_input)
        made = fake.predictions[str(step.provider_id)]["input"]
        assert set(sent) == set(made) and sent["prompt"] == made["prompt"]
        if step.name is StepName.VIDEO:
            assert "start_image" in sent and "image" not in sent
