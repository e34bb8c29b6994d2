"""One upload rule for every front end (core/uploads.py)."""

from __future__ import annotations

import pytest

from core import uploads
from core.errors import InvalidRequest

PNG = b"\x89PNG\r\n\x1a\n" + bytes(16)


def test_size_type_and_content_are_checked_with_one_wording() -> None:
    uploads.check_size(uploads.MAX_UPLOAD_BYTES)  # the limit itself is allowed
    with pytest.raises(InvalidRequest, match=r"image: is too large \(20.0 MB\)") as big:
        uploads.check_size(uploads.MAX_UPLOAD_BYTES + 1)
    assert big.value.allowed == "a PNG, JPEG or WebP image up to 20 MB" == uploads.ALLOWED
    uploads.check_media_type("image/png; charset=binary")
    uploads.check_media_type(None)  # not declared: the content decides
    with pytest.raises(InvalidRequest, match=r"not a PNG, JPEG or WebP image \(image/gif\)"):
        uploads.check_media_type("image/gif")
    assert uploads.image_suffix(PNG) == ".png"
    assert uploads.image_suffix(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == ".webp"
    with pytest.raises(InvalidRequest, match="not a PNG, JPEG or WebP image"):
        uploads.image_suffix(b"RIFF\x00\x00\x00\x00WAVEfmt ")  # a RIFF that is no WebP


def test_checked_names_the_upload_by_content_and_a_safe_stem() -> None:
    upload = uploads.checked(PNG, "dir/my\u202ecat.png")
    assert (upload.data, upload.suffix, upload.stem) == (PNG, ".png", "mycat")
    assert uploads.checked(PNG, " .png").stem == "image"  # nothing left to show
    with pytest.raises(InvalidRequest, match="not a PNG, JPEG or WebP image"):
        uploads.checked(b"GIF89a", "cat.png")  # the name does not decide
