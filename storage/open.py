"""Opening the store CAMPAIGN_DB names: a SQLite file, or (several replicas) PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import ConfigError
from storage.sqlite_store import SqliteStore

if TYPE_CHECKING:  # pydantic loads with the settings, not with `bot.py --version`
    from core.settings import CoreSettings


async def open_store(settings: CoreSettings) -> SqliteStore:
    """The store the settings name, opened and migrated (PostgreSQL is refused until it lands)."""
    if settings.uses_postgres:
        raise ConfigError("CAMPAIGN_DB names a PostgreSQL database: this build uses SQLite only")
    return await SqliteStore.open(settings.database)
