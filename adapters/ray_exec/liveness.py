"""Bounding the waits on a remote step: a silent actor is asked which instance it is.

While a step's actor says nothing, it is asked every LIVENESS_INTERVAL_S
which instance it is; no answer within LIVENESS_TIMEOUT_S, or another
instance (it was restarted), counts as a dead actor even if Ray never reports
one (StepActorLost).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

import ray
from ray.exceptions import RayError

T = TypeVar("T")

LIVENESS_INTERVAL_S = 5.0  # a step's actor silent this long is asked whether it still runs it
LIVENESS_TIMEOUT_S = 30.0  # no answer within this (an actor starting on a busy node) = dead


class StepActorLost(Exception):
    """A step's actor stopped answering or was restarted, and Ray did not say so (yet)."""


class Liveness:
    """Bounds the waits on one remote step: a silent actor is asked which instance it is."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.instance: str | None = None  # set by the step's "started" event
        self.unstarted_checks = 0

    async def wait(self, work: Awaitable[T]) -> T:
        """Await `work`; raises StepActorLost once the actor is known not to run the step."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=LIVENESS_INTERVAL_S)
                if done:
                    return task.result()
                await self._check()
        finally:
            if not task.done():
                task.cancel()  # the local wait only; the caller cancels the remote call
            elif not task.cancelled():
                task.exception()  # retrieved: no "exception was never retrieved" later

    async def _check(self) -> None:
        ref = self.actor.instance.remote()
        try:
            async with asyncio.timeout(LIVENESS_TIMEOUT_S):
                current = await ref
        except (RayError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
            reason = f"no answer within {LIVENESS_TIMEOUT_S:g} s"
            if isinstance(exc, RayError):
                reason = first_line(exc)
            raise StepActorLost(f"the step actor is gone ({reason})") from exc
        if self.instance is None:
            # The actor answers, so the call was delivered and should start at once.
            self.unstarted_checks += 1
            if self.unstarted_checks >= 2:
                raise StepActorLost("the step never started on its (answering) actor")
        elif current != self.instance:
            raise StepActorLost("the step actor was restarted; the step died with it")


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (at most 200 characters), for logs."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
