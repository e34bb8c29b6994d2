"""Planning off the critical path: streamed answers, outline then details, products started
as their plans are written (issue 22).

The fake's language model streams like Replicate's (`urls.stream`, server-sent events,
the token required), answers the fields and products the prompt asks for, and takes
longer for a longer answer (`TextTiming`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from adapters.replicate_api.planner import LlmPlanner, layout
from adapters.replicate_api.stream import Event, batches, stream_url_ok
from core.model import CampaignStatus
from core.plan_stream import ObjectStream
from core.request import CampaignRequest
from tests.conftest import ReplicateFactory
from tests.fakes.replicate import (
    TOKEN,
    FakeReplicate,
    TextTiming,
    default_reply,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
    fast_settings,
)

LLM, IMAGE = "meta/meta-llama-3-8b-instruct", "black-forest-labs/flux-schnell"


# --- the answer as it is written (pure) ---------------------------------------------------


def test_objects_come_out_as_soon_as_each_is_complete() -> None:
    answer = 'Sure!\n```json\n[{"name": "A", "x": "{not [an] array}"},\n {"name": "B"}]\n```'
    stream, seen = ObjectStream(), []
    for end in range(len(answer) + 1):
        seen.append(len(stream.feed(answer[:end])))
    first = answer.index("},") + 1
    assert sum(seen) == 2 and seen[first] == 1  # the first object at its closing brace
    assert [o["name"] for o in stream.found] == ["A", "B"] and stream.closed


def test_an_object_wrapping_the_array_and_prose_are_skipped() -> None:
    stream = ObjectStream()
    assert stream.feed('{"products": [{"name": "A"}, {"na') == [{"name": "A"}]
    assert stream.feed('{"products": [{"name": "A"}, {"name": "B"}]}') == [{"name": "B"}]
    assert ObjectStream().feed("I cannot help with that.") == []


@pytest.mark.parametrize(
    ("products", "videos", "rate", "burst_s", "plan_s", "calls"),
    [
        (1, True, 600.0, 1.0, 1.5, 0),  # one product: one call is the shortest path
        (3, False, 600.0, 1.0, 1.5, 3),  # 1 + 3 + 3 creates go at once: a call per product
        (20, True, 600.0, 1.0, 1.5, 8),  # rate-bound: as many groups as keep ahead of it
        (6, True, 6.0, 10.0, 1.5, 0),  # a small account: creates are scarce, one call
        (20, True, 600.0, 1.0, 0.01, 0),  # a model fast enough to keep ahead alone
    ],
)
def test_how_many_calls_plan_a_campaign(
    products: int, videos: bool, rate: float, burst_s: float, plan_s: float, calls: int
) -> None:
    from adapters.replicate_api.http import CreateRate

    request = CampaignRequest(theme="cats", products=products, videos=videos)
    assert layout(request, CreateRate(rate, rate / 60 * burst_s), plan_s) == calls


async def test_server_sent_events_join_multiline_data_and_skip_comments() -> None:
    body = ": ping\nevent: output\ndata: a\ndata: é\r\n\nevent: done\ndata: {}\n\n".encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(len(body)):  # a byte at a time: lines and the é split between reads
            yield body[i : i + 1]

    got = [(e.name, "\n".join(e.data)) async for batch in batches(chunks()) for e in batch]
    assert got == [("output", "a\né"), ("done", "{}")]


async def test_the_pieces_of_one_read_are_handed_on_as_one_text_before_the_end() -> None:
    from adapters.replicate_api.stream import StreamError, _hand_on

    texts: list[str] = []

    async def on_text(text: str) -> None:
        texts.append(text)

    read = [Event("output", ["a"]), Event("output", ["b", "c"]), Event("done", ["{}"])]
    assert await _hand_on(read, on_text) and texts == ["ab\nc"]
    with pytest.raises(StreamError, match="out of memory"):
        await _hand_on([Event("output", ["d"]), Event("error", ['{"detail": "out of memory"}'])],
                       on_text)  # fmt: skip
    assert texts[-1] == "d"  # what was written before the failure went first


def test_the_token_goes_only_to_replicates_stream_hosts() -> None:
    base = "https://api.replicate.com"
    assert stream_url_ok("https://stream.replicate.com/v1/files/abc", base)
    assert stream_url_ok("http://127.0.0.1:8000/stream/1", "http://127.0.0.1:8000")
    assert not stream_url_ok("https://evil.example/stream/1", base)
    assert not stream_url_ok("http://stream.replicate.com/v1/files/abc", base)  # not https


# --- the fake streams like Replicate ------------------------------------------------------


def test_the_fake_answers_the_fields_and_products_asked_for() -> None:
    outline = json.loads(_fenced(default_reply(
        'Name exactly 2 different merchandise products for the theme "cats".\n'
        "Answer with a JSON array of objects with these string fields: name, product_type."
    )))  # fmt: skip
    assert [sorted(o) for o in outline] == [["name", "product_type"]] * 2
    details = json.loads(_fenced(default_reply(
        'Write the details of exactly 1 merchandise products for the theme "cats". '
        'The products, in this order:\n1. "Purr Mug" (mug)\n'
        "Answer with a JSON array of objects with these string fields: name, tagline."
    )))  # fmt: skip
    assert details == [{"name": "Purr Mug", "tagline": details[0]["tagline"]}]
    whole = default_reply('Plan exactly 3 different merchandise products for the theme "cats".')
    assert 3 * 500 <= len(whole) <= 3 * 800  # ~150 tokens (600 characters) a product


async def test_the_fake_streams_text_as_it_is_written_and_wants_the_token(
    fake: FakeReplicate,
) -> None:
    fake.text_timing = TextTiming(ttft_s=0.05, tokens_per_s=4000.0)
    prompt = 'Plan exactly 4 different merchandise products for the theme "cats".'
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        made = await (
            await http.post(
                f"{fake.base_url}/v1/models/{LLM}/predictions",
                json={"input": {"prompt": prompt}},
                headers=headers,
            )
        ).json()
        url = made["urls"]["stream"]
        async with http.get(url, headers={"Accept": "text/event-stream"}) as refused:
            assert refused.status == 401  # no token, no stream
        pieces, arrived = [], []
        async with http.get(url, headers={**headers, "Accept": "text/event-stream"}) as reply:
            assert reply.headers["Content-Type"].startswith("text/event-stream")
            async for batch in batches(reply.content.iter_any()):
                arrived.append(fake_clock())
                for event in batch:
                    if event.name == "output":
                        pieces.append("\n".join(event.data))
                    else:
                        assert (event.name, event.data) == ("done", ["{}"])
    answer = "".join(pieces)
    assert answer == default_reply(prompt)
    latency = TextTiming(0.05, 4000.0).latency(answer)
    assert latency >= 0.05 + 4 * 120 / 4000  # >= 120 tokens a product at 4,000 tokens/s
    assert arrived[-1] - arrived[0] >= 0.5 * (latency - 0.05)  # written over time, not at once
    done = fake.predictions[made["id"]]
    assert done["status"] == "succeeded" and done["metrics"]["predict_time"] == round(latency, 3)


# --- the planner: products start while the model is still writing -------------------------


async def test_an_image_is_created_before_the_one_planning_call_has_finished(
    replicate_service: ReplicateFactory, fake: FakeReplicate
) -> None:
    fake.text_timing = TextTiming(ttft_s=0.05, tokens_per_s=1000.0)  # ~0.6 s for 4 plans
    service, generator = replicate_service(fake, create_per_min=600.0, burst_s=0.1)
    generator.runtime.pace.learn(None, 1_000_000.0)  # fast enough: one call, streamed
    campaign = await service.run(CampaignRequest(theme="cats", products=4, seed=2))
    assert campaign.status is CampaignStatus.SUCCEEDED
    (plan,) = fake.created(LLM)
    first_image = min(_at(p["created_at"]) for p in fake.created(IMAGE))
    assert first_image < _at(plan["completed_at"])  # started while the plans were written
    assert plan["id"] in fake.streams


async def test_the_outline_names_the_products_and_each_details_call_starts_at_once(
    replicate_service: ReplicateFactory, fake: FakeReplicate
) -> None:
    fake.text_timing = TextTiming(ttft_s=0.05, tokens_per_s=1000.0)
    service, _ = replicate_service(fake)
    campaign = await service.run(CampaignRequest(theme="cats", products=3, seed=2))
    assert campaign.status is CampaignStatus.SUCCEEDED
    outline, *details = fake.created(LLM)
    assert outline["input"]["prompt"].startswith("Name exactly 3")
    assert len(details) == 3 and all("Write the details of exactly 1" in d["input"]["prompt"]
                                     for d in details)  # fmt: skip
    first_details = min(_at(d["created_at"]) for d in details)
    first_image = min(_at(p["created_at"]) for p in fake.created(IMAGE))
    assert first_details < _at(outline["completed_at"])  # named before the outline ended
    assert first_image < max(_at(d["completed_at"]) for d in details)
    names = [p.plan.name for p in campaign.products]
    assert names == ["Cats Item 1", "Cats Item 2", "Cats Item 3"]
    assert set(campaign.plan_calls) == {"outline", "details/0-0", "details/1-1", "details/2-2"}
    assert {c.provider_id for c in campaign.plan_calls.values()} == {
        p["id"] for p in fake.created(LLM)
    }  # every planning prediction stored like a step's


async def test_a_fast_model_needs_fewer_details_calls_than_a_cold_guess(
    replicate_service: ReplicateFactory, fake: FakeReplicate
) -> None:
    """Rate-bound (a small account, told its rate) and nothing learned yet: a group is sized
    by the outline's own speed once it shows (a real model's before), fast here: one more
    call at most, not one per group of three."""
    fake.text_timing = TextTiming(ttft_s=0.01, tokens_per_s=10_000.0)
    service, _ = replicate_service(fake, create_per_min=600.0, burst_s=0.1)
    campaign = await service.run(CampaignRequest(theme="cats", products=20, seed=2, videos=True))
    assert campaign.status is CampaignStatus.SUCCEEDED
    details = sorted(p for p in campaign.plan_calls if p.startswith("details/"))
    # at most the first group sized by the guess (20 / 8 groups: 3 products), then the rest in
    # one: the outline showed its speed (one call for all if it showed before the first group)
    assert details in (["details/0-19"], ["details/0-2", "details/3-19"]), details
    assert [p.plan.name for p in campaign.products] == [f"Cats Item {i}" for i in range(1, 21)]


async def test_names_stay_distinct_across_calls(fake: FakeReplicate) -> None:
    def reply(prompt: str) -> str:
        answer = default_reply(prompt)
        return answer.replace("Cats Item 2", "Cats Item 1") if "Name exactly" in prompt else answer

    fake.text_reply = reply  # the outline names two products alike
    planner = LlmPlanner(_runtime(fake))
    try:
        plans = await planner.plan(CampaignRequest(theme="cats", products=3, seed=1))
    finally:
        await planner.runtime.aclose()
    assert [p.name for p in plans] == ["Cats Item 1", "Cats Item 1 2", "Cats Item 3"]
    asked = [p["input"]["prompt"] for p in fake.created(LLM)[1:]]
    assert sorted(a.split("\n1. ")[1].split("\n")[0] for a in asked) == [
        '"Cats Item 1 2" (t-shirt)', '"Cats Item 1" (mug)', '"Cats Item 3" (poster)'
    ]  # fmt: skip


async def test_a_lost_stream_falls_back_to_polling(fake: FakeReplicate) -> None:
    fake.stream_status = 502
    planner = LlmPlanner(_runtime(fake))
    try:
        plans = await planner.plan(CampaignRequest(theme="cats", products=2, seed=1))
    finally:
        await planner.runtime.aclose()
    assert [p.name for p in plans] == ["Cats Item 1", "Cats Item 2"] and not plans.note
    assert len(fake.created(LLM)) == 3  # nothing asked twice for a lost stream


async def test_a_details_call_that_fails_leaves_only_its_products_to_the_fallback(
    fake: FakeReplicate,
) -> None:
    fake.script['"Cats Item 2"'] = "fail:CUDA out of memory"  # the second product's details
    found: list[int] = []

    async def on_plan(plan: Any) -> None:
        found.append(plan.index)

    planner = LlmPlanner(_runtime(fake))
    try:
        plans = await planner.plan(CampaignRequest(theme="cats", products=3, seed=1), None, on_plan)
    finally:
        await planner.runtime.aclose()
    assert sorted(found) == [0, 1, 2] and len(plans) == 3
    assert plans[0].name == "Cats Item 1" and plans[2].name == "Cats Item 3"  # the model's
    assert plans[1].name != "Cats Item 2" and "CUDA out of memory" in plans.note


def _runtime(fake: FakeReplicate) -> Any:
    from adapters.replicate_api.generator import ReplicateRuntime

    return ReplicateRuntime(fast_settings(fake))


def _fenced(answer: str) -> str:
    return answer.split("```json\n")[1].split("\n```")[0]


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def fake_clock() -> float:
    import time

    return time.monotonic()
