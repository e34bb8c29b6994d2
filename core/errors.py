"""One error tree for what users are told, and the operator's and internal errors beside it.

    CampaignError                 root: anything the bot refuses or fails on purpose (users see it)
     +-- InvalidRequest           bad user input; names field, problem, allowed
     +-- CampaignNotFound         unknown campaign id
     +-- CampaignStateError       operation not allowed in the current state
     +-- QuotaExceeded            a quota or cost cap refuses the request; names limit and reset
     +-- RequestBlocked           the request's text matches the blocklist; names the field
     +-- StepError                one step of one product failed
          +-- PermanentStepError  retrying will not help (bad input, model error)
          +-- TransientStepError  may succeed later; carries a suggested delay

    ConfigError(Exception)        the operator's: a setting from the environment or CLI is invalid
    LeaseLost(Exception)          internal signal: another process owns the campaign now: stop,
                                  spend nothing (never shown to a user)

User-facing text is made at the edge (one handler per front end); messages
here are short, plain and never contain secrets.
"""

from __future__ import annotations


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


class QuotaExceeded(CampaignError):
    """A quota or cost cap refuses the request; nothing was stored or started.

    `limit` is the setting's name (e.g. CAMPAIGN_QUOTA_USER_DAILY); `used` and
    `allowed` are its numbers; `resets_at` (epoch s) is when a daily limit
    starts over, None for per-campaign and concurrency limits.
    """

    def __init__(
        self,
        limit: str,
        text: str,
        *,
        used: float,
        allowed: float,
        resets_at: float | None = None,
    ) -> None:
        self.limit = limit
        self.used = used
        self.allowed = allowed
        self.resets_at = resets_at
        super().__init__(text)


class RequestBlocked(CampaignError):
    """A request field matches the blocklist; nothing was stored or started.

    The message names the field only: neither the matched entry nor the list
    is shown to the user (`entry` is kept for the audit line).
    """

    def __init__(self, field: str, entry: str = "") -> None:
        self.field = field
        self.entry = entry
        super().__init__(f"{field}: not allowed by this bot's content rules; nothing was started")
