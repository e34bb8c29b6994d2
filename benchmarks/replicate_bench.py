"""Replicate benchmark: the real client against the fake API, run in its own process.

1. A campaign of N products with videos through the real service, LocalExecutor,
   SQLite and ReplicateGenerator, with the old tool's latencies scaled 1:100
   (image 0.3 s, video 3 s): makespan against the lower bound the limits allow
   and against the old tool's schedule, and the client-side overhead per
   prediction (step time minus the model's latency).
2. A backlog of image steps all submitted at once, with the create limit set
   to --rate per minute on both sides (the fake answers 429 beyond it): the
   achieved create rate as a fraction of the limit, and the 429s we caused.

    python -m benchmarks.replicate_bench [--products 10] [--backlog 1000] [--rate 2400]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from adapters.local_executor import LocalExecutor
from adapters.replicate_generator import ReplicateGenerator
from adapters.replicate_rate import BURST_S
from adapters.replicate_settings import ReplicateSettings
from core.model import Campaign, ProductPlan, StepName
from core.planner import OfflinePlanner
from core.ports import StepContext, StepHooks, StepJob
from core.request import CampaignRequest
from core.scheduler import Limits, Scheduler
from core.service import CampaignService, ServiceConfig
from storage.sqlite_store import SqliteStore

IMAGE_S, VIDEO_S = 0.3, 3.0  # the old tool's 30 s and 300 s, scaled 1:100
LIMITS = Limits(text=4, image=8, video=4, cpu=1)


@asynccontextmanager
async def fake_api(rate_per_min: float | None = None) -> AsyncIterator[str]:
    """Start `python -m tests.fakes.replicate` on a free port; yields its base URL."""
    args = ["--port", "0", "--latency", f"image={IMAGE_S},video={VIDEO_S},text=0.1"]
    if rate_per_min:
        args += ["--rate", str(rate_per_min)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.replicate", *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        proc.terminate()
        await proc.wait()


def settings(base_url: str, **changes: Any) -> ReplicateSettings:
    """Settings for the fake: plain http, polling scaled down with the latencies."""
    values: dict[str, Any] = {
        "api_token": "bench-token",
        "base_url": base_url,
        "allow_http": True,
        "poll_min_s": 0.01,
        "poll_max_s": 0.05,
        "read_per_min": 1e6,
    }
    return ReplicateSettings(**{**values, **changes})


def lower_bound(n: int) -> float:
    """No schedule within the limits can finish sooner."""
    return max(
        math.ceil(n / LIMITS.image) * IMAGE_S + VIDEO_S,
        IMAGE_S + math.ceil(n / LIMITS.video) * VIDEO_S,
    )


def old_tool(n: int) -> float:
    """3 images at a time, then every video one after another."""
    return math.ceil(n / 3) * IMAGE_S + n * VIDEO_S


def no_sheet(items: list[tuple[str, str]], out_path: str, *, title: str) -> str:
    """The contact sheet is not what this benchmark measures."""
    return out_path


def overheads(campaign: Campaign) -> list[float]:
    """Per step: wall time minus the model's latency."""
    latency = {StepName.IMAGE: IMAGE_S, StepName.VIDEO: VIDEO_S}
    return [
        s.finished_at - s.started_at - latency[s.name]
        for s in campaign.steps()
        if s.finished_at is not None and s.started_at is not None
    ]


async def campaign_run(n: int, folder: Path) -> tuple[float, list[float]]:
    """One N-product campaign with videos; returns (makespan, overheads)."""
    async with fake_api() as base_url:
        store = await SqliteStore.open(folder / "bench.db")
        generator = ReplicateGenerator(settings(base_url))
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
        finally:
            await service.aclose()
            await executor.aclose()
            await generator.aclose()
            await store.close()
    assert campaign.status.value == "succeeded", campaign.status
    assert campaign.started_at is not None
    ends = [s.finished_at for s in campaign.steps() if s.finished_at is not None]
    return max(ends) - campaign.started_at, overheads(campaign)


async def _quiet(_value: str) -> None:
    return None


async def backlog_run(count: int, rate: float, folder: Path) -> dict[str, Any]:
    """`count` image steps at once with the create limit at `rate`/min on both sides."""
    async with fake_api(rate) as base_url:
        generator = ReplicateGenerator(
            settings(base_url, create_per_min=rate, poll_min_s=0.15, poll_max_s=0.3)
        )
        ctx = StepContext(StepHooks(_quiet, _quiet), _no_cpu)
        jobs = [
            StepJob("bench", StepName.IMAGE, ProductPlan(i, f"P{i}", "mug", "t", f"mug {i}", "v"),
                    "photo", i, str(folder / "backlog"))
            for i in range(count)
        ]  # fmt: skip
        started = time.monotonic()
        try:
            await asyncio.gather(*(generator.run(job, ctx) for job in jobs))
        finally:
            await generator.aclose()
        wall = time.monotonic() - started
        async with httpx.AsyncClient() as client:
            stats: dict[str, Any] = (await client.get(f"{base_url}/_fake/stats")).json()
    stats["wall"] = wall
    return stats


async def _no_cpu(*_args: object) -> None:
    raise AssertionError("no CPU work here")


async def main(n: int, backlog: int, rate: float) -> None:
    """Print both tables (markdown)."""
    with tempfile.TemporaryDirectory() as tmp:
        span, extra = await campaign_run(n, Path(tmp))
        bound, old = lower_bound(n), old_tool(n)
        print(f"latencies: image {IMAGE_S} s, video {VIDEO_S} s; limits image 8, video 4")
        print("| products (+videos) | makespan | lower bound | bound/makespan | old tool "
              "| speed-up | overhead/prediction (median, max) |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {n} | {span:.2f} s | {bound:.2f} s | {bound / span:.3f} | {old:.1f} s "
            f"| {old / span:.1f}x | {statistics.median(extra) * 1000:.0f} ms, "
            f"{max(extra) * 1000:.0f} ms |"
        )
        stats = await backlog_run(backlog, rate, Path(tmp))
    limit = rate / 60
    creates, spread = stats["creates"], stats["last"] - stats["first"]
    burst = int(limit * BURST_S)  # what the bucket hands out at once before pacing
    steady = (creates - burst - 1) / spread if spread > 0 else float("inf")
    print()
    print(f"backlog: {backlog} image steps at once, create limit {rate:.0f}/min ({limit:.0f}/s)")
    print("| creates | wall | creates/s overall | after the burst | fraction of limit | 429s |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {creates} | {stats['wall']:.2f} s | {(creates - 1) / spread:.1f} | "
        f"{steady:.1f} | {steady / limit:.3f} | {stats['throttled']} |"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=2400.0, help="create limit per minute")
    args = parser.parse_args()
    asyncio.run(main(args.products, args.backlog, args.rate))
