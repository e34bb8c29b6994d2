"""A real `ray start --head` cluster: the driver ships the code, the nodes need no checkout.

The head is started by the test (its own ports and temp dir, token auth off)
in a process group of its own, and stopped by signalling that group only
(`ray stop` would kill every Ray on the machine). The driver runs in a
subprocess whose script and working directory are a temp folder: it imports
the bot's code from the repository, but Ray's workers only find `adapters`
and `core` if the job ships them (runtime_env working_dir). The control run
with CAMPAIGN_RAY_SHIP_CODE=0 shows that they would not find them otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.ray_exec.settings import ROOT, SHIP_EXCLUDES, runtime_env
from bot.settings import AppSettings
from core.errors import ConfigError

RAY = Path(sys.executable).with_name("ray")
READY_LINE = "This command will now block forever"

DRIVER = textwrap.dedent(
    """
    import asyncio, json, os, sys
    sys.path.insert(1, sys.argv[1])  # the driver imports the bot's code; Ray never ships this

    from adapters.offline.generator import OfflineGenerator
    from adapters.ray_exec.executor import RayExecutor
    from bot.settings import AppSettings
    from core.model import ProductPlan, StepName
    from core.ports import StepHooks, StepJob
    from core.scheduler import Limits


    def where():  # pickled by value; runs in a worker of the cluster
        import adapters
        return {"adapters": adapters.__file__, "cwd": os.getcwd(), "files": os.listdir(".")}


    async def nothing(_value):
        return None


    async def main():
        executor = RayExecutor(
            OfflineGenerator(video_seconds=1),
            Limits(image=1, cpu=1),
            AppSettings.from_mapping(os.environ).ray,
        )
        try:
            await executor.start()
            found = await asyncio.wait_for(executor.run_cpu(where), 40)
            plan = ProductPlan(0, "Neon Mug", "mug", "Glow on", "a neon mug", "the mug spins")
            job = StepJob("c1", StepName.IMAGE, plan, "neon", 7, sys.argv[2])
            out = await asyncio.wait_for(
                executor.run_step(job, StepHooks(nothing, nothing)), 40
            )
            print(json.dumps({
                **found, "describe": executor.describe(), "path": out.path, "worker": out.worker
            }))
        finally:
            await executor.aclose()


    asyncio.run(main())
    """
)


def test_joining_a_cluster_ships_the_repository_without_secrets_or_data() -> None:
    kwargs = AppSettings.from_mapping({"RAY_ADDRESS": "10.0.0.5:6379"}).ray.init_kwargs()
    assert kwargs["runtime_env"] == {"working_dir": str(ROOT), "excludes": list(SHIP_EXCLUDES)}
    assert runtime_env()["working_dir"] == str(ROOT)
    assert (ROOT / "adapters" / "ray_exec" / "connect.py").is_file()  # ROOT: the repo
    for never in (".env", ".venv", "data", ".git", "docs", "tests", "__pycache__", "*.db"):
        assert never in SHIP_EXCLUDES


def test_shipping_can_be_turned_off_and_a_local_ray_ships_nothing() -> None:
    off = AppSettings.from_mapping({"RAY_ADDRESS": "h:1", "CAMPAIGN_RAY_SHIP_CODE": "0"}).ray
    assert not off.ship_code
    assert "runtime_env" not in off.init_kwargs()
    assert "runtime_env" not in AppSettings.from_mapping({}).ray.init_kwargs()
    with pytest.raises(ConfigError, match="CAMPAIGN_RAY_SHIP_CODE"):
        AppSettings.from_mapping({"CAMPAIGN_RAY_SHIP_CODE": "maybe"})


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without the bot's, Ray's or Python's path variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAMPAIGN_", "REPLICATE_", "RAY_")) and k != "PYTHONPATH"
    }
    env.update(RAY_AUTH_MODE="disabled", **extra)
    return env


@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[str]:
    """`ray start --head --block` on free ports; yields its address, then stops only it."""
    temp_dir = tempfile.mkdtemp(prefix="rayh", dir="/tmp")  # Ray's socket paths must be short
    port, dash, agent, agent_grpc, metrics, env_agent = _free_ports(6)
    command = [
        str(RAY),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--dashboard-port={dash}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={env_agent}",
        "--num-cpus=1",
        "--include-dashboard=false",
        f"--object-store-memory={100 * 1024 * 1024}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    log_path = tmp_path / "head.log"
    with log_path.open("w") as log:
        head = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=_clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped below, nothing else
        )
    try:
        deadline = time.monotonic() + 45
        while READY_LINE not in log_path.read_text(errors="replace"):
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()  # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=20)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # anything of ours still in its group
        shutil.rmtree(temp_dir, ignore_errors=True)


def _drive(tmp_path: Path, address: str, **env: str) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "driver"
    folder.mkdir(exist_ok=True)
    (folder / "driver.py").write_text(DRIVER)
    out = tmp_path / "out"
    return subprocess.run(
        [sys.executable, "driver.py", str(ROOT), str(out)],
        cwd=folder,  # neither the script's folder nor the cwd holds the bot's code
        env=_clean_env(RAY_ADDRESS=address, CAMPAIGN_RAY_CONNECT_TIMEOUT="20", **env),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.slow
def test_a_step_runs_on_a_real_cluster_from_the_shipped_code(ray_head: str, tmp_path: Path) -> None:
    result = _drive(tmp_path, ray_head)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["describe"] == "Ray cluster: 1 node, 1 CPUs"
    shipped = Path(found["cwd"])
    assert "working_dir_files" in shipped.parts  # Ray unpacked the job's package there
    assert Path(found["adapters"]).is_relative_to(shipped)  # imported from the shipped copy
    assert not Path(found["adapters"]).is_relative_to(ROOT)
    assert {"adapters", "core"} <= set(found["files"])
    assert not {".env", ".venv", "data", "tests", ".git"} & set(found["files"])
    image = Path(found["path"])
    assert image.is_relative_to(tmp_path / "out")  # written where the driver asked
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(found["worker"]) == 56  # the Ray node id, not "local"

    control = _drive(tmp_path, ray_head, CAMPAIGN_RAY_SHIP_CODE="0")
    assert control.returncode != 0
    assert "No module named 'adapters'" in control.stderr
