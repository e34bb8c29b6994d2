"""CampaignStore on one aiosqlite connection (WAL mode, one writer).

`SqliteStore` is what the composition root opens and closes: the parts of
`storage.sqlite`, one per port, over one shared `Connection`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from storage.sqlite.connection import Connection, existing_file
from storage.sqlite.leases import SqliteLeases
from storage.sqlite.ledger import SqliteLedger
from storage.sqlite.provider_cache import SqliteProviderCache
from storage.sqlite.records import SqliteRecords
from storage.sqlite.schedule import SqliteSchedule
from storage.sqlite.shared import SqliteShared

PING_BUSY_TIMEOUT_S = 2.0  # a writer holding the lock longer: not ready


class SqliteStore(SqliteRecords, SqliteLeases, SqliteLedger, SqliteProviderCache, SqliteShared):
    """Durable campaigns in a SQLite file: every port's part on one connection."""

    @classmethod
    async def open(cls, path: Path | str) -> SqliteStore:
        """Open (creating if needed) and migrate the database at path."""
        return cls(await Connection.open(path))

    @property
    def path(self) -> Path:
        """The database file."""
        return self._conn.path

    def create_schedule(self) -> SqliteSchedule:
        """The account's create schedule in this file, for any process of this host (it
        pickles as the path; see storage/schedule.py)."""
        return SqliteSchedule(self.path)

    async def wait_cancel(self, campaign_id: str, timeout_s: float) -> None:
        """Sleep `timeout_s`: SQLite has no notices, a cancel is seen by the keep-alive's poll."""
        await asyncio.sleep(timeout_s)

    async def ping(self, busy_timeout_s: float = PING_BUSY_TIMEOUT_S) -> str:
        """For /readyz: "writable" when the file exists and its write lock can be taken, on a
        connection of its own (a writer stuck elsewhere shows); never creates the file."""
        return await asyncio.to_thread(_probe, self.path, busy_timeout_s)

    def on_predictions(self, nudge: Callable[[str], None]) -> None:
        """Nothing: on one host the step that waits for a webhook gets it (or polls)."""

    async def announce_prediction(self, prediction_id: str) -> None:
        """Nothing to tell: see `on_predictions`."""

    async def close(self) -> None:
        """Finish transactions in flight, then close the connection."""
        await self._conn.close()


def _probe(path: Path, busy_timeout_s: float) -> str:
    db = sqlite3.connect(
        existing_file(path), uri=True, timeout=busy_timeout_s, isolation_level=None
    )  # never creates a missing file
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
    finally:
        db.close()
    return "writable"
