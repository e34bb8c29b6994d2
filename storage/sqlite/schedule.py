"""The create schedule of a SQLite store, for the processes of its host (see storage/schedule.py).

It travels as the file's path. A process of another host (a Ray actor on another
node) finds no such file, or not the store's: it opens nothing (`mode=rw` never
creates a file), says so once and keeps its own create budget.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from storage.schedule import Opened, Schedule
from storage.sqlite.connection import Connection, existing_file
from storage.sqlite.shared import SqliteShared


class SqliteSchedule(Schedule):
    """The account's create schedule in the SQLite file at `path`."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SqliteSchedule({str(self.path)!r})"

    async def _open(self) -> Opened | None:
        try:
            # Checked with plain sqlite3 first: an aiosqlite connect that fails leaves its
            # thread to finish later, on a loop that may be closed by then.
            await asyncio.to_thread(_check, self.path)
        except (sqlite3.Error, OSError) as exc:
            self.unavailable(str(self.path), str(exc))
            return None
        conn = await Connection.attach(self.path)
        return Opened(SqliteShared(conn), conn.close)


def _check(path: Path) -> None:
    """The file exists here and is the store's (migrated: it has the schedule's table)."""
    db = sqlite3.connect(existing_file(path), uri=True, isolation_level=None)
    try:
        db.execute("SELECT 1 FROM create_budget LIMIT 1")
    finally:
        db.close()
