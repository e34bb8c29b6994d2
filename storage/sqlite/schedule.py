"""The create schedule of a SQLite store, for the processes of its host (see storage/schedule.py).

It travels as the file's path. A process of another host (a Ray actor on another
node) finds no such file, or not the store's: it opens nothing (`mode=rw` never
creates a file), says so once and keeps its own create budget.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage.schedule import Opened, Schedule
from storage.sqlite.connection import Connection
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
            conn = await Connection.attach(self.path)
        except (sqlite3.Error, OSError) as exc:
            self.unavailable(str(self.path), str(exc))
            return None
        try:
            await conn.select("SELECT 1 FROM create_budget LIMIT 1")  # the store's, migrated
        except sqlite3.Error as exc:
            await conn.close()
            self.unavailable(str(self.path), str(exc))
            return None
        return Opened(SqliteShared(conn), conn.close)
