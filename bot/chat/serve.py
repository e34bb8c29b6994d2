"""Serving a chat front end until SIGINT or SIGTERM, then handing its campaigns over.

Every chat server has the same life: take work (and start resuming orphaned
campaigns once ready), wait for the first signal (`bot.signals.StopSignals`),
stop taking work, hand the running campaigns over to the next process
(`service.stop_campaigns(hand_over=True)`: nothing is cancelled at the provider),
then close the followers. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.signals import StopSignals

log = logging.getLogger(__name__)

Serve = Callable[[asyncio.Event], Awaitable[None]]


class HandsOver(Protocol):
    """What serving needs of the service."""

    async def stop_campaigns(self, *, hand_over: bool) -> None:
        """Stop the campaigns running here (released for the next process when handing over)."""
        ...


async def serve_until_signal(
    serve: Serve,
    service: HandsOver,
    close: Callable[[], Awaitable[None]],
    *,
    stop: StopSignals | None = None,
) -> None:
    """Run `serve(stopping)` until a signal sets `stopping`, then hand over and `close()`.

    `serve` takes work until `stopping` is set and returns once nothing new can
    start (or raises when serving fails); the hand-over and `close` run either
    way. `stop` is installed here unless the caller has one.
    """
    with contextlib.ExitStack() as stack:
        signals = stop if stop is not None else stack.enter_context(StopSignals())
        stopping = asyncio.Event()
        relay = asyncio.create_task(_set_on_signal(signals, stopping))
        try:
            await serve(stopping)
        finally:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
            if signals.requested:
                log.warning("stopping: handing running campaigns over to the next process")
            await service.stop_campaigns(hand_over=True)
            await close()


async def _set_on_signal(signals: StopSignals, stopping: asyncio.Event) -> None:
    await signals.wait()
    stopping.set()
