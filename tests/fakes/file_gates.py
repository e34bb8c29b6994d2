"""A picklable GatedGenerator: its gates, counters and records are files.

The executor contract runs against executors whose generator lives in other
processes (Ray actors), where in-process asyncio.Events cannot reach. Every
piece of state therefore sits in one folder: the test opens gates by
creating files, and reads what the generator did from files it appends to
(single small appends, so concurrent writers do not interleave).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from core.errors import PermanentStepError, TransientStepError
from core.model import StepName
from core.ports import StepContext, StepJob, StepOutput
from tests.fakes import NoClients

Key = tuple[int, str]  # (product index, step name)
POLL_S = 0.01
WAIT_LIMIT_S = 60.0


class FileGatedGenerator(NoClients):
    """Steps wait for a gate file; records calls, concurrency, cancels and pids in files."""

    name = "gated"

    def __init__(
        self,
        folder: Path,
        *,
        open_all: bool = False,
        fail: set[Key] | None = None,
        fail_once: bool = False,
        busy: set[Key] | None = None,
    ) -> None:
        self.folder = str(folder)
        self.fail = set(fail or ())
        self.fail_once = fail_once
        self.busy = set(busy or ())  # these raise TransientStepError (a provider hiccup)
        folder.mkdir(parents=True, exist_ok=True)
        if open_all:
            self.open_every_gate()

    # ---------------------------------------------------------------- test side

    def open(self, *keys: Key) -> None:
        """Let these steps finish."""
        for key in keys:
            self._path("gate", key).touch()

    def open_every_gate(self) -> None:
        """Let every step, present and future, finish."""
        (Path(self.folder) / "open-all").touch()

    async def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Poll a condition on the files (generous limit: a busy machine is slow)."""
        deadline = time.monotonic() + WAIT_LIMIT_S
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up waiting for {what}")
            await asyncio.sleep(POLL_S)

    async def wait_started(self, count: int) -> None:
        """Wait until `count` steps in all have started."""
        await self.wait_until(lambda: len(self._records("started")) >= count, "started steps")

    @property
    def running(self) -> Counter[str]:
        """Steps of each kind running now."""
        names = (p.name.split("-")[1] for p in Path(self.folder).glob("running-*"))
        return Counter(names)

    @property
    def peak(self) -> Counter[str]:
        """Most steps of each kind seen running at once."""
        peak: Counter[str] = Counter()
        for kind, count in (line.split() for line in self._records("peaks")):
            peak[kind] = max(peak[kind], int(count))
        return peak

    @property
    def canceled(self) -> list[Key]:
        """Steps that saw CancelledError, in order (with keep_on_stop: in `kept`)."""
        return [_key(line) for line in self._records("canceled")]

    @property
    def kept(self) -> list[Key]:
        """Steps stopped for a hand-over: keep_on_stop() was True when they were cancelled."""
        return [_key(line) for line in self._records("kept")]

    @property
    def spent(self) -> list[Key]:
        """Steps whose before_spend passed (a paid create would have gone out)."""
        return [_key(line) for line in self._records("spent")]

    @property
    def calls(self) -> list[tuple[Key, str | None, int]]:
        """Every run: (key, the provider id it was given, the pid it ran in)."""
        found = []
        for line in self._records("calls"):
            index, step, provider_id, pid = line.split()
            found.append(
                ((int(index), step), None if provider_id == "-" else provider_id, int(pid))
            )
        return found

    # ---------------------------------------------------------------- generator side

    def price_usd(self, step: StepName, model: str | None) -> float:
        return 0.01

    async def check_models(self, models: object) -> None:

        return None

    def typical_s(self, step: object, model: object) -> float | None:

        return None

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        key = (job.plan.index, job.step.value)
        self._append("calls", f"{key[0]} {key[1]} {job.provider_id or '-'} {os.getpid()}")
        running = Path(self.folder) / f"running-{job.kind.value}-{key[0]}-{key[1]}"
        running.touch()
        now = len(list(Path(self.folder).glob(f"running-{job.kind.value}-*")))
        self._append("peaks", f"{job.kind.value} {now}")
        try:
            if job.provider_id is None:
                await ctx.hooks.before_spend(f'{{"prompt": "{key[0]} {key[1]}"}}')
                self._append("spent", f"{key[0]} {key[1]}")
            await ctx.hooks.remember_provider_id(f"pred-{key[0]}-{key[1]}")
            await ctx.hooks.report("working")
            self._append("started", f"{key[0]} {key[1]}")
            await self._wait_for_gate(key)
            self._maybe_fail(key)
        except asyncio.CancelledError:
            kept = ctx.hooks.keep_on_stop()
            self._append("kept" if kept else "canceled", f"{key[0]} {key[1]}")
            raise
        finally:
            running.unlink(missing_ok=True)
        path = Path(job.out_dir) / f"{key[0]}-{key[1]}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"input={job.input_path}")
        return StepOutput(
            path=str(path), provider_id=f"pred-{key[0]}-{key[1]}", model="fake", cost_usd=0.01
        )

    async def _wait_for_gate(self, key: Key) -> None:
        gate, every = self._path("gate", key), Path(self.folder) / "open-all"
        while not (gate.exists() or every.exists()):  # noqa: ASYNC110 (files cross processes)
            await asyncio.sleep(POLL_S)

    def _maybe_fail(self, key: Key) -> None:
        if key in self.busy:
            raise TransientStepError(f"provider busy for {key[1]} {key[0]}", delay_s=2.5)
        if key not in self.fail:
            return
        failed_before = self._path("failed", key)
        if self.fail_once and failed_before.exists():
            return
        failed_before.touch()
        raise PermanentStepError(f"model said no to {key[1]} {key[0]}")

    def _path(self, what: str, key: Key) -> Path:
        return Path(self.folder) / f"{what}-{key[0]}-{key[1]}"

    def _append(self, log: str, line: str) -> None:
        with open(Path(self.folder) / log, "a") as out:
            out.write(line + "\n")

    def _records(self, log: str) -> list[str]:
        path = Path(self.folder) / log
        return path.read_text().splitlines() if path.exists() else []


def _key(line: str) -> Key:
    index, step = line.split()
    return int(index), step
