"""The dependency rules (DESIGN.md): core/ imports nothing outward, no import cycles,
and the adapter families do not import each other.

Imports are read with `ast`, every one of them: at module level, inside
functions and under `if TYPE_CHECKING:` (a cycle hidden there is still a
cycle in the design).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
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
PACKAGES = ("core", "adapters", "storage", "bot")
FAMILIES = ("adapters.replicate_api", "adapters.ray_exec", "adapters.offline")
SHARED_ADAPTERS = ("adapters.files", "adapters.pictures", "adapters.local_executor")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def module_name(path: Path, root: Path) -> str:
    """`core/run.py` -> `core.run`, `bot/chat/__init__.py` -> `bot.chat`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path, known: set[str]) -> set[str]:
    """The project modules a file imports, each as the most specific module that exists."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(m for t in targets if (m := _existing(t, known)) is not None)
    found.discard(name)
    return found


def _absolute(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - level + 1])
    return f"{base}.{module}" if module else base


def _existing(target: str, known: set[str]) -> str | None:
    """`target` or its nearest enclosing module that is a project module."""
    while target:
        if target in known:
            return target
        target = target.rpartition(".")[0]
    return None


def import_graph(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports, for every .py file under `packages`."""
    files = [p for package in packages for p in sorted((root / package).rglob("*.py"))]
    known = {module_name(p, root) for p in files}
    return {module_name(p, root): imported_modules(p, root, known) for p in files}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other, round or not (Tarjan's SCCs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def family_crossings(graph: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """Imports from an adapter family into any other adapter but the shared ones."""
    crossings: dict[str, list[str]] = {}
    for module, imported in graph.items():
        own = next((f for f in FAMILIES if _within(module, f)), None)
        if own is None:
            continue
        allowed = (own, *SHARED_ADAPTERS)
        bad = sorted(
            m
            for m in imported
            if _within(m, "adapters")
            and m != "adapters"
            and not any(_within(m, a) for a in allowed)
        )
        if bad:
            crossings[module] = bad
    return crossings


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


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


def test_no_import_cycles() -> None:
    graph = import_graph(ROOT)
    assert {"core.service", "core.run", "storage.sqlite_store", "bot.chat"} <= graph.keys()
    assert "core.run" in graph["core.service_context"]  # the graph really holds the imports
    assert cycles(graph) == []


def test_adapter_families_do_not_import_each_other() -> None:
    graph = import_graph(ROOT, ["adapters"])
    assert any(m.startswith(f"{FAMILIES[0]}.") for m in graph)  # the families were read
    assert family_crossings(graph) == {}


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_finds_a_planted_cycle(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/a.py": "from core.b import B\n",
            "core/b.py": "from . import c\n",
            "core/c.py": "def f():\n    from core import a\n",  # lazy imports count too
            "core/d.py": "import core.a\n",  # imports into the cycle: not part of it
            "bot/__init__.py": "",
            "bot/x.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bot.y\n",
            "bot/y.py": "from bot.x import thing\n",
        },
    )
    graph = import_graph(tmp_path, ["core", "bot"])
    assert graph["core.b"] == {"core.c"} and graph["core.d"] == {"core.a"}
    assert cycles(graph) == [["bot.x", "bot.y"], ["core.a", "core.b", "core.c"]]
    del graph["core.c"]
    assert cycles(graph) == [["bot.x", "bot.y"]]


def test_the_checker_finds_a_family_crossing(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "adapters/__init__.py": "",
            "adapters/files.py": "",
            "adapters/pictures/__init__.py": "",
            "adapters/pictures/sheet.py": "",
            "adapters/offline/__init__.py": "",
            "adapters/offline/generator.py": (
                "from adapters.files import save\nfrom adapters.pictures.sheet import draw\n"
                "from adapters.offline import ken_burns\nfrom core.ports import Generator\n"
            ),
            "adapters/offline/ken_burns.py": "import adapters.render\n",  # not a shared one
            "adapters/render.py": "",
            "adapters/ray_exec/__init__.py": "",
            "adapters/ray_exec/executor.py": "from ..offline.generator import OfflineGenerator\n",
        },
    )
    graph = import_graph(tmp_path, ["adapters"])
    assert family_crossings(graph) == {
        "adapters.offline.ken_burns": ["adapters.render"],
        "adapters.ray_exec.executor": ["adapters.offline.generator"],
    }
