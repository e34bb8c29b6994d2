"""Per-product actions as new attempts: Reroll and Animate, and an uploaded image to animate.

An action never changes a finished product: it adds a product to the same
campaign, a new attempt of the original product's slot (`attempt_of`), at the
next free index (so a reroll gets a new seed: seeds are base + index). History
and `show` keep every attempt; `Campaign.current()` picks what each slot
stands on now.

- Reroll: the attempt's product plan again, every step of its chain pending.
- Animate: the attempt's image copied (done, cost 0, no start time, so ETAs
  ignore it) and a pending video, with the motion prompt given or the plan's.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.errors import CampaignStateError, InvalidRequest, NotFinished
from core.model import Action, Campaign, Product, ProductPlan, StepName, StepRecord, StepStatus

DEFAULT_MOTION = "slow cinematic camera push-in, gentle natural motion"
UPLOAD_MODEL = "upload"  # the image "model" of an uploaded image: it was never generated


def require_finished(campaign: Campaign, action: str = "", *, running: bool = False) -> None:
    """NotFinished unless the campaign has finished (and no run of it is live here,
    `running`): its status, and the action that waits for it."""
    if campaign.status.done and not running:
        return
    status = campaign.status.value if not campaign.status.done else "running"
    raise NotFinished(campaign.id, status, action)


def pick(campaign: Campaign, number: int) -> Product:
    """Product `number` as people see it (1-based, attempts included), or InvalidRequest."""
    count = len(campaign.products)
    if not 1 <= number <= count:
        allowed = f"1-{count}" if count else "none: the campaign has no products yet"
        raise InvalidRequest("product", f"{number} is not a product of {campaign.id}", allowed)
    return campaign.products[number - 1]


def reroll(campaign: Campaign, source: Product) -> Product:
    """A new attempt of `source`: its plan and chain again, at a new index (a new seed)."""
    image = source.step(StepName.IMAGE)
    if image is not None and image.model == UPLOAD_MODEL:
        number = source.plan.index + 1
        raise CampaignStateError(
            f"product {number} of {campaign.id} is an uploaded image: there is no plan to"
            " reroll; animate it again instead"
        )
    index = len(campaign.products)
    return Product(
        replace(source.plan, index=index),
        tuple(StepRecord(index, s.name, model=s.model) for s in source.steps),
        attempt_of=source.slot,
        action=Action.REROLL,
    )


def animate(
    campaign: Campaign, source: Product, prompt: str | None, video_model: str | None
) -> Product:
    """A new attempt of `source` that animates its image: a copy of it and a pending video."""
    image = source.step(StepName.IMAGE)
    if image is None or image.status is not StepStatus.SUCCEEDED:
        number = source.plan.index + 1
        raise CampaignStateError(f"product {number} of {campaign.id} has no image to animate")
    index = len(campaign.products)
    old_video = source.step(StepName.VIDEO)
    plan = replace(source.plan, index=index, video_prompt=prompt or source.plan.video_prompt)
    return Product(
        plan,
        (
            copied_image(image, index),
            StepRecord(index, StepName.VIDEO, model=_model(old_video, video_model)),
        ),
        attempt_of=source.slot,
        action=Action.ANIMATE,
    )


def unanimated(campaign: Campaign) -> list[Product]:
    """The current products that have an image and no video: what `animate <id>` animates."""
    return [
        p
        for p in campaign.current()
        if p.output(StepName.IMAGE) is not None and p.output(StepName.VIDEO) is None
    ]


def copied_image(image: StepRecord, index: int) -> StepRecord:
    """An image step another product already paid for, as a done step of product `index`."""
    return StepRecord(
        index,
        StepName.IMAGE,
        StepStatus.SUCCEEDED,
        started_at=None,  # not a measured run: ETAs leave it out
        finished_at=image.finished_at,  # how fresh its provider URL is
        output=image.output,
        output_url=image.output_url,
        model=image.model,
    )


def uploaded(
    path: Path, name: str, prompt: str | None, finished_at: float, video_model: str | None
) -> Product:
    """The one product of an `animate <image>` campaign: the file as its image, a video to make."""
    plan = ProductPlan(
        0,
        name,
        "uploaded image",
        "",
        "",
        prompt or DEFAULT_MOTION,
    )
    image = StepRecord(
        0,
        StepName.IMAGE,
        StepStatus.SUCCEEDED,
        finished_at=finished_at,
        output=str(path),
        model=UPLOAD_MODEL,
    )
    return Product(plan, (image, StepRecord(0, StepName.VIDEO, model=video_model)))


def _model(old_video: StepRecord | None, default: str | None) -> str | None:
    return old_video.model if old_video is not None and old_video.model else default
