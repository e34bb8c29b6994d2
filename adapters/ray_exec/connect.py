"""Choosing and connecting Ray, with a quick, clear fallback to the local executor.

Nothing here imports `ray` at module level: the bot must start without it.
The checks are cheap and ordered so that a missing or unreachable Ray is
reported within seconds (an explicit unreachable address would otherwise
make `ray.init` hang for ~820 s):

1. `importlib.util.find_spec("ray")` (~0.1 s);
2. a TCP connect to the host:port of `RAY_ADDRESS` (1 ms, or the timeout);
3. `ray.init` in a daemon thread with a deadline (a cluster that refuses the
   driver, e.g. token authentication, retries for ~40 s).

Joining a cluster ships this project's code with the job (Ray's
`runtime_env={"working_dir": <repo root>, "excludes": [...]}`): Ray zips the
repository (without SHIP_EXCLUDES, and what .gitignore / .rayignore name),
stores the zip in the cluster once per content hash, and starts every worker
of the job in an unpacked copy with it first on `sys.path`. So the nodes need
only Ray and the pinned requirements, not a checkout (and a stale checkout at
the driver's path can't shadow the shipped code: with a working_dir Ray does
not add the driver's directories to the workers' path).
CAMPAIGN_RAY_SHIP_CODE=0 turns it off for nodes that have the code already.
A local Ray the bot starts needs none of this.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.local_executor import LocalExecutor
from core.ports import Executor, Generator
from core.scheduler import Limits
from core.settings import env_value, positive_float, positive_int, yes_no

if TYPE_CHECKING:
    from adapters.ray_exec.executor import RayExecutor

MIB = 1024 * 1024
PROBE_TIMEOUT_S = 2.0
ROOT = Path(__file__).resolve().parents[2]  # the repository: what a cluster job ships
# Never shipped (gitignore syntax, relative to ROOT): secrets, outputs, the venv and
# what the workers never import. Ray also skips what .gitignore and .rayignore name.
SHIP_EXCLUDES = (
    ".git",
    ".env",
    ".env.*",
    ".venv",
    "venv",
    "data",
    "docs",
    "tests",
    "benchmarks",
    "bench-results",
    "__pycache__",
    "*.pyc",
    "*.db",
    "*.db-*",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
)


class RayUnavailable(Exception):
    """Ray cannot be used; the message says why in one line."""


@dataclass(frozen=True)
class RaySettings:
    """How to reach (or start) Ray; read from the environment (see README.md)."""

    address: str | None = None  # RAY_ADDRESS: join this cluster instead of starting one
    num_cpus: int = max(1, os.cpu_count() or 1)  # CPUs of a Ray started by the bot
    object_store_mb: int = 200
    actors_per_kind: int = 2
    connect_timeout_s: float = 5.0  # plus importing Ray and the probe: a fallback within 10 s
    ship_code: bool = True  # joining a cluster: send the code along (runtime_env working_dir)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RaySettings:
        """Settings from RAY_ADDRESS and the CAMPAIGN_RAY_* variables."""
        env = os.environ if env is None else env
        base = cls()
        return cls(
            address=env.get("RAY_ADDRESS", "").strip() or None,
            num_cpus=env_value(env, "CAMPAIGN_RAY_CPUS", positive_int, base.num_cpus),
            object_store_mb=env_value(
                env, "CAMPAIGN_RAY_OBJECT_STORE_MB", positive_int, base.object_store_mb
            ),
            actors_per_kind=env_value(
                env, "CAMPAIGN_RAY_ACTORS", positive_int, base.actors_per_kind
            ),
            connect_timeout_s=env_value(
                env, "CAMPAIGN_RAY_CONNECT_TIMEOUT", positive_float, base.connect_timeout_s
            ),
            ship_code=env_value(env, "CAMPAIGN_RAY_SHIP_CODE", yes_no, base.ship_code),
        )

    def init_kwargs(self) -> dict[str, Any]:
        """Arguments for `ray.init`: join the cluster, or start a small, quiet local Ray."""
        quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
        if self.address:
            joined: dict[str, Any] = {"address": self.address, **quiet}
            if self.ship_code:
                joined["runtime_env"] = runtime_env()
            return joined
        return {
            "address": "local",  # never join whatever Ray happens to run on this machine
            "num_cpus": self.num_cpus,
            "include_dashboard": False,
            "object_store_memory": self.object_store_mb * MIB,
            **quiet,
        }


def runtime_env(root: Path = ROOT) -> dict[str, Any]:
    """The job's runtime_env: this repository as the workers' working directory."""
    return {"working_dir": str(root), "excludes": list(SHIP_EXCLUDES)}


def gcs_endpoint(address: str) -> tuple[str, int] | None:
    """Host and port of a `host:port` or `ray://host:port` address; None for 'auto'/'local'."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


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
