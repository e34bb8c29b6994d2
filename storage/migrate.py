"""Numbered schema migrations: storage/migrations/V{n}__{desc}.sql.

The applied version is SQLite's `PRAGMA user_version`; each pending file runs
in its own transaction together with the version bump.
"""

from __future__ import annotations

import re
from pathlib import Path

import aiosqlite

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^V(\d+)__[\w-]+\.sql$")


def migrations(folder: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    """(version, file) pairs in order; versions must be 1, 2, 3, ..."""
    found = sorted(
        (int(m.group(1)), path) for path in folder.iterdir() if (m := _NAME.match(path.name))
    )
    versions = [v for v, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be 1..n without gaps, got {versions}")
    return found


async def migrate(db: aiosqlite.Connection, folder: Path = MIGRATIONS_DIR) -> int:
    """Apply pending migrations; returns the schema version now in force."""
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    current = int(row[0]) if row else 0
    for version, path in migrations(folder):
        if version <= current:
            continue
        script = path.read_text(encoding="utf-8")
        await db.executescript(
            f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;"
        )
        current = version
    return current
