"""Per-product Reroll / Animate buttons and `/campaign animate` through a real discord.py
commands.Bot against the fake Discord (REST + gateway, attachments served on 127.0.0.1).
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from bot.settings import AppSettings
from core.model import Action, Campaign, CampaignStatus, StepName
from core.pictures import Pictures, ReelFns
from core.service import CampaignService
from tests.fakes import GatedGenerator, big_join, fake_card, fake_clip, fake_sheet
from tests.fakes.discord_api import Call, FakeDiscord, snowflake
from tests.fakes.discord_harness import (  # bot_starter and fake_server register fixtures
    EPHEMERAL,
    at_least,
    bot_starter,  # noqa: F401
    callback,
    caption,
    custom_ids,
    fake_server,  # noqa: F401
    original_edits,
    started,
    stop,
    thread_posts,
)
from tests.fakes.discord_payloads import MANAGE_GUILD
from tests.fakes.service import ServiceWith

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
GIF = b"GIF89a" + b"\0" * 64


def message_with(fake: FakeDiscord, custom_id: str) -> str:
    """The id of the (one) message that carries a button with this custom_id."""
    (found,) = [mid for mid, m in fake.messages.items() if custom_id in custom_ids(m)]
    return found


def labels(fake: FakeDiscord, message_id: str) -> dict[str, str]:
    message = fake.messages[message_id]
    return {c["custom_id"]: c["label"] for row in message["components"] for c in row["components"]}


def image_url(post: Call) -> str:
    return str(post.json["embeds"][0]["image"]["url"])


async def finished(fake: FakeDiscord, service: CampaignService, posts: int) -> Campaign:
    """The one campaign, finished, once its thread has `posts` posts."""
    campaign = await service.wait((await started(fake, service)).id)
    await fake.wait_for(lambda: at_least(fake, campaign.origin.thread, posts))
    return campaign


async def press(fake: FakeDiscord, custom_id: str, user: str, **extra: Any) -> dict[str, Any]:
    """Press the button with this custom_id on the message that shows it."""
    payload = fake.button(message_with(fake, custom_id), custom_id, user, **extra)
    await fake.interact(payload)
    return payload


async def refused(fake: FakeDiscord, payload: dict[str, Any]) -> str:
    """The ephemeral answer of an interaction answered at once (no defer)."""
    (answer,) = await fake.wait_for(lambda: callback(fake, payload))
    assert answer.json["type"] == 4 and answer.json["data"]["flags"] == EPHEMERAL
    return str(answer.json["data"]["content"])


async def replied(fake: FakeDiscord, payload: dict[str, Any]) -> str:
    """The answer of a deferred (ephemeral) interaction."""
    (reply,) = await fake.wait_for(lambda: original_edits(fake, payload))
    (defer,) = callback(fake, payload)
    assert defer.json == {"type": 5, "data": {"flags": EPHEMERAL}}
    return str(reply.json["content"])


async def test_reroll_and_animate_presses_post_new_attempts_into_the_thread(
    fake: FakeDiscord, make_service: Any, start_bot: Any
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    await start_bot(service)
    requester = snowflake()
    await fake.interact(fake.command("new", requester, {"theme": "cats", "products": 2}))
    campaign = await finished(fake, service, 3)  # two products, then the summary
    thread = campaign.origin.thread
    first_posts = thread_posts(fake, thread)
    for number in (1, 2):
        reroll_id = f"campaign:reroll:{campaign.id}:{number}"
        shown = labels(fake, message_with(fake, reroll_id))
        assert shown[reroll_id].startswith("Reroll · $0.010")  # one image at $0.01
        assert shown[f"campaign:animate:{campaign.id}:{number}"].startswith("Animate · $0.010")
    for post in first_posts[:2]:
        (image,) = post.files
        assert image_url(post) == f"attachment://{image.filename}"  # the image in the embed
        assert post.json.get("content") in (None, "")

    reroll_2 = f"campaign:reroll:{campaign.id}:2"
    payload = fake.button(message_with(fake, reroll_2), reroll_2, requester)
    sent = await fake.interact(payload)
    reply = await replied(fake, payload)
    (defer,) = callback(fake, payload)
    assert defer.at - sent < 3.0  # acked within Discord's deadline
    assert (
        reply
        == f"🎲 Rerolling product 2 of campaign `{campaign.id}`: https://discord.com/channels/{fake.guild_id}/{thread}"
    )
    rerolled = await service.wait(campaign.id)
    assert len(rerolled.products) == 3
    attempt = rerolled.products[2]
    assert (attempt.attempt_of, attempt.action) == (1, Action.REROLL)
    posts = await fake.wait_for(lambda: at_least(fake, thread, 5))
    new_post, summary = posts[3], posts[4]
    assert caption(new_post).startswith(f"✅ 3. {attempt.plan.name} (reroll of 2)")
    (image,) = new_post.files
    assert image.filename == Path(attempt.output(StepName.IMAGE) or "").name
    assert image_url(new_post) == f"attachment://{image.filename}"
    assert f"campaign:reroll:{campaign.id}:3" in json.dumps(new_post.json["components"])
    assert "succeeded" in summary.json["embeds"][0]["title"]

    payload = await press(fake, f"campaign:animate:{campaign.id}:3", requester)
    assert (await replied(fake, payload)).startswith(
        f"🎬 Animating product 3 of campaign `{campaign.id}`: "
    )
    animated = await service.wait(campaign.id)
    assert len(animated.products) == 4
    attempt = animated.products[3]
    assert (attempt.attempt_of, attempt.action) == (1, Action.ANIMATE)
    assert (3, "video") in gen.calls and (3, "image") not in gen.calls  # the image is reused
    posts = await fake.wait_for(lambda: at_least(fake, thread, 7))
    new_post = posts[5]
    assert caption(new_post).startswith(f"✅ 4. {attempt.plan.name} (animate of 2)")
    image, video = new_post.files
    assert image_url(new_post) == f"attachment://{image.filename}"
    assert video.filename == Path(attempt.output(StepName.VIDEO) or "").name
    assert len(thread_posts(fake, thread)) == 7  # the old products are not posted again


async def test_an_offline_reroll_posts_a_real_image_in_an_embed(
    fake: FakeDiscord, start_bot: Any, bot_main: Any, tmp_path: Path
) -> None:
    from core.scheduler import Limits
    from core.settings import CoreSettings

    settings = CoreSettings(
        data_dir=tmp_path / "data",
        executor="local",
        generator="offline",
        video_seconds=0.3,
        limits=Limits(text=1, image=2, video=1, cpu=1),
    )
    async with bot_main.build(AppSettings.of(core=settings)) as app:
        service = app.service
        await start_bot(service)
        requester = snowflake()
        await fake.interact(fake.command("new", requester, {"theme": "retro cats", "products": 1}))
        campaign = await finished(fake, service, 2)
        payload = await press(fake, f"campaign:reroll:{campaign.id}:1", requester)
        await replied(fake, payload)
        done = await service.wait(campaign.id)
        posts = await fake.wait_for(lambda: at_least(fake, campaign.origin.thread, 4))
    assert done.status is CampaignStatus.SUCCEEDED and len(done.products) == 2
    (image,) = posts[2].files
    assert image.filename == "p02-image.png" and image.data.startswith(b"\x89PNG")
    assert image_url(posts[2]) == "attachment://p02-image.png"
    assert "(reroll of 1)" in caption(posts[2])


async def test_presses_by_others_or_too_early_are_refused_and_change_nothing(
    fake: FakeDiscord, make_service: Any, start_bot: Any
) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    await start_bot(service)
    requester, stranger, manager = snowflake(), snowflake(), snowflake()
    await fake.interact(fake.command("new", requester, {"theme": "cats", "products": 2}))
    campaign = await started(fake, service)
    gen.open((0, "image"))  # product 1 is posted while product 2 still runs
    reroll_1 = f"campaign:reroll:{campaign.id}:1"
    await fake.wait_for(lambda: any(reroll_1 in custom_ids(m) for m in fake.messages.values()))
    early = await press(fake, reroll_1, requester)
    assert await refused(fake, early) == (
        f"❌ campaign {campaign.id} is still running; reroll once it has finished"
    )

    gen.open((1, "image"))
    campaign = await service.wait(campaign.id)
    thread = campaign.origin.thread
    await fake.wait_for(lambda: at_least(fake, thread, 3))
    calls, posts = list(gen.calls), len(thread_posts(fake, thread))
    for custom_id in (reroll_1, f"campaign:animate:{campaign.id}:2"):
        other = await press(fake, custom_id, stranger)
        assert await refused(fake, other) == (
            f"Only <@{requester}> or members with Manage Server can do that."
        )
    assert len((await service.get(campaign.id)).products) == 2
    assert gen.calls == calls and len(thread_posts(fake, thread)) == posts

    gen.open_all = True  # a member with Manage Server may
    allowed = await press(fake, reroll_1, manager, permissions=MANAGE_GUILD)
    assert (await replied(fake, allowed)).startswith("🎲 Rerolling product 1")
    assert len((await service.wait(campaign.id)).products) == 3


async def test_buttons_on_old_product_posts_work_after_a_restart(
    fake: FakeDiscord, service_on: Any, start_bot: Any
) -> None:
    requester = snowflake()
    async with service_on(GatedGenerator(open_all=True)) as first:
        old = await start_bot(first)
        await fake.interact(fake.command("new", requester, {"theme": "cats", "products": 1}))
        campaign = await finished(fake, first, 2)
        await stop(old)  # the product post was sent by a bot that is gone now

    gen = GatedGenerator(open_all=True)
    async with service_on(gen) as second:
        await start_bot(second)
        payload = await press(fake, f"campaign:reroll:{campaign.id}:1", requester)
        assert (await replied(fake, payload)).startswith(
            f"🎲 Rerolling product 1 of campaign `{campaign.id}`"
        )
        done = await second.wait(campaign.id)
        posts = await fake.wait_for(lambda: at_least(fake, campaign.origin.thread, 4))
    assert [(p.attempt_of, p.action) for p in done.products] == [(None, None), (0, Action.REROLL)]
    assert gen.calls == [(1, "image")]
    assert caption(posts[2]).startswith("✅ 2. ") and "(reroll of 1)" in caption(posts[2])
    assert f"campaign:animate:{campaign.id}:2" in json.dumps(posts[2].json["components"])


async def test_animate_an_uploaded_image_is_a_one_product_campaign(
    fake: FakeDiscord, make_service: Any, start_bot: Any
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    await start_bot(service)
    user = snowflake()
    image = fake.attachment("my cat.png", PNG)
    payload = fake.command("animate", user, {"image": image, "prompt": "tail wags"})
    await fake.interact(payload)
    reply = await replied(fake, payload)
    campaign = await finished(fake, service, 2)  # the product, then the summary
    thread = campaign.origin.thread
    assert reply == (
        f"✅ Campaign `{campaign.id}` started: https://discord.com/channels/{fake.guild_id}/"
        f"{thread}\nEstimate: 1 steps, about $0.010."
    )
    assert fake.downloads == [image["id"]]  # read from the attachment's URL
    assert campaign.status is CampaignStatus.SUCCEEDED
    assert campaign.requester == f"discord:{user}" and campaign.request.products == 1
    assert campaign.origin.platform == "discord" and thread != fake.channel_id
    assert gen.calls == [(0, "video")] and gen.jobs[(0, "video")].plan.video_prompt == "tail wags"
    upload = Path(campaign.products[0].output(StepName.IMAGE) or "")
    assert upload.read_bytes() == PNG
    (status,) = fake.find("POST", rf"/channels/{fake.channel_id}/messages")
    assert "animate my cat.png" in status.json["embeds"][0]["title"]
    product, summary = thread_posts(fake, thread)[:2]
    assert caption(product).startswith("✅ 1. my cat (uploaded image)")
    assert image_url(product) == f"attachment://{upload.name}"
    assert [f.filename for f in product.files] == [upload.name, "0-video.txt"]
    components = json.dumps(product.json["components"])  # nothing to reroll in an upload
    assert f"campaign:animate:{campaign.id}:1" in components and "reroll" not in components
    assert "succeeded" in summary.json["embeds"][0]["title"]


async def test_animate_a_campaign_product_or_every_product_without_a_video(
    fake: FakeDiscord, make_service: Any, start_bot: Any
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    await start_bot(service)
    requester = snowflake()
    await fake.interact(fake.command("new", requester, {"theme": "cats", "products": 2}))
    campaign = await finished(fake, service, 3)
    thread = campaign.origin.thread
    url = f"https://discord.com/channels/{fake.guild_id}/{thread}"

    stranger = fake.command("animate", snowflake(), {"campaign": campaign.id, "product": 1})
    await fake.interact(stranger)
    assert "Manage Server" in await refused(fake, stranger)

    options = {"campaign": campaign.id, "product": 2, "prompt": "slow zoom"}
    one = fake.command("animate", requester, options)
    await fake.interact(one)
    assert await replied(fake, one) == f"🎬 Animating product 2 of campaign `{campaign.id}`: {url}"
    done = await service.wait(campaign.id)
    attempt = done.products[2]
    assert (attempt.attempt_of, attempt.action) == (1, Action.ANIMATE)
    assert gen.jobs[(2, "video")].plan.video_prompt == "slow zoom"
    posts = await fake.wait_for(lambda: at_least(fake, thread, 5))
    assert caption(posts[3]).startswith("✅ 3. ") and "(animate of 2)" in caption(posts[3])

    every = fake.command("animate", requester, {"campaign": campaign.id})
    await fake.interact(every)
    assert (await replied(fake, every)).startswith(
        f"🎬 Animating every product without a video of campaign `{campaign.id}`"
    )
    done = await service.wait(campaign.id)
    assert [(p.attempt_of, p.action) for p in done.products[3:]] == [(0, Action.ANIMATE)]
    await fake.wait_for(lambda: at_least(fake, thread, 7))

    again = fake.command("animate", requester, {"campaign": campaign.id})
    await fake.interact(again)
    assert await replied(fake, again) == f"❌ every product of {campaign.id} already has a video"
    assert len((await service.get(campaign.id)).products) == 4


async def test_what_is_not_an_image_is_refused_and_nothing_is_stored(
    fake: FakeDiscord, make_service: Any, start_bot: Any, tmp_path: Path
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    await start_bot(service)
    user = snowflake()
    text = fake.attachment("notes.txt", b"hello", "text/plain")
    huge = fake.attachment("huge.png", PNG, "image/png", size=21 * 1024 * 1024)
    cases = [
        ({"image": text}, "❌ image: is not a PNG, JPEG or WebP image (text/plain)"),
        ({"image": huge}, "❌ image: is too large (21.0 MB)"),
        ({}, "❌ Give either `image`"),
        ({"image": fake.attachment("a.png", PNG), "campaign": "abc"}, "❌ Give either `image`"),
        ({"image": fake.attachment("b.png", PNG), "product": 1}, "❌ Give either `image`"),
    ]
    for options, expected in cases:
        payload = fake.command("animate", user, options)
        await fake.interact(payload)
        assert (await refused(fake, payload)).startswith(expected)
    assert fake.downloads == []  # refused from what Discord says, before reading anything

    lying = fake.attachment("cat.png", GIF, "image/png")  # the bytes are a GIF
    payload = fake.command("animate", user, {"image": lying})
    await fake.interact(payload)
    assert (await replied(fake, payload)).startswith("❌ image: is not a PNG, JPEG or WebP image")
    assert fake.downloads == [lying["id"]]
    (thread,) = fake.find("POST", rf"/channels/{fake.channel_id}/messages/\d+/threads")
    message_id = thread.path.split("/")[-2]  # the thread has its status message's id
    assert fake.find("DELETE", rf"/channels/{message_id}")  # the thread is taken down
    assert fake.find("DELETE", rf"/channels/{fake.channel_id}/messages/{message_id}")
    assert list(await service.history(5)) == [] and gen.calls == []
    assert not list((tmp_path / "data").glob("campaigns/*/upload*"))


async def test_the_summary_carries_the_timeline_and_the_reel_follows_within_the_limit(
    fake: FakeDiscord, make_service: Any, start_bot: Any, tmp_path: Path
) -> None:
    big = ReelFns(fake_card, fake_clip, functools.partial(big_join, size=400 * 1024))
    service = make_service(GatedGenerator(open_all=True), sheet=Pictures(fake_sheet, reel=big))
    real_get = service.get

    async def get(campaign_id: str) -> Campaign:  # the renderers are core/run.py's business
        campaign = await real_get(campaign_id)
        if not campaign.status.done:
            return campaign
        timeline = tmp_path / "data" / "campaigns" / campaign_id / "timeline.png"
        timeline.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 32), "navy").save(timeline)
        return replace(campaign, timeline=str(timeline))

    await start_bot(ServiceWith(service, get=get), files_base_url="https://files.example")
    payload = fake.command(
        "new", snowflake(), {"theme": "cats", "products": 1, "videos": True}, size_limit=300 * 1024
    )
    await fake.interact(payload)
    campaign = await finished(fake, service, 3)
    _product, summary, reel = thread_posts(fake, campaign.origin.thread)
    assert [f.filename for f in summary.files] == ["contact-sheet.png", "timeline.png"]
    first, second = summary.json["embeds"]
    assert "succeeded" in first["title"] and second["title"] == "Timeline"
    assert second["image"]["url"] == "attachment://timeline.png"
    assert not first.get("fields")  # the reel is not the summary's
    assert reel.files == []  # too big for this guild: linked in a post of its own
    link = f"reel.mp4: https://files.example/campaigns/{campaign.id}/reel.mp4"
    assert reel.json["content"] == f"Reel of campaign {campaign.id}\n{link}"
