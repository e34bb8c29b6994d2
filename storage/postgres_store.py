"""CampaignStore on PostgreSQL (several replicas on several hosts), with psycopg 3's pool.

`PostgresStore` is what the composition root opens and closes: the parts of
`storage.postgres`, one per port, over one shared `PgConnection`, plus the
listener that brings cancel requests from other replicas at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from pydantic import SecretStr

from storage.postgres.connection import POOL_SIZE, PgConnection, connect, unavailable
from storage.postgres.leases import PgLeases
from storage.postgres.ledger import PgLedger
from storage.postgres.migrate import migrate
from storage.postgres.notices import PREDICTIONS, CancelNotices
from storage.postgres.provider_cache import PgProviderCache
from storage.postgres.records import PgRecords
from storage.postgres.schedule import PostgresSchedule
from storage.postgres.shared import PgShared


class PostgresStore(PgRecords, PgLeases, PgLedger, PgProviderCache, PgShared):
    """Durable campaigns in a PostgreSQL database: every port's part on one pool."""

    def __init__(self, conn: PgConnection, clock: Callable[[], float] = time.time) -> None:
        super().__init__(conn, clock)
        self.notices = CancelNotices(conn.url)

    @classmethod
    async def open(
        cls, url: str, *, clock: Callable[[], float] = time.time, pool_size: int = POOL_SIZE
    ) -> PostgresStore:
        """Migrate the database at `url` (under a lock: replicas may start at once), open a
        pool on it. ConfigError, with the URL redacted, if it cannot."""
        conn = await connect(url)
        async with conn:
            try:
                await migrate(conn)
            except psycopg.Error as exc:
                raise unavailable(url, exc) from None
        return cls(await PgConnection.open(url, pool_size), clock)

    @property
    def display(self) -> str:
        """The database's URL without its password."""
        return self._conn.display

    def __repr__(self) -> str:
        return f"PostgresStore({self.display})"

    def create_schedule(self) -> PostgresSchedule:
        """The account's create schedule in this database, for any process that reaches it (it
        pickles as the secret URL; see storage/schedule.py)."""
        return PostgresSchedule(SecretStr(self._conn.url))

    async def ping(self) -> str:
        """For /readyz: "writable" when the database answers and is not a read-only standby."""
        row = await self._conn.select_one("SELECT pg_is_in_recovery()")
        if row is None or row[0]:
            raise RuntimeError(f"database {self.display} is read-only (a standby)")
        return "writable"

    async def wait_cancel(self, campaign_id: str, timeout_s: float) -> None:
        """Return after `timeout_s`, or at once when another process asks to cancel it."""
        await self.notices.wait_cancel(campaign_id, timeout_s)

    def on_predictions(self, nudge: Callable[[str], None]) -> None:
        """Call `nudge(prediction_id)` when another replica received its webhook."""
        self.notices.on_prediction = nudge
        self.notices.start()

    async def announce_prediction(self, prediction_id: str) -> None:
        """A webhook no step here waits for: tell the replica whose step does (NOTIFY)."""
        await self._conn.write(
            lambda tx: tx.execute("SELECT pg_notify(%s, %s)", (PREDICTIONS, prediction_id))
        )

    async def close(self) -> None:
        """Stop listening, finish transactions in flight, close the pool."""
        await self.notices.close()
        await self._conn.close()
