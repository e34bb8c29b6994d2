"""`python bot.py slack` in a subprocess: real wiring, a signed command, a clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlackApi, SlackHarness

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAMPAIGN_", "REPLICATE_", "SLACK_"))
    }
    env.update(
        CAMPAIGN_DATA_DIR=str(tmp_path / "data"),
        CAMPAIGN_GENERATOR="offline",
        CAMPAIGN_VIDEO_SECONDS="0.4",
        SLACK_UPDATE_INTERVAL="0.3",
        **extra,
    )
    return env


async def test_slack_command_serves_until_sigterm(tmp_path: Path) -> None:
    api = FakeSlackApi()
    env = _env(
        tmp_path,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=await api.start(),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "bot.py", "slack", "--port", "0", cwd=ROOT, env=env,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(60):
            log = ""
            while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/slack/events", log)):
                line = (await proc.stderr.readline()).decode()
                assert line, f"bot.py slack exited early: {log}"
                log += line
        slack = SlackHarness(api, None, f"http://127.0.0.1:{found.group(1)}/slack/events")
        reply = await slack.command('theme:"retro cats" products:2 videos:yes')
        assert reply.status == 200 and "Estimate: 4 steps" in reply.body["text"]
        await api.wait_for(lambda: len(api.of("files.completeUploadExternal")) == 3)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest = (await proc.stderr.read()).decode()
        code = await proc.wait()
        await api.close()
    assert code == 0, rest
    assert BOT_TOKEN not in log + rest and SIGNING_SECRET not in log + rest
    with sqlite3.connect(tmp_path / "data" / "campaigns.db") as db:
        rows = db.execute("SELECT status, requester FROM campaigns").fetchall()
    assert rows == [("succeeded", "slack:U1")]


async def test_slack_command_refuses_missing_settings(tmp_path: Path) -> None:
    env = _env(tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN)  # HTTP mode without a signing secret
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "bot.py", "slack", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "SLACK_SIGNING_SECRET is not set" in err.decode() and BOT_TOKEN not in err.decode()
    assert not (tmp_path / "data").exists()  # nothing opened, nothing stored
