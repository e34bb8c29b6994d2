"""Connecting to or starting Ray off the event loop, with a deadline; the blocking calls
the executor makes around it (cluster facts, stopping actors) off the loop too.

`ray` is imported inside the functions: importing this module never needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from adapters.ray_exec.settings import RaySettings

log = logging.getLogger(__name__)


class RayUnavailable(Exception):
    """Ray cannot be used; the message says why in one line."""


async def init_ray(settings: RaySettings) -> bool:
    """Connect to or start Ray off the event loop; True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    try:
        if settings.address:
            await _join(settings)
        else:
            # A pool thread, not a short-lived one: Ray's processes are tied to the
            # thread that spawned them (parent-death signal) and die when it ends.
            await asyncio.to_thread(ray.init, **settings.init_kwargs())
    except RayUnavailable:
        raise
    except Exception as exc:
        raise RayUnavailable(f"ray.init failed: {str(exc).splitlines()[0][:200]}") from exc
    return True


async def _join(settings: RaySettings) -> None:
    """`ray.init(address=...)` with a deadline, in a daemon thread that cannot delay exit."""
    import ray

    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def target() -> None:
        try:
            ray.init(**settings.init_kwargs())
        except BaseException as exc:  # handed to the waiting coroutine
            loop.call_soon_threadsafe(_settle, done, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, None)

    threading.Thread(target=target, name="ray-join", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), settings.connect_timeout_s)
    except TimeoutError:
        raise RayUnavailable(_timeout_message(settings)) from None


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


def _timeout_message(settings: RaySettings) -> str:
    return (
        f"no connection to RAY_ADDRESS={settings.address} within "
        f"{settings.connect_timeout_s:g} s (a `ray start --head` cluster of Ray 2.60 needs "
        "RAY_AUTH_MODE=token and its token, or a head started with RAY_AUTH_MODE=disabled)"
    )


async def in_daemon_thread(fn: Callable[[], object], limit_s: float) -> None:
    """Run a blocking call in a daemon thread and wait at most `limit_s` for it."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def target() -> None:
        try:
            fn()
        except Exception as exc:
            log.warning("while stopping Ray actors: %s", first_line(exc))
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(_set_done, done)

    threading.Thread(target=target, name="ray-close", daemon=True).start()
    await asyncio.wait({done}, timeout=limit_s)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def cluster_facts(cluster: bool) -> tuple[str, str]:
    """(description, GCS address) of the connected Ray; blocking, so run in a thread."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    cpus = int(ray.cluster_resources().get("CPU", 0))  # type: ignore[no-untyped-call]
    gcs = str(ray.get_runtime_context().gcs_address)
    if cluster:
        return f"Ray cluster: {len(nodes)} node{'s' * (len(nodes) != 1)}, {cpus} CPUs", gcs
    return f"local Ray: {cpus} CPUs", gcs


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (at most 200 characters), for logs."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
