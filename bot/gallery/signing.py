"""Signed, expiring links: hex HMAC-SHA256 over "<path>\\n<exp>" (standard library only)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from urllib.parse import quote, urlencode

_SIG = re.compile(r"[0-9a-f]{64}")


def sign(secret: str, path: str, exp: int) -> str:
    """Hex HMAC-SHA256 of "<path>\\n<exp>"."""
    message = f"{path}\n{exp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_path(secret: str, path: str, exp: int) -> str:
    """`path?exp=...&sig=...` (the path percent-encoded, signed as decoded)."""
    return f"{quote(path)}?{urlencode({'exp': exp, 'sig': sign(secret, path, exp)})}"


def make_link(secret: str, base_url: str, path: str, ttl: float, now: float | None = None) -> str:
    """A link to `path` under `base_url` that works for `ttl` seconds from `now`."""
    exp = int((time.time() if now is None else now) + ttl)
    return base_url.rstrip("/") + signed_path(secret, path, exp)


def valid_until(secret: str, path: str, query: Mapping[str, str], now: float) -> int | None:
    """The link's expiry if its signature is right and it has not expired, else None."""
    exp_raw, sig = query.get("exp", ""), query.get("sig", "")
    if not exp_raw.isdigit() or len(exp_raw) > 12 or not _SIG.fullmatch(sig):
        return None
    exp = int(exp_raw)
    if not hmac.compare_digest(sign(secret, path, exp), sig) or exp <= now:
        return None
    return exp
