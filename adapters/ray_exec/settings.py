"""How to reach (or start) Ray, and what a cluster job ships; imports nothing of Ray.

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

import logging
import os
from pathlib import Path
from typing import Annotated, Any

from core.setting_values import positive_float, positive_int, yes_no
from core.settings import Env, Section

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


class RaySettings(Section):
    """How to reach (or start) Ray (see docs/ray.md)."""

    # Join this cluster instead of starting one.
    address: Annotated[str | None, Env("RAY_ADDRESS")] = None
    # CPUs of a Ray started by the bot.
    num_cpus: Annotated[int, Env("CAMPAIGN_RAY_CPUS", positive_int)] = max(1, os.cpu_count() or 1)
    object_store_mb: Annotated[int, Env("CAMPAIGN_RAY_OBJECT_STORE_MB", positive_int)] = 200
    actors_per_kind: Annotated[int, Env("CAMPAIGN_RAY_ACTORS", positive_int)] = 2
    # Plus importing Ray and the probe: a fallback within 10 s.
    connect_timeout_s: Annotated[float, Env("CAMPAIGN_RAY_CONNECT_TIMEOUT", positive_float)] = 5.0
    # Joining a cluster: send the code along (runtime_env working_dir).
    ship_code: Annotated[bool, Env("CAMPAIGN_RAY_SHIP_CODE", yes_no)] = True

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
