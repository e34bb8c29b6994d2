"""Hostile Slack input: the real AsyncApp on 127.0.0.1 fed malformed, oversized,
odd-typed and replayed requests. None may get a 5xx, crash a handler, store a
campaign or start a step; the same signed command sent twice starts one campaign."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.chat.replays import RecentKeys
from bot.slack_ui import blocks as blocks
from bot.slack_ui.commands import button_fields, command_fields, replay_keys
from core.progress import CampaignSnapshot
from core.request import CampaignRequest
from storage.sqlite_store import SqliteStore
from tests.fakes import GatedGenerator
from tests.fakes.slack_api import (
    SIGNING_SECRET,
    FakeSlackApi,
    SlackHarness,
    signed_headers,
    slack_harness,
)

HUGE = "x" * 200_000
CONTROL = "sale \x1b[2J\x00 now \u202egnp.exe"


def sign(body: bytes, content_type: str) -> dict[str, str]:
    """Slack's v0 signature over raw bytes (which need not be UTF-8)."""
    stamp = str(int(time.time()))
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": content_type,
    }


async def post_raw(
    url: str, body: bytes, content_type: str, *, signed: bool = True
) -> tuple[int, str]:
    headers = sign(body, content_type) if signed else {"Content-Type": content_type}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=io.BytesIO(body), headers=headers) as response,
    ):
        return response.status, await response.text()


def command_variants(slack: SlackHarness) -> list[dict[str, str]]:
    """Slash command forms with fields missing, empty, huge or full of control characters."""
    forms: list[dict[str, str]] = []
    for missing in (
        ("user_id",),
        ("channel_id",),
        ("user_id", "channel_id"),
        ("command",),
        ("response_url",),
    ):
        form = slack.command_form("history")
        for key in missing:
            del form[key]
        forms.append(form)
    for key, value in (
        ("user_id", ""),
        ("user_id", HUGE),
        ("user_id", "U1\x00"),
        ("channel_id", "C1 C2"),
        ("channel_id", "<!everyone>"),
        ("text", HUGE),
        ("text", CONTROL),
        ("text", "theme:\x1b[31mred\x1b[0m"),
        ("text", "show \x1b[2J"),
        ("text", "cats style:\u202eneon"),
        ("text", 'audience:"\x07bell" cats'),
        ("text", 'theme:"unterminated'),
        ("text", "cats products:99999999999999999999999999999999999"),
    ):
        forms.append({**slack.command_form("cats"), key: value})
    return forms


def button_payloads(slack: SlackHarness) -> list[Any]:
    """block_actions payloads (before JSON encoding) with every part broken once."""
    good = json.loads(slack.button_form("campaign_cancel", "deadbeef", "U1")["payload"])
    payloads: list[Any] = []
    for key in ("user", "channel", "actions", "container", "trigger_id"):
        payloads.append({k: v for k, v in good.items() if k != key})
    for key, value in (
        ("user", "U1"),
        ("user", {"id": 7}),
        ("user", {"id": HUGE}),
        ("channel", []),
        ("channel", {"id": None}),
        ("actions", {}),
        ("actions", []),
        ("actions", ["x"]),
        ("actions", [{"action_id": "campaign_cancel"}]),
        ("actions", [{"action_id": "campaign_cancel", "value": 12}]),
        ("actions", [{"action_id": "campaign_cancel", "value": HUGE}]),
        ("actions", [{"action_id": "campaign_retry", "value": "dead\x1bbeef"}]),
        ("actions", [{"action_id": "campaign_retry", "value": ["deadbeef"]}]),
    ):
        payloads.append({**good, key: value})
    payloads.append({**good, "channel": None, "container": {"channel_id": 5}})
    for payload in payloads:  # each press is its own (the same trigger_id would be a replay)
        if "trigger_id" in payload:
            payload["trigger_id"] = slack.trigger_id()
    return payloads


async def test_fuzzed_commands_and_presses_get_no_5xx_and_start_nothing(
    make_service: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    statuses: list[tuple[str, int]] = []
    async with slack_harness(service) as slack:
        for form in command_variants(slack):
            reply = await slack.post(form)
            statuses.append((f"command {form.get('text', '')[:20]!r}", reply.status))
            if reply.status == 200 and "text" in reply.body:
                assert "Nothing was started" in reply.body["text"] or reply.body["text"] == ""
        for payload in button_payloads(slack):
            reply = await slack.post({"payload": json.dumps(payload)})
            statuses.append((f"button {str(payload)[:60]}", reply.status))
        url = slack.url
        for body, ctype in (
            (b"payload=not-json", "application/x-www-form-urlencoded"),
            (b"payload=%5B1%2C2%5D", "application/x-www-form-urlencoded"),  # a JSON list
            (b"{not json", "application/json"),
            (b"[1, 2]", "application/json"),
            (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
            (b"payload=" + b"%5B" * 50_000, "application/x-www-form-urlencoded"),  # deep nesting
            (
                json.dumps(
                    {"command": "/campaign", "user_id": 5, "channel_id": ["C1"], "text": {"a": 1}}
                ).encode(),
                "application/json",
            ),
            (b"", "application/x-www-form-urlencoded"),
            (b"command=%2Fcampaign&text=" + b"x" * 2_000_000, "application/x-www-form-urlencoded"),
        ):
            for signed in (True, False):
                status, _ = await post_raw(url, body, ctype, signed=signed)
                statuses.append((f"raw {body[:30]!r} signed={signed}", status))
        await slack.settle()
        good = await slack.command("cats products:1")  # the front end still works
        await gen.wait_started(1)
        await slack.settle()
    assert [(what, status) for what, status in statuses if status >= 500] == []
    assert good.status == 200 and "Starting" in good.body["text"]
    assert [c.request.theme for c in await service.history(10)] == ["cats"]  # only the good one
    assert gen.calls == [(0, "image")]  # the good one's single step, nothing else
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert crashes == []
    ephemerals = [c.params["text"] for c in slack.api.of("chat.postEphemeral")]
    assert sum("could not read" in t for t in ephemerals) == 5  # the 5 bad values: told


async def test_control_characters_are_refused_naming_the_field(make_service: Any) -> None:
    service = make_service(GatedGenerator(open_all=True))
    async with slack_harness(service) as slack:
        reply = await slack.command('cats audience:"gamers\x1b[2J"')
        await slack.settle()
    assert reply.status == 200
    assert "audience: contains the control character U+001B" in reply.body["text"]
    assert "\x1b" not in reply.body["text"]
    assert await service.history(5) == []


async def test_the_same_signed_command_twice_starts_one_campaign(make_service: Any) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    async with slack_harness(service) as slack:
        form = slack.command_form("replayed cats products:1")
        headers = signed_headers(urllib.parse.urlencode(form))
        first = await slack.post(form, headers)
        again = await slack.post(form, headers)  # a replay within Slack's 5 minutes
        other = {**form, "text": "other cats products:1"}  # new body, same trigger_id
        third = await slack.post(other)
        await slack.api.wait_for(lambda: bool(slack.api.of("chat.postMessage")))
        await slack.settle()
    assert (first.status, again.status, third.status) == (200, 200, 200)
    assert "Starting" in first.body["text"] and again.body == {"text": ""} == third.body
    campaigns = await service.history(5)
    assert [c.request.theme for c in campaigns] == ["replayed cats"]
    assert len([c for c in slack.api.of("chat.postMessage") if not c.params.get("thread_ts")]) == 1


async def test_recent_keys_forget_after_the_window_and_stay_bounded() -> None:
    now = [1000.0]
    recent = RecentKeys(max_keys=3, clock=lambda: now[0])
    assert await recent.first_time(["sig:1", "trigger:a"], 660)
    assert not await recent.first_time(["trigger:a"], 660)  # same trigger, any signature
    now[0] += 659
    assert not await recent.first_time(["sig:1"], 660)
    now[0] += 661
    assert await recent.first_time(["sig:1"], 660)  # long past Slack's window: a new request
    for key in ("k1", "k2", "k3", "k4"):
        await recent.first_time([key], 660)
    assert len(recent) == 3 and await recent.first_time(["k1"], 660)  # the oldest went first


def test_payload_readers_never_raise() -> None:
    ids = {"user_id": "U1", "channel_id": "C1", "response_url": "https://hooks.slack.com/x"}
    assert command_fields(ids) == ("U1", "C1", "")
    assert command_fields({"user_id": "U1", "response_url": "x"}) is None
    assert command_fields({"user_id": "U1", "channel_id": "C1"}) is None
    assert command_fields({**ids, "text": ["x"]}) is None
    assert button_fields({}) is None
    assert button_fields({"user": {"id": "U1"}, "container": {"channel_id": "C1"}}) == (
        "U1",
        "C1",
        None,
    )
    body = {"user": {"id": "U1"}, "channel": {"id": "C1"}, "actions": [{"value": "ab12"}]}
    assert button_fields(body) == ("U1", "C1", "ab12")
    assert replay_keys({"x-slack-signature": ["v0=ab"]}, {"trigger_id": "t"}) == [
        "sig::v0=ab",
        "trigger:t",
    ]
    assert replay_keys({}, ["not", "a", "dict"]) == []


def test_mrkdwn_fields_escape_user_and_model_text() -> None:
    hostile = "<!channel> & <https://evil.example|click> <@U1>"
    starting = blocks.starting_message(CampaignRequest(theme=hostile))
    snap = CampaignSnapshot("c1", theme=hostile, notice=f"planner said {hostile}")
    status = blocks.status_message(snap, "local", now=0.0)
    for message in (starting, status):
        assert "<" not in message.text and "&lt;!channel&gt;" in message.text
        mrkdwn = [
            str(b) for b in message.blocks if b["type"] != "header"
        ]  # a header is plain_text: shown as typed, never parsed
        assert all("<!channel>" not in text and "<https" not in text for text in mrkdwn)
    assert starting.blocks[0]["text"]["type"] == "plain_text"


async def test_a_command_delivered_to_two_replicas_starts_one_campaign(
    make_service: Any, tmp_path: Path
) -> None:
    service = make_service(GatedGenerator(open_all=True))
    first_db = await SqliteStore.open(tmp_path / "replicas.db")  # each replica's connection
    second_db = await SqliteStore.open(tmp_path / "replicas.db")
    api = FakeSlackApi()
    await api.start()
    try:
        async with (
            slack_harness(service, replays=first_db, api=api) as one,
            slack_harness(service, replays=second_db, api=api) as other,
        ):
            form = one.command_form("twice cats products:1")
            headers = signed_headers(urllib.parse.urlencode(form))
            first = await one.post(form, headers)
            retried = await other.post(form, headers)  # Slack's retry reached the other one
            await api.wait_for(lambda: bool(api.of("chat.postMessage")))
            await one.settle()
            await other.settle()
    finally:
        await api.close()
        await first_db.close()
        await second_db.close()
    assert "Starting" in first.body["text"] and retried.body == {"text": ""}
    assert [c.request.theme for c in await service.history(5)] == ["twice cats"]
