"""PredictionApi through the real replicate client against the fake Replicate server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.replicate_api.downloads import Downloader, OutputGone
from adapters.replicate_api.predictions import PredictionApi
from adapters.replicate_api.wire import Prediction
from core.errors import PermanentStepError, TransientStepError
from tests.fakes.model_schemas import SCHEMAS
from tests.fakes.replicate import (
    STUB_MP4,
    TOKEN,
    FakeReplicate,
    Fault,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
    fast_settings,
)

IMAGE = "black-forest-labs/flux-schnell"
VERSION = "b" * 64
INPUT = {"prompt": "a mug", "seed": 1}


@pytest.fixture
async def api(fake: FakeReplicate) -> AsyncIterator[PredictionApi]:
    client = PredictionApi(fast_settings(fake))
    yield client
    await client.aclose()


async def _done(api: PredictionApi, prediction: Prediction) -> Prediction:
    async def report(_status: str) -> None:
        return None

    return await api.wait(prediction, 10.0, report)


async def test_official_model_create_get_and_list(api: PredictionApi, fake: FakeReplicate) -> None:
    created = await api.create(IMAGE, INPUT)
    assert fake.posts(f"/v1/models/{IMAGE}/predictions") == 1
    assert (created.model, created.input, created.status) == (IMAGE, INPUT, "starting")
    done = await _done(api, created)
    assert done.status == "succeeded"
    assert isinstance(done.output, list) and str(done.output[0]).endswith(".png")
    assert [p.id for p in await api.recent(0.0)] == [created.id]
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for _, _, h in fake.requests)


async def test_a_running_prediction_reports_its_percentage(
    api: PredictionApi, fake: FakeReplicate
) -> None:
    fake.script["show progress"] = "progress"  # the fake prints a tqdm bar in its logs
    fake.latency[IMAGE] = 1.0
    said: list[str] = []

    async def report(status: str) -> None:
        said.append(status)

    created = await api.create(IMAGE, {"prompt": "show progress: a mug", "seed": 1})
    done = await api.wait(created, 10.0, report)
    assert done.status == "succeeded"
    shown = [int(s.split()[1].rstrip("%")) for s in said if s.startswith("processing ")]
    assert shown, said  # at least one percentage reached the report hook
    assert shown == sorted(shown) and all(0 <= n < 100 for n in shown)
    assert said[-1] == "succeeded"


async def test_version_create_uses_the_version_endpoint(
    api: PredictionApi, fake: FakeReplicate
) -> None:
    fake.add_model("someone/model", SCHEMAS[IMAGE], "image", version=VERSION, community=True)
    created = await api.create(f"someone/model:{VERSION}", INPUT)
    assert fake.posts("/v1/predictions") == 1
    assert (created.model, created.version) == ("someone/model", VERSION)
    with pytest.raises(PermanentStepError, match="Invalid version"):
        await api.create(f"someone/model:{'c' * 64}", INPUT)


@pytest.mark.parametrize(
    ("fault", "posts"),
    [
        (Fault("429", retry_after="0.05"), 3),
        (Fault("429", resets_in=0.05), 3),
        (Fault("429"), 3),
        (Fault("500"), 3),
        (Fault("502"), 3),
        (Fault("503"), 3),
        (Fault("504"), 3),
        (Fault("drop_before"), 3),
        (Fault("stall_before"), 3),  # read timeout, nothing made: created anew
        (Fault("stall_after"), 1),  # read timeout after it was made: adopted at once
    ],
    ids=[
        "429-retry-after",
        "429-resets-in",
        "429-bare",
        "500",
        "502",
        "503",
        "504",
        "dropped",
        "read-timeout",
        "read-timeout-after-create",
    ],
)
async def test_create_recovers_without_a_duplicate(
    fake: FakeReplicate, fault: Fault, posts: int
) -> None:
    api = PredictionApi(fast_settings(fake, read_timeout_s=0.5))
    fake.faults.extend([fault, fault])
    try:
        created = await api.create(IMAGE, INPUT)
        done = await _done(api, created)
    finally:
        await api.aclose()
    assert fake.posts("/predictions") == posts
    assert [p["id"] for p in fake.created()] == [created.id]
    assert api.stats["retries"] == (2 if posts == 3 else 1)  # adopted after the first wait
    assert done.status == "succeeded"


async def test_429_pauses_every_creator(api: PredictionApi, fake: FakeReplicate) -> None:
    fake.faults.append(Fault("429", retry_after="0.2"))
    await api.create(IMAGE, INPUT)
    assert api.http.creates._paused_until > 0  # the shared bucket was held back
    assert len(fake.created()) == 1


async def test_dropped_after_creation_is_adopted(api: PredictionApi, fake: FakeReplicate) -> None:
    fake.faults.append(Fault("drop_after"))
    other = await api.create(IMAGE, {"prompt": "another", "seed": 1})  # not the same input
    created = await api.create(IMAGE, INPUT)
    assert created.id != other.id
    assert len(fake.created()) == 2  # the dropped create was paid for once
    assert api.stats["adopted"] == 1
    assert fake.posts("/predictions") == 2  # no second create was sent


async def test_adoption_ignores_a_deployment_model_name(
    api: PredictionApi, fake: FakeReplicate
) -> None:
    fake.model_alias[IMAGE] = "replicate-internal/flux-schnell-int8-triton"
    fake.faults.append(Fault("drop_after"))
    created = await api.create(IMAGE, INPUT)
    assert created.model == "replicate-internal/flux-schnell-int8-triton"
    assert len(fake.created()) == 1 and api.stats["adopted"] == 1
    assert fake.posts("/predictions") == 1  # adopted, not created again


async def test_adoption_never_takes_a_prediction_twice(
    api: PredictionApi, fake: FakeReplicate
) -> None:
    first = await api.create(IMAGE, INPUT)
    fake.faults.append(Fault("502"))
    second = await api.create(IMAGE, INPUT)  # same input: the 502 made nothing, so create again
    assert first.id != second.id
    assert api.stats["adopted"] == 0


async def test_giving_up_is_transient(fake: FakeReplicate) -> None:
    api = PredictionApi(fast_settings(fake, create_attempts=3))
    fake.faults.extend([Fault("503")] * 3)
    try:
        with pytest.raises(TransientStepError, match="after 3 tries"):
            await api.create(IMAGE, INPUT)
    finally:
        await api.aclose()
    assert fake.created() == []


async def test_bad_token_is_permanent_and_never_echoed(
    fake: FakeReplicate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = PredictionApi(fast_settings(fake, api_token="r8_wrong-secret-value"))
    try:
        with pytest.raises(PermanentStepError) as err:
            await api.create(IMAGE, INPUT)
    finally:
        await api.aclose()
    assert "Invalid API token" in str(err.value) and "401" in str(err.value)
    assert "r8_wrong-secret-value" not in str(err.value) + caplog.text


async def test_polling_survives_server_errors(api: PredictionApi, fake: FakeReplicate) -> None:
    created = await api.create(IMAGE, INPUT)
    fake.get_faults.extend([500, 502, 503])
    assert (await _done(api, created)).status == "succeeded"
    assert not fake.get_faults


async def test_cancel_and_unknown_prediction(api: PredictionApi, fake: FakeReplicate) -> None:
    fake.script["a mug"] = "hang"
    created = await api.create(IMAGE, INPUT)
    assert await api.cancel(created.id)
    assert fake.cancels == [created.id]
    assert (await api.get(created.id)).status == "canceled"
    assert not await api.cancel("nope")
    with pytest.raises(PermanentStepError, match="Not found"):
        await api.get("nope")


async def test_upload_returns_a_file_url(api: PredictionApi, fake: FakeReplicate) -> None:
    url = await api.upload(b"\x89PNG\r\n\x1a\nabc", "p01-image.png", "image/png")
    assert url.startswith(fake.base_url + "/v1/files/")
    assert list(fake.uploads.values()) == [b"\x89PNG\r\n\x1a\nabc"]


async def test_downloads_carry_no_token_and_check_types(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    fake.video = STUB_MP4  # small: under the 10 kB limit (no player sees it)
    downloads = Downloader(
        max_bytes=10_000, allow_http=True, hosts=["127.0.0.1"], allow_private=True
    )
    try:
        image = await downloads.fetch(f"{fake.base_url}/files/x.png", tmp_path / "a", "image")
        video = await downloads.fetch(f"{fake.base_url}/files/x.mp4", tmp_path / "b", "video")
        with pytest.raises(PermanentStepError, match="not a image"):
            await downloads.fetch(f"{fake.base_url}/files/x.mp4", tmp_path / "c", "image")
        fake.serve_type = "video/mp4"  # a lying header: the bytes are a PNG
        with pytest.raises(PermanentStepError, match="bytes say image/png"):
            await downloads.fetch(f"{fake.base_url}/files/x.png", tmp_path / "d", "video")
        with pytest.raises(OutputGone):
            await downloads.fetch(f"{fake.base_url}/files/x.gif", tmp_path / "e", "image")
    finally:
        await downloads.aclose()
    assert Path(image).name == "a.png" and Path(video).read_bytes() == fake.video
    assert len(fake.file_headers) == 5
    assert all("Authorization" not in h for h in fake.file_headers)
    assert not list(tmp_path.glob("[cde]*"))


async def test_download_rules(fake: FakeReplicate, tmp_path: Path) -> None:
    strict = Downloader(max_bytes=100, allow_http=False)
    try:
        with pytest.raises(PermanentStepError, match=r"refusing .* http URL"):
            await strict.fetch(f"{fake.base_url}/files/x.png", tmp_path / "a", "image")
        with pytest.raises(PermanentStepError, match="too large"):
            await strict.fetch("data:video/mp4;base64," + "A" * 400, tmp_path / "b", "video")
        with pytest.raises(PermanentStepError, match="malformed"):
            await strict.fetch("data:image/png;base64,%%%", tmp_path / "c", "image")
        path = await strict.fetch(
            "data:image/gif;base64,R0lGODlhAQABAAAAACw=", tmp_path / "d", "image"
        )
    finally:
        await strict.aclose()
    assert Path(path).name == "d.gif"
    assert fake.file_headers == []  # the http URL was refused before any request
