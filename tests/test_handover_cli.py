"""Stops that hand over, and `resume` that says what it does: bot.py in subprocesses.

SIGTERM hands a `run` over (nothing cancelled at the provider, lease released)
and `resume` finishes it; Ctrl-C still cancels; a second signal exits 130 at
once; `resume` lists what live processes hold, takes a killed process's
campaign at once, and `--wait` waits for a live holder to let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.replicate import (
    TOKEN,
    FakeReplicate,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
)

ROOT = Path(__file__).resolve().parent.parent
VIDEO_MODEL = "bytedance/seedance-1-lite"
pytestmark = pytest.mark.slow


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAMPAIGN_", "REPLICATE_", "RAY_", "SLACK_", "DISCORD_"))
    }
    env.update(
        CAMPAIGN_DATA_DIR=str(tmp_path / "data"),
        CAMPAIGN_DB=str(tmp_path / "c.db"),
        CAMPAIGN_EXECUTOR="local",
        CAMPAIGN_GENERATOR="offline",
        CAMPAIGN_VIDEO_SECONDS="2",
        CAMPAIGN_LIMIT_CPU="1",
    )
    env.update(extra)
    return env


def _replicate_env(tmp_path: Path, fake: FakeReplicate) -> dict[str, str]:
    return _env(
        tmp_path,
        CAMPAIGN_GENERATOR="replicate",
        REPLICATE_API_TOKEN=TOKEN,
        REPLICATE_BASE_URL=fake.base_url,
        REPLICATE_ALLOW_HTTP="1",
        REPLICATE_ALLOW_PRIVATE_OUTPUTS="1",  # the fake serves outputs on 127.0.0.1
        REPLICATE_POLL_MIN="0.05",
        REPLICATE_POLL_MAX="0.3",
        REPLICATE_PREFER_WAIT="1",
    )


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "bot.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bot.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _acli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """bot.py without blocking the event loop (the fake Replicate lives in it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "bot.py", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 110)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _rows(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as conn:
            return list(conn.execute(sql, params).fetchall())
    except sqlite3.OperationalError:  # the schema is still being created
        return []


def _steps(db: Path, status: str, name: str | None = None) -> int:
    sql = "SELECT count(*) FROM steps WHERE status = ?" + (" AND name = ?" if name else "")
    found = _rows(db, sql, status, *([name] if name else []))
    return int(found[0][0]) if found else 0


def _lease(db: Path) -> tuple[str, str, str | None, float | None]:
    """(id, status, owner, heartbeat_at) of the only campaign."""
    (row,) = _rows(db, "SELECT id, status, owner, heartbeat_at FROM campaigns")
    return row[0], row[1], row[2], row[3]


def _wait_until(
    check: Callable[[], bool], proc: subprocess.Popen[str], limit_s: float = 60
) -> None:
    """Poll `check` while `proc` still runs (bounded)."""
    deadline = time.monotonic() + limit_s
    while not check():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


async def _await_until(check: Callable[[], bool], limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(0.05)


def _family(pid: int) -> list[int]:
    """The live descendants of `pid` (its forkserver, pool workers, resource tracker)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def kill_9(proc: subprocess.Popen[Any]) -> None:
    """A crash: SIGKILL, no cleanup; then end the helpers it leaves behind."""
    family = _family(proc.pid)
    proc.kill()
    proc.wait(timeout=30)
    for pid in family:  # they hold its stdout and stderr open
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if proc.stdout is not None:
        proc.communicate(timeout=30)


def test_sigterm_hands_a_run_over_and_resume_finishes_it(tmp_path: Path) -> None:
    env, db = _env(tmp_path), tmp_path / "c.db"
    proc = _start(env, "run", "handed cats products:3 videos:yes", "--json")
    _wait_until(lambda: _steps(db, "succeeded") >= 1, proc)  # some done, the rest to do
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    cid = summary["id"]
    assert summary["status"] == "running"
    assert f'stopped: campaign {cid} handed over; run "python bot.py resume"' in err
    assert "Traceback" not in err
    assert _lease(db) == (cid, "running", None, 0.0)  # released: free for the next process
    assert _steps(db, "canceled") == 0
    done_before = _steps(db, "succeeded")
    shown = json.loads(_cli(env, "show", cid, "--json").stdout)
    assert shown["status"] == "running"

    result = _cli(env, "resume", "--json")  # at once: no lease to wait out
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (resumed,) = report["resumed"]
    assert (resumed["id"], resumed["status"], resumed["platform"]) == (cid, "succeeded", "terminal")
    assert report["held"] == [] and report["nothing_to_do"] is False
    assert all(Path(p["video"]).exists() for p in resumed["products"])
    assert resumed["reel"] and Path(resumed["reel"]).exists()  # resume waits for its reel too
    attempts = [r[0] for r in _rows(db, "SELECT attempts FROM steps WHERE status = 'succeeded'")]
    assert len(attempts) == 6 and attempts.count(1) >= done_before  # finished work not redone

    again = _cli(env, "resume")
    assert again.returncode == 0 and "nothing to resume" in again.stdout
    assert json.loads(_cli(env, "resume", "--json").stdout) == {
        "resumed": [],
        "held": [],
        "finished_elsewhere": [],
        "nothing_to_do": True,
        "reels": [],
    }


async def test_a_handed_over_replicate_run_cancels_nothing_and_pays_once(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    fake.latency["video"] = 600.0  # the videos are still being made when the deploy comes
    env, db = _replicate_env(tmp_path, fake), tmp_path / "c.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "bot.py", "run", 'theme:"deploy cats" products:2 videos:yes', "--json",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        stored = "SELECT count(*) FROM steps WHERE name = 'video' AND provider_id IS NOT NULL"
        await _await_until(
            lambda: len(fake.created(VIDEO_MODEL)) == 2 and _rows(db, stored) == [(2,)]
        )
        cid = _lease(db)[0]

        code, out, err = await _acli(env, "resume", "--json")  # its process is alive
        assert code == 0, err
        report = json.loads(out)
        assert report["resumed"] == [] and report["nothing_to_do"] is False
        (held,) = report["held"]
        assert (held["id"], held["platform"]) == (cid, "terminal")
        assert held["owner"].split(":")[1] == str(proc.pid) and 0 < held["free_in_s"] <= 10

        proc.send_signal(signal.SIGTERM)
        out_b, err_b = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130, err_b.decode()
    assert f"campaign {cid} handed over" in err_b.decode() and "Traceback" not in err_b.decode()
    assert json.loads(out_b)["status"] == "running"
    assert _lease(db) == (cid, "running", None, 0.0)
    assert fake.cancels == []  # a deploy cancels nothing at the provider

    fake.latency["video"] = 0.05  # the predictions it left running finish now
    code, out, err = await _acli(env, "resume", "--json")
    assert code == 0, err
    (resumed,) = json.loads(out)["resumed"]
    assert (resumed["id"], resumed["status"]) == (cid, "succeeded")
    assert fake.cancels == []
    assert len(fake.created()) == 7  # outline, 2 details, 2 images, 2 videos: nothing created twice
    ids = {r[0] for r in _rows(db, "SELECT provider_id FROM steps")}
    assert ids == {p["id"] for p in fake.created() if p["model"] != "meta/meta-llama-3-8b-instruct"}


def test_ctrl_c_still_cancels_and_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    env = _env(tmp_path, CAMPAIGN_VIDEO_SECONDS="120")  # the shutdown waits on a long render
    db = tmp_path / "c.db"
    proc = _start(env, "run", "twice cats products:1 videos:yes", "--json")
    _wait_until(lambda: _steps(db, "running", "video") == 1, proc)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: cancel my campaign...
    printed = _read_until(proc, "\n}\n")  # ...done and reported; the pool is still rendering
    assert _lease(db)[1] == "canceled"
    family = _family(proc.pid)
    proc.send_signal(signal.SIGINT)  # impatient: a second Ctrl-C
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "second signal" in err and "Traceback" not in err
    assert json.loads(printed + out)["status"] == "canceled"
    for pid in family:  # nothing it started keeps rendering
        _wait_gone(pid)
    assert _finished_videos(tmp_path / "data") == []  # the 120 s render was not waited for


def _finished_videos(data: Path) -> list[Path]:
    """Videos written out in full (a render in progress writes a hidden temp file)."""
    return [p for p in data.rglob("*.mp4") if not p.name.startswith(".")]


def _wait_gone(pid: int, limit_s: float = 15) -> None:
    deadline = time.monotonic() + limit_s
    while Path(f"/proc/{pid}").exists():
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
        if stat.rpartition(")")[2].split()[:1] == ["Z"]:
            return  # exited; its parent has not reaped it yet
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.05)


def test_resume_takes_a_killed_process_campaign_at_once(tmp_path: Path) -> None:
    env, db = _env(tmp_path), tmp_path / "c.db"
    proc = _start(env, "run", "crashed cats products:2 videos:yes", "--json")
    _wait_until(lambda: _steps(db, "succeeded") >= 1, proc)
    kill_9(proc)
    cid, status, owner, beat = _lease(db)
    assert status == "running" and owner and owner.split(":")[1] == str(proc.pid)
    assert beat and beat > time.time() - 10  # its lease has not lapsed: its pid is gone
    result = _cli(env, "resume", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(c["id"], c["status"]) for c in report["resumed"]] == [(cid, "succeeded")]
    assert report["held"] == []


def test_resume_wait_waits_for_a_live_holder_and_ctrl_c_ends_the_wait(tmp_path: Path) -> None:
    env, db = _env(tmp_path, CAMPAIGN_VIDEO_SECONDS="4"), tmp_path / "c.db"
    holder = _start(env, "run", "waited cats products:2 videos:yes", "--json")
    started = [holder]
    try:
        _wait_until(lambda: _steps(db, "running") >= 1 and _lease(db)[2] is not None, holder)
        cid, _, owner, _ = _lease(db)
        assert owner and owner.split(":")[1] == str(holder.pid)

        impatient = _start(env, "resume", "--wait")
        started.append(impatient)
        said = _read_until(impatient, "waiting for 1 held campaign(s)")
        impatient.send_signal(signal.SIGINT)  # Ctrl-C ends the wait...
        out, err = impatient.communicate(timeout=30)
        assert impatient.returncode == 130, err
        assert "Traceback" not in err
        assert f"{cid} from terminal" in said and "held by a live process" in said
        assert _lease(db)[1:3] == ("running", owner)  # ...and leaves the holder alone

        waiting = _start(env, "resume", "--wait")
        started.append(waiting)
        seen = _read_until(waiting, "waiting for 1 held campaign(s)")
        holder.send_signal(signal.SIGTERM)  # a deploy: it lets go, the waiter takes over
        assert holder.wait(timeout=60) == 130
        out, err = waiting.communicate(timeout=100)
    finally:
        for proc in started:
            if proc.poll() is None:
                kill_9(proc)
            else:
                proc.communicate(timeout=30)  # closes its pipes
    assert waiting.returncode == 0, err
    out = seen + out
    assert f"resuming {cid} from terminal" in out
    assert f"Campaign {cid}: succeeded" in out
    assert _lease(db)[1] == "succeeded"


def _read_until(proc: subprocess.Popen[str], needle: str, limit_s: float = 60) -> str:
    """Read proc's stdout line by line until one contains `needle`; what was read."""
    assert proc.stdout is not None
    seen, deadline = "", time.monotonic() + limit_s
    while needle not in seen:
        line = proc.stdout.readline()
        assert line, f"{proc.args} ended early: {seen} {proc.communicate()[1]}"
        assert time.monotonic() < deadline, seen
        seen += line
    return seen


def test_resume_wait_ends_when_the_holder_finishes_the_campaign_itself(tmp_path: Path) -> None:
    env, db = _env(tmp_path, CAMPAIGN_VIDEO_SECONDS="8"), tmp_path / "c.db"
    holder = _start(env, "run", "busy cats products:1 videos:yes", "--json")
    _wait_until(lambda: _steps(db, "running", "video") == 1, holder)  # a long render begins
    waiting = _start(env, "resume", "--wait", "--json")
    out, err = waiting.communicate(timeout=100)  # returns once the holder is done
    holder_out, _ = holder.communicate(timeout=60)
    assert (holder.returncode, waiting.returncode) == (0, 0), err
    cid = json.loads(holder_out)["id"]
    report = json.loads(out)
    assert report["resumed"] == [] and report["held"] == []
    assert [(c["id"], c["status"]) for c in report["finished_elsewhere"]] == [(cid, "succeeded")]
    assert report["nothing_to_do"] is False
