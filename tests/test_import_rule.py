"""The dependency rule: core/ imports nothing outward (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "discord",
    "slack_bolt",
    "slack_sdk",
    "replicate",
    "ray",
    "aiosqlite",
    "aiohttp",
    "httpx",
    "rich",
    "PIL",
    "imageio_ffmpeg",
    "bot",
    "storage",
    "adapters",
    "tests",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_nothing_outward() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN)
        for path in sorted((ROOT / "core").rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert len(offenders) >= 8  # the check really looked at the core modules


def test_storage_and_adapters_do_not_import_front_ends() -> None:
    for folder in ("storage", "adapters"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not _imports(path) & {"bot", "discord", "slack_bolt"}, path


def test_the_checker_sees_forbidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import ray\nfrom storage.sqlite_store import SqliteStore\n")
    assert _imports(sample) & FORBIDDEN == {"ray", "storage"}
