"""The audit table as an operator reads it: sqlite3 on the database file (or psql's
PostgreSQL), newest first.

The bot only writes audit lines (and `usage` sums them); the tests read them back
here rather than through a store method nothing else calls.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

from core.quotas import AuditEntry
from storage import rows


async def audit_entries(
    store: Any, campaign_id: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """The newest audit lines first (only one campaign's, if given)."""
    where, params = (
        ("WHERE campaign_id = ?", (campaign_id, limit)) if campaign_id else ("", (limit,))
    )
    query = f"SELECT * FROM audit {where} ORDER BY at DESC, id DESC LIMIT ?"
    if not hasattr(store, "path"):  # a PostgresStore: the same query on its own connection
        found = await store._conn.select(query.replace("?", "%s"), params)
        return [rows.audit(row) for row in found]
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        db.row_factory = sqlite3.Row
        return [rows.audit(row) for row in db.execute(query, params)]
