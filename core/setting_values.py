"""How settings' text is read: the parsers every section's fields use, and the choices.

Pure functions of a string, raising ValueError with the reason a value is
refused (`Env` turns it into `NAME='value' is invalid: reason`); kept apart
from the pydantic sections so the command line can use the choices without
loading pydantic.
"""

from __future__ import annotations

import math
import re

EXECUTORS = ("auto", "local", "ray")
GENERATORS = ("auto", "offline", "replicate")


def positive_int(raw: str) -> int:
    """A whole number of at least 1."""
    value = int(raw)
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def whole(raw: str) -> int:
    """A whole number of at least 0."""
    value = int(raw)
    if value < 0:
        raise ValueError("must be a whole number of at least 0 (0 = unlimited)")
    return value


def dollars(raw: str) -> float:
    """US dollars, at least 0."""
    value = float(raw.removeprefix("$"))
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be an amount in US dollars of at least 0 (0 = unlimited)")
    return value


_REQUESTER_RE = re.compile(r"[a-z]+:[^\s,:]+")


def requester_ids(raw: str) -> frozenset[str]:
    """Requester ids with their platform, e.g. `slack:U123 discord:42` (comma or space)."""
    ids = frozenset(words(raw))
    bad = sorted(i for i in ids if not _REQUESTER_RE.fullmatch(i))
    if bad:
        raise ValueError(f"{bad[0]!r} needs its platform, e.g. slack:U123 or discord:42")
    return ids


def positive_float(raw: str) -> float:
    """A finite number above 0 (`inf` would make a timeout or an interval never end)."""
    value = float(raw)
    if not 0 < value < math.inf:
        raise ValueError("must be a finite number above 0")
    return value


def choice(raw: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed`, in any case."""
    word = raw.lower()
    if word not in allowed:
        raise ValueError(f"allowed: {', '.join(allowed)}")
    return word


def words(raw: str) -> list[str]:
    """A comma- or space-separated list (ids, hosts): never JSON."""
    return raw.replace(",", " ").split()


_YES = frozenset({"1", "yes", "true", "on"})
_NO = frozenset({"0", "no", "false", "off"})


def yes_no(raw: str) -> bool:
    """1/0, yes/no, true/false, on/off."""
    word = raw.lower()
    if word in _YES | _NO:
        return word in _YES
    raise ValueError("must be 1 or 0 (yes/no, true/false, on/off)")
