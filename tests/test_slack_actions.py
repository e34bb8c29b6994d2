"""Reroll, Animate and `/campaign animate` in Slack, end to end: the real AsyncApp
served over HTTP on 127.0.0.1, signed presses and commands, a real slack-sdk client
talking to the fake Slack Web API, and real SQLite underneath; plus the contact
sheet on the status message and the summary's timeline and reel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import AppSettings
from bot.slack_ui.blocks import ACTION_ANIMATE, ACTION_REROLL
from bot.slack_ui.commands import Command, parse_command
from bot.slack_ui.thread import MB, SlackThread
from core.errors import InvalidRequest
from core.model import Action, Campaign, CampaignStatus, StepName
from core.request import CampaignRequest
from core.scheduler import Limits
from core.service import CampaignService
from core.settings import CoreSettings
from tests.fakes import GatedGenerator
from tests.fakes.slack_api import (
    BOT_TOKEN,
    Call,
    FakeSlackApi,
    is_buttons_post,
    slack_harness,
)
from tests.test_slack_app import block_text, parent_ts, summaries, thread_posts


@pytest.fixture
async def offline_service(tmp_path: Path, bot_main: ModuleType) -> AsyncIterator[CampaignService]:
    """The real composition (offline generator, real contact sheet renderer), no videos."""
    settings = CoreSettings(
        data_dir=tmp_path / "data",
        generator="offline",
        executor="local",
        limits=Limits(text=2, image=4, video=3, cpu=2),
    )
    async with bot_main.build(AppSettings.of(core=settings)) as app:
        yield app.service


def _blocks(call: Call) -> list[dict[str, Any]]:
    blocks = call.params.get("blocks")
    parsed = json.loads(blocks) if isinstance(blocks, str) else blocks
    return list(parsed or [])


def buttons(api: FakeSlackApi, ts: str) -> dict[str, list[dict[str, Any]]]:
    """Every product button in the thread of `ts`, by its value ("<campaign id>:<n>")."""
    found: dict[str, list[dict[str, Any]]] = {}
    for call in api.of("chat.postMessage"):
        if call.params.get("thread_ts") != ts:
            continue
        for block in _blocks(call):
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                found.setdefault(element["value"], []).append(element)
    return found


def ephemerals(api: FakeSlackApi) -> list[dict[str, Any]]:
    return [c.params for c in api.of("chat.postEphemeral")]


async def finished(service: CampaignService, slack: Any, text: str, user: str = "U1") -> Campaign:
    """Start a campaign with `text`, wait for its summary; the stored campaign."""
    await slack.command(text, user=user)
    ts = await parent_ts(slack.api)
    await slack.api.wait_for(lambda: len(summaries(slack.api, ts)) == 1)
    [campaign] = await service.history(1)
    await settled(slack.front, campaign.id)
    await slack.settle()  # the contact sheet shown on the parent, too
    return campaign


async def settled(front: Any, campaign_id: str) -> None:
    """Wait until the campaign's follower has posted everything (the contact sheet edit of
    the parent comes last): until then a press is refused as still running."""
    deadline = time.monotonic() + 60
    while front.followers.live(campaign_id):
        assert time.monotonic() < deadline, "the follower never finished"
        await asyncio.sleep(0.01)


async def test_reroll_and_animate_presses_add_attempts_posted_in_the_thread(
    make_service: Any,
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    async with slack_harness(service, admins=frozenset({"UADMIN"})) as slack:
        api = slack.api
        campaign = await finished(service, slack, "cats products:2", user="U1")
        ts = campaign.origin.ts
        await slack.settle()
        shown = buttons(api, ts)
        assert set(shown) == {f"{campaign.id}:1", f"{campaign.id}:2"}
        first = shown[f"{campaign.id}:1"]
        assert [b["action_id"] for b in first] == [ACTION_REROLL, ACTION_ANIMATE]
        assert first[0]["text"]["text"].startswith("Reroll · $0.010")  # its estimate
        assert first[1]["text"]["text"].startswith("Animate · $0.010")
        assert len(thread_posts(api, ts)) == 3  # two products, the summary (buttons aside)

        calls = len(gen.calls)
        reply = await slack.press_product(ACTION_REROLL, campaign.id, 1, "U1")
        assert reply.status == 200 and reply.seconds < 3.0
        await api.wait_for(lambda: len(summaries(api, ts)) == 2)
        await settled(slack.front, campaign.id)  # its follower is done: free to run again
        await slack.settle()
        rerolled = await service.get(campaign.id)
        assert len(rerolled.products) == 3
        new = rerolled.products[2]
        assert (new.attempt_of, new.action, new.status.value) == (0, Action.REROLL, "succeeded")
        assert gen.calls[calls:] == [(2, "image")]  # one new image, nothing else ran

        await slack.press_product(ACTION_ANIMATE, campaign.id, 2, "UADMIN")  # an admin may
        await api.wait_for(lambda: len(summaries(api, ts)) == 3)
        await slack.settle()
    animated = await service.get(campaign.id)
    assert len(animated.products) == 4
    clip = animated.products[3]
    assert (clip.attempt_of, clip.action) == (1, Action.ANIMATE)
    assert clip.output(StepName.VIDEO) is not None
    assert gen.calls[calls + 1 :] == [(3, "video")]  # the image was reused, not made again
    assert ephemerals(api) == []  # nobody was refused
    posts = [str(c.params) for c in thread_posts(api, ts)]
    assert len(posts) == 7  # 2 products + summary, reroll + summary, animate + summary
    assert "3. " in posts[3] and "(reroll of 1)" in posts[3] and "✅" in posts[3]
    assert "(animate of 2)" in posts[5]
    assert len(json.loads(thread_posts(api, ts)[5].params["files"])) == 2  # image + video
    assert set(buttons(api, ts)) == {f"{campaign.id}:{n}" for n in (1, 2, 3, 4)}  # new ones too
    assert all(c.params["ts"] == ts for c in api.of("chat.update"))  # the same parent message
    assert BOT_TOKEN not in json.dumps([c.params for c in api.calls])


async def test_a_press_by_someone_who_may_not_control_it_changes_nothing(
    make_service: Any,
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    async with slack_harness(service) as slack:
        api = slack.api
        campaign = await finished(service, slack, "cats products:2", user="U1")
        calls, updates = list(gen.calls), len(api.of("chat.update"))
        for action in (ACTION_REROLL, ACTION_ANIMATE):
            assert (await slack.press_product(action, campaign.id, 1, "U2")).status == 200
            await slack.settle()
    refusals = ephemerals(api)
    assert [(r["user"], r["channel"]) for r in refusals] == [("U2", "C1"), ("U2", "C1")]
    assert "Only <@U1> or a bot admin can reroll" in refusals[0]["text"]
    assert "Only <@U1> or a bot admin can animate" in refusals[1]["text"]
    stored = await service.get(campaign.id)
    assert len(stored.products) == 2 and stored.status is CampaignStatus.SUCCEEDED
    assert gen.calls == calls and len(api.of("chat.update")) == updates


async def test_a_button_from_before_a_restart_still_works(make_service: Any) -> None:
    first = make_service(GatedGenerator(open_all=True))
    async with slack_harness(first) as before:
        campaign = await finished(first, before, "cats products:2")
        await before.settle()
        ts = campaign.origin.ts
        [old] = buttons(before.api, ts)[f"{campaign.id}:2"][:1]  # Reroll under product 2
    gen = GatedGenerator(open_all=True)
    restarted = make_service(gen)  # same database, a fresh service and app: no shared memory
    async with slack_harness(restarted) as after:
        form = after.button_form(old["action_id"], campaign.id, "U1", value=old["value"])
        assert (await after.post(form)).status == 200
        await after.api.wait_for(lambda: len(summaries(after.api, ts)) == 1)
        await after.settle()
    stored = await restarted.get(campaign.id)
    assert [p.action for p in stored.products] == [None, None, Action.REROLL]
    assert stored.products[2].attempt_of == 1 and gen.calls == [(2, "image")]
    [post, _summary] = thread_posts(after.api, ts)
    assert "(reroll of 2)" in str(post.params)
    assert all(c.params["ts"] == ts for c in after.api.of("chat.update"))  # the old parent
    assert not [c for c in after.api.of("chat.postMessage") if not c.params.get("thread_ts")]


async def test_animate_command_with_a_number_and_prompt_then_every_product(
    make_service: Any,
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    async with slack_harness(service) as slack:
        api = slack.api
        campaign = await finished(service, slack, "cats products:2", user="U1")
        ts = campaign.origin.ts
        reply = await slack.command(f"animate {campaign.id} 2 slow zoom", user="U1")
        assert reply.status == 200 and reply.body == {"text": ""}  # answered via response_url
        await api.wait_for(lambda: len(summaries(api, ts)) == 2)
        await settled(slack.front, campaign.id)
        await slack.settle()
        one = await service.get(campaign.id)
        assert len(one.products) == 3
        assert (one.products[2].attempt_of, one.products[2].action) == (1, Action.ANIMATE)
        assert one.products[2].plan.video_prompt == "slow zoom"
        assert gen.jobs[(2, "video")].plan.video_prompt == "slow zoom"

        await slack.command(f"animate {campaign.id}", user="U1")  # every product without video
        await api.wait_for(lambda: len(summaries(api, ts)) == 3)
        await slack.settle()
    every = await service.get(campaign.id)
    assert [(p.attempt_of, p.action) for p in every.products[3:]] == [(0, Action.ANIMATE)]
    assert all(p.output(StepName.VIDEO) for p in every.current())
    answers = [c.params for c in api.of("response_url")]
    assert [a["response_type"] for a in answers] == ["ephemeral", "ephemeral"]
    assert answers[0]["text"].startswith(f"🎬 Animating product 2 of campaign {campaign.id}")
    assert "every product that has no video yet" in answers[1]["text"]
    posts = [str(c.params) for c in thread_posts(api, ts)]
    assert "(animate of 2)" in posts[3] and "(animate of 1)" in posts[5]


async def test_bad_numbers_running_campaigns_and_strangers_get_ephemeral_errors(
    make_service: Any,
) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    async with slack_harness(service) as slack:
        api = slack.api
        await slack.command("cats products:2", user="U1")
        await gen.wait_started(2)
        [running] = await service.history(1)
        await slack.press_product(ACTION_REROLL, running.id, 1, "U1")
        await slack.settle()
        await slack.command(f"animate {running.id} 1", user="U1")
        await slack.settle()
        gen.open_all = True
        gen.open((0, "image"), (1, "image"))
        done = await service.wait(running.id)
        assert done.status is CampaignStatus.SUCCEEDED
        await api.wait_for(lambda: len(summaries(api, running.origin.ts)) == 1)
        await settled(slack.front, running.id)
        await slack.settle()
        calls = list(gen.calls)
        await slack.press_product(ACTION_REROLL, running.id, 9, "U1")
        await slack.settle()
        await slack.command(f"animate {running.id} 9 slow zoom", user="U1")
        await slack.command(f"animate {running.id} 1 slow zoom", user="U2")
        await slack.command("animate nope 1", user="U1")
        await slack.command("animate ffffffff", user="U1")
        form = slack.button_form(ACTION_ANIMATE, running.id, "U1", value=f"{running.id}:x")
        await slack.post(form)  # a value no button of ours carries
        await slack.settle()
    refusals = [r["text"] for r in ephemerals(api)]
    assert "still running; reroll once it has finished" in refusals[0]
    assert "product: 9 is not a product" in refusals[1]
    assert "could not read that request" in refusals[2]
    answers = [c.params for c in api.of("response_url")]
    assert all(a["response_type"] == "ephemeral" for a in answers)
    texts = [a["text"] for a in answers]
    assert "still running; animate once it has finished" in texts[0]
    assert "9 is not a product" in texts[1]
    assert "Only <@U1> or a bot admin can animate" in texts[2]
    assert "no campaign with id 'ffffffff'" in texts[3]
    stored = await service.get(running.id)
    assert len(stored.products) == 2 and gen.calls == calls  # nothing stored, nothing ran
    assert len(summaries(api, running.origin.ts)) == 1


async def test_a_bad_number_for_a_terminal_campaign_posts_nothing_in_the_channel(
    make_service: Any,
) -> None:
    service = make_service(GatedGenerator(open_all=True))
    done = await service.run(CampaignRequest(theme="cats", products=1))  # no Slack message
    async with slack_harness(service, admins=frozenset({"UADMIN"})) as slack:
        await slack.press_product(ACTION_REROLL, done.id, 9, "UADMIN")
        await slack.command(f"animate {done.id} 9", user="UADMIN")
        await slack.settle()
        await slack.press_product(ACTION_REROLL, done.id, 1, "UADMIN")  # a good one posts
        await slack.api.wait_for(lambda: len(slack.api.of("chat.postMessage")) >= 1)
    refusals = [r["text"] for r in ephemerals(slack.api)]
    assert "product: 9 is not a product" in refusals[0]
    assert "9 is not a product" in slack.api.of("response_url")[0].params["text"]
    first = slack.api.of("chat.postMessage")[0].params
    assert "thread_ts" not in first  # the new status message came from the good press only
    assert len([c for c in slack.api.of("chat.postMessage") if "thread_ts" not in c.params]) == 1


async def test_animate_id_that_is_not_an_id_is_refused_at_the_ack(make_service: Any) -> None:
    service = make_service(GatedGenerator(open_all=True))
    async with slack_harness(service) as slack:
        reply = await slack.command("animate nope 1")
        missing = await slack.command("animate")
        await slack.settle()
    assert reply.body["response_type"] == "ephemeral" and "not a campaign id" in reply.body["text"]
    assert "needs a campaign id" in missing.body["text"]
    assert await service.history(5) == [] and slack.api.of("chat.postMessage") == []


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("animate 3F9A1C2E", Command("animate", "3f9a1c2e")),
        ("animate 3f9a1c2e 2", Command("animate", "3f9a1c2e", 2)),
        ("animate 3f9a1c2e 2 Slow  Zoom", Command("animate", "3f9a1c2e", 2, "Slow  Zoom")),
        ('animate 3f9a1c2e "slow zoom"', Command("animate", "3f9a1c2e", None, "slow zoom")),
        ('animate 3f9a1c2e "3 birds fly"', Command("animate", "3f9a1c2e", None, "3 birds fly")),
        ("animate 3f9a1c2e 1 “pan left”", Command("animate", "3f9a1c2e", 1, "pan left")),
    ],
)
def test_animate_command_text(text: str, parsed: Command) -> None:
    assert parse_command(text) == parsed


def test_animate_without_an_id_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="needs a campaign id"):
        parse_command("animate")


async def test_the_final_status_shows_the_contact_sheet(
    offline_service: CampaignService,
) -> None:
    async with slack_harness(offline_service) as slack:
        api = slack.api
        campaign = await finished(offline_service, slack, "cats products:2")
        ts = campaign.origin.ts
        await slack.settle()
    assert campaign.contact_sheet
    summary = next(c for c in thread_posts(api, ts) if "Campaign" in str(c.params))
    uploaded = {f["title"]: f["id"] for f in summary.answer["files"]}
    sheet = uploaded[f"Contact sheet {campaign.id}"]
    updates = [c for c in api.of("chat.update") if c.params["ts"] == ts]
    assert sheet not in json.dumps([_blocks(c) for c in updates[:-1]])  # not before it exists
    images = [b for b in _blocks(updates[-1]) if b["type"] == "image"]
    assert images == [
        {
            "type": "image",
            "block_id": f"sheet:{campaign.id}:{sheet}",
            "slack_file": {"id": sheet},
            "alt_text": f"Contact sheet of campaign {campaign.id}",
            "title": {"type": "plain_text", "text": "Contact sheet"},
        }
    ]
    assert updates[-1].at > summary.at and "succeeded" in block_text(updates[-1])
    assert not any(is_buttons_post(c) for c in api.of("files.completeUploadExternal"))


@pytest.mark.parametrize("limit_mb", [50.0, 0.001])
async def test_summary_posts_the_timeline_and_the_reel_follows_within_the_upload_limit(
    make_service: Any, tmp_path: Path, limit_mb: float
) -> None:
    service = make_service(GatedGenerator(open_all=True))
    async with slack_harness(service) as slack:
        campaign = await finished(service, slack, "cats products:1")
        await slack.settle()
    timeline, reel = tmp_path / "timeline.png", tmp_path / "reel.mp4"
    timeline.write_bytes(b"\x89PNG\r\n\x1a\n" + b"t" * 100)  # 108 bytes: always fits
    reel.write_bytes(b"r" * 4096)  # over 0.001 MB (1048 bytes), under 50 MB
    api = FakeSlackApi()
    client = AsyncWebClient(token=BOT_TOKEN, base_url=await api.start())
    thread = SlackThread(client, "C1", "1.0", executor="x", max_upload_bytes=int(limit_mb * MB))
    try:
        bare = replace(campaign, contact_sheet=None)
        await thread.post_summary(replace(bare, timeline=str(timeline)))
        await thread.post_summary(bare)  # neither exists yet: None is fine
        await thread.post_reel(bare, str(reel), "")  # then the reel, on its own
        await thread.post_reel(bare, None, "ffmpeg failed (exit 1): <no>")
    finally:
        await api.close()
    summary, *reel_upload = api.of("files.completeUploadExternal")
    titles = [f["title"] for f in json.loads(summary.params["files"])]
    comment = summary.params["initial_comment"]
    assert comment.startswith("✅ Campaign") and summary.params["thread_ts"] == "1.0"
    assert titles == [f"Timeline {campaign.id}"] and "upload limit" not in comment
    text_only, *reel_text, no_reel = api.of("chat.postMessage")
    assert text_only.params["text"].startswith("✅ Campaign")
    assert no_reel.params["text"] == "No reel: ffmpeg failed (exit 1): &lt;no&gt;"
    if limit_mb == 50.0:
        assert reel_text == [] and len(reel_upload) == 1
        [reel_file] = json.loads(reel_upload[0].params["files"])
        assert reel_file["title"] == f"Reel {campaign.id}"
        assert reel_upload[0].params["initial_comment"] == f"Reel of campaign {campaign.id}"
    else:
        assert reel_upload == [] and len(reel_text) == 1
        text = reel_text[0].params["text"]
        assert text.startswith(f"Reel of campaign {campaign.id}\n")
        assert "reel: 0.0 MB is over the 0 MB upload limit" in text
        assert f"saved on the bot host at `{reel}`" in text
    assert api.of("chat.update") == []  # no contact sheet: nothing to show on the parent
