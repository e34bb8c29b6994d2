"""A deploy of `python bot.py discord`: SIGTERM hands its campaign over, the restarted
bot finishes it in the same thread, nothing is paid twice or cancelled.
Subprocesses against the fake Discord (REST + gateway) and the fake Replicate API."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.discord_api import FakeDiscord, snowflake
from tests.fakes.discord_harness import TOKEN as DISCORD_TOKEN
from tests.fakes.discord_harness import fake_server  # noqa: F401 (registers the `fake` fixture)
from tests.fakes.replicate import TOKEN, FakeReplicate

ROOT = Path(__file__).resolve().parent.parent
VIDEO_MODEL = "bytedance/seedance-1-lite"
TEXT_MODEL = "meta/meta-llama-3-8b-instruct"
pytestmark = pytest.mark.slow


@pytest.fixture
async def replicate() -> AsyncIterator[FakeReplicate]:
    server = FakeReplicate(token=TOKEN)
    await server.start()
    yield server
    await server.stop()


def _env(tmp_path: Path, fake: FakeDiscord, replicate: FakeReplicate) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAMPAIGN_", "REPLICATE_", "DISCORD_", "RAY_"))
    }
    env.update(
        CAMPAIGN_DATA_DIR=str(tmp_path / "data"),
        CAMPAIGN_DB=str(tmp_path / "c.db"),
        CAMPAIGN_EXECUTOR="local",
        CAMPAIGN_GENERATOR="replicate",
        CAMPAIGN_PROGRESS_INTERVAL="0.2",
        REPLICATE_API_TOKEN=TOKEN,
        REPLICATE_BASE_URL=replicate.base_url,
        REPLICATE_ALLOW_HTTP="1",
        REPLICATE_ALLOW_PRIVATE_OUTPUTS="1",  # the fake serves outputs on 127.0.0.1
        REPLICATE_POLL_MIN="0.05",
        REPLICATE_POLL_MAX="0.3",
        REPLICATE_PREFER_WAIT="1",
        DISCORD_TOKEN=DISCORD_TOKEN,
        DISCORD_GUILD_IDS=fake.guild_id,
        DISCORD_API_BASE_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
    )
    return env


async def _start(env: dict[str, str], fake: FakeDiscord) -> asyncio.subprocess.Process:
    """`bot.py discord`, once it has identified and synced its commands."""
    connected = len(fake.identifies)
    syncs = rf"/applications/\d+/guilds/{fake.guild_id}/commands"
    synced = len(fake.find("PUT", syncs, status=200))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "bot.py", "discord", "--sync", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await fake.wait_for(
        lambda: (
            len(fake.identifies) > connected and len(fake.find("PUT", syncs, status=200)) > synced
        ),
        within_s=60,
    )
    return proc


async def _stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as conn:
            return list(conn.execute(sql).fetchall())
    except sqlite3.OperationalError:  # the schema is still being created
        return []


async def _until(check: Callable[[], bool], limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(0.05)


def _campaign(db: Path) -> tuple[str, str, str | None, float | None]:
    (row,) = _rows(db, "SELECT id, status, owner, heartbeat_at FROM campaigns")
    return row[0], row[1], row[2], row[3]


def _videos_output(db: Path) -> int:
    found = _rows(db, "SELECT count(*) FROM steps WHERE name = 'video' AND output IS NOT NULL")
    return int(found[0][0]) if found else 0


def _videos_stored(db: Path) -> int:
    found = _rows(db, "SELECT count(*) FROM steps WHERE name = 'video' AND provider_id IS NOT NULL")
    return int(found[0][0]) if found else 0


async def test_a_deploy_hands_over_and_the_restarted_bot_finishes_the_campaign(
    fake: FakeDiscord, replicate: FakeReplicate, tmp_path: Path
) -> None:
    replicate.latency["video"] = 600.0  # the videos are still being made when the deploy comes
    env, db = _env(tmp_path, fake, replicate), tmp_path / "c.db"
    old = await _start(env, fake)
    try:
        options = {"theme": "deploy cats", "products": 2, "videos": True}
        await fake.interact(fake.command("new", snowflake(), options))
        await _until(lambda: len(replicate.created(VIDEO_MODEL)) == 2 and _videos_stored(db) == 2)
        cid = _campaign(db)[0]
        code, err = await _stop(old)
    finally:
        if old.returncode is None:
            old.kill()
            await old.wait()
    assert code == 0, err
    assert "Traceback" not in err
    assert _videos_output(db) == 0  # the 600 s videos were left running, not waited for
    assert _campaign(db) == (cid, "running", None, 0.0)  # released for the next process
    assert replicate.cancels == []
    (thread,) = fake.find("POST", rf"/channels/{fake.channel_id}/messages/\d+/threads")
    thread_id = thread.path.split("/")[-2]  # a thread started from a message has its id
    posts = rf"/channels/{thread_id}/messages"
    assert fake.find("POST", posts) == []  # no product finished before the deploy

    replicate.latency["video"] = 0.05  # the predictions it left running finish now
    new = await _start(env, fake)
    try:
        await fake.wait_for(lambda: len(fake.find("POST", posts, status=200)) >= 3)
        await _until(lambda: _campaign(db)[1] == "succeeded")
        code, err = await _stop(new)
    finally:
        if new.returncode is None:
            new.kill()
            await new.wait()
    assert code == 0, err
    assert "Traceback" not in err
    assert replicate.cancels == []  # nothing cancelled at the provider, ever
    assert len(replicate.created()) == 7  # outline, 2 details, 2 images, 2 videos: none twice
    stored = {r[0] for r in _rows(db, "SELECT provider_id FROM steps")}
    assert stored == {p["id"] for p in replicate.created() if p["model"] != TEXT_MODEL}
    thread_posts = fake.find("POST", posts, status=200)
    assert len(thread_posts) == 3  # each product once, then the summary
    assert "succeeded" in str(thread_posts[-1].json)
    assert len(fake.find("POST", rf"/channels/{fake.channel_id}/messages")) == 1  # same message
