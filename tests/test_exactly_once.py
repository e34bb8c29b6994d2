"""Exactly-once spending through the real Replicate layer against the fake API: intents are
adopted after a crash, deadlines reach Replicate, a hand-over cancels nothing."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from adapters.replicate_api.catalog import ModelCatalog
from adapters.replicate_api.generator import ReplicateGenerator
from adapters.replicate_api.models import parse_ref
from adapters.replicate_api.planner import LlmPlanner
from adapters.replicate_api.predict import predict
from adapters.replicate_api.predictions import PredictionApi
from adapters.replicate_api.sent import matches_sent
from adapters.replicate_api.wire import Prediction, Status
from core.errors import LeaseLost
from core.lease import Stop
from core.model import PlanCall, ProductPlan, StepKind, StepName
from core.ports import PlanContext, StepContext, StepHooks, StepJob
from core.request import CampaignRequest
from tests.fakes.model_schemas import SCHEMAS
from tests.fakes.replicate import (
    FakeReplicate,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
    fast_settings,
)
from tests.fakes.replicate_parts import png

pytestmark = pytest.mark.both_stores

IMAGE, VIDEO = "black-forest-labs/flux-schnell", "bytedance/seedance-1-lite"
PLAN = ProductPlan(0, "Mug", "mug", "t", "a mug", "orbit")


class Hooks:
    """StepHooks that record what the step told the campaign."""

    def __init__(self, *, keep: bool = False, lost: bool = False) -> None:
        self.remembered: list[str] = []
        self.intents = 0
        self.sent: list[dict[str, Any]] = []  # the input each intent recorded
        self.keep, self.lost = keep, lost

    async def report(self, _message: str) -> None:
        return None

    async def remember(self, provider_id: str) -> None:
        self.remembered.append(provider_id)

    async def before_spend(self, sent: str) -> None:
        if self.lost:
            raise LeaseLost("c1")
        self.intents += 1
        self.sent.append(json.loads(sent))

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
    intent_at = time.time()
    api = PredictionApi(fast_settings(fake))
    try:  # the crashed process got this far: created, id never stored
        spec = await ModelCatalog(generator.settings.models).bind(api.http, StepKind.IMAGE)
        lost = await api.create(spec.ref, spec.inputs(PLAN.image_prompt, seed=7))
    finally:
        await api.aclose()
    recorder = Hooks()
    resumed = StepJob("c1", StepName.IMAGE, PLAN, "photo", 7, str(tmp_path), intent_at=intent_at)
    try:
        out = await generator.run(resumed, StepContext(recorder.hooks(), _no_cpu))
    finally:
        await generator.aclose()
    assert out.provider_id == lost.id and recorder.remembered == [lost.id]
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


async def test_the_intent_keeps_the_input_sent_and_adoption_matches_it_after_a_schema_change(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    """A video created with a small image inline (`data:`), then a crash before its id was
    stored; meanwhile the model's schema changed. The stored input finds it: not paid twice."""
    image = tmp_path / "p01-image.png"
    image.write_bytes(png())
    job = StepJob("c1", StepName.VIDEO, PLAN, "photo", 7, str(tmp_path), input_path=str(image))
    first, recorder = ReplicateGenerator(fast_settings(fake, deadline_video_s=60)), Hooks()
    fake.latency["video"] = 30.0  # still running when the next owner looks
    created = asyncio.Event()

    async def lost_id(_provider_id: str) -> None:  # the crash comes before the id is stored
        created.set()
        await asyncio.Event().wait()

    hooks = replace(recorder.hooks(), remember_provider_id=lost_id, keep_on_stop=lambda: True)
    task = asyncio.create_task(first.run(job, StepContext(hooks, _no_cpu)))
    await created.wait()
    task.cancel()  # the intent (and its input) was stored, the id never was
    await asyncio.gather(task, return_exceptions=True)
    await first.aclose()
    (sent,) = recorder.sent
    assert sent["image"].startswith("data:image/png;sha256=")  # a digest, not the bytes
    assert sent["prompt"] == "orbit" and "duration" not in sent
    changed = json.loads(json.dumps(SCHEMAS[VIDEO]))
    props = changed["Input"]["properties"]
    props["start_image"] = props.pop("image")  # a new version since: today's input differs
    fake.new_version(VIDEO, changed)
    resumed = replace(job, intent_at=time.time() - 5, sent_input=json.dumps(sent))
    again = ReplicateGenerator(fast_settings(fake, deadline_video_s=60))
    again_hooks = Hooks()
    fake.latency["video"] = 0.05
    try:
        adopted = await asyncio.wait_for(
            again.run(resumed, StepContext(again_hooks.hooks(), _no_cpu)), 10
        )
    finally:
        await again.aclose()
    assert len(fake.created(VIDEO)) == 1 and again_hooks.intents == 0  # adopted, not re-paid
    assert adopted.provider_id == fake.created(VIDEO)[0]["id"]


def test_a_data_input_matches_loosely_and_everything_else_exactly() -> None:
    model = parse_ref(VIDEO)
    sent = {"prompt": "orbit", "image": "data:image/png;sha256=0011"}
    echoed = {"prompt": "orbit", "image": "https://replicate.delivery/x.png"}
    assert matches_sent(_echoing(echoed), model, sent)
    assert matches_sent(_echoing({"prompt": "orbit"}), model, sent)  # left out by the list
    assert not matches_sent(_echoing({**echoed, "prompt": "spin"}), model, sent)
    assert not matches_sent(_echoing({**echoed, "seed": 3}), model, sent)  # sent without a seed
    assert not matches_sent(_echoing({"image": echoed["image"]}), model, sent)


def _echoing(inputs: dict[str, object]) -> Prediction:
    return Prediction("p1", Status.STARTING, input=inputs)


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


async def test_every_planning_call_is_adopted_from_its_intent(fake: FakeReplicate) -> None:
    request = CampaignRequest(theme="planned cats", products=2, seed=4)
    planner = LlmPlanner(ReplicateGenerator(fast_settings(fake)).runtime)
    successor = LlmPlanner(ReplicateGenerator(fast_settings(fake)).runtime)  # another process
    first: dict[str, Hooks] = {}
    intent_at = time.time()
    try:
        plans = await planner.plan(request, PlanContext(lambda part: _hooks(first, part)))
        assert sorted(first) == ["details/0-0", "details/1-1", "outline"]
        assert all(h.intents == 1 for h in first.values()) and len(fake.created()) == 3
        # The next process after a crash that lost every id but kept the intents:
        lost = {part: PlanCall(None, intent_at, json.dumps(h.sent[0])) for part, h in first.items()}
        second: dict[str, Hooks] = {}
        again = await successor.plan(request, PlanContext(lambda part: _hooks(second, part), lost))
    finally:
        await planner.runtime.aclose()
        await successor.runtime.aclose()
    assert again == plans and len(fake.created()) == 3
    assert all(h.intents == 0 for h in second.values())
    assert {p: h.remembered for p, h in second.items()} == {
        p: h.remembered for p, h in first.items()
    }


def _hooks(made: dict[str, Hooks], part: str) -> StepHooks:
    return made.setdefault(part, Hooks()).hooks()


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
