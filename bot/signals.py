"""SIGINT and SIGTERM for the commands that run campaigns: the first stops, a second exits.

`run`, `retry`, `resume`, `slack` and `discord` each install one `StopSignals`
for their whole life (through the shutdown that follows). The first SIGINT or
SIGTERM sets it and records which signal came: `run` and `retry` take Ctrl-C
as "cancel my campaign" and SIGTERM as "hand it over", the servers and
`resume` hand over on either. A second signal while the process is stopping
exits at once with status 130, without a traceback and without waiting for
campaigns, chat posts or worker processes (what SQLite committed stays; a
campaign stopped like this is an orphan that the next process resumes).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

EXIT_INTERRUPTED = 130
SIGNALS = (signal.SIGINT, signal.SIGTERM)

T = TypeVar("T")


def exit_now(code: int = EXIT_INTERRUPTED) -> None:
    """Leave at once: say so, flush what was printed, stop worker processes, _exit(code)."""
    with contextlib.suppress(Exception):
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[?25h")  # a live progress display hid the cursor
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.write("stopped at once (second signal)\n")
        sys.stderr.flush()
    with contextlib.suppress(Exception):
        for child in multiprocessing.active_children():  # the local pool's workers
            child.kill()
    os._exit(code)


class StopSignals:
    """`with StopSignals() as stop:` inside a running event loop.

    `stop.signal` is the first signal that came (None until then); `await
    stop.wait()` returns it. Any signal after the first calls `on_second`
    (default: `exit_now`, status 130).
    """

    def __init__(self, on_second: Callable[[], None] = exit_now) -> None:
        self.signal: signal.Signals | None = None
        self._on_second = on_second
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._before: dict[signal.Signals, Any] = {}

    def __enter__(self) -> StopSignals:
        self._loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self._before[sig] = signal.getsignal(sig)
            self._loop.add_signal_handler(sig, self._received, sig)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and not self._loop.is_closed():
            for sig in SIGNALS:
                self._loop.remove_signal_handler(sig)
                if self._before.get(sig) is not None:  # e.g. asyncio.run's own SIGINT handler
                    signal.signal(sig, self._before[sig])
        self._loop = None

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signal is not None

    def _received(self, sig: signal.Signals) -> None:
        if self.signal is not None:
            self._on_second()
            return
        self.signal = sig
        self._event.set()

    async def wait(self) -> signal.Signals:
        """Return once the first signal has come; which one it was."""
        await self._event.wait()
        assert self.signal is not None
        return self.signal

    async def until(self, work: Awaitable[T]) -> signal.Signals | None:
        """Await `work` unless a signal comes first: None if it finished, else the signal.

        When the signal wins, `work` is cancelled (shield it to keep it going).
        """
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self.wait())
        try:
            await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled() or not task.done():
            return self.signal
        task.result()  # re-raise what the work raised
        return None

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless a signal comes first; True if it did."""
        return await self.until(asyncio.sleep(seconds)) is not None
