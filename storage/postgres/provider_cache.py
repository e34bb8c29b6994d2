"""ProviderCache on the pool: provider documents kept across restarts."""

from __future__ import annotations

from core.provider_docs import CachedDoc
from storage.postgres.connection import PgPart


class PgProviderCache(PgPart):
    """Provider documents (e.g. model input schemas) as last fetched (ProviderCache)."""

    async def cached(self, key: str) -> CachedDoc | None:
        """The provider document stored for `key`."""
        row = await self._conn.select_one(
            "SELECT key, version, body, checked_at FROM provider_cache WHERE key = %s", (key,)
        )
        return CachedDoc(row[0], row[1], row[2], float(row[3])) if row else None

    async def cache(self, doc: CachedDoc) -> None:
        """Store or replace a provider document."""
        await self._conn.update(
            "INSERT INTO provider_cache (key, version, body, checked_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (key) DO UPDATE SET version = excluded.version,"
            " body = excluded.body, checked_at = excluded.checked_at",
            (doc.key, doc.version, doc.body, doc.checked_at),
        )
