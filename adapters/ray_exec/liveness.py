"""Bounding the waits on a remote step: a silent actor is asked which instance it is.

While a step's actor says nothing, it is asked every `Watch.liveness_interval_s`
which instance it is; no answer within `Watch.liveness_timeout_s`, or another
instance (it was restarted), counts as a dead actor even if Ray never reports
one (StepActorLost).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import ray
from ray.exceptions import RayError

from adapters.ray_exec.startup import first_line

T = TypeVar("T")

Connect = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@dataclass(frozen=True)
class Watch:
    """How the Ray executor watches its cluster and its step actors (tests shorten it)."""

    head_interval_s: float = 2.0  # between probes of the cluster head's port
    connect: Connect = asyncio.open_connection  # the probe's connection to the head
    # A step's actor silent this long is asked whether it still runs the step; no
    # answer within the timeout (an actor starting on a busy node) means it is dead.
    liveness_interval_s: float = 5.0
    liveness_timeout_s: float = 30.0


class StepActorLost(Exception):
    """A step's actor stopped answering or was restarted, and Ray did not say so (yet)."""


class Liveness:
    """Bounds the waits on one remote step: a silent actor is asked which instance it is."""

    def __init__(self, actor: Any, watch: Watch) -> None:
        self.actor = actor
        self.watch = watch
        self.instance: str | None = None  # set by the step's "started" event
        self.unstarted_checks = 0

    async def wait(self, work: Awaitable[T]) -> T:
        """Await `work`; raises StepActorLost once the actor is known not to run the step."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.watch.liveness_interval_s)
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
            async with asyncio.timeout(self.watch.liveness_timeout_s):
                current = await ref
        except (RayError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
            reason = f"no answer within {self.watch.liveness_timeout_s:g} s"
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
