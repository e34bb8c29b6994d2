"""The create schedule of a PostgreSQL store, for any process that reaches the database
(see storage/schedule.py).

It travels as the database's URL, a secret (`SecretStr`): its repr and its warnings
show the URL redacted. Each event loop that reserves a slot opens a pool of one
connection of its own.
"""

from __future__ import annotations

from pydantic import SecretStr

from core.errors import ConfigError
from storage.postgres.connection import PgConnection, redact
from storage.postgres.shared import PgShared
from storage.schedule import Opened, Schedule


class PostgresSchedule(Schedule):
    """The account's create schedule in the PostgreSQL database at `url`."""

    def __init__(self, url: SecretStr) -> None:
        super().__init__()
        self.url = url

    def __repr__(self) -> str:
        return f"PostgresSchedule({redact(self.url.get_secret_value())})"

    async def _open(self) -> Opened | None:
        url = self.url.get_secret_value()
        try:
            conn = await PgConnection.open(url, max_size=1)
        except ConfigError as exc:  # its message names the URL redacted, the reason scrubbed
            self.unavailable("the PostgreSQL database", str(exc))
            return None
        return Opened(PgShared(conn), conn.close)
