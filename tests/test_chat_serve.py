"""serve_until_signal: take work until the first signal, stop taking work, hand the
campaigns over, then close the followers; the same when serving fails."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from bot.chat.serve import serve_until_signal
from bot.signals import StopSignals


class Service:
    """Records the hand-over."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps

    async def stop_campaigns(self, *, hand_over: bool) -> None:
        self.steps.append(f"stop_campaigns(hand_over={hand_over})")


async def test_a_signal_stops_work_then_hands_over_then_closes() -> None:
    steps: list[str] = []
    serving = asyncio.Event()

    async def serve(stopping: asyncio.Event) -> None:
        steps.append("serving")
        serving.set()
        await stopping.wait()
        steps.append("stopped taking work")

    async def close() -> None:
        steps.append("closed")

    async def signal_once_serving() -> None:
        await serving.wait()
        os.kill(os.getpid(), signal.SIGTERM)

    with StopSignals() as stop:
        sender = asyncio.create_task(signal_once_serving())
        await asyncio.wait_for(serve_until_signal(serve, Service(steps), close, stop=stop), 30)
        await sender
    assert stop.signal is signal.SIGTERM
    assert steps == ["serving", "stopped taking work", "stop_campaigns(hand_over=True)", "closed"]


async def test_a_failure_to_serve_still_hands_over_and_closes() -> None:
    steps: list[str] = []

    async def serve(stopping: asyncio.Event) -> None:
        raise OSError("address in use")

    async def close() -> None:
        steps.append("closed")

    with pytest.raises(OSError, match="address in use"):
        await serve_until_signal(serve, Service(steps), close)
    assert steps == ["stop_campaigns(hand_over=True)", "closed"]
