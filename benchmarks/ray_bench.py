"""Ray benchmark: when does the Ray executor pay off on this machine?

1. Ray's start time and memory (the whole process tree, PSS from /proc).
2. CPU-bound: N Ken Burns renders one after another, on the LocalExecutor's
   process pool and as Ray tasks.
3. Per-step overhead: steps per second through each executor with a
   zero-latency generator.

    python -m benchmarks.ray_bench [--renders 6] [--seconds 2] [--steps 300]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.local_executor import LocalExecutor
from adapters.offline import ken_burns, product_image
from adapters.ray_exec.executor import RayExecutor
from adapters.ray_exec.settings import RaySettings
from bot import event_loop
from core.model import ProductPlan, StepName
from core.ports import Executor, StepContext, StepHooks, StepJob, StepOutput
from core.scheduler import Limits

LIMITS = Limits(text=4, image=8, video=4, cpu=max(1, os.cpu_count() or 1))


@dataclass
class ZeroLatencyGenerator:
    """Returns at once: what is left is the executor's own cost per step."""

    name: str = "zero-latency"

    def price_usd(self, step: StepName, model: str | None) -> float:
        return 0.0

    async def check_models(self, models: object) -> None:

        return None

    def typical_s(self, step: object, model: object) -> float | None:

        return None

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        await ctx.hooks.report("done")
        return StepOutput(path=job.out_dir)

    async def warm(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def _nothing(_value: str) -> None:
    return None


def tree_pss_mib(root: int) -> tuple[int, float]:
    """(processes, PSS in MiB) of `root` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return len(tree), sum(_pss_kib(pid) for pid in tree) / 1024


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def timed(work: Callable[[], Awaitable[Any]]) -> float:
    """Wall seconds of one awaited call."""
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def renders(executor: Executor | None, image: str, out: Path, n: int, seconds: float) -> None:
    """N Ken Burns clips: on the executor, or one after another in this process."""
    calls = [
        functools.partial(
            ken_burns.render_ken_burns, image, str(out / f"{i}.mp4"), seconds=seconds, seed=i
        )
        for i in range(n)
    ]
    if executor is None:
        for call in calls:
            call()
    else:
        await asyncio.gather(*(executor.run_cpu(call) for call in calls))


async def steps(executor: Executor, n: int, out: str) -> None:
    """N image steps at once through the executor."""
    hooks = StepHooks(_nothing, _nothing)
    jobs = [
        StepJob(
            "bench", StepName.IMAGE, ProductPlan(i, "P", "mug", "t", "ip", "vp"), "neon", i, out
        )
        for i in range(n)
    ]
    await asyncio.gather(*(executor.run_step(job, hooks) for job in jobs))


async def main(n_renders: int, seconds: float, n_steps: int) -> None:
    """Print the benchmark tables (markdown)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = product_image.render_product_image(
            str(folder / "in.png"), name="Bench", product_type="mug", tagline="t", style="neon",
            seed=1,
        )  # fmt: skip
        ray = RayExecutor(ZeroLatencyGenerator(), LIMITS, RaySettings(num_cpus=LIMITS.cpu))
        local = LocalExecutor(ZeroLatencyGenerator(), LIMITS)
        try:
            start_s = await timed(ray.start)
            await asyncio.sleep(1.0)  # let the idle workers Ray prestarts come up
            procs, pss = tree_pss_mib(os.getpid())
            print(f"Ray ({ray.describe()}): start {start_s:.2f} s, {procs} processes, "
                  f"{pss:.0f} MiB PSS for this process and its children")  # fmt: skip
            await _cpu_table(local, ray, image, folder, n_renders, seconds)
            await _step_table(local, ray, n_steps, str(folder))
        finally:
            await local.aclose()
            await ray.aclose()


async def _cpu_table(
    local: LocalExecutor, ray: RayExecutor, image: str, folder: Path, n: int, seconds: float
) -> None:
    await local.run_cpu(len, "warm")  # start the pools before timing
    await ray.run_cpu(len, "warm")
    runs = {
        "sequential (this process)": await timed(lambda: renders(None, image, folder, n, seconds)),
        f"process pool ({LIMITS.cpu} workers)": await timed(
            lambda: renders(local, image, folder, n, seconds)
        ),
        f"Ray tasks ({LIMITS.cpu} CPUs)": await timed(
            lambda: renders(ray, image, folder, n, seconds)
        ),
    }
    base = runs["sequential (this process)"]
    print(f"\n{n} Ken Burns renders of {seconds:g} s (720x720, 24 fps)\n")
    print("| how | wall time | speed-up vs sequential |\n|---|---:|---:|")
    for how, wall in runs.items():
        print(f"| {how} | {wall:.2f} s | {base / wall:.2f}x |")


async def _step_table(local: LocalExecutor, ray: RayExecutor, n: int, out: str) -> None:
    await steps(ray, LIMITS.image, out)  # the actors start on first use: not timed
    print(f"\n{n} steps of a zero-latency generator, image limit {LIMITS.image}\n")
    print("| executor | steps/s | wall time per step |\n|---|---:|---:|")
    for executor in (local, ray):
        wall = await timed(lambda e=executor: steps(e, n, out))  # type: ignore[misc]
        print(f"| {executor.name} | {n / wall:.0f} | {wall / n * 1000:.2f} ms |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    event_loop.run(main(args.renders, args.seconds, args.steps))
