"""The CLI end to end, in subprocesses, on the offline generator and a temp database."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.test_handover_cli import kill_9

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "REPLICATE_"))}
    env.update(
        CAMPAIGN_DATA_DIR=str(tmp_path / "data"),
        CAMPAIGN_DB=str(tmp_path / "c.db"),
        CAMPAIGN_VIDEO_SECONDS="1",
    )
    return env


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bot.py", *args],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM campaigns").fetchone()[0])


def test_run_json_then_history_and_show(tmp_path: Path) -> None:
    result = _cli(
        tmp_path, "run", 'theme:"space dogs" products:2 videos:yes style:vintage', "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) >= {
        "id",
        "status",
        "theme",
        "executor",
        "generator",
        "elapsed_s",
        "reel_s",
        "cost_usd",
        "products",
    }
    assert (summary["status"], summary["theme"]) == ("succeeded", "space dogs")
    assert (summary["executor"], summary["generator"]) == ("local", "offline")
    assert [p["index"] for p in summary["products"]] == [0, 1]
    for product in summary["products"]:
        assert set(product) >= {"index", "name", "status", "image", "video", "error"}
        image, video = Path(product["image"]), Path(product["video"])
        assert image.is_absolute()
        assert video.is_absolute()
        assert image.parent == tmp_path / "data" / "campaigns" / summary["id"]
        with Image.open(image) as img:
            assert img.size == (1024, 1024)
        assert video.stat().st_size > 1000
    assert Path(summary["contact_sheet"]).exists()
    # `run` exits once the reel is written: the campaign's time ends at its last product,
    # the reel's own time after it
    reel = Path(summary["reel"])
    assert reel.exists() and isinstance(summary["reel_s"], float) and summary["reel_s"] >= 0

    history = _cli(tmp_path, "history", "--json")
    assert [c["id"] for c in json.loads(history.stdout)] == [summary["id"]]
    shown = json.loads(_cli(tmp_path, "show", summary["id"], "--json").stdout)
    steps = shown["products"][0]["steps"]
    last_product = max(s["finished_at"] for p in shown["products"] for s in p["steps"])
    assert last_product <= shown["finished_at"] <= reel.stat().st_mtime  # finished, then reel
    assert shown["finished_at"] - shown["started_at"] == pytest.approx(
        summary["elapsed_s"], abs=1e-3
    )
    assert [s["name"] for s in steps] == ["image", "video"]
    assert all(s["worker"] == "local" and s["attempts"] == 1 for s in steps)
    table = _cli(tmp_path, "history")
    assert summary["id"] in table.stdout


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("products:lots theme:cats", "products"),
        ("theme:cats prodcts:5", "did you mean products"),
        ("", "theme"),
        ("theme:cats products:21", "1-20"),
    ],
)
def test_invalid_request_exits_nonzero_and_stores_nothing(
    tmp_path: Path, text: str, needle: str
) -> None:
    result = _cli(tmp_path, "run", text, "--json")
    assert result.returncode == 2
    assert needle in result.stderr
    assert result.stdout == ""
    assert _count(tmp_path / "c.db") == 0
    assert not (tmp_path / "data" / "campaigns").exists()


def test_unknown_campaign_and_wrong_states(tmp_path: Path) -> None:
    missing = _cli(tmp_path, "show", "nope")
    assert missing.returncode == 1
    assert "no campaign" in missing.stderr
    done = json.loads(_cli(tmp_path, "run", "tiny test products:1", "--json").stdout)
    again = _cli(tmp_path, "cancel", done["id"])
    assert again.returncode == 1
    assert "already succeeded" in again.stderr
    retry = _cli(tmp_path, "retry", done["id"])
    assert retry.returncode == 1
    assert "already succeeded" in retry.stderr


def test_replicate_without_support_is_a_clear_error(tmp_path: Path) -> None:
    result = _cli(tmp_path, "run", "cats", "--generator", "replicate")
    assert result.returncode == 2
    assert "--generator offline" in result.stderr
    assert _count(tmp_path / "c.db") == 0


def test_ctrl_c_cancels_and_records_it(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    proc = subprocess.Popen(
        [sys.executable, "bot.py", "run", "interrupted products:8 videos:yes", "--json"],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while _running_steps(db) == 0:  # wait for real work to be under way
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["status"] == "canceled"
    with sqlite3.connect(db) as conn:
        statuses = {r[0] for r in conn.execute("SELECT status FROM steps")}
    assert "canceled" in statuses
    assert "running" not in statuses
    assert "pending" not in statuses


def _running_steps(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT count(*) FROM steps WHERE status = 'running'").fetchone()
    except sqlite3.OperationalError:  # the schema is still being created
        return 0
    return int(row[0])


def test_a_killed_run_is_finished_by_resume(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    env = {**_env(tmp_path), "CAMPAIGN_LIMIT_CPU": "1"}
    proc = subprocess.Popen(
        [sys.executable, "bot.py", "run", "crashy cats products:4 videos:yes", "--json"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while _steps(db, "succeeded") == 0:  # some work done, the rest still to do
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    kill_9(proc)  # a crash: no cleanup, the campaign stays "running"
    done_before = _steps(db, "succeeded")
    with sqlite3.connect(db) as conn:  # as if on another host: its lease has lapsed
        conn.execute(
            "UPDATE campaigns SET owner = 'elsewhere:1:x', heartbeat_at = 1,"
            " created_at = created_at - 60"
        )
    result = subprocess.run(
        [sys.executable, "bot.py", "resume", "--json"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["held"] == [] and report["nothing_to_do"] is False
    (summary,) = report["resumed"]
    assert (summary["status"], summary["platform"]) == ("succeeded", "terminal")
    assert all(Path(p["video"]).exists() for p in summary["products"])
    with sqlite3.connect(db) as conn:
        attempts = [
            r[0] for r in conn.execute("SELECT attempts FROM steps WHERE status = 'succeeded'")
        ]
    assert len(attempts) == 8
    assert attempts.count(1) >= done_before  # what was done before the crash was not redone


def test_resume_makes_a_reel_lost_to_a_crash_without_running_a_step(tmp_path: Path) -> None:
    done = json.loads(_cli(tmp_path, "run", "reel cats products:2 videos:yes", "--json").stdout)
    Path(done["reel"]).unlink()
    db = tmp_path / "c.db"
    with sqlite3.connect(db) as conn:  # as if its process died between summary and reel
        conn.execute("UPDATE campaigns SET reel = '', owner = 'elsewhere:1:x', heartbeat_at = 1")
        steps = conn.execute("SELECT name, attempts, finished_at FROM steps").fetchall()
    shown = json.loads(_cli(tmp_path, "show", done["id"], "--json").stdout)
    assert shown["status"] == "succeeded" and shown["reel"] is None  # owed, not shown
    result = _cli(tmp_path, "resume", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["resumed"] == [] and report["nothing_to_do"] is False
    (made,) = report["reels"]
    assert made["id"] == done["id"] and Path(made["reel"]).exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name, attempts, finished_at FROM steps").fetchall() == steps
    assert json.loads(_cli(tmp_path, "resume", "--json").stdout)["nothing_to_do"] is True


def _steps(db: Path, status: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT count(*) FROM steps WHERE status = ?", (status,)).fetchone()
    except sqlite3.OperationalError:  # the schema is still being created
        return 0
    return int(row[0])
