"""Requests a front end has taken, so one delivered twice starts nothing twice.

A chat platform may deliver one request twice: Slack retries to whichever
replica answers, a replay re-sends a signed request, a Discord interaction may
reach two processes during a deploy. `ReplayGuard.first_time(keys, keep_s)`
remembers the request's keys and says whether any was taken before. The store
implements it (a table every replica shares); `RecentKeys` is the same in one
process's memory, for a front end without a store.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

MEMORY_KEYS = 20_000  # beyond this the oldest are forgotten (bounded memory)


class ReplayGuard(Protocol):
    """Keys of requests already taken, shared by whoever shares the guard."""

    async def first_time(self, keys: Sequence[str], keep_s: float) -> bool:
        """Remember `keys` for `keep_s`; False if any was taken before (a replay)."""
        ...


class RecentKeys:
    """A ReplayGuard in this process's memory (bounded: the oldest keys go first)."""

    def __init__(
        self, max_keys: int = MEMORY_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_keys, self._clock = max_keys, clock
        self._until: OrderedDict[str, float] = OrderedDict()  # key -> forget after

    async def first_time(self, keys: Sequence[str], keep_s: float) -> bool:
        """Remember `keys` for `keep_s`; False if any was taken before (a replay)."""
        now = self._clock()
        while self._until and next(iter(self._until.values())) <= now:
            self._until.popitem(last=False)
        fresh = [k for k in keys if k]
        repeated = any(k in self._until for k in fresh)
        for key in fresh:
            self._until.pop(key, None)
            self._until[key] = now + keep_s
        while len(self._until) > self.max_keys:
            self._until.popitem(last=False)
        return not repeated

    def __len__(self) -> int:
        return len(self._until)
