"""Numbered PostgreSQL migrations: storage/migrations/postgres/V{n}__{desc}.sql.

The applied versions are rows of `schema_version`. Every opener takes the
session advisory lock MIGRATION_LOCK first, so replicas starting at once
migrate a new database exactly once: the first applies the pending files
(each in its own transaction, with its version row), the others wait for the
lock and then find nothing left to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from storage.migrate import MIGRATIONS_DIR, migrations

POSTGRES_MIGRATIONS = MIGRATIONS_DIR / "postgres"
MIGRATION_LOCK = 1667329392  # "camp": one advisory lock key per database, for migrations


async def migrate(conn: psycopg.AsyncConnection[Any], folder: Path = POSTGRES_MIGRATIONS) -> int:
    """Apply pending migrations under the advisory lock; the schema version now in force."""
    found = migrations(folder)
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        row = await cur.fetchone()
        current = int(row[0]) if row else 0
        for version, path in found:
            if version <= current:
                continue
            async with conn.transaction():
                # no parameters: psycopg sends the file as one script (several statements)
                await conn.execute(sql.SQL(path.read_text(encoding="utf-8")))
                await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            current = version
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return current
