"""Hostile Discord input: a real commands.Bot on the fake gateway fed INTERACTION_CREATE
payloads that discord.py cannot parse, odd option types, huge and control-character
themes and garbage buttons. The bot must keep running, answer what it can
ephemerally, store nothing, and never let a message it sends ping anyone."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.settings import AppSettings
from core.model import CampaignStatus
from core.scheduler import Limits
from core.settings import CoreSettings
from tests.fakes import GatedGenerator
from tests.fakes.discord_api import FakeDiscord, snowflake
from tests.fakes.discord_harness import (  # bot_starter and fake_server register fixtures
    at_least,
    bot_starter,  # noqa: F401
    callback,
    fake_server,  # noqa: F401
    started,
)

Mutation = Callable[[dict[str, Any]], object]
HUGE = "x" * 100_000


def _set(path: tuple[str, ...], value: object) -> Mutation:
    def mutate(payload: dict[str, Any]) -> None:
        target = payload
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _drop(path: tuple[str, ...]) -> Mutation:
    def mutate(payload: dict[str, Any]) -> None:
        target = payload
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _option(value: object, name: str = "theme") -> Mutation:
    return _set(("data", "options", 0, "options"), [{"name": name, "type": 3, "value": value}])


# What discord.py 2.7 cannot parse (each ended the whole bot before the guard).
UNPARSEABLE: dict[str, Mutation] = {
    "no attachment_size_limit": _drop(("attachment_size_limit",)),
    "member without flags": _drop(("member", "flags")),
    "member is a string": _set(("member",), "nobody"),
    "user id not a number": _set(("member", "user", "id"), "abc"),
    "no token": _drop(("token",)),
    "no id": _drop(("id",)),
    "channel is a list": _set(("channel",), []),
}
# Parseable, but wrong or hostile inside: answered (or ignored), never a crash.
ODD: dict[str, Mutation] = {
    "theme is a number": _option(123),
    "theme is an object": _option({"a": 1}),
    "huge theme": _option(HUGE),
    "escape sequences": _option("sale \x1b[2J\x1b]0;pwned\x07 now"),
    "NUL and bidi": _option("cats\x00 \u202egnp.exe"),
    "products is text": _set(
        ("data", "options", 0, "options"),
        [
            {"name": "theme", "type": 3, "value": "cats"},
            {"name": "products", "type": 4, "value": "lots"},
        ],
    ),
    "options not a list": _set(("data", "options"), "new"),
    "unknown subcommand": _set(("data", "options", 0, "name"), "explode"),
    "unknown interaction type": _set(("type",), 99),
}


async def test_unparseable_and_odd_interactions_cost_no_crash(
    fake: FakeDiscord, make_service: Any, start_bot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    bot = await start_bot(service)
    user = snowflake()
    sent: dict[str, dict[str, Any]] = {}
    for name, mutate in {**UNPARSEABLE, **ODD}.items():
        payload = copy.deepcopy(fake.command("new", user, {"theme": "cats"}))
        mutate(payload)
        sent[name] = payload
        await fake.interact(payload)
        barrier = fake.command("help", user)  # the gateway is read in order: once this is
        await fake.interact(barrier)  # answered, the payload before it was parsed
        await fake.wait_for(lambda b=barrier: callback(fake, b))
    assert not bot.is_closed()
    skipped = [r for r in caplog.records if "could not parse" in r.getMessage()]
    assert len(skipped) == len(UNPARSEABLE)
    assert all("INTERACTION_CREATE" in r.getMessage() for r in skipped)
    for name in ("huge theme", "escape sequences", "NUL and bidi", "theme is a number"):
        (answer,) = await fake.wait_for(lambda n=name: callback(fake, sent[n]))
        text = answer.json["data"]["content"]
        assert answer.json["data"]["flags"] == 64 and text.startswith("❌"), (name, text)
        assert "\x1b" not in text and "\x00" not in text
    assert await service.history(10) == [] and gen.calls == []
    for name in ODD:  # whatever was answered was answered ephemerally, with a reason
        for call in callback(fake, sent[name]):
            data = call.json["data"]
            assert data["flags"] == 64 and data["content"].startswith("❌ "), (name, data)
            assert "went wrong" not in data["content"], name

    good = fake.command("new", user, {"theme": "still alive"})  # the bot still works
    await fake.interact(good)
    campaign = await started(fake, service)
    assert campaign.request.theme == "still alive"


def press(fake: FakeDiscord, message_id: str, custom_id: str, user: str) -> dict[str, Any]:
    """A press of a button with this custom_id, on a message that shows that button
    (discord.py ignores presses of buttons the message does not carry)."""
    payload = fake.button(message_id, custom_id, user)
    button = {"type": 2, "style": 1, "label": "x", "custom_id": custom_id}
    payload["message"] = {**payload["message"], "components": [{"type": 1, "components": [button]}]}
    return payload


async def test_garbage_button_presses_are_answered_or_ignored(
    fake: FakeDiscord, make_service: Any, start_bot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    bot = await start_bot(service)
    user = snowflake()
    await fake.interact(fake.command("new", user, {"theme": "cats", "products": 1}))
    campaign = await service.wait((await started(fake, service)).id)
    message = campaign.origin.message
    answered = [
        press(fake, message, f"campaign:retry:{'z' * 64}", user),  # no such campaign
        press(fake, message, "campaign:cancel:deadbeef", user),
        press(fake, message, f"campaign:retry:{campaign.id}", snowflake()),  # not theirs
        press(fake, message, f"campaign:cancel:{campaign.id}", user),  # already finished
    ]
    ignored = [
        press(fake, message, "campaign:cancel:", user),  # matches no template
        press(fake, message, "campaign:cancel:" + HUGE, user),
        press(fake, message, "campaign:cancel:\x1b[2J", user),
        press(fake, message, "campaign:explode:abc", user),
    ]
    broken = press(fake, message, f"campaign:cancel:{campaign.id}", user)
    del broken["data"]["component_type"]  # discord.py's parser raises on this one
    for payload in [*answered, *ignored, broken]:
        await fake.interact(payload)
    for payload in answered:
        (answer,) = await fake.wait_for(lambda p=payload: callback(fake, p))
        assert answer.json["data"]["flags"] == 64
    barrier = fake.command("help", user)
    await fake.interact(barrier)
    await fake.wait_for(lambda: callback(fake, barrier))
    assert not bot.is_closed()
    assert all(callback(fake, p) == [] for p in ignored)
    assert (await service.get(campaign.id)).status is CampaignStatus.SUCCEEDED
    assert len(await service.history(10)) == 1 and len(gen.calls) == 1
    skipped = [r for r in caplog.records if "could not parse" in r.getMessage()]
    assert [r.exc_info[0] for r in skipped if r.exc_info] == [KeyError]


async def test_nothing_the_bot_sends_pings_anyone(
    fake: FakeDiscord, start_bot: Any, bot_main: Any, tmp_path: Path
) -> None:
    settings = CoreSettings(
        data_dir=tmp_path / "data",
        executor="local",
        generator="offline",
        video_seconds=0.3,
        limits=Limits(text=1, image=2, video=1, cpu=1),
    )
    theme = f"@everyone @here <@&{fake.role_id}> <@{fake.owner_id}> sale"
    async with bot_main.build(AppSettings.of(core=settings)) as app:
        service = app.service
        await start_bot(service)
        await fake.interact(fake.command("new", snowflake(), {"theme": theme, "products": 1}))
        campaign = await service.wait((await started(fake, service)).id)
        await fake.wait_for(lambda: at_least(fake, campaign.origin.thread, 2))  # product, sum
    sends = [
        c
        for c in fake.calls
        if c.method in ("POST", "PATCH")
        and re.fullmatch(r"/channels/\d+/messages(/\d+)?|/interactions/.*|/webhooks/.*", c.path)
    ]
    bodies = [c.json.get("data", c.json) for c in sends]  # a callback nests it in "data"
    # the theme is shown (product posts carry their caption in an embed, not in content)...
    assert any("@everyone" in json.dumps(b.get("embeds")) for b in bodies)
    for call, body in zip(sends, bodies, strict=True):  # ...and no message may ping
        if "content" in body or "embeds" in body:
            assert body.get("allowed_mentions") == {"parse": []}, (call.method, call.path)
