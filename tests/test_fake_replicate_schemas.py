"""The fake Replicate API serves models' published schemas and checks creates like the real one."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.model_schemas import COMMUNITY, KIND, LATEST_VERSION, SCHEMAS
from tests.fakes.replicate import (
    TOKEN,
    FakeReplicate,
    default_reply,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
)

LLAMA = "meta/meta-llama-3-8b-instruct"
SCHNELL = "black-forest-labs/flux-schnell"
SEEDANCE = "bytedance/seedance-1-lite"
KLING = "kwaivgi/kling-v2.1"
HAILUO = "minimax/hailuo-02"
VEO = "google/veo-3.1-fast"
PIXEL = "someone-community/pixel-video"
WAIT = {"Prefer": "wait=5"}


@pytest.fixture
async def http(fake: FakeReplicate) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as client:
        yield client


async def _create(
    http: httpx.AsyncClient, model: str, inputs: dict[str, Any], **headers: str
) -> httpx.Response:
    return await http.post(
        f"/v1/models/{model}/predictions", json={"input": inputs}, headers=headers
    )


async def test_a_model_answers_with_its_published_schema(
    http: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    reply = await http.get(f"/v1/models/{HAILUO}")
    assert reply.status_code == 200
    model = reply.json()
    assert (model["owner"], model["name"], model["visibility"]) == (
        "minimax",
        "hailuo-02",
        "public",
    )
    assert {"url", "description", "run_count", "cover_image_url", "default_example"} <= set(model)
    latest = model["latest_version"]
    assert latest["id"] == LATEST_VERSION[HAILUO]
    assert latest["openapi_schema"]["components"]["schemas"] == SCHEMAS[HAILUO]
    resolution = latest["openapi_schema"]["components"]["schemas"]["Input"]["properties"]
    assert resolution["resolution"]["allOf"] == [{"$ref": "#/components/schemas/resolution"}]
    pinned = await http.get(f"/v1/models/{HAILUO}/versions/{LATEST_VERSION[HAILUO]}")
    assert pinned.json() == latest
    assert fake.schema_fetches[HAILUO] == 2


async def test_unknown_models_and_versions_are_not_found(
    http: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    assert (await http.get("/v1/models/nobody/nothing")).json()["detail"] == "Not found."
    other = LATEST_VERSION[SCHNELL]  # a real version, of another model
    assert (await http.get(f"/v1/models/{HAILUO}/versions/{other}")).status_code == 404
    official = await _create(http, "nobody/nothing", {"prompt": "x"})
    assert official.status_code == 404
    assert official.json()["detail"] == "The requested resource could not be found."
    by_version = await http.post("/v1/predictions", json={"version": "e" * 64, "input": {}})
    assert by_version.status_code == 422
    async with httpx.AsyncClient(base_url=fake.base_url) as anonymous:
        assert (await anonymous.get(f"/v1/models/{HAILUO}")).status_code == 401
    assert fake.created() == []


@pytest.mark.parametrize(
    ("model", "inputs", "kind", "field", "description"),
    [
        (KLING, {"prompt": "p"}, "required", "input", "start_image is required"),
        (
            KLING,
            {"prompt": "p", "start_image": "https://x/a.png", "duration": 6},
            "enum",
            "input.duration",
            "duration must be one of the following: 5, 10",
        ),
        (
            HAILUO,
            {"prompt": "p", "resolution": "720p"},
            "enum",
            "input.resolution",
            'resolution must be one of the following: "512p", "768p", "1080p"',
        ),
        (
            VEO,
            {"prompt": "p", "duration": 5},
            "enum",
            "input.duration",
            "duration must be one of the following: 4, 6, 8",
        ),
        (
            SEEDANCE,
            {"prompt": "p", "duration": 13},
            "number_lte",
            "input.duration",
            "Must be less than or equal to 12",
        ),
        (
            SEEDANCE,
            {"prompt": "p", "duration": 1},
            "number_gte",
            "input.duration",
            "Must be greater than or equal to 2",
        ),
        (
            SEEDANCE,
            {"prompt": "p", "duration": "5"},
            "invalid_type",
            "input.duration",
            "Invalid type. Expected: integer, given: string",
        ),
        (
            SCHNELL,
            {"prompt": "p", "num_outputs": True},
            "invalid_type",
            "input.num_outputs",
            "Invalid type. Expected: integer, given: boolean",
        ),
        (
            LLAMA,
            {"prompt": "p", "top_k": 2.5},
            "invalid_type",
            "input.top_k",
            "Invalid type. Expected: integer, given: number",
        ),
        (
            SEEDANCE,
            {"prompt": "p", "image": "/tmp/a.png"},
            "format",
            "input.image",
            "Does not match format 'uri'",
        ),
    ],
    ids=[
        "required",
        "enum",
        "enum-by-ref",
        "integer-enum-by-ref",
        "above-maximum",
        "below-minimum",
        "string-for-integer",
        "bool-for-integer",
        "float-for-integer",
        "not-a-uri",
    ],
)
async def test_inputs_the_schema_refuses_get_the_real_422(
    http: httpx.AsyncClient,
    fake: FakeReplicate,
    model: str,
    inputs: dict[str, Any],
    kind: str,
    field: str,
    description: str,
) -> None:
    reply = await _create(http, model, inputs)
    assert reply.status_code == 422
    assert reply.json() == {
        "detail": f"- {field}: {description}\n",
        "status": 422,
        "title": "Input validation failed",
        "invalid_fields": [{"type": kind, "field": field, "description": description}],
    }
    assert fake.created() == []


async def test_valid_inputs_pass_and_undeclared_ones_are_recorded(
    http: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    text = {"prompt": "hi", "system_prompt": "be brief", "temperature": 1, "max_tokens": 64}
    video = {"prompt": "orbit", "image": "data:,", "duration": 5, "resolution": "720p"}
    image = {"prompt": "a mug", "num_outputs": 1, "output_format": "png", "aspect_ratio": "1:1"}
    for model, inputs in [(LLAMA, text), (SEEDANCE, video), (SCHNELL, dict(image, seed=3))]:
        assert (await _create(http, model, inputs)).status_code == 201, model
    assert fake.ignored_inputs == [(LLAMA, "system_prompt")]


async def test_a_community_model_runs_by_version_only(
    http: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    inputs = {"input_image": "https://example.com/a.png", "seconds": 3}
    refused = await _create(http, PIXEL, inputs)
    assert refused.status_code == 404
    assert refused.json()["detail"] == "The requested resource could not be found."
    assert PIXEL in COMMUNITY and (await http.get(f"/v1/models/{PIXEL}")).status_code == 200
    version = LATEST_VERSION[PIXEL]
    made = await http.post("/v1/predictions", json={"version": version, "input": inputs})
    assert made.status_code == 201
    done = (await http.get(f"/v1/predictions/{made.json()['id']}")).json()
    bad = await http.post("/v1/predictions", json={"version": version, "input": {"seconds": 3}})
    assert bad.json()["invalid_fields"][0]["description"] == "input_image is required"
    assert done["model"] == PIXEL and KIND[PIXEL] == "video"


async def test_the_kind_comes_from_the_registered_model(
    http: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    version = LATEST_VERSION[PIXEL]
    body = {"version": version, "input": {"input_image": "https://example.com/a.png"}}
    video = (await http.post("/v1/predictions", json=body, headers=WAIT)).json()
    assert video["status"] == "succeeded" and str(video["output"]).endswith(".mp4")
    image = (await _create(http, SCHNELL, {"prompt": "a mug", "image": "data:,"}, **WAIT)).json()
    assert image["output"][0].endswith(".png")  # an `image` input does not make it a video
    assert fake.ignored_inputs == [(SCHNELL, "image")]


async def test_schemas_can_change_at_run_time(http: httpx.AsyncClient, fake: FakeReplicate) -> None:
    old = LATEST_VERSION[SCHNELL]
    slimmer = {**SCHEMAS[SCHNELL], "Input": dict(SCHEMAS[SCHNELL]["Input"])}
    slimmer["Input"]["properties"] = {
        k: v for k, v in slimmer["Input"]["properties"].items() if k != "go_fast"
    }
    new = fake.new_version(SCHNELL, slimmer)
    assert (await http.get(f"/v1/models/{SCHNELL}")).json()["latest_version"]["id"] == new
    pinned = (await http.get(f"/v1/models/{SCHNELL}/versions/{old}")).json()
    assert pinned["openapi_schema"]["components"]["schemas"] == SCHEMAS[SCHNELL]
    inputs = {"prompt": "a mug", "go_fast": True}
    assert (await _create(http, SCHNELL, inputs)).status_code == 201
    old_run = await http.post("/v1/predictions", json={"version": old, "input": inputs})
    assert old_run.status_code == 201
    assert fake.ignored_inputs == [(SCHNELL, "go_fast")]  # only the new version lacks it
    fake.add_model("someone/strict", SCHEMAS[KLING], "video", community=True)
    version = fake.latest["someone/strict"]
    missing = await http.post(
        "/v1/predictions", json={"version": version, "input": {"prompt": "p"}}
    )
    assert missing.status_code == 422


async def test_the_llm_reads_its_instruction_from_the_prompt_template(
    http: httpx.AsyncClient,
) -> None:
    template = 'Plan exactly 2 merchandise products for the theme "{prompt}". JSON only.'
    inputs = {"prompt": "retro cats", "prompt_template": template}
    done = (await _create(http, LLAMA, inputs, **WAIT)).json()
    answer = "".join(done["output"])
    assert answer == default_reply(template.replace("{prompt}", "retro cats"))
    assert "Retro Cats Item 2" in answer and "Item 3" not in answer


async def test_waited_images_may_come_back_as_data_urls(
    http: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    fake.data_outputs = True
    done = (await _create(http, SCHNELL, {"prompt": "a mug"}, **WAIT)).json()
    head, _, data = done["output"][0].partition(",")
    assert head == "data:image/png;base64"
    assert base64.b64decode(data).startswith(b"\x89PNG")
    fake.data_outputs = False
    served = (await _create(http, SCHNELL, {"prompt": "a mug"}, **WAIT)).json()
    assert served["output"][0] == f"{fake.base_url}/files/{served['id']}.png"


@pytest.mark.parametrize(("per_min", "resets"), [(600.0, 1), (6.0, 10)])
async def test_a_burst_of_one_throttles_the_second_create(per_min: float, resets: int) -> None:
    fake = FakeReplicate(token=TOKEN, create_rate_per_min=per_min, create_burst=1)
    await fake.start()
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as http:
            first = await _create(http, SCHNELL, {"prompt": "a"})
            second = await _create(http, SCHNELL, {"prompt": "b"})
    finally:
        await fake.stop()
    assert (first.status_code, second.status_code) == (201, 429)
    body = second.json()
    assert body["detail"] == f"Request was throttled. Your rate limit resets in ~{resets}s."
    assert resets - 1 < body["retry_after"] <= resets
    assert fake.throttled == 1 and len(fake.created()) == 1
