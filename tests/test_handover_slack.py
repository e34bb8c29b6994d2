"""A deploy of `python bot.py slack`: SIGTERM hands its campaigns over, the restarted
process finishes them in the same thread, nothing is paid twice or cancelled; a
second SIGTERM while a stop is slow exits at once. Subprocesses against the fake
Slack Web API and the fake Replicate API."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.replicate import TOKEN, FakeReplicate
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlackApi, SlackHarness
from tests.fakes.slack_process import serving, until

ROOT = Path(__file__).resolve().parent.parent
VIDEO_MODEL = "bytedance/seedance-1-lite"
TEXT_MODEL = "meta/meta-llama-3-8b-instruct"
pytestmark = pytest.mark.slow


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeSlackApi, FakeReplicate]]:
    api, replicate = FakeSlackApi(), FakeReplicate(token=TOKEN)
    await api.start()
    await replicate.start()
    yield api, replicate
    await replicate.stop()
    await api.close()


def _env(tmp_path: Path, api: FakeSlackApi, replicate: FakeReplicate) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAMPAIGN_", "REPLICATE_", "SLACK_", "RAY_"))
    }
    env.update(
        CAMPAIGN_DATA_DIR=str(tmp_path / "data"),
        CAMPAIGN_DB=str(tmp_path / "c.db"),
        CAMPAIGN_EXECUTOR="local",
        CAMPAIGN_GENERATOR="replicate",
        REPLICATE_API_TOKEN=TOKEN,
        REPLICATE_BASE_URL=replicate.base_url,
        REPLICATE_ALLOW_HTTP="1",
        REPLICATE_ALLOW_PRIVATE_OUTPUTS="1",  # the fake serves outputs on 127.0.0.1
        REPLICATE_POLL_MIN="0.05",
        REPLICATE_POLL_MAX="0.3",
        REPLICATE_PREFER_WAIT="1",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=api.base + "/api/",
        SLACK_UPDATE_INTERVAL="0.2",
    )
    return env


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as conn:
            return list(conn.execute(sql).fetchall())
    except sqlite3.OperationalError:  # the schema is still being created
        return []


def _videos_output(db: Path) -> int:
    found = _rows(db, "SELECT count(*) FROM steps WHERE name = 'video' AND output IS NOT NULL")
    return int(found[0][0]) if found else 0


def _videos_stored(db: Path) -> int:
    found = _rows(db, "SELECT count(*) FROM steps WHERE name = 'video' AND provider_id IS NOT NULL")
    return int(found[0][0]) if found else 0


def _campaign(db: Path) -> tuple[str, str, str | None, float | None]:
    (row,) = _rows(db, "SELECT id, status, owner, heartbeat_at FROM campaigns")
    return row[0], row[1], row[2], row[3]


def _parent_ts(api: FakeSlackApi) -> str:
    (parent,) = [c for c in api.of("chat.postMessage") if not c.params.get("thread_ts")]
    return str(parent.answer["ts"])


def _summary_in(api: FakeSlackApi, ts: str) -> bool:
    return any(
        c.params.get("thread_ts") == ts and "Campaign" in str(c.params.get("initial_comment"))
        for c in api.of("files.completeUploadExternal")
    )


async def test_a_deploy_hands_over_and_the_restarted_bot_finishes_the_campaign(
    servers: tuple[FakeSlackApi, FakeReplicate], tmp_path: Path
) -> None:
    api, replicate = servers
    replicate.latency["video"] = 600.0  # the videos are still being made when the deploy comes
    env, db = _env(tmp_path, api, replicate), tmp_path / "c.db"
    async with serving(env) as old:
        reply = await SlackHarness(api, None, old.url).command(
            'theme:"deploy cats" products:2 videos:yes'
        )
        assert reply.status == 200 and "Estimate: 4 steps" in reply.body["text"]
        await until(lambda: len(replicate.created(VIDEO_MODEL)) == 2 and _videos_stored(db) == 2)
        cid = _campaign(db)[0]
        assert await old.stop() == 0, old.stderr
        assert _videos_output(db) == 0  # the 600 s videos were left running, not waited for
    assert "Traceback" not in old.stderr
    assert _campaign(db) == (cid, "running", None, 0.0)  # released for the next process
    assert replicate.cancels == []
    ts = _parent_ts(api)
    calls_before = len(api.calls)

    replicate.latency["video"] = 0.05  # the predictions it left running finish now
    async with serving(env) as new:
        await api.wait_for(lambda: _summary_in(api, ts))  # resumed into the same thread
        await until(lambda: _campaign(db)[1] == "succeeded")
        assert await new.stop() == 0, new.stderr
    assert "Traceback" not in new.stderr
    assert replicate.cancels == []  # nothing cancelled at the provider, ever
    assert len(replicate.created()) == 7  # outline, 2 details, 2 images, 2 videos: none twice
    stored = {r[0] for r in _rows(db, "SELECT provider_id FROM steps")}
    assert stored == {p["id"] for p in replicate.created() if p["model"] != TEXT_MODEL}
    after = api.calls[calls_before:]
    parents = [c for c in after if c.method == "chat.postMessage" and not c.params.get("thread_ts")]
    assert parents == []  # no new status message: the stored one is reused
    updates = [c for c in after if c.method == "chat.update"]
    assert updates and all(c.params["ts"] == ts for c in updates)
    posts = [c for c in api.of("files.completeUploadExternal") if c.params.get("thread_ts") == ts]
    assert len(posts) == 3  # each product once, then the summary
    assert BOT_TOKEN not in old.stderr + new.stderr


async def test_a_second_sigterm_while_stopping_exits_at_once(
    servers: tuple[FakeSlackApi, FakeReplicate], tmp_path: Path
) -> None:
    api, replicate = servers
    replicate.latency["video"] = 600.0
    env, db = _env(tmp_path, api, replicate), tmp_path / "c.db"
    async with serving(env) as bot:
        held = api.hold("chat.update")  # the first status edit never gets an answer
        await SlackHarness(api, None, bot.url).command("stuck cats products:1 videos:yes")
        await asyncio.wait_for(held.held.wait(), 60)
        await until(lambda: _videos_stored(db) == 1)
        bot.proc.send_signal(signal.SIGTERM)  # the stop hands over, then waits on that edit
        await until(lambda: _campaign(db)[2] is None)
        assert bot.proc.returncode is None  # still stopping
        assert await bot.stop() == 130
        assert held.held.is_set() and not held.release.is_set()  # left with the edit held
    assert "second signal" in bot.stderr and "Traceback" not in bot.stderr
    assert _campaign(db)[1:] == ("running", None, 0.0)  # handed over before it left
    assert replicate.cancels == []
