"""Hand-written fakes that record what they were given (no MagicMock)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import PermanentStepError
from core.model import Origin, StepName
from core.pictures import Pictures, ReelFns
from core.ports import StepContext, StepJob, StepOutput
from core.store_ports import CampaignStore

Key = tuple[int, str]  # (product index, step name)


class NoClients:
    """The Generator port's warm() and aclose() for fakes that hold no clients."""

    async def warm(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class GatedGenerator(NoClients):
    """A generator whose steps wait for a gate the test opens.

    Counts how many steps of each kind run at once, records every call, and
    fails the steps named in `fail` (once each if `fail_once`).
    """

    name = "gated"

    def __init__(
        self,
        *,
        open_all: bool = False,
        fail: set[Key] | None = None,
        fail_once: bool = False,
        spend_late: bool = False,  # pay only after the gate opens (as after an upload)
    ) -> None:
        self.open_all = open_all
        self.spend_late = spend_late
        self.fail = set(fail or ())
        self.fail_once = fail_once
        self.calls: list[Key] = []
        self.provider_ids: dict[Key, str | None] = {}  # what each step was started with
        self.jobs: dict[Key, StepJob] = {}  # the last job of each step
        self.canceled: list[Key] = []
        self.kept: list[Key] = []  # stopped for a hand-over: the prediction left running
        self.spent: list[Key] = []  # passed before_spend: a paid create would go out
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.gates: defaultdict[Key, asyncio.Event] = defaultdict(asyncio.Event)
        self.started: defaultdict[Key, asyncio.Event] = defaultdict(asyncio.Event)
        self.finished: defaultdict[Key, asyncio.Event] = defaultdict(asyncio.Event)
        self.started_count = 0
        self.progress = asyncio.Condition()

    def open(self, *keys: Key) -> None:
        """Let these steps finish."""
        for key in keys:
            self.gates[key].set()

    async def wait_started(self, count: int) -> None:
        """Wait until `count` steps in all have started."""
        async with self.progress:
            await self.progress.wait_for(lambda: self.started_count >= count)

    def price_usd(self, step: StepName, model: str | None) -> float:
        return 0.01

    async def check_models(self, models: object) -> None:

        return None

    def typical_s(self, step: object, model: object) -> float | None:

        return None

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        key = (job.plan.index, job.step.value)
        kind = job.kind.value
        self.calls.append(key)
        self.provider_ids[key] = job.provider_id
        self.jobs[key] = job
        self.running[kind] += 1
        self.peak[kind] = max(self.peak[kind], self.running[kind])
        self.started[key].set()
        async with self.progress:
            self.started_count += 1
            self.progress.notify_all()
        try:
            if self.spend_late:
                await self.gates[key].wait()
            if job.provider_id is None:
                await ctx.hooks.before_spend("{}")
                self.spent.append(key)
            await ctx.hooks.remember_provider_id(f"pred-{key[0]}-{key[1]}")
            await ctx.hooks.report("working")
            if not self.open_all:
                await self.gates[key].wait()
            if key in self.fail:
                if self.fail_once:
                    self.fail.discard(key)
                raise PermanentStepError(f"model said no to {key[1]} {key[0]}")
        except asyncio.CancelledError:
            (self.kept if ctx.hooks.keep_on_stop() else self.canceled).append(key)
            raise
        finally:
            self.running[kind] -= 1
            self.finished[key].set()
        path = Path(job.out_dir) / f"{key[0]}-{key[1]}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"input={job.input_path}")
        return StepOutput(
            path=str(path), provider_id=f"pred-{key[0]}-{key[1]}", model="fake", cost_usd=0.01
        )


class FakeClock:
    """Time that moves only when slept on; records every sleep (no real waiting)."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class HeldSleep:
    """A sleep that lasts until the test wakes it; waking moves the fake clock on."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.naps: list[tuple[float, asyncio.Future[None]]] = []

    async def __call__(self, seconds: float) -> None:
        nap = asyncio.get_running_loop().create_future()
        self.naps.append((seconds, nap))
        await nap

    def wake(self) -> None:
        seconds, nap = self.naps.pop(0)
        self.clock.now += seconds
        nap.set_result(None)


def fake_sheet(
    items: Sequence[tuple[Any, ...]],
    out_path: str,
    *,
    title: str,
    subtitle: str = "",
    base: str | None = None,
) -> str:
    """A picklable contact-sheet stand-in: lists the items in a text file.

    One line per item: its fields tab-separated (name, image path or None,
    status, has a video), under the title and subtitle. With `base`, "base"
    ends the title line (the real renderer redraws only the title bar then).
    """
    head = title + ("\tbase" if base else "")
    lines = [head, subtitle, *("\t".join(str(f) for f in item) for item in items)]
    return _write(out_path, "\n".join(lines))


def fake_timeline(
    panels: Sequence[tuple[str, Sequence[tuple[Any, ...]]]], out_path: str, **kw: Any
) -> str:
    """A picklable timeline stand-in: one line per bar."""
    bars = ["\t".join(str(f) for f in bar) for _, panel in panels for bar in panel]
    return _write(out_path, "\n".join([str(kw.get("title", "")), *bars]))


def fake_card(folder: str, *, title: str, subtitle: str = "", seconds: float = 1.5) -> str:
    """A picklable title-card stand-in: one line, `card`, the title, subtitle and seconds."""
    return _write(f"{folder}/card.txt", f"card\t{title}\t{subtitle}\t{seconds}")


def fake_clip(clip: str, folder: str, *, caption: str, max_s: float) -> str:
    """A picklable clip-part stand-in: one line, the caption, the clip and its cut."""
    return _write(f"{folder}/{Path(clip).name}.txt", f"{caption}\t{clip}\t{max_s}")


def fake_join(parts: Sequence[str], out_path: str) -> str:
    """A picklable join stand-in: the parts' lines, in order."""
    return _write(out_path, "\n".join(Path(p).read_text() for p in parts))


def gated_join(parts: Sequence[str], out_path: str, *, gate: str) -> str:
    """`fake_join` once the file `gate` exists (a worker process cannot see an Event)."""
    import time

    deadline = time.monotonic() + 60
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.01)
    return fake_join(parts, out_path)


def big_join(parts: Sequence[str], out_path: str, *, size: int) -> str:
    """A join whose reel weighs `size` bytes (to try upload limits)."""
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_path).write_bytes(b"\0" * size)
    return out_path


def broken_join(parts: Sequence[str], out_path: str) -> str:
    """A join that fails as ffmpeg can."""
    raise RuntimeError("ffmpeg failed (exit 1): broken on purpose")


FAKE_REEL = ReelFns(card=fake_card, clip=fake_clip, join=fake_join)
BROKEN_REEL = ReelFns(card=fake_card, clip=fake_clip, join=broken_join)


def _write(out_path: str, text: str) -> str:
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(out_path + ".partial")  # written whole, then moved: like the real renderer
    partial.write_text(text)
    partial.replace(out_path)
    return out_path


FAKE_PICTURES = Pictures(sheet=fake_sheet, timeline=fake_timeline, reel=FAKE_REEL)
"""Every picture renderer faked: for tests of what finalize hands the renderers."""


def worker_pid(value: int) -> tuple[int, int]:
    """Runs in a worker: its pid and the value doubled."""
    import os

    return os.getpid(), value * 2


def wait_for_file(path: str, limit_s: float = 30.0) -> str:
    """Runs in a worker: returns once the event loop has created `path`."""
    import time

    deadline = time.monotonic() + limit_s
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.005)
    return Path(path).read_text()


def raise_value_error(message: str) -> None:
    """Runs in a worker and fails."""
    raise ValueError(message)


async def make_orphan(store: CampaignStore, origin: Origin, products: int = 2) -> str:
    """Store a campaign as a crashed bot leaves it: running, never beaten, long created."""
    from core.model import Campaign, CampaignStatus
    from core.pipeline import new_product
    from core.planner import plan_offline
    from core.request import CampaignRequest

    request = CampaignRequest(theme="resumed cats", products=products)
    campaign = Campaign(
        id="orphan42",
        request=request,
        status=CampaignStatus.RUNNING,
        created_at=1.0,
        executor="local",
        generator="offline",
        started_at=1.0,
        products=tuple(new_product(p, request) for p in plan_offline(request)),
        requester="someone",
        origin=origin,
    )
    await store.create_campaign(campaign)
    return campaign.id


class UrlReportingGenerator(NoClients):
    """Picklable: announces its output URL through `output_ready`, then writes its file.

    What the Replicate generator does once a prediction succeeded (before the
    download), for the executor contract: the URL must reach the driver's hooks.
    """

    name = "url-reporting"

    def price_usd(self, step: StepName, model: str | None) -> float:
        return 0.0

    async def check_models(self, models: object) -> None:

        return None

    def typical_s(self, step: object, model: object) -> float | None:

        return None

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        url = f"https://example.invalid/{job.plan.index}-{job.step.value}.png"
        await ctx.hooks.output_ready(url)
        path = Path(job.out_dir) / f"{job.plan.index}-{job.step.value}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"input_url={job.input_url}")
        return StepOutput(path=str(path), url=url)
