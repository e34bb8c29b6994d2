"""The CLI on Ray, end to end in subprocesses: a local Ray, and Ray made unavailable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

# Runs bot.py with `import ray` impossible, as on a machine without Ray.
WITHOUT_RAY = """
import importlib.abc, runpy, sys
class NoRay(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, NoRay())
sys.argv = ["bot.py", *sys.argv[1:]]
runpy.run_path("bot.py", run_name="__main__")
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "REPLICATE_", "RAY_"))
    }
    env.update(
        CAMPAIGN_DATA_DIR=str(tmp_path / "data"),
        CAMPAIGN_DB=str(tmp_path / "c.db"),
        CAMPAIGN_VIDEO_SECONDS="1",
        CAMPAIGN_RAY_CPUS="2",
        **extra,
    )
    return env


def _run(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def test_run_on_ray_records_the_node_of_every_step(tmp_path: Path) -> None:
    request = 'theme:"space dogs" products:2 videos:yes'
    result = _run(tmp_path, sys.executable, "bot.py", "run", request, "--executor", "ray", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["executor"]) == ("succeeded", "ray")
    show = _run(tmp_path, sys.executable, "bot.py", "show", summary["id"], "--json")
    assert show.returncode == 0, show.stderr
    steps = [s for p in json.loads(show.stdout)["products"] for s in p["steps"]]
    assert [s["name"] for s in steps] == ["image", "video", "image", "video"]
    for step in steps:
        assert step["status"] == "succeeded"
        assert len(step["worker"]) == 56  # a Ray node id (hex), not "local"
        int(step["worker"], 16)


def test_without_ray_the_cli_says_so_and_runs_locally(tmp_path: Path) -> None:
    request = "theme:owls products:1"
    argv = (sys.executable, "-c", WITHOUT_RAY, "run", request, "--executor", "ray", "--json")
    result = _run(tmp_path, *argv)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["executor"] == "local"
    assert result.stderr.strip().splitlines() == [
        "warning: Ray unavailable: Ray is not installed; running on the local executor instead"
    ]


def test_auto_with_a_silent_address_falls_back_within_ten_seconds(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never speaks Ray
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = _run(
            tmp_path,
            sys.executable,
            "bot.py",
            "run",
            "theme:owls products:1",
            "--json",
            RAY_ADDRESS=address,
            CAMPAIGN_RAY_CONNECT_TIMEOUT="3",
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["executor"] == "local"
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1
    assert f"no connection to RAY_ADDRESS={address} within 3 s" in warning[0]
    assert elapsed < 60  # (the fallback itself is bounded by the connect timeout)
