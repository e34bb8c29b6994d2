"""A psycopg 3 async pool shared by every part of the PostgreSQL store.

Each transaction takes a connection of its own from the pool: writes in
`write` (READ COMMITTED; the parts lock what they check), reads of several
statements in `read` (REPEATABLE READ, read only: one snapshot), one
statement in `select`. Like the SQLite store's, every transaction completes
even if its caller is cancelled. The URL is a secret: only its redacted form
(`postgresql://user:***@host:port/db`) appears in errors and reprs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
from psycopg.cursor_async import AsyncCursor
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from core.errors import CampaignNotFound, ConfigError

T = TypeVar("T")
Query = str  # every statement of the store is text
DB_NOW = "extract(epoch FROM clock_timestamp())::double precision"  # the database's clock
CONNECT_TIMEOUT_S = 10
POOL_SIZE = 8


def redact(url: str) -> str:
    """The URL without its password (in the user part or the query): safe to log and show."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = urlencode(
        [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="*"
    )
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def scrub(text: str, url: str) -> str:
    """`text` with the URL's password, wherever it appears, replaced by ***."""
    secrets = [urlsplit(url).password or ""]
    secrets += [v for k, v in parse_qsl(urlsplit(url).query) if k == "password"]
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return text


def unavailable(url: str, exc: BaseException) -> ConfigError:
    """A ConfigError naming the database by its redacted URL, with psycopg's reason scrubbed."""
    text = str(exc).strip()
    reason = scrub(text.splitlines()[0] if text else type(exc).__name__, url)
    return ConfigError(f"PostgreSQL database {redact(url)} is unavailable: {reason}")


async def connect(url: str, *, autocommit: bool = True) -> psycopg.AsyncConnection[Any]:
    """One connection outside the pool (migrations, LISTEN); ConfigError if it fails."""
    try:
        return await psycopg.AsyncConnection.connect(
            url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S
        )
    except psycopg.Error as exc:
        raise unavailable(url, exc) from None


class Row:
    """One result row, by position (`row[0]`) or by column name (`row["id"]`)."""

    __slots__ = ("_names", "_values")

    def __init__(self, values: Sequence[Any], names: dict[str, int]) -> None:
        self._values = tuple(values)
        self._names = names

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._names[key] if isinstance(key, str) else key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def by_name(cursor: AsyncCursor[Any]) -> Callable[[Sequence[Any]], Row]:
    """psycopg row factory: rows readable by position and by column name."""
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, names)


class Tx:
    """One open transaction: the raw statements the parts run inside `write` and `read`."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def rows(self, query: Query, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """The rows of one statement."""
        async with self.conn.cursor(row_factory=by_name) as cur:
            await cur.execute(query, params)
            return list(await cur.fetchall())

    async def row(self, query: Query, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        """The first row of one statement, or None."""
        found = await self.rows(query, params)
        return found[0] if found else None

    async def execute(self, query: Query, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one statement; the rows it changed."""
        cur = await self.conn.execute(query, params)
        return cur.rowcount


Work = Callable[[Tx], Awaitable[T]]


class PgConnection:
    """The store's pool and the transactions every part runs on it."""

    def __init__(self, pool: AsyncConnectionPool[Any], url: str) -> None:
        self._pool = pool
        self._url = url
        self.display = redact(url)  # what logs and status lines may show
        self._pending: set[asyncio.Future[Any]] = set()

    @classmethod
    async def open(cls, url: str, max_size: int = POOL_SIZE) -> PgConnection:
        """A pool on the database at `url` (ConfigError, redacted, if it cannot connect)."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            open=False,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S},
            name="campaign-store",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (psycopg.Error, PoolTimeout) as exc:
            await pool.close()
            raise unavailable(url, exc) from None
        return cls(pool, url)

    @property
    def url(self) -> str:
        """The secret URL itself (for the listener's own connection); never log it."""
        return self._url

    def __repr__(self) -> str:
        return f"PgConnection({self.display})"

    async def close(self) -> None:
        """Finish transactions in flight, then close the pool."""
        if self._pending:
            await asyncio.wait(self._pending)
        await self._pool.close()

    async def write(self, work: Work[T]) -> T:
        """Run `work` in a READ COMMITTED transaction, completed even if the caller is cancelled."""
        return await self._shielded(self._transaction(work, None))

    async def read(self, work: Work[T]) -> T:
        """Run `work`'s reads in one snapshot (REPEATABLE READ, read only)."""
        return await self._shielded(
            self._transaction(work, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        )

    async def select(self, query: Query, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """The rows of one SELECT."""
        return await self.write(lambda tx: tx.rows(query, params))

    async def select_one(
        self, query: Query, params: Sequence[Any] | dict[str, Any] = ()
    ) -> Row | None:
        """The first row of one SELECT, or None."""
        found = await self.select(query, params)
        return found[0] if found else None

    async def update(self, query: Query, params: tuple[Any, ...]) -> None:
        """One statement on a campaign row; the last parameter is the campaign id."""
        if await self.write(lambda tx: tx.execute(query, params)) == 0:
            raise CampaignNotFound(str(params[-1]))

    async def _shielded(self, transaction: Awaitable[T]) -> T:
        task = asyncio.ensure_future(transaction)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        task.add_done_callback(_settled)
        return await asyncio.shield(task)

    async def _transaction(self, work: Work[T], setup: str | None) -> T:
        async with self._pool.connection() as conn, conn.transaction():
            if setup is not None:
                await conn.execute(setup)
            return await work(Tx(conn))


def _settled(task: asyncio.Future[Any]) -> None:
    """Retrieve a transaction's outcome: its caller may have been cancelled meanwhile (shield)."""
    if not task.cancelled():
        task.exception()


class PgPart:
    """One port's part of the store, on the shared pool; `clock` is the hosts' clock (epoch s)
    that callers' times come from (lease times are turned into the database's)."""

    def __init__(self, conn: PgConnection, clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._clock = clock
