"""One product's step chain: image, then video when asked.

A chain moves on as soon as its own input exists; there is no barrier
between products. Every step's state is written to the store before and
after it runs, and announced as a progress event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.errors import StepError, TransientStepError
from core.model import Product, ProductPlan, StepName, StepRecord, StepStatus
from core.ports import CampaignStore, Executor, StepHooks, StepJob
from core.progress import EventKind, ProgressEvent
from core.request import CampaignRequest
from core.scheduler import Scheduler

log = logging.getLogger(__name__)

Publish = Callable[[ProgressEvent], Awaitable[None]]


def step_names(request: CampaignRequest) -> tuple[StepName, ...]:
    """The chain every product of this request runs."""
    return (StepName.IMAGE, StepName.VIDEO) if request.videos else (StepName.IMAGE,)


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
class ChainRunner:
    """Runs product chains of one campaign on the shared scheduler and executor."""

    campaign_id: str
    style: str
    seed: int
    out_dir: str
    store: CampaignStore
    executor: Executor
    scheduler: Scheduler
    publish: Publish
    clock: Callable[[], float]
    max_attempts: int = 3

    async def run(self, product: Product) -> None:
        """Run every unfinished step of the product, in order."""
        image: str | None = product.output(StepName.IMAGE)
        for step in product.steps:
            if step.status.done:  # finished before (retry resets the steps it re-runs)
                continue
            if step.name is StepName.VIDEO and image is None:
                await self._finish(
                    step.evolve(status=StepStatus.SKIPPED, error="no image to animate")
                )
                continue
            done = await self._run_step(product.plan, step, image)
            if step.name is StepName.IMAGE:
                image = done.output if done.status is StepStatus.SUCCEEDED else None
        await self.publish(
            ProgressEvent(
                EventKind.PRODUCT_FINISHED,
                self.campaign_id,
                self.clock(),
                product.plan.index,
                status=await self._product_status(product.plan.index),
            )
        )

    async def _product_status(self, index: int) -> str:
        campaign = await self.store.get(self.campaign_id)
        return campaign.products[index].status.value

    async def _run_step(self, plan: ProductPlan, step: StepRecord, image: str | None) -> StepRecord:
        async with self.scheduler.slot(step.name.kind, self.campaign_id):
            holder = [step]  # the hooks update it (provider id) while an attempt runs
            while True:
                holder[0] = await self._start(holder[0])
                try:
                    return await self._attempt(plan, holder, image)
                except TransientStepError as exc:
                    step = holder[0]  # keeps a prediction id the failed attempt stored
                    if step.attempts >= self.max_attempts:
                        return await self._finish(
                            step.evolve(status=StepStatus.FAILED, error=str(exc))
                        )
                    await self._report(step, f"retrying: {exc}")
                    await asyncio.sleep(exc.delay_s)

    async def _attempt(
        self, plan: ProductPlan, holder: list[StepRecord], image: str | None
    ) -> StepRecord:
        step = holder[0]
        job = StepJob(
            self.campaign_id,
            step.name,
            plan,
            self.style,
            self.seed + plan.index,
            self.out_dir,
            input_path=image,
            model=step.model,
            provider_id=step.provider_id,
        )
        try:
            out = await self.executor.run_step(job, self._hooks(holder))
        except asyncio.CancelledError:
            await self._finish(holder[0].evolve(status=StepStatus.CANCELED, error="canceled"))
            raise
        except TransientStepError:
            raise
        except StepError as exc:
            return await self._finish(holder[0].evolve(status=StepStatus.FAILED, error=str(exc)))
        except Exception as exc:  # a bug or an unexpected library error
            log.exception("step %s/%s/%s crashed", self.campaign_id, plan.index, step.name.value)
            return await self._finish(
                holder[0].evolve(
                    status=StepStatus.FAILED, error=f"internal error ({type(exc).__name__})"
                )
            )
        return await self._finish(
            holder[0].evolve(
                status=StepStatus.SUCCEEDED,
                output=out.path,
                provider_id=out.provider_id,
                model=out.model or step.model,
                cost_usd=step.cost_usd + out.cost_usd,
                predict_time_s=_add(step.predict_time_s, out.predict_time_s),
                worker=out.worker,
                error=None,
            )
        )

    def _hooks(self, holder: list[StepRecord]) -> StepHooks:
        async def report(message: str) -> None:
            await self._report(holder[0], message)

        async def remember_provider_id(provider_id: str) -> None:
            holder[0] = holder[0].evolve(provider_id=provider_id)
            await self.store.save_step(self.campaign_id, holder[0])

        return StepHooks(report, remember_provider_id)

    async def _start(self, step: StepRecord) -> StepRecord:
        step = step.evolve(
            status=StepStatus.RUNNING,
            attempts=step.attempts + 1,
            started_at=self.clock(),
            finished_at=None,
            error=None,
        )
        await self.store.save_step(self.campaign_id, step)
        await self._event(EventKind.STEP_STARTED, step)
        return step

    async def _finish(self, step: StepRecord) -> StepRecord:
        step = step.evolve(finished_at=self.clock())
        await self.store.save_step(self.campaign_id, step)
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
            )
        )
