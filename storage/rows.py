"""Domain records to column values and database rows back to records, for both dialects
(no queries here: the SQLite and PostgreSQL parts query, these convert)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from core.model import (
    Action,
    Campaign,
    CampaignStatus,
    PlanCall,
    Product,
    ProductPlan,
    StepName,
    StepRecord,
    StepStatus,
    origin_from_json,
)
from core.quotas import AuditEntry, AuditEvent, Spend, Who
from core.request import CampaignRequest

# The reel column holds the reel's path once it is written; this, while one is owed (a
# finished campaign's reel is rendered after its summary: a crash in between leaves it
# owed, and `reels_due` finds it for resume); NULL when there is none.
REEL_DUE = ""
FINISHED = ("succeeded", "partial", "failed")  # the outcomes a reel is rendered for

STEP_COLUMNS = (
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "provider_id",
    "output",
    "error",
    "cost_usd",
    "worker",
    "model",
    "predict_time_s",
    "output_url",
    "intent_at",
    "sent_input",
)


CAMPAIGN_COLUMNS = (
    "id", "theme", "request_json", "status", "executor", "generator", "created_at",
    "started_at", "finished_at", "contact_sheet", "error", "requester", "origin_json",
)  # fmt: skip
PRODUCT_COLUMNS = (
    "campaign_id", "idx", "name", "product_type", "tagline", "image_prompt", "video_prompt",
    "attempt_of", "action",
)  # fmt: skip
AUDIT_COLUMNS = (
    "at", "event", "campaign_id", "requester", "channel", "guild", "theme", "estimate_usd",
    "cost_usd", "reason",
)  # fmt: skip


PLAN_CALL_COLUMNS = ("campaign_id", "part", "provider_id", "intent_at", "sent_input")


_PLAN_REPLACED = (
    " ON CONFLICT (campaign_id, part) DO UPDATE SET provider_id = excluded.provider_id,"
    " intent_at = excluded.intent_at, sent_input = excluded.sent_input"
)


def upsert_plan_sql(mark: str) -> str:
    """Insert or replace one planning call, with the dialect's parameter `mark`."""
    return insert_sql("plan_calls", PLAN_CALL_COLUMNS, mark) + _PLAN_REPLACED


def fenced_plan_sql(mark: str) -> str:
    """`upsert_plan_sql`, written only while the campaign (the two parameters after the
    call's values: its id, the owner) is that owner's: no row changed, nothing written."""
    marks = ", ".join([mark] * len(PLAN_CALL_COLUMNS))
    return (
        f"INSERT INTO plan_calls ({', '.join(PLAN_CALL_COLUMNS)}) SELECT {marks}"
        f" WHERE EXISTS (SELECT 1 FROM campaigns WHERE id = {mark} AND owner = {mark})"
        + _PLAN_REPLACED
    )


def insert_sql(table: str, columns: Sequence[str], mark: str) -> str:
    """`INSERT INTO table (columns) VALUES (...)` with the dialect's parameter `mark`."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def campaign_values(campaign: Campaign) -> tuple[Any, ...]:
    """The campaign's values in CAMPAIGN_COLUMNS order."""
    return (
        campaign.id,
        campaign.request.theme,
        json.dumps(campaign.request.to_dict()),
        campaign.status.value,
        campaign.executor,
        campaign.generator,
        campaign.created_at,
        campaign.started_at,
        campaign.finished_at,
        campaign.contact_sheet,
        campaign.error,
        campaign.requester,
        json.dumps(campaign.origin.to_json()),
    )


def product_values(campaign_id: str, product: Product) -> tuple[Any, ...]:
    """The product's values in PRODUCT_COLUMNS order."""
    p = product.plan
    action = product.action.value if product.action else None
    return (campaign_id, p.index, p.name, p.product_type, p.tagline, p.image_prompt,
            p.video_prompt, product.attempt_of, action)  # fmt: skip


def audit_values(entry: AuditEntry) -> tuple[Any, ...]:
    """The audit line's values in AUDIT_COLUMNS order."""
    who = entry.who
    return (entry.at, entry.event.value, entry.campaign_id, who.requester, who.channel,
            who.guild, entry.theme, entry.estimate_usd, entry.cost_usd, entry.reason)  # fmt: skip


def step_values(step: StepRecord) -> list[Any]:
    """The step's values in STEP_COLUMNS order."""
    values = [getattr(step, c) for c in STEP_COLUMNS]
    values[0] = step.status.value
    return values


def campaigns(
    rows: Sequence[Any], products: Sequence[Any], steps: Sequence[Any], calls: Sequence[Any]
) -> list[Campaign]:
    """Campaign rows with their product, step and plan-call rows (of all of them, in order)."""
    products_of: dict[str, list[Any]] = {}
    steps_of: dict[str, list[StepRecord]] = {}
    calls_of: dict[str, dict[str, PlanCall]] = {}
    for product in products:
        products_of.setdefault(product["campaign_id"], []).append(product)
    for step in steps:
        steps_of.setdefault(step["campaign_id"], []).append(step_record(step))
    for call in calls:
        calls_of.setdefault(call["campaign_id"], {})[call["part"]] = PlanCall(
            call["provider_id"], call["intent_at"], call["sent_input"]
        )
    return [
        assemble(
            row,
            products_of.get(row["id"], []),
            steps_of.get(row["id"], []),
            calls_of.get(row["id"], {}),
        )
        for row in rows
    ]


def assemble(
    row: Any,
    products: Sequence[Any],
    steps: Sequence[StepRecord],
    calls: dict[str, PlanCall] | None = None,
) -> Campaign:
    """A campaign row with its product rows, steps and planning calls."""
    return Campaign(
        id=row["id"],
        request=CampaignRequest.from_dict(json.loads(row["request_json"])),
        status=CampaignStatus(row["status"]),
        created_at=row["created_at"],
        executor=row["executor"],
        generator=row["generator"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        contact_sheet=row["contact_sheet"],
        error=row["error"],
        reel=row["reel"] or None,  # REEL_DUE: not written yet
        timeline=row["timeline"],
        products=tuple(product(p, steps) for p in products),
        requester=row["requester"],
        origin=origin_from_json(json.loads(row["origin_json"]) or {}),
        plan_calls=calls or {},
    )


def plan(row: Any) -> ProductPlan:
    """A product row's plan."""
    return ProductPlan(
        row["idx"],
        row["name"],
        row["product_type"],
        row["tagline"],
        row["image_prompt"],
        row["video_prompt"],
    )


def product(row: Any, steps: Sequence[StepRecord]) -> Product:
    """A product row with its steps (taken from all the campaign's), in chain order."""
    own_plan, order = plan(row), list(StepName)
    own = sorted(
        (s for s in steps if s.product_index == own_plan.index),
        key=lambda s: order.index(s.name),
    )
    return Product(
        own_plan,
        tuple(own),
        attempt_of=row["attempt_of"],
        action=Action(row["action"]) if row["action"] else None,
    )


def step_record(row: Any) -> StepRecord:
    """A step row."""
    return StepRecord(
        product_index=row["product_idx"],
        name=StepName(row["name"]),
        status=StepStatus(row["status"]),
        attempts=row["attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        provider_id=row["provider_id"],
        output=row["output"],
        error=row["error"],
        cost_usd=row["cost_usd"],
        worker=row["worker"],
        model=row["model"],
        predict_time_s=row["predict_time_s"],
        output_url=row["output_url"],
        intent_at=row["intent_at"],
        sent_input=row["sent_input"],
    )


def audit(row: Any) -> AuditEntry:
    """An audit row."""
    return AuditEntry(
        at=row["at"],
        event=AuditEvent(row["event"]),
        who=Who(row["requester"], row["channel"], row["guild"]),
        campaign_id=row["campaign_id"],
        theme=row["theme"],
        estimate_usd=row["estimate_usd"],
        cost_usd=row["cost_usd"],
        reason=row["reason"],
    )


def spend(row: Any) -> Spend:
    """A row of the ledger query."""
    return Spend(row[0], row[1], row[2], row[3], row[4], row[5], row[6], active=bool(row[7]))
