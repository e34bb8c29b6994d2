"""Numbered schema migrations: storage/migrations/V{n}__{desc}.sql.

The applied version is SQLite's `PRAGMA user_version`. It is read inside the
same `BEGIN IMMEDIATE` transaction that applies the pending files and bumps it,
so several processes opening a new database at once migrate it exactly once:
the first holds the write lock, the others wait (busy_timeout) and then find
nothing left to do.
"""

from __future__ import annotations

import re
import sqlite3
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
    found = migrations(folder)
    latest = found[-1][0] if found else 0
    if await _version(db) >= latest:  # up to date: no write lock (a frozen writer can't block)
        return latest
    await db.execute("BEGIN IMMEDIATE")  # the version is read again under the write lock
    try:
        current = await _version(db)
        for version, path in found:
            if version <= current:
                continue
            for statement in statements(path.read_text(encoding="utf-8")):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {version}")
            current = version
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")
    return current


async def _version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def statements(script: str) -> list[str]:
    """The SQL statements of a script, split where SQLite says one is complete."""
    found, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip():
        found.append(pending.strip())
    return [s for s in found if s]
