"""`python bot.py slack` as a subprocess: start it, find its URL, drain its stderr, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Bot:
    """One `bot.py slack` process, its stderr drained into `log`."""

    proc: asyncio.subprocess.Process
    url: str = ""
    log: list[str] = field(default_factory=list)
    drain: asyncio.Task[None] | None = None

    @property
    def stderr(self) -> str:
        return "".join(self.log)

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send `sig` and wait for the exit status (bounded)."""
        self.proc.send_signal(sig)
        return await self.exited()

    async def crash(self) -> int:
        """A host dying: SIGKILL to the bot and every process it started (its CPU workers hold
        its stderr), no clean-up of any kind; its exit status."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        return await self.exited()

    async def exited(self) -> int:
        code = await asyncio.wait_for(self.proc.wait(), 60)
        if self.drain is not None:
            await asyncio.wait_for(self.drain, 30)
        return code


@contextlib.asynccontextmanager
async def serving(env: dict[str, str]) -> AsyncIterator[Bot]:
    """Start `bot.py slack --port 0`, wait for its URL; kill it if the test left it running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "bot.py", "slack", "--port", "0", cwd=ROOT, env=env,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,  # its own group: see crash()
    )  # fmt: skip
    bot = Bot(proc)
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(60):
            while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/slack/events", bot.stderr)):
                line = (await proc.stderr.readline()).decode()
                assert line, f"bot.py slack exited early: {bot.stderr}"
                bot.log.append(line)
        bot.url = found.group(0)
        bot.drain = asyncio.create_task(_drain(proc.stderr, bot.log))
        yield bot
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever of its group is left
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 30)
        if bot.drain is not None:
            bot.drain.cancel()
            await asyncio.gather(bot.drain, return_exceptions=True)


async def _drain(stream: asyncio.StreamReader, log: list[str]) -> None:
    while line := await stream.readline():
        log.append(line.decode())


async def until(check: Callable[[], bool], limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(0.05)
