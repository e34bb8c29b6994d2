"""The one retry helper: how long to wait before the next attempt, and how many to make.

What every retry in the adapters shares lives here: exponential backoff with
jitter, capped; a server's own hint (Retry-After) wins, but never beyond the
cap; a bounded (or unbounded) number of attempts. What counts as worth another
attempt, and what happens between attempts (pausing a rate bucket, logging,
checking a cluster), stays with the caller. Standard library only: `core/`
imports nothing outward.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=Exception)
Uniform = Callable[[float, float], float]
Sleep = Callable[[float], Awaitable[None]]
MAX_DOUBLINGS = 16  # past this the delay is the cap anyway; keeps 2**n small


@dataclass(frozen=True)
class Backoff:
    """When to try again: `base_s`, doubling per attempt up to `cap_s`, with jitter.

    `jitter`: each delay is drawn from [(1 - jitter) * d, d], so callers that
    failed together do not come back together; 0 makes delays exact.
    `hint_jitter`: a server's hint gets up to `hint_jitter * base_s` added, for
    the same reason. `attempts`: None tries until it works (or is cancelled).
    """

    base_s: float = 1.0
    cap_s: float = 60.0
    attempts: int | None = None
    jitter: float = 0.5
    hint_jitter: float = 0.1

    def delay(
        self, attempt: int, retry_after: float | None = None, uniform: Uniform = random.uniform
    ) -> float:
        """Seconds to wait after failed attempt number `attempt` (from 1)."""
        if retry_after is not None:
            spread = uniform(0, self.hint_jitter * self.base_s) if self.hint_jitter else 0.0
            return max(0.0, min(self.cap_s, retry_after + spread))
        step = min(self.cap_s, self.base_s * 2 ** (min(attempt, MAX_DOUBLINGS) - 1))
        return uniform(step * (1 - self.jitter), step) if self.jitter else step

    def allows(self, attempt: int) -> bool:
        """Whether another attempt may follow failed attempt number `attempt`."""
        return self.attempts is None or attempt < self.attempts


async def retrying(
    call: Callable[[], Awaitable[T]],
    policy: Backoff,
    retry_on: type[E] | tuple[type[E], ...],
    *,
    between: Callable[[E, int], Awaitable[None]] | None = None,
    sleep: Sleep | None = None,
) -> T:
    """`await call()` until it returns, at most `policy.attempts` times.

    After a failure of a `retry_on` type that is not the last allowed one,
    `between(error, attempt)` runs (by default: sleep `policy.delay(attempt)`);
    the last failure is raised as it is. Other errors are never retried.
    """
    attempt = 1
    while True:
        try:
            return await call()
        except retry_on as exc:
            if not policy.allows(attempt):
                raise
            if between is not None:
                await between(exc, attempt)
            else:
                await (sleep or asyncio.sleep)(policy.delay(attempt))
        attempt += 1
