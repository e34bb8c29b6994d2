"""Inputs built from the models' published schemas, and prices of what is sent (no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.replicate_api.catalog import RETRY_READ_S, Binding, ModelCatalog
from adapters.replicate_api.http import Retry
from adapters.replicate_api.models import (
    BUILT_IN,
    ModelTable,
    PriceUnit,
    load_models_file,
)
from adapters.replicate_api.schema import InputSchema
from adapters.replicate_api.wire import Metrics
from bot.settings import AppSettings
from core.errors import ConfigError
from core.model import StepKind
from tests.fakes.model_schemas import SCHEMAS

VIDEO_MODELS = {  # model -> the input its schema takes the start image in
    "bytedance/seedance-1-lite": "image",
    "kwaivgi/kling-v2.1": "start_image",
    "kwaivgi/kling-v2.1-master": "start_image",
    "minimax/hailuo-02": "first_frame_image",
    "google/veo-3.1-fast": "image",
    "wan-video/wan-2.2-i2v-fast": "image",
}


def bind(
    model: str,
    kind: StepKind = StepKind.VIDEO,
    *,
    seconds: float | None = None,
    resolution: str | None = None,
    table: ModelTable | None = None,
) -> Binding:
    table = table or ModelTable()
    return Binding(
        ref=model,
        kind=kind,
        price=table.price(kind, model),
        schema=InputSchema.from_components(SCHEMAS[model]),
        video_seconds=seconds,
        video_resolution=resolution,
    )


@pytest.mark.parametrize(("model", "image_input"), sorted(VIDEO_MODELS.items()))
def test_a_video_gets_the_image_in_the_models_own_input(model: str, image_input: str) -> None:
    binding = bind(model, seconds=5, resolution="720p")
    inputs = binding.inputs("slow orbit", seed=7, image="https://example.com/p01.png")
    assert inputs[image_input] == "https://example.com/p01.png"
    assert binding.problems() == []
    assert binding.schema is not None and binding.schema.problems(inputs) == []
    assert set(inputs) <= set(binding.schema.fields)  # nothing the model does not declare


@pytest.mark.parametrize(
    ("model", "seconds", "resolution", "sent"),
    [
        ("kwaivgi/kling-v2.1", 8, None, {"duration": 10}),  # nearest of 5, 10
        ("kwaivgi/kling-v2.1", 7.5, None, {"duration": 5}),  # a tie goes to the shorter
        ("google/veo-3.1-fast", 5, "720p", {"duration": 4, "resolution": "720p"}),
        ("minimax/hailuo-02", 5, "720p", {"duration": 6, "resolution": "768p"}),
        ("bytedance/seedance-1-lite", 30, "2160p", {"duration": 12, "resolution": "1080p"}),
        ("wan-video/wan-2.2-i2v-fast", 5, "1080p", {"resolution": "720p"}),  # no duration input
    ],
)
def test_wanted_clip_is_snapped_to_what_the_schema_allows(
    model: str, seconds: float, resolution: str | None, sent: dict[str, Any]
) -> None:
    inputs = bind(model, seconds=seconds, resolution=resolution).inputs("x", image="https://i")
    assert {k: inputs[k] for k in sent} == sent


def test_unset_clip_settings_leave_the_models_defaults() -> None:
    inputs = bind("google/veo-3.1-fast").inputs("x", image="https://i")
    assert "duration" not in inputs and "resolution" not in inputs
    assert bind("google/veo-3.1-fast").sent(inputs) == (8.0, "1080p")  # the schema's defaults


@pytest.mark.parametrize(
    ("model", "seconds", "resolution", "usd"),
    [
        ("google/veo-3.1-fast", None, None, 1.2),  # 8 s by default, $0.15/s
        ("kwaivgi/kling-v2.1-master", None, None, 1.4),  # 5 s at $0.28/s
        ("bytedance/seedance-1-lite", 5, "720p", 0.18),
        ("bytedance/seedance-1-lite", 10, "1080p", 0.72),
        ("minimax/hailuo-02", 6, "512p", 0.102),
        ("wan-video/wan-2.2-i2v-fast", None, None, 0.05),  # per clip, 480p by default
    ],
)
def test_estimate_and_cost_price_what_is_sent(
    model: str, seconds: float | None, resolution: str | None, usd: float
) -> None:
    binding = bind(model, seconds=seconds, resolution=resolution)
    inputs = binding.inputs("x", image="https://i")
    assert binding.estimate_usd() == pytest.approx(usd)
    assert binding.cost_usd(inputs, Metrics(predict_time=99.0)) == pytest.approx(usd)


def test_the_estimate_never_undercounts_a_clip_sent_at_another_length() -> None:
    table = ModelTable()
    for model in VIDEO_MODELS:
        for seconds in (None, 2, 5, 8, 10, 12):
            binding = bind(model, seconds=seconds, table=table)
            inputs = binding.inputs("x", image="https://i")
            assert binding.estimate_usd() >= binding.cost_usd(inputs, Metrics()) - 1e-9


def test_images_ask_for_one_png_square_where_the_schema_allows() -> None:
    binding = bind("black-forest-labs/flux-schnell", StepKind.IMAGE)
    inputs = binding.inputs("a mug", seed=7)
    assert inputs == {
        "prompt": "a mug",
        "seed": 7,
        "aspect_ratio": "1:1",
        "num_outputs": 1,
        "output_format": "png",
    }


def test_llama_gets_the_instruction_through_its_template_and_json_friendly_sampling() -> None:
    binding = bind("meta/meta-llama-3-8b-instruct", StepKind.TEXT)
    inputs = binding.text_inputs("plan 3 mugs", "Answer with JSON only. {keep braces}")
    assert "system_prompt" not in inputs and "seed" not in inputs
    assert inputs["prompt"] == "plan 3 mugs"
    template = inputs["prompt_template"]
    assert "Answer with JSON only. {{keep braces}}" in template and "{prompt}" in template
    assert template.format(prompt="P").count("{keep braces}") == 1
    assert inputs["presence_penalty"] == 0.0 and inputs["frequency_penalty"] == 0.0
    assert binding.schema is not None and binding.schema.problems(inputs) == []


def test_a_model_without_a_template_gets_the_instruction_in_its_prompt() -> None:
    schema = InputSchema.from_components(
        {"Input": {"properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}}
    )
    price = ModelTable().price(StepKind.TEXT, "meta/meta-llama-3-8b-instruct")
    binding = Binding("meta/meta-llama-3-8b-instruct", StepKind.TEXT, price, schema)
    assert binding.text_inputs("plan", "Be brief.") == {"prompt": "Be brief.\n\nplan"}


def test_a_video_model_without_an_image_input_cannot_animate() -> None:
    schema = InputSchema.from_components(
        {"Input": {"properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}}
    )
    price = BUILT_IN["google/veo-3.1-fast"]
    problems = Binding("google/veo-3.1-fast", StepKind.VIDEO, price, schema).problems()
    assert problems == ["a start-image input (image, start_image, first_frame_image, input_image,"
                        " init_image)"]  # fmt: skip


def test_enum_references_are_resolved() -> None:
    schema = InputSchema.from_components(SCHEMAS["minimax/hailuo-02"])
    assert schema.fields["resolution"].enum == ("512p", "768p", "1080p")
    assert schema.problems({"prompt": "x", "resolution": "720p"}) == [
        "resolution must be one of 512p, 768p, 1080p"
    ]


# --- the price book --------------------------------------------------------------------


def test_models_file_adds_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        """
[models."kwaivgi/kling-v2.1"]
kind = "video"
unit = "output_second"
price = 0.05
prices_by_resolution = { "720p" = 0.05, "1080p" = 0.09 }
image_input = "start_image"
requestable = true

[models."black-forest-labs/flux-schnell"]
kind = "image"
unit = "output"
price = 0.004
""",
        encoding="utf-8",
    )
    table = ModelTable(video="kwaivgi/kling-v2.1").with_file(path)
    kling = table.price(StepKind.VIDEO, "kwaivgi/kling-v2.1")
    assert (kling.unit, kling.source, kling.requestable) == (
        PriceUnit.OUTPUT_SECOND,
        str(path),
        True,
    )
    assert kling.unit_price("1080p") == 0.09
    assert table.price(StepKind.IMAGE, "black-forest-labs/flux-schnell").price == 0.004
    assert "kwaivgi/kling-v2.1" in table.requestable()["video"]
    table.check()


def test_the_example_models_file_loads() -> None:
    example = Path(__file__).parents[1] / "docs" / "models.example.toml"
    prices = load_models_file(example)
    assert set(prices) == {"kwaivgi/kling-v2.1", "someone/pixel-video"}
    assert prices["someone/pixel-video"].estimate_usd() == pytest.approx(0.042)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ('[models."a/b"]\nkind = "video"\nunit = "per_frame"\nprice = 1', "unit must be one of"),
        ('[models."a/b"]\nkind = "audio"\nunit = "output"\nprice = 1', "kind must be"),
        ('[models."a/b"]\nkind = "video"\nunit = "output"', "price must be a number"),
        ('[models."a/b"]\nkind = "video"\nunit = "output"\nprice = 1\ncolour = 2', "unknown"),
        ('[models."Not A Model"]\nkind = "video"\nunit = "output"\nprice = 1', "not a model"),
        ("[models", "not valid TOML"),
    ],
)
def test_a_bad_models_file_is_refused_naming_the_file(
    tmp_path: Path, text: str, phrase: str
) -> None:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=phrase) as refused:
        load_models_file(path)
    assert str(path) in str(refused.value)


def test_a_default_without_a_price_is_a_start_up_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"someone/new-video has no video price.*CAMPAIGN_MODELS"):
        AppSettings.from_mapping({"REPLICATE_VIDEO_MODEL": "someone/new-video"})
    path = tmp_path / "m.toml"
    path.write_text("[models]\n", encoding="utf-8")
    env = {"REPLICATE_VIDEO_MODEL": "someone/new-video", "CAMPAIGN_MODELS_FILE": str(path)}
    with pytest.raises(ConfigError, match=f"add it to {path}"):
        AppSettings.from_mapping(env)


def test_only_defaults_and_requestable_models_may_be_requested() -> None:
    offered = ModelTable(video="google/veo-3.1-fast").requestable()
    assert offered["video"] == {"bytedance/seedance-1-lite", "google/veo-3.1-fast"}
    assert "kwaivgi/kling-v2.1-master" not in offered["video"]
    assert offered["image"] == {"black-forest-labs/flux-schnell", "black-forest-labs/flux-dev"}


def test_clip_settings_come_from_the_environment() -> None:
    env = {"REPLICATE_VIDEO_SECONDS": "8", "REPLICATE_VIDEO_RESOLUTION": "1080p"}
    models = AppSettings.from_mapping(env).replicate.models
    assert (models.video_seconds, models.video_resolution) == (8.0, "1080p")


def test_the_catalog_pickles_with_its_schemas_but_not_its_store() -> None:
    import pickle

    catalog = ModelCatalog(ModelTable(), cache=object())  # type: ignore[arg-type]
    copy = pickle.loads(pickle.dumps(catalog))
    assert copy.cache is None and copy.table == catalog.table


class AwayHttp:
    """An HTTP layer whose every call fails as when Replicate cannot be reached; counts them."""

    def __init__(self) -> None:
        self.calls = 0

    async def call(self, *_args: object, **_kwargs: object) -> dict[str, object]:
        self.calls += 1
        raise Retry("ClientConnectorError")


async def test_a_stored_schema_serves_while_replicate_is_away_and_is_asked_again_later(
    tmp_path: Path,
) -> None:
    from core.provider_docs import CachedDoc
    from storage.sqlite_store import SqliteStore
    from tests.fakes import FakeClock
    from tests.fakes.replicate_parts import model_json, version_json

    model = "google/veo-3.1-fast"
    store = await SqliteStore.open(tmp_path / "c.db")
    try:
        body = model_json(model, "veo", 1, version_json("v1", SCHEMAS[model], "2025-11-01"))
        await store.cache(CachedDoc(model, "v1", json.dumps(body), 0.0))  # long since checked
        clock, http = FakeClock(10_000.0), AwayHttp()
        catalog = ModelCatalog(ModelTable(video=model), cache=store, clock=clock)
        for _ in range(3):  # three steps in a row while Replicate is away
            binding = await catalog.bind(http, StepKind.VIDEO)  # type: ignore[arg-type]
            assert binding.image_input == "image"
        assert http.calls == 1  # not once per step
        clock.now += RETRY_READ_S + 1
        await catalog.bind(http, StepKind.VIDEO)  # type: ignore[arg-type]
        assert http.calls == 2  # asked again a minute later
    finally:
        await store.close()
