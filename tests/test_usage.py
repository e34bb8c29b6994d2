"""`bot.py usage [--json]`: spend per user, channel and server from the audit ledger."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from bot.cli.usage import usage
from core.errors import QuotaExceeded
from core.model import DiscordOrigin, SlackOrigin
from core.quotas import QuotaSettings
from core.request import CampaignRequest
from tests.fakes import GatedGenerator

SLACK = SlackOrigin(channel="C1", team="T1", ts="1.0")
DISCORD = DiscordOrigin(guild="77", channel="555", message="1", thread="2")


async def _spend(service) -> None:
    """U1 runs two campaigns in Slack, [bold]x runs one in Discord, U1 is refused once,
    the terminal runs one."""
    two = CampaignRequest(theme="cats", products=2, videos=True)  # $0.04
    one = CampaignRequest(theme="dogs", products=1, videos=False)  # $0.01
    for request, requester, origin in (
        (two, "slack:U1", SLACK),
        (one, "slack:U1", SLACK),
        (two, "discord:[bold]x", DISCORD),
        (one, None, None),
    ):
        await service.wait((await service.submit(request, requester=requester, origin=origin)).id)
    with pytest.raises(QuotaExceeded):
        await service.submit(two, requester="slack:U1", origin=SLACK)


async def test_usage_json_has_spend_per_user_channel_and_server(service_on) -> None:
    gen = GatedGenerator(open_all=True, fail={(1, "video")})  # one video fails: costs $0.03
    async with service_on(gen, quotas=QuotaSettings(user_daily=2)) as service:
        await _spend(service)
        out = io.StringIO()
        code = await usage(service.store, as_json=True, out=Console(file=out, width=60))
    assert code == 0
    data = json.loads(out.getvalue())
    assert data["since"] is None
    assert data["total"] == {"campaigns": 4, "refused": 1, "estimate_usd": 0.1, "cost_usd": 0.08}
    users = {u["id"]: u for u in data["users"]}
    assert users["slack:U1"] == {
        "id": "slack:U1",
        "campaigns": 2,
        "refused": 1,
        "estimate_usd": 0.05,
        "cost_usd": 0.04,  # $0.03 (a failed video) + $0.01
    }
    assert users["discord:[bold]x"]["cost_usd"] == 0.03
    assert users[None]["campaigns"] == 1  # the terminal
    channels = {c["id"]: c["campaigns"] for c in data["channels"]}
    assert channels == {"slack:C1": 2, "discord:555": 1, None: 1}
    guilds = {g["id"]: g["estimate_usd"] for g in data["guilds"]}
    assert guilds == {"slack:T1": 0.05, "discord:77": 0.04, None: 0.01}


async def test_usage_table_shows_ids_literally(service_on) -> None:
    async with service_on(GatedGenerator(open_all=True), quotas=QuotaSettings(user_daily=2)) as svc:
        await _spend(svc)
        out = io.StringIO()
        await usage(svc.store, as_json=False, out=Console(file=out, width=100), days=1)
    text = out.getvalue()
    assert "Spend per user (since " in text and "Spend per channel" in text
    assert "Spend per server / workspace" in text
    assert "discord:[bold]x" in text  # markup in an id is shown, not applied
    assert "(terminal)" in text and "slack:C1" in text and "$0.050" in text


async def test_usage_of_an_empty_database(service_on) -> None:
    async with service_on(GatedGenerator()) as service:
        out = io.StringIO()
        await usage(service.store, as_json=True, out=Console(file=out))
    data = json.loads(out.getvalue())
    assert data["users"] == [] and data["total"]["campaigns"] == 0
