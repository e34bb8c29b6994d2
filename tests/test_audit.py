"""Audit lines and structured logs: who asked what, where, estimate and actual cost."""

from __future__ import annotations

import io
import json
import logging
import shutil
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from core.logs import JsonFormatter, configure, log_event
from core.model import CampaignStatus, DiscordOrigin
from core.quotas import AuditEvent
from core.request import CampaignRequest
from storage.migrate import migrate, migrations
from storage.sqlite_store import SqliteStore
from tests.fakes import GatedGenerator
from tests.fakes.audit import audit_entries

pytestmark = pytest.mark.both_stores

DISCORD = DiscordOrigin(guild="77", channel="555", message="1", thread="2")


async def test_submitted_and_finished_lines_carry_estimate_and_cost(service_on) -> None:
    gen = GatedGenerator(open_all=True, fail={(1, "video")}, fail_once=True)
    async with service_on(gen) as service:
        request = CampaignRequest(theme="retro cats", products=2, videos=True)
        submitted = await service.submit(request, requester="discord:42", origin=DISCORD)
        done = await service.wait(submitted.id)
        assert done.status is CampaignStatus.PARTIAL and done.cost_usd == 0.03
        retried = await service.wait((await service.retry(done.id)).id)
        assert retried.status is CampaignStatus.SUCCEEDED
        entries = await audit_entries(service.store, campaign_id=done.id)
    finished_again, finished, first = entries  # newest first
    assert first.event is AuditEvent.SUBMITTED and first.cost_usd is None
    assert (first.who.requester, first.who.channel, first.who.guild) == (
        "discord:42",
        "discord:555",
        "discord:77",
    )
    assert first.theme == "retro cats" and first.estimate_usd == 0.04
    assert finished.event is AuditEvent.FINISHED and finished.reason == "partial"
    assert (finished.estimate_usd, finished.cost_usd) == (0.04, 0.03)
    assert finished_again.reason == "succeeded" and finished_again.cost_usd == 0.04


async def test_one_log_line_per_event(service_on, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="core")
    gen = GatedGenerator(open_all=True, fail={(0, "image")})
    async with service_on(gen) as service:
        request = CampaignRequest(theme="retro cats", products=2, videos=True)
        campaign = await service.wait((await service.submit(request)).id)
    events = [r for r in caplog.records if hasattr(r, "event")]
    steps = [r for r in events if r.event == "step.finished"]
    assert sorted((r.product, r.step, r.outcome) for r in steps) == [
        (0, "image", "failed"),
        (0, "video", "skipped"),
        (1, "image", "succeeded"),
        (1, "video", "succeeded"),
    ]
    assert all(r.campaign_id == campaign.id for r in steps)
    assert all(isinstance(r.duration_s, float) for r in steps if r.outcome == "succeeded")
    (submitted,) = [r for r in events if r.event == "campaign.submitted"]
    (finished,) = [r for r in events if r.event == "campaign.finished"]
    assert submitted.estimate_usd == 0.04 and submitted.campaign_id == campaign.id
    assert finished.outcome == "partial" and finished.cost_usd == 0.02
    assert finished.campaign_id == campaign.id and finished.duration_s is not None


def test_json_lines_have_the_fields_and_no_secrets() -> None:
    logger = logging.getLogger("test.audit.json")
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        1,
        "%s",
        ("calling with r8_abcdefghijklmnopqrstuvwxyz0123 and Bearer sometokenvalue123",),
        None,
        extra={"event": "step.finished", "campaign_id": "c1", "step": "image", "duration_s": 1.5},
    )
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["event"] == "step.finished" and data["campaign_id"] == "c1"
    assert data["step"] == "image" and data["duration_s"] == 1.5
    assert data["level"] == "INFO" and data["logger"] == "test.audit.json"
    assert data["ts"].endswith("+00:00")
    assert "r8_abc" not in line and "sometokenvalue" not in line and "[redacted]" in line


def test_configure_json_writes_one_object_per_line() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buffer = io.StringIO()
    try:
        configure("json", stream=buffer)
        log_event(logging.getLogger("test.audit"), "campaign.refused", "no", reason="quota")
        logging.getLogger("test.audit").debug("not at INFO")
        configure("text", stream=buffer)
        logging.getLogger("test.audit").info("hidden: text logs warnings unless verbose")
        with pytest.raises(ValueError, match="unknown log format"):
            configure("xml")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    (line,) = buffer.getvalue().splitlines()
    assert json.loads(line)["reason"] == "quota" and json.loads(line)["msg"] == "no"


async def test_campaigns_from_before_the_ledger_are_counted(tmp_path: Path) -> None:
    old = tmp_path / "v6"
    old.mkdir()
    for _version, path in migrations()[:6]:
        shutil.copy(path, old / path.name)
    async with aiosqlite.connect(tmp_path / "old.db", isolation_level=None) as db:
        assert await migrate(db, old) == 6
        for cid, requester, origin in (
            ("slack1", "slack:U1", {"platform": "slack", "channel": "C1", "ts": "1.2"}),
            ("disc1", "discord:42", DISCORD.to_json()),
            ("term1", None, {}),
        ):
            await db.execute(
                "INSERT INTO campaigns (id, theme, request_json, status, executor, generator,"
                " created_at, requester, origin_json) VALUES (?, 't', '{}', 'running', 'local',"
                " 'offline', 5.0, ?, ?)",
                (cid, requester, json.dumps(origin)),
            )
        await db.execute("UPDATE campaigns SET origin_json = 'not json' WHERE id = 'term1'")
    store = await SqliteStore.open(tmp_path / "old.db")  # V7 creates and fills the ledger
    try:
        rows = {e.campaign_id: e for e in await audit_entries(store)}
    finally:
        await store.close()
    assert {k: (e.event, e.who.channel, e.who.guild) for k, e in rows.items()} == {
        "slack1": (AuditEvent.SUBMITTED, "slack:C1", None),
        "disc1": (AuditEvent.SUBMITTED, "discord:555", "discord:77"),
        "term1": (AuditEvent.SUBMITTED, None, None),
    }
    with sqlite3.connect(tmp_path / "old.db") as db:
        assert db.execute("SELECT COUNT(*) FROM audit WHERE estimate_usd = 0").fetchone() == (3,)
