"""bot/signals.py in this process: the first signal stops, a second goes to `on_second`."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from bot.signals import StopSignals


async def test_the_first_signal_stops_a_second_exits() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    second = asyncio.Event()
    with StopSignals(on_second=second.set) as stop:
        assert not stop.requested and stop.signal is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(stop.wait(), 10) is signal.SIGTERM
        assert not second.is_set()
        os.kill(os.getpid(), signal.SIGINT)  # while stopping: exit at once
        await asyncio.wait_for(second.wait(), 10)
        assert stop.signal is signal.SIGTERM  # the first one decides what stopping means
    after = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    assert after == before  # the handlers from before are back


async def test_until_tells_finished_work_from_a_signal() -> None:
    with StopSignals(on_second=lambda: None) as stop:
        assert await stop.until(asyncio.sleep(0)) is None
        with pytest.raises(ValueError, match="boom"):
            await stop.until(_fail())
        gate = asyncio.Event()
        waiting = asyncio.ensure_future(gate.wait())
        interrupted = asyncio.ensure_future(stop.until(waiting))
        await asyncio.sleep(0)
        os.kill(os.getpid(), signal.SIGINT)
        assert await asyncio.wait_for(interrupted, 10) is signal.SIGINT
        assert waiting.cancelled()  # the work it stopped waiting for was cancelled
        assert await stop.sleep(60) is True  # already stopping: no sleep at all


async def _fail() -> None:
    raise ValueError("boom")
