"""Provider documents kept across restarts (a port): a model's input schema, as last fetched.

The Replicate adapter's catalog reads and writes them through the store, so the bot
keeps working while the provider is away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CachedDoc:
    """A document a provider publishes (e.g. a model's input schema), as last fetched."""

    key: str  # what it describes, e.g. a model id
    version: str  # the provider's version id of it
    body: str  # the document, as JSON text
    checked_at: float  # when it was last compared with the provider (epoch s)


class ProviderCache(Protocol):
    """Provider documents kept across restarts, so the bot works while the provider is away."""

    async def cached(self, key: str) -> CachedDoc | None:
        """The stored document for `key`, if any."""
        ...

    async def cache(self, doc: CachedDoc) -> None:
        """Store (or replace) a document."""
        ...
