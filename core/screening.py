"""Screening before spend: a blocklist of words and patterns for a request's text.

Entries come from CAMPAIGN_BLOCKLIST (comma-separated) and CAMPAIGN_BLOCKLIST_FILE
(one entry per line; blank lines and lines starting with `#` are skipped). A plain
entry is a word or phrase, matched case-insensitively on word boundaries: `cat`
blocks "Cat food" but not "category"; the words of a phrase may be separated by
any whitespace. `re:<regex>` is a Python regular expression searched
case-insensitively anywhere in the text (put regexes with commas in the file).

Text is normalized before matching (Unicode NFKC, invisible format characters
such as zero-width spaces removed, casefolded), so full-width letters or a
zero-width space inside a word do not slip past.

What is screened: the theme and the audience, the only free text of a request.
The LLM planner's prompt (core/plan_json.py `plan_prompt`) is built from them
plus the style (a fixed choice) and the product count, and the offline
planner's templates likewise, so screening the request screens every prompt
the planner is given. Replicate's own safety checks (an NSFW image, say) still
fail only the product concerned.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.errors import RequestBlocked
from core.request import CampaignRequest

REGEX_PREFIX = "re:"
SCREENED_FIELDS = ("theme", "audience")


@dataclass(frozen=True)
class Blocklist:
    """Words, phrases and `re:` patterns that a request's text must not contain."""

    entries: tuple[str, ...] = field(default=(), repr=False)  # never shown to users
    _compiled: tuple[tuple[str, re.Pattern[str]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        compiled = tuple((entry, compile_entry(entry)) for entry in self.entries)
        object.__setattr__(self, "_compiled", compiled)

    @classmethod
    def parse(cls, text: str, *, sep: str = ",") -> Blocklist:
        """Entries separated by `sep` (a newline for files, where `#` lines are comments)."""
        return cls(tuple(parse_entries(text, sep=sep)))

    def __add__(self, other: Blocklist) -> Blocklist:
        return Blocklist(self.entries + other.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Blocklist({len(self.entries)} entries)"

    def match(self, text: str) -> str | None:
        """The first entry that `text` matches, or None."""
        if not self._compiled or not text:
            return None
        forms = _forms(text)
        for entry, pattern in self._compiled:
            if any(pattern.search(form) for form in forms):
                return entry
        return None

    def screen(self, request: CampaignRequest) -> None:
        """Raise RequestBlocked naming the first screened field that matches."""
        for name in SCREENED_FIELDS:
            value = getattr(request, name)
            entry = self.match(value) if isinstance(value, str) else None
            if entry is not None:
                raise RequestBlocked(name, entry)


def parse_entries(text: str, *, sep: str = ",") -> Iterable[str]:
    """The non-empty entries of a list; with sep="\\n", `#` lines are comments."""
    for raw in text.split(sep):
        entry = raw.strip()
        if entry and not (sep == "\n" and entry.startswith("#")):
            yield entry


def compile_entry(entry: str) -> re.Pattern[str]:
    """The pattern of one entry; ValueError for a bad regex or an empty entry."""
    if entry.startswith(REGEX_PREFIX):
        source = entry[len(REGEX_PREFIX) :]
        if not source:
            raise ValueError(f"empty pattern in entry {entry!r}")
        try:
            return re.compile(source, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"bad pattern {entry!r}: {exc}") from None
    words = normalize(entry).split()
    if not words:
        raise ValueError("empty entry")
    return re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)", re.IGNORECASE)


def normalize(text: str) -> str:
    """NFKC, without invisible format characters (zero-width space etc.), casefolded."""
    return _visible(text).casefold()


def _visible(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")


def _forms(text: str) -> tuple[str, ...]:
    """The text as words match it (casefolded) and as a regex sees it (case kept)."""
    visible = _visible(text)
    folded = visible.casefold()
    return (folded,) if folded == visible else (folded, visible)
