"""One product's step chain: image, then video when asked.

A chain moves on as soon as its own input exists; there is no barrier
between products. Every step's state is written to the store before and
after it runs, and announced as a progress event.

A video does not wait for its image to be saved: it starts as soon as the
image's provider output URL exists (the generator calls the `output_ready`
hook before it downloads), while the image step goes on saving the file.
The video's job gets that URL while it is younger than URL_FRESH_S (the
provider keeps outputs for an hour) and the file once it is saved; a chain
resumed after its image finished gets the stored URL only if the image
finished less than URL_FRESH_S ago. The product is finished when both steps
are. Once the URL exists the video stands on its own: if the image's
download then fails, the image step is FAILED with its error and the video
goes on, its outcome kept. A video whose image failed without a URL is
SKIPPED.

Every write is fenced by the campaign's owner: when another process has
taken the campaign over, the write raises LeaseLost, `stop.keep` is set, and
every step of the campaign stops without cancelling its prediction (the new
owner re-polls it by its stored id). Before a paid create the step records
its intent (`before_spend`), so a crash between the create and the stored id
leaves a trace that the next owner follows (it adopts the prediction).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.errors import LeaseLost, StepError, TransientStepError
from core.lease import Stop
from core.logs import step_fields
from core.model import Product, ProductPlan, StepKind, StepName, StepRecord, StepStatus
from core.ports import Executor, StepHooks, StepJob
from core.progress import EventKind, ProgressEvent
from core.request import CampaignRequest
from core.scheduler import Scheduler
from core.store_ports import CampaignRecords

log = logging.getLogger(__name__)

Publish = Callable[[ProgressEvent], Awaitable[None]]
URL_FRESH_S = 50 * 60  # a provider output URL is handed on until this old (Replicate: 1 hour)


def step_names(request: CampaignRequest) -> tuple[StepName, ...]:
    """The chain every product of this request runs."""
    return (StepName.IMAGE, StepName.VIDEO) if request.videos else (StepName.IMAGE,)


def models_of(request: CampaignRequest) -> dict[StepKind, str | None]:
    """The model each kind of this request runs on (None: the configured one)."""
    models = {StepKind.TEXT: request.models.text, StepKind.IMAGE: request.models.image}
    return models | ({StepKind.VIDEO: request.models.video} if request.videos else {})


def new_product(plan: ProductPlan, request: CampaignRequest) -> Product:
    """A planned product with all its steps pending."""
    models = {StepName.IMAGE: request.models.image, StepName.VIDEO: request.models.video}
    return Product(
        plan,
        tuple(StepRecord(plan.index, name, model=models[name]) for name in step_names(request)),
    )


def _add(total: float | None, more: float | None) -> float | None:
    """Sum of two optional durations; None only when neither is known."""
    if total is None and more is None:
        return None
    return round((total or 0.0) + (more or 0.0), 6)


@dataclass
class _Live:
    """A running step as last saved: its hooks move it on while an attempt runs (intent,
    provider id, output URL), and the next attempt starts from it."""

    step: StepRecord


@dataclass
class _Handoff:
    """An image as its video uses it: the provider URL as soon as it exists, the saved file.

    `ready` is set by the first URL or when the image step ends, whichever comes first.
    """

    url: str | None = None
    url_at: float | None = None  # when the URL was known to exist
    path: str | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def stored(cls, image: StepRecord | None) -> _Handoff:
        """The handoff of an image that finished before this run."""
        handoff = cls()
        handoff.image_finished(image)
        return handoff

    def url_ready(self, url: str, now: float) -> None:
        """The image's provider output exists at `url` (it is not saved yet)."""
        if url != self.url:  # the same URL again (a re-poll) keeps its first, older time
            self.url, self.url_at = url, now
        self.ready.set()

    def image_finished(self, image: StepRecord | None) -> None:
        """The image step ended; a success brings its file (and maybe a URL)."""
        if image is not None and image.status is StepStatus.SUCCEEDED:
            self.path = image.output
            if image.output_url is not None and image.output_url != self.url:
                self.url, self.url_at = image.output_url, image.finished_at
        self.ready.set()

    @property
    def usable(self) -> bool:
        """Whether there is anything to animate."""
        return self.url is not None or self.path is not None

    def inputs(self, now: float) -> tuple[str | None, str | None]:
        """(input_url, input_path) for a video attempt starting now: the URL only while fresh."""
        fresh = self.url_at is not None and now - self.url_at < URL_FRESH_S
        return (self.url if fresh else None), self.path


@dataclass
class ChainRunner:
    """Runs product chains of one campaign on the shared scheduler and executor."""

    campaign_id: str
    style: str
    seed: int
    out_dir: str
    store: CampaignRecords
    executor: Executor
    scheduler: Scheduler
    publish: Publish
    clock: Callable[[], float]
    owner: str  # every write is fenced by it
    stop: Stop = field(default_factory=Stop)
    max_attempts: int = 3

    async def run(self, product: Product) -> None:
        """Run every unfinished step of the product (a retry resets the ones it re-runs).

        A product with nothing left to run (finished before a retry or a resume)
        is not announced again: every front end posts a product once.
        """
        if all(step.status.done for step in product.steps):
            return
        plan = product.plan
        image, video = product.step(StepName.IMAGE), product.step(StepName.VIDEO)
        if video is None or video.status.done:  # at most the image is left to run
            if image is not None and not image.status.done:
                image = await self._run_step(plan, image)
        elif image is None or image.status.done:  # the image finished before this run
            video = await self._video(plan, video, _Handoff.stored(image))
        else:
            image, video = await self._chain(plan, image, video)
        ended = Product(plan, tuple(s for s in (image, video) if s is not None))
        await self.publish(
            ProgressEvent(
                EventKind.PRODUCT_FINISHED,
                self.campaign_id,
                self.clock(),
                plan.index,
                status=ended.status.value,
            )
        )

    async def _chain(
        self, plan: ProductPlan, image: StepRecord, video: StepRecord
    ) -> tuple[StepRecord, StepRecord]:
        """Image and video at once: the video waits only for the image's URL (or its end).

        The task group owns the image step: cancelling the chain (or a crash on
        either side) cancels and awaits both.
        """
        handoff = _Handoff()
        async with asyncio.TaskGroup() as group:
            imaged = group.create_task(self._image(plan, image, handoff))
            await handoff.ready.wait()
            video = await self._video(plan, video, handoff)
        return imaged.result(), video

    async def _image(self, plan: ProductPlan, image: StepRecord, handoff: _Handoff) -> StepRecord:
        image = await self._run_step(plan, image, feeds=handoff)
        handoff.image_finished(image)
        return image

    async def _video(self, plan: ProductPlan, video: StepRecord, image: _Handoff) -> StepRecord:
        if not image.usable:
            return await self._finish(
                video.evolve(status=StepStatus.SKIPPED, error="no image to animate")
            )
        return await self._run_step(plan, video, given=image)

    async def _run_step(
        self,
        plan: ProductPlan,
        step: StepRecord,
        *,
        given: _Handoff | None = None,
        feeds: _Handoff | None = None,
    ) -> StepRecord:
        """Run one step in its kind's slot; `given` is its input image, `feeds` its video's.

        While it waits in line for the slot, its place is announced on the
        pending step (`queued`, worded at the edge), again when it moves up.
        """

        async def on_place(place: int) -> None:
            await self._event(EventKind.STEP_PROGRESS, step, queued=place)

        async with self.scheduler.slot(step.name.kind, self.campaign_id, on_place):
            live = _Live(step)
            while True:
                live.step = await self._start(live.step)
                try:
                    return await self._attempt(plan, live, given, feeds)
                except TransientStepError as exc:
                    step = live.step  # keeps a prediction id the failed attempt stored
                    if step.attempts >= self.max_attempts:
                        return await self._finish(
                            step.evolve(status=StepStatus.FAILED, error=str(exc))
                        )
                    await self._report(step, f"retrying: {exc}")
                    await asyncio.sleep(exc.delay_s)

    async def _attempt(
        self,
        plan: ProductPlan,
        live: _Live,
        given: _Handoff | None,
        feeds: _Handoff | None,
    ) -> StepRecord:
        step = live.step  # as the attempt starts
        input_url, input_path = given.inputs(self.clock()) if given else (None, None)
        job = StepJob(
            self.campaign_id,
            step.name,
            plan,
            self.style,
            self.seed + plan.index,
            self.out_dir,
            input_path=input_path,
            input_url=input_url,
            model=step.model,
            provider_id=step.provider_id,
            intent_at=step.intent_at,
            sent_input=step.sent_input,
        )
        try:
            out = await self.executor.run_step(job, self._hooks(live, feeds))
        except asyncio.CancelledError:
            if not self.stop.keep:  # handed over: the step stays running for the next owner
                await self._finish(live.step.evolve(status=StepStatus.CANCELED, error="canceled"))
            raise
        except LeaseLost:
            self.stop.keep = True  # before the task group cancels the other steps
            raise
        except TransientStepError:
            raise
        except StepError as exc:
            return await self._finish(live.step.evolve(status=StepStatus.FAILED, error=str(exc)))
        except Exception as exc:  # a bug or an unexpected library error
            log.exception("step %s/%s/%s crashed", self.campaign_id, plan.index, step.name.value)
            return await self._finish(
                live.step.evolve(
                    status=StepStatus.FAILED, error=f"internal error ({type(exc).__name__})"
                )
            )
        return await self._finish(
            live.step.evolve(
                status=StepStatus.SUCCEEDED,
                output=out.path,
                output_url=out.url or live.step.output_url,
                provider_id=out.provider_id,
                model=out.model or step.model,
                cost_usd=step.cost_usd + out.cost_usd,
                predict_time_s=_add(step.predict_time_s, out.predict_time_s),
                worker=out.worker,
                error=None,
            )
        )

    def _hooks(self, live: _Live, feeds: _Handoff | None) -> StepHooks:
        async def report(message: str) -> None:
            await self._report(live.step, message)

        async def remember_provider_id(provider_id: str) -> None:
            live.step = live.step.evolve(provider_id=provider_id)
            await self._save(live.step)

        async def output_ready(url: str) -> None:
            live.step = live.step.evolve(output_url=url)
            if feeds is None:  # nobody starts from it: stored with the result, a write sooner
                return
            feeds.url_ready(url, self.clock())  # the video starts; its intent is a fenced write
            await self._save(live.step)  # the URL its video started from, stored at once

        async def before_spend(sent: str) -> None:
            live.step = live.step.evolve(intent_at=self.clock(), sent_input=sent)
            await self._save(live.step)  # LeaseLost here: no create is sent

        return StepHooks(
            report,
            remember_provider_id,
            output_ready,
            before_spend,
            lambda: self.stop.keep,
            self.stop.may_spend,
        )

    async def _save(self, step: StepRecord) -> None:
        """A fenced write; losing the lease stops the whole campaign here, keeping its work."""
        try:
            await self.store.save_step(self.campaign_id, step, self.owner)
        except LeaseLost:
            self.stop.keep = True  # set before anything is cancelled
            raise

    async def _start(self, step: StepRecord) -> StepRecord:
        step = step.evolve(
            status=StepStatus.RUNNING,
            attempts=step.attempts + 1,
            started_at=self.clock(),
            finished_at=None,
            error=None,
            output_url=None,  # this attempt reports its own (a re-poll: the same one again)
        )
        await self._save(step)
        await self._event(EventKind.STEP_STARTED, step)
        return step

    async def _finish(self, step: StepRecord) -> StepRecord:
        step = step.evolve(finished_at=self.clock())
        await self._save(step)
        log.info(
            "campaign %s product %d %s: %s",
            self.campaign_id,
            step.product_index + 1,
            step.name.value,
            step.status.value,
            extra=step_fields(self.campaign_id, step),
        )
        await self._event(
            EventKind.STEP_FINISHED,
            step,
            status=step.status.value,
            message=step.error or "",
            output=step.output,
        )
        return step

    async def _report(self, step: StepRecord, message: str) -> None:
        await self._event(EventKind.STEP_PROGRESS, step, message=message)

    async def _event(
        self,
        kind: EventKind,
        step: StepRecord,
        *,
        status: str | None = None,
        message: str = "",
        output: str | None = None,
        queued: int | None = None,
    ) -> None:
        await self.publish(
            ProgressEvent(
                kind,
                self.campaign_id,
                self.clock(),
                step.product_index,
                step.name,
                status,
                message,
                output,
                queued=queued,
            )
        )
