"""What may be animated as an uploaded image: PNG, JPEG or WebP, up to MAX_UPLOAD_BYTES.

One rule for every front end: the terminal checks a file's size before reading it,
Discord an attachment's size and declared type before downloading it, and the
service the bytes themselves (by content, not name) before anything is stored:
`checked()` is that last check, and names the upload for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from core.errors import InvalidRequest
from core.request import UNSAFE_CHARS

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
ALLOWED = f"a PNG, JPEG or WebP image up to {MAX_UPLOAD_BYTES // 2**20} MB"
MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
_MAGIC = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg", b"RIFF": ".webp"}


def check_size(size: int) -> None:
    """InvalidRequest if an upload of `size` bytes is too large."""
    if size > MAX_UPLOAD_BYTES:
        raise InvalidRequest("image", f"is too large ({size / 2**20:.1f} MB)", ALLOWED)


def check_media_type(declared: str | None) -> None:
    """InvalidRequest if a declared content type (e.g. `image/gif`) is not an allowed one."""
    kind = (declared or "").split(";")[0].strip().lower()
    if kind and kind not in MEDIA_TYPES:
        raise InvalidRequest("image", f"is not a PNG, JPEG or WebP image ({kind})", ALLOWED)


def image_suffix(data: bytes) -> str:
    """The file suffix of an allowed image, judged by its content; else InvalidRequest."""
    check_size(len(data))
    for magic, suffix in _MAGIC.items():
        if data.startswith(magic) and (suffix != ".webp" or data[8:12] == b"WEBP"):
            return suffix
    raise InvalidRequest("image", "is not a PNG, JPEG or WebP image", ALLOWED)


@dataclass(frozen=True)
class Upload:
    """An image the service may animate: its bytes, file suffix and display name."""

    data: bytes
    suffix: str  # ".png", ".jpg" or ".webp", judged by content
    stem: str  # the file name's stem without unsafe characters, for the theme and title


def checked(data: bytes, name: str) -> Upload:
    """The upload of `data` (file name `name`, only shown), or InvalidRequest."""
    suffix = image_suffix(data)
    stem = UNSAFE_CHARS.sub("", PurePath(name).stem).strip()[:80] or "image"
    return Upload(data, suffix, stem)
