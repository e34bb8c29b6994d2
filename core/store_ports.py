"""The store's ports: three, one per job, so each part of the core names only what it uses.

`CampaignRecords` (runs and pipelines), `CampaignLeases` (ownership and
recovery), `SpendLedger` (the spend guard); `CampaignStore` is all three, for
the wiring. SQLite and PostgreSQL implement them (storage/); fakes in tests
satisfy them without inheriting from anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from core.eta import Sample
from core.model import Campaign, CampaignStatus, Lease, PlanCall, Product, StepRecord
from core.quotas import AuditEntry, Spend, SpendLine, Who


class CampaignRecords(Protocol):
    """Campaigns, their products and steps: what runs read and write."""

    async def create_campaign(self, campaign: Campaign) -> None:
        """Insert a campaign with its products and steps."""
        ...

    async def add_products(self, campaign_id: str, products: Sequence[Product]) -> None:
        """Insert planned products and their steps."""
        ...

    async def save_step(self, campaign_id: str, step: StepRecord, owner: str) -> None:
        """Write one step's state, only while `owner` owns the campaign (else LeaseLost)."""
        ...

    async def save_plan(self, campaign_id: str, part: str, call: PlanCall, owner: str) -> None:
        """Remember a planning prediction or the intent to create it (fenced by owner)."""
        ...

    async def save_status(
        self,
        campaign_id: str,
        status: CampaignStatus,
        *,
        owner: str,
        started_at: float | None = None,
        finished_at: float | None = None,
        contact_sheet: str | None = None,
        error: str | None = None,
        reel: str | None = None,
        timeline: str | None = None,
    ) -> None:
        """Write the campaign's status and, when given, its other fields (fenced by owner)."""
        ...

    async def save_reel(
        self, campaign_id: str, reel: str | None, owner: str, *, due: bool = False
    ) -> None:
        """Store the reel's path (None: there is none), or with `due` mark one as owed
        (fenced by owner)."""
        ...

    async def get(self, campaign_id: str) -> Campaign:
        """The campaign with products and steps; raises CampaignNotFound."""
        ...

    async def step_samples(self, limit: int = 500) -> Sequence[Sample]:
        """How long succeeded steps took (start to finish), newest first, for ETAs."""
        ...

    async def recent(self, limit: int, requester: str | None = None) -> Sequence[Campaign]:
        """Newest campaigns first (only one requester's, if given), with products and steps."""
        ...


class CampaignLeases(Protocol):
    """Who runs each unfinished campaign, and the cancel flag other processes raise."""

    async def claim(
        self,
        campaign_id: str,
        owner: str,
        now: float,
        stale_before: float,
        replacing: str | None = None,
    ) -> bool:
        """Take the campaign for `owner` unless another owner beat after `stale_before`."""
        ...

    async def heartbeat(self, campaign_id: str, owner: str, now: float) -> bool:
        """Say that `owner` is still running the campaign; False if it lost it."""
        ...

    async def release(self, campaign_id: str, owner: str) -> None:
        """Give the campaign up so that the next process takes it over at once."""
        ...

    async def unfinished(self) -> Sequence[Lease]:
        """Who holds each pending or running campaign."""
        ...

    async def reels_due(self) -> Sequence[Lease]:
        """Who last held each finished campaign whose reel is owed (a crash came between)."""
        ...

    async def orphans(self, stale_before: float) -> Sequence[str]:
        """Unfinished campaigns whose owner has not beaten since `stale_before`."""
        ...

    async def request_cancel(self, campaign_id: str) -> None:
        """Flag a campaign for cancellation (seen by whichever process runs it)."""
        ...

    async def cancel_requested(self, campaign_id: str) -> bool:
        """Whether cancellation was requested."""
        ...

    async def clear_cancel(self, campaign_id: str) -> None:
        """Forget a cancellation request (before a retry)."""
        ...


@runtime_checkable
class CancelNotices(Protocol):
    """A store's optional capability: the keep-alive waits here between polls of the cancel
    flag; PostgreSQL returns at a NOTIFY of a cancel, SQLite sleeps. The poll stays."""

    async def wait_cancel(self, campaign_id: str, timeout_s: float) -> None:
        """Return after `timeout_s`, or sooner when a cancel of the campaign is announced."""
        ...


class SpendLedger(Protocol):
    """The audit ledger that quotas count from, and what it adds up to."""

    async def create_campaign_checked(
        self,
        campaign: Campaign,
        entry: AuditEntry,
        since: float,
        check: Callable[[Sequence[Spend]], None],
    ) -> None:
        """Atomically: `check(usage(entry.who, since))` (raises to refuse), then insert both."""
        ...

    async def audit(self, entry: AuditEntry) -> None:
        """Append one line to the audit ledger."""
        ...

    async def usage(self, who: Who, since: float) -> Sequence[Spend]:
        """Submitted campaigns of who's scopes: since `since`, or still unfinished."""
        ...

    async def spend_by(self, since: float | None = None) -> Sequence[SpendLine]:
        """Campaigns, refusals, estimated and actual cost per user, channel and guild."""
        ...


class CampaignStore(CampaignRecords, CampaignLeases, SpendLedger, Protocol):
    """All of the durable state (SQLite in production): what the wiring hands the service."""
