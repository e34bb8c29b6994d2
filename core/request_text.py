"""Reading a request's chat text into (field, value) pairs; core/request.py checks them.

Text grammar of `parse_request` (words are separated by whitespace):

    pair    key:value or key=value; keys are case-insensitive. `key: value` (a space
            after the separator) also works when the next word is not itself a pair.
    keys    theme, products (aliases n, count, product), videos (alias video), style,
            audience, seed, text_model, image_model, video_model. Each at most once.
    value   bare (up to the next whitespace) or quoted with "..." or '...'.
    quotes  open only at the start of a word or right after `key:`, so apostrophes
            inside words (cat's) are literal. A quote closes only when followed by
            whitespace or the end of the text ('don't stop' is one value). Inside
            quotes \\" \\' and \\\\ are escapes; any other backslash is literal.
    words   everything else. Loose words and the `theme:` value are JOINED into the
            theme in the order written (`theme: retro cats` means "retro cats").
    phrases unquoted, case-insensitive: `5 products`, `5 product`, `products 5`,
            `with 5 products`, `with video(s)`, `no video(s)`, `without video(s)`,
            `neon style`, `in neon style` (real style names only: `retro style` is
            theme text).

A word whose part before ':' or '=' is not letters/underscores (`3:30`, `x-y=z`) or
that continues with `//` (`https://x.com`) is a theme word. Any other `word:` is an
option, and an unknown one is an error (quote the theme to use such words).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import NamedTuple

from core.errors import InvalidRequest

FIELDS = (
    "theme", "products", "videos", "style", "audience", "seed",
    "text_model", "image_model", "video_model",
)  # fmt: skip
_ALIASES = {
    "n": "products", "count": "products", "product": "products", "video": "videos",
}  # fmt: skip
MODEL_HINT = "owner/name or owner/name:<64 hex version>"
_HINTS = {
    "theme": "text", "products": "a number", "videos": "yes or no",
    "style": "a style name", "audience": "text", "seed": "a number",
}  # fmt: skip
_ECHO_CHARS = 40
_PAIR_RE = re.compile(r"([A-Za-z_]+)[:=]")
_BARE_RE = re.compile(r"\S*")
_DIGITS_RE = re.compile(r"[0-9]+")
_PRODUCT_WORDS = frozenset({"product", "products"})
_VIDEO_WORDS = frozenset({"video", "videos"})
_QUOTES = "\"'"


def pairs(text: str, styles: tuple[str, ...]) -> Iterator[tuple[str | None, str]]:
    """(field, value) for every pair and phrase, (None, word) for every theme word;
    `styles`: the style names a `neon style` phrase may name."""
    return _assemble(_tokenize(text), styles)


def clip(text: str) -> str:
    """Collapse whitespace and cut user text to about 40 characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _ECHO_CHARS else flat[: _ECHO_CHARS - 1] + "…"


class _Token(NamedTuple):
    key: str | None  # canonical field name for `key:value`, None for a loose word
    value: str
    quoted: bool


def _tokenize(text: str) -> list[_Token]:
    """Split text into pairs and loose words, honouring quotes."""
    tokens: list[_Token] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return tokens
        key, pos = _read_key(text, pos)
        if pos < len(text) and text[pos] in _QUOTES:
            value, pos = _read_quoted(text, pos, key or "theme")
            tokens.append(_Token(key, value, True))
        else:
            match = _BARE_RE.match(text, pos)
            end = match.end() if match else len(text)
            tokens.append(_Token(key, text[pos:end], False))
            pos = end


def _read_key(text: str, pos: int) -> tuple[str | None, int]:
    """Read `key:` or `key=` at pos; return (canonical key or None, new position)."""
    match = _PAIR_RE.match(text, pos)
    if match is None or text.startswith("//", match.end()):
        return None, pos
    return _resolve_key(match.group(1)), match.end()


def _resolve_key(word: str) -> str:
    """Map a typed key or alias to its field name, or raise with a suggestion."""
    key = word.lower()
    if key in FIELDS:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    close = [*difflib.get_close_matches(key, [*FIELDS, *_ALIASES], n=1), None]
    raise InvalidRequest(clip(key), "unknown option", ", ".join(FIELDS), close[0])


def _read_quoted(text: str, pos: int, field: str) -> tuple[str, int]:
    """Read a quoted value starting at the quote at pos; return (content, end)."""
    quote, pos = text[pos], pos + 1
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text) and text[pos + 1] in "\"'\\":
            out.append(text[pos + 1])
            pos += 2
            continue
        if char == quote and (pos + 1 == len(text) or text[pos + 1].isspace()):
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    allowed = f"a closing {quote} followed by a space or the end"
    raise InvalidRequest(field, f"has an unterminated {quote} quote", allowed)


def _assemble(tokens: list[_Token], styles: tuple[str, ...]) -> Iterator[tuple[str | None, str]]:
    """Yield (field, value) for pairs and phrases and (None, word) for theme words."""
    pos = 0
    while pos < len(tokens):
        token = tokens[pos]
        if token.key is not None and (token.value or token.quoted):
            yield token.key, token.value
            pos += 1
        elif token.key is not None:  # `key:` with the value in the next word
            following = tokens[pos + 1] if pos + 1 < len(tokens) else None
            if following is None or following.key is not None:
                raise InvalidRequest(token.key, "has no value", _HINTS.get(token.key, MODEL_HINT))
            yield token.key, following.value
            pos += 2
        else:
            phrase = _phrase(_plain_words(tokens, pos), styles)
            if phrase is None:
                yield None, token.value
                pos += 1
            else:
                yield phrase[0], phrase[1]
                pos += phrase[2]


def _plain_words(tokens: list[_Token], pos: int) -> list[str]:
    """Return up to three lowercased unquoted loose words starting at pos."""
    words: list[str] = []
    for token in tokens[pos : pos + 3]:
        if token.key is not None or token.quoted:
            break
        words.append(token.value.lower())
    return words


def _phrase(words: list[str], styles: tuple[str, ...]) -> tuple[str, str, int] | None:
    """Match a forgiving phrase at the start of words; return (field, value, used)."""
    w = [*words, "", "", ""]
    if w[0] == "with" and _DIGITS_RE.fullmatch(w[1]) and w[2] in _PRODUCT_WORDS:
        return "products", w[1], 3
    if _DIGITS_RE.fullmatch(w[0]) and w[1] in _PRODUCT_WORDS:
        return "products", w[0], 2
    if w[0] in _PRODUCT_WORDS and _DIGITS_RE.fullmatch(w[1]):
        return "products", w[1], 2
    if w[0] in ("with", "no", "without") and w[1] in _VIDEO_WORDS:
        return "videos", "yes" if w[0] == "with" else "no", 2
    if w[0] == "in" and w[1] in styles and w[2] == "style":
        return "style", w[1], 3
    if w[0] in styles and w[1] == "style":
        return "style", w[0], 2
    return None
