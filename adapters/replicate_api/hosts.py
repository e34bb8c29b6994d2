"""Which hosts outputs may be downloaded from: names and `*.domain` patterns.

Kept apart from downloads.py (which loads httpx) so the settings can check
REPLICATE_OUTPUT_HOSTS without loading an HTTP client.
"""

from __future__ import annotations

from collections.abc import Iterable

OUTPUT_HOSTS = ("replicate.delivery", "*.replicate.delivery")


def host_patterns(raw: Iterable[str]) -> tuple[str, ...]:
    """Normalized host names (`cdn.example.com`) or subdomain patterns (`*.example.com`)."""
    patterns: list[str] = []
    for item in raw:
        name = item.strip().lower().rstrip(".")
        bare = name.removeprefix("*.")
        if not bare or any(c in bare for c in "/:@*?#[] ") or bare.startswith("."):
            raise ValueError(f"{item!r} is not a host name or *.domain pattern")
        patterns.append(name)
    return tuple(dict.fromkeys(patterns))


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether `host` is one of the names, or a subdomain of a `*.domain` pattern."""
    name = host.lower().rstrip(".")
    return any(
        name.endswith(p[1:]) and len(name) > len(p) - 1 if p.startswith("*.") else name == p
        for p in patterns
    )
