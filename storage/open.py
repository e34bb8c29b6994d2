"""Opening the store CAMPAIGN_DB names: a SQLite file, or (several replicas) PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from storage.sqlite_store import SqliteStore

if TYPE_CHECKING:  # pydantic loads with the settings, not with `bot.py --version`
    from core.settings import CoreSettings
    from storage.postgres_store import PostgresStore

Store: TypeAlias = "SqliteStore | PostgresStore"
"""Every port of the store (store_ports.CampaignStore, provider_docs.ProviderCache), plus
close()."""


async def open_store(settings: CoreSettings) -> Store:
    """The store the settings name, opened and migrated (ConfigError, the URL redacted, if a
    PostgreSQL database cannot be reached)."""
    if settings.database_url is not None:
        from storage.postgres_store import PostgresStore  # psycopg loads only for PostgreSQL

        return await PostgresStore.open(settings.database_url.get_secret_value())
    return await SqliteStore.open(settings.database)
