"""Admission control: per-kind limits, round-robin across campaigns.

Every step waits for a slot of its kind (text, image, video, cpu) before it
runs. Waiters are served campaign by campaign in turn, so a 50-product
campaign cannot starve a 3-product one that arrives after it.

This is the one gate per kind: executors run the steps they are given and add
no limit of their own (Ray's actors are sized never to gate below these).
CPU work that a step or the service hands to `Executor.run_cpu` does not pass
through here; the executor's CPU workers (`Limits.cpu` processes locally, one
Ray CPU per task) are its one gate.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass

from core.model import StepKind


@dataclass(frozen=True)
class Limits:
    """Maximum steps of each kind running at once (process-wide).

    Provider steps (text, image, video) are mostly waiting on the provider, and
    its limits are request rates, not concurrent predictions: the defaults let
    three campaigns of the largest size (20 products) run every step at once,
    so the provider's rate buckets are the throttle, not these caps. They are
    there for fairness and memory. `cpu` also sizes the local executor's
    process pool: CPU work uses every core.
    """

    text: int = 16
    image: int = 64
    video: int = 64
    cpu: int = max(1, os.cpu_count() or 1)

    def of(self, kind: StepKind) -> int:
        """The limit for one kind."""
        value: int = getattr(self, kind.value)
        return value


class FairLimiter:
    """A semaphore whose waiters are served round-robin by key."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.in_use = 0
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        """Hold one unit of capacity for the duration of the block."""
        await self.acquire(key)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, key: str) -> None:
        """Wait for a unit of capacity, taking turns with other keys."""
        if self.in_use < self.capacity and not self._queues:
            self.in_use += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, deque()).append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just as we were cancelled: hand it on
            else:
                self._forget(key, fut)
            raise

    def release(self) -> None:
        """Return a unit and wake the next waiter in round-robin order."""
        self.in_use -= 1
        while self.in_use < self.capacity and self._queues:
            key = next(iter(self._queues))
            queue = self._queues.pop(key)
            fut = queue.popleft()
            if queue:
                self._queues[key] = queue  # back of the line: round robin
            if not fut.done():
                self.in_use += 1
                fut.set_result(None)

    def _forget(self, key: str, fut: asyncio.Future[None]) -> None:
        queue = self._queues.get(key)
        if queue is None:
            return
        with suppress(ValueError):
            queue.remove(fut)
        if not queue:
            del self._queues[key]


class Scheduler:
    """One fair limiter per step kind, shared by every campaign in the process."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._limiters = {kind: FairLimiter(limits.of(kind)) for kind in StepKind}

    def slot(self, kind: StepKind, campaign_id: str) -> AbstractAsyncContextManager[None]:
        """Async context manager holding one slot of `kind` for a campaign."""
        return self._limiters[kind].slot(campaign_id)

    def in_use(self, kind: StepKind) -> int:
        """Slots of this kind held right now."""
        return self._limiters[kind].in_use
