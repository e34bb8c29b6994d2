"""Two `python bot.py slack` replicas on one PostgreSQL database, one fake Slack and one fake
Replicate: what two hosts of one deployment do (simulated by two processes).

Commands reach either replica; a replica killed with -9 mid-campaign leaves it to the
other, which finishes it in its own thread without paying twice; a signed command
Slack retries to the other replica starts nothing; two replicas told the account's
create rate stay under it together; a daily quota holds when both race; a cancel sent
to one replica stops the other's campaign by notification, not by its poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fakes.replicate import TOKEN, FakeReplicate
from tests.fakes.slack_api import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlackApi,
    SlackHarness,
    signed_headers,
)
from tests.fakes.slack_process import Bot, serving, until

VIDEO_MODEL = "bytedance/seedance-1-lite"
pytestmark = pytest.mark.slow


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeSlackApi, FakeReplicate]]:
    """One Slack app and one Replicate account (600 creates a minute, a burst of 10)."""
    api = FakeSlackApi()
    replicate = FakeReplicate(token=TOKEN, create_rate_per_min=600, burst_s=1.0)
    await api.start()
    await replicate.start()
    yield api, replicate
    await replicate.stop()
    await api.close()


def replica_env(
    tmp_path: Path, db_url: str, api: FakeSlackApi, replicate: FakeReplicate, **more: str
) -> dict[str, str]:
    """What every replica is given: the same database, data volume, account and app."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAMPAIGN_", "REPLICATE_", "SLACK_", "RAY_"))
    }
    env.update(
        CAMPAIGN_DB=db_url,
        CAMPAIGN_DATA_DIR=str(tmp_path / "shared-data"),  # one shared volume
        CAMPAIGN_EXECUTOR="local",
        CAMPAIGN_GENERATOR="replicate",
        CAMPAIGN_LEASE="2",
        REPLICATE_API_TOKEN=TOKEN,
        REPLICATE_BASE_URL=replicate.base_url,
        REPLICATE_ALLOW_HTTP="1",
        REPLICATE_ALLOW_PRIVATE_OUTPUTS="1",
        REPLICATE_POLL_MIN="0.05",
        REPLICATE_POLL_MAX="0.3",
        REPLICATE_PREFER_WAIT="1",
        REPLICATE_CREATE_RATE="600",  # told the account's rate
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=api.base + "/api/",
        SLACK_UPDATE_INTERVAL="0.2",
        **more,
    )
    return env


@contextlib.asynccontextmanager
async def two_replicas(env: dict[str, str]) -> AsyncIterator[tuple[Bot, Bot]]:
    async with serving(env) as first, serving(env) as second:
        yield first, second


def rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return list(conn.execute(sql).fetchall())


def summary_in(api: FakeSlackApi, ts: str) -> bool:
    """Whether a campaign summary was posted in the thread of parent message `ts`."""
    return any(
        c.params.get("thread_ts") == ts and "Campaign" in str(c.params.get("initial_comment"))
        for c in api.of("files.completeUploadExternal")
    )


def refusals(api: FakeSlackApi) -> list[str]:
    """Quota refusals shown to the user: ephemerally before a parent message was posted,
    or written over it when the check at the insert refused (the race)."""
    texts = [c.params.get("text", "") for c in api.of("response_url") + api.of("chat.update")]
    return [t for t in map(str, texts) if "campaign allowed per day" in t]


def answered(api: FakeSlackApi, text: str) -> bool:
    """Whether a command's answer (through its response_url) said `text`."""
    return any(text in str(c.params.get("text", "")) for c in api.of("response_url"))


def statuses(db_url: str) -> dict[str, str]:
    return {str(r[0]): str(r[1]) for r in rows(db_url, "SELECT id, status FROM campaigns")}


async def test_two_replicas_share_one_app_one_budget_and_one_replay_guard(
    servers: tuple[FakeSlackApi, FakeReplicate], tmp_path: Path, pg_url: str
) -> None:
    api, replicate = servers
    async with two_replicas(replica_env(tmp_path, pg_url, api, replicate)) as (one, other):
        first = SlackHarness(api, None, one.url)
        second = SlackHarness(api, None, other.url)
        form = first.command_form('theme:"north cats" products:4 videos:yes')
        headers = signed_headers(urllib.parse.urlencode(form))
        replies = await asyncio.gather(
            first.post(form, headers),
            second.command('theme:"south cats" products:4 videos:yes'),
        )
        retried = await second.post(form, headers)  # Slack's retry reached the other replica
        await until(
            lambda: len(rows(pg_url, "SELECT 1 FROM campaigns WHERE status = 'succeeded'")) == 2
        )
        for bot in (one, other):
            assert await bot.stop() == 0, bot.stderr
    assert all("Starting" in r.body["text"] for r in replies)
    assert retried.body == {"text": ""}  # taken by the first replica: nothing started
    assert len(rows(pg_url, "SELECT id FROM campaigns")) == 2
    assert (len(replicate.made("image")), len(replicate.made("video"))) == (8, 8)
    assert len(replicate.made("text")) >= 2 and replicate.repeated() == []  # each paid once
    assert replicate.throttled == 0  # one schedule for both: no self-made 429
    assert all("Traceback" not in bot.stderr for bot in (one, other))


async def test_a_replica_killed_mid_campaign_leaves_it_to_the_other(
    servers: tuple[FakeSlackApi, FakeReplicate], tmp_path: Path, pg_url: str
) -> None:
    api, replicate = servers
    replicate.latency["video"] = 600.0  # the videos are still being made when it dies
    async with two_replicas(replica_env(tmp_path, pg_url, api, replicate)) as (one, other):
        reply = await SlackHarness(api, None, one.url).command(
            'theme:"orphan cats" products:2 videos:yes'
        )
        assert "Starting" in reply.body["text"]
        await until(lambda: len(replicate.created(VIDEO_MODEL)) == 2)
        await until(
            lambda: len(rows(pg_url, "SELECT 1 FROM steps WHERE provider_id IS NOT NULL")) == 4
        )
        assert await one.crash() == -signal.SIGKILL  # no hand-over: the lease must lapse
        replicate.latency["video"] = 0.05  # the predictions it left running finish now
        await until(lambda: "succeeded" in statuses(pg_url).values(), limit_s=90)
        (parent,) = [c for c in api.of("chat.postMessage") if not c.params.get("thread_ts")]
        await api.wait_for(lambda: summary_in(api, str(parent.answer["ts"])))  # its own thread
        assert await other.stop() == 0, other.stderr
    assert len(replicate.created()) == 7  # outline, 2 details, 2 images, 2 videos: none twice
    assert replicate.cancels == []
    assert "Traceback" not in other.stderr


async def test_a_daily_quota_holds_when_both_replicas_race(
    servers: tuple[FakeSlackApi, FakeReplicate], tmp_path: Path, pg_url: str
) -> None:
    api, replicate = servers
    env = replica_env(tmp_path, pg_url, api, replicate, CAMPAIGN_QUOTA_USER_DAILY="1")
    async with two_replicas(env) as (one, other):
        replies = await asyncio.gather(
            *(
                SlackHarness(api, None, bot.url).command(f'theme:"race {i}" products:1')
                for i, bot in enumerate((one, other, one, other))
            )
        )
        await until(lambda: len(refusals(api)) == 3)  # the three refused, told so
        for bot in (one, other):
            assert await bot.stop() == 0, bot.stderr
    assert all(r.status == 200 for r in replies)
    assert len(rows(pg_url, "SELECT id FROM campaigns")) == 1  # one of four, on either replica
    assert len(refusals(api)) == 3


async def test_a_cancel_sent_to_one_replica_stops_the_others_campaign_by_notification(
    servers: tuple[FakeSlackApi, FakeReplicate], tmp_path: Path, pg_url: str
) -> None:
    api, replicate = servers
    replicate.latency["image"] = 600.0  # the image is still being made when the cancel comes
    env = replica_env(tmp_path, pg_url, api, replicate)
    env["CAMPAIGN_LEASE"] = "600"  # nobody takes the campaign over: only its owner ends it
    owner_env = {**env, "CAMPAIGN_CANCEL_POLL_S": "120"}  # its poll would take two minutes
    async with serving(owner_env) as owner, serving(env) as other:
        reply = await SlackHarness(api, None, owner.url).command('theme:"held cats" products:1')
        assert "Starting" in reply.body["text"]
        await until(
            lambda: len(rows(pg_url, "SELECT 1 FROM steps WHERE provider_id IS NOT NULL")) == 1
        )
        ((campaign_id, held_by),) = rows(pg_url, "SELECT id, owner FROM campaigns")
        assert f":{owner.proc.pid}:" in held_by  # the owner runs it, not the other replica
        await SlackHarness(api, None, other.url).command(f"cancel {campaign_id}")
        # within seconds, not the owner's two minutes: only its notice can bring it
        await until(lambda: statuses(pg_url) == {campaign_id: "canceled"}, limit_s=30)
        await api.wait_for(lambda: answered(api, f"Campaign {campaign_id} is canceled."))
        for bot in (owner, other):
            assert await bot.stop() == 0, bot.stderr
    assert len(replicate.cancels) == 1  # the owner cancelled its prediction on Replicate
    assert all("Traceback" not in bot.stderr for bot in (owner, other))
