"""LlmPlanner: product plans from a Replicate language model, streamed and in parallel.

Every call streams its answer (`urls.stream`), and a product is handed on
(`on_plan`) as soon as its plan is complete, so its image can start while the
model is still writing the others. How the plans are asked for (`layout`):

- **outline, then details**: a short first call ("outline") names the N
  products and their types; as soon as a group's names are written, that
  group's details (tagline, image and video prompts) are asked for in a call
  of their own, all groups at once. The last product then waits for about
  one product's plan plus the outline, not for N plans. The names come from
  the one outline, so they stay distinct.
- **one call** ("plans"): all N plans in one streamed answer, used when the
  account's create rate, not the model, is what holds a campaign back (more
  calls would cost creates that its images need).

With as many creates as the account lets go at once (its burst), each
product gets its own details call; past that, only as many groups as keep
the plans ahead of what the create rate lets the images take, judged by how
fast the model writes (the outline's own stream once it shows; before that its
last answers, `TextPace`; ~100 tokens a second until one has been seen). The
rate and burst are what the process knows at that moment: its settings, or
less once a 429 has taught it (an account smaller than it was told), so a
campaign that meets a small account folds its remaining products into one
details call. The first details call goes alone, and the others wait until its
create is answered: on an account nobody said was small, that create is the
one that meets the 429 (the outline took the burst), so the rest are sized by
what it taught, not by the settings (on a big account the wait is one create's
round trip, over before the last name is written).

A call whose answer is unusable is asked once more, strictly; if that fails
too, or the model cannot be reached, the offline planner plans what is still
missing and the returned `Plans.note` says so. Each call is a paid step: its
intent and prediction id are stored under its part name (`outline`,
`details/0-4`, `plans`, with `/strict` for the second asking), and a resumed
campaign re-reads or adopts them instead of paying again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence

from adapters.replicate_api.generator import ReplicateRuntime
from adapters.replicate_api.http import CreateRate
from adapters.replicate_api.plan_calls import PlanCalls, answer_text
from core.errors import StepError
from core.model import ProductPlan
from core.plan_json import (
    DETAIL_FIELDS,
    FIELDS,
    OUTLINE_FIELDS,
    PlanFormatError,
    details_prompt,
    outline_prompt,
    plan_prompt,
)
from core.planner import OfflinePlanner
from core.ports import OnPlan, PlanContext, Planner, Plans
from core.request import CampaignRequest

__all__ = ["LlmPlanner", "answer_text", "layout"]
log = logging.getLogger(__name__)


def layout(request: CampaignRequest, creates: CreateRate, plan_s: float) -> int:
    """How many details calls follow the outline; 0: one call plans every product.

    `creates`: the account's create rate and burst as this process knows them now (its
    setting, or lower once a 429 has taught it); `plan_s`: how long the model takes to
    write one product's plan."""
    n, per_product = request.products, 2 if request.videos else 1
    if n < 2:
        return 0
    if 1 + n + n * per_product <= creates.burst:  # every create goes at once: nothing to save
        return n
    keep_up = math.ceil(creates.per_min / 60 * plan_s / per_product)
    groups = min(n, keep_up)
    return groups if groups > 1 else 0


class LlmPlanner:
    """Plans from a Replicate language model, with the offline planner as fallback."""

    name = "replicate"

    def __init__(self, runtime: ReplicateRuntime, fallback: Planner | None = None) -> None:
        self.runtime = runtime
        self.fallback = fallback or OfflinePlanner()

    async def plan(
        self,
        request: CampaignRequest,
        ctx: PlanContext | None = None,
        on_plan: OnPlan | None = None,
    ) -> Plans:
        """Exactly request.products plans, each handed to `on_plan` once complete.

        With `ctx`, every planning prediction is stored like a step's, and one a
        crash left behind (stored id, or only the intent) is used, not paid again.
        """
        n = request.products
        out = _Found(n, on_plan, ctx.done if ctx else ())
        calls = PlanCalls(self.runtime, request, ctx)
        try:
            if self._groups(calls, request) > 0:
                await self._outline_then_details(calls, request, out)
            else:
                await calls.ask(
                    "plans", lambda s: plan_prompt(request, strict=s), n, tuple(FIELDS), out.whole
                )
        except (PlanFormatError, StepError) as exc:
            out.reason = _reason(exc)
        if out.missing():
            await out.fill(await self.fallback.plan(request))
        return out.result()

    async def _outline_then_details(
        self, calls: PlanCalls, request: CampaignRequest, out: _Found
    ) -> None:
        """The outline; each group's details call as soon as the group is named.

        A group's size is judged when it starts, by the outline's own speed once it shows
        (a fast model needs fewer calls to keep ahead of the create rate); groups an earlier
        run asked for keep their bounds, so their stored predictions are found again."""
        named: dict[int, tuple[str, str]] = {}
        asked = _stored_blocks(calls)
        start = 0
        first_sent = asyncio.Event()  # the first details call's prediction exists
        async with asyncio.TaskGroup() as tasks:

            def sent() -> None:
                first_sent.set()
                dispatch()

            def dispatch() -> None:
                """Start every group whose names are written; after the first, only once
                the first's create was answered (what it met is what the rest are sized by)."""
                nonlocal start
                while start < request.products and (start == 0 or first_sent.is_set()):
                    end = asked.get(start) or start + self._group_size(calls, request)
                    block = range(start, min(end, request.products))
                    if not all(i in named for i in block):
                        return
                    on_sent = sent if start == 0 else None
                    tasks.create_task(self._details(calls, request, out, block, named, on_sent))
                    start = block.stop

            async def on_name(position: int, values: dict[str, str]) -> None:
                named[position] = (out.distinct(values["name"]), values["product_type"])
                dispatch()

            try:
                await calls.ask(
                    "outline",
                    lambda s: outline_prompt(request, strict=s),
                    request.products,
                    OUTLINE_FIELDS,
                    on_name,
                )
            except (PlanFormatError, StepError) as exc:  # groups named by then go on
                out.reason = _reason(exc)

    def _groups(self, calls: PlanCalls, request: CampaignRequest) -> int:
        """The layout now: the create rate as this process knows it (lower after a 429) and
        the model's speed (the outline's own once it shows, else its last answers')."""
        creates = self.runtime.current().api.http.create_rate()
        speed = calls.speed("outline")
        if speed is not None:
            plan_s = self.runtime.pace.CHARS_PER_PLAN / speed
        else:
            plan_s = self.runtime.pace.plan_s(request.models.text)
        return layout(request, creates, plan_s)

    def _group_size(self, calls: PlanCalls, request: CampaignRequest) -> int:
        """Products per details call, judged as the group starts."""
        return math.ceil(request.products / max(1, self._groups(calls, request)))

    async def _details(
        self,
        calls: PlanCalls,
        request: CampaignRequest,
        out: _Found,
        block: range,
        named: dict[int, tuple[str, str]],
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        """One group's details; if they cannot be had, its products are left to the fallback.
        `on_sent()`: once its prediction exists, or it failed without one."""
        products = [named[i] for i in block]
        matched: set[int] = set()

        async def on_details(position: int, values: dict[str, str]) -> None:
            index = _match(values["name"], position, block, named, matched)
            name, kind = named[index]
            await out.add(ProductPlan(index, name, kind, **_details_of(values)))

        part = f"details/{block[0]}-{block[-1]}"
        try:
            await calls.ask(
                part,
                lambda s: details_prompt(request, products, strict=s),
                len(products),
                DETAIL_FIELDS,
                on_details,
                on_sent,
            )
        except (PlanFormatError, StepError) as exc:
            out.reason = _reason(exc)
            log.warning("details of products %s-%s failed: %s", block[0] + 1, block[-1] + 1, exc)
        if on_sent is not None:
            on_sent()  # (again, or failed before its create was answered): the rest go on


def _stored_blocks(calls: PlanCalls) -> dict[int, int]:
    """The groups an earlier run of this campaign asked details for: first -> stop."""
    blocks = {}
    for part in calls.stored_parts():
        if part.startswith("details/"):
            first, _, last = part.split("/")[1].partition("-")
            blocks[int(first)] = int(last) + 1
    return blocks


def _details_of(values: dict[str, str]) -> dict[str, str]:
    return {k: values[k] for k in ("tagline", "image_prompt", "video_prompt")}


def _match(
    name: str, position: int, block: range, named: dict[int, tuple[str, str]], matched: set[int]
) -> int:
    """The product a details object is about: by its name, else by its place in the answer."""
    wanted = name.casefold()
    index = next(
        (i for i in block if i not in matched and named[i][0].casefold() == wanted),
        next((i for i in block if i not in matched and i - block[0] >= position), block[-1]),
    )
    matched.add(index)
    return index


def _reason(exc: Exception) -> str:
    if isinstance(exc, PlanFormatError):
        return f"the model's plans were unusable ({exc})"
    return str(exc)


class _Found:
    """The plans found so far: each index once, names kept distinct, handed on at once."""

    def __init__(
        self, count: int, on_plan: OnPlan | None, done: Sequence[ProductPlan] = ()
    ) -> None:
        self.count = count
        self.on_plan = on_plan
        self.plans: dict[int, ProductPlan] = {p.index: p for p in done}
        self.names: set[str] = {p.name.casefold() for p in done}
        self.reason = ""  # why some plans came from the fallback
        self.filled = False

    def distinct(self, name: str) -> str:
        """`name`, or `name 2`, `name 3`, ... if another product has it (and claim it)."""
        candidate, n = name, 2
        while candidate.casefold() in self.names:
            candidate, n = f"{name} {n}", n + 1
        self.names.add(candidate.casefold())
        return candidate

    async def whole(self, position: int, values: dict[str, str]) -> None:
        """A whole plan from the one-call layout."""
        if position in self.plans or position >= self.count:
            return
        values = dict(values, name=self.distinct(values["name"]))
        await self.add(ProductPlan(position, **values))

    async def add(self, plan: ProductPlan) -> None:
        """Keep a plan (the first of its index) and hand it on."""
        if plan.index in self.plans or plan.index >= self.count:
            return
        self.plans[plan.index] = plan
        if self.on_plan is not None:
            await self.on_plan(plan)

    def missing(self) -> list[int]:
        """The indexes without a plan."""
        return [i for i in range(self.count) if i not in self.plans]

    async def fill(self, offline: Sequence[ProductPlan]) -> None:
        """The fallback's plans for the indexes still missing."""
        reason = self.reason or "the model gave too few plans"
        log.warning("falling back to the offline planner: %s", reason)
        self.reason, self.filled = reason, True
        for plan in offline:
            if plan.index in self.plans:
                continue
            await self.add(ProductPlan(plan.index, self.distinct(plan.name), *_rest(plan)))

    def result(self) -> Plans:
        """Every plan in index order, with a note if the fallback made some."""
        note = f"fell back to the offline planner: {self.reason}" if self.filled else ""
        return Plans([self.plans[i] for i in sorted(self.plans)], note=note)


def _rest(plan: ProductPlan) -> tuple[str, str, str, str]:
    return plan.product_type, plan.tagline, plan.image_prompt, plan.video_prompt
