"""Health endpoints for load balancers, Docker and Kubernetes.

    GET /healthz   liveness: 200 "ok" while the event loop answers
    GET /readyz    readiness: 200 when every check passes, else 503; JSON
                   {"ready": bool, "version": str, "checks": {name: {"ok", "detail"}}}

Checks are `async () -> str` callables that return a short detail or raise.
The two the bot uses:

- `database_check(store.ping)`: the store is writable (the SQLite file's write lock, or a
  PostgreSQL primary)
  (`BEGIN IMMEDIATE; ROLLBACK` on a separate connection, 2 s busy timeout):
  catches a missing, read-only or wedged database;
- `provider_check(ping)`: the generator's provider answers. For Replicate,
  `ping` is one authenticated `GET /v1/account` with a 3 s timeout (the
  cheapest authenticated call; it also proves the token is accepted); its
  result is kept for 30 s so frequent probes never eat the API's read rate.
  The offline generator needs nothing (`ping=None`: "offline").

Details never carry secrets or file paths: /readyz is unauthenticated.

`add_health_routes(app, checks)` mounts both routes on an aiohttp application
(the Slack HTTP server, the gallery); `serve_http(mount, host, port)` serves
them alone for modes without an HTTP server (Discord, Slack Socket Mode),
e.g. on CAMPAIGN_HTTP_PORT. `python -m bot.health [URL]` is the probe the
Docker HEALTHCHECK runs (exit 0 on a 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:  # aiohttp is imported by what serves HTTP, not by every command
    from aiohttp import web

Check = Callable[[], Awaitable[str]]
Mount = Callable[["web.Application"], None]

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "campaign-bot"
CHECK_TIMEOUT_S = 5.0
PING_TIMEOUT_S = 3.0
PING_CACHE_S = 30.0
DEFAULT_HTTP_PORT = 8080  # what the Dockerfile and compose.yaml use


def project_version(root: Path = ROOT) -> str:
    """The installed distribution's version, else pyproject.toml's, else 'unknown'."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(DISTRIBUTION)
    try:
        with (root / "pyproject.toml").open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return "unknown"


def add_health_routes(app: web.Application, checks: Mapping[str, Check]) -> None:
    """Mount GET (and HEAD) /healthz and /readyz on `app`."""
    from aiohttp import web

    version = project_version()

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"Cache-Control": "no-store"})

    async def readyz(_request: web.Request) -> web.Response:
        results = await run_checks(checks)
        ready = all(ok for ok, _ in results.values())
        body = {
            "ready": ready,
            "version": version,
            "checks": {
                name: {"ok": ok, "detail": detail} for name, (ok, detail) in results.items()
            },
        }
        return web.json_response(
            body, status=200 if ready else 503, headers={"Cache-Control": "no-store"}
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


async def run_checks(
    checks: Mapping[str, Check], timeout_s: float = CHECK_TIMEOUT_S
) -> dict[str, tuple[bool, str]]:
    """Run every check at once, each within `timeout_s`: name -> (ok, detail)."""

    async def one(check: Check) -> tuple[bool, str]:
        try:
            return True, await asyncio.wait_for(check(), timeout_s)
        except TimeoutError:
            return False, f"no answer within {timeout_s:g} s"
        except Exception as exc:
            return False, _first_line(exc)

    names = list(checks)
    outcomes = await asyncio.gather(*(one(checks[name]) for name in names))
    return dict(zip(names, outcomes, strict=True))


def database_check(ping: Callable[[], Awaitable[str]]) -> Check:
    """Ready when the store's ping answers: SQLite's write lock can be taken, PostgreSQL is
    a writable primary."""

    async def check() -> str:
        try:
            return await ping()
        except Exception as exc:
            raise RuntimeError(f"database not writable: {_first_line(exc)}") from None

    return check


def provider_check(
    ping: Callable[[], Awaitable[object]] | None,
    *,
    name: str = "replicate",
    timeout_s: float = PING_TIMEOUT_S,
    cache_s: float = PING_CACHE_S,
    clock: Callable[[], float] = time.monotonic,
) -> Check:
    """Ready when `ping()` succeeds (cached for `cache_s`); `ping=None`: the offline generator."""
    last: _Ping | None = None  # the last real ping
    lock = asyncio.Lock()

    async def check() -> str:
        nonlocal last
        if ping is None:
            return "offline generator"
        async with lock:  # concurrent probes share one ping
            if last is None or clock() - last.at >= cache_s:
                ok, detail = await _pinged(ping, name, timeout_s)
                last = _Ping(clock(), ok, detail)
            if not last.ok:
                raise RuntimeError(last.detail)
            return last.detail

    return check


@contextlib.asynccontextmanager
async def serve_http(mount: Mount, host: str, port: int) -> AsyncIterator[int]:
    """Serve an aiohttp app that `mount` fills, on host:port; yields the bound port."""
    from aiohttp import web

    app = web.Application()
    mount(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield int(runner.addresses[0][1])  # the real port when asked for port 0
    finally:
        await runner.cleanup()


def probe(url: str, timeout_s: float = 3.0) -> bool:
    """True if GET url answers 200 within the timeout (the container's HEALTHCHECK)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status) == 200
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors
        return False


def main(argv: list[str] | None = None) -> int:
    """`python -m bot.health [URL]`: exit 0 if URL (default: this host's /healthz) answers 200."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        url = args[0]
    else:
        from bot.settings import load_settings  # the same settings the bot reads

        try:
            address = load_settings().http.address()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        port = address[1] if address else DEFAULT_HTTP_PORT
        url = f"http://127.0.0.1:{port}/healthz"
    ok = probe(url)
    if not ok:
        print(f"unhealthy: {url}", file=sys.stderr)
    return 0 if ok else 1


@dataclass(frozen=True)
class _Ping:
    at: float
    ok: bool
    detail: str


async def _pinged(
    ping: Callable[[], Awaitable[object]], name: str, timeout_s: float
) -> tuple[bool, str]:
    try:
        await asyncio.wait_for(ping(), timeout_s)
    except TimeoutError:
        return False, f"{name}: no answer within {timeout_s:g} s"
    except Exception as exc:
        return False, f"{name}: {_first_line(exc)}"
    return True, f"{name}: reachable"


def _first_line(exc: BaseException) -> str:
    text = (str(exc).splitlines() or [""])[0].strip() or type(exc).__name__
    return text[:200]


if __name__ == "__main__":
    sys.exit(main())
