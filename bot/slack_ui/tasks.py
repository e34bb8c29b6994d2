"""Tasks a Slack front end owns: handler work after the ack, and a thread's last edits.

Bolt (process_before_response=False) runs listeners in an unreferenced future,
so every handler acks first and hands its I/O to a task held here; one failed
task is logged and never takes the front end down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("campaign-bot.slack")


class OwnedTasks:
    """Running tasks, kept until they finish; `stop` gives them a grace, then cancels."""

    def __init__(self) -> None:
        self.running: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in a task held here until it finishes."""
        task = asyncio.create_task(_guard(work))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def stop(self, grace_s: float = 0.0) -> None:
        """Give the running tasks `grace_s`, then cancel what is left and wait for it."""
        if self.running and grace_s > 0:
            await asyncio.wait(set(self.running), timeout=grace_s)
        for task in list(self.running):
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)


async def _guard(work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:  # one failed reply must not take the front end down
        log.exception("Slack handler failed")
