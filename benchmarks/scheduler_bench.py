"""Scheduler benchmark: makespan vs. the lower bound the limits allow, vs. the old tool.

A generator with fixed latencies (asyncio.sleep, no network) runs through the
real service, scheduler, LocalExecutor and a SQLite file. Latencies are
simulated seconds scaled down by --scale so the whole run takes seconds.

    python -m benchmarks.scheduler_bench [--scale 0.01] [--sizes 5 10 50]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from adapters.local_executor import LocalExecutor
from core.model import Campaign, StepName
from core.planner import OfflinePlanner
from core.ports import StepContext, StepJob, StepOutput
from core.request import CampaignRequest
from core.scheduler import Limits, Scheduler
from core.service import CampaignService, ServiceConfig
from storage.sqlite_store import SqliteStore

IMAGE_S = 10.0  # simulated seconds per image prediction
VIDEO_S = 60.0  # simulated seconds per image-to-video prediction
LIMITS = Limits(text=4, image=8, video=4, cpu=1)


@dataclass
class FixedLatencyGenerator:
    """Sleeps a fixed (scaled) time per step and writes a tiny file."""

    scale: float
    name: str = "fixed-latency"

    def price_usd(self, step: StepName, model: str | None) -> float:
        return 0.0

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        seconds = IMAGE_S if job.step is StepName.IMAGE else VIDEO_S
        await asyncio.sleep(seconds * self.scale)
        path = Path(job.out_dir) / f"{job.plan.index}-{job.step.value}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
        return StepOutput(path=str(path))


def no_sheet(items: list[tuple[str, str]], out_path: str, *, title: str) -> str:
    """The contact sheet is not what this benchmark measures."""
    return out_path


def lower_bound(n: int, limits: Limits) -> float:
    """No schedule within the limits can finish sooner (simulated seconds)."""
    images_then_last_video = math.ceil(n / limits.image) * IMAGE_S + VIDEO_S
    first_image_then_videos = IMAGE_S + math.ceil(n / limits.video) * VIDEO_S
    return max(images_then_last_video, first_image_then_videos)


def old_tool(n: int) -> float:
    """The Streamlit tool: 3 image workers, then the videos one after another."""
    return math.ceil(n / 3) * IMAGE_S + n * VIDEO_S


def makespan(campaign: Campaign) -> float:
    """From campaign start to the last step's end, from the stored timings."""
    assert campaign.started_at is not None
    ends = [s.finished_at for s in campaign.steps() if s.finished_at is not None]
    return max(ends) - campaign.started_at


async def measure(n: int, scale: float, folder: Path) -> float:
    """Run one N-product campaign with videos; returns its simulated makespan."""
    store = await SqliteStore.open(folder / f"bench-{n}.db")
    generator = FixedLatencyGenerator(scale)
    executor = LocalExecutor(generator, LIMITS)
    service = CampaignService(
        store=store,
        planner=OfflinePlanner(),
        generator=generator,
        executor=executor,
        scheduler=Scheduler(LIMITS),
        sheet=no_sheet,
        config=ServiceConfig(data_dir=folder, max_products=n),
    )
    try:
        campaign = await service.run(CampaignRequest(theme="bench", products=n, videos=True))
        assert campaign.status.value == "succeeded", campaign.status
        return makespan(campaign) / scale
    finally:
        await service.aclose()
        await executor.aclose()
        await store.close()


async def main(sizes: list[int], scale: float) -> None:
    """Print the benchmark table (markdown)."""
    print(
        f"latencies: image {IMAGE_S:.0f} s, video {VIDEO_S:.0f} s (simulated, x{scale});"
        f" limits: image {LIMITS.image}, video {LIMITS.video}"
    )
    print(
        "| products (+videos) | makespan | lower bound | bound/makespan "
        "| old tool | speed-up vs old |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            span = await measure(n, scale, Path(tmp))
            bound, old = lower_bound(n, LIMITS), old_tool(n)
            print(
                f"| {n} | {span:.1f} s | {bound:.1f} s | {bound / span:.3f} "
                f"| {old:.0f} s | {old / span:.1f}x |"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 50])
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.scale))
