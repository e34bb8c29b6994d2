"""The Slack front end end to end: the real AsyncApp served over HTTP on 127.0.0.1,
signed slash commands and button presses, a real slack-sdk client talking to a
fake Slack Web API that records every call, and real SQLite underneath."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bot.settings import AppSettings
from bot.slack_ui.app import SlackFrontEnd
from core.model import CampaignStatus, DiscordOrigin, SlackOrigin, StepName, TerminalOrigin
from core.scheduler import Limits
from core.service import CampaignService
from core.settings import CoreSettings
from tests.fakes import GatedGenerator, make_orphan
from tests.fakes.service import ResumingRecorder
from tests.fakes.slack_api import (
    BOT_TOKEN,
    SIGNING_SECRET,
    Call,
    FakeSlackApi,
    fake_settings,
    is_buttons_post,
    signed_headers,
    slack_harness,
)


def summary_posted(api: FakeSlackApi, ts: str | None = None) -> bool:
    """Whether the campaign summary ("… Campaign <id> …") went into a thread."""
    return any(
        "Campaign" in str(c.params.get("initial_comment") or c.params.get("text") or "")
        and c.params.get("thread_ts") == (ts or c.params.get("thread_ts"))
        and c.params.get("thread_ts")
        for c in api.of("files.completeUploadExternal") + api.of("chat.postMessage")
    )


def reel_posted(api: FakeSlackApi) -> bool:
    """Whether the reel went into a thread, in a post of its own."""
    return any(
        str(c.params.get("initial_comment")).startswith("Reel of campaign")
        for c in api.of("files.completeUploadExternal")
    )


def posted_parent(api: FakeSlackApi) -> str:
    """The ts the fake gave the first top-level chat.postMessage ("" until there is one)."""
    first = [c for c in api.of("chat.postMessage") if not c.params.get("thread_ts")][:1]
    return str(first[0].answer["ts"]) if first else ""


async def parent_ts(api: FakeSlackApi) -> str:
    """Wait for the campaign's parent message; its ts."""
    await api.wait_for(lambda: bool(posted_parent(api)))
    return posted_parent(api)


def block_text(call: Call) -> str:
    """Every text inside a chat.update's blocks, joined."""
    blocks = call.params.get("blocks")
    return json.dumps(json.loads(blocks) if isinstance(blocks, str) else blocks, ensure_ascii=False)


@pytest.fixture
async def offline_service(tmp_path: Path, bot_main: ModuleType) -> AsyncIterator[CampaignService]:
    """The real composition: offline generator, LocalExecutor, SQLite (short videos)."""
    settings = CoreSettings(
        data_dir=tmp_path / "data",
        generator="offline",
        executor="local",
        video_seconds=0.4,
        limits=Limits(text=2, image=4, video=3, cpu=2),
    )
    async with bot_main.build(AppSettings.of(core=settings)) as app:
        yield app.service


async def test_signed_campaign_runs_into_a_thread(offline_service: CampaignService) -> None:
    async with slack_harness(offline_service) as slack:
        reply = await slack.command('theme:"retro cats" products:3 videos:yes')
        assert reply.status == 200
        assert reply.body["response_type"] == "ephemeral"
        assert "retro cats" in reply.body["text"] and "Estimate: 6 steps" in reply.body["text"]
        api = slack.api
        await api.wait_for(lambda: summary_posted(api) and reel_posted(api))
        await slack.settle()
    ts = await parent_ts(api)
    upload = ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    product = [upload[0], upload[0], upload[1], upload[1], upload[2]]  # image + video, one post
    buttons = "chat.postMessage"  # then the product's Reroll / Animate buttons
    posts = [m for m in api.methods() if m != "chat.update"]
    completes = api.of("files.completeUploadExternal")
    n = len(json.loads(completes[-2].params["files"]))  # contact sheet, timeline
    summary = [upload[0]] * n + [upload[1]] * n + [upload[2]]
    reel = upload  # after the summary: the reel, in a post of its own
    assert posts == ["auth.test", "chat.postMessage", *[*product, buttons] * 3, *summary, *reel]
    *_, final_state, with_sheet = api.of("chat.update")
    summary_at = completes[-2].at
    assert final_state.at < summary_at < with_sheet.at  # final state, summary, sheet on parent
    assert len(completes) == 5  # three products, the summary with the contact sheet, the reel
    (reel_file,) = json.loads(completes[4].params["files"])
    assert reel_file["title"].startswith("Reel ") and n == 2
    assert all(c.params["thread_ts"] == ts and c.params["channel_id"] == "C1" for c in completes)
    product_posts = completes[:3]
    for call in product_posts:
        assert len(json.loads(call.params["files"])) == 2  # image and video together
    assert "Campaign" in completes[3].params["initial_comment"]
    assert len(api.of("upload")) == 6 + n + 1 and all(u.size > 0 for u in api.of("upload"))
    updates = api.of("chat.update")
    assert updates and all(u.params["ts"] == ts for u in updates)
    assert "succeeded" in block_text(updates[-1])
    campaigns = await offline_service.history(5)
    assert len(campaigns) == 1
    stored = campaigns[0]
    assert stored.status is CampaignStatus.SUCCEEDED and stored.requester == "slack:U1"
    assert stored.origin == SlackOrigin(channel="C1", team="T1", ts=ts)
    recorded = json.dumps([c.params for c in api.calls])
    assert BOT_TOKEN not in recorded and SIGNING_SECRET not in recorded


def summaries(api: FakeSlackApi, ts: str) -> list[str]:
    """Summary texts posted into the thread of `ts` (with or without a contact sheet)."""
    texts = [
        str(c.params.get("initial_comment") or c.params.get("text") or "")
        for c in api.of("files.completeUploadExternal") + api.of("chat.postMessage")
        if c.params.get("thread_ts") == ts
    ]
    return [t for t in texts if " Campaign " in f" {t}"]


def thread_posts(api: FakeSlackApi, ts: str) -> list[Call]:
    """Threaded posts of `ts` in arrival order (products and summary)."""
    posts = api.of("files.completeUploadExternal") + api.of("chat.postMessage")
    posts = [c for c in posts if c.params.get("thread_ts") == ts and not is_buttons_post(c)]
    return sorted(posts, key=lambda c: c.at)


async def test_acks_fast_while_busy_and_updates_are_coalesced(make_service: Any) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    interval = 0.4
    async with slack_harness(service, update_interval_s=interval) as slack:
        api = slack.api
        hold = api.hold("chat.update")  # the first status edit (of "cats") stays in flight
        began = time.monotonic()
        await slack.command("cats products:4")
        await gen.wait_started(4)  # four images running, held by their gates
        await asyncio.wait_for(hold.held.wait(), 60)
        acks = [
            await slack.command("dogs products:1"),
            await slack.command("status"),
            await slack.command("help"),
            await slack.command("cats products:0"),
        ]
        assert [r.status for r in acks] == [200] * 4
        assert max(r.seconds for r in acks) < 3.0  # Slack's hard limit, with a busy bot
        assert "Estimate: 1 steps" in acks[0].body["text"]
        assert "/campaign" in acks[2].body["text"] and "out of range" in acks[3].body["text"]
        await api.wait_for(lambda: len(api.of("response_url")) == 1)  # the status answer
        gen.open_all = True
        gen.open(*[(i, "image") for i in range(4)])  # a burst of events at once
        ts = await parent_ts(api)
        cats = next(c for c in await service.history(5) if c.request.theme == "cats")
        assert (await service.wait(cats.id)).status is CampaignStatus.SUCCEEDED
        # 4 starts, 4 reports, 4 finishes, 4 product ends, 1 campaign end: all while the
        # first edit was in flight
        cats_edits = [c for c in api.of("chat.update") if c.params["ts"] == ts]
        assert cats_edits == [] and not summaries(api, ts)  # its summary waits for the edit
        hold.release.set()
        await api.wait_for(lambda: bool(summaries(api, ts)))
        dogs = next(c for c in await service.history(5) if c.request.theme == "dogs")
        await service.wait(dogs.id)
        await api.wait_for(lambda: len(summaries(api, dogs.origin.ts)) == 1)
        await slack.settle()  # the contact sheets are shown on the parents
        ended = time.monotonic()
    updates = [c for c in api.of("chat.update") if c.params["ts"] == ts]
    assert len(updates) == 3  # the held edit, then one edit with everything that happened since,
    assert "slack_file" in block_text(updates[-1])  # then the uploaded contact sheet
    assert "succeeded" in block_text(updates[-1])  # the final state always lands
    assert "4/4 steps" in block_text(updates[-1])
    for parent in (ts, dogs.origin.ts):  # edits of one message start `interval` apart at least
        edits = [c for c in api.of("chat.update") if c.params["ts"] == parent]
        assert 1 <= len(edits) <= (ended - began) / interval + 1
    assert len([c for c in thread_posts(api, ts) if "Campaign" not in str(c.params)]) == 4


async def test_buttons_work_for_requester_and_admin_only(make_service: Any) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    async with slack_harness(service, admins=frozenset({"UADMIN"})) as slack:
        api = slack.api
        await slack.command("cats products:2", user="U1")
        await gen.wait_started(2)
        campaign = (await service.history(1))[0]
        gen.open((0, "image"))
        ts = await parent_ts(api)
        await api.wait_for(lambda: len(thread_posts(api, ts)) == 1)  # product 1 is posted

        stranger = await slack.press("campaign_cancel", campaign.id, "U2")
        assert stranger.status == 200
        await api.wait_for(lambda: len(api.of("chat.postEphemeral")) == 1)
        refusal = api.of("chat.postEphemeral")[0].params
        assert refusal["user"] == "U2" and refusal["channel"] == "C1"
        assert "Only <@U1> or a bot admin can cancel" in refusal["text"]
        assert (await service.get(campaign.id)).status is CampaignStatus.RUNNING

        await slack.press("campaign_cancel", campaign.id, "U1")
        await api.wait_for(lambda: len(summaries(api, ts)) == 1)
        assert (await service.get(campaign.id)).status is CampaignStatus.CANCELED
        final = block_text(api.of("chat.update")[-1])
        assert "canceled" in final and "campaign_retry" in final and "campaign_cancel" not in final

        await slack.press("campaign_retry", campaign.id, "U2")
        await api.wait_for(lambda: len(api.of("chat.postEphemeral")) == 2)
        assert "can retry" in api.of("chat.postEphemeral")[1].params["text"]

        gen.open_all = True
        gen.open((1, "image"))
        await slack.press("campaign_retry", campaign.id, "UADMIN")
        await api.wait_for(lambda: len(summaries(api, ts)) == 2)
        await slack.settle()
    assert (await service.get(campaign.id)).status is CampaignStatus.SUCCEEDED
    assert len(api.of("chat.postEphemeral")) == 2  # requester and admin got no refusal
    posts = [str(c.params) for c in thread_posts(api, ts)]
    assert [p for p in posts if "1. " in p and "Campaign" not in p][:1] == posts[:1]
    retried = posts[
        posts.index(next(p for p in posts if "canceled" in p and "Campaign" in p)) + 1 :
    ]
    assert len(retried) == 2 and "2. " in retried[0] and "✅" in retried[0]  # only the redone one
    assert "succeeded" in block_text(api.of("chat.update")[-1])
    assert all(c.params["ts"] == ts for c in api.of("chat.update"))  # same parent message


@pytest.mark.parametrize("case", ["bad", "missing", "stale"])
async def test_unsigned_requests_get_401_and_do_nothing(make_service: Any, case: str) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    async with slack_harness(service) as slack:
        form = slack.command_form("cats products:2")
        body = urllib.parse.urlencode(form)
        headers = {
            "bad": signed_headers(body, secret="not-the-secret"),
            "missing": {"Content-Type": "application/x-www-form-urlencoded"},
            "stale": signed_headers(body, at=int(time.time()) - 6 * 60),
        }[case]
        reply = await slack.post(form, headers)
        await slack.settle()
        assert reply.status == 401
        assert slack.api.calls == []
        assert await service.history(5) == []
        assert gen.calls == []
        good = await slack.post(form)  # the same request, signed, is accepted
        assert good.status == 200


async def test_rate_limited_update_is_retried_after_retry_after(make_service: Any) -> None:
    service = make_service(GatedGenerator(open_all=True))
    async with slack_harness(service) as slack:
        api = slack.api
        api.rate_limit("chat.update", retry_after=1)
        await slack.command("cats products:2")
        await api.wait_for(lambda: bool(summaries(api, posted_parent(api) or "-")))
    limited = api.of("chat.update", status=429)
    assert len(limited) == 1
    retried = [c for c in api.of("chat.update") if c.at > limited[0].at]
    assert retried[0].at - limited[0].at >= 1.0  # Retry-After: 1 was honoured
    assert "succeeded" in block_text(api.of("chat.update")[-1])


@pytest.mark.parametrize(
    ("code", "phrase"),
    [("not_in_channel", "not a member of this channel"), ("channel_not_found", "cannot see")],
)
async def test_channel_errors_are_explained_and_start_nothing(
    make_service: Any, code: str, phrase: str
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    async with slack_harness(service) as slack:
        api = slack.api
        api.fail("chat.postMessage", code)
        reply = await slack.command("cats products:2")
        assert reply.status == 200
        await api.wait_for(lambda: bool(api.of("response_url")))
        await slack.settle()
    answer = api.of("response_url")[0].params
    assert answer["response_type"] == "ephemeral" and phrase in answer["text"]
    assert "Nothing was started" in answer["text"]
    assert await service.history(5) == [] and gen.calls == []
    assert api.of("chat.update") == []


async def test_refused_requests_store_and_start_nothing(make_service: Any) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    lists = {"allowed_channels": frozenset({"C1"}), "allowed_users": frozenset({"U1"})}
    async with slack_harness(service, **lists) as slack:
        elsewhere = await slack.command("cats", channel="C2")
        stranger = await slack.command("cats", user="U3")
        typo = await slack.command("prodcts:3 cats")
        ambiguous = await slack.command("history of jazz")
        await slack.settle()
    assert "not enabled" in elsewhere.body["text"] and "not enabled" in stranger.body["text"]
    assert "did you mean products?" in typo.body["text"]
    assert "/campaign new history of jazz" in ambiguous.body["text"]
    assert all(r.body["response_type"] == "ephemeral" for r in (elsewhere, stranger, typo))
    assert await service.history(5) == [] and gen.calls == []
    assert slack.api.of("chat.postMessage") == []


async def test_subcommands_answer_ephemerally(make_service: Any) -> None:
    gen = GatedGenerator(open_all=True, fail={(1, "image")}, fail_once=True)
    service = make_service(gen)
    async with slack_harness(service) as slack:
        api = slack.api
        await slack.command("cats products:2")
        ts = await parent_ts(api)
        await api.wait_for(lambda: len(summaries(api, ts)) == 1)
        campaign = (await service.history(1))[0]
        assert campaign.status is CampaignStatus.PARTIAL
        asked = [
            ("history", "U1"),
            (f"show {campaign.id}", "U1"),
            ("status", "U1"),
            (f"cancel {campaign.id}", "U1"),
            ("status ffffffff", "U1"),
            (f"retry {campaign.id}", "U2"),
            (f"retry {campaign.id}", "U1"),
        ]
        for text, user in asked:
            assert (await slack.command(text, user=user)).body == {"text": ""}  # empty ack
            await slack.settle()
        await api.wait_for(lambda: len(summaries(api, ts)) == 2)
    answers = [json.dumps(c.params, ensure_ascii=False) for c in api.of("response_url")]
    assert len(answers) == len(asked)
    assert campaign.id in answers[0] and "cats" in answers[0]
    assert "model said no to image 1" in answers[1] and "0-image.txt" in answers[1]
    assert "partial" in answers[2] and "campaign_retry" in answers[2]
    assert "already partial" in answers[3]
    assert "Campaign `ffffffff`: not found or not yours" in answers[4]
    assert "Only <@U1>" in answers[5]
    assert "Retrying" in answers[6]
    assert (await service.get(campaign.id)).status is CampaignStatus.SUCCEEDED


async def test_retry_button_works_after_a_restart(make_service: Any) -> None:
    gen = GatedGenerator()
    async with slack_harness(make_service(gen)) as before:
        await before.command("cats products:2")
        await gen.wait_started(2)
        ts = await parent_ts(before.api)
    assert len(summaries(before.api, ts)) == 1  # shutdown canceled it and said so in the thread
    restarted = make_service(GatedGenerator(open_all=True))  # same database, new process state
    [campaign] = await restarted.history(5)
    assert campaign.status is CampaignStatus.CANCELED
    async with slack_harness(restarted) as after:
        await after.press("campaign_retry", campaign.id, "U1")
        await after.api.wait_for(lambda: len(summaries(after.api, ts)) == 1)
        await after.settle()
    assert (await restarted.get(campaign.id)).status is CampaignStatus.SUCCEEDED
    updates = after.api.of("chat.update")
    assert updates and all(c.params["ts"] == ts and c.params["channel"] == "C1" for c in updates)
    assert after.api.of("chat.postMessage", 200) == [] or all(
        c.params.get("thread_ts") == ts for c in after.api.of("chat.postMessage")
    )  # no new parent message: the stored origin is reused


async def test_a_resumed_campaign_reports_to_its_stored_parent_message(
    offline_service: CampaignService,
) -> None:
    origin = SlackOrigin(channel="C1", ts="1700000000.000100")
    cid = await make_orphan(offline_service.store, origin)
    async with slack_harness(offline_service) as slack:
        slack.front.start_resuming()  # what the server does: only Slack's own orphans
        api = slack.api
        await api.wait_for(lambda: summary_posted(api, origin.ts))
        await slack.settle()
    assert (await offline_service.get(cid)).status is CampaignStatus.SUCCEEDED
    updates = api.of("chat.update")
    assert updates and all(u.params["ts"] == origin.ts for u in updates)
    assert "succeeded" in block_text(updates[-1])
    assert not [c for c in api.of("chat.postMessage") if not c.params.get("thread_ts")]
    completes = api.of("files.completeUploadExternal")
    assert len(completes) == 3  # two products, then the summary
    assert all(c.params["thread_ts"] == origin.ts for c in completes)


def test_slack_resumes_only_its_own_campaigns() -> None:
    resumer = ResumingRecorder()
    front = SlackFrontEnd(resumer, fake_settings("http://127.0.0.1:9"), max_products=20)
    front.start_resuming()  # what the server does once it listens
    assert resumer.asked == [(front.sinks_for_stored, front.owns)]  # the front end decides


async def test_slack_never_takes_over_another_front_ends_orphans(
    offline_service: CampaignService,
) -> None:
    origin = DiscordOrigin(guild="1", channel="2", message="3", thread="3")
    cid = await make_orphan(offline_service.store, origin)  # a crashed Discord bot's campaign
    async with slack_harness(offline_service) as slack:
        front = slack.front
        assert front is not None
        report = await offline_service.resume_orphans(front.sinks_for_stored, accept=front.owns)
        assert report.resumed == [] and [c.id for c in report.skipped] == [cid]
        stored = await offline_service.get(cid)
        assert stored.status is CampaignStatus.RUNNING  # left for the Discord bot
        assert [
            front.owns(replace(stored, origin=o)) for o in (SlackOrigin(), TerminalOrigin())
        ] == [
            True,
            False,  # a terminal run is `resume`'s, not Slack's
        ]
    assert slack.api.of("chat.update") == [] and slack.api.of("chat.postMessage") == []


async def test_allowlists_apply_to_buttons(make_service: Any) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    lists = {"allowed_channels": frozenset({"C1"}), "allowed_users": frozenset({"U1"})}
    async with slack_harness(service, admins=frozenset({"UADMIN"}), **lists) as slack:
        api = slack.api
        await slack.command("cats products:2", user="U1")
        await gen.wait_started(2)
        campaign = (await service.history(1))[0]
        presses = [
            slack.button_form("campaign_cancel", campaign.id, "U2"),  # not an allowed user
            slack.button_form("campaign_retry", campaign.id, "U2"),
            slack.button_form("campaign_cancel", campaign.id, "U1", channel="C2"),  # elsewhere
        ]
        for form in presses:
            assert (await slack.post(form)).status == 200
            await slack.settle()
        refusals = [c.params for c in api.of("chat.postEphemeral")]
        assert [(r["user"], r["channel"]) for r in refusals] == [
            ("U2", "C1"),
            ("U2", "C1"),
            ("U1", "C2"),
        ]
        assert all("not enabled here for you" in r["text"] for r in refusals)
        assert (await service.get(campaign.id)).status is CampaignStatus.RUNNING

        await slack.press("campaign_cancel", campaign.id, "UADMIN")  # admins stay allowed
        await api.wait_for(lambda: len(summaries(api, posted_parent(api))) == 1)
        await slack.settle()
    assert (await service.get(campaign.id)).status is CampaignStatus.CANCELED
    assert len(api.of("chat.postEphemeral")) == 3


async def test_status_and_show_by_id_only_for_requester_admins_or_its_channel(
    make_service: Any,
) -> None:
    service = make_service(GatedGenerator(open_all=True))
    async with slack_harness(service, admins=frozenset({"UADMIN"})) as slack:
        api = slack.api
        await slack.command("cats products:1", user="U1", channel="C1")
        await api.wait_for(lambda: len(summaries(api, posted_parent(api))) == 1)
        campaign = (await service.history(1))[0]
        asked = [
            (f"status {campaign.id}", "U2", "C2"),  # someone else, elsewhere
            (f"show {campaign.id}", "U2", "C2"),
            ("show ffffffff", "U2", "C2"),  # unknown: the very same answer
            (f"show {campaign.id}", "U2", "C1"),  # the campaign's own channel
            (f"status {campaign.id}", "U1", "C2"),  # the requester, anywhere
            (f"show {campaign.id}", "UADMIN", "C3"),  # an admin, anywhere
        ]
        for text, user, channel in asked:
            await slack.command(text, user=user, channel=channel)
            await slack.settle()
        await api.wait_for(lambda: len(api.of("response_url")) == len(asked))
    answers = [c.params for c in api.of("response_url")]
    assert all(a["response_type"] == "ephemeral" for a in answers)
    hidden = [a["text"] for a in answers[:3]]
    assert hidden == [
        f"⚠️ Campaign `{campaign.id}`: not found or not yours.",
        f"⚠️ Campaign `{campaign.id}`: not found or not yours.",
        "⚠️ Campaign `ffffffff`: not found or not yours.",
    ]
    assert all("cats" not in json.dumps(a) for a in answers[:3])  # nothing about it leaks
    assert "cats" in answers[3]["text"] and "0-image.txt" in answers[3]["text"]
    assert "succeeded" in json.dumps(answers[4], ensure_ascii=False)
    assert "cats" in answers[5]["text"]


@pytest.mark.parametrize("base", ["https://files.example.com/data", None])
async def test_a_video_over_the_upload_limit_is_linked_or_named(
    make_service: Any, base: str | None
) -> None:
    service = make_service(GatedGenerator(open_all=True))
    tiny = 1e-6  # MB: about one byte, so every video is too big
    async with slack_harness(service, max_upload_mb=tiny, files_base_url=base) as slack:
        api = slack.api
        await slack.command("cats products:1 videos:yes")
        ts = await parent_ts(api)
        await api.wait_for(lambda: len(summaries(api, ts)) == 1)
        await slack.settle()
    campaign = (await service.history(1))[0]
    product = thread_posts(api, ts)[0].params
    assert len(json.loads(product["files"])) == 1  # the image only
    comment = product["initial_comment"]
    assert "MB is over the 0 MB upload limit" in comment
    if base is None:  # today's text: where the file is on the bot host
        assert (
            f"saved on the bot host at `{campaign.products[0].output(StepName.VIDEO)}`" in comment
        )
    else:
        link = f"<{base}/campaigns/{campaign.id}/0-video.txt|0-video.txt>"
        assert link in comment and "bot host" not in comment


async def test_a_quota_refusal_is_explained_and_starts_nothing(make_service: Any) -> None:
    from core.quotas import QuotaSettings

    gen = GatedGenerator(open_all=True)
    service = make_service(gen, quotas=QuotaSettings(user_daily=1))
    async with slack_harness(service) as slack:
        api = slack.api
        await slack.command("cats products:1")
        first_ts = await parent_ts(api)
        await api.wait_for(lambda: len(summaries(api, first_ts)) == 1)
        await slack.settle()
        calls = list(gen.calls)

        def refusals() -> list[Call]:
            return [c for c in api.of("response_url") if "quota" in str(c.params.get("text"))]

        posted = len(api.of("chat.postMessage"))
        await slack.command("dogs products:1")
        await api.wait_for(lambda: bool(refusals()))
        await slack.settle()
    (refusal,) = refusals()
    assert refusal.params["response_type"] == "ephemeral"  # only the requester sees it
    assert str(refusal.params["text"]).startswith(
        "⚠️ quota: you have started 1 of the 1 campaign allowed per day; resets at 00:00 UTC"
    )
    assert len(api.of("chat.postMessage")) == posted  # no parent message for a refusal
    assert len(await service.history(5)) == 1 and gen.calls == calls


async def test_the_gallery_links_the_summary_and_a_too_big_video(make_service: Any) -> None:
    from urllib.parse import parse_qsl, urlsplit

    from bot.gallery import GallerySettings, valid_until

    secret = "s" * 32
    gallery = GallerySettings(secret=secret, base_url="https://bot.example.com/g")
    service = make_service(GatedGenerator(open_all=True))
    async with slack_harness(service, max_upload_mb=1e-6, gallery=gallery) as slack:
        api = slack.api
        await slack.command("cats products:1 videos:yes")
        ts = await parent_ts(api)
        await api.wait_for(lambda: len(summaries(api, ts)) == 1)
        await slack.settle()
    campaign = (await service.history(1))[0]
    comment = thread_posts(api, ts)[0].params["initial_comment"]
    summary = summaries(api, ts)[0]
    for text, path in (
        (comment, f"/g/files/{campaign.id}/0-video.txt"),
        (summary, f"/g/campaigns/{campaign.id}"),
    ):
        url = text.split("<https://bot.example.com", 1)[1].split("|", 1)[0]
        parts = urlsplit("https://bot.example.com" + url.replace("&amp;", "&"))
        assert parts.path == path
        query = dict(parse_qsl(parts.query))
        signed = parts.path.removeprefix("/g")
        assert valid_until(secret, signed, query, time.time()) is not None  # a working link
    assert "Open in the gallery" in summary


async def test_the_first_status_edit_waits_the_interval_after_the_parent_message(
    make_service: Any,
) -> None:
    interval = 0.3
    service = make_service(GatedGenerator(open_all=True))
    async with slack_harness(service, update_interval_s=interval) as slack:
        await slack.command("cats products:1")
        ts = await parent_ts(slack.api)
        await slack.api.wait_for(lambda: len(summaries(slack.api, ts)) == 1)
        await slack.settle()
    (posted,) = [c for c in slack.api.of("chat.postMessage") if not c.params.get("thread_ts")]
    edits = [c for c in slack.api.of("chat.update") if c.params["ts"] == ts]
    assert edits and edits[0].at - posted.at >= interval  # not 0.6 s early, as it once was
    assert all(b.at - a.at >= interval for a, b in itertools.pairwise(edits))
    assert "0/0 steps" not in block_text(edits[0])


async def test_a_retry_posts_only_the_products_that_ran_again(make_service: Any) -> None:
    gen = GatedGenerator(open_all=True, fail={(1, "image")}, fail_once=True)
    service = make_service(gen)
    async with slack_harness(service) as slack:
        await slack.command("cats products:3", user="U1")
        ts = await parent_ts(slack.api)
        await slack.api.wait_for(lambda: len(summaries(slack.api, ts)) == 1)
        [campaign] = await service.history(1)
        assert campaign.status is CampaignStatus.PARTIAL
        assert len(thread_posts(slack.api, ts)) == 4  # three products, then the summary
        await slack.press("campaign_retry", campaign.id, "U1")
        await slack.api.wait_for(lambda: len(summaries(slack.api, ts)) == 2)
        await slack.settle()
    assert (await service.get(campaign.id)).status is CampaignStatus.SUCCEEDED
    again = [str(c.params) for c in thread_posts(slack.api, ts)[4:]]
    assert len(again) == 2 and "2. " in again[0] and "✅" in again[0]  # only the failed one
    assert "Campaign" in again[1] and "succeeded" in again[1]
