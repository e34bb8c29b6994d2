"""Crashes and pauses of real `bot.py` processes against the fake Replicate API:
nothing is paid twice, nothing is cancelled that the next owner uses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.replicate import (
    TOKEN,
    FakeReplicate,
    Fault,
    TextTiming,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
)

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
REQUEST = 'theme:"crash cats" products:2 videos:yes'


def _env(tmp_path: Path, fake: FakeReplicate) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "REPLICATE_"))}
    env.pop("RAY_ADDRESS", None)
    env.update(
        CAMPAIGN_DATA_DIR=str(tmp_path / "data"),
        CAMPAIGN_DB=str(tmp_path / "c.db"),
        CAMPAIGN_EXECUTOR="local",
        CAMPAIGN_LEASE="2",
        REPLICATE_API_TOKEN=TOKEN,
        REPLICATE_BASE_URL=fake.base_url,
        REPLICATE_ALLOW_HTTP="1",
        REPLICATE_ALLOW_PRIVATE_OUTPUTS="1",  # the fake serves outputs on 127.0.0.1
        REPLICATE_PREFER_WAIT="1",
    )
    return env


async def _start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "bot.py",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(proc: asyncio.subprocess.Process, limit_s: float = 90) -> tuple[int, str]:
    _out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def _until(condition, what: str, limit_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(limit_s * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")


def _duplicates(fake: FakeReplicate) -> list[str]:
    inputs = Counter(json.dumps(p["input"], sort_keys=True) for p in fake.created())
    return [key for key, count in inputs.items() if count > 1]


def _campaign(tmp_path: Path) -> dict[str, object]:
    with sqlite3.connect(tmp_path / "c.db") as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM campaigns ORDER BY created_at DESC").fetchone()
        return dict(row)


def _plan_calls(tmp_path: Path) -> dict[str, dict[str, object]]:
    with sqlite3.connect(tmp_path / "c.db") as db:
        db.row_factory = sqlite3.Row
        return {row["part"]: dict(row) for row in db.execute("SELECT * FROM plan_calls")}


async def test_kill_between_create_and_stored_id_adopts_the_plan(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    fake.faults.append(Fault("stall_after"))  # the plan is made, its answer never comes
    env = _env(tmp_path, fake)
    run = await _start(env, "run", REQUEST, "--json")
    await _until(lambda: len(fake.created()) == 1, "the planning create")
    await _until(lambda: "outline" in _plan_calls(tmp_path), "the intent")
    run.kill()  # kill -9 while the create's answer is outstanding
    await run.wait()
    outline = _plan_calls(tmp_path)["outline"]
    assert outline["provider_id"] is None and outline["intent_at"] is not None
    assert _campaign(tmp_path)["status"] in ("pending", "running")
    code, err = await _finish(await _start(env, "resume", "--json"))
    assert code == 0, err
    assert _campaign(tmp_path)["status"] == "succeeded"
    assert _duplicates(fake) == [] and fake.cancels == []
    assert _plan_calls(tmp_path)["outline"]["provider_id"] == fake.created()[0]["id"]  # adopted
    assert len(fake.created()) == 1 + 2 + 2 + 2  # the outline, 2 details, 2 images, 2 videos


async def test_kill_while_the_plans_stream_pays_no_plan_twice(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    fake.text_timing = TextTiming(ttft_s=0.3, tokens_per_s=150.0)  # ~1 s for a product's details
    fake.latency.update(image=0.5, video=1.0)
    env = _env(tmp_path, fake)
    run = await _start(env, "run", REQUEST, "--json")
    llm = "meta/meta-llama-3-8b-instruct"
    await _until(lambda: len(fake.created("black-forest-labs/flux-schnell")) >= 1, "an image")
    writing = [p for p in fake.created(llm) if fake.predictions[p["id"]]["status"] != "succeeded"]
    run.kill()  # kill -9 with a product started and another's details still being written
    await run.wait()
    assert writing, "a plan was still streaming when the first image was created"
    planned = {part: row["provider_id"] for part, row in _plan_calls(tmp_path).items()}
    code, err = await _finish(await _start(env, "resume", "--json"))
    assert code == 0, err
    assert _campaign(tmp_path)["status"] == "succeeded"
    assert _duplicates(fake) == []
    after = {part: row["provider_id"] for part, row in _plan_calls(tmp_path).items()}
    assert {k: v for k, v in after.items() if k in planned and v} == {
        k: v for k, v in planned.items() if v
    }  # the stored planning predictions were read again, not paid again
    assert len(fake.created(llm)) == 3  # the outline, then each product's details: once
    assert len(fake.created()) == 3 + 2 + 2


async def test_a_paused_owner_stops_and_pays_nothing_after_its_lease(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    fake.latency.update(text=0.2, image=1.0, video=2.0)
    env = _env(tmp_path, fake)
    run = await _start(env, "run", REQUEST, "--json")
    await _until(lambda: len(fake.created("black-forest-labs/flux-schnell")) == 2, "the images")
    os.kill(run.pid, signal.SIGSTOP)  # paused with its videos still to create
    try:
        await asyncio.sleep(3.0)  # past the 2 s lease (a precondition, not an assertion)
        resume = await _start(env, "resume", "--json")
        await _until(
            lambda: str(_campaign(tmp_path)["owner"] or "").split(":")[1:2] != [str(run.pid)],
            "the take-over",
        )
    finally:
        os.kill(run.pid, signal.SIGCONT)
    _code, paused_err = await _finish(run)
    code, err = await _finish(resume)
    assert code == 0, err
    assert "Traceback" not in paused_err, paused_err
    assert _campaign(tmp_path)["status"] == "succeeded"
    assert _duplicates(fake) == [] and fake.cancels == []
    assert len(fake.created()) == 3 + 2 + 2  # the outline, 2 details, 2 images, 2 videos
