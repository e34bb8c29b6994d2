"""CampaignStore on one aiosqlite connection (WAL mode, one writer).

`SqliteStore` is what the composition root opens and closes: the parts of
`storage.sqlite`, one per port, over one shared `Connection`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.sqlite.connection import Connection
from storage.sqlite.leases import SqliteLeases
from storage.sqlite.ledger import SqliteLedger
from storage.sqlite.provider_cache import SqliteProviderCache
from storage.sqlite.records import SqliteRecords


class SqliteStore(SqliteRecords, SqliteLeases, SqliteLedger, SqliteProviderCache):
    """Durable campaigns in a SQLite file: every port's part on one connection."""

    @classmethod
    async def open(cls, path: Path | str) -> SqliteStore:
        """Open (creating if needed) and migrate the database at path."""
        return cls(await Connection.open(path))

    @property
    def path(self) -> Path:
        """The database file."""
        return self._conn.path

    async def wait_cancel(self, campaign_id: str, timeout_s: float) -> None:
        """Sleep `timeout_s`: SQLite has no notices, a cancel is seen by the keep-alive's poll."""
        await asyncio.sleep(timeout_s)

    async def close(self) -> None:
        """Finish transactions in flight, then close the connection."""
        await self._conn.close()
