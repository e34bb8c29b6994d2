"""OfflineGenerator: Pillow images and Ken Burns videos, no token, no network."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

from core.errors import PermanentStepError
from core.model import StepKind, StepName
from core.ports import StepContext, StepJob, StepOutput

IMAGE_S = 0.7  # medians of `bot.py demo` (4 products at once) on 2 cores
VIDEO_S_PER_CLIP_S = 0.8  # a 3 s clip: ~2.4 s


class OfflineGenerator:
    """The embedded default generator; its CPU work goes through ctx.run_cpu."""

    name = "offline"

    def __init__(self, video_seconds: float = 3.0) -> None:
        self.video_seconds = video_seconds

    def price_usd(self, step: StepName, model: str | None) -> float:
        """Offline rendering is free."""
        return 0.0

    def typical_s(self, step: StepName, model: str | None) -> float | None:
        """Rendering time on a small machine (2 cores): no model, so ETAs start right."""
        if step is StepName.IMAGE:
            return IMAGE_S
        return VIDEO_S_PER_CLIP_S * self.video_seconds

    async def check_models(self, models: Mapping[StepKind, str | None]) -> None:
        """Any request's models are fine: offline rendering names none."""

    async def warm(self) -> None:
        """Nothing to warm: the offline generator has no clients."""

    async def aclose(self) -> None:
        """Nothing to close."""

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        """Render the step's file under job.out_dir."""
        from adapters.offline import ken_burns, product_image  # Pillow: only when drawing

        out = Path(job.out_dir) / f"p{job.plan.index + 1:02d}-{job.step.value}"
        if job.step is StepName.IMAGE:
            await ctx.hooks.report("drawing")
            fn = functools.partial(
                product_image.render_product_image,
                str(out.with_suffix(".png")),
                name=job.plan.name,
                product_type=job.plan.product_type,
                tagline=job.plan.tagline,
                style=job.style,
                seed=job.seed,
            )
        else:
            if job.input_path is None:
                raise PermanentStepError("video step has no input image")
            await ctx.hooks.report("rendering video")
            fn = functools.partial(
                ken_burns.render_ken_burns,
                job.input_path,
                str(out.with_suffix(".mp4")),
                seconds=self.video_seconds,
                seed=job.seed,
            )
        try:
            path: str = await ctx.run_cpu(fn)
        except (OSError, ValueError, RuntimeError) as exc:
            raise PermanentStepError(f"offline {job.step.value} failed: {exc}") from exc
        return StepOutput(path=path, model="offline")
