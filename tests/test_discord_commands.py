"""The read-only /campaign commands, autocomplete, cancel by command, and `bot.py discord`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.discord_ui.progress import Place
from core.model import Campaign, CampaignStatus
from core.request import CampaignRequest
from core.service import CampaignService
from tests.fakes import GatedGenerator
from tests.fakes.discord_api import FakeDiscord, snowflake
from tests.fakes.discord_harness import (  # bot_starter and fake_server register fixtures
    EPHEMERAL,
    TOKEN,
    at_least,
    bot_starter,  # noqa: F401
    callback,
    fake_server,  # noqa: F401
    original_edits,
)

ROOT = Path(__file__).resolve().parent.parent


async def _submit(
    service: CampaignService, fake: FakeDiscord, user: str, products: int
) -> Campaign:
    place = Place(int(fake.guild_id), int(fake.channel_id), int(snowflake()), int(snowflake()))
    request = CampaignRequest(theme=f"theme {products}", products=products)
    return await service.submit(request, requester=f"discord:{user}", origin=place.origin())


async def _ask(fake: FakeDiscord, payload: dict[str, Any]) -> dict[str, Any]:
    await fake.interact(payload)
    (answer,) = await fake.wait_for(lambda: callback(fake, payload))
    return dict(answer.json)


async def test_status_history_show_help_and_autocomplete(fake, make_service, start_bot) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    user = snowflake()
    gen.open((0, "image"))
    done = await service.wait((await _submit(service, fake, user, 1)).id)
    running = await _submit(service, fake, user, 2)  # product 2's image stays gated
    await start_bot(service)

    status = await _ask(fake, fake.command("status", user))  # as in Slack: your latest
    assert status["data"]["flags"] == EPHEMERAL
    (embed,) = status["data"]["embeds"]
    assert running.request.theme in embed["title"] and "running" in embed["title"]
    earlier = (await _ask(fake, fake.command("status", user, {"id": done.id})))["data"]["embeds"]
    assert done.request.theme in earlier[0]["title"] and "succeeded" in earlier[0]["title"]
    nothing = await _ask(fake, fake.command("status", snowflake()))
    assert "no campaigns yet" in nothing["data"]["content"]
    history = (await _ask(fake, fake.command("history", user)))["data"]["embeds"][0]
    assert history["description"].index(running.id) < history["description"].index(done.id)
    assert "nothing yet" in str(await _ask(fake, fake.command("history", snowflake())))

    shown = (await _ask(fake, fake.command("show", snowflake(), {"id": done.id})))["data"]
    assert "succeeded" in shown["embeds"][0]["title"]
    assert shown["embeds"][0]["fields"][-1]["value"].startswith("https://discord.com/channels/")
    products = shown["embeds"][1]["description"]  # in full, as Slack's and the terminal's show
    assert done.request.to_text() in products
    assert f"1. {done.products[0].plan.name}: image `" in products
    assert len(status["data"]["embeds"]) == 1  # status is the progress alone
    missing = await _ask(fake, fake.command("show", user, {"id": "nope"}))
    assert "There is no campaign `nope`" in missing["data"]["content"]
    assert "/campaign new" in (await _ask(fake, fake.command("help", user)))["data"]["content"]

    lookup = fake.command("cancel", user, {"id": running.id[:3]})
    lookup["type"] = 4  # autocomplete while typing the id
    lookup["data"]["options"][0]["options"][0]["focused"] = True
    choices = (await _ask(fake, lookup))["data"]["choices"]
    assert choices and all(c["value"].startswith(running.id[:3]) for c in choices)
    assert running.id in [c["value"] for c in choices]
    await gen.wait_started(2)
    assert (await service.get(running.id)).status is CampaignStatus.RUNNING


async def test_cancel_by_command_explains_a_deleted_status_message(
    fake, make_service, start_bot, caplog
) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    user = snowflake()
    campaign = await _submit(service, fake, user, 1)  # its status message is not on the fake
    await start_bot(service)
    await gen.wait_started(1)
    payload = fake.command("cancel", user, {"id": campaign.id})
    await fake.interact(payload)
    (reply,) = await fake.wait_for(lambda: original_edits(fake, payload))
    assert reply.json["content"] == f"🚫 Campaign `{campaign.id}` canceled."
    assert (await service.get(campaign.id)).status is CampaignStatus.CANCELED
    assert "the campaign's status message was deleted" in caplog.text
    again = await _ask(fake, fake.command("cancel", user, {"id": campaign.id}))
    assert again["data"]["content"] == f"Campaign `{campaign.id}` is already canceled."
    edits = rf"/channels/{fake.channel_id}/messages/{campaign.origin.message}"
    await fake.wait_for(lambda: len(fake.find("PATCH", edits, status=404)) == 2)  # tried twice
    notes = await fake.wait_for(lambda: at_least(fake, campaign.origin.thread, 2))
    assert notes[0].json["content"].startswith("⚠️ updating the status message failed: ")


@pytest.mark.slow
async def test_bot_py_discord_connects_and_stops_on_sigterm(fake, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "DISCORD_"))}
    env.update(
        DISCORD_TOKEN=TOKEN,
        DISCORD_GUILD_IDS=fake.guild_id,
        DISCORD_API_BASE_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
        CAMPAIGN_DATA_DIR=str(tmp_path / "data"),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "bot.py", "discord", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await fake.wait_for(lambda: fake.identifies, within_s=60)
        assert not fake.find("PUT", r"/applications/")  # no --sync: commands left as they are
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert TOKEN.encode() not in out + err
