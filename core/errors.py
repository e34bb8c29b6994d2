"""One error tree for what users are told, and the operator's and internal errors beside it.

    CampaignError                 root: anything the bot refuses or fails on purpose (users see it)
     +-- InvalidRequest           bad user input; names field, problem, allowed
     +-- CampaignNotFound         unknown campaign id
     +-- CampaignStateError       operation not allowed in the current state
     |    +-- NotFinished         it has not finished yet (status, the action that waits)
     +-- QuotaExceeded            a quota or cost cap refuses the request; limit, numbers, reset
     +-- RequestBlocked           the request's text matches the blocklist; names the field
     +-- StepError                one step of one product failed
          +-- PermanentStepError  retrying will not help (bad input, model error)
          +-- TransientStepError  may succeed later; carries a suggested delay

    ConfigError(Exception)        the operator's: a setting from the environment or CLI is invalid
    LeaseLost(Exception)          internal signal: another process owns the campaign now: stop,
                                  spend nothing (never shown to a user)

User-facing text is made at the edge: bot/words.py words the errors that
carry facts (NotFinished, QuotaExceeded) for every front end; the other
messages here are short, plain and never contain secrets.
"""

from __future__ import annotations

from enum import Enum


class CampaignError(Exception):
    """Root of every error the bot raises on purpose."""


class InvalidRequest(CampaignError):
    """A campaign request that cannot be accepted; nothing was stored or started."""

    def __init__(
        self,
        field: str,
        problem: str,
        allowed: str,
        suggestion: str | None = None,
    ) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        self.suggestion = suggestion
        text = f"{field}: {problem} (allowed: {allowed})"
        if suggestion:
            text += f"; did you mean {suggestion}?"
        super().__init__(text)


class LeaseLost(Exception):
    """This process no longer owns the campaign (its lease lapsed and another took it).

    The run stops here at once and makes no further paid call; nothing is
    cancelled on the provider, because the new owner is using it.
    """

    def __init__(self, campaign_id: str = "") -> None:
        self.campaign_id = campaign_id
        what = f"campaign {campaign_id}" if campaign_id else "the campaign"
        super().__init__(f"{what} is now run by another process")


class CampaignNotFound(CampaignError):
    """No campaign has this id."""

    def __init__(self, campaign_id: str) -> None:
        self.campaign_id = campaign_id
        super().__init__(f"no campaign with id {campaign_id!r}")


class CampaignStateError(CampaignError):
    """The campaign is not in a state that allows this operation."""


class NotFinished(CampaignStateError):
    """The campaign has not finished (`status`: "pending" or "running"), or a run of it is
    still live here; `action` ("reroll", "animate", or "") waits until it has."""

    def __init__(self, campaign_id: str, status: str, action: str = "") -> None:
        self.campaign_id = campaign_id
        self.status = status
        self.action = action
        super().__init__(f"{campaign_id} {status}" + (f" ({action})" if action else ""))


class StepError(CampaignError):
    """A step failed; the message is safe to show to the user."""


class PermanentStepError(StepError):
    """A failure that retrying the same step will not fix."""


class TransientStepError(StepError):
    """A failure that may pass; `delay_s` is how long to wait before retrying."""

    def __init__(self, message: str, delay_s: float = 1.0) -> None:
        self.delay_s = delay_s
        super().__init__(message)


class ConfigError(Exception):
    """A setting from the environment or the command line is invalid."""


class Limit(str, Enum):
    """Which quota or cost cap refused: the QuotaSettings field it reads."""

    USER_DAILY = "user_daily"
    USER_CONCURRENT = "user_concurrent"
    CHANNEL_DAILY = "channel_daily"
    CHANNEL_CONCURRENT = "channel_concurrent"
    GUILD_DAILY = "guild_daily"
    GUILD_CONCURRENT = "guild_concurrent"
    PRODUCTS = "products"
    COST_CAMPAIGN = "cost_campaign_usd"
    COST_USER_DAILY = "cost_user_daily_usd"
    COST_CHANNEL_DAILY = "cost_channel_daily_usd"
    COST_GUILD_DAILY = "cost_guild_daily_usd"

    @property
    def scope(self) -> str | None:
        """The scope a limit counts in ("user", "channel", "guild"); None per campaign."""
        head = self.value.removeprefix("cost_").split("_")[0]
        return head if head in ("user", "channel", "guild") else None


class QuotaExceeded(CampaignError):
    """A quota or cost cap refuses the request; nothing was stored or started.

    The facts, worded at the edge: `limit` says which; `used` and `allowed`
    are its numbers (for a cost cap, `used` is the total with this request:
    `spent_usd` so far plus `estimate_usd`); `key` is the scope's key
    (e.g. "slack:T1"); `resets_at` (epoch s) is when a daily limit starts
    over, None for per-campaign and concurrency limits; `at` is when it refused.
    """

    def __init__(
        self,
        limit: Limit,
        *,
        used: float,
        allowed: float,
        resets_at: float | None = None,
        at: float = 0.0,
        key: str | None = None,
        spent_usd: float | None = None,
        estimate_usd: float | None = None,
    ) -> None:
        self.limit = limit
        self.used = used
        self.allowed = allowed
        self.resets_at = resets_at
        self.at = at
        self.key = key
        self.spent_usd = spent_usd
        self.estimate_usd = estimate_usd
        super().__init__(f"{limit.value}: used {used:g}, allowed {allowed:g}")


class RequestBlocked(CampaignError):
    """A request field matches the blocklist; nothing was stored or started.

    The message names the field only: neither the matched entry nor the list
    is shown to the user (`entry` is kept for the audit line).
    """

    def __init__(self, field: str, entry: str = "") -> None:
        self.field = field
        self.entry = entry
        super().__init__(f"{field}: not allowed by this bot's content rules; nothing was started")
