"""LlmPlanner: one text prediction per campaign returns the N product plans as JSON.

A bad answer is asked for once more (with a stricter instruction); if that
fails too, or the model cannot be reached, the offline planner makes the
plans and the returned `Plans.note` says so, which the service shows in the
campaign's progress.
"""

from __future__ import annotations

import json
import logging

from adapters.replicate_api.catalog import Binding
from adapters.replicate_api.generator import ReplicateRuntime, outcome_error
from adapters.replicate_api.http import Refused
from adapters.replicate_api.predict import QUIET, REUSABLE, predict
from adapters.replicate_api.predictions import PredictionApi
from adapters.replicate_api.wire import Prediction
from core.errors import PermanentStepError, StepError
from core.model import StepKind
from core.plan_json import PlanFormatError, parse_plans, plan_prompt
from core.planner import OfflinePlanner
from core.ports import PlanContext, Planner, Plans
from core.request import CampaignRequest

log = logging.getLogger(__name__)
INSTRUCTION = "You are a merchandise designer. Answer with JSON only."


def answer_text(output: object) -> str:
    """A language model's output as one string (it arrives as a list of pieces)."""
    if isinstance(output, list):
        return "".join(str(piece) for piece in output)
    return "" if output is None else str(output)


class LlmPlanner:
    """Plans from a Replicate language model, with the offline planner as fallback."""

    name = "replicate"

    def __init__(self, runtime: ReplicateRuntime, fallback: Planner | None = None) -> None:
        self.runtime = runtime
        self.fallback = fallback or OfflinePlanner()

    async def plan(self, request: CampaignRequest, ctx: PlanContext | None = None) -> Plans:
        """Exactly request.products plans; falls back to the offline planner on failure.

        With `ctx`, the planning prediction is stored like a step's, and one a
        crash left behind (stored id, or only the intent) is used, not paid again.
        """
        reason = ""
        for strict in (False, True):
            try:
                answer = await self._ask(request, ctx, strict=strict)
                return Plans(parse_plans(answer, request.products))
            except PlanFormatError as exc:
                reason = f"the model's plans were unusable ({exc})"
            except StepError as exc:
                reason = str(exc)
                break  # the model or the API failed: asking again will not help
            log.info("LLM plans rejected (%s)%s", reason, "" if strict else "; asking again")
        log.warning("falling back to the offline planner: %s", reason)
        plans = await self.fallback.plan(request)
        return Plans(plans, note=f"fell back to the offline planner: {reason}")

    async def _ask(self, request: CampaignRequest, ctx: PlanContext | None, *, strict: bool) -> str:
        api, catalog = self.runtime.current().api, self.runtime.catalog
        binding = await catalog.bind(api.http, StepKind.TEXT, request.models.text)
        existing = None
        if ctx is not None and ctx.provider_id and not strict:
            existing = await _reusable(api, ctx.provider_id)
        try:
            prediction = await self._predict(api, binding, request, ctx, existing, strict=strict)
        except Refused as refused:  # a community model, or a schema changed since it was read
            again = await catalog.after_refusal(api.http, binding, refused)
            if again is None:
                raise
            prediction = await self._predict(api, again, request, ctx, None, strict=strict)
        if (error := outcome_error(prediction)) is not None:
            raise StepError(error)
        return answer_text(prediction.output)

    async def _predict(
        self,
        api: PredictionApi,
        binding: Binding,
        request: CampaignRequest,
        ctx: PlanContext | None,
        existing: Prediction | None,
        *,
        strict: bool,
    ) -> Prediction:
        return await predict(
            api,
            binding.create_ref,
            binding.text_inputs(plan_prompt(request, strict=strict), INSTRUCTION),
            kind=StepKind.TEXT,
            deadline_s=self.runtime.settings.deadline(StepKind.TEXT),
            hooks=ctx.hooks if ctx else QUIET,
            existing=existing,
            intent_at=ctx.intent_at if ctx and existing is None else None,
            sent=json.loads(ctx.sent_input) if ctx and ctx.sent_input else None,
            key=ctx.campaign_id if ctx else None,
        )


async def _reusable(api: PredictionApi, provider_id: str) -> Prediction | None:
    """The stored planning prediction, if it can still give its answer."""
    try:
        prediction = await api.get(provider_id)
    except PermanentStepError:
        return None
    return prediction if prediction.status in REUSABLE else None
