"""Choosing and connecting Ray, with a quick, clear fallback to the local executor.

Nothing here imports `ray` at module level: the bot must start without it.
The checks are cheap and ordered so that a missing or unreachable Ray is
reported within seconds (an explicit unreachable address would otherwise
make `ray.init` hang for ~820 s):

1. `importlib.util.find_spec("ray")` (~0.1 s);
2. a TCP connect to the host:port of `RAY_ADDRESS` (1 ms, or the timeout);
3. `ray.init` in a daemon thread with a deadline (a cluster that refuses the
   driver, e.g. token authentication, retries for ~40 s).

Imports go one way: connect -> executor -> startup -> settings. What a
cluster job ships is described in adapters/ray_exec/settings.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from adapters.local_executor import LocalExecutor
from adapters.ray_exec.settings import PROBE_TIMEOUT_S, RaySettings, gcs_endpoint
from adapters.ray_exec.startup import RayUnavailable
from core.ports import Executor, Generator
from core.scheduler import Limits

if TYPE_CHECKING:
    from adapters.ray_exec.executor import RayExecutor

# RaySettings too: with open_ray_executor, all that the composition root needs
__all__ = ["open_ray_executor", "unavailable_reason"]


def unavailable_reason(settings: RaySettings) -> str | None:
    """Why Ray cannot be used right now (None if it looks usable); blocks up to ~2 s."""
    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a broken install is as good as none
        found = False
    if not found:
        return "Ray is not installed"
    endpoint = gcs_endpoint(settings.address) if settings.address else None
    if endpoint is None:
        return None
    try:
        socket.create_connection(endpoint, timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return f"nothing answers at RAY_ADDRESS={settings.address} ({exc.strerror or exc})"
    return None


async def open_ray_executor(
    generator: Generator,
    limits: Limits,
    settings: RaySettings,
    warn: Callable[[str], None],
) -> Executor:
    """A started RayExecutor, or (with one line to `warn`) a LocalExecutor."""
    reason = await asyncio.to_thread(unavailable_reason, settings)
    if reason is None:
        try:
            executor = _ray_executor(generator, limits, settings)
            await executor.start()
        except ImportError as exc:
            reason = f"Ray cannot be imported ({exc})"
        except RayUnavailable as exc:
            reason = str(exc)
        else:
            return executor
    warn(f"Ray unavailable: {reason}; running on the local executor instead")
    return LocalExecutor(generator, limits)


def _ray_executor(generator: Generator, limits: Limits, settings: RaySettings) -> RayExecutor:
    from adapters.ray_exec.executor import (
        RayExecutor,  # imports ray: only once it is known to exist
    )

    return RayExecutor(generator, limits, settings)
