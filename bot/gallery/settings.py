"""The gallery's section of the settings: CAMPAIGN_GALLERY_SECRET, _URL and _TTL."""

from __future__ import annotations

from typing import Annotated

from pydantic import SecretStr, field_validator

from bot.gallery.signing import make_link
from core.errors import ConfigError
from core.setting_values import positive_int
from core.settings import Env, Section, reveal

DEFAULT_TTL_S = 24 * 3600
MIN_SECRET_CHARS = 16


def _base_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    return raw.rstrip("/")


class GallerySettings(Section):
    """Signed links to the gallery: the key, the public URL and how long a link works."""

    secret: Annotated[SecretStr | None, Env("CAMPAIGN_GALLERY_SECRET")] = None
    # Public URL of the gallery, e.g. https://bot.example.com/gallery.
    base_url: Annotated[str | None, Env("CAMPAIGN_GALLERY_URL", _base_url)] = None
    ttl_s: Annotated[int, Env("CAMPAIGN_GALLERY_TTL", positive_int)] = DEFAULT_TTL_S

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"CAMPAIGN_GALLERY_SECRET is too short: use at least {MIN_SECRET_CHARS}"
                " random characters (e.g. `python -c 'import secrets;"
                " print(secrets.token_urlsafe(32))'`)"
            )
        return secret

    def link(self, path: str, now: float | None = None) -> str | None:
        """A signed link to `path` (e.g. /campaigns/<id>); None unless secret and URL are set."""
        if self.secret is None or not self.base_url:
            return None
        return make_link(reveal(self.secret), self.base_url, path, self.ttl_s, now)

    def campaign_link(self, campaign_id: str, now: float | None = None) -> str | None:
        """The signed link to one campaign's page, for a chat summary."""
        return self.link(f"/campaigns/{campaign_id}", now)
