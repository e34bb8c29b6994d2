"""The code keeps the shape CONVENTIONS.md asks for: short functions, small modules, and
one module that reads the environment.

Read with `ast` from the production packages (not tests or benchmarks).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
READS_ENV = re.compile(r"\bos\.environ\b|\bgetenv\(")


def production_files() -> list[Path]:
    """bot.py and every module of bot/, core/, storage/ and adapters/."""
    packages = ("bot", "core", "storage", "adapters")
    return [ROOT / "bot.py", *(p for d in packages for p in sorted((ROOT / d).rglob("*.py")))]


def long_functions(path: Path, limit: int) -> list[str]:
    """`file:name (lines)` of every function longer than `limit` lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    return [
        f"{where}:{node.name} ({node.end_lineno - node.lineno + 1})"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_no_production_function_is_over_60_lines() -> None:
    files = production_files()
    assert len(files) > 100  # the scan really read the packages
    assert [f for path in files for f in long_functions(path, MAX_FUNCTION_LINES)] == []


def test_no_production_module_is_over_400_lines() -> None:
    sizes = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in production_files()}
    assert {str(p.relative_to(ROOT)): n for p, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_only_the_settings_model_reads_the_environment() -> None:
    readers = [
        str(p.relative_to(ROOT))
        for p in production_files()
        if READS_ENV.search(p.read_text(encoding="utf-8"))
    ]
    assert readers == ["bot/settings.py"]


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    body = "\n".join(f"    x = {i}" for i in range(61))
    sample.write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n")
    found = long_functions(sample, MAX_FUNCTION_LINES)
    assert len(found) == 1 and found[0].endswith(":long (62)")
    assert READS_ENV.search("value = os.environ['X']") and not READS_ENV.search("environ")
