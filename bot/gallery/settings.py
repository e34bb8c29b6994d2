"""The gallery's environment: the CAMPAIGN_GALLERY_* variables (secret, URL, TTL)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.gallery.signing import make_link
from core.errors import ConfigError
from core.settings import env_value, positive_int

DEFAULT_TTL_S = 24 * 3600
MIN_SECRET_CHARS = 16


@dataclass(frozen=True)
class GallerySettings:
    """CAMPAIGN_GALLERY_SECRET, CAMPAIGN_GALLERY_URL and CAMPAIGN_GALLERY_TTL."""

    secret: str | None = field(default=None, repr=False)
    base_url: str | None = None  # public URL of the gallery, e.g. https://bot.example.com/gallery
    ttl_s: int = DEFAULT_TTL_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GallerySettings:
        """Read and check the gallery's variables."""
        env = os.environ if env is None else env
        secret = env.get("CAMPAIGN_GALLERY_SECRET", "").strip() or None
        if secret is not None and len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"CAMPAIGN_GALLERY_SECRET is too short: use at least {MIN_SECRET_CHARS}"
                " random characters (e.g. `python -c 'import secrets;"
                " print(secrets.token_urlsafe(32))'`)"
            )
        base_url = env.get("CAMPAIGN_GALLERY_URL", "").strip().rstrip("/") or None
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"CAMPAIGN_GALLERY_URL={base_url!r} is invalid: must be an http(s) URL"
            )
        ttl = env_value(env, "CAMPAIGN_GALLERY_TTL", positive_int, DEFAULT_TTL_S)
        return cls(secret=secret, base_url=base_url, ttl_s=ttl)

    def link(self, path: str, now: float | None = None) -> str | None:
        """A signed link to `path` (e.g. /campaigns/<id>); None unless secret and URL are set."""
        if not self.secret or not self.base_url:
            return None
        return make_link(self.secret, self.base_url, path, self.ttl_s, now)

    def campaign_link(self, campaign_id: str, now: float | None = None) -> str | None:
        """The signed link to one campaign's page, for a chat summary."""
        return self.link(f"/campaigns/{campaign_id}", now)
