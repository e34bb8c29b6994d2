"""The Discord front end end to end: a real discord.py commands.Bot, started with
bot.start(token), against the fake REST + gateway server in tests/fakes/discord_api.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.discord_ui.app import CampaignBot
from bot.discord_ui.settings import DiscordSettings
from bot.settings import AppSettings
from core.model import CampaignStatus, DiscordOrigin, SlackOrigin, StepName, TerminalOrigin
from core.scheduler import Limits
from core.settings import CoreSettings
from tests.fakes import GatedGenerator, make_orphan
from tests.fakes.discord_api import FakeDiscord, Fault, Hold, rate_limited, snowflake
from tests.fakes.discord_harness import (  # bot_starter and fake_server register fixtures
    EPHEMERAL,
    MAX_PRODUCTS,
    TOKEN,
    at_least,
    bot_starter,  # noqa: F401
    callback,
    caption,
    custom_ids,
    fake_server,  # noqa: F401
    original_edits,
    started,
    status_path,
    stop,
    thread_posts,
    title,
)
from tests.fakes.discord_payloads import MANAGE_GUILD
from tests.fakes.service import ResumingRecorder, ServiceWith


async def test_commands_are_synced_to_the_guild(fake: FakeDiscord, make_service, start_bot) -> None:
    await start_bot(make_service(GatedGenerator(open_all=True)))
    (sync,) = fake.find("PUT", rf"/applications/{fake.app_id}/guilds/{fake.guild_id}/commands")
    (campaign,) = sync.json
    assert campaign["name"] == "campaign"
    subs = {o["name"]: o for o in campaign["options"]}
    assert list(subs) == ["new", "status", "history", "show", "cancel", "retry", "animate", "help"]
    new = {o["name"]: o for o in subs["new"]["options"]}
    assert list(new) == ["theme", "products", "videos", "style", "audience", "request"]
    assert (new["products"]["type"], new["products"]["min_value"]) == (4, 1)
    assert new["products"]["max_value"] == MAX_PRODUCTS  # the configured maximum
    assert new["videos"]["type"] == 5
    styles = [c["value"] for c in new["style"]["choices"]]
    assert styles == ["photo", "minimal", "vintage", "neon", "watercolor"]
    assert not any(o.get("required") for o in new.values())  # theme or request
    for name in ("show", "cancel", "retry"):
        (option,) = subs[name]["options"]
        assert option["name"] == "id" and option["autocomplete"] is True
    assert fake.identifies[0]["token"] == TOKEN and fake.identifies[0]["intents"] == 1  # GUILDS
    assert fake.heartbeats >= 1
    assert campaign["dm_permission"] is False  # guild_only: offered in servers, never in DMs


async def test_commands_are_not_synced_unless_asked(fake: FakeDiscord, make_service, start_bot):
    await start_bot(make_service(GatedGenerator(open_all=True)), sync=False)
    assert fake.identifies  # connected and ready
    assert not fake.find("PUT", r"/applications/")


async def test_new_campaign_done_when(
    fake: FakeDiscord, start_bot, bot_main, tmp_path: Path
) -> None:
    settings = CoreSettings(
        data_dir=tmp_path / "data",
        executor="local",
        generator="offline",
        video_seconds=0.3,
        limits=Limits(text=2, image=4, video=3, cpu=2),
    )
    async with bot_main.build(AppSettings.of(core=settings)) as app:
        service = app.service
        await start_bot(service)
        user = snowflake()
        options = {"theme": "retro cats", "products": 3, "videos": True}
        limit = 300 * 1024  # this guild's upload limit: some product images are bigger
        payload = fake.command("new", user, options, size_limit=limit)
        sent = await fake.interact(payload)
        (defer,) = await fake.wait_for(lambda: callback(fake, payload))
        assert defer.json == {"type": 5, "data": {"flags": EPHEMERAL}}  # deferred, ephemeral
        logging.getLogger(__name__).info(
            "defer answered %.3f s after INTERACTION_CREATE", defer.at - sent
        )
        assert defer.at - sent < 3.0  # Discord's deadline for the first response

        campaign = await service.wait((await started(fake, service)).id)
        assert campaign.status is CampaignStatus.SUCCEEDED
        thread_id = campaign.origin.thread
        posts = await fake.wait_for(lambda: at_least(fake, thread_id, 5))

    (status,) = fake.find("POST", rf"/channels/{fake.channel_id}/messages")
    assert status.at > defer.at and status.auth == f"Bot {TOKEN}"  # the bot token, not the webhook
    assert "retro cats" in title(status)
    estimate = status.json["embeds"][0]["description"]
    assert "Estimate: 6 steps" in estimate and "$" not in estimate  # offline: it costs nothing
    (thread,) = fake.find("POST", rf"/channels/{fake.channel_id}/messages/\d+/threads")
    assert thread.path.endswith(f"/messages/{campaign.origin.message}/threads")
    assert thread.json["name"] == "Campaign: retro cats"
    assert campaign.requester == f"discord:{user}"
    assert campaign.origin.channel == fake.channel_id and campaign.origin.platform == "discord"

    products, summary, reel_post = posts[:3], posts[3], posts[4]
    for post in products:
        image, video = post.files
        index = int(caption(post)[2]) - 1
        on_disk = Path(campaign.products[index].output(StepName.IMAGE) or "")
        shrunk = on_disk.stat().st_size > limit  # then a smaller JPEG is attached instead
        assert image.filename == on_disk.with_suffix(".jpg" if shrunk else ".png").name
        assert video.filename == f"p0{index + 1}-video.mp4"
        assert all(0 < f.size <= limit for f in post.files)
        assert caption(post).startswith("✅ ")
        assert post.json["embeds"][0]["image"]["url"] == f"attachment://{image.filename}"
    assert sorted(caption(p)[2] for p in products) == ["1", "2", "3"]
    sheet, timeline = [f.filename for f in summary.files]  # within the upload limit
    assert sheet == "contact-sheet.png" and timeline.startswith("timeline.")
    assert summary.json["embeds"][1]["image"]["url"] == f"attachment://{timeline}"
    # the reel follows the summary in a post of its own, attached (or linked when too big)
    assert reel_post.json["content"].startswith(f"Reel of campaign {campaign.id}")
    reel = [f.filename for f in reel_post.files]
    assert reel == ["reel.mp4"] or "reel.mp4" in reel_post.json["content"]
    assert "succeeded" in summary.json["embeds"][0]["description"]
    assert "cost $0.000" in summary.json["embeds"][0]["description"]

    edits = fake.find("PATCH", rf"/channels/{fake.channel_id}/messages/{campaign.origin.message}")
    assert "succeeded" in title(edits[-1]) and edits[-1].json["components"] == []
    assert any("campaign:cancel:" + campaign.id in str(e.json["components"]) for e in edits)
    (reply,) = fake.find("PATCH", r"/webhooks/\d+/[^/]+/messages/@original")
    assert campaign.id in reply.json["content"] and thread_id in reply.json["content"]
    assert reply.json["content"].endswith("\nEstimate: 6 steps.")


async def test_the_estimate_is_shown_before_the_campaign_starts(
    fake, make_service, start_bot
) -> None:
    gen = GatedGenerator()  # nothing finishes: the estimate is all there is to show
    service = make_service(gen)
    await start_bot(service)
    payload = fake.command("new", snowflake(), {"theme": "cats", "products": 2, "videos": True})
    await fake.interact(payload)
    campaign = await started(fake, service)
    (status,) = fake.find("POST", rf"/channels/{fake.channel_id}/messages")
    assert status.json["embeds"][0]["description"] == (
        "planning products…\nEstimate: 4 steps, about $0.040"  # 2 x (image + video) at $0.01
    )
    (reply,) = original_edits(fake, payload)
    assert reply.json["content"].startswith(f"✅ Campaign `{campaign.id}` started: ")
    assert reply.json["content"].endswith("\nEstimate: 4 steps, about $0.040.")
    await gen.wait_started(2)  # and the campaign did start


async def test_validation_error_is_ephemeral_and_stores_nothing(
    fake, make_service, start_bot
) -> None:
    service = make_service(GatedGenerator(open_all=True))
    await start_bot(service)
    cases = [
        ({"request": "retro cats prodcts:3"}, "did you mean products?"),
        ({"theme": "cats", "products": MAX_PRODUCTS + 1}, f"allowed: 1-{MAX_PRODUCTS}"),
        ({"theme": "cats", "request": "dogs"}, "cannot be combined with theme"),
        ({}, "theme: is missing"),
    ]
    for options, expected in cases:
        payload = fake.command("new", snowflake(), options)
        await fake.interact(payload)
        (answer,) = await fake.wait_for(lambda p=payload: callback(fake, p))
        assert answer.json["type"] == 4 and answer.json["data"]["flags"] == EPHEMERAL
        assert expected in answer.json["data"]["content"]
    assert list(await service.history(10)) == []
    assert fake.find("POST", r"/channels/.*") == []  # no status message, no thread


async def test_status_edits_are_coalesced(fake, make_service, start_bot) -> None:
    gen = GatedGenerator()  # nothing finishes before the first status edit is held
    service = make_service(gen)
    await start_bot(service)
    hold = Hold("PATCH", status_path(fake))  # the first status edit stays in flight
    fake.holds.append(hold)
    await fake.interact(
        fake.command("new", snowflake(), {"theme": "cats", "products": 3, "videos": True})
    )
    await asyncio.wait_for(hold.held.wait(), 30)
    gen.open(*((i, step) for i in range(3) for step in ("image", "video")))
    campaign = await service.wait((await started(fake, service)).id)
    # 3 products x 2 steps: 6 starts, 6 reports, 6 finishes, 3 product ends, 1 campaign end
    hold.release.set()
    thread = campaign.origin.thread
    await fake.wait_for(lambda: at_least(fake, thread, 4))
    path = status_path(fake)
    await fake.wait_for(lambda: any("succeeded" in title(e) for e in fake.find("PATCH", path)))
    edits = fake.find("PATCH", path)
    assert len(edits) == 2  # the held one, then one edit with everything that happened meanwhile
    assert "succeeded" in title(edits[-1])
    assert "6/6 steps" in edits[-1].json["embeds"][0]["fields"][0]["value"]


async def test_a_429_on_a_status_edit_is_retried(fake, make_service, start_bot) -> None:
    service = make_service(GatedGenerator(open_all=True))
    await start_bot(service)
    fake.faults.append(rate_limited("PATCH", status_path(fake), retry_after=0.05))
    await fake.interact(fake.command("new", snowflake(), {"theme": "cats", "products": 2}))
    campaign = await service.wait((await started(fake, service)).id)
    await fake.wait_for(lambda: at_least(fake, campaign.origin.thread, 3))
    edits = fake.find("PATCH", status_path(fake))
    assert edits[0].status == 429 and edits[1].status == 200  # discord.py waited and retried
    assert edits[1].json == edits[0].json
    assert "succeeded" in title(edits[-1]) and "Problems" not in str(edits[-1].json)


async def test_an_expired_interaction_token_does_not_stop_progress(
    fake, make_service, start_bot, caplog
) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    await start_bot(service)
    fake.expire_webhooks = True  # every interaction-token route now fails, as after 15 minutes
    await fake.interact(fake.command("new", snowflake(), {"theme": "cats", "products": 2}))
    reply = await fake.wait_for(lambda: fake.find("PATCH", r"/webhooks/.*", status=401))
    assert reply  # the "started" reply could not be delivered ...
    gen.open_all = True
    for key in ((0, "image"), (1, "image")):
        gen.open(key)
    campaign = await service.wait((await started(fake, service)).id)
    posts = await fake.wait_for(lambda: at_least(fake, campaign.origin.thread, 3))
    assert campaign.status is CampaignStatus.SUCCEEDED  # ... and progress went on regardless
    assert [caption(p)[:3] for p in posts[:2]] in (["✅ 1", "✅ 2"], ["✅ 2", "✅ 1"])
    assert "succeeded" in title(fake.find("PATCH", status_path(fake))[-1])
    assert "interaction expired" in caplog.text


async def test_buttons_work_on_a_freshly_started_bot(fake, make_service, start_bot) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    old = await start_bot(service)
    requester, stranger, manager = snowflake(), snowflake(), snowflake()
    await fake.interact(fake.command("new", requester, {"theme": "cats", "products": 2}))
    await gen.wait_started(2)
    campaign = await started(fake, service)
    message_id = campaign.origin.message
    cancel_id = f"campaign:cancel:{campaign.id}"
    await fake.wait_for(lambda: cancel_id in custom_ids(fake.messages[message_id]))
    await stop(old)  # the message was sent by a bot that is gone now

    await start_bot(service)
    refused = fake.button(message_id, cancel_id, stranger)
    await fake.interact(refused)
    (answer,) = await fake.wait_for(lambda: callback(fake, refused))
    assert answer.json["data"]["flags"] == EPHEMERAL
    assert (
        answer.json["data"]["content"]
        == f"Only <@{requester}> or members with Manage Server can do that."
    )
    assert (await service.get(campaign.id)).status is CampaignStatus.RUNNING

    press = fake.button(message_id, cancel_id, manager, permissions=MANAGE_GUILD)
    await fake.interact(press)
    await fake.wait_for(
        lambda: f"campaign:retry:{campaign.id}" in custom_ids(fake.messages[message_id])
    )
    assert (await service.get(campaign.id)).status is CampaignStatus.CANCELED
    assert "canceled" in fake.messages[message_id]["embeds"][0]["title"]

    gen.open_all = True  # Retry re-attaches to the stored status message and thread
    retry = fake.button(message_id, f"campaign:retry:{campaign.id}", requester)
    await fake.interact(retry)
    (reply,) = await fake.wait_for(lambda: original_edits(fake, retry))
    assert reply.json["content"].startswith(f"🔁 Retrying campaign `{campaign.id}`")
    done = await service.wait(campaign.id)
    assert done.status is CampaignStatus.SUCCEEDED
    posts = await fake.wait_for(lambda: at_least(fake, campaign.origin.thread, 3))
    assert "succeeded" in posts[-1].json["embeds"][0]["title"]
    await fake.wait_for(lambda: "succeeded" in fake.messages[message_id]["embeds"][0]["title"])
    assert custom_ids(fake.messages[message_id]) == []


async def test_dms_allowlists_and_missing_permissions(fake, make_service, start_bot) -> None:
    service = make_service(GatedGenerator(open_all=True))
    other_channel = snowflake()
    await start_bot(
        service,
        allowed_channel_ids=frozenset({int(fake.channel_id)}),
        allowed_role_ids=frozenset({int(fake.role_id)}),
    )
    cases = [
        (fake.command("new", snowflake(), {"theme": "cats"}, dm=True), "not in direct messages"),
        (
            fake.command(
                "new",
                snowflake(),
                {"theme": "cats"},
                channel_id=other_channel,
                roles=(fake.role_id,),
            ),
            f"Try <#{fake.channel_id}>",
        ),
        (
            fake.command("new", snowflake(), {"theme": "cats"}),
            f"roles to run campaigns: <@&{fake.role_id}>",
        ),
    ]
    for payload, expected in cases:
        await fake.interact(payload)
        (answer,) = await fake.wait_for(lambda p=payload: callback(fake, p))
        assert (
            answer.json["data"]["flags"] == EPHEMERAL and expected in answer.json["data"]["content"]
        )

    forbidden = Fault(
        "POST",
        rf"/channels/{fake.channel_id}/messages",
        403,
        {"message": "Missing Permissions", "code": 50013},
    )
    fake.faults.append(forbidden)
    allowed = fake.command("new", snowflake(), {"theme": "cats"}, roles=(fake.role_id,))
    await fake.interact(allowed)
    (reply,) = await fake.wait_for(lambda: fake.find("PATCH", r"/webhooks/.*"))
    assert forbidden.times == 0
    assert (
        "missing a permission" in reply.json["content"]
        and "Create Public Threads" in reply.json["content"]
    )
    assert list(await service.history(10)) == []  # nothing stored, nothing started


async def test_a_freshly_started_bot_resumes_orphans_into_their_thread(
    fake, make_service, start_bot, store
) -> None:
    old_service = make_service(GatedGenerator())  # its campaign never finishes
    old = await start_bot(old_service)
    await fake.interact(fake.command("new", snowflake(), {"theme": "cats", "products": 1}))
    origin = (await started(fake, old_service)).origin
    await stop(old)
    posts_before = len(fake.find("POST", rf"/channels/{origin.thread}/messages", status=200))
    cid = await make_orphan(store, origin)  # what a crashed bot leaves behind

    service = make_service(GatedGenerator(open_all=True))
    await start_bot(service)  # setup_hook starts taking over orphans
    posts = await fake.wait_for(lambda: at_least(fake, origin.thread, posts_before + 3))
    assert "resumed cats" in str(posts[-1].json)  # the summary of the resumed campaign
    assert (await service.get(cid)).status is CampaignStatus.SUCCEEDED
    message = fake.messages[origin.message]
    await fake.wait_for(lambda: "succeeded" in message["embeds"][0]["title"])


async def test_a_bot_resumes_only_its_own_campaigns() -> None:
    resumer = ResumingRecorder()
    config = DiscordSettings(token=TOKEN)
    bot = CampaignBot(resumer, config, max_products=MAX_PRODUCTS, progress_interval_s=0.05)
    async with bot:
        await bot.setup_hook()  # what login does: the resumer starts here
    assert resumer.asked == [(bot.sinks_for_stored, bot.owns)]  # the bot decides


async def test_a_bot_never_takes_over_another_front_ends_orphans(
    fake, make_service, start_bot, store
) -> None:
    cid = await make_orphan(store, SlackOrigin(channel="C1", ts="1.2"))
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    bot = await start_bot(service)  # setup_hook starts taking over orphans
    report = await service.resume_orphans(bot.sinks_for_stored, accept=bot.owns)
    assert report.resumed == [] and [c.id for c in report.skipped] == [cid]
    stored = await service.get(cid)
    assert stored.status is CampaignStatus.RUNNING and gen.calls == []  # left for Slack
    assert bot.owns(replace(stored, origin=DiscordOrigin()))
    assert not bot.owns(replace(stored, origin=TerminalOrigin()))  # a terminal run is `resume`'s


@pytest.mark.parametrize("thread_delete", ["works", "forbidden"])
async def test_a_failed_submit_leaves_no_message_or_thread(
    fake, make_service, start_bot, caplog, thread_delete: str
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen, max_products=1)  # the bot allows more: submit refuses
    real_estimate = service.estimate

    async def passes(request: Any, **_where: Any) -> Any:  # only submit finds the problem
        return real_estimate(request)

    await start_bot(ServiceWith(service, check=passes))
    if thread_delete == "forbidden":
        fake.faults.append(
            Fault(
                "DELETE", r"/channels/\d+", 403, {"message": "Missing Permissions", "code": 50013}
            )
        )
    payload = fake.command("new", snowflake(), {"theme": "cats", "products": 2})
    await fake.interact(payload)
    (reply,) = await fake.wait_for(lambda: original_edits(fake, payload))
    assert reply.json["content"].startswith("❌ products: 2 is too many")
    (thread,) = fake.find("POST", rf"/channels/{fake.channel_id}/messages/\d+/threads")
    message_id = thread.path.split("/")[-2]  # /channels/<channel>/messages/<id>/threads
    thread_id = message_id  # a thread started from a message has the message's id
    (removed_thread,) = fake.find("DELETE", rf"/channels/{thread_id}")
    (removed_status,) = fake.find("DELETE", rf"/channels/{fake.channel_id}/messages/{message_id}")
    assert removed_status.status == 204  # the status message goes even if the thread cannot
    if thread_delete == "forbidden":
        assert (
            removed_thread.status == 403 and f"could not remove thread {thread_id}" in caplog.text
        )
    else:
        assert removed_thread.status == 204
    assert removed_thread.at < reply.at and removed_status.at < reply.at
    assert list(await service.history(5)) == [] and gen.calls == []


async def test_a_quota_refusal_is_ephemeral_and_starts_nothing(
    fake, make_service, start_bot
) -> None:
    from core.quotas import QuotaSettings

    gen = GatedGenerator(open_all=True)
    service = make_service(gen, quotas=QuotaSettings(user_daily=1))
    await start_bot(service)
    user = snowflake()
    first = fake.command("new", user, {"theme": "cats", "products": 1})
    await fake.interact(first)
    campaign = await service.wait((await started(fake, service)).id)
    calls = list(gen.calls)
    threads = len(fake.find("POST", rf"/channels/{fake.channel_id}/messages/\d+/threads"))
    second = fake.command("new", user, {"theme": "dogs", "products": 1})
    await fake.interact(second)
    (reply,) = await fake.wait_for(lambda: original_edits(fake, second))
    assert reply.json["content"].startswith(
        "❌ quota: you have started 1 of the 1 campaign allowed per day; resets at 00:00 UTC"
    )
    (defer,) = callback(fake, second)
    assert defer.json["data"]["flags"] == EPHEMERAL  # the answer is the deferred, ephemeral one
    # refused before any status message or thread was opened for it
    assert len(fake.find("POST", rf"/channels/{fake.channel_id}/messages/\d+/threads")) == threads
    assert [c.id for c in await service.history(5)] == [campaign.id] and gen.calls == calls


async def test_the_first_status_edit_waits_the_interval_after_the_status_message(
    fake, make_service, start_bot
) -> None:
    interval = 0.3
    service = make_service(GatedGenerator(open_all=True))
    await start_bot(service, progress_interval_s=interval)
    await fake.interact(fake.command("new", snowflake(), {"theme": "cats", "products": 1}))
    campaign = await service.wait((await started(fake, service)).id)
    await fake.wait_for(lambda: at_least(fake, campaign.origin.thread, 2))
    (posted,) = fake.find("POST", rf"/channels/{fake.channel_id}/messages")
    edits = fake.find("PATCH", status_path(fake))
    assert edits and edits[0].at - posted.at >= interval  # not right after the message
    assert all(b.at - a.at >= interval for a, b in itertools.pairwise(edits))


async def test_a_retry_posts_only_the_products_that_ran_again(
    fake, make_service, start_bot
) -> None:
    gen = GatedGenerator(open_all=True, fail={(1, "image")}, fail_once=True)
    service = make_service(gen)
    await start_bot(service)
    requester = snowflake()
    await fake.interact(fake.command("new", requester, {"theme": "cats", "products": 3}))
    campaign = await service.wait((await started(fake, service)).id)
    assert campaign.status is CampaignStatus.PARTIAL
    thread, message_id = campaign.origin.thread, campaign.origin.message
    await fake.wait_for(lambda: at_least(fake, thread, 4))  # three products, then the summary

    retry = fake.button(message_id, f"campaign:retry:{campaign.id}", requester)
    await fake.interact(retry)
    (reply,) = await fake.wait_for(lambda: original_edits(fake, retry))
    assert reply.json["content"].startswith(f"🔁 Retrying campaign `{campaign.id}`")
    assert (await service.wait(campaign.id)).status is CampaignStatus.SUCCEEDED
    posts = await fake.wait_for(lambda: at_least(fake, thread, 6))
    await fake.wait_for(lambda: "succeeded" in fake.messages[message_id]["embeds"][0]["title"])
    again = posts[4:]
    assert len(again) == 2 and len(thread_posts(fake, thread)) == 6
    assert caption(again[0]).startswith("✅ 2. ")  # only the product that failed
    assert "succeeded" in again[1].json["embeds"][0]["title"]
