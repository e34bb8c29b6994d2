"""Exactly-once spending through the real Replicate layer against the fake API: intents are
adopted after a crash, deadlines reach Replicate, a hand-over cancels nothing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from adapters.replicate_api.generator import ReplicateGenerator
from adapters.replicate_api.planner import LlmPlanner
from adapters.replicate_api.predict import predict
from adapters.replicate_api.predictions import PredictionApi
from core.errors import LeaseLost
from core.lease import Stop
from core.model import ProductPlan, StepKind, StepName
from core.ports import PlanContext, StepContext, StepHooks, StepJob
from core.request import CampaignRequest
from tests.fakes.replicate import (
    FakeReplicate,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
    fast_settings,
)

IMAGE, VIDEO = "black-forest-labs/flux-schnell", "bytedance/seedance-1-lite"
PLAN = ProductPlan(0, "Mug", "mug", "t", "a mug", "orbit")


class Hooks:
    """StepHooks that record what the step told the campaign."""

    def __init__(self, *, keep: bool = False, lost: bool = False) -> None:
        self.remembered: list[str] = []
        self.intents = 0
        self.keep, self.lost = keep, lost

    async def report(self, _message: str) -> None:
        return None

    async def remember(self, provider_id: str) -> None:
        self.remembered.append(provider_id)

    async def before_spend(self) -> None:
        if self.lost:
            raise LeaseLost("c1")
        self.intents += 1

    def hooks(self) -> StepHooks:
        return StepHooks(
            self.report,
            self.remember,
            before_spend=self.before_spend,
            keep_on_stop=lambda: self.keep,
        )


async def _no_cpu(*_args: object) -> None:
    raise AssertionError("no CPU work expected")


async def test_a_create_sent_before_a_crash_is_adopted_not_paid_again(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    generator = ReplicateGenerator(fast_settings(fake))
    job = StepJob("c1", StepName.IMAGE, PLAN, "photo", 7, str(tmp_path))
    spec = generator.settings.models.spec(StepKind.IMAGE)
    intent_at = time.time()
    api = PredictionApi(fast_settings(fake))
    try:  # the crashed process got this far: created, id never stored
        lost = await api.create(spec.ref, spec.inputs(PLAN.image_prompt, seed=7))
    finally:
        await api.aclose()
    recorder = Hooks()
    resumed = StepJob("c1", StepName.IMAGE, PLAN, "photo", 7, str(tmp_path), intent_at=intent_at)
    try:
        out = await generator.run(resumed, StepContext(recorder.hooks(), _no_cpu))
    finally:
        await generator.aclose()
    assert out.provider_id == lost["id"] and recorder.remembered == [lost["id"]]
    assert len(fake.created()) == 1 and recorder.intents == 0  # adopted: no second create
    assert Path(out.path).exists() and job.intent_at is None


async def test_without_an_intent_a_step_creates_and_records_it_first(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    generator = ReplicateGenerator(fast_settings(fake, deadline_image_s=90))
    recorder = Hooks()
    job = StepJob("c1", StepName.IMAGE, PLAN, "photo", 7, str(tmp_path))
    try:
        await generator.run(job, StepContext(recorder.hooks(), _no_cpu))
    finally:
        await generator.aclose()
    assert recorder.intents == 1 and len(fake.created()) == 1
    create = next(h for m, p, h in fake.requests if m == "POST" and "predictions" in p)
    assert create.get("Cancel-After") == "90s"  # Replicate stops it even if we are gone


async def test_a_process_without_the_lease_sends_no_create(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    generator = ReplicateGenerator(fast_settings(fake))
    job = StepJob("c1", StepName.IMAGE, PLAN, "photo", 7, str(tmp_path))
    try:
        try:
            await generator.run(job, StepContext(Hooks(lost=True).hooks(), _no_cpu))
        except LeaseLost:
            pass
        else:
            raise AssertionError("LeaseLost expected")
    finally:
        await generator.aclose()
    assert fake.created() == []


async def test_a_hand_over_leaves_the_prediction_running(fake: FakeReplicate) -> None:
    fake.latency["video"] = 30.0
    api = PredictionApi(fast_settings(fake))
    recorder = Hooks(keep=True)
    try:
        task = asyncio.create_task(
            predict(
                api,
                VIDEO,
                {"prompt": "orbit", "image": "data:,"},
                kind=StepKind.VIDEO,
                deadline_s=60,
                hooks=recorder.hooks(),
            )
        )
        for _ in range(500):
            if recorder.remembered:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await api.aclose()
    assert recorder.remembered and fake.cancels == []
    assert fake.predictions[recorder.remembered[0]]["status"] in ("starting", "processing")


async def test_the_plan_is_adopted_from_its_intent(fake: FakeReplicate) -> None:
    request = CampaignRequest(theme="planned cats", products=2, seed=4)
    planner = LlmPlanner(ReplicateGenerator(fast_settings(fake)).runtime)
    successor = LlmPlanner(ReplicateGenerator(fast_settings(fake)).runtime)  # another process
    first = Hooks()
    intent_at = time.time()
    try:
        plans = await planner.plan(request, PlanContext(first.hooks()))
        assert first.intents == 1 and len(fake.created()) == 1
        # The next process after a crash that lost the id but kept the intent:
        second = Hooks()
        again = await successor.plan(request, PlanContext(second.hooks(), intent_at=intent_at))
    finally:
        await planner.runtime.aclose()
        await successor.runtime.aclose()
    assert again == plans and second.intents == 0 and len(fake.created()) == 1
    assert second.remembered == first.remembered


async def test_a_create_is_not_sent_once_the_lease_may_have_lapsed(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    """The late check: after before_spend, a pause past the lease stops the send itself."""
    generator = ReplicateGenerator(fast_settings(fake))
    recorder = Hooks()
    hooks = replace(recorder.hooks(), may_spend=lambda: False)
    job = StepJob("c1", StepName.IMAGE, PLAN, "photo", 7, str(tmp_path))
    try:
        try:
            await generator.run(job, StepContext(hooks, _no_cpu))
        except LeaseLost:
            pass
        else:
            raise AssertionError("LeaseLost expected")
    finally:
        await generator.aclose()
    assert recorder.intents == 1 and fake.created() == [] and fake.posts("/predictions") == 0


def test_a_run_may_spend_only_within_its_sure_lease() -> None:
    stop = Stop(valid_until=time.monotonic() + 60)
    assert stop.may_spend()
    stop.valid_until = time.monotonic() - 1  # e.g. the process was paused past its lease
    assert not stop.may_spend()
    stop = Stop(keep=True)
    assert not stop.may_spend()
