"""The words of every front end: what the core's facts read as, written once.

The core reports facts (a step's place in line, a quota's limit and numbers,
a campaign's state); the terminal, Slack and Discord word them here, so each
refusal and status phrase is the same everywhere. Each front end adds only its
own frame (Slack's "⚠️ " and escaping, Discord's "❌ ", the terminal's "error: ").
"""

from __future__ import annotations

from core.errors import Limit, NotFinished, QuotaExceeded
from core.quotas import ENV_NAMES
from core.scheduler import ordinal


def queue_place(place: int, step: str) -> str:
    """A step waiting for a slot: 'queued: 2nd in line for video'."""
    return f"queued: {ordinal(place)} in line for {step}"


def usd(amount: float) -> str:
    """Dollars with cents, or with a tenth of a cent below one dollar."""
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.3f}"


def resets_text(resets_at: float, now: float) -> str:
    """When a daily limit starts over, e.g. `resets at 00:00 UTC (in 3 h 05 min)`."""
    minutes = max(1, round((resets_at - now) / 60))
    return f"resets at 00:00 UTC (in {minutes // 60} h {minutes % 60:02d} min)"


def limit_setting(limit: Limit) -> str:
    """The environment variable an operator sets a limit with (CAMPAIGN_QUOTA_USER_DAILY)."""
    return ENV_NAMES[limit.value]


def refusal(exc: Exception) -> str:
    """What a user is told about a refused or impossible request, without any frame."""
    if isinstance(exc, QuotaExceeded):
        return quota(exc)
    if isinstance(exc, NotFinished):
        return not_finished(exc)
    return str(exc)


def not_finished(exc: NotFinished) -> str:
    """'campaign X is still running; reroll once it has finished'."""
    then = f"; {exc.action} once it has finished" if exc.action else ""
    return f"campaign {exc.campaign_id} is still {exc.status}{then}"


def quota(exc: QuotaExceeded) -> str:
    """A quota or cost cap's refusal: what was asked or used, what is allowed, what to do."""
    limit = exc.limit
    if limit is Limit.PRODUCTS:
        allowed = int(exc.allowed)
        return (
            f"quota: {int(exc.used)} products is more than the {allowed} allowed per"
            f" campaign; ask for {allowed} or fewer"
        )
    if limit is Limit.COST_CAMPAIGN:
        return _campaign_cost(exc)
    has, whose = _subject(limit.scope or "user", exc.key or "")
    if limit.value.endswith("_concurrent"):
        allowed = int(exc.allowed)
        return (
            f"quota: {has} {_n(int(exc.used), 'campaign')} running and {allowed}"
            f" {'is' if allowed == 1 else 'are'} allowed at once; try again when one of"
            f" {whose} running campaigns finishes"
        )
    resets = resets_text(exc.resets_at or exc.at, exc.at)
    if limit.value.startswith("cost_"):
        return (
            f"cost cap: {whose} campaigns today come to {usd(exc.spent_usd or 0.0)} and"
            f" this one is estimated at {usd(exc.estimate_usd or 0.0)}: {usd(exc.used)}, over"
            f" the {usd(exc.allowed)} allowed per day; {resets}"
        )
    return (
        f"quota: {has} started {int(exc.used)} of the {_n(int(exc.allowed), 'campaign')} allowed"
        f" per day; {resets}"
    )


def _campaign_cost(exc: QuotaExceeded) -> str:
    if exc.spent_usd is None:  # a new campaign
        return (
            f"cost cap: this campaign is estimated at {usd(exc.used)}, over the"
            f" {usd(exc.allowed)} allowed per campaign; ask for fewer products or no videos"
        )
    return (  # an action on a campaign that has cost something already
        f"cost cap: this campaign has cost {usd(exc.spent_usd)} and this is"
        f" estimated at {usd(exc.estimate_usd or 0.0)}: {usd(exc.used)}, over the"
        f" {usd(exc.allowed)} allowed per campaign"
    )


def _subject(scope: str, key: str) -> tuple[str, str]:
    """("you have", "your") and the like, for a scope's messages."""
    if scope == "user":
        return "you have", "your"
    if scope == "channel":
        return "this channel has", "this channel's"
    place = "workspace" if key.startswith("slack:") else "server"
    return f"this {place} has", f"this {place}'s"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
