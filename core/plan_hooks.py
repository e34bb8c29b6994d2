"""The hooks a paying planner stores its planning predictions through (one per part)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from core.errors import LeaseLost
from core.lease import Stop
from core.model import Campaign, PlanCall
from core.ports import PlanContext, StepHooks
from core.store_ports import CampaignRecords


def plan_context(
    campaign: Campaign,
    records: CampaignRecords,
    owner: str,
    clock: Callable[[], float],
    stop: Stop,
) -> PlanContext:
    """Hooks that store each planning prediction like a step's (fenced by `owner`: a lost
    campaign sets `stop.keep` and raises LeaseLost), and what an earlier run left."""
    calls = dict(campaign.plan_calls)

    def hooks_for(part: str) -> StepHooks:
        async def save(call: PlanCall) -> None:
            calls[part] = call
            try:
                await records.save_plan(campaign.id, part, call, owner)
            except LeaseLost:
                stop.keep = True
                raise

        async def remember(provider_id: str) -> None:
            await save(replace(calls.get(part, PlanCall()), provider_id=provider_id))

        async def before_spend(sent: str) -> None:
            await save(PlanCall(None, clock(), sent))

        return StepHooks(
            _quiet,
            remember,
            before_spend=before_spend,
            keep_on_stop=lambda: stop.keep,
            may_spend=stop.may_spend,
        )

    return PlanContext(
        hooks_for,
        dict(campaign.plan_calls),
        tuple(p.plan for p in campaign.products if p.attempt_of is None),
        campaign_id=campaign.id,
    )


async def _quiet(_message: str) -> None:
    return None
