"""Reroll and Animate as new attempts, and animating an uploaded image (service level).

Real SQLite file and LocalExecutor, a gated fake generator that records jobs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.words import refusal
from core.errors import CampaignStateError, InvalidRequest, QuotaExceeded
from core.model import Action, CampaignStatus, StepName, StepStatus
from core.quotas import QuotaSettings
from core.request import CampaignRequest
from tests.fakes import GatedGenerator
from tests.fakes.audit import audit_entries

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def _request(products: int = 2, videos: bool = False) -> CampaignRequest:
    return CampaignRequest(theme="retro cats", products=products, videos=videos)


async def test_reroll_adds_an_attempt_with_a_new_seed_and_keeps_the_original(make_service) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    first = await service.run(_request())
    await service.reroll(first.id, 2)
    done = await service.wait(first.id)
    assert done.status is CampaignStatus.SUCCEEDED
    assert len(done.products) == 3
    attempt = done.products[2]
    assert (attempt.attempt_of, attempt.action) == (1, Action.REROLL)
    assert attempt.plan.name == done.products[1].plan.name
    assert gen.jobs[(2, "image")].seed != gen.jobs[(1, "image")].seed
    assert [p.plan.index for p in done.current()] == [0, 2]  # the reroll stands for slot 2
    assert done.cost_usd == pytest.approx(0.03)  # two images, then one more


async def test_a_reroll_that_fails_leaves_the_earlier_image_standing(make_service) -> None:
    gen = GatedGenerator(open_all=True, fail={(2, "image")})
    service = make_service(gen)
    first = await service.run(_request())
    await service.reroll(first.id, 1)
    done = await service.wait(first.id)
    assert done.products[2].status is StepStatus.FAILED
    assert done.status is CampaignStatus.SUCCEEDED
    assert [p.plan.index for p in done.current()] == [0, 1]
    with pytest.raises(CampaignStateError, match="already succeeded"):
        await service.retry(first.id)  # the failed attempt is history, not work left


async def test_a_reroll_of_a_failed_product_makes_a_partial_campaign_whole(make_service) -> None:
    gen = GatedGenerator(open_all=True, fail={(1, "image")})
    service = make_service(gen)
    first = await service.run(_request())
    assert first.status is CampaignStatus.PARTIAL
    await service.reroll(first.id, 2)
    assert (await service.wait(first.id)).status is CampaignStatus.SUCCEEDED


async def test_actions_are_refused_while_the_campaign_runs(make_service, store) -> None:
    gen = GatedGenerator()
    service = make_service(gen)
    campaign = await service.submit(_request())
    await gen.wait_started(2)
    for action, press in (("reroll", service.reroll), ("animate", service.animate)):
        with pytest.raises(CampaignStateError) as refused:
            await press(campaign.id, 1)
        assert re.search(f"still running; {action} once it has", refusal(refused.value))
    gen.open((0, "image"), (1, "image"))
    done = await service.wait(campaign.id)
    assert len(done.products) == 2


async def test_a_product_number_out_of_range_is_refused_and_changes_nothing(
    make_service, store
) -> None:
    service = make_service(GatedGenerator(open_all=True))
    first = await service.run(_request())
    for number in (0, 3, -1):
        with pytest.raises(InvalidRequest, match=r"product: .* \(allowed: 1-2\)"):
            await service.reroll(first.id, number)
    assert len((await store.get(first.id)).products) == 2


async def test_animate_copies_the_image_and_makes_only_a_video(make_service) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    first = await service.run(_request())
    await service.animate(first.id, 1, prompt="the mug spins slowly")
    done = await service.wait(first.id)
    attempt = done.products[2]
    assert (attempt.attempt_of, attempt.action) == (0, Action.ANIMATE)
    assert (2, "image") not in gen.calls  # the image is not paid for again
    job = gen.jobs[(2, "video")]
    assert job.input_path == done.products[0].output(StepName.IMAGE)
    assert job.plan.video_prompt == "the mug spins slowly"
    assert attempt.output(StepName.VIDEO) is not None
    assert attempt.step(StepName.IMAGE).cost_usd == 0
    assert attempt.step(StepName.IMAGE).started_at is None  # not a measured run (ETA)
    assert done.cost_usd == pytest.approx(0.03)


async def test_animate_without_a_number_animates_every_product_without_a_video(
    make_service,
) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    first = await service.run(_request(3))
    await service.animate(first.id)
    done = await service.wait(first.id)
    assert [(p.attempt_of, p.action) for p in done.products[3:]] == [
        (0, Action.ANIMATE),
        (1, Action.ANIMATE),
        (2, Action.ANIMATE),
    ]
    assert all(p.output(StepName.VIDEO) for p in done.current())
    with pytest.raises(CampaignStateError, match="already has a video"):
        await service.animate(first.id)


async def test_animate_needs_an_image(make_service, store) -> None:
    service = make_service(GatedGenerator(open_all=True, fail={(0, "image")}))
    first = await service.run(_request())
    with pytest.raises(CampaignStateError, match=r"product 1 of .* has no image to animate"):
        await service.animate(first.id, 1)
    assert len((await store.get(first.id)).products) == 2


@pytest.mark.parametrize("prompt", ["spin \x1b[31m", "x" * 501])
async def test_a_bad_motion_prompt_is_refused_before_anything_changes(
    make_service, store, prompt: str
) -> None:
    service = make_service(GatedGenerator(open_all=True))
    first = await service.run(_request())
    with pytest.raises(InvalidRequest, match="prompt: "):
        await service.animate(first.id, 1, prompt=prompt)
    assert len((await store.get(first.id)).products) == 2


async def test_animate_image_is_a_one_product_campaign(make_service, tmp_path: Path) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen)
    campaign = await service.animate_image(PNG, "my cat.png", "tail wags", requester="cli")
    done = await service.wait(campaign.id)
    assert done.status is CampaignStatus.SUCCEEDED
    assert done.request.theme == "animate my cat"
    assert [p.plan.name for p in done.products] == ["my cat"]
    job = gen.jobs[(0, "video")]
    assert job.input_path is not None and Path(job.input_path).read_bytes() == PNG
    assert job.plan.video_prompt == "tail wags"
    assert (0, "image") not in gen.calls
    assert [c.id for c in await service.history()] == [campaign.id]
    with pytest.raises(CampaignStateError, match="uploaded image: there is no plan to reroll"):
        await service.reroll(campaign.id, 1)
    await service.animate(campaign.id, 1, prompt="the other way")  # a new video of it is fine
    again = await service.wait(campaign.id)
    assert again.products[1].output(StepName.VIDEO) is not None


@pytest.mark.parametrize(
    ("data", "problem"),
    [(b"GIF89a" + b"\0" * 10, "is not a PNG"), (PNG + b"\0" * (20 * 1024 * 1024), "is too large")],
)
async def test_animate_image_refuses_what_is_not_an_image(
    make_service, tmp_path: Path, data: bytes, problem: str
) -> None:
    service = make_service(GatedGenerator(open_all=True))
    with pytest.raises(InvalidRequest, match=f"image: {problem}"):
        await service.animate_image(data, "x.gif")
    assert list(await service.history()) == []
    assert not list(tmp_path.rglob("upload.*"))


async def test_action_estimates_price_each_action(make_service) -> None:
    service = make_service(GatedGenerator(open_all=True))
    first = await service.run(_request(videos=True))
    estimates = await service.action_estimate(first, 1)
    assert estimates[Action.REROLL].steps == 2
    assert estimates[Action.REROLL].cost_usd == pytest.approx(0.02)
    assert estimates[Action.ANIMATE].steps == 1
    assert estimates[Action.ANIMATE].cost_usd == pytest.approx(0.01)
    reroll_s, animate_s = estimates[Action.REROLL].seconds, estimates[Action.ANIMATE].seconds
    assert reroll_s is not None and animate_s is not None and reroll_s > animate_s


async def test_actions_respect_the_cost_caps_and_leave_an_audit_line(make_service, store) -> None:
    gen = GatedGenerator(open_all=True)
    service = make_service(gen, quotas=QuotaSettings(cost_campaign_usd=0.025))
    first = await service.submit(_request(), requester="slack:U1")  # 2 images: $0.02
    first = await service.wait(first.id)
    with pytest.raises(QuotaExceeded) as refused:
        await service.reroll(first.id, 1, requester="slack:U1")  # one more: $0.03 > $0.025
    assert re.match(r"cost cap: this campaign has cost \$0.020", refusal(refused.value))
    assert len((await store.get(first.id)).products) == 2
    newest = (await audit_entries(store, campaign_id=first.id))[0]
    assert (newest.event.value, newest.who.requester) == ("refused", "slack:U1")
    assert "CAMPAIGN_QUOTA_COST_CAMPAIGN" in (newest.reason or "")


async def test_an_action_counts_against_the_daily_cost_cap_of_who_pressed(make_service) -> None:
    service = make_service(
        GatedGenerator(open_all=True), quotas=QuotaSettings(cost_user_daily_usd=0.035)
    )
    first = await service.submit(_request(), requester="slack:U1")
    await service.wait(first.id)
    await service.reroll(first.id, 1, requester="slack:U1")  # $0.02 + $0.01 = $0.03
    await service.wait(first.id)
    with pytest.raises(QuotaExceeded) as refused:
        await service.animate(first.id, 1, requester="slack:U1")  # $0.04 > $0.035
    assert re.match("cost cap: your campaigns today", refusal(refused.value))
    await service.animate(first.id, 1, requester="slack:U2")  # someone else's budget
