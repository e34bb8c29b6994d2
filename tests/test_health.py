"""bot/health.py: /healthz and /readyz on real listeners, the checks, the container probe."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.replicate_api.generator import ReplicateRuntime
from adapters.replicate_api.settings import ReplicateSettings
from bot.health import (
    Check,
    add_health_routes,
    database_check,
    project_version,
    provider_check,
    run_checks,
    serve_http,
)
from bot.settings import AppSettings
from core.errors import ConfigError
from storage.sqlite_store import SqliteStore

ROOT = Path(__file__).resolve().parent.parent


async def _get(url: str) -> tuple[int, str, Mapping[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text(), response.headers


async def _ok() -> str:
    return "fine"


async def _broken() -> str:
    raise RuntimeError("it broke\nsecond line never shown")


async def _stuck() -> str:
    await asyncio.sleep(60)
    return "never"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(tmp_path / "campaigns.db")
    yield store
    await store.close()


async def test_healthz_is_ok_and_readyz_reports_every_check(db: SqliteStore) -> None:
    checks: dict[str, Check] = {
        "database": database_check(db.ping),
        "provider": provider_check(None),
    }
    async with serve_http(lambda app: add_health_routes(app, checks), "127.0.0.1", 0) as port:
        status, text, headers = await _get(f"http://127.0.0.1:{port}/healthz")
        assert (status, text) == (200, "ok")
        assert headers["Cache-Control"] == "no-store"
        status, text, _ = await _get(f"http://127.0.0.1:{port}/readyz")
    assert status == 200
    body = json.loads(text)
    assert body == {
        "ready": True,
        "version": project_version(),
        "checks": {
            "database": {"ok": True, "detail": "writable"},
            "provider": {"ok": True, "detail": "offline generator"},
        },
    }


async def test_readyz_is_503_when_one_check_fails_and_says_which(db: SqliteStore) -> None:
    checks: dict[str, Check] = {"database": database_check(db.ping), "provider": _broken}
    async with serve_http(lambda app: add_health_routes(app, checks), "127.0.0.1", 0) as port:
        status, text, _ = await _get(f"http://127.0.0.1:{port}/readyz")
    body = json.loads(text)
    assert status == 503
    assert body["ready"] is False
    assert body["checks"]["provider"] == {"ok": False, "detail": "it broke"}
    assert body["checks"]["database"]["ok"] is True


async def test_health_routes_mount_next_to_an_existing_server_s_routes() -> None:
    async def events(_request: web.Request) -> web.Response:
        return web.Response(text="slack")

    def mount(app: web.Application) -> None:
        app.router.add_post("/slack/events", events)  # what the Slack server already has
        add_health_routes(app, {})

    async with serve_http(mount, "127.0.0.1", 0) as port:
        assert (await _get(f"http://127.0.0.1:{port}/healthz"))[:2] == (200, "ok")
        assert (await _get(f"http://127.0.0.1:{port}/readyz"))[0] == 200  # no checks: ready
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/slack/events") as response,
        ):
            assert await response.text() == "slack"


async def test_the_database_check_fails_while_another_writer_holds_the_lock(
    db: SqliteStore,
) -> None:
    check = database_check(lambda: db.ping(busy_timeout_s=0.2))
    assert await check() == "writable"
    holder = sqlite3.connect(db.path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(RuntimeError, match="database not writable: database is locked"):
            await check()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await check() == "writable"


async def test_the_database_check_never_creates_a_missing_database(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "gone" / "campaigns.db")
    try:
        for name in ("campaigns.db", "campaigns.db-wal", "campaigns.db-shm"):
            (tmp_path / "gone" / name).unlink(missing_ok=True)  # removed under the bot
        with pytest.raises(RuntimeError, match="database not writable"):
            await database_check(store.ping)()
        assert not (tmp_path / "gone" / "campaigns.db").exists()
    finally:
        await store.close()


async def test_checks_run_at_once_each_within_its_timeout() -> None:
    started = asyncio.get_running_loop().time()
    results = await run_checks({"ok": _ok, "stuck": _stuck, "broken": _broken}, timeout_s=0.3)
    assert asyncio.get_running_loop().time() - started < 2
    assert results == {
        "ok": (True, "fine"),
        "stuck": (False, "no answer within 0.3 s"),
        "broken": (False, "it broke"),
    }


async def test_the_provider_ping_is_cached_and_its_failures_are_reported() -> None:
    now = [100.0]
    calls: list[str] = []
    answers: list[Any] = ["ok", RuntimeError("HTTP 401"), "ok"]

    async def ping() -> object:
        calls.append("ping")
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    check = provider_check(ping, cache_s=30, clock=lambda: now[0])
    assert await asyncio.gather(check(), check(), check()) == ["replicate: reachable"] * 3
    assert len(calls) == 1  # concurrent probes and probes within 30 s share one ping
    now[0] += 31
    with pytest.raises(RuntimeError, match="replicate: HTTP 401"):
        await check()
    with pytest.raises(RuntimeError, match="replicate: HTTP 401"):
        await check()  # the failure is cached too
    now[0] += 31
    assert await check() == "replicate: reachable"
    assert len(calls) == 3


async def test_a_slow_provider_is_not_ready() -> None:
    async def slow() -> object:
        await asyncio.sleep(5)
        return None

    with pytest.raises(RuntimeError, match=r"no answer within 0\.1 s"):
        await provider_check(slow, timeout_s=0.1)()


async def test_replicate_account_ping_through_the_generator_runtime() -> None:
    """The wiring bot.py uses: one authenticated GET /v1/account on the runtime's client."""
    seen: list[str | None] = []

    async def account(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != "Bearer r8_good":
            return web.json_response({"detail": "Unauthenticated"}, status=401)
        return web.json_response({"type": "user", "username": "someone"})

    async with serve_http(
        lambda app: app.router.add_get("/v1/account", account), "127.0.0.1", 0
    ) as port:
        base = f"http://127.0.0.1:{port}"
        for token, expected in (("r8_good", None), ("r8_wrong", "Unauthenticated")):
            runtime = ReplicateRuntime(
                ReplicateSettings(api_token=token, base_url=base, allow_http=True)
            )

            async def ping(runtime: ReplicateRuntime = runtime) -> object:
                return await runtime.current().api.http.send("GET", "/v1/account", timeout_s=3.0)

            check = provider_check(ping)
            try:
                if expected is None:
                    assert await check() == "replicate: reachable"
                else:
                    with pytest.raises(RuntimeError) as caught:
                        await check()
                    assert expected in str(caught.value)
                    assert token not in str(caught.value)
            finally:
                await runtime.aclose()
    assert seen == ["Bearer r8_good", "Bearer r8_wrong"]


def test_the_listener_address_comes_from_the_environment() -> None:
    assert AppSettings.from_mapping({}).http.address() is None
    assert AppSettings.from_mapping({"CAMPAIGN_HTTP_PORT": ""}).http.address() is None
    assert AppSettings.from_mapping({"CAMPAIGN_HTTP_PORT": "8080"}).http.address() == (
        "127.0.0.1",
        8080,
    )
    assert AppSettings.from_mapping(
        {"CAMPAIGN_HTTP_PORT": "81", "CAMPAIGN_HTTP_HOST": "0.0.0.0"}
    ).http.address() == (
        "0.0.0.0",
        81,
    )
    for bad in ("0", "70000", "http"):
        with pytest.raises(ConfigError, match="CAMPAIGN_HTTP_PORT"):
            AppSettings.from_mapping({"CAMPAIGN_HTTP_PORT": bad}).http.address()


async def test_the_container_probe_exits_0_on_a_healthy_server() -> None:
    async with serve_http(lambda app: add_health_routes(app, {}), "127.0.0.1", 0) as port:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.health",
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "CAMPAIGN_HTTP_PORT": str(port)},
            stderr=subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
