"""A read-only web gallery of the stored campaigns, reached by signed, expiring links.

    GET /campaigns              newest first: status, cost, requester, origin platform
    GET /campaigns/<id>         contact sheet, every product's image and video,
                                plans, steps and a timeline
    GET /files/<id>/<name>      a file the campaign's database record names

Every request needs `exp` (a Unix time) and `sig` (hex HMAC-SHA256 with
CAMPAIGN_GALLERY_SECRET over "<path>\\n<exp>") in its query: no link, a
wrong signature or an expired one gets 403 and lists nothing. The links a
page shows (to campaign pages and files) are signed with that page's own
expiry, so a link never opens more than it was given for, nor for longer.

Files: `<name>` is looked up among the file names the campaign's record
holds (its steps' outputs and its contact sheet); the path served is the
recorded one, never built from the URL, and must lie inside the data
folder. Everything a user typed (theme, audience, names, errors) is
HTML-escaped; pages carry no script and a strict Content-Security-Policy.

`make_link(secret, base_url, path, ttl)` makes a link; `GallerySettings.link`
does it from the environment for the chat front ends.

The package, by job:
    settings.py   GallerySettings: the CAMPAIGN_GALLERY_* variables
    signing.py    sign, check and make links (standard library only)
    render.py     the pages' HTML from templates/*.html (Jinja2, autoescape)
    server.py     the aiohttp routes, files, and `bot.py gallery`

The settings and signing names load with the package; the server's names
load on first use, so the chat front ends and the CLI's other commands
import neither aiohttp nor Jinja2 for a link.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bot.gallery.settings import DEFAULT_TTL_S, MIN_SECRET_CHARS, GallerySettings
from bot.gallery.signing import make_link, sign, signed_path, valid_until

if TYPE_CHECKING:
    from bot.gallery.server import (
        PAGE_HEADERS,
        CampaignReader,
        Gallery,
        add_gallery_routes,
        campaign_files,
        serve_gallery,
        serving_gallery,
    )

__all__ = [
    "DEFAULT_TTL_S",
    "MIN_SECRET_CHARS",
    "PAGE_HEADERS",
    "CampaignReader",
    "Gallery",
    "GallerySettings",
    "add_gallery_routes",
    "campaign_files",
    "make_link",
    "serve_gallery",
    "serving_gallery",
    "sign",
    "signed_path",
    "valid_until",
]

_SERVER_NAMES = frozenset(
    {
        "PAGE_HEADERS",
        "CampaignReader",
        "Gallery",
        "add_gallery_routes",
        "campaign_files",
        "serve_gallery",
        "serving_gallery",
    }
)


def __getattr__(name: str) -> Any:
    """The server's names, imported (with aiohttp and Jinja2) when first asked for."""
    if name not in _SERVER_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("bot.gallery.server"), name)
    globals()[name] = value
    return value
