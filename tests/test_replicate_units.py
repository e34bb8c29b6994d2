"""Replicate adapters without a server: model table, settings, token bucket, plan parser."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import pytest

from adapters.replicate_api.models import BUILT_IN, ModelTable, PriceUnit, parse_ref
from adapters.replicate_api.rate import TokenBucket
from adapters.replicate_api.settings import ReplicateSettings
from adapters.replicate_api.wire import Metrics
from bot.settings import AppSettings
from core.errors import ConfigError
from core.model import StepKind
from core.plan_json import PlanFormatError, parse_plans, plan_prompt
from core.request import CampaignRequest, Style
from tests.fakes import FakeClock

VERSION = "a" * 64


@pytest.mark.parametrize("bad", ["flux", "a/b:short", "Owner/Name", "a/b/c", ""])
def test_parse_ref_rejects_bad_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        parse_ref(bad)


def test_costs_per_unit() -> None:
    image = BUILT_IN["black-forest-labs/flux-schnell"]
    assert image.cost_usd(Metrics(predict_time=9.0)) == 0.003
    text = BUILT_IN["meta/meta-llama-3-8b-instruct"]
    assert text.unit is PriceUnit.MTOKEN
    assert text.cost_usd(Metrics(input_token_count=600_000, output_token_count=400_000)) == 0.25
    per_second = replace(image, unit=PriceUnit.RUN_SECOND)
    assert per_second.cost_usd(Metrics(predict_time=2.0)) == 0.006
    assert per_second.cost_usd(None) == 0.0


def test_settings_defaults_and_overrides() -> None:
    s = AppSettings.from_mapping({}).replicate
    assert (s.deadline(StepKind.TEXT), s.deadline(StepKind.IMAGE)) == (120.0, 300.0)
    assert (s.deadline(StepKind.VIDEO), s.create_per_min) == (1800.0, 600.0)
    s = AppSettings.from_mapping(
        {
            "REPLICATE_API_TOKEN": "r8_secret",
            "REPLICATE_BASE_URL": "http://127.0.0.1:9",
            "REPLICATE_ALLOW_HTTP": "yes",
            "REPLICATE_CREATE_RATE": "6000",
            "REPLICATE_DEADLINE_VIDEO": "60",
            "REPLICATE_CREATE_ATTEMPTS": "3",
            "REPLICATE_IMAGE_MODEL": "black-forest-labs/flux-dev",
        }
    ).replicate
    assert (s.create_per_min, s.deadline(StepKind.VIDEO), s.create_attempts) == (6000, 60, 3)
    assert s.models.image == "black-forest-labs/flux-dev"
    assert "r8_secret" not in repr(s)
    assert pickle.loads(pickle.dumps(s)) == s


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"REPLICATE_BASE_URL": "http://127.0.0.1:9"}, "REPLICATE_ALLOW_HTTP"),
        ({"REPLICATE_BASE_URL": "ftp://x"}, "must be https"),
        ({"REPLICATE_CREATE_RATE": "0"}, "REPLICATE_CREATE_RATE"),
        ({"REPLICATE_ALLOW_HTTP": "maybe"}, "REPLICATE_ALLOW_HTTP"),
        ({"REPLICATE_VIDEO_MODEL": "not a model"}, "REPLICATE_VIDEO_MODEL"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        AppSettings.from_mapping(env)


def test_cli_model_overrides_are_checked() -> None:
    s = ReplicateSettings().with_models({"video": "google/veo-3.1-fast", "image": None})
    assert (s.models.video, s.models.image) == ("google/veo-3.1-fast", ModelTable().image)
    with pytest.raises(ConfigError, match="x/y has no video price"):
        ReplicateSettings().with_models({"video": "x/y"})
    with pytest.raises(ConfigError, match="--text-model"):
        ReplicateSettings().with_models({"text": "nope"})


async def test_token_bucket_paces_after_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(600, burst=2, clock=clock, sleep=clock.sleep)  # 10 per second
    for _ in range(5):
        await bucket.take()
    assert bucket.taken == 5
    assert clock.now == pytest.approx(100.3)  # 2 free, then 3 x 0.1 s
    bucket.pause(5.0)  # a 429 said: wait
    await bucket.take()
    assert clock.now == pytest.approx(105.4)  # no tokens accrued during the pause


def test_prompt_names_count_theme_and_style() -> None:
    request = CampaignRequest(theme="retro cats", products=4, style=Style.NEON, audience="kids")
    prompt = plan_prompt(request)
    assert "exactly 4" in prompt and '"retro cats"' in prompt and "kids" in prompt
    assert "neon" in prompt
    assert "Output only the JSON" in plan_prompt(request, strict=True)


def _plans(n: int) -> list[dict[str, str]]:
    return [
        {
            "name": f"Thing {i}",
            "product_type": "mug",
            "tagline": "  so   good ",
            "image_prompt": "photo",
            "video_prompt": "orbit",
        }
        for i in range(n)
    ]


def test_parse_plans_with_prose_and_fences() -> None:
    text = "Sure! [not json] here:\n```json\n" + json.dumps(_plans(3)) + "\n```\nHope it helps {"
    plans = parse_plans(text, 2)
    assert [p.index for p in plans] == [0, 1]
    assert plans[1].name == "Thing 1"
    assert plans[0].tagline == "so good"
    assert parse_plans(json.dumps({"products": _plans(1)}), 1)[0].name == "Thing 0"
    assert len(parse_plans("prefix " + json.dumps(_plans(2)) + " suffix", 2)) == 2


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("I cannot help with that.", "no JSON list"),
        ("```\n[1, 2, 3]\n```", "no JSON list"),
        (json.dumps(_plans(1)), "1 plans instead of 2"),
        (json.dumps([{**_plans(1)[0], "name": ""}, *_plans(1)]), "name is missing"),
        (json.dumps([{**_plans(1)[0], "tagline": 5}, *_plans(2)[1:]]), "tagline"),
        (json.dumps([{**_plans(1)[0], "name": "x" * 81}, *_plans(2)[1:]]), "longer than 80"),
        (json.dumps(_plans(1) * 2), "same name"),
    ],
)
def test_parse_plans_rejects_garbage(text: str, needle: str) -> None:
    with pytest.raises(PlanFormatError, match=needle):
        parse_plans(text, 2)
