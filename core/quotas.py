"""Quotas and cost caps: who may start what, counted from the store's ledger.

Three scopes count: the requester ("slack:U1", "discord:42"), the channel
("slack:C1", "discord:555") and the Slack workspace or Discord server
("slack:T1", "discord:77"). Each has a limit on campaigns started per UTC day,
campaigns running at once and estimated dollars per UTC day; every campaign
has a limit on products and on its estimated cost. 0 means unlimited.

The ledger is the store's audit table: one `submitted` row per campaign with
its scopes and estimate, joined with the campaign's status and what its steps
have cost so far, so counts survive restarts and are shared by every process
on the database. Against a daily cost cap, a campaign that is still running
counts its estimate (or what it has cost, if more) and a finished one what it
cost. A campaign counts on the UTC day it was submitted. Requests without a
requester (the terminal) and requesters listed as admins are exempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from core.errors import Limit, QuotaExceeded
from core.model import Origin, TerminalOrigin
from core.request import CampaignRequest

DAY_S = 86_400.0


def day_start(now: float) -> float:
    """The epoch second at which `now`'s UTC day began."""
    return now - now % DAY_S


@dataclass(frozen=True)
class Who:
    """Who asks and where: the scopes quotas count in (None where there is none)."""

    requester: str | None = None
    channel: str | None = None  # "<platform>:<channel id>"
    guild: str | None = None  # "<platform>:<workspace or server id>"

    @classmethod
    def of(cls, requester: str | None, origin: Origin | None) -> Who:
        """The scopes of a request from a front end's requester id and origin."""
        origin = origin or TerminalOrigin()
        platform, channel, guild = origin.platform, origin.channel, origin.guild
        return cls(
            requester=requester or None,
            channel=f"{platform}:{channel}" if channel else None,
            guild=f"{platform}:{guild}" if guild else None,
        )

    @property
    def any(self) -> bool:
        """Whether there is any scope to count in."""
        return any((self.requester, self.channel, self.guild))


class AuditEvent(str, Enum):
    """What an audit line records."""

    SUBMITTED = "submitted"  # stored and started; the quota ledger counts these
    REFUSED = "refused"  # a quota, cost cap or unpriced model said no; nothing stored
    BLOCKED = "blocked"  # the blocklist said no; nothing stored
    FINISHED = "finished"  # it ended (again, after a retry): outcome and actual cost


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit table: who asked what, where, estimated and actual cost."""

    at: float
    event: AuditEvent
    who: Who
    campaign_id: str | None = None
    theme: str = ""
    estimate_usd: float | None = None
    cost_usd: float | None = None
    reason: str | None = None  # the limit, blocklist entry or outcome


@dataclass(frozen=True)
class Spend:
    """One submitted campaign as the quota ledger sees it."""

    campaign_id: str
    at: float
    requester: str | None
    channel: str | None
    guild: str | None
    estimate_usd: float
    spent_usd: float  # what its steps have cost so far
    active: bool  # pending or running

    @property
    def charged_usd(self) -> float:
        """What it counts against a daily cost cap."""
        return max(self.estimate_usd, self.spent_usd) if self.active else self.spent_usd


@dataclass(frozen=True)
class SpendLine:
    """One row of `bot.py usage`: one requester's, channel's or server's campaigns."""

    scope: str  # "user", "channel" or "guild"
    key: str  # e.g. "slack:U1"; "" for campaigns without one (the terminal)
    campaigns: int
    refused: int  # refused or blocked requests
    estimate_usd: float
    cost_usd: float


@dataclass(frozen=True)
class Usage:
    """One scope's counts: campaigns started today, running now, dollars today."""

    today: int = 0
    running: int = 0
    cost_today_usd: float = 0.0

    @classmethod
    def of(cls, ledger: Iterable[Spend], scope: str, key: str | None, since: float) -> Usage:
        """Count the ledger rows of one scope (`scope` is a Spend field name)."""
        rows = [s for s in ledger if key is not None and getattr(s, scope) == key]
        today = [s for s in rows if s.at >= since]
        return cls(
            today=len(today),
            running=sum(s.active for s in rows),
            cost_today_usd=round(sum(s.charged_usd for s in today), 6),
        )


@dataclass(frozen=True)
class QuotaSettings:
    """Limits per scope and per campaign; 0 means unlimited (the default everywhere)."""

    user_daily: int = 0
    user_concurrent: int = 0
    channel_daily: int = 0
    channel_concurrent: int = 0
    guild_daily: int = 0
    guild_concurrent: int = 0
    products: int = 0
    cost_campaign_usd: float = 0.0
    cost_user_daily_usd: float = 0.0
    cost_channel_daily_usd: float = 0.0
    cost_guild_daily_usd: float = 0.0
    admins: frozenset[str] = frozenset()  # requester ids exempt from all of the above


ENV_NAMES = {  # QuotaSettings field (a Limit's value) -> environment variable
    "user_daily": "CAMPAIGN_QUOTA_USER_DAILY",
    "user_concurrent": "CAMPAIGN_QUOTA_USER_CONCURRENT",
    "channel_daily": "CAMPAIGN_QUOTA_CHANNEL_DAILY",
    "channel_concurrent": "CAMPAIGN_QUOTA_CHANNEL_CONCURRENT",
    "guild_daily": "CAMPAIGN_QUOTA_GUILD_DAILY",
    "guild_concurrent": "CAMPAIGN_QUOTA_GUILD_CONCURRENT",
    "products": "CAMPAIGN_QUOTA_PRODUCTS",
    "cost_campaign_usd": "CAMPAIGN_QUOTA_COST_CAMPAIGN",
    "cost_user_daily_usd": "CAMPAIGN_QUOTA_COST_USER_DAILY",
    "cost_channel_daily_usd": "CAMPAIGN_QUOTA_COST_CHANNEL_DAILY",
    "cost_guild_daily_usd": "CAMPAIGN_QUOTA_COST_GUILD_DAILY",
    "admins": "CAMPAIGN_QUOTA_ADMINS",
}
_SCOPES = ("user", "channel", "guild")
_FIELD = {"user": "requester", "channel": "channel", "guild": "guild"}


class QuotaPolicy:
    """Decides whether a request may start, given the ledger of its scopes."""

    def __init__(self, settings: QuotaSettings) -> None:
        self.settings = settings

    def exempt(self, who: Who) -> bool:
        """The terminal (no requester) and admins are not limited."""
        return who.requester is None or who.requester in self.settings.admins

    def check(
        self,
        request: CampaignRequest,
        who: Who,
        estimate_usd: float,
        ledger: Sequence[Spend],
        *,
        now: float,
    ) -> None:
        """Raise QuotaExceeded for the first limit the request would break."""
        if self.exempt(who):
            return
        self._per_campaign(request, estimate_usd, now)
        since = day_start(now)
        resets_at = since + DAY_S
        for scope in _SCOPES:
            key = getattr(who, _FIELD[scope])
            if key is None:
                continue
            usage = Usage.of(ledger, _FIELD[scope], key, since)
            self._scope(scope, key, usage, estimate_usd, now, resets_at)

    def check_action(
        self,
        campaign_cost_usd: float,
        who: Who,
        estimate_usd: float,
        ledger: Sequence[Spend],
        *,
        now: float,
    ) -> None:
        """The cost caps alone, for an action (Reroll, Animate) that adds spend to a campaign.

        Actions start no campaign, so the count and concurrency quotas do not
        apply; the per-campaign cap counts what the campaign has cost so far.
        """
        if self.exempt(who):
            return
        cap = self.settings.cost_campaign_usd
        total = round(campaign_cost_usd + estimate_usd, 6)
        if cap and total > cap:
            raise QuotaExceeded(
                Limit.COST_CAMPAIGN,
                used=total,
                allowed=cap,
                at=now,
                spent_usd=campaign_cost_usd,
                estimate_usd=estimate_usd,
            )
        since = day_start(now)
        for scope in _SCOPES:
            key = getattr(who, _FIELD[scope])
            if key is not None:
                usage = Usage.of(ledger, _FIELD[scope], key, since)
                self._daily_cost(scope, key, usage, estimate_usd, now, since + DAY_S)

    def _per_campaign(self, request: CampaignRequest, estimate_usd: float, now: float) -> None:
        limit = self.settings.products
        if limit and request.products > limit:
            raise QuotaExceeded(Limit.PRODUCTS, used=request.products, allowed=limit, at=now)
        cap = self.settings.cost_campaign_usd
        if cap and estimate_usd > cap:
            raise QuotaExceeded(
                Limit.COST_CAMPAIGN,
                used=estimate_usd,
                allowed=cap,
                at=now,
                estimate_usd=estimate_usd,
            )

    def _scope(
        self, scope: str, key: str, usage: Usage, estimate_usd: float, now: float, resets_at: float
    ) -> None:
        concurrent = getattr(self.settings, f"{scope}_concurrent")
        if concurrent and usage.running >= concurrent:
            raise QuotaExceeded(
                Limit(f"{scope}_concurrent"),
                used=usage.running,
                allowed=concurrent,
                at=now,
                key=key,
            )
        daily = getattr(self.settings, f"{scope}_daily")
        if daily and usage.today >= daily:
            raise QuotaExceeded(
                Limit(f"{scope}_daily"),
                used=usage.today,
                allowed=daily,
                resets_at=resets_at,
                at=now,
                key=key,
            )
        self._daily_cost(scope, key, usage, estimate_usd, now, resets_at)

    def _daily_cost(
        self, scope: str, key: str, usage: Usage, estimate_usd: float, now: float, resets_at: float
    ) -> None:
        cap = getattr(self.settings, f"cost_{scope}_daily_usd")
        total = round(usage.cost_today_usd + estimate_usd, 6)
        if cap and total > cap:
            raise QuotaExceeded(
                Limit(f"cost_{scope}_daily_usd"),
                used=total,
                allowed=cap,
                resets_at=resets_at,
                at=now,
                key=key,
                spent_usd=usage.cost_today_usd,
                estimate_usd=estimate_usd,
            )
