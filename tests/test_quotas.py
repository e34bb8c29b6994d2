"""Quotas and cost caps: each limit refuses with its message, counts live in SQLite.

The service runs on a real database file with a gated fake generator that
prices every step at $0.01 (and reports that as its cost); the clock is fixed
at noon UTC, so a daily limit resets in exactly 12 hours.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import pytest

from bot.settings import AppSettings
from bot.words import limit_setting, refusal
from core.errors import ConfigError, InvalidRequest, QuotaExceeded
from core.model import CampaignStatus, SlackOrigin, origin_from_json
from core.quotas import DAY_S, AuditEvent, QuotaPolicy, QuotaSettings, Spend, Who, day_start
from core.request import CampaignRequest, ModelOverrides
from tests.fakes import FakeClock, GatedGenerator
from tests.fakes.audit import audit_entries

pytestmark = pytest.mark.both_stores

NOON = 1_767_268_800.0  # 2026-01-01 12:00:00 UTC
RESETS = "resets at 00:00 UTC (in 12 h 00 min)"


def request(products: int = 2, videos: bool = True, **changes: Any) -> CampaignRequest:
    """2 products with videos: 4 steps, estimated at $0.040 by the gated generator."""
    return CampaignRequest(theme="retro cats", products=products, videos=videos, **changes)


@dataclass(frozen=True)
class Place:
    """Who asks and where, as a front end passes it to submit()."""

    user: str | None
    channel: str | None = None
    guild: str | None = None
    platform: str = "discord"

    def kwargs(self) -> dict[str, Any]:
        origin = {"platform": self.platform}
        if self.channel:
            origin["channel"] = self.channel
        if self.guild:
            origin["guild" if self.platform == "discord" else "team"] = self.guild
        requester = f"{self.platform}:{self.user}" if self.user else None
        return {"requester": requester, "origin": origin_from_json(origin)}


FIRST = Place("1", "C1", "G1")
CASES = {  # name: (quotas, hold the first campaign running?, second place, limit, text)
    "user_daily": (
        QuotaSettings(user_daily=1),
        False,
        Place("1", "C2", "G2"),
        "CAMPAIGN_QUOTA_USER_DAILY",
        f"quota: you have started 1 of the 1 campaign allowed per day; {RESETS}",
    ),
    "user_concurrent": (
        QuotaSettings(user_concurrent=1),
        True,
        Place("1", "C2", "G2"),
        "CAMPAIGN_QUOTA_USER_CONCURRENT",
        "quota: you have 1 campaign running and 1 is allowed at once; try again when one of"
        " your running campaigns finishes",
    ),
    "channel_daily": (
        QuotaSettings(channel_daily=1),
        False,
        Place("2", "C1", "G2"),
        "CAMPAIGN_QUOTA_CHANNEL_DAILY",
        f"quota: this channel has started 1 of the 1 campaign allowed per day; {RESETS}",
    ),
    "channel_concurrent": (
        QuotaSettings(channel_concurrent=1),
        True,
        Place("2", "C1", "G2"),
        "CAMPAIGN_QUOTA_CHANNEL_CONCURRENT",
        "quota: this channel has 1 campaign running and 1 is allowed at once; try again when"
        " one of this channel's running campaigns finishes",
    ),
    "guild_daily": (
        QuotaSettings(guild_daily=1),
        False,
        Place("2", "C2", "G1"),
        "CAMPAIGN_QUOTA_GUILD_DAILY",
        f"quota: this server has started 1 of the 1 campaign allowed per day; {RESETS}",
    ),
    "guild_concurrent": (
        QuotaSettings(guild_concurrent=1),
        True,
        Place("2", "C2", "G1"),
        "CAMPAIGN_QUOTA_GUILD_CONCURRENT",
        "quota: this server has 1 campaign running and 1 is allowed at once",
    ),
    "cost_user_daily": (
        QuotaSettings(cost_user_daily_usd=0.05),
        False,
        Place("1", "C2", "G2"),
        "CAMPAIGN_QUOTA_COST_USER_DAILY",
        "cost cap: your campaigns today come to $0.040 and this one is estimated at $0.040:"
        f" $0.080, over the $0.050 allowed per day; {RESETS}",
    ),
    "cost_channel_daily": (
        QuotaSettings(cost_channel_daily_usd=0.05),
        True,  # running: it counts its estimate
        Place("2", "C1", "G2"),
        "CAMPAIGN_QUOTA_COST_CHANNEL_DAILY",
        "cost cap: this channel's campaigns today come to $0.040",
    ),
    "cost_guild_daily": (
        QuotaSettings(cost_guild_daily_usd=0.05),
        False,
        Place("2", "C2", "G1"),
        "CAMPAIGN_QUOTA_COST_GUILD_DAILY",
        "cost cap: this server's campaigns today come to $0.040",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_each_scope_limit_refuses_with_its_message(service_on, name: str) -> None:
    quotas, hold, second, limit, text = CASES[name]
    gen = GatedGenerator(open_all=not hold)
    async with service_on(gen, clock=FakeClock(NOON), quotas=quotas) as service:
        first = await service.submit(request(), **FIRST.kwargs())
        if not hold:
            assert (await service.wait(first.id)).status is CampaignStatus.SUCCEEDED
        with pytest.raises(QuotaExceeded) as refused:
            await service.submit(request(), **second.kwargs())
        assert limit_setting(refused.value.limit) == limit
        assert text in refusal(refused.value)
        assert [c.id for c in await service.history(10)] == [first.id]  # nothing stored
        other = Place("9", "C9", "G9")  # another user, channel and server: not limited
        assert (await service.submit(request(), **other.kwargs())).id
        entries = await audit_entries(service.store)
    refusals = [e for e in entries if e.event is AuditEvent.REFUSED]
    assert len(refusals) == 1 and refusals[0].campaign_id is None
    assert (refusals[0].reason or "").startswith(f"{limit}: ")
    assert refusals[0].who.requester == second.kwargs()["requester"]


async def test_per_campaign_limits_refuse_before_counting(service_on) -> None:
    gen = GatedGenerator(open_all=True)
    quotas = QuotaSettings(products=2, cost_campaign_usd=0.03)
    async with service_on(gen, clock=FakeClock(NOON), quotas=quotas) as service:
        with pytest.raises(QuotaExceeded) as too_many:
            await service.submit(request(products=3), **FIRST.kwargs())
        assert limit_setting(too_many.value.limit) == "CAMPAIGN_QUOTA_PRODUCTS"
        assert refusal(too_many.value) == (
            "quota: 3 products is more than the 2 allowed per campaign; ask for 2 or fewer"
        )
        with pytest.raises(QuotaExceeded) as too_dear:
            await service.submit(request(products=2), **FIRST.kwargs())
        assert limit_setting(too_dear.value.limit) == "CAMPAIGN_QUOTA_COST_CAMPAIGN"
        assert refusal(too_dear.value) == (
            "cost cap: this campaign is estimated at $0.040, over the $0.030 allowed per"
            " campaign; ask for fewer products or no videos"
        )
        assert (too_dear.value.used, too_dear.value.allowed) == (0.04, 0.03)
        fits = await service.submit(request(products=2, videos=False), **FIRST.kwargs())
        assert (await service.wait(fits.id)).status is CampaignStatus.SUCCEEDED
        assert len(await service.history(10)) == 1 and len(gen.calls) == 2


async def test_a_limit_of_n_admits_n(service_on) -> None:
    gen = GatedGenerator(open_all=True)
    quotas = QuotaSettings(user_daily=2)
    async with service_on(gen, clock=FakeClock(NOON), quotas=quotas) as service:
        for _ in range(2):
            await service.wait((await service.submit(request(), **FIRST.kwargs())).id)
        with pytest.raises(QuotaExceeded) as refused:
            await service.submit(request(), **FIRST.kwargs())
        assert re.search("started 2 of the 2 campaigns allowed per day", refusal(refused.value))


async def test_counts_survive_a_restart_and_reset_at_midnight_utc(service_on) -> None:
    clock = FakeClock(NOON)
    quotas = QuotaSettings(user_daily=1, user_concurrent=1)
    held = GatedGenerator()
    async with service_on(held, clock=clock, quotas=quotas, hand_over=True) as service:
        running = await service.submit(request(), **FIRST.kwargs())
        await held.wait_started(2)
    # A new process on the same file: the handed-over campaign still runs, and counts.
    async with service_on(GatedGenerator(open_all=True), clock=clock, quotas=quotas) as service:
        assert (await service.get(running.id)).status is CampaignStatus.RUNNING
        with pytest.raises(QuotaExceeded) as refused:
            await service.submit(request(), **FIRST.kwargs())
        assert limit_setting(refused.value.limit) == "CAMPAIGN_QUOTA_USER_CONCURRENT"
        await service.cancel(running.id)
    async with service_on(GatedGenerator(open_all=True), clock=clock, quotas=quotas) as service:
        with pytest.raises(QuotaExceeded) as refused:
            await service.submit(request(), **FIRST.kwargs())
        assert re.search(re.escape(RESETS), refusal(refused.value))
        clock.now = day_start(NOON) + DAY_S  # midnight UTC: a new day
        tomorrow = await service.submit(request(), **FIRST.kwargs())
        assert (await service.wait(tomorrow.id)).status is CampaignStatus.SUCCEEDED


async def test_daily_cost_counts_what_a_finished_campaign_cost(service_on) -> None:
    gen = GatedGenerator(open_all=True, fail={(0, "image"), (1, "image")})  # nothing is spent
    quotas = QuotaSettings(cost_user_daily_usd=0.05)
    async with service_on(gen, clock=FakeClock(NOON), quotas=quotas) as service:
        failed = await service.wait((await service.submit(request(), **FIRST.kwargs())).id)
        assert failed.status is CampaignStatus.FAILED and failed.cost_usd == 0.0
        gen.fail.clear()
        second = await service.submit(request(), **FIRST.kwargs())  # $0 + $0.04 fits $0.05
        assert (await service.wait(second.id)).cost_usd == 0.04
        with pytest.raises(QuotaExceeded) as refused:
            await service.submit(request(), **FIRST.kwargs())
        assert re.search(r"come to \$0\.040 and this one", refusal(refused.value))


async def test_two_submits_at_once_cannot_both_pass(service_on) -> None:
    quotas = QuotaSettings(user_concurrent=1)
    gen_a, gen_b = GatedGenerator(), GatedGenerator()
    async with (
        service_on(gen_a, clock=FakeClock(NOON), quotas=quotas) as one,
        service_on(gen_b, clock=FakeClock(NOON), quotas=quotas) as other,  # another process
    ):
        outcomes = await asyncio.gather(
            one.submit(request(), **FIRST.kwargs()),
            one.submit(request(), **FIRST.kwargs()),
            other.submit(request(), **FIRST.kwargs()),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
        assert len(refused) == 2, outcomes
        assert len(await one.history(10)) == 1


async def test_admins_and_the_terminal_are_exempt(service_on) -> None:
    gen = GatedGenerator(open_all=True)
    quotas = QuotaSettings(user_daily=1, products=1, admins=frozenset({"discord:1"}))
    async with service_on(gen, clock=FakeClock(NOON), quotas=quotas) as service:
        for _ in range(2):
            await service.wait((await service.submit(request(), **FIRST.kwargs())).id)
            await service.wait((await service.submit(request())).id)  # the terminal
        with pytest.raises(QuotaExceeded):
            await service.submit(request(), **Place("2", "C1").kwargs())
        assert len(await service.history(10)) == 4


async def test_check_refuses_early_like_submit(service_on) -> None:
    gen = GatedGenerator(open_all=True)
    async with service_on(gen, clock=FakeClock(NOON), quotas=QuotaSettings(user_daily=1)) as svc:
        estimate = await svc.check(request(), **FIRST.kwargs())
        assert (estimate.steps, estimate.cost_usd) == (4, 0.04)
        await svc.wait((await svc.submit(request(), **FIRST.kwargs())).id)
        with pytest.raises(QuotaExceeded) as refused:
            await svc.check(request(), **FIRST.kwargs())
        assert re.search("started 1 of the 1 campaign", refusal(refused.value))
        assert len(await svc.history(10)) == 1
        events = [e.event for e in await audit_entries(svc.store)]
    assert events.count(AuditEvent.REFUSED) == 1


async def test_a_model_the_operator_does_not_offer_is_refused(service_on) -> None:
    """Only defaults and models marked requestable (each with a price) may be named, so a
    chat user cannot pick a model the operator never chose."""
    from adapters.replicate_api.models import ModelTable

    offered = ModelTable().requestable()
    gen = GatedGenerator(open_all=True)
    async with service_on(gen, clock=FakeClock(NOON), priced_models=offered) as service:
        for model in ("someone/fancy-video", "kwaivgi/kling-v2.1-master"):  # unpriced, unoffered
            unknown = request(models=ModelOverrides(video=model))
            with pytest.raises(InvalidRequest) as refused:
                await service.submit(unknown, **FIRST.kwargs())
            assert refused.value.field == "video_model"
            assert f"{model} is not offered here" in str(refused.value)
            assert "bytedance/seedance-1-lite" in refused.value.allowed
        assert await service.history(10) == [] and gen.calls == []
        version = "black-forest-labs/flux-dev:" + "a" * 64  # an offered model at a version
        ok = await service.submit(request(models=ModelOverrides(image=version)))
        assert (await service.wait(ok.id)).status is CampaignStatus.SUCCEEDED


def test_policy_counts_only_the_scope_and_the_day() -> None:
    policy = QuotaPolicy(QuotaSettings(user_daily=1, user_concurrent=2))
    who = Who.of("slack:U1", SlackOrigin(channel="C1", team="T1"))
    assert (who.channel, who.guild) == ("slack:C1", "slack:T1")
    yesterday = Spend("a", NOON - DAY_S, "slack:U1", "slack:C1", None, 0.1, 0.1, False)
    someone = Spend("b", NOON, "slack:U2", "slack:C1", None, 0.1, 0.1, False)
    policy.check(request(), who, 0.04, [yesterday, someone], now=NOON)  # neither counts
    running = Spend("c", NOON - DAY_S, "slack:U1", "slack:C1", None, 0.1, 0.0, True)
    policy.check(request(), who, 0.04, [running], now=NOON)  # 1 running of 2, none today
    with pytest.raises(QuotaExceeded) as refused:
        policy.check(request(), who, 0.04, [running, running], now=NOON)
    assert re.search("you have 2 campaigns running and 2 are allowed", refusal(refused.value))


def test_quota_settings_from_env() -> None:
    env = {
        "CAMPAIGN_QUOTA_USER_DAILY": "5",
        "CAMPAIGN_QUOTA_CHANNEL_CONCURRENT": "2",
        "CAMPAIGN_QUOTA_PRODUCTS": "10",
        "CAMPAIGN_QUOTA_COST_CAMPAIGN": "$1.50",
        "CAMPAIGN_QUOTA_COST_GUILD_DAILY": "20",
        "CAMPAIGN_QUOTA_ADMINS": "slack:U1, discord:42",
    }
    quotas = AppSettings.from_mapping(env).core.quotas
    assert quotas == QuotaSettings(
        user_daily=5,
        channel_concurrent=2,
        products=10,
        cost_campaign_usd=1.5,
        cost_guild_daily_usd=20.0,
        admins=frozenset({"slack:U1", "discord:42"}),
    )
    assert AppSettings.from_mapping({}).core.quotas == QuotaSettings()  # unset: unlimited
    for name, value, phrase in (
        ("CAMPAIGN_QUOTA_USER_DAILY", "-1", "at least 0"),
        ("CAMPAIGN_QUOTA_COST_USER_DAILY", "lots", "could not convert"),
        ("CAMPAIGN_QUOTA_ADMINS", "U123", "needs its platform"),
    ):
        with pytest.raises(ConfigError, match=f"{name}=.*{phrase}"):
            AppSettings.from_mapping({name: value})
