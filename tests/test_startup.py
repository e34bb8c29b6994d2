"""Commands load only what they need: reading campaigns starts no adapter or chat library;
and the loop they run on."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import event_loop

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("aiohttp", "httpx", "replicate", "discord", "slack_bolt", "ray", "PIL", "jinja2")
SETTINGS = ("pydantic", "pydantic_settings")  # read after the arguments: not for --version
PROBE = """
import json, runpy, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["bot.py", *json.loads(sys.argv[1])]
code = None
try:
    runpy.run_path("bot.py", run_name="__main__")
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in heavy if m in sys.modules)
print(json.dumps({"code": code, "loaded": loaded}))
"""


@pytest.mark.parametrize(
    ("args", "code", "heavy"),
    [
        (["--version"], 0, HEAVY + SETTINGS),
        (["history", "--json"], 0, HEAVY),
        (["show", "nope1234"], 1, HEAVY),
        (["usage"], 0, HEAVY),
        (["cancel", "nope1234"], 1, HEAVY),
    ],
)
def test_reading_commands_load_no_adapter_or_chat_library(
    tmp_path: Path, args: list[str], code: int, heavy: tuple[str, ...]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "REPLICATE_"))}
    env |= {
        "REPLICATE_API_TOKEN": "r8_not-used",  # set, as in production: still nothing loads
        "CAMPAIGN_DB": str(tmp_path / "c.db"),
        "CAMPAIGN_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(heavy)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["code"], result["loaded"]) == (code, []), done.stderr


WORKERS = """
import json, runpy, sys
from multiprocessing import forkserver
sys.argv = ["bot.py", *json.loads(sys.argv[1])]
code = None
try:
    runpy.run_path("bot.py", run_name="__main__")
except SystemExit as exc:
    code = exc.code
# the local executor's workers are forked by the forkserver: it runs once they were started
print(json.dumps({"code": code, "workers": forkserver._forkserver._forkserver_pid is not None}))
"""


@pytest.mark.parametrize(
    ("args", "workers"),
    [(["history"], False), (["show", "nope1234"], False), (["resume"], True)],
)
def test_only_commands_that_run_campaigns_start_the_cpu_workers(
    tmp_path: Path, args: list[str], workers: bool
) -> None:
    # `resume` with nothing to resume draws nothing: its workers started with the command
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "REPLICATE_"))}
    env |= {"CAMPAIGN_DB": str(tmp_path / "c.db"), "CAMPAIGN_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-c", WORKERS, json.dumps(args)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["workers"] is workers, done.stderr


POOL = """
import asyncio, multiprocessing, os, sys, time
from adapters.local_executor import LocalExecutor
from core.scheduler import Limits
from tests.fakes import GatedGenerator

async def main():
    executor = LocalExecutor(GatedGenerator(), Limits(cpu=2))
    executor.warm()
    await executor.run_cpu(os.getpid)  # after the warm-up: every worker is up
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    time.sleep(120)

asyncio.run(main())
"""


def _gone(pid: int) -> bool:
    """Whether a process has exited (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def test_cpu_workers_exit_when_their_process_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", POOL],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the killed process's resource tracker complains
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            workers = [int(p) for p in proc.stdout.readline().split()]
            assert len(workers) == 2 and not any(_gone(p) for p in workers)
        finally:
            proc.kill()  # -9: no cleanup of its own
    deadline = time.monotonic() + 30
    while not all(_gone(p) for p in workers):  # they see their parent's pipe close
        assert time.monotonic() < deadline, "orphaned workers still run"
        time.sleep(0.05)


def test_the_bot_runs_on_uvloop_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(loop_module()).startswith("uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # not installed here: asyncio's loop
    assert event_loop.run(loop_module()).startswith("asyncio")
