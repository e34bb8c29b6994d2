"""One aiosqlite connection (WAL mode, one writer) shared by every part of the store.

Every statement runs under one lock, so nothing lands inside another
coroutine's open transaction: writes in `write` (BEGIN IMMEDIATE ... COMMIT),
reads of several statements in `read` (BEGIN ... COMMIT: one snapshot), and a
read of one statement in `select` (atomic by itself in autocommit mode). Each
completes even if its caller is cancelled: a BEGIN sent is always followed by
its COMMIT or ROLLBACK. Inside `work`, use the raw `rows`, `row` and
`execute`, which take no lock.

Every statement is a trip to aiosqlite's thread and back, and under load the
trip, not the statement, is the cost (~0.5 ms against ~0.02 ms). `batched`
writes of one kind that wait together go as one `executemany` (group commit):
twenty products saving their steps at once take one trip, not twenty. `together`
does the same for writes of several statements (a product and its steps): the
ones waiting meanwhile share one transaction, a trip per kind of statement.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from core.errors import CampaignNotFound
from storage.migrate import migrate

T = TypeVar("T")
Statements = Sequence[tuple[str, Sequence[Any]]]  # (sql, parameters), in order
OPEN_ATTEMPTS = 5


class Connection:
    """The store's one connection and the transactions every part runs on it."""

    def __init__(self, db: aiosqlite.Connection, path: Path | str = ":memory:") -> None:
        self.db = db
        self.path = Path(path)  # the database file, for the readiness check and operators
        # One connection is shared by every coroutine: a statement must never land
        # inside another coroutine's open transaction.
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Future[Any]] = set()
        # writes waiting for their trip: by statement (`batched`), None for `together`
        self._waiting: dict[str | None, list[tuple[Any, asyncio.Future[Any]]]] = {}

    @classmethod
    async def open(cls, path: Path | str) -> Connection:
        """Open (creating if needed) and migrate the database at path."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA busy_timeout = 5000")  # others may be opening it too
            for attempt in range(1, OPEN_ATTEMPTS + 1):
                try:
                    await _prepare(db)
                    break
                except sqlite3.OperationalError as exc:
                    # Switching a new file to WAL can fail at once ("database is locked",
                    # no busy wait) while another process does the same: try again.
                    if "locked" not in str(exc) or attempt == OPEN_ATTEMPTS:
                        raise
                    await asyncio.sleep(0.05 * attempt)
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    @classmethod
    async def attach(cls, path: Path | str) -> Connection:
        """Another connection to the store's existing file at `path` (never creates one:
        `mode=rw`, no migration); sqlite3.Error if it cannot be opened here."""
        db = await aiosqlite.connect(existing_file(path), uri=True, isolation_level=None)
        try:
            await db.execute("PRAGMA busy_timeout = 5000")  # the store writes there too
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        """Finish transactions in flight, then close the connection."""
        if self._pending:
            await asyncio.wait(self._pending)
        await self.db.close()

    async def write(self, work: Callable[[], Awaitable[T]], *, atomic: bool = True) -> T:
        """Run `work` in a write transaction that completes even if the caller is cancelled.

        `atomic=False`: `work` is one statement (atomic by itself in autocommit
        mode) or opens its own transaction: no BEGIN/COMMIT round trips.
        """
        return await self._shielded(self._transaction(work, atomic))

    async def read(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work`'s reads in one transaction (one snapshot), completed even if the caller
        is cancelled: a BEGIN sent is always followed by its COMMIT."""
        return await self._shielded(self._transaction(work, begin="BEGIN"))

    async def batched(self, sql: str, params: Sequence[Any]) -> int:
        """One single-statement write that changes at most one row; the rows it changed.

        The writes of the same `sql` that wait for the connection meanwhile go
        together in one `executemany` (each its own autocommit statement). It
        completes even if the caller is cancelled.
        """
        changed: int = await self._join(sql, tuple(params), lambda rows: self._send_rows(sql, rows))
        return changed

    async def together(self, statements: Statements) -> None:
        """Write `statements` atomically, in one transaction with those of the callers
        waiting meanwhile (whose statements come in the same order of kinds); completes
        even if the caller is cancelled. If that transaction fails, each caller's
        statements are written on their own, so only a failing caller sees its error."""
        await self._join(None, statements, self._send_statements)

    async def _join(
        self, key: str | None, item: Any, send: Callable[[list[Any]], Awaitable[list[Any]]]
    ) -> Any:
        """Wait for `item` to be sent with the others of `key` that wait meanwhile: `send`
        gets them all, under the lock, and returns each one's outcome (a result, or the
        error that caller gets)."""
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = []
            self._keep(asyncio.ensure_future(self._send_waiting(key, send)))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiting.append((item, done))
        return await asyncio.shield(done)

    async def _send_waiting(
        self, key: str | None, send: Callable[[list[Any]], Awaitable[list[Any]]]
    ) -> None:
        async with self._lock:
            group = self._waiting.pop(key)  # later ones start the next group
            outcomes: list[Any] = []
            try:
                outcomes = await send([item for item, _ in group])
            except BaseException as exc:
                outcomes = [exc] * len(group)
                raise
            finally:
                for (_, done), outcome in zip(group, outcomes, strict=True):
                    if done.done():
                        continue
                    if isinstance(outcome, BaseException):
                        done.set_exception(outcome)
                    else:
                        done.set_result(outcome)

    async def _send_rows(self, sql: str, rows: list[Any]) -> list[int]:
        """Raw, under the lock: `sql` for each row in one `executemany`; the rows each changed."""
        if (await self.db.executemany(sql, rows)).rowcount == len(rows):
            return [1] * len(rows)  # each changed its one row
        return [await self.execute(sql, p) for p in rows]  # which did not? each again, alone

    async def _send_statements(self, groups: list[Statements]) -> list[sqlite3.Error | None]:
        """Raw, under the lock: every caller's statements in one transaction (an
        `executemany` per kind); if it fails, each caller's in a transaction of its own."""
        merged: dict[str, list[Sequence[Any]]] = {}  # by kind, in first-seen order
        for statements in groups:
            for sql, params in statements:
                merged.setdefault(sql, []).append(tuple(params))
        try:
            await self._in_transaction(list(merged.items()), many=True)
            return [None] * len(groups)
        except sqlite3.Error:
            outcomes: list[sqlite3.Error | None] = []
            for statements in groups:  # one by one: whose statements failed?
                try:
                    await self._in_transaction(statements)
                    outcomes.append(None)
                except sqlite3.Error as exc:
                    outcomes.append(exc)
            return outcomes

    async def _in_transaction(
        self, statements: Sequence[tuple[str, Any]], many: bool = False
    ) -> None:
        """Raw, under the lock: BEGIN IMMEDIATE, the statements (each `executemany` when
        `many`), COMMIT; ROLLBACK if one fails."""
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                if many:
                    await self.db.executemany(sql, params)
                else:
                    await self.db.execute(sql, tuple(params))
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise
        await self.db.execute("COMMIT")

    async def select(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one SELECT, run under the lock (one statement: its own snapshot)."""
        return await self._shielded(self._transaction(lambda: self.rows(sql, params), False))

    async def select_one(self, sql: str, params: Sequence[Any] = ()) -> Any | None:
        """The first row of one SELECT (see `select`), or None."""
        found = await self.select(sql, params)
        return found[0] if found else None

    async def update(self, sql: str, params: tuple[Any, ...]) -> None:
        """One UPDATE of a campaign row, written; the last parameter is the campaign id."""
        if await self.write(lambda: self.execute(sql, params)) == 0:
            raise CampaignNotFound(str(params[-1]))

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Raw, for use inside `work`: the rows of one statement (one trip to the
        connection's thread, not three: under load each trip waits its turn)."""
        return list(await self.db.execute_fetchall(sql, tuple(params)))

    async def row(self, sql: str, params: Sequence[Any] = ()) -> Any | None:
        """Raw, for use inside `work`: the first row of one statement, or None."""
        found = await self.rows(sql, params)
        return found[0] if found else None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Raw, for use inside `work`: run one statement; the rows it changed."""
        cur = await self.db.execute(sql, tuple(params))
        return cur.rowcount

    async def _shielded(self, transaction: Awaitable[T]) -> T:
        return await asyncio.shield(self._keep(asyncio.ensure_future(transaction)))

    def _keep(self, task: asyncio.Future[T]) -> asyncio.Future[T]:
        """Track `task` until it ends (`close` waits for it; its outcome is retrieved)."""
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        task.add_done_callback(_settled)
        return task

    async def _transaction(
        self, work: Callable[[], Awaitable[T]], atomic: bool = True, begin: str = "BEGIN IMMEDIATE"
    ) -> T:
        async with self._lock:
            if not atomic:
                return await work()
            await self.db.execute(begin)
            try:
                result = await work()
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")
            return result


def existing_file(path: Path | str) -> str:
    """The URI that opens the file at `path` read-write only if it exists (never creates it)."""
    return f"{Path(path).resolve().as_uri()}?mode=rw"


class Part:
    """One port's part of the store, on the shared connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn


async def _prepare(db: aiosqlite.Connection) -> None:
    """WAL mode, the other pragmas, and the migrations."""
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
        await db.execute(f"PRAGMA {pragma}")
    await migrate(db)


def _settled(task: asyncio.Future[Any]) -> None:
    """Retrieve a transaction's outcome: its caller may have been cancelled meanwhile (shield)."""
    if not task.cancelled():
        task.exception()
