"""One paid prediction from intent to result: adopt, create, store, wait, cancel.

`predict` is shared by the generator (images, videos) and the LLM planner:

1. A prediction a crash left behind is found first: with a stored id the
   caller passes it as `existing`; with only an intent (`intent_at`: a create
   may have been sent then, but its id was never stored) the account's recent
   predictions are searched for one with the same input, created since.
2. Otherwise `hooks.before_spend()` records the intent (and raises LeaseLost
   if this process no longer owns the campaign: nothing is sent), then the
   create goes out with `Cancel-After` = the kind's deadline, so Replicate
   stops it even if the bot dies, and `Prefer: wait` for short kinds.
3. The id is stored (`hooks.remember_provider_id`) before any waiting.
4. On the deadline, or when the step is cancelled, the prediction is cancelled
   on Replicate, unless `hooks.keep_on_stop()` says the campaign is being
   handed over: then it keeps running for the next owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from adapters.replicate_api.http import RateHeld
from adapters.replicate_api.predictions import PredictionApi
from adapters.replicate_api.sent import sent_text
from adapters.replicate_api.stream import OnText, StreamLost, read_stream, stream_url_ok
from adapters.replicate_api.wire import Prediction, Status, epoch
from core.errors import PermanentStepError
from core.model import StepKind
from core.ports import StepHooks
from core.scheduler import ordinal

log = logging.getLogger(__name__)

CREATE_TASK = "replicate-create"  # name prefix of the task that sends a create
SHORT_KINDS = frozenset({StepKind.TEXT, StepKind.IMAGE})  # created with `Prefer: wait`
REUSABLE = frozenset({Status.STARTING, Status.PROCESSING, Status.SUCCEEDED})


async def _quiet(_message: str) -> None:
    return None


async def _forget(_provider_id: str) -> None:
    return None


QUIET = StepHooks(_quiet, _forget)


async def predict(
    api: PredictionApi,
    ref: str,
    inputs: dict[str, Any],
    *,
    kind: StepKind,
    deadline_s: float,
    hooks: StepHooks = QUIET,
    existing: Prediction | None = None,
    intent_at: float | None = None,
    sent: Mapping[str, Any] | None = None,
    key: str | None = None,
    on_text: OnText | None = None,
) -> Prediction:
    """Adopt, continue or create a prediction and wait for it (see the module doc).

    `on_text`: a language model's answer is streamed to it piece by piece while it is
    written (the create then does not ask Replicate to hold its answer); the
    prediction returned once it has finished holds the whole answer too.

    `key`: whose prediction (a campaign id): creates take the account's rate in
    turns by key, and one held back by it past `deadline_s` fails.

    `sent`: the input stored with the intent (what that create sent), matched
    instead of `inputs` when adopting: the schema may have changed since.
    """
    loop = asyncio.get_running_loop()
    if existing is None and intent_at is not None:
        existing = await api.find(ref, sent or inputs, intent_at, REUSABLE)
        if existing is not None:
            await hooks.report(f"adopted prediction {existing.id} sent before a restart")
            await hooks.remember_provider_id(existing.id)
    held = on_text is None and kind in SHORT_KINDS  # `Prefer: wait` for a short answer
    prediction = existing or await _send(api, ref, inputs, kind, deadline_s, hooks, key, held)
    # when it was created, on the loop's clock: polls come when a prediction of its model
    # would finish, so not before its create returned (the intent, the create's turn and
    # the request itself come first; started earlier, the poll comes too soon and the
    # next one a gap later)
    started = _loop_time_of(existing, loop) if existing is not None else loop.time()
    try:
        begun = loop.time()
        if on_text is not None and not prediction.done:
            async with asyncio.timeout(deadline_s):
                if await _stream(api, prediction, on_text):  # written: read it at once
                    prediction = await api.get(prediction.id)
        left = max(0.0, deadline_s - (loop.time() - begun))
        return await api.wait(prediction, left, hooks.report, model=ref, started=started)
    except TimeoutError:
        await _cancel(api, prediction.id)
        raise PermanentStepError(
            f"no result after {deadline_s:g} s; the prediction was canceled on Replicate"
        ) from None
    except asyncio.CancelledError:
        if not hooks.keep_on_stop():
            await _cancel(api, prediction.id)
        raise


async def _send(
    api: PredictionApi,
    ref: str,
    inputs: dict[str, Any],
    kind: StepKind,
    deadline_s: float,
    hooks: StepHooks,
    key: str | None,
    held: bool,
) -> Prediction:
    """Record the intent, create, and store the id before anything else."""
    api.http.slot_ahead()  # the create's slot is reserved while its intent is stored
    await hooks.before_spend(sent_text(inputs))
    wait_s = api.settings.prefer_wait_s if held else None
    prediction = await _create(api, ref, inputs, hooks, wait_s, kind, deadline_s, key)
    try:
        await hooks.remember_provider_id(prediction.id)  # stored before any waiting
    except asyncio.CancelledError:
        if not hooks.keep_on_stop():
            await _cancel(api, prediction.id)
        raise
    return prediction


async def _stream(api: PredictionApi, prediction: Prediction, on_text: OnText) -> bool:
    """Read the answer as it is written; False if there is no stream or it was lost (then
    polling finds the answer)."""
    url = prediction.urls.stream
    if url is None or not stream_url_ok(url, api.http.base_url):
        return False
    try:
        await read_stream(api.http.session(), url, on_text)
    except StreamLost as lost:
        log.info("stream of prediction %s lost (%s); polling for its answer", prediction.id, lost)
        return False
    return True


def _loop_time_of(prediction: Prediction, loop: asyncio.AbstractEventLoop) -> float:
    """When a prediction was created, on the loop's clock (now, if unknown)."""
    created = epoch(prediction.created_at)
    age = max(0.0, time.time() - created) if created is not None else 0.0
    return loop.time() - age


async def _create(
    api: PredictionApi,
    ref: str,
    inputs: dict[str, Any],
    hooks: StepHooks,
    wait_s: int | None,
    kind: StepKind,
    deadline_s: float,
    key: str | None,
) -> Prediction:
    sending = f"sending to {ref.split(':')[0]}"
    await hooks.report(sending)

    async def on_place(place: int) -> None:  # waiting for the account's create rate
        await hooks.report(rate_wait_text(place) if place else sending)

    task = asyncio.create_task(
        api.create(
            ref,
            inputs,
            wait_s=wait_s,
            cancel_after_s=deadline_s,
            guard=hooks.may_spend,
            on_place=on_place,
            key=key,
            deadline_s=deadline_s,
        ),
        name=f"{CREATE_TASK}:{ref}",
    )
    try:
        return await asyncio.shield(task)
    except RateHeld:
        raise PermanentStepError(rate_held_text(kind, deadline_s)) from None
    except asyncio.CancelledError:
        if hooks.keep_on_stop():  # handed over: its intent leads the next owner to it
            task.cancel()
            await asyncio.wait([task])
            raise
        # The request may already be at Replicate: let it answer, then cancel what it made.
        try:
            await asyncio.wait([task], timeout=api.settings.cancel_wait_s)
        finally:  # also when cancelled again meanwhile: the task never outlives us
            await _reap(api, task)
        raise


def rate_held_text(kind: StepKind, deadline_s: float) -> str:
    """Why a create that never got through the account's rate limit failed."""
    what = "plan" if kind is StepKind.TEXT else kind.value
    held = f"{deadline_s / 60:.3g} min" if deadline_s >= 60 else f"{deadline_s:.3g} s"
    return (
        f"Replicate's rate limit held this {what} back for {held} (the {kind.value} "
        "deadline); the account takes fewer creates than the bot sends: try again "
        "later, or add credit on Replicate to raise its limit"
    )


def rate_wait_text(place: int) -> str:
    """ "waiting for Replicate's rate limit (2nd in line)"."""
    return f"waiting for Replicate's rate limit ({ordinal(place)} in line)"


async def _reap(api: PredictionApi, task: asyncio.Task[Prediction]) -> None:
    """Finish an abandoned create: stop it if it still runs, cancel what it made."""
    if not task.done():
        task.cancel()
        await asyncio.wait([task])  # returns once it has stopped; never raises its error
    if task.cancelled() or task.exception() is not None:  # retrieved: nothing left unawaited
        return
    await _cancel(api, task.result().id)


async def _cancel(api: PredictionApi, prediction_id: str) -> None:
    try:
        await asyncio.wait_for(api.cancel(prediction_id), api.settings.cancel_wait_s)
    except TimeoutError:
        log.warning("cancel of prediction %s did not finish in time", prediction_id)
