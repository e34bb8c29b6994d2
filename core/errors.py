"""One error tree for the whole bot.

    CampaignError                 root: anything the bot raises on purpose
     +-- InvalidRequest           bad user input; names field, problem, allowed
     +-- CampaignNotFound         unknown campaign id
     +-- CampaignStateError       operation not allowed in the current state
     +-- ConfigError              a setting from the environment or CLI is invalid
     +-- LeaseLost                another process owns the campaign now: stop, spend nothing
     +-- StepError                one step of one product failed
          +-- PermanentStepError  retrying will not help (bad input, model error)
          +-- TransientStepError  may succeed later; carries a suggested delay

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


class LeaseLost(CampaignError):
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


class ConfigError(CampaignError):
    """A setting from the environment or the command line is invalid."""
