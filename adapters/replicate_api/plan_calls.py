"""One planning call to a language model: a paid, streamed prediction whose answer is a
JSON array of objects, each handed on (validated) as soon as it is written.

A call is stored like a step under its part name (`PlanContext.hooks_for(part)`):
the intent before the create, the id right after it. A call a crash left
behind is re-read (its stored id, while Replicate still has it) or adopted (an
intent whose create went out), never paid again. An unusable answer is asked
for once more, strictly, under `<part>/strict`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from adapters.replicate_api.catalog import Binding
from adapters.replicate_api.generator import ReplicateRuntime, outcome_error
from adapters.replicate_api.http import Refused
from adapters.replicate_api.predict import QUIET, REUSABLE, predict
from adapters.replicate_api.predictions import PredictionApi
from adapters.replicate_api.wire import Prediction
from core.errors import PermanentStepError, StepError
from core.model import StepKind
from core.plan_json import PlanFormatError, fields_of, find_list
from core.plan_stream import ObjectStream
from core.ports import PlanContext
from core.request import CampaignRequest

log = logging.getLogger(__name__)
INSTRUCTION = "You are a merchandise designer. Answer with JSON only."
OnItem = Callable[[int, dict[str, str]], Awaitable[None]]
Prompt = Callable[[bool], str]  # strict? -> the prompt
MIN_WINDOW_S = 0.005  # a model's speed is judged over at least this long


def answer_text(output: object) -> str:
    """A language model's output as one string (it arrives as a list of pieces)."""
    if isinstance(output, list):
        return "".join(str(piece) for piece in output)
    return "" if output is None else str(output)


class _Answer:
    """A call's answer as it streams: each object validated and handed on once, in order."""

    def __init__(
        self,
        count: int,
        fields: Sequence[str],
        on_item: OnItem,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        self.count, self.fields, self.on_item = count, fields, on_item
        self.on_sent = on_sent  # told once its prediction exists
        self.stream = ObjectStream()
        self.text = ""
        self.given = 0
        self.bad: PlanFormatError | None = None  # the first unusable object
        self._first: tuple[float, int] | None = None  # (when, characters) at the first piece
        self._last = 0.0
        self._pieces = 0

    async def piece(self, text: str) -> None:
        """More of the answer, as it is written."""
        self.text += text
        now = time.monotonic()
        if self._first is None:
            self._first = (now, len(self.text))
        self._last, self._pieces = now, self._pieces + 1
        await self._take(self.stream.feed(self.text))

    def chars_per_s(self) -> float | None:
        """How fast the model wrote (after its first piece), once the stream shows it: pieces
        read in one go (a network batch) show nothing, so it takes a few over a while."""
        if self._first is None or self._pieces < 3 or self._last - self._first[0] < MIN_WINDOW_S:
            return None
        return (len(self.text) - self._first[1]) / (self._last - self._first[0])

    async def whole(self, text: str) -> None:
        """The finished answer: objects the stream missed (a lost stream, prose around)."""
        if self.given < self.count and self.bad is None:
            new = self.stream.feed(text)
            if not self.stream.found:  # no array of objects where the stream looked
                new = find_list(text)  # PlanFormatError if there is none at all
            await self._take(new)
        if self.bad is not None:
            raise self.bad
        if self.given < self.count:
            raise PlanFormatError(f"{self.given} plans instead of {self.count}")

    async def _take(self, items: Sequence[Any]) -> None:
        for item in items:
            if self.bad is not None or self.given >= self.count:
                return
            try:
                values = fields_of(self.given, item, self.fields)
            except PlanFormatError as exc:
                self.bad = exc  # the rest is not handed on; the call is asked again
                return
            self.given += 1
            await self.on_item(self.given - 1, values)


class PlanCalls:
    """The planning calls of one campaign: each streamed, stored and asked at most twice."""

    def __init__(
        self, runtime: ReplicateRuntime, request: CampaignRequest, ctx: PlanContext | None
    ) -> None:
        self.runtime, self.request, self.ctx = runtime, request, ctx
        self._live: dict[str, _Answer] = {}  # the answer each part is writing now

    def stored_parts(self) -> list[str]:
        """The parts an earlier run of this campaign stored."""
        return list(self.ctx.calls) if self.ctx else []

    def speed(self, part: str) -> float | None:
        """How fast the model is writing `part` now (characters a second), once it shows."""
        answer = self._live.get(part)
        return answer.chars_per_s() if answer is not None else None

    async def ask(
        self,
        part: str,
        prompt: Prompt,
        count: int,
        fields: Sequence[str],
        on_item: OnItem,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        """Stream one call's objects to `on_item(position, values)`; asked again strictly
        if the answer is unusable (objects handed on already are not handed on again).

        `on_sent()`: once the call's prediction exists (created, re-read or adopted)."""
        given = 0

        async def again(position: int, values: dict[str, str]) -> None:
            if position >= given:  # the strict answer's first objects were handed on already
                await on_item(position, values)

        for strict in (False, True):
            answer = self._live[part] = _Answer(
                count, fields, on_item if not strict else again, on_sent
            )
            try:
                text = await self._call(
                    part + ("/strict" if strict else ""), prompt(strict), answer
                )
                await answer.whole(text)
                return
            except PlanFormatError as exc:
                if strict:
                    raise
                given = answer.given
                log.info("LLM plans rejected (%s); asking again", exc)

    async def _call(self, part: str, prompt: str, answer: _Answer) -> str:
        """One prediction (new, re-read or adopted) streamed into `answer`; its whole text."""
        api, catalog = self.runtime.current().api, self.runtime.catalog
        binding = await catalog.bind(api.http, StepKind.TEXT, self.request.models.text)
        stored = self.ctx.calls.get(part) if self.ctx else None
        existing = None
        if stored is not None and stored.provider_id:
            existing = await _reusable(api, stored.provider_id)
        try:
            prediction = await self._predict(api, binding, part, prompt, answer, existing)
        except Refused as refused:  # a community model, or a schema changed since it was read
            again = await catalog.after_refusal(api.http, binding, refused)
            if again is None:
                raise
            prediction = await self._predict(api, again, part, prompt, answer, None)
        if (error := outcome_error(prediction)) is not None:
            raise StepError(error)
        return answer_text(prediction.output)

    async def _predict(
        self,
        api: PredictionApi,
        binding: Binding,
        part: str,
        prompt: str,
        answer: _Answer,
        existing: Prediction | None,
    ) -> Prediction:
        ctx = self.ctx
        stored = ctx.calls.get(part) if ctx else None
        # an intent without a prediction to re-read: its create may have gone out, so look
        adopt = stored if existing is None and stored and stored.intent_at is not None else None
        hooks = ctx.hooks_for(part) if ctx else QUIET
        if (sent := answer.on_sent) is not None:
            if existing is not None:
                sent()
            else:
                hooks = replace(hooks, remember_provider_id=_then(hooks.remember_provider_id, sent))
        return await predict(
            api,
            binding.create_ref,
            binding.text_inputs(prompt, INSTRUCTION),
            kind=StepKind.TEXT,
            deadline_s=self.runtime.settings.deadline(StepKind.TEXT),
            hooks=hooks,
            existing=existing,
            intent_at=adopt.intent_at if adopt else None,
            sent=json.loads(adopt.sent_input) if adopt and adopt.sent_input else None,
            key=ctx.campaign_id if ctx else None,
            on_text=answer.piece,
        )


def _then(
    remember: Callable[[str], Awaitable[None]], sent: Callable[[], None]
) -> Callable[[str], Awaitable[None]]:
    """`remember`, then `sent()`: the prediction exists and its id is stored."""

    async def remembered(provider_id: str) -> None:
        await remember(provider_id)
        sent()

    return remembered


async def _reusable(api: PredictionApi, provider_id: str) -> Prediction | None:
    """The stored planning prediction, if it can still give its answer."""
    try:
        prediction = await api.get(provider_id)
    except PermanentStepError:
        return None
    return prediction if prediction.status in REUSABLE else None
