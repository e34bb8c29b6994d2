"""The spend guard at the service's door: screening, priced models, quotas, audit lines.

`CampaignService.submit` asks a `Gate` before anything is stored or started:

1. `screen`: every model the request names must have a known price (else
   InvalidRequest), and its text must pass the blocklist (else RequestBlocked,
   with a `blocked` audit line);
2. `create`: the quota policy reads the ledger and the campaign is inserted
   with its `submitted` audit line in one store transaction (else
   QuotaExceeded, with a `refused` audit line and nothing stored);
3. `finished`: when the campaign ends, a `finished` line with its outcome and
   actual cost.

Each of these also writes one structured log line (see core/logs.py).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

from core.errors import InvalidRequest, QuotaExceeded, RequestBlocked
from core.logs import log_event
from core.model import Campaign
from core.quotas import (
    ENV_NAMES,
    AuditEntry,
    AuditEvent,
    QuotaPolicy,
    QuotaSettings,
    Who,
    day_start,
)
from core.request import CampaignRequest
from core.screening import Blocklist
from core.store_ports import SpendLedger

log = logging.getLogger(__name__)


class Gate:
    """Decides whether a request may be spent on, and keeps the audit ledger."""

    def __init__(
        self,
        store: SpendLedger,
        *,
        quotas: QuotaSettings,
        blocklist: Blocklist,
        priced_models: Mapping[str, frozenset[str]],
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.policy = QuotaPolicy(quotas)
        self.blocklist = blocklist
        self.priced_models = priced_models
        self.clock = clock

    def screen_models(self, request: CampaignRequest) -> None:
        """Refuse a model the operator does not offer (InvalidRequest): a default or one
        marked requestable, each with a price."""
        for kind, offered in self.priced_models.items():
            model = getattr(request.models, kind, None)
            if model and model.split(":", 1)[0] not in offered:
                raise InvalidRequest(
                    f"{kind}_model", f"{model} is not offered here", ", ".join(sorted(offered))
                )

    async def screen(self, request: CampaignRequest, who: Who, estimate_usd: float) -> None:
        """Refuse blocked text (RequestBlocked), leaving an audit line."""
        try:
            self.blocklist.screen(request)
        except RequestBlocked as exc:
            entry = _entry(AuditEvent.BLOCKED, request, who, estimate_usd, self.clock())
            await self._refuse(entry, f"{exc.field} matched blocklist entry {exc.entry!r}")
            raise

    async def check(self, request: CampaignRequest, who: Who, estimate_usd: float) -> None:
        """Raise QuotaExceeded now if the quotas would refuse the request (nothing stored)."""
        now = self.clock()
        exempt = self.policy.exempt(who)
        ledger = () if exempt else await self.store.usage(who, day_start(now))
        try:
            self.policy.check(request, who, estimate_usd, ledger, now=now)
        except QuotaExceeded as exc:
            entry = _entry(AuditEvent.REFUSED, request, who, estimate_usd, now)
            await self._refuse(entry, _limit_reason(exc))
            raise

    async def create(self, campaign: Campaign, who: Who, estimate_usd: float) -> None:
        """Check the quotas and store the campaign in one transaction, or raise QuotaExceeded."""
        now = campaign.created_at
        request = campaign.request
        entry = _entry(AuditEvent.SUBMITTED, request, who, estimate_usd, now, campaign.id)
        check = functools.partial(self.policy.check, request, who, estimate_usd, now=now)
        try:
            await self.store.create_campaign_checked(campaign, entry, day_start(now), check)
        except QuotaExceeded as exc:
            refused = replace(entry, event=AuditEvent.REFUSED, campaign_id=None)  # none stored
            await self._refuse(refused, _limit_reason(exc))
            raise
        _log(entry, f"campaign {campaign.id} submitted")

    async def action(self, campaign: Campaign, who: Who, estimate_usd: float) -> None:
        """Raise QuotaExceeded (with a `refused` audit line) if an action would break a cost cap."""
        now = self.clock()
        ledger = () if self.policy.exempt(who) else await self.store.usage(who, day_start(now))
        try:
            self.policy.check_action(campaign.cost_usd, who, estimate_usd, ledger, now=now)
        except QuotaExceeded as exc:
            request, cid = campaign.request, campaign.id
            entry = _entry(AuditEvent.REFUSED, request, who, estimate_usd, now, cid)
            await self._refuse(entry, _limit_reason(exc))
            raise

    async def finished(self, campaign: Campaign, estimate_usd: float) -> None:
        """One audit line and one log line with the outcome and the actual cost."""
        status = campaign.status.value
        entry = AuditEntry(
            self.clock(),
            AuditEvent.FINISHED,
            Who.of(campaign.requester, campaign.origin),
            campaign.id,
            campaign.request.theme,
            estimate_usd=estimate_usd,
            cost_usd=campaign.cost_usd,
            reason=status,
        )
        try:
            await self.store.audit(entry)
        except Exception:  # the campaign is finished and stored: a lost audit line can't undo it
            log.exception("audit line for campaign %s failed", campaign.id)
        message = f"campaign {campaign.id} {status}, cost ${campaign.cost_usd:.3f}"
        _log(entry, message, outcome=status, duration_s=campaign.elapsed_s)

    async def _refuse(self, entry: AuditEntry, reason: str) -> None:
        entry = replace(entry, reason=reason)
        await self.store.audit(entry)
        _log(entry, f"request {entry.event.value}: {reason}", level=logging.WARNING)


def _entry(
    event: AuditEvent,
    request: CampaignRequest,
    who: Who,
    estimate_usd: float,
    at: float,
    campaign_id: str | None = None,
) -> AuditEntry:
    return AuditEntry(at, event, who, campaign_id, request.theme, estimate_usd=estimate_usd)


def _log(entry: AuditEntry, message: str, level: int = logging.INFO, **fields: object) -> None:
    """The audit entry as one structured log line (event `campaign.<event>`)."""
    who = entry.who
    fields.setdefault("outcome", entry.event.value)
    log_event(
        log,
        f"campaign.{entry.event.value}",
        message,
        level=level,
        campaign_id=entry.campaign_id,
        requester=who.requester,
        channel=who.channel,
        guild=who.guild,
        theme=entry.theme,
        estimate_usd=entry.estimate_usd,
        cost_usd=entry.cost_usd,
        reason=entry.reason,
        **fields,
    )


def _limit_reason(exc: QuotaExceeded) -> str:
    """The audit line's reason: the setting that refused, and its numbers."""
    return f"{ENV_NAMES[exc.limit]}: used {exc.used:g}, allowed {exc.allowed:g}"
