"""Where a file too big to upload can be fetched instead.

Both front ends link an oversize file the same way: under the served data
folder (`<files_base_url>/campaigns/<id>/<name>`) when one is configured,
else a signed, expiring gallery link (`/files/<id>/<name>`), else nothing.
Names are percent-encoded, so a space, `#` or `?` cannot cut the link short.
"""

from __future__ import annotations

from urllib.parse import quote

from bot.gallery import GallerySettings


def file_link(
    campaign_id: str,
    name: str,
    *,
    files_base_url: str | None,
    gallery: GallerySettings | None = None,
) -> str | None:
    """A link to one of the campaign's files, or None when nothing serves them."""
    if files_base_url:
        return f"{files_base_url}/campaigns/{quote(campaign_id, safe='')}/{quote(name, safe='')}"
    if gallery is not None:  # the gallery percent-encodes the path it signs
        return gallery.link(f"/files/{campaign_id}/{name}")
    return None
