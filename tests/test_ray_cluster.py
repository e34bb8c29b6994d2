"""Two simulated nodes (ray.cluster_utils.Cluster): CPU steps land on both."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.ray_exec.executor import RayExecutor
from adapters.ray_exec.settings import RaySettings
from core.model import ProductPlan, StepName
from core.ports import StepContext, StepHooks, StepJob, StepOutput
from core.scheduler import Limits

pytestmark = pytest.mark.slow
MIB = 1024 * 1024


def meet(folder: str, name: str, parties: int, limit_s: float = 60.0) -> str:
    """Runs in a Ray task holding a node's only CPU: waits until `parties` tasks run at once."""
    import ray

    Path(folder, name).touch()
    deadline = time.monotonic() + limit_s
    while len(list(Path(folder).iterdir())) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError("the other task never ran at the same time")
        time.sleep(0.01)
    return str(ray.get_runtime_context().get_node_id())


@dataclass
class MeetingGenerator:
    """Each step's CPU work waits for the other step's: only possible on two nodes."""

    folder: str
    name: str = "meeting"

    def price_usd(self, step: StepName, model: str | None) -> float:
        return 0.0

    async def check_models(self, models: object) -> None:

        return None

    def typical_s(self, step: object, model: object) -> float | None:

        return None

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        node: str = await ctx.run_cpu(meet, self.folder, str(job.plan.index), 2)
        path = Path(job.out_dir) / f"{job.plan.index}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(node)
        return StepOutput(path=str(path))


@pytest.fixture
def two_nodes() -> Iterator[str]:
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the session's local Ray; `ray_local` starts it again when needed
    node = {"num_cpus": 1, "object_store_memory": 80 * MIB}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    try:
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()


async def _nothing(_value: str) -> None:
    return None


async def test_cpu_steps_land_on_both_nodes(two_nodes: str, tmp_path: Path) -> None:
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    executor = RayExecutor(
        MeetingGenerator(str(meeting)), Limits(image=2, cpu=2), RaySettings(address=two_nodes)
    )
    try:
        await executor.start()
        assert executor.describe() == "Ray cluster: 2 nodes, 2 CPUs"
        jobs = [
            StepJob(
                "c1",
                StepName.IMAGE,
                ProductPlan(i, "P", "mug", "t", "ip", "vp"),
                "neon",
                i,
                str(tmp_path / "out"),
            )
            for i in range(2)
        ]
        hooks = StepHooks(_nothing, _nothing)
        outputs = await asyncio.gather(*(executor.run_step(job, hooks) for job in jobs))
    finally:
        await executor.aclose()
    workers = {out.worker for out in outputs}
    assert len(workers) == 2  # one CPU per node, two tasks at once: both nodes worked
    assert workers == {Path(out.path).read_text() for out in outputs}
