"""Choosing Ray: settings, and the quick fallback to the local executor."""

from __future__ import annotations

import importlib.util
import socket
import time
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from adapters.local_executor import LocalExecutor
from adapters.ray_exec.connect import open_ray_executor, unavailable_reason
from adapters.ray_exec.settings import RaySettings, gcs_endpoint
from bot.settings import AppSettings
from core.errors import ConfigError
from core.scheduler import Limits
from tests.fakes.file_gates import FileGatedGenerator

LIMITS = Limits(text=1, image=2, video=1, cpu=2)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_settings_from_env() -> None:
    settings = AppSettings.from_mapping(
        {
            "RAY_ADDRESS": " 10.0.0.5:6379 ",
            "CAMPAIGN_RAY_CPUS": "3",
            "CAMPAIGN_RAY_OBJECT_STORE_MB": "300",
            "CAMPAIGN_RAY_ACTORS": "1",
            "CAMPAIGN_RAY_CONNECT_TIMEOUT": "2.5",
        }
    ).ray
    assert settings == RaySettings(
        address="10.0.0.5:6379",
        num_cpus=3,
        object_store_mb=300,
        actors_per_kind=1,
        connect_timeout_s=2.5,
    )
    assert settings.init_kwargs()["address"] == "10.0.0.5:6379"
    assert "num_cpus" not in settings.init_kwargs()  # Ray refuses it when joining a cluster
    local = AppSettings.from_mapping({}).ray.init_kwargs()
    assert (local["address"], local["include_dashboard"]) == ("local", False)
    assert local["object_store_memory"] == 200 * 1024 * 1024


@pytest.mark.parametrize(
    ("name", "raw"), [("CAMPAIGN_RAY_CPUS", "0"), ("CAMPAIGN_RAY_CONNECT_TIMEOUT", "soon")]
)
def test_bad_settings_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}='{raw}' is invalid"):
        AppSettings.from_mapping({name: raw})


@pytest.mark.parametrize(
    ("address", "endpoint"),
    [
        ("10.0.0.5:6379", ("10.0.0.5", 6379)),
        ("ray://head:10001", ("head", 10001)),
        ("[::1]:6379", ("::1", 6379)),
        ("auto", None),
    ],
)
def test_gcs_endpoint(address: str, endpoint: tuple[str, int] | None) -> None:
    assert gcs_endpoint(address) == endpoint


async def test_ray_not_importable_falls_back_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def hide_ray(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "ray" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", hide_ray)
    lines: list[str] = []
    executor = await open_ray_executor(
        FileGatedGenerator(tmp_path), LIMITS, RaySettings(), lines.append
    )
    assert isinstance(executor, LocalExecutor)
    assert lines == ["Ray unavailable: Ray is not installed; running on the local executor instead"]


async def test_unreachable_address_falls_back_within_seconds(tmp_path: Path) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    lines: list[str] = []
    started = time.monotonic()
    executor = await open_ray_executor(
        FileGatedGenerator(tmp_path), LIMITS, RaySettings(address=address), lines.append
    )
    assert time.monotonic() - started < 10  # the bound; a bare ray.init hangs ~820 s
    assert isinstance(executor, LocalExecutor)
    assert len(lines) == 1
    assert f"nothing answers at RAY_ADDRESS={address}" in lines[0]
    assert lines[0].endswith("running on the local executor instead")


def test_reachable_port_passes_the_probe() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        assert unavailable_reason(RaySettings(address=address)) is None
